"""The paper's accuracy for +-1 targets: the share of output elements whose sign matches the target's,

    acc = mean over masked steps t and dims j of [ sign(y_hat_j(t)) == sign(y_j(t)) ],   sign(v) = (v > 0),

the one definition used by the training metrics (``wavezoo.lit``), the curriculum and the wave lens."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def sign_agreement(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise ``(prediction > 0) == (target > 0)`` (a bool tensor)."""
    return (prediction > 0) == (target > 0)


def sign_accuracy(net: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> float:
    """Sign accuracy of ``net`` over the masked elements of ``(x, y, mask)`` batches (eval mode, no gradient)."""
    correct = total = 0
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for x, y, mask in batches:
            agree = sign_agreement(net(x)[mask], y[mask])
            correct += int(agree.sum())
            total += agree.numel()
    net.train(was_training)
    return correct / total
