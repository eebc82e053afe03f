"""Streaming (initial_state / step) of the recurrent baselines and the KV-cached causal transformer."""

import pytest
import torch
from torch import nn

import wavezoo
from wavezoo import ConfigError


def stream(model, x, state=None):
    state = model.initial_state(x.shape[0], dtype=x.dtype) if state is None else state
    outputs = []
    for t in range(x.shape[1]):
        y_t, state = model.step(x[:, t], state)
        outputs.append(y_t)
    return torch.stack(outputs, 1), state


@pytest.mark.parametrize("name", ["elman", "irnn", "gru", "lstm"])
def test_recurrent_state_is_torchs_h_n_layout(name):
    model = wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=16, num_layers=2)
    state = model.initial_state(5, dtype=torch.float64)
    parts = state if name == "lstm" else (state,)
    assert isinstance(state, tuple) == (name == "lstm")
    for part in parts:
        assert part.shape == (2, 5, 16) and part.dtype == torch.float64 and not part.any()
    model = model.double()
    x = torch.randn(5, 7, 3, dtype=torch.float64)
    with torch.no_grad():
        _, final = stream(model, x)
        _, h_n = model.rnn(x)
    for mine, torchs in zip(final if name == "lstm" else (final,), h_n if name == "lstm" else (h_n,), strict=True):
        assert torch.allclose(mine, torchs, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("lstm", {"num_layers": 3}),
        ("gru", {"num_layers": 2, "bias": False}),
        ("elman", {"num_layers": 2, "nonlinearity": "relu"}),
        ("transformer", {"num_layers": 3, "num_heads": 6, "ffn_size": 40}),
        ("transformer", {"num_layers": 1, "num_heads": 1}),
    ],
)
def test_stepping_equals_the_fast_path_in_float64(name, kwargs):
    torch.manual_seed(0)
    model = wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=24, **kwargs).double().eval()
    x = torch.randn(2, 17, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(stream(model, x)[0], model(x), atol=1e-12)


def test_transformer_steps_through_the_cache_not_the_prefix(monkeypatch):
    torch.manual_seed(0)
    model = wavezoo.create_model("transformer", input_size=3, output_size=2, hidden_size=32, num_heads=4).eval()
    x = torch.randn(2, 11, 3)
    with torch.no_grad():
        full = model(x)
    seen = []
    model.embed.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape)))

    def no_full_pass(*args, **kwargs):
        raise AssertionError("a step ran the whole-sequence encoder")

    monkeypatch.setattr(nn.TransformerEncoder, "forward", no_full_pass)
    monkeypatch.setattr(nn.TransformerEncoderLayer, "forward", no_full_pass)
    with torch.no_grad():
        steps, state = stream(model, x)
    assert torch.allclose(steps, full, atol=1e-5)
    assert seen == [(2, 3)] * 11  # only the new token is embedded at each step
    assert len(state) == 2  # one (keys, values) pair per block, growing by one token per step
    for keys, values in state:
        assert keys.shape == values.shape == (2, 4, 11, 8)


def test_transformer_states_are_not_modified_in_place():
    torch.manual_seed(0)
    model = wavezoo.create_model("transformer", input_size=3, output_size=2, hidden_size=16).eval()
    x = torch.randn(1, 6, 3)
    with torch.no_grad():
        _, state = model.scan(x[:, :5])
        y1, after = model.step(x[:, 5], state)
        y2, _ = model.step(x[:, 5], state)  # the same state again: same answer
    assert torch.equal(y1, y2)
    assert state[0][0].shape[2] == 5 and after[0][0].shape[2] == 6


def test_transformer_stream_past_max_len_is_a_clear_error():
    model = wavezoo.create_model("transformer", input_size=3, output_size=2, hidden_size=16, max_len=4).eval()
    x = torch.randn(2, 4, 3)
    with torch.no_grad():
        _, state = model.scan(x)  # exactly max_len steps are fine
        with pytest.raises(ConfigError, match=r"step 5 exceeds max_len=4"):
            model.step(x[:, 0], state)


def test_transformer_step_is_differentiable_in_training_mode():
    torch.manual_seed(0)
    model = wavezoo.create_model("transformer", input_size=3, output_size=2, hidden_size=16)
    y, _ = model.scan(torch.randn(2, 5, 3))
    y[:, -1].sum().backward()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []
