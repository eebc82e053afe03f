"""Gradient propagation over the history (paper sec. 5, claim C9): ||dL/du(k)|| as a function of the lag."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def input_gradient_by_lag(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, step: int
) -> torch.Tensor:
    """Mean over the batch of ||dL/du(step - lag)|| for lag = 0..step, where L is the MSE of the output at ``step``.

    A geometric decay with the lag is the diminishing gradient; a wave memory keeps it roughly flat within the
    window it stores. Returns ``[step + 1]`` (index = lag).
    """
    inputs = inputs.detach().clone().requires_grad_(True)
    outputs = model(inputs)
    loss = F.mse_loss(outputs[:, step], targets[:, step])
    (grad,) = torch.autograd.grad(loss, inputs)
    norms = grad[:, : step + 1].norm(dim=-1).mean(0)  # [step + 1], index = time
    return norms.flip(0)
