"""Gradient propagation over the history (paper sec. 5, claim C9): ||dL/du(t - lag)|| as a function of the lag.

For a generic RNN, dL/du(t - k) carries the product of k Jacobians J(sigma) W_hh, so its norm decays like mu^k
when mu = ||J W_hh|| < 1 (the diminishing gradient); a wave memory stores the window spatially and keeps the
norm roughly flat over the lags it holds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def input_gradient_by_lag(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    step: int,
    loss: str = "mse",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of ||dL/du(step - lag)|| for lag = 0..step (``"mse"`` against float targets
    ``[B, T, out]`` or ``"ce"`` against class indices ``[B, T]``). L is the loss of the output at ``step``, or with a
    ``mask`` ``[B, T]`` the mean loss over the masked outputs up to ``step`` (a whole output phase).

    Returns ``[step + 1]`` (index = lag).
    """
    inputs = inputs.detach().clone().requires_grad_(True)
    outputs = model(inputs)[:, : step + 1]
    keep = torch.zeros(outputs.shape[:2], dtype=torch.bool)
    if mask is None:
        keep[:, step] = True
    else:
        keep |= mask[:, : step + 1].bool()
    if loss == "ce":
        value = F.cross_entropy(outputs[keep], targets[:, : step + 1][keep])
    else:
        value = F.mse_loss(outputs[keep], targets[:, : step + 1][keep])
    (grad,) = torch.autograd.grad(value, inputs)
    norms = grad[:, : step + 1].norm(dim=-1).mean(0)  # [step + 1], index = time
    return norms.flip(0)


def input_lag_profile(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    step: int,
    loss: str = "mse",
    mask: torch.Tensor | None = None,
) -> dict[int, float]:
    """:func:`input_gradient_by_lag` at the lags of the steps that carry an input (non-zero in some sample):
    ``{lag: mean ||dL/du(step - lag)||}``, lags ascending. Steps without input are left out, since a model may
    ignore an all-zero input step altogether (a TWM that writes only present inputs has no gradient there)."""
    norms = input_gradient_by_lag(model, inputs, targets, step, loss, mask)
    present = inputs[:, : step + 1].ne(0).any(-1).any(0).flip(0)  # index = lag
    return {lag: float(norms[lag]) for lag in range(step + 1) if present[lag]}


def decay_per_step(profile: dict[int, float]) -> float:
    """Geometric-mean factor by which the gradient norm changes per step of lag, from the smallest to the largest
    lag of ``profile`` (1.0 = no decay; 0.5 = halves with every step further back)."""
    lags = sorted(profile)
    first, last = max(profile[lags[0]], 1e-300), max(profile[lags[-1]], 1e-300)
    return float((last / first) ** (1.0 / max(lags[-1] - lags[0], 1)))
