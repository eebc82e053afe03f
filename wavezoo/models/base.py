"""The model contract shared by every family of the zoo."""

from __future__ import annotations

import torch
from torch import nn

from wavezoo.errors import ConfigError, check_positive_int


class SequenceModel(nn.Module):
    """Base class of every zoo model: batch-first ``[batch, time, input_size] -> [batch, time, output_size]``.

    Subclasses implement :meth:`forward_sequence`; :meth:`forward` checks the input first, so a tensor of the wrong
    rank or width fails with a one-line :class:`~wavezoo.errors.ConfigError` instead of an error deep inside torch.
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.output_size = check_positive_int("output_size", output_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"{type(self).__name__} expects a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ConfigError(
                f"{type(self).__name__} got input of shape {tuple(x.shape)}; expected a 3-d tensor "
                f"[batch, time, input_size={self.input_size}]"
            )
        if x.shape[1] == 0:
            raise ConfigError(f"{type(self).__name__} got an empty sequence (time = 0); expected time >= 1")
        return self.forward_sequence(x)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, output_size={self.output_size}, hidden_size={self.hidden_size}"
