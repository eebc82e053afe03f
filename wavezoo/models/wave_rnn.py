"""Wave-RNN (wRNN) of Keller, Muller, Sejnowski & Welling (ICLR 2024): traveling waves in a convolutional RNN.

    h(t+1) = sigma( u (*) h(t) + V x(t) + b ),    y(t) = W h(t)

The hidden state is c channels x n cells; ``u (*)`` is a circular convolution over the cells (kernel size k, c -> c
channels). With the shift initialisation of u every channel moves its content one cell per step (a traveling
wave around the ring); the "solo" initialisation of V writes every input into cell 0 of each channel.
``hidden_size`` = c * n state units.

Channels: ``hidden_size`` is split into c channels x n = hidden_size // c cells. An explicit ``channels`` must divide
``hidden_size``. Left out (``channels=None``), c is the first of :data:`DEFAULT_CHANNELS` = (6, 4, 3, 2, 1) that
divides ``hidden_size``: 6 whenever it divides (600 -> 6 x 100, the family's default), else 4 (so every power of
two from 4 up: 32 -> 4 x 8, 64 -> 4 x 16, ..., 1024 -> 4 x 256), else 3 (odd multiples of 3), else 2 (other even
sizes), else a single ring of ``hidden_size`` cells. A few channels keep the rings long: the ring length n is how
many steps a wave carries an input before it comes round again. The published checkpoints name their channels.

The recurrence runs in torch's fused RNN kernel: the convolution is a structured (block-circulant) matrix
W_hh = sum_k u[:, :, k] (x) P_k, P_k the cyclic shift by k - k // 2, rebuilt from u at each forward so that
gradients flow to the kernel.

Streaming state: h(t) ``[batch, hidden_size]`` in the same channel-major (channel, cell) layout, zeros at the start.
:meth:`WaveRNN.forward_step` applies the convolution structurally (:meth:`WaveRNN.convolve`: the k taps over the
circularly padded rings), never the dense W_hh, and equals the fused path to float32 rounding.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.func import functional_call

from wavezoo.errors import ConfigError, check_choice, check_positive_int
from wavezoo.models.base import SequenceModel, State
from wavezoo.registry import register_model

DEFAULT_CHANNELS = (6, 4, 3, 2, 1)  # channels=None: the first of these that divides hidden_size


def default_channels(hidden_size: int) -> int:
    """The number of channels of a wRNN with ``channels=None``: the first of :data:`DEFAULT_CHANNELS` that divides
    ``hidden_size`` (6 for 600 = 6 x 100, 4 for powers of two, 1 when nothing else does)."""
    return next(c for c in DEFAULT_CHANNELS if hidden_size % c == 0)


@functools.cache
def fused_cell(input_size: int, hidden_size: int, nonlinearity: str) -> nn.RNN:
    """A weightless (meta-device) ``nn.RNN`` run with a wave RNN's own weights by ``functional_call``."""
    with torch.device("meta"):
        return nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True)


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
        channels: c, the number of wave channels; must divide ``hidden_size``. ``None`` (default): the first of
            (6, 4, 3, 2, 1) that divides ``hidden_size`` (see :func:`default_channels`).
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
        channels: int | None = None,
        kernel_size: int = 3,
        nonlinearity: str = "relu",
        shift_init: bool = True,
        solo_init: bool = True,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        if channels is None:
            channels = default_channels(hidden_size)
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
        """h(1..T) ``[B, T, N]`` from h(0) = 0: torch's fused RNN kernel (``nn.RNN`` through the public
        ``torch.func.functional_call``) with W_hh = :meth:`recurrent_matrix`, so gradients reach the kernel u."""
        params = {
            "weight_ih_l0": self.input_map.weight,
            "weight_hh_l0": self.recurrent_matrix(),
            "bias_ih_l0": self.input_map.bias,
            "bias_hh_l0": self.zero_bias,
        }
        cell = fused_cell(self.input_size, self.hidden_size, self.nonlinearity)
        return functional_call(cell, params, (x,))[0]

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden_states(x))

    # -- streaming --------------------------------------------------------------------------------------------
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """h(0) = 0, ``[batch, hidden_size]`` (channel-major: channel, cell)."""
        batch_size = check_positive_int("batch_size", batch_size)
        return torch.zeros(batch_size, self.hidden_size, **self.state_kwargs(device, dtype))

    def convolve(self, h: torch.Tensor) -> torch.Tensor:
        """u (*) h for states ``h`` ``[batch, hidden_size]``: the circular convolution over the cells of each ring,
        computed from its k taps (O(c^2 k n) work), never with the dense W_hh (O(c^2 n^2)).

        out[b, a, i] = sum_{c', j} u[a, c', j] h[b, c', (i + j - k // 2) mod n], i.e. ``conv1d`` with circular
        padding, written as windows of the circularly padded rings times the kernel (a matmul, so it runs at the
        same float32 precision as the fused path's matmuls; cuDNN may run a float32 ``conv1d`` in TF32).
        """
        rings = h.reshape(h.shape[0], self.channels, self.cells)
        half = self.kernel_size // 2
        # circular padding by wrapping (F.pad's circular mode cannot pad by more than the ring length)
        index = torch.arange(-half, self.cells + half, device=h.device) % self.cells
        windows = rings[:, :, index].unfold(-1, self.kernel_size, 1)  # [batch, c, n, k]
        return torch.einsum("abk,nbik->nai", self.kernel, windows).reshape(h.shape[0], self.hidden_size)

    def forward_step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        act = torch.relu if self.nonlinearity == "relu" else torch.tanh
        h = act(self.convolve(state) + self.input_map(x_t))
        return self.readout(h), h


@register_model
def wave_rnn(input_size: int, output_size: int, hidden_size: int = 600, **kwargs) -> WaveRNN:
    """Keller et al.'s wRNN (default 6 channels x 100 cells, kernel 3, ReLU, shift and solo initialisation).

    With another ``hidden_size`` and no ``channels``, the channels are the first of (6, 4, 3, 2, 1) that divides it.
    """
    return WaveRNN(input_size, output_size, hidden_size, **kwargs)
