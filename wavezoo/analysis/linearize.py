"""Linear recurrences of trained models: h(t) ~ W_hh h(t-1) + W_uh u(t), y(t) = W_r h(t) around h = 0.

The wave lens works on this triple. For a tanh (or ReLU, in its active region) Elman RNN the Jacobian of the
nonlinearity at 0 is the identity, so the linearisation is (W_hh, W_uh, W_r) itself (paper sec. 4.4 step 1). A
``wave_rnn`` has the block-circulant W_hh of its convolution. A ``twm_lbc`` is linear already: its state is the
substrate [h_1; ...; h_s] (oldest first), W_hh = M = shift + [Phi_1 ... Phi_s] in the boundary row, and its
readout reads the start-boundary column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from wavezoo.errors import ConfigError

LENS_FAMILIES = ("elman", "irnn", "wave_rnn", "twm_lbc")


@dataclass
class LinearRecurrence:
    w_hh: torch.Tensor  # [N, N]
    w_uh: torch.Tensor  # [N, input]
    w_r: torch.Tensor  # [output, N]
    hidden_states: Callable[[torch.Tensor], torch.Tensor] | None  # inputs [B, T, in] -> h(1..T) [B, T, N]


def linearize(net: torch.nn.Module) -> LinearRecurrence:
    """The linear recurrence of ``net`` (one of :data:`LENS_FAMILIES`); a clear error for any other model."""
    from wavezoo.models.rnn import RecurrentBaseline
    from wavezoo.models.twm import LinearBoundary, WaveMemoryModel
    from wavezoo.models.wave_rnn import WaveRNN

    with torch.no_grad():
        if isinstance(net, RecurrentBaseline) and net.cell == "rnn" and net.rnn.num_layers == 1:
            rnn = net.rnn
            return LinearRecurrence(rnn.weight_hh_l0, rnn.weight_ih_l0, net.readout.weight, net.hidden_states)
        if isinstance(net, WaveRNN):
            return LinearRecurrence(net.recurrent_matrix(), net.input_map.weight, net.readout.weight, net.hidden_states)
        if isinstance(net, WaveMemoryModel) and isinstance(net.memory.boundary, LinearBoundary):
            return _twm_recurrence(net)
    raise ConfigError(
        f"the wave lens needs a recurrence it can linearise ({', '.join(LENS_FAMILIES)}; one-layer Elman RNNs); "
        f"got {type(net).__name__}{' (' + net.cell + ')' if hasattr(net, 'cell') else ''}"
    )


def _twm_recurrence(net) -> LinearRecurrence:
    from wavezoo.core.lbc_algebra import lbc_matrix

    phi, w_in, w_out = net.memory.boundary.phi, net.input_map.weight, net.readout.weight
    s, dim = net.memory.history, net.memory.dim
    if net.autoregressive:  # the boundary's value is read out and written back through the input map
        phi = torch.einsum("ab,bc,kcd->kad", w_in, w_out, phi)
        read = torch.linalg.pinv(w_in)
    else:
        read = w_out
    w_r = torch.zeros(w_out.shape[0], s * dim, dtype=phi.dtype)
    w_r[:, (s - 1) * dim :] = read
    w_uh = torch.zeros(s * dim, w_in.shape[1], dtype=phi.dtype)
    w_uh[(s - 1) * dim :] = w_in
    return LinearRecurrence(lbc_matrix(phi.detach()).to(phi.dtype), w_uh, w_r, None)
