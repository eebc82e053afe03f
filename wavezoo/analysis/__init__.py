"""The wave lens: reveal traveling-wave structure in trained recurrent networks (paper sec. 4.4, claims C5-C9)."""

from wavezoo.analysis.basis import (
    WaveBasis,
    boundary_blocks,
    compress,
    compressed_cells,
    free_cells,
    power_iteration,
    task_cells,
    task_free_basis,
    task_informed_basis,
    wave_basis,
)
from wavezoo.analysis.claims import (
    MARGINS,
    activity_score,
    decay_factor,
    evaluate_claims,
    evaluate_views,
    jacobian_by_lag,
    look,
    loop_closure_score,
    task_window,
)
from wavezoo.analysis.controls import rotate, scramble
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
    "evaluate_views",
    "free_cells",
    "jacobian_by_lag",
    "linearize",
    "look",
    "loop_closure_score",
    "power_iteration",
    "rotate",
    "scramble",
    "spectral_error",
    "task_cells",
    "task_free_basis",
    "task_informed_basis",
    "task_operator",
    "task_window",
    "wave_basis",
]
