"""Wave-RNN (wRNN) of Keller, Muller, Sejnowski & Welling (ICLR 2024): traveling waves in a convolutional RNN.

    h(t) = sigma( u (*) h(t-1) + V x(t) + b_in [+ b_u] ),    y(t) = W h(t) + b_out

The hidden state is c channels x n cells; ``u (*)`` is a circular convolution over the cells (kernel size k, c -> c
channels, optional per-channel bias b_u as in the authors' ``nn.Conv1d``). With the shift initialisation of u every
channel moves its content one cell per step (a traveling wave around the ring); the "solo" initialisation of V
writes every input into cell 0 of each channel. ``hidden_size`` = c * n state units.

Channels: ``hidden_size`` is split into c channels x n = hidden_size // c cells. An explicit ``channels`` must divide
``hidden_size``. Left out (``channels=None``), c is the first of :data:`DEFAULT_CHANNELS` = (6, 4, 3, 2, 1) that
divides ``hidden_size``: 6 whenever it divides (600 -> 6 x 100, the family's default), else 4 (so every power of
two from 4 up: 32 -> 4 x 8, 64 -> 4 x 16, ..., 1024 -> 4 x 256), else 3 (odd multiples of 3), else 2 (other even
sizes), else a single ring of ``hidden_size`` cells. A few channels keep the rings long: the ring length n is how
many steps a wave carries an input before it comes round again. The published checkpoints name their channels.

The recurrence is structured end to end: :class:`wavezoo.core.circular.WaveScan` runs the whole sequence (input
projection, k-tap circular convolution, readout) in one autograd node with a hand-written backward, never forming
the dense (c n) x (c n) matrix. On CUDA :func:`~wavezoo.core.circular.wave_scan` runs the same recurrence as a
fused Triton scan instead (:mod:`wavezoo.core.wave_scan_triton`; ``WAVEZOO_WAVE_SCAN`` picks the backend).
:meth:`WaveRNN.recurrent_matrix` builds that matrix for the analysis only.

Streaming state: h(t) ``[batch, hidden_size]`` in the channel-major (channel, cell) layout, zeros at the start.
:meth:`WaveRNN.forward_step` applies the same convolution (:meth:`WaveRNN.convolve`) and equals the sequence path to
float32 rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from wavezoo.core.circular import NONLINEARITIES, circular_conv, wave_scan
from wavezoo.errors import ConfigError, check_choice, check_positive_int
from wavezoo.models.base import SequenceModel, State
from wavezoo.registry import register_model

DEFAULT_CHANNELS = (6, 4, 3, 2, 1)  # channels=None: the first of these that divides hidden_size


def default_channels(hidden_size: int) -> int:
    """The number of channels of a wRNN with ``channels=None``: the first of :data:`DEFAULT_CHANNELS` that divides
    ``hidden_size`` (6 for 600 = 6 x 100, 4 for powers of two, 1 when nothing else does)."""
    return next(c for c in DEFAULT_CHANNELS if hidden_size % c == 0)


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
        shift_init: initialise u as a one-cell shift per channel (the authors' ``init='fwd'``), else
            ``nn.Conv1d``'s default (kaiming uniform).
        solo_init: initialise V to write each input into cell 0 of every channel with b_in = 0 (the authors'
            ``solo_init='yes'``), else V ~ N(0, 0.001) and ``nn.Linear``'s default b_in (their ``'no'``).
        recurrent_bias: a per-channel bias b_u of the convolution, initialised as ``nn.Conv1d``'s
            (U(-1/sqrt(c k), 1/sqrt(c k))); the authors' model has it. Off by default (the zoo's checkpoints).
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
        recurrent_bias: bool = False,
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
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.kernel = nn.Parameter(torch.empty(channels, channels, kernel_size))
        self.recurrent_bias = nn.Parameter(torch.empty(channels)) if recurrent_bias else None
        self.input_map = nn.Linear(input_size, hidden_size)
        self.readout = nn.Linear(hidden_size, output_size)
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
            if self.recurrent_bias is not None:
                bound = (self.channels * self.kernel_size) ** -0.5
                nn.init.uniform_(self.recurrent_bias, -bound, bound)
            if solo_init:
                self.input_map.weight.zero_()
                self.input_map.weight.view(self.channels, self.cells, self.input_size)[:, 0] = 1.0
                self.input_map.bias.zero_()
            else:
                nn.init.normal_(self.input_map.weight, std=0.001)

    def recurrent_matrix(self) -> torch.Tensor:
        """W_hh (``[N, N]``, N = c * n) of the circular convolution, channel-major layout (channel, cell); for the
        analysis only (the recurrence never forms it)."""
        shifts = cyclic_shifts(self.cells, self.kernel_size).to(self.kernel)
        blocks = torch.einsum("abk,kij->aibj", self.kernel, shifts)
        return blocks.reshape(self.hidden_size, self.hidden_size)

    def drive_bias(self) -> torch.Tensor:
        """b_in + b_u as ``[c, n]``."""
        bias = self.input_map.bias.view(self.channels, self.cells)
        return bias if self.recurrent_bias is None else bias + self.recurrent_bias[:, None]

    def _scan(self, x: torch.Tensor, pooled: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, steps, _ = x.shape
        c, n = self.channels, self.cells
        y, states = wave_scan(
            x.transpose(0, 1).reshape(steps * batch, self.input_size),
            self.input_map.weight.view(c, n, self.input_size),
            self.drive_bias(),
            self.kernel,
            x.new_zeros(c, batch, n),
            self.readout.weight.view(self.output_size, c, n),
            self.nonlinearity,
            pooled,
        )
        return (y + self.readout.bias).view(steps, batch, self.output_size).transpose(0, 1), states

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """h(1..T) ``[B, T, N]`` (channel-major) from h(0) = 0, differentiable (e.g. for Jacobians by lag)."""
        batch, steps, _ = x.shape
        states = self._scan(x, pooled=False)[1]  # [c, T, B, n]
        return states.permute(2, 1, 0, 3).reshape(batch, steps, self.hidden_size)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """y(1..T) ``[B, T, O]`` by :class:`~wavezoo.core.circular.WaveScan`. In training mode its buffers are
        pooled between steps (the graph can then be back-propagated once, without ``retain_graph``)."""
        return self._scan(x, pooled=self.training)[0]

    # -- streaming --------------------------------------------------------------------------------------------
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """h(0) = 0, ``[batch, hidden_size]`` (channel-major: channel, cell)."""
        batch_size = check_positive_int("batch_size", batch_size)
        return torch.zeros(batch_size, self.hidden_size, **self.state_kwargs(device, dtype))

    def convolve(self, h: torch.Tensor) -> torch.Tensor:
        """u (*) h for states ``h`` ``[batch, hidden_size]``: the circular convolution over the cells of each ring
        (:func:`wavezoo.core.circular.circular_conv`, k GEMMs of c x c), never the dense W_hh.

        out[b, a, i] = sum_{c', j} u[a, c', j] h[b, c', (i + j - k // 2) mod n]
        """
        rings = h.view(h.shape[0], self.channels, self.cells).transpose(0, 1)  # [c, batch, n]
        return circular_conv(rings, self.kernel).transpose(0, 1).reshape(h.shape[0], self.hidden_size)

    def forward_step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        act = torch.relu if self.nonlinearity == "relu" else torch.tanh
        pre = self.convolve(state) + self.input_map(x_t)
        if self.recurrent_bias is not None:
            pre = pre + self.recurrent_bias.repeat_interleave(self.cells)
        h = act(pre)
        return self.readout(h), h


@register_model
def wave_rnn(input_size: int, output_size: int, hidden_size: int = 600, **kwargs) -> WaveRNN:
    """Keller et al.'s wRNN (default 6 channels x 100 cells, kernel 3, ReLU, shift and solo initialisation).

    With another ``hidden_size`` and no ``channels``, the channels are the first of (6, 4, 3, 2, 1) that divides it.
    """
    return WaveRNN(input_size, output_size, hidden_size, **kwargs)
