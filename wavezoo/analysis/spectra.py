"""Eigen-spectra of a task's TWM operator and of a trained RNN, and the paper's spectral error (Table 1).

The spectrum is basis invariant, so the learned W_hh (the linearisation of h(t) = tanh(W_hh h(t-1) + W_uh u(t))
at h = 0) can be compared with the LBC-TWM matrix M of the task directly.
"""

from __future__ import annotations

import math

import torch

from wavezoo.core.lbc_algebra import lbc_matrix
from wavezoo.core.operators import VARIABLE_BINDING_TASKS, signed_selection


def task_operator(task: str = "T1", operator: list[list[int]] | None = None, dim: int = 8, history: int = 8):
    """M (sd x sd) of a variable-binding task: shift + the boundary block-row of its signed selection."""
    spec = operator if operator is not None else VARIABLE_BINDING_TASKS[task]
    return lbc_matrix(signed_selection(spec, dim, history).flip(0))


def eigenvalues(matrix: torch.Tensor) -> torch.Tensor:
    """Complex eigenvalues of a square matrix (float64)."""
    return torch.linalg.eigvals(matrix.detach().double())


def count_above(eigs: torch.Tensor, threshold: float = 0.8) -> int:
    """How many eigenvalues have modulus above ``threshold`` (64 for T1, 36 for T2-T4 in theory)."""
    return int((eigs.abs() > threshold).sum())


def spectral_error(theory: torch.Tensor, learned: torch.Tensor, threshold: float = 0.9) -> float:
    """Mean absolute angle (radians) between matched eigenvalues, as in the authors' ``spectral_comparison``.

    Both spectra keep the eigenvalues with modulus above ``threshold``; the shorter list is padded with zeros;
    all are normalised to unit modulus (zeros stay zero); each theoretical eigenvalue, in turn, takes the closest
    remaining learned one by the angle arccos(<a, b>) between them as 2-d vectors; the error is the mean angle over
    the theoretical eigenvalues. Inputs are eigenvalue lists or square matrices.
    """
    a = eigenvalues(theory) if theory.dim() == 2 else theory.to(torch.complex128)
    b = eigenvalues(learned) if learned.dim() == 2 else learned.to(torch.complex128)
    a, b = a[a.abs() > threshold], b[b.abs() > threshold]
    size = max(len(a), len(b))
    if size == 0:
        return 0.0
    pad = lambda z: torch.cat([z / z.abs(), torch.zeros(size - len(z), dtype=z.dtype)])  # noqa: E731
    a, b = pad(a), pad(b)
    remaining = list(range(size))
    angles = []
    for value in a.tolist():
        cosines = [value.real * b[j].real.item() + value.imag * b[j].imag.item() for j in remaining]
        best = max(range(len(remaining)), key=lambda k: cosines[k])
        angles.append(math.acos(max(-1.0, min(1.0, cosines[best]))))
        remaining.pop(best)
    return sum(abs(angle) for angle in angles) / len(angles)
