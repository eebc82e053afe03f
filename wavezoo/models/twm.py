"""The Traveling-Wave Memory (TWM) of Karuvally, Sejnowski & Siegelmann (ICML 2024), exact and learnable.

Substrate h(t) in R^{s x d}: site i = 1..s (``h[:, i - 1]``; i = 1 is the oldest, at the open end, i = s is the
start boundary), wave j = 1..d. One step, implemented once in :func:`wavezoo.core.waves.wave_step`:

    h[i, j](t) = h[i + 1, j](t - 1)     for 1 <= i < s   (every wave moves one site towards the open end; h[1] leaves)
    h[s, :](t) = new(t)                                  (the start boundary)

The interior shift is an index operation (:func:`wavezoo.core.waves.shift_in`), never a dense (sd x sd) matmul.
The start boundary computes from the whole substrate, f(h(t - 1)), and takes the input u(t) according to an
explicit input rule:

    autonomous step:              new(t) = f(h(t - 1))
    input step, input_mode="add":     new(t) = f(h(t - 1)) + u(t)
    input step, input_mode="replace": new(t) = u(t)

``input_steps = None`` makes every step an input step (a driven system, e.g. any sequence benchmark; needs
``"add"``, since "replace" would never use f); ``input_steps = k`` makes steps 1..k of every sequence input steps
and the following ones autonomous (the paper's protocol for history-dependent systems: ``"replace"`` with
k = s writes the initial window x(1..s) into the substrate, then the TWM evolves on its own; inputs after step k
are not read). The readout is the start column, y(t) = h[s](t). Boundary conditions f:

* LBC (:class:`LinearBoundary`): f(h) = sum_i Phi_i h[i]. The whole update is then linear,
  H(t) = M H(t-1) + e_s (x) u(t) in "add" mode, M = S_s (x) I_d + e_s (x) [Phi_1 ... Phi_s] (shift + rank <= d),
  see :mod:`wavezoo.core.lbc_algebra`.
* SBC (:class:`AttentionBoundary`): f(h) = softmax attention over the s columns with the newest column as query,
  which makes the TWM the autoregressive loop of an attention-only transformer (:mod:`wavezoo.models.sbc`).
* any module or callable mapping ``[batch, s, d] -> [batch, d]`` (e.g. an MLP for a nonlinear HDS).

Theorem 3.1: started from h(0) = (x(1), ..., x(s)), the autonomous TWM with boundary f reproduces the HDS
x(t+1) = f(x(t-s+1), ..., x(t)), h[s](t) = x(s + t) (:func:`wavezoo.core.waves.wave_rollout`,
:mod:`wavezoo.constructions`).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from wavezoo.core.linear_boundary import lag_sum, solve
from wavezoo.core.waves import IsInput, wave_rollout, wave_step, wave_windows, write_boundary
from wavezoo.errors import ConfigError, check_choice, check_positive_int
from wavezoo.models.base import SequenceModel, State
from wavezoo.registry import register_model

INPUT_MODES = ("add", "replace")


def check_input_rule(input_mode: str, input_steps: int | None) -> tuple[str, int | None]:
    """Validate the input rule (``input_mode``, ``input_steps``) and return it."""
    input_mode = check_choice("input_mode", input_mode, INPUT_MODES)
    if input_steps is not None:
        input_steps = check_positive_int("input_steps", input_steps)
    elif input_mode == "replace":
        raise ConfigError(
            "input_mode='replace' needs input_steps (the number of input steps before the autonomous evolution): "
            "with every step an input the boundary would never act; use input_mode='add' for driven sequences"
        )
    return input_mode, input_steps


class LinearBoundary(nn.Module):
    """LBC: f(h) = sum_{i=1}^{s} Phi_i h[i] with ``phi[i - 1] = Phi_i`` of shape ``[s, d, d]`` (Phi_s: newest)."""

    def __init__(self, history: int, dim: int, phi: torch.Tensor | None = None, learnable: bool = True) -> None:
        super().__init__()
        check_positive_int("history", history)
        check_positive_int("dim", dim)
        if phi is None:
            phi = torch.randn(history, dim, dim) / math.sqrt(history * dim)
        elif tuple(phi.shape) != (history, dim, dim):
            raise ConfigError(f"phi has shape {tuple(phi.shape)}; expected [s, d, d] = {[history, dim, dim]}")
        phi = phi.clone()
        if learnable:
            self.phi = nn.Parameter(phi)
        else:
            self.register_buffer("phi", phi)

    @classmethod
    def from_lag_operators(cls, lag_phi: torch.Tensor, learnable: bool = False) -> LinearBoundary:
        """From VAR lag operators (``lag_phi[k - 1]`` multiplies x(t+1-k)): Phi_i = phi_{s+1-i}."""
        history, dim, _ = lag_phi.shape
        return cls(history, dim, lag_phi.flip(0), learnable=learnable)

    def lag_operators(self) -> torch.Tensor:
        """A_k = Phi_{s+1-k} ``[s, d, d]`` (A_k weighs the column k steps old): the lag order of the one LBC
        solver, :mod:`wavezoo.core.linear_boundary`."""
        return self.phi.flip(0)

    def forward(self, substrate: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ijk,bik->bj", self.phi, substrate)


class AttentionBoundary(nn.Module):
    """SBC: multi-head softmax attention over the s columns, the newest column h[s] as the query.

        f(h) = W_o concat_heads( sum_i softmax_i( q^T k_i * scale ) v_i ),
        q = W_q (h[s] + e_s),  k_i = W_k (h[i] + e_i),  v_i = W_v h[i].

    With one head, no output map, no positions and ``scale = 1`` this is the paper's
    h[s](t+1) = sum_i softmax_i(h[i]^T K^T Q h[s]) V h[i]. ``positions=True`` adds a learned embedding e_i of the
    site index to queries and keys (softmax attention is otherwise blind to where a column sits in the wave, and
    the query needs e_s to prefer a column whatever its content).

    This is the one attention boundary of wavezoo: :meth:`forward` (one query over a substrate: the TWM
    boundary of ``twm_sbc``), :meth:`attend_sequence` (every token of a sequence over a sliding window of s tokens:
    a layer of the attention-only transformer of :mod:`wavezoo.models.sbc`) and the ring buffer of cached keys and
    values (:class:`~wavezoo.models.sbc.RingBufferGenerator`) all compute through :meth:`attend`.
    """

    def __init__(
        self,
        history: int,
        dim: int,
        num_heads: int = 1,
        head_dim: int | None = None,
        positions: bool = True,
        output_map: bool | None = None,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        self.history = check_positive_int("history", history)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.head_dim = check_positive_int("head_dim", head_dim or max(1, dim // num_heads))
        inner = self.num_heads * self.head_dim
        self.query = nn.Linear(dim, inner, bias=False)
        self.key = nn.Linear(dim, inner, bias=False)
        self.value = nn.Linear(dim, inner, bias=False)
        use_output = output_map if output_map is not None else (num_heads > 1 or inner != dim)
        if not use_output and inner != dim:
            raise ConfigError(f"output_map=False needs num_heads * head_dim == dim, got {inner} != {dim}")
        self.output = nn.Linear(inner, dim, bias=False) if use_output else nn.Identity()
        self.positions = nn.Parameter(torch.randn(history, dim) / math.sqrt(dim)) if positions else None
        self.scale = 1 / math.sqrt(self.head_dim) if scale is None else float(scale)

    def heads(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, T, H * dh] -> [B, H, T, dh]``."""
        return z.reshape(z.shape[0], z.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The content keys W_k h[i] and values W_v h[i] of ``tokens [B, T, d]``, each ``[B, H, T, dh]``."""
        return self.heads(self.key(tokens)), self.heads(self.value(tokens))

    def attend(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        slots: torch.Tensor,
        allowed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention of ``queries [B, Tq, d]`` over tokens given by their :meth:`keys_values` ``[B, H, Tk, dh]``.

        ``slots [Tq, Tk]`` is the substrate site (0 = oldest .. s-1 = newest) that token k occupies as seen from
        query q (it selects the position term W_k e_slot); ``allowed [Tq, Tk]`` masks the pairs outside the window.
        """
        if self.positions is not None:
            queries = queries + self.positions[-1]  # queries always sit in the newest site
        q = self.heads(self.query(queries))
        scores = q @ keys.transpose(-1, -2)
        if self.positions is not None:  # k_i + W_k e_slot, the slot of each key as seen from each query
            by_slot = q @ self.heads(self.key(self.positions)[None]).transpose(-1, -2)  # [B, H, Tq, s]
            scores = scores + by_slot.gather(-1, slots.expand(*by_slot.shape[:2], *slots.shape))
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        mixed = (scores * self.scale).softmax(-1) @ values
        return self.output(mixed.transpose(1, 2).reshape(queries.shape[0], queries.shape[1], -1))

    def as_attention(self) -> AttentionBoundary:
        """This boundary as one attention layer (what the fused SBC scan runs)."""
        return self

    def forward(self, substrate: torch.Tensor) -> torch.Tensor:
        columns = substrate.shape[1]
        slots = torch.arange(self.history - columns, self.history, device=substrate.device)[None]
        return self.attend(substrate[:, -1:], *self.keys_values(substrate), slots)[:, 0]

    def attend_windows(self, columns: torch.Tensor) -> torch.Tensor:
        """f(h(t)) for every full window h(t) = (columns[t], ..., columns[t+s-1]) of ``columns [B, T+s-1, d]`` at
        once, ``[B, T, d]``: each window's newest column queries its s columns (slot i = column t+i). The keys and
        values are computed once per column and the windows are strided views of them (``Tensor.unfold``), so no
        column is mapped s times; equal to :meth:`forward` on each window."""
        history = self.history
        newest = columns[:, history - 1 :]
        q = self.heads(self.query(newest if self.positions is None else newest + self.positions[-1]))  # [B, H, T, dh]
        keys, values = self.keys_values(columns)  # [B, H, T+s-1, dh]
        scores = torch.einsum("bhtd,bhtds->bhts", q, keys.unfold(2, history, 1))
        if self.positions is not None:  # every window is full: column t+i sits in slot i
            scores = scores + q @ self.heads(self.key(self.positions)[None]).transpose(-1, -2)
        mixed = torch.einsum("bhts,bhtds->bhtd", (scores * self.scale).softmax(-1), values.unfold(2, history, 1))
        return self.output(mixed.transpose(1, 2).reshape(newest.shape[0], newest.shape[1], -1))

    def attend_sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """Causal sliding-window self-attention: token t attends to tokens t-s+1..t, token t-l in slot s-1-l.

        One call of ``torch.nn.functional.scaled_dot_product_attention`` over the whole sequence, with the window
        and the slot term q^T W_k e_slot as its additive mask (the same scores as :meth:`attend`)."""
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        lag = steps[:, None] - steps[None, :]
        allowed = (lag >= 0) & (lag < self.history)
        queries = tokens if self.positions is None else tokens + self.positions[-1]
        q = self.heads(self.query(queries))
        keys, values = self.keys_values(tokens)
        bias = torch.zeros(lag.shape, dtype=q.dtype, device=q.device)
        if self.positions is not None:
            slots = (self.history - 1 - lag).clamp(0, self.history - 1)
            by_slot = q @ self.heads(self.key(self.positions)[None]).transpose(-1, -2)  # [B, H, T, s]
            bias = by_slot.gather(-1, slots.expand(*by_slot.shape[:2], *slots.shape)) * self.scale
        bias = bias.masked_fill(~allowed, float("-inf"))
        mixed = F.scaled_dot_product_attention(q, keys, values, attn_mask=bias, scale=self.scale)
        return self.output(mixed.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[1], -1))


