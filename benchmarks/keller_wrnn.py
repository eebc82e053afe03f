"""Reference for the wave-RNN speed rows: a circular-Conv1d RNN stepped in Python, as Keller et al. write theirs.

    h(t) = relu(Wx x(t) + Conv1d_circular(h(t-1)) + b),   y(t) = readout(h(t))

One ``nn.Linear`` input map, one ``nn.Conv1d(c, c, k, padding=k // 2, padding_mode="circular")`` with its bias, the
state reshaped to ``[batch, c, n]`` for the convolution and flattened back, a per-step readout and autograd over
every step: the structure of their ``RNN_Cell``/``coRNN`` (written here, not copied).
"""

from __future__ import annotations

import torch
from torch import nn


class StepwiseConvRNN(nn.Module):
    """The per-step circular-convolution RNN of the reference rows; input ``[batch, time, input_size]``."""

    def __init__(self, input_size: int, output_size: int, channels: int, cells: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.channels, self.cells = channels, cells
        self.input_map = nn.Linear(input_size, channels * cells)
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, padding_mode="circular")
        self.readout = nn.Linear(channels * cells, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.channels * self.cells)
        outputs = []
        for t in range(x.shape[1]):
            rings = self.conv(h.view(-1, self.channels, self.cells)).flatten(start_dim=1)
            h = torch.relu(self.input_map(x[:, t]) + rings)
            outputs.append(self.readout(h))
        return torch.stack(outputs, dim=1)
