"""Self-attention boundary condition (SBC) = the autoregressive loop of an attention-only transformer.

An attention-only transformer (no MLP, no normalisation) with L layers of sliding-window self-attention
(:class:`~wavezoo.models.twm.AttentionBoundary`, window s):

    z_0 = tokens,   z_l = [z_{l-1} +] SWA_l(z_{l-1}),   next token = z_L at the last position.

Generating with a context of the last s tokens is exactly the TWM with boundary f(h) = transformer(h)[last]: the
substrate is the context window (site i = the token s - i steps back from the newest), the interior shift is
the window sliding by one token (the oldest leaves through the open end), and the boundary computes the next
token. For one layer without residual this f is the paper's SBC, f(h) = sum_i softmax_i(q(h[s])^T k(h[i])) v(h[i]).
Conditions of the exact equivalence: the context window equals the substrate length s; positions are indexed by
the slot in the window (distance to the newest token), not by absolute time; queries come from the newest token;
with ``residual=True`` (or L > 1) the boundary is the whole stack evaluated at the last position.

The trainable model (:func:`sbc_transformer`) is this loop with inputs, a
:class:`~wavezoo.models.twm.WaveMemoryModel`: the token of step t is the generated one plus the embedded input
(``input_mode="add"``, every step an input by default) or, with ``input_mode="replace"`` and ``input_steps=k``,
the embedded input x(1..k) followed by generated tokens; the output y(t) is the token of step t, which depends on
x(t) and, through the attention over the window, on the earlier tokens. It trains teacher-forced by default (the
targets stand in for the generated tokens, every window at once; see :func:`sbc_transformer`'s ``form``).
"""

from __future__ import annotations

import torch
from torch import nn

from wavezoo.errors import ConfigError, check_choice, check_positive_int
from wavezoo.models.base import SequenceModel, State
from wavezoo.models.twm import AttentionBoundary, WaveMemoryModel, wave_dim
from wavezoo.registry import register_model

FORMS = ("auto", "teacher_forced", "recurrent")


