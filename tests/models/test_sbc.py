"""SBC: the TWM with an attention boundary is the autoregressive loop of an attention-only transformer."""

import pytest
import torch

from wavezoo.models.sbc import AttentionOnlyTransformer, TransformerBoundary
from wavezoo.models.twm import AttentionBoundary, TravelingWaveMemory

pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.parametrize("heads", [1, 3])
def test_sbc_twm_and_attention_only_transformer_generate_the_same_sequence(heads):
    torch.manual_seed(0)
    s, d = 6, 4
    transformer = AttentionOnlyTransformer(d, window=s, num_layers=1, num_heads=heads, head_dim=4)
    twm = TravelingWaveMemory(s, d, transformer.layers[0])  # the boundary is the transformer's own layer
    prompt = torch.randn(3, s, d)
    generated = transformer.generate(prompt, 30, cache=False)  # sliding-window attention re-run every token
    rolled = twm.rollout(prompt, 30)  # one boundary evaluation per step on the substrate
    assert (generated - rolled).abs().max() < 1e-12
    cached = transformer.generate(prompt, 30)  # ring buffer of keys/values: the fast path
    assert (cached - generated).abs().max() < 1e-12
    assert generated[:, :5].std() > 0.01  # a non-trivial sequence


def test_paper_single_head_form():
    """One head, no positions, scale 1, no output map: f(h) = sum_i softmax_i(h_i^T K^T Q h_s) V h_i."""
    torch.manual_seed(1)
    s, d = 5, 3
    layer = AttentionBoundary(s, d, num_heads=1, positions=False, output_map=False, scale=1.0)
    h = torch.randn(2, s, d)
    q, k, v = layer.query.weight, layer.key.weight, layer.value.weight
    weights = torch.einsum("bid,bd->bi", h @ k.T, h[:, -1] @ q.T).softmax(-1)
    assert torch.allclose(layer(h), torch.einsum("bi,bid->bd", weights, h @ v.T))


def test_multilayer_boundary_matches_transformer_generation():
    torch.manual_seed(2)
    s, d = 4, 6
    transformer = AttentionOnlyTransformer(d, window=s, num_layers=2, num_heads=2, residual=True)
    twm = TravelingWaveMemory(s, d, TransformerBoundary(transformer))
    prompt = torch.randn(2, s, d)
    assert torch.allclose(transformer.generate(prompt, 12), twm.rollout(prompt, 12))


def test_prompt_must_fill_the_window():
    from wavezoo import ConfigError

    transformer = AttentionOnlyTransformer(3, window=4)
    with pytest.raises(ConfigError, match=r"prompt has shape \(1, 2, 3\); expected \[batch, window=4, dim\]"):
        transformer.generate(torch.zeros(1, 2, 3), 5)


def test_sliding_window_is_causal_and_limited_to_s_tokens():
    torch.manual_seed(3)
    transformer = AttentionOnlyTransformer(3, window=4, num_layers=1)
    tokens = torch.randn(1, 10, 3)
    base = transformer(tokens)
    changed = tokens.clone()
    changed[:, 2] += 5.0  # visible to positions 2..5 only
    diff = (transformer(changed) - base).abs().sum(-1)[0]
    assert diff[:2].max() == 0 and diff[6:].max() == 0 and diff[2:6].min() > 0


def test_one_attention_boundary_for_the_twm_the_transformer_and_the_ring_buffer():
    import wavezoo

    torch.manual_seed(4)
    twm_sbc = wavezoo.create_model("twm_sbc", input_size=3, output_size=3, hidden_size=32, history=4)
    sbc = wavezoo.create_model("sbc_transformer", input_size=3, output_size=3, hidden_size=32, history=4)
    assert type(twm_sbc.memory.boundary) is AttentionBoundary
    assert all(type(layer) is AttentionBoundary for layer in sbc.memory.boundary.transformer.layers)
    layer = AttentionBoundary(4, 6, num_heads=2)
    tokens = torch.randn(2, 9, 6)
    sequence = layer.attend_sequence(tokens)  # every token over its window
    for t in range(9):  # = the TWM boundary on the substrate of the last (up to) s tokens
        assert (layer(tokens[:, max(0, t - 3) : t + 1]) - sequence[:, t]).abs().max() < 1e-12
