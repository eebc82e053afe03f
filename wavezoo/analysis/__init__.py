"""The wave lens: reveal traveling-wave structure in trained recurrent networks (paper sec. 4.4, claims C5-C9)."""

from wavezoo.analysis.basis import (
    WaveBasis,
    boundary_blocks,
    compress,
    compressed_cells,
    power_iteration,
    task_cells,
    task_informed_basis,
    wave_basis,
)
from wavezoo.analysis.claims import (
    MARGINS,
    activity_score,
    decay_factor,
    evaluate_claims,
    jacobian_by_lag,
    loop_closure_score,
    task_window,
)
from wavezoo.analysis.linearize import LENS_FAMILIES, LinearRecurrence, linearize
from wavezoo.analysis.spectra import count_above, eigenvalues, spectral_error, task_operator

__all__ = [
    "LENS_FAMILIES",
    "MARGINS",
    "LinearRecurrence",
    "WaveBasis",
    "activity_score",
    "boundary_blocks",
    "compress",
    "compressed_cells",
    "count_above",
    "decay_factor",
    "eigenvalues",
    "evaluate_claims",
    "jacobian_by_lag",
    "linearize",
    "loop_closure_score",
    "power_iteration",
    "spectral_error",
    "task_cells",
    "task_informed_basis",
    "task_operator",
    "task_window",
    "wave_basis",
]
