"""Wave-RNN (wRNN) of Keller, Muller, Sejnowski & Welling (ICLR 2024): traveling waves in a convolutional RNN.

    h(t+1) = sigma( u (*) h(t) + V x(t) + b ),    y(t) = W h(t)

The hidden state is c channels x n cells; ``u (*)`` is a circular convolution over the cells (kernel size k, c -> c
channels). With the shift initialisation of u every channel moves its content one cell per step (a traveling
wave around the ring); the "solo" initialisation of V writes every input into cell 0 of each channel.
``hidden_size`` = c * n state units.

The recurrence runs in torch's fused RNN kernel: the convolution is a structured (block-circulant) matrix
W_hh = sum_k u[:, :, k] (x) P_k, P_k the cyclic shift by k - k // 2, rebuilt from u at each forward so that
gradients flow to the kernel.
"""

from __future__ import annotations

import torch
from torch import nn

from wavezoo.errors import ConfigError, check_choice, check_positive_int
from wavezoo.models.base import SequenceModel
from wavezoo.registry import register_model


def cyclic_shifts(cells: int, kernel_size: int) -> torch.Tensor:
    """``[k, n, n]``: P_k[i, j] = 1 iff j = (i + k - k // 2) mod n (circular 'same' convolution taps)."""
    index = torch.arange(cells)
    shifts = torch.zeros(kernel_size, cells, cells)
    for k in range(kernel_size):
        shifts[k, index, (index + k - kernel_size // 2) % cells] = 1.0
    return shifts


class WaveRNN(SequenceModel):
    """wRNN with ``channels`` x ``hidden_size // channels`` cells.

    Args:
        channels: c, the number of wave channels.
        kernel_size: taps of the circular convolution (odd).
        nonlinearity: ``"relu"`` (Keller et al.) or ``"tanh"``.
        shift_init: initialise u as a one-cell shift per channel (else small random).
        solo_init: initialise V to write each input into cell 0 of every channel (else N(0, 0.001)).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int,
        channels: int = 6,
        kernel_size: int = 3,
        nonlinearity: str = "relu",
        shift_init: bool = True,
        solo_init: bool = True,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        self.channels = check_positive_int("channels", channels)
        if hidden_size % channels:
            raise ConfigError(f"channels={channels} must divide hidden_size={hidden_size}")
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size={kernel_size} is invalid: expected an odd integer")
        self.cells = hidden_size // channels
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("relu", "tanh"))
        self.kernel = nn.Parameter(torch.empty(channels, channels, kernel_size))
        self.input_map = nn.Linear(input_size, hidden_size)
        self.readout = nn.Linear(hidden_size, output_size)
        self.register_buffer("shifts", cyclic_shifts(self.cells, kernel_size), persistent=False)
        self.register_buffer("zero_bias", torch.zeros(hidden_size), persistent=False)
        self.reset_wave_parameters(shift_init, solo_init)

    def reset_wave_parameters(self, shift_init: bool = True, solo_init: bool = True) -> None:
        with torch.no_grad():
            if shift_init:  # dirac, then rolled one tap: out[c, i] = h[c, i + 1]
                self.kernel.zero_()
                tap = min(self.kernel_size // 2 + 1, self.kernel_size - 1)
                channel = torch.arange(self.channels)
                self.kernel[channel, channel, tap] = 1.0
            else:
                nn.init.kaiming_uniform_(self.kernel, a=5**0.5)
            if solo_init:
                self.input_map.weight.zero_()
                self.input_map.weight.view(self.channels, self.cells, self.input_size)[:, 0] = 1.0
            else:
                nn.init.normal_(self.input_map.weight, std=0.001)
            self.input_map.bias.zero_()

    def recurrent_matrix(self) -> torch.Tensor:
        """W_hh (``[N, N]``, N = c * n) of the circular convolution, channel-major layout (channel, cell)."""
        blocks = torch.einsum("abk,kij->aibj", self.kernel, self.shifts)
        return blocks.reshape(self.hidden_size, self.hidden_size)

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """h(1..T) ``[B, T, N]`` from h(0) = 0."""
        run = torch._VF.rnn_relu if self.nonlinearity == "relu" else torch._VF.rnn_tanh
        h0 = x.new_zeros(1, x.shape[0], self.hidden_size)
        params = [self.input_map.weight, self.recurrent_matrix(), self.input_map.bias, self.zero_bias]
        # (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
        return run(x, h0, params, True, 1, 0.0, self.training, False, True)[0]

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden_states(x))


@register_model
def wave_rnn(input_size: int, output_size: int, hidden_size: int = 600, **kwargs) -> WaveRNN:
    """Keller et al.'s wRNN (default 6 channels x 100 cells, kernel 3, ReLU, shift and solo initialisation)."""
    return WaveRNN(input_size, output_size, hidden_size, **kwargs)
