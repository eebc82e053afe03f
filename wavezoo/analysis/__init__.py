"""The wave lens: reveal traveling-wave structure in trained recurrent networks (paper sec. 4.4, claims C5-C9)."""

from wavezoo.analysis.basis import WaveBasis, boundary_blocks, compressed_cells, wave_basis
from wavezoo.analysis.gradients import decay_per_step, input_gradient_by_lag, input_lag_profile
from wavezoo.analysis.linearize import LENS_FAMILIES, LinearRecurrence, linearize
from wavezoo.analysis.spectra import count_above, eigenvalues, spectral_error, task_operator

__all__ = [
    "LENS_FAMILIES",
    "LinearRecurrence",
    "WaveBasis",
    "boundary_blocks",
    "compressed_cells",
    "count_above",
    "decay_per_step",
    "eigenvalues",
    "input_gradient_by_lag",
    "input_lag_profile",
    "linearize",
    "spectral_error",
    "task_operator",
    "wave_basis",
]
