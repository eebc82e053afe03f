"""The "standard transformer" baseline: a causal transformer encoder with sinusoidal positions.

    z_0(t) = W_in u(t) + PE(t),   z_l = Block_l(z_{l-1}) with a causal mask,   y(t) = W_out LayerNorm(z_L(t))

Each block is pre-norm multi-head self-attention plus an MLP (``torch.nn.TransformerEncoderLayer``)::

    z = z + Dropout(SelfAttention(LayerNorm_1(z))),   z = z + Dropout(W_2 Dropout(ReLU(W_1 LayerNorm_2(z))))

``hidden_size`` is the model width d_model (the size of the per-token state).

Streaming uses a key/value cache instead of recomputing the prefix. The state after t steps is one pair
``(keys, values)`` per block, each ``[batch, num_heads, t, hidden_size // num_heads]``: the keys and values of the
t tokens seen so far at that block (t, the number of steps taken, is their length and gives the next position).
A step embeds only the new token, and at every block attends its query over the cache plus its own key/value and
appends them (new tensors: a state is never modified in place, so an old state stays valid). The step uses the very
submodules of each ``nn.TransformerEncoderLayer`` (``norm1``, ``self_attn.in_proj_*``, ``self_attn.out_proj``,
``norm2``, ``linear1``, ``activation``, ``linear2`` and the dropouts), so both paths share the weights. A stream
longer than ``max_len`` steps is a :class:`~wavezoo.errors.ConfigError`, as a longer sequence is in ``forward``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wavezoo.errors import ConfigError, check_positive_int
from wavezoo.models.base import SequenceModel, State
from wavezoo.registry import register_model


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """Vaswani et al.'s sinusoidal table, ``[length, width]``: sin on even, cos on odd channels."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : width // 2]
    return table


class CausalTransformer(SequenceModel):
    """Causal (decoder-only style) transformer encoder over the input sequence.

    Args:
        num_layers: transformer blocks.
        num_heads: attention heads (must divide ``hidden_size``).
        ffn_size: width of each block's MLP (default ``4 * hidden_size``).
        dropout: dropout inside the blocks.
        max_len: longest sequence the positional table covers.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int,
        num_layers: int = 2,
        num_heads: int = 4,
        ffn_size: int | None = None,
        dropout: float = 0.0,
        max_len: int = 4096,
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        check_positive_int("num_layers", num_layers)
        check_positive_int("num_heads", num_heads)
        if hidden_size % num_heads:
            raise ConfigError(f"num_heads={num_heads} must divide hidden_size={hidden_size}")
        self.num_heads = num_heads
        self.max_len = check_positive_int("max_len", max_len)
        self.embed = nn.Linear(input_size, hidden_size)
        self.register_buffer("positions", sinusoidal_positions(max_len, hidden_size), persistent=False)
        layer = nn.TransformerEncoderLayer(
            hidden_size, num_heads, ffn_size or 4 * hidden_size, dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_size)
        self.readout = nn.Linear(hidden_size, output_size)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.max_len:
            raise ConfigError(f"sequence length {length} exceeds max_len={self.max_len} of {type(self).__name__}")
        z = self.embed(x) + self.positions[:length]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device, dtype=z.dtype)
        return self.readout(self.norm(self.blocks(z, mask=mask, is_causal=True)))

    # -- streaming with a key/value cache -------------------------------------------------------------------
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Empty caches: one ``(keys, values)`` pair per block, each ``[batch, num_heads, 0, head_dim]``."""
        shape = (check_positive_int("batch_size", batch_size), self.num_heads, 0, self.hidden_size // self.num_heads)
        kwargs = self.state_kwargs(device, dtype)
        return tuple((torch.zeros(shape, **kwargs), torch.zeros(shape, **kwargs)) for _ in self.blocks.layers)

    def forward_step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        position = state[0][0].shape[-2]  # steps taken so far = cached tokens
        if position >= self.max_len:
            raise ConfigError(
                f"{type(self).__name__}.step: step {position + 1} exceeds max_len={self.max_len} "
                "(the positional table); start a new stream from initial_state or build with a larger max_len"
            )
        z = self.embed(x_t) + self.positions[position]
        new_state = []
        for layer, cache in zip(self.blocks.layers, state, strict=True):
            z, cache = self._block_step(layer, z, cache)
            new_state.append(cache)
        return self.readout(self.norm(z)), tuple(new_state)

    def _block_step(
        self, layer: nn.TransformerEncoderLayer, z: torch.Tensor, cache: State
    ) -> tuple[torch.Tensor, State]:
        """One pre-norm block on the newest token ``z`` ``[batch, hidden_size]`` given its cached keys/values."""
        attn = layer.self_attn
        batch, heads = z.shape[0], self.num_heads
        q, k, v = F.linear(layer.norm1(z), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.view(batch, heads, 1, -1) for t in (q, k, v))
        keys, values = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        dropout = attn.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, keys, values, dropout_p=dropout)  # all cached tokens are in the past
        z = z + layer.dropout1(attn.out_proj(a.reshape(batch, self.hidden_size)))
        z = z + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(z))))))
        return z, (keys, values)


@register_model
def transformer(input_size: int, output_size: int, hidden_size: int = 128, **kwargs) -> CausalTransformer:
    """Standard causal transformer baseline (pre-norm blocks with MLPs, sinusoidal positions)."""
    return CausalTransformer(input_size, output_size, hidden_size, **kwargs)
