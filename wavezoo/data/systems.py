"""Nonlinear history-dependent systems x(t+1) = f(x(t-s+1), ..., x(t)) (the linear ones are in
:mod:`wavezoo.core.operators`)."""

from __future__ import annotations

import torch

from wavezoo.errors import check_positive_int


class RandomMLPSystem:
    """f(window) = tanh(A tanh(B vec(window))), ``window [batch, s, d]`` oldest first, with random
    B ``[hidden, s * d]`` and A ``[d, hidden]`` of gain ``gain`` drawn from ``seed`` (B first)."""

    def __init__(
        self, dim: int, history: int, hidden: int = 32, gain: float = 1.5, seed: int = 0, dtype: torch.dtype = None
    ) -> None:
        check_positive_int("dim", dim)
        check_positive_int("history", history)
        check_positive_int("mlp_hidden", hidden)
        gen = torch.Generator().manual_seed(seed)
        self.inner = torch.randn(hidden, history * dim, generator=gen) * gain / (history * dim) ** 0.5
        self.outer = torch.randn(dim, hidden, generator=gen) * gain / hidden**0.5
        if dtype is not None:
            self.inner, self.outer = self.inner.to(dtype), self.outer.to(dtype)

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        """x(t+1) from ``window [batch, s, d]`` = x(t-s+1..t)."""
        return torch.tanh(torch.tanh(window.flatten(1) @ self.inner.T) @ self.outer.T)
