"""Recurrent baselines built on torch's fused cells: the paper's Elman RNN, GRU and LSTM.

Elman (the paper's model, Karuvally et al. 2024, sec. 4)::

    h(t) = tanh(W_hh h(t-1) + W_uh u(t) [+ b]),   y(t) = W_r h(t) [+ b_r],   h(0) = 0

GRU and LSTM replace the cell; the readout is always a per-step linear map of the last layer's hidden state.
``hidden_size`` is the width of the hidden state h of each layer (an LSTM also carries a cell state of that width).

Streaming state (:meth:`RecurrentBaseline.initial_state`): torch's own ``h_n`` layout, ``[num_layers, batch,
hidden_size]`` zeros at the start (Elman, iRNN, GRU), and the pair ``(h, c)`` of two such tensors for an LSTM.
:meth:`RecurrentBaseline.forward_step` runs the same ``nn.RNN``/``nn.GRU``/``nn.LSTM`` module on a length-1
sequence, so a step and the fused sequence kernel share every weight and equation.

On CUDA, cuDNN's RNN backward runs in training mode only; gradients in eval mode (the paper's gradient analysis)
run the module with cuDNN disabled for that call (:meth:`RecurrentBaseline.run`), i.e. torch's native kernels.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from wavezoo.errors import check_choice, check_positive_int
from wavezoo.models.base import SequenceModel, State
from wavezoo.registry import register_model

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentBaseline(SequenceModel):
    """A torch recurrent stack (``nn.RNN``/``nn.GRU``/``nn.LSTM``) with a linear per-step readout.

    Args:
        cell: ``"rnn"`` (Elman), ``"gru"`` or ``"lstm"``.
        num_layers: stacked recurrent layers.
        nonlinearity: ``"tanh"`` or ``"relu"`` (Elman only).
        bias: biases inside the recurrent cell.
        readout_bias: bias of the readout ``W_r``.
        dropout: dropout between stacked layers.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int,
        cell: str = "rnn",
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        readout_bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        check_choice("cell", cell, _CELLS)
        check_positive_int("num_layers", num_layers)
        kwargs = {"nonlinearity": check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))} if cell == "rnn" else {}
        self.cell = cell
        self.rnn = _CELLS[cell](
            input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=True, dropout=dropout, **kwargs
        )
        self.readout = nn.Linear(hidden_size, output_size, bias=readout_bias)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """h(0) = 0 ``[num_layers, batch, hidden_size]``; for an LSTM the pair (h(0), c(0)) of such zeros."""
        shape = (self.rnn.num_layers, check_positive_int("batch_size", batch_size), self.hidden_size)
        h0 = torch.zeros(shape, **self.state_kwargs(device, dtype))
        return (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0

    def forward_step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if self.cell == "lstm":
            state = tuple(state)  # nn.LSTM insists on a tuple (h, c)
        h, state = self.run(x_t.unsqueeze(1), state)
        return self.readout(h[:, 0]), state

    def run(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """``self.rnn(x, state)``; on CUDA in eval mode with gradients enabled, with cuDNN disabled (its RNN backward
        refuses eval mode)."""
        eval_grad = x.is_cuda and not self.training and torch.is_grad_enabled()
        with torch.backends.cudnn.flags(enabled=False) if eval_grad else contextlib.nullcontext():
            return self.rnn(x, state)

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """Last layer's hidden state h(t) for every step, ``[batch, time, hidden_size]`` (h(0) = 0)."""
        return self.run(x)[0]

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.hidden_states(x))


@register_model
def elman(input_size: int, output_size: int, hidden_size: int = 128, **kwargs) -> RecurrentBaseline:
    """The paper's Elman RNN: one tanh layer, no biases, bias-free linear readout, h(0) = 0."""
    kwargs = {"bias": False, "readout_bias": False, **kwargs}
    return RecurrentBaseline(input_size, output_size, hidden_size, cell="rnn", **kwargs)


@register_model
def gru(input_size: int, output_size: int, hidden_size: int = 128, **kwargs) -> RecurrentBaseline:
    """GRU baseline (``torch.nn.GRU``) with a linear readout."""
    return RecurrentBaseline(input_size, output_size, hidden_size, cell="gru", **kwargs)


@register_model
def lstm(input_size: int, output_size: int, hidden_size: int = 128, **kwargs) -> RecurrentBaseline:
    """LSTM baseline (``torch.nn.LSTM``) with a linear readout."""
    return RecurrentBaseline(input_size, output_size, hidden_size, cell="lstm", **kwargs)


IRNN_INITS = ("le2015", "keller")


@register_model
def irnn(
    input_size: int, output_size: int, hidden_size: int = 100, init: str = "le2015", **kwargs
) -> RecurrentBaseline:
    """iRNN (Le et al. 2015): ReLU Elman RNN with W_hh initialised to the identity and zero recurrent bias.

    ``init="le2015"``: torch's default input weights, every bias zero. ``init="keller"``: Keller et al.'s iRNN
    baseline (their ``rnn_model.py`` with ``init='eye'``, ``solo_init='no'``): input weights N(0, 0.001), input
    bias as ``nn.Linear``'s default U(-1/sqrt(input_size), 1/sqrt(input_size)), W_hh = I, recurrent bias 0. With
    such small input weights it stays at chance on their copy task.
    """
    check_choice("init", init, IRNN_INITS)
    model = RecurrentBaseline(input_size, output_size, hidden_size, cell="rnn", nonlinearity="relu", **kwargs)
    rnn = model.rnn
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.eye(hidden_size))
        for name, param in rnn.named_parameters():
            if name.startswith("bias"):
                param.zero_()
        if init == "keller":
            nn.init.normal_(rnn.weight_ih_l0, std=0.001)
            if rnn.bias:
                bound = input_size**-0.5
                nn.init.uniform_(rnn.bias_ih_l0, -bound, bound)
    return model
