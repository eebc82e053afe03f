"""Theorem 3.1 as code: the exact TWM of a history-dependent system (HDS).

For an HDS x(t+1) = f(x(t), x(t-1), ..., x(t-s+1)) with x in R^d, the TWM with an s x d substrate, the shift
interior, an open end and start boundary f (applied to the columns, oldest first) reproduces the HDS: started from
h(0) = (x(1), ..., x(s)), its boundary column is h_s(t) = x(s + t) for every t >= 0 (proof by induction: the
interior shift moves x(t-s+i+1) into column i, the boundary computes x(t+1)).

Every constructor returns a :class:`~wavezoo.models.twm.TravelingWaveMemory` whose boundary is fixed (no
trainable parameters); ``twm.rollout(window, steps)`` is the HDS trajectory (the autonomous TWM,
:func:`~wavezoo.models.twm.wave_rollout`), and ``twm(u)`` drives it with inputs by its input rule: ``"add"``
(h[s](t) = f(h(t-1)) + u(t) at every step: the LBC-TWM is then the linear RNN of :mod:`wavezoo.core.lbc_algebra`), or
``"replace"`` with ``input_steps = s`` (u(1..s) written as the initial window, then autonomous: the paper's
protocol, used by :func:`twm_variable_binding`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from wavezoo.core.operators import VARIABLE_BINDING_TASKS, generalized_fibonacci, signed_selection
from wavezoo.errors import check_positive_int
from wavezoo.models.twm import LinearBoundary, TravelingWaveMemory

Evolution = Callable[[torch.Tensor], torch.Tensor]


class FunctionBoundary(nn.Module):
    """A boundary given by any callable ``f(window [B, s, d]) -> [B, d]`` (window oldest first)."""

    def __init__(self, f: Evolution) -> None:
        super().__init__()
        self.f = f

    def forward(self, substrate: torch.Tensor) -> torch.Tensor:
        return self.f(substrate)


def twm_from_lag_operators(
    lag_phi: torch.Tensor, input_mode: str = "add", input_steps: int | None = None
) -> TravelingWaveMemory:
    """Exact TWM of the linear HDS (VAR(s)) x(t+1) = sum_k phi_k x(t+1-k), ``lag_phi[k-1] = phi_k``; input rule
    ``input_mode`` / ``input_steps`` (see :mod:`wavezoo.models.twm`)."""
    history, dim, _ = lag_phi.shape
    return TravelingWaveMemory(history, dim, LinearBoundary.from_lag_operators(lag_phi), input_mode, input_steps)


def twm_generalized_fibonacci(dim: int, history: int, normalize: str = "none") -> TravelingWaveMemory:
    """The paper's example: f(h) = sum of all substrate columns (``normalize`` as in ``generalized_fibonacci``)."""
    return twm_from_lag_operators(generalized_fibonacci(dim, history, normalize))


def twm_variable_binding(
    task: str = "T1", operator: list[list[int]] | None = None, dim: int = 8, history: int = 8
) -> TravelingWaveMemory:
    """Exact TWM of a variable-binding task: a preset ``T1``..``T4`` or a custom signed-selection ``operator``.
    Its input rule is the task's protocol: the first s inputs replace the start column, then it runs autonomously."""
    spec = operator if operator is not None else VARIABLE_BINDING_TASKS[task]
    return twm_from_lag_operators(signed_selection(spec, dim, history), "replace", input_steps=history)


def twm_from_function(f: Evolution, history: int, dim: int) -> TravelingWaveMemory:
    """Exact TWM of an arbitrary HDS given by ``f(window [B, s, d]) -> x(t+1) [B, d]`` (window oldest first)."""
    check_positive_int("history", history)
    check_positive_int("dim", dim)
    return TravelingWaveMemory(history, dim, FunctionBoundary(f))
