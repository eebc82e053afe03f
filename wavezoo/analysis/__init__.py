"""The wave lens: reveal traveling-wave structure in trained recurrent networks (paper sec. 4.4, claims C5-C9)."""

from wavezoo.analysis.basis import WaveBasis, wave_basis
from wavezoo.analysis.gradients import input_gradient_by_lag
from wavezoo.analysis.spectra import count_above, eigenvalues, spectral_error, task_operator

__all__ = [
    "WaveBasis",
    "wave_basis",
    "input_gradient_by_lag",
    "count_above",
    "eigenvalues",
    "spectral_error",
    "task_operator",
]