class AttentionOnlyTransformer(nn.Module):
    """L layers of multi-head sliding-window self-attention over ``dim``-dimensional tokens, window ``window``."""

    def __init__(
        self,
        dim: int,
        window: int,
        num_layers: int = 1,
        num_heads: int = 1,
        head_dim: int | None = None,
        residual: bool = False,
        positions: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        self.window = check_positive_int("window", window)
        check_positive_int("num_layers", num_layers)
        self.residual = residual
        self.layers = nn.ModuleList(
            AttentionBoundary(window, dim, num_heads, head_dim, positions=positions, scale=scale)
            for _ in range(num_layers)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every position of the last layer, ``[B, T, dim]`` (causal, each token sees the last ``window``)."""
        z = tokens
        for layer in self.layers:
            mixed = layer.attend_sequence(z)
            z = z + mixed if self.residual else mixed
        return z

    def generate(self, prompt: torch.Tensor, steps: int, cache: bool = True) -> torch.Tensor:
        """Autoregressive generation from ``prompt [B, window, dim]`` with a context of the last ``window`` tokens;
        returns the ``steps`` generated tokens ``[B, steps, dim]``.

        ``cache=True`` (one layer without residual) keeps the keys and values of the context in a ring buffer of
        ``window`` slots, the TWM substrate itself: each token costs O(window * dim), flat in the generated
        length. ``cache=False`` re-runs the transformer on the whole window for every token (the reference).
        """
        check_positive_int("steps", steps)
        if prompt.dim() != 3 or prompt.shape[1] != self.window:
            raise ConfigError(f"prompt has shape {tuple(prompt.shape)}; expected [batch, window={self.window}, dim]")
        if cache and len(self.layers) == 1 and not self.residual:
            with torch.no_grad():  # inference only: the buffer is written in place
                return RingBufferGenerator(self.layers[0], prompt).generate(steps)
        tokens = prompt
        for _ in range(steps):
            nxt = self(tokens[:, -self.window :])[:, -1]
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        return tokens[:, prompt.shape[1] :]


class RingBufferGenerator:
    """Generation with one :class:`AttentionBoundary` layer over a ring buffer of ``s`` cached keys and values.

    Buffer entry j holds the token written ``(newest - j) mod s`` steps ago, i.e. it sits in substrate site
    (slot) s - 1 - ((newest - j) mod s); writing a token overwrites the oldest entry (the open end of the wave).
    The attention itself is :meth:`AttentionBoundary.attend`, the same computation as the TWM boundary.
    """

    def __init__(self, layer: AttentionBoundary, prompt: torch.Tensor) -> None:
        self.layer = layer
        self.window = layer.history
        self.keys, self.values = layer.keys_values(prompt)  # [B, H, s, dh], content part of the keys
        self.newest = self.window - 1
        self.last = prompt[:, -1]

    def next_token(self) -> torch.Tensor:
        """The next generated token ``[B, dim]`` (written into the buffer in place of the oldest entry)."""
        s = self.window
        entry = torch.arange(s, device=self.keys.device)
        slots = (s - 1 - (self.newest - entry) % s)[None]  # [1, s]: the site of each buffer entry
        token = self.layer.attend(self.last[:, None], self.keys, self.values, slots)[:, 0]
        self.newest = (self.newest + 1) % s  # overwrite the oldest entry
        key, value = self.layer.keys_values(token[:, None])
        self.keys[:, :, self.newest] = key[:, :, 0]
        self.values[:, :, self.newest] = value[:, :, 0]
        self.last = token
        return token

    def generate(self, steps: int) -> torch.Tensor:
        return torch.stack([self.next_token() for _ in range(steps)], dim=1)


class TransformerBoundary(nn.Module):
    """A boundary f(h) = transformer(h)[last position]: the next token from the context window h."""

    def __init__(self, transformer: AttentionOnlyTransformer) -> None:
        super().__init__()
        self.transformer = transformer

    def as_attention(self) -> AttentionBoundary | None:
        """The one attention layer this boundary is (one layer, no residual), else None."""
        if len(self.transformer.layers) == 1 and not self.transformer.residual:
            return self.transformer.layers[0]
        return None

    def forward(self, substrate: torch.Tensor) -> torch.Tensor:
        layer = self.as_attention()
        if layer is not None:
            return layer(substrate)  # only the newest position's query is needed
        return self.transformer(substrate)[:, -1]


class TeacherForcedSBC(SequenceModel):
    """``sbc_transformer(form="teacher_forced")`` when not autoregressive: an attention-only transformer over the
    inputs, trained as a transformer.

    Every token of the sequence is an embedded input, z_0(t) = W_in x(t) (the context window holds the given tokens,
    not generated ones: teacher forcing), the L layers of causal sliding-window attention (window s, slot positions)
    run over the whole sequence at once (:meth:`AttentionBoundary.attend_sequence`, one
    ``scaled_dot_product_attention`` per layer), and y(t) = W_out z_L(t), the prediction from the window ending at
    x(t). Streaming state: per layer, the window of its last <= s input tokens ``[batch, <= s, d]``; a step appends
    the new token and attends with the newest query (:meth:`AttentionBoundary.forward`, the TWM boundary), equal to
    the parallel form. Generation from a prompt is the ring buffer (:meth:`AttentionOnlyTransformer.generate`)."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int,
        history: int,
        num_layers: int = 1,
        num_heads: int = 2,
        residual: bool = False,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        dim = wave_dim(hidden_size, history)
        self.input_map = nn.Linear(input_size, dim, bias=False)
        self.transformer = AttentionOnlyTransformer(dim, history, num_layers, num_heads, residual=residual)
        self.readout = nn.Linear(dim, output_size, bias=False)
        with torch.no_grad():  # the matched write/read pair of WaveMemoryModel
            nn.init.orthogonal_(self.input_map.weight)
            if output_size <= input_size and output_size <= dim:
                self.readout.weight.copy_(self.input_map.weight.T[:output_size])

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.transformer(self.input_map(x)))

    def initial_state(self, batch_size: int, device=None, dtype=None) -> State:
        """One empty window ``[batch, 0, d]`` per layer."""
        shape = (check_positive_int("batch_size", batch_size), 0, self.input_map.out_features)
        return tuple(torch.zeros(shape, **self.state_kwargs(device, dtype)) for _ in self.transformer.layers)

    def forward_step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        z, windows = self.input_map(x_t), []
        for layer, window in zip(self.transformer.layers, state, strict=True):
            window = torch.cat([window, z[:, None]], dim=1)[:, -self.transformer.window :]
            mixed = layer(window)  # the newest token's query over its window
            z = z + mixed if self.transformer.residual else mixed
            windows.append(window)
        return self.readout(z), tuple(windows)


@register_model
def sbc_transformer(
    input_size: int,
    output_size: int,
    hidden_size: int = 64,
    history: int = 8,
    num_layers: int = 1,
    num_heads: int = 2,
    residual: bool = False,
    input_mode: str = "add",
    autoregressive: bool | None = None,
    input_steps: int | None = None,
    form: str = "auto",
) -> WaveMemoryModel | TeacherForcedSBC:
    """The SBC model for training: an attention-only transformer generating autoregressively over a context of
    s = ``history`` tokens of width d = hidden_size / s (the TWM substrate), inputs written as tokens.
    ``autoregressive`` (default: when input_size == output_size) feeds each generated output back as a token.
    Input rule (``input_mode``, ``input_steps``) as :func:`~wavezoo.models.twm.twm_lbc`; the equations are in
    :class:`~wavezoo.models.twm.WaveMemoryModel`.

    ``form`` is how it trains (evaluation and generation always run the loop, each generated token entering the
    window):

    * ``"teacher_forced"``: as a transformer. Autoregressive: the target tokens stand in for the generated ones
      during training (``WaveMemoryModel(teacher_forcing=True)``, one boundary call over every window, no time
      loop; the same parameters as ``"recurrent"``). Otherwise :class:`TeacherForcedSBC`: the given inputs fill
      the window (every step an input, ``input_mode="add"``), one sliding-window attention per layer.
    * ``"recurrent"``: through the loop, each generated token (or hidden column) entering the window; stepped on
      the CPU. The published checkpoints of the recall tasks (not autoregressive) trained so.
    * ``"auto"`` (default): ``"teacher_forced"`` when autoregressive, else ``"recurrent"`` (the hidden columns of a
      model that is not autoregressive have no targets to force)."""
    form = check_choice("form", form, FORMS)
    if autoregressive is None:
        autoregressive = input_size == output_size
    if form == "auto":
        form = "teacher_forced" if autoregressive else "recurrent"
    if form == "teacher_forced" and not autoregressive:
        if input_mode != "add" or input_steps is not None:
            raise ConfigError(
                "form='teacher_forced' without autoregressive reads every input as a token: input_mode='replace' and "
                "input_steps apply to the autoregressive model or to form='recurrent'"
            )
        return TeacherForcedSBC(input_size, output_size, hidden_size, history, num_layers, num_heads, residual)
    dim = wave_dim(hidden_size, history)
    transformer = AttentionOnlyTransformer(dim, history, num_layers, num_heads, residual=residual)
    return WaveMemoryModel(
        input_size,
        output_size,
        hidden_size,
        TransformerBoundary(transformer),
        history,
        input_mode,
        autoregressive,
        input_steps,
        teacher_forcing=form == "teacher_forced",
    )
