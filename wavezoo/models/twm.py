"""The Traveling-Wave Memory (TWM) of Karuvally, Sejnowski & Siegelmann (ICML 2024), exact and learnable.

Substrate h(t) in R^{s x d}: column i = 1..s (oldest first, ``h[:, i - 1]``), wave j = 1..d. Each step

    h_i(t+1) = h_{i+1}(t)        for 1 <= i < s   (every wave moves one site towards the open end; h_1 leaves)
    h_s(t+1) = f(h(t))                            (the start boundary computes from the whole substrate)

and the readout is the start column, y(t) = h_s(t). The shift is an index operation, never a dense (sd x sd)
matmul. Boundary conditions f:

* LBC (:class:`LinearBoundary`): f(h) = sum_i Phi_i h_i. The whole update is then linear, H(t+1) = M H(t) with
  M = S_s (x) I_d + e_s (x) [Phi_1 ... Phi_s] (shift + rank <= d), see :mod:`wavezoo.lbc`.
* SBC (:class:`AttentionBoundary`): f(h) = softmax attention over the s columns with the newest column as query,
  which makes the TWM the autoregressive loop of an attention-only transformer (:mod:`wavezoo.models.sbc`).
* any ``nn.Module`` mapping ``[batch, s, d] -> [batch, d]`` (e.g. an MLP for a nonlinear HDS).

Inputs are written at the start boundary: ``input_mode="replace"`` writes u(t) itself whenever an input is
present (any nonzero entry) and computes f otherwise (the paper's protocol: s input steps, then autonomous
evolution); ``input_mode="add"`` writes f(h) + u(t) at every step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wavezoo.errors import ConfigError, check_choice, check_positive_int
from wavezoo.models.base import SequenceModel
from wavezoo.registry import register_model

INPUT_MODES = ("replace", "add")


def shift_in(substrate: torch.Tensor, new_column: torch.Tensor) -> torch.Tensor:
    """One wave step: drop the oldest column h_1, move every column one site down, write ``new_column`` as h_s."""
    return torch.cat([substrate[:, 1:], new_column.unsqueeze(1)], dim=1)


def write_boundary(
    computed: torch.Tensor, drive: torch.Tensor | None, present: torch.Tensor | None, input_mode: str
) -> torch.Tensor:
    """The new start column from the boundary value and the input: ``"add"`` gives computed + drive;
    ``"replace"`` gives drive where an input is ``present`` ([B, 1] bool) and computed elsewhere."""
    if drive is None:
        return computed
    if input_mode == "add":
        return computed + drive
    return torch.where(present, drive, computed)


class LinearBoundary(nn.Module):
    """LBC: f(h) = sum_{i=1}^{s} Phi_i h_i with ``phi[i - 1] = Phi_i`` of shape ``[s, d, d]`` (Phi_s: newest)."""

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

    def forward(self, substrate: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ijk,bik->bj", self.phi, substrate)


class AttentionBoundary(nn.Module):
    """SBC: multi-head softmax attention over the s columns, the newest column h_s as the query.

        f(h) = W_o concat_heads( sum_i softmax_i( q^T k_i * scale ) v_i ),
        q = W_q (h_s + e_s),  k_i = W_k (h_i + e_i),  v_i = W_v h_i.

    With one head, no output map, no positions and ``scale = 1`` this is the paper's
    h_s(t+1) = sum_i softmax_i(h_i^T K^T Q h_s) V h_i. ``positions=True`` adds a learned embedding e_i of the
    column index to queries and keys (softmax attention is otherwise blind to where a column sits in the wave, and
    the query needs e_s to prefer a column whatever its content). The same layer attends over
    a whole sequence with a sliding window of s tokens (:meth:`attend_sequence`), which is how the attention-only
    transformer of :mod:`wavezoo.models.sbc` uses it.
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

    def _heads(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, T, H * dh] -> [B, H, T, dh]``."""
        return z.reshape(z.shape[0], z.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def attend(
        self, queries: torch.Tensor, tokens: torch.Tensor, slots: torch.Tensor, allowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attention of ``queries [B, Tq, d]`` over ``tokens [B, Tk, d]``.

        ``slots [Tq, Tk]`` is the substrate column (0 = oldest .. s-1 = newest) that token k occupies as seen from
        query q (it selects the position offset p); ``allowed [Tq, Tk]`` masks the pairs outside the window.
        """
        if self.positions is not None:
            queries = queries + self.positions[-1]  # queries always sit in the newest slot
        q, k, v = self._heads(self.query(queries)), self._heads(self.key(tokens)), self._heads(self.value(tokens))
        scores = q @ k.transpose(-1, -2)
        if self.positions is not None:  # k_i + W_k e_slot, the slot of each key as seen from each query
            by_slot = q @ self._heads(self.key(self.positions)[None]).transpose(-1, -2)  # [B, H, Tq, s]
            scores = scores + by_slot.gather(-1, slots.expand(*by_slot.shape[:2], *slots.shape))
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        mixed = (scores * self.scale).softmax(-1) @ v
        return self.output(mixed.transpose(1, 2).reshape(queries.shape[0], queries.shape[1], -1))

    def forward(self, substrate: torch.Tensor) -> torch.Tensor:
        columns = substrate.shape[1]
        slots = torch.arange(self.history - columns, self.history, device=substrate.device)[None]
        return self.attend(substrate[:, -1:], substrate, slots)[:, 0]

    def attend_sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """Causal sliding-window self-attention: token t attends to tokens t-s+1..t, token t-l in slot s-1-l."""
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        lag = steps[:, None] - steps[None, :]
        allowed = (lag >= 0) & (lag < self.history)
        slots = (self.history - 1 - lag).clamp(0, self.history - 1)
        return self.attend(tokens, tokens, slots, allowed)


