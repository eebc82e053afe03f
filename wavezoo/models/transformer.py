"""The "standard transformer" baseline: a causal transformer encoder with sinusoidal positions.

    z_0(t) = W_in u(t) + PE(t),   z_l = Block_l(z_{l-1}) with a causal mask,   y(t) = W_out LayerNorm(z_L(t))

Each block is pre-norm multi-head self-attention plus an MLP (``torch.nn.TransformerEncoderLayer``).
``hidden_size`` is the model width d_model (the size of the per-token state).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wavezoo.errors import ConfigError, check_positive_int
from wavezoo.models.base import SequenceModel
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


@register_model
def transformer(input_size: int, output_size: int, hidden_size: int = 128, **kwargs) -> CausalTransformer:
    """Standard causal transformer baseline (pre-norm blocks with MLPs, sinusoidal positions)."""
    return CausalTransformer(input_size, output_size, hidden_size, **kwargs)