class TravelingWaveMemory(nn.Module):
    """The exact TWM: an s x d substrate, the shift interior, an open end and a boundary ``f``.

    ``forward(u [B, T, d]) -> y [B, T, d]`` runs from h(0) = 0 (or ``initial``), writing u(t) at the start
    boundary by the input rule (``input_mode``, ``input_steps``; see the module docstring) and reading
    y(t) = h[s](t). :meth:`rollout` evolves a given substrate autonomously (Theorem 3.1: with
    h(0) = (x(1), ..., x(s)) it reproduces the HDS x(t+1) = f(x(t-s+1), ..., x(t))).
    """

    def __init__(
        self,
        history: int,
        dim: int,
        boundary: nn.Module,
        input_mode: str = "add",
        input_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.history = check_positive_int("history", history)
        self.dim = check_positive_int("dim", dim)
        self.boundary = boundary
        self.input_mode, self.input_steps = check_input_rule(input_mode, input_steps)

    def initial_substrate(self, batch: int, **kwargs) -> torch.Tensor:
        """h(0) = 0, ``[batch, s, d]`` (``kwargs``: device, dtype)."""
        return torch.zeros(batch, self.history, self.dim, **kwargs)

    def is_input(self, t: int) -> bool:
        """Whether step t (1-based) is an input step."""
        return self.input_steps is None or t <= self.input_steps

    def evolve(self, substrate: torch.Tensor, drive: torch.Tensor | None = None, is_input: IsInput = True):
        """h(t-1) -> h(t); ``drive [B, d]`` is the input u(t) written at the start boundary (None: autonomous)."""
        return wave_step(substrate, self.boundary, drive, is_input, self.input_mode)[0]

    def rollout(self, substrate: torch.Tensor, steps: int) -> torch.Tensor:
        """Autonomous evolution: the boundary columns h[s](1..steps), ``[B, steps, d]``."""
        return wave_rollout(self.boundary, substrate, steps)

    def run(self, drive: torch.Tensor, initial: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Drive with ``drive [B, T, d]``; returns the readout ``[B, T, d]`` and the final substrate. Step by step on
        purpose: this is the exact TWM of Theorem 3.1 (fixed boundaries, no training), whose trajectory is checked
        bit for bit against the history-dependent system; the trainable LBC-TWM runs in parallel
        (:meth:`WaveMemoryModel.linear_scan`)."""
        substrate = initial
        if substrate is None:
            substrate = self.initial_substrate(drive.shape[0], device=drive.device, dtype=drive.dtype)
        out = []
        for t in range(drive.shape[1]):
            substrate = self.evolve(substrate, drive[:, t], self.is_input(t + 1))
            out.append(substrate[:, -1])
        return torch.stack(out, dim=1), substrate

    def forward(self, drive: torch.Tensor, initial: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(drive, initial)[0]

    def extra_repr(self) -> str:
        return f"history={self.history}, dim={self.dim}, input_mode={self.input_mode!r}, input_steps={self.input_steps}"


def wave_dim(hidden_size: int, history: int) -> int:
    """d = hidden_size / s: the number of waves when the substrate holds ``hidden_size`` = s * d units."""
    check_positive_int("history", history)
    if hidden_size % history:
        raise ConfigError(f"history={history} must divide hidden_size={hidden_size} (hidden_size = s * d)")
    return hidden_size // history


class WaveMemoryModel(SequenceModel):
    """A trainable TWM: input map W_in, traveling-wave substrate h[i, j] with a learned boundary f, readout W_out.

    Each step t, with c(t) = f(h(t-1)) and the input rule of the module docstring (``input_mode``,
    ``input_steps``; an input step writes u(t) = W_in x(t)):

    * ``autoregressive=False`` (the columns are hidden states):

          h[s](t) = c(t) + W_in x(t)   (input step, "add")  |  W_in x(t)  (input step, "replace")  |  c(t)  (else)
          y(t)    = W_out h[s](t)                                              (readout of the start column)

    * ``autoregressive=True`` (every column holds an embedded token, as in a transformer's context window; needs
      input_size == output_size): the boundary's value is read out as the predicted token y^(t) = W_out c(t) and
      the token at step t is

          v(t)    = y^(t) + x(t)   (input step, "add")  |  x(t)  (input step, "replace")  |  y^(t)  (else)
          h[s](t) = W_in v(t),   y(t) = v(t)

      so the generated outputs are fed back as tokens (W_in W_out c(t) on autonomous steps).

    ``teacher_forcing=True`` (autoregressive only) trains as a transformer does: :meth:`training_forward` writes
    the target token in place of the generated one, v(t) = y*(t) (the given x(t) on "replace" input steps), so every
    column is known in advance and c(t) = f(h(t-1)) for all t is ONE call of the boundary on the windows
    h(0..T-1) (:func:`wavezoo.core.waves.wave_windows`): exact against the stepped teacher-forced loop, no time loop,
    for any boundary. ``forward``, ``scan`` and ``step`` (evaluation, generation) still feed back the model's own
    outputs: the same parameters, the same generated sequence as a model trained through the loop.

    With the default input rule (``"add"``, ``input_steps=None``: every step is an input) the TWM is a driven
    recurrence, y(t) depends on x(t) and on x(t-1), ..., through the substrate, and every parameter learns on
    dense inputs. The paper's protocol is ``input_mode="replace"`` with ``input_steps=s``.

    Streaming state: ``(substrate [B, s, d], steps [B] long)``, the substrate h(t) and the number of steps taken
    (which decides whether the next step is an input step). ``hidden_size`` = s * d state units (s = ``history``
    columns of d waves); the boundary is any module ``[B, s, d] -> [B, d]`` (LBC, SBC, a transformer).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int,
        boundary: nn.Module,
        history: int,
        input_mode: str = "add",
        autoregressive: bool = False,
        input_steps: int | None = None,
        teacher_forcing: bool = False,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        dim = wave_dim(hidden_size, history)
        if autoregressive and input_size != output_size:
            raise ConfigError(
                f"autoregressive=True feeds outputs back as inputs: needs input_size == output_size, "
                f"got {input_size} and {output_size}"
            )
        if teacher_forcing and not autoregressive:
            raise ConfigError(
                "teacher_forcing=True writes the targets in place of the generated tokens: needs autoregressive=True "
                "(without it the columns are hidden states, which have no targets)"
            )
        self.autoregressive = bool(autoregressive)
        self.teacher_forcing = bool(teacher_forcing)
        self.input_map = nn.Linear(input_size, dim, bias=False)
        self.memory = TravelingWaveMemory(history, dim, boundary, input_mode, input_steps)
        self.readout = nn.Linear(dim, output_size, bias=False)
        with torch.no_grad():  # a matched write/read pair: W_in orthogonal, W_out = W_in^T (restricted to outputs)
            nn.init.orthogonal_(self.input_map.weight)
            pair = self.input_map.weight.T[:output_size] if output_size <= input_size else None
            if pair is not None and output_size <= dim:
                self.readout.weight.copy_(pair)

    @property
    def input_mode(self) -> str:
        return self.memory.input_mode

    @property
    def input_steps(self) -> int | None:
        return self.memory.input_steps

    def feed_back(self, computed: torch.Tensor) -> torch.Tensor:
        """The generated column of the autoregressive model: the predicted token re-embedded, W_in W_out c(t)."""
        return self.input_map(self.readout(computed))

    def advance(
        self, substrate: torch.Tensor, x_t: torch.Tensor, drive: torch.Tensor, is_input: IsInput
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the model from h(t-1): (y(t), h(t)); ``drive`` = W_in x(t)."""
        feedback = self.feed_back if self.autoregressive else None
        substrate, computed = wave_step(substrate, self.memory.boundary, drive, is_input, self.input_mode, feedback)
        if self.autoregressive:
            return write_boundary(self.readout(computed), x_t, is_input, self.input_mode), substrate
        return self.readout(substrate[:, -1]), substrate

    def initial_state(self, batch_size: int, device=None, dtype=None) -> State:
        """(h(0) = 0 ``[batch, s, d]``, steps taken = 0 ``[batch]``)."""
        kwargs = self.state_kwargs(device, dtype)
        batch_size = check_positive_int("batch_size", batch_size)
        steps = torch.zeros(batch_size, dtype=torch.long, device=kwargs["device"])
        return self.memory.initial_substrate(batch_size, **kwargs), steps

    def forward_step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        substrate, steps = state
        is_input = True if self.input_steps is None else (steps < self.input_steps)[:, None]
        y_t, substrate = self.advance(substrate, x_t, self.input_map(x_t), is_input)
        return y_t, (substrate, steps + 1)

    def scan_sequence(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """The LBC in parallel (:meth:`linear_scan`); the SBC (one attention layer: ``twm_sbc``, a one-layer
        ``sbc_transformer`` without residual) on CUDA by the fused Triton scan
        (:mod:`wavezoo.core.sbc_scan_triton`, ``WAVEZOO_SBC_SCAN``); on the CPU, and for any other (nonlinear)
        boundary, step by step (:meth:`advance`): the reference of the fused scan, and the only form of a boundary
        whose new column depends nonlinearly on the last."""
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        if isinstance(self.memory.boundary, LinearBoundary):
            return self.linear_scan(x, state)
        attention = getattr(self.memory.boundary, "as_attention", lambda: None)()  # one attention layer, or None
        if type(attention) is AttentionBoundary and (x.is_cuda or os.environ.get("WAVEZOO_SBC_SCAN")):
            from wavezoo.core.sbc_scan_triton import sbc_backend, triton_sbc_scan  # (imports triton)

            if sbc_backend(x) == "triton":  # the fused scan: automatic on CUDA (WAVEZOO_SBC_SCAN)
                return triton_sbc_scan(self, x, state, attention)
        substrate, steps = state
        drive, outputs = self.input_map(x), []
        for t in range(x.shape[1]):
            is_input = True if self.input_steps is None else (steps + t < self.input_steps)[:, None]
            y_t, substrate = self.advance(substrate, x[:, t], drive[:, t], is_input)
            outputs.append(y_t)
        return torch.stack(outputs, dim=1), (substrate, steps + x.shape[1])

    def training_forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The outputs the training loss reads: :meth:`forward`, or with ``teacher_forcing`` the teacher-forced
        outputs (:meth:`teacher_forced_sequence`) from the initial state."""
        if not self.teacher_forcing:
            return self(x)
        x = self.prepare_input(x)
        if not isinstance(targets, torch.Tensor) or targets.shape != (*x.shape[:2], self.output_size):
            shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise ConfigError(
                f"teacher forcing reads the targets as the tokens: expected targets [batch, time, "
                f"output_size={self.output_size}] matching the input, got {shape}; for targets that are not tokens "
                "build the model without teacher forcing (sbc_transformer: form='recurrent')"
            )
        return self.teacher_forced_sequence(x, targets.to(x.dtype))

    def teacher_forced_sequence(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Teacher forcing in parallel: tokens v(t) = y*(t) ("add"), m(t) x(t) + (1 - m(t)) y*(t) ("replace"; m = 1
        on input steps), columns w(t) = W_in v(t) after h(0) = 0, c(t) = f(h(t-1)) for every t in one boundary call
        on the windows, y^ = W_out c and y = y^ + m x ("add") or m x + (1 - m) y^ ("replace")."""
        batch, length = x.shape[:2]
        substrate, _ = self.initial_state(batch, device=x.device, dtype=x.dtype)
        mask = self.input_mask(torch.zeros(batch, dtype=torch.long, device=x.device), length, x.dtype)
        tokens = targets if self.input_mode == "add" else mask * x + (1 - mask) * targets
        columns = torch.cat([substrate, self.input_map(tokens)], dim=1)
        attention = getattr(self.memory.boundary, "as_attention", lambda: None)()  # one attention layer, or None
        if type(attention) is AttentionBoundary:  # keys and values once per column, not once per window
            computed = attention.attend_windows(columns[:, : self.memory.history + length - 1])
        else:
            windows = wave_windows(columns, self.memory.history, length).flatten(0, 1)  # h(0 .. T-1), [B * T, s, d]
            computed = self.memory.boundary(windows).reshape(batch, length, -1)
        return self.emit(self.readout(computed), x, mask)

    def input_mask(self, steps: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor | None:
        """m(t) ``[B, length, 1]``: 1 on input steps (steps[b] + t < input_steps), None when every step is one."""
        if self.input_steps is None:
            return None
        time = torch.arange(length, device=steps.device)
        return (steps[:, None] + time[None] < self.input_steps)[..., None].to(dtype)

    def emit(self, predicted: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The autoregressive output v(t) from the predicted token y^(t) and the input: y^ + m x ("add"),
        m x + (1 - m) y^ ("replace"); ``mask`` None: every step an input."""
        if self.input_mode == "add":
            return predicted + (x if mask is None else mask * x)
        return mask * x + (1 - mask) * predicted

    def linear_scan(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The LBC-TWM over a whole sequence without a time loop, equal to :meth:`forward_step` step by step.

        The start column w(t) = h[s](t) is a VAR(s), w(t) = sum_k G A_k w(t-k) + e(t), with A_k = Phi_{s+1-k}, G = I
        (or W_in W_out when ``autoregressive``) and m(t) = 1 on input steps (a prefix of the sequence):
        e(t) = m(t) u(t) ("add"), e(t) = m(t) (u(t) - c'(t)) ("replace", c'(t) the lag sum of the known written
        values, so that w(t) = u(t) exactly on input steps). :func:`wavezoo.core.linear_boundary.solve` gives w;
        y = W_out w, or (autoregressive) y^ = W_out c with c(t) = sum_k A_k w(t-k) and y = y^ + m x ("add"),
        m x + (1 - m) y^ ("replace"). The solve runs in the model's dtype: its triangular solves are forward
        substitutions, the recursion itself chunk by chunk, so each w(t) rounds as the stepped form does (the FFT
        series inversion it replaced erred relative to the largest value and needed float64)."""
        substrate, steps = state
        length, dtype = x.shape[1], x.dtype
        work = dtype
        lags = self.memory.boundary.lag_operators().to(work)
        generate = (self.input_map.weight @ self.readout.weight).to(work) if self.autoregressive else None
        lags_generated = lags if generate is None else generate @ lags  # G A_k
        drive = self.input_map(x).to(work)  # u(t) = W_in x(t), [B, L, d]
        substrate = substrate.to(work)
        mask = self.input_mask(steps, length, work)  # [B, L, 1] or None
        if self.input_mode == "add":
            forcing = drive if mask is None else mask * drive
        else:  # replace: on input steps w(t) = u(t), whose lag sums are known in advance
            known = lag_sum(lags_generated, torch.cat([substrate, drive], dim=1), length)
            forcing = mask * (drive - known)
        written = solve(lags_generated, forcing, substrate)  # w(1 .. L)
        columns = torch.cat([substrate, written], dim=1)
        final = (columns[:, -self.memory.history :].to(dtype), steps + length)
        if not self.autoregressive:
            return self.readout(written.to(dtype)), final
        computed = lag_sum(lags, columns, length)  # c(t) = f(h(t-1))
        predicted = computed @ self.readout.weight.to(work).T
        return self.emit(predicted, x, mask).to(dtype), final


@register_model
def twm_lbc(
    input_size: int,
    output_size: int,
    hidden_size: int = 64,
    history: int = 8,
    input_mode: str = "add",
    autoregressive: bool = False,
    input_steps: int | None = None,
) -> WaveMemoryModel:
    """TWM with a learned linear boundary f(h) = sum_i Phi_i h[i] (default s = 8 columns of d = hidden_size / 8
    waves). Input rule: ``input_mode`` "add" (default) or "replace", ``input_steps`` None (default: every step is
    an input) or k (steps 1..k are inputs, then autonomous); the paper's protocol is "replace" with k = s."""
    boundary = LinearBoundary(history, wave_dim(hidden_size, history))
    return WaveMemoryModel(
        input_size, output_size, hidden_size, boundary, history, input_mode, autoregressive, input_steps
    )


@register_model
def twm_sbc(
    input_size: int,
    output_size: int,
    hidden_size: int = 64,
    history: int = 8,
    num_heads: int = 1,
    positions: bool = True,
    input_mode: str = "add",
    autoregressive: bool = False,
    input_steps: int | None = None,
) -> WaveMemoryModel:
    """TWM with a learned self-attention boundary over its s columns (query = newest column); sizes and input
    rule as :func:`twm_lbc`."""
    boundary = AttentionBoundary(history, wave_dim(hidden_size, history), num_heads, positions=positions)
    return WaveMemoryModel(
        input_size, output_size, hidden_size, boundary, history, input_mode, autoregressive, input_steps
    )