class TravelingWaveMemory(nn.Module):
    """The exact TWM: an s x d substrate, the shift interior, an open end and a boundary ``f``.

    ``forward(u [B, T, d]) -> y [B, T, d]`` runs from ``h(0) = 0`` (or ``initial``), writing inputs at the start
    boundary (``input_mode``) and reading y(t) = h_s(t). :meth:`rollout` evolves a given substrate autonomously
    (Theorem 3.1: with h(0) = (x(1), ..., x(s)) it reproduces the HDS x(t+1) = f(x(t), ..., x(t-s+1))).
    """

    def __init__(self, history: int, dim: int, boundary: nn.Module, input_mode: str = "replace") -> None:
        super().__init__()
        self.history = check_positive_int("history", history)
        self.dim = check_positive_int("dim", dim)
        self.boundary = boundary
        self.input_mode = check_choice("input_mode", input_mode, INPUT_MODES)

    def initial_substrate(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, self.history, self.dim)

    def step(self, substrate: torch.Tensor, drive: torch.Tensor | None = None) -> torch.Tensor:
        """h(t) -> h(t+1); ``drive [B, d]`` is the input written at the start boundary (None: autonomous)."""
        present = None if drive is None else drive.ne(0).any(-1, keepdim=True)
        return shift_in(substrate, write_boundary(self.boundary(substrate), drive, present, self.input_mode))

    def rollout(self, substrate: torch.Tensor, steps: int) -> torch.Tensor:
        """Autonomous evolution: the boundary columns h_s(1..steps), ``[B, steps, d]``."""
        check_positive_int("steps", steps)
        out = []
        for _ in range(steps):
            substrate = self.step(substrate)
            out.append(substrate[:, -1])
        return torch.stack(out, dim=1)

    def run(self, drive: torch.Tensor, initial: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Drive with ``drive [B, T, d]``; returns the readout ``[B, T, d]`` and the final substrate."""
        substrate = self.initial_substrate(drive.shape[0], drive) if initial is None else initial
        out = []
        for t in range(drive.shape[1]):
            substrate = self.step(substrate, drive[:, t])
            out.append(substrate[:, -1])
        return torch.stack(out, dim=1), substrate

    def forward(self, drive: torch.Tensor, initial: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(drive, initial)[0]


def wave_dim(hidden_size: int, history: int) -> int:
    """d = hidden_size / s: the number of waves when the substrate holds ``hidden_size`` = s * d units."""
    check_positive_int("history", history)
    if hidden_size % history:
        raise ConfigError(f"history={history} must divide hidden_size={hidden_size} (hidden_size = s * d)")
    return hidden_size // history


class WaveMemoryModel(SequenceModel):
    """A trainable TWM: input map, traveling-wave substrate with a learned boundary, linear readout.

        z(t) = f(h(t-1)),   y(t) = W_out z(t),
        h(t) = shift-in(h(t-1), new),   new = W_in u(t) if an input is present, else the generated column

    The generated column is z(t) itself, or with ``autoregressive=True`` the generated output fed back as a token,
    W_in y(t) (then every column holds an embedded token, as in a transformer's context window; needs
    input_size == output_size). ``input_mode="add"`` writes generated + W_in u(t) at every step instead.
    ``hidden_size`` = s * d state units (s = ``history`` columns of d waves); the boundary is any module
    ``[B, s, d] -> [B, d]`` (LBC, SBC, a transformer).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int,
        boundary: nn.Module,
        history: int,
        input_mode: str = "replace",
        autoregressive: bool = False,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        dim = wave_dim(hidden_size, history)
        if autoregressive and input_size != output_size:
            raise ConfigError(
                f"autoregressive=True feeds outputs back as inputs: needs input_size == output_size, "
                f"got {input_size} and {output_size}"
            )
        self.autoregressive = autoregressive
        self.input_map = nn.Linear(input_size, dim, bias=False)
        self.memory = TravelingWaveMemory(history, dim, boundary, input_mode)
        self.readout = nn.Linear(dim, output_size, bias=False)
        with torch.no_grad():  # a matched write/read pair: W_in orthogonal, W_out = W_in^T (restricted to outputs)
            nn.init.orthogonal_(self.input_map.weight)
            pair = self.input_map.weight.T[:output_size] if output_size <= input_size else None
            if pair is not None and output_size <= dim:
                self.readout.weight.copy_(pair)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        drive, present = self.input_map(x), x.ne(0).any(-1, keepdim=True)
        substrate = self.memory.initial_substrate(x.shape[0], drive)
        outputs = []
        for t in range(x.shape[1]):
            computed = self.memory.boundary(substrate)
            output = self.readout(computed)
            generated = self.input_map(output) if self.autoregressive else computed
            new = write_boundary(generated, drive[:, t], present[:, t], self.memory.input_mode)
            substrate = shift_in(substrate, new)
            outputs.append(output if self.autoregressive else self.readout(new))
        return torch.stack(outputs, dim=1)


@register_model
def twm_lbc(
    input_size: int,
    output_size: int,
    hidden_size: int = 64,
    history: int = 8,
    input_mode: str = "replace",
    autoregressive: bool = False,
) -> WaveMemoryModel:
    """TWM with a learned linear boundary f(h) = sum_i Phi_i h_i (default s = 8 columns of d = 8 waves)."""
    boundary = LinearBoundary(history, wave_dim(hidden_size, history))
    return WaveMemoryModel(input_size, output_size, hidden_size, boundary, history, input_mode, autoregressive)


@register_model
def twm_sbc(
    input_size: int,
    output_size: int,
    hidden_size: int = 64,
    history: int = 8,
    num_heads: int = 1,
    positions: bool = True,
    input_mode: str = "replace",
    autoregressive: bool = False,
) -> WaveMemoryModel:
    """TWM with a learned self-attention boundary over its s columns (query = newest column)."""
    boundary = AttentionBoundary(history, wave_dim(hidden_size, history), num_heads, positions=positions)
    return WaveMemoryModel(input_size, output_size, hidden_size, boundary, history, input_mode, autoregressive)
