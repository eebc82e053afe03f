import pytest
import torch
import torch.nn.functional as F

import wavezoo
from wavezoo import ConfigError
from wavezoo.models.wave_rnn import WaveRNN


def test_fused_recurrence_equals_circular_convolution_loop():
    torch.manual_seed(0)
    model = WaveRNN(3, 2, 12, channels=3, shift_init=False, solo_init=False).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    h, states = torch.zeros(2, 12, dtype=torch.float64), []
    for t in range(7):
        conv = F.conv1d(F.pad(h.view(2, 3, 4), (1, 1), mode="circular"), model.kernel)
        h = torch.relu(conv.reshape(2, 12) + model.input_map(x[:, t]))
        states.append(h)
    assert (model.hidden_states(x) - torch.stack(states, 1)).abs().max() < 1e-12
    loss = model(x).square().sum()
    loss.backward()
    assert model.kernel.grad.abs().sum() > 0  # gradients reach the convolution kernel


def test_initialisation_makes_a_traveling_wave():
    model = WaveRNN(1, 1, 8, channels=2)
    x = torch.zeros(1, 4, 1)
    x[0, 0, 0] = 1.0
    h = model.hidden_states(x)[0].view(4, 2, 4)
    for t in range(4):  # the pulse written into cell 0 moves one cell per step around the ring
        assert torch.equal(h[t], torch.roll(h[0], -t, dims=-1))
    assert h[0, :, 0].eq(1).all() and h[0].sum() == 2


@pytest.mark.parametrize(
    ("hidden_size", "channels"),
    [(600, 6), (32, 4), (64, 4), (128, 4), (256, 4), (512, 4), (1024, 4), (60, 6), (100, 4), (99, 3), (7, 1)],
)
def test_default_channels_divide_hidden_size(hidden_size, channels):
    model = wavezoo.create_model("wave_rnn", input_size=2, output_size=2, hidden_size=hidden_size)
    assert (model.channels, model.cells) == (channels, hidden_size // channels)
    assert "channels" not in model.wavezoo_config["model_kwargs"]  # rebuilt from the same rule


def test_builds_with_its_own_defaults_as_keller_et_al():
    model = wavezoo.create_model("wave_rnn", input_size=8, output_size=8)
    assert (model.hidden_size, model.channels, model.cells) == (600, 6, 100)


@pytest.mark.parametrize(("hidden_size", "channels"), [(600, 6), (256, 4), (512, 16)])
def test_published_settings_keep_their_channels(hidden_size, channels):
    model = wavezoo.create_model("wave_rnn", input_size=1, output_size=10, hidden_size=hidden_size, channels=channels)
    assert model.channels == channels and model.kernel.shape == (channels, channels, 3)


def test_explicit_channels_must_divide():
    with pytest.raises(ConfigError, match=r"^channels=6 must divide hidden_size=64$"):
        wavezoo.create_model("wave_rnn", input_size=1, output_size=1, hidden_size=64, channels=6)
    with pytest.raises(ConfigError, match=r"channels=0 is invalid"):
        wavezoo.create_model("wave_rnn", input_size=1, output_size=1, hidden_size=64, channels=0)


@pytest.mark.parametrize(("hidden_size", "channels", "kernel_size"), [(12, 3, 3), (12, 6, 5), (6, 6, 3), (40, 2, 7)])
def test_structural_convolution_equals_the_block_circulant_matrix(hidden_size, channels, kernel_size):
    torch.manual_seed(0)
    model = WaveRNN(2, 2, hidden_size, channels=channels, kernel_size=kernel_size, shift_init=False).double()
    h = torch.randn(3, hidden_size, dtype=torch.float64)
    assert torch.allclose(model.convolve(h), h @ model.recurrent_matrix().T, atol=1e-12)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_steps_equal_the_fused_path_without_the_dense_matrix(monkeypatch, nonlinearity):
    torch.manual_seed(0)
    model = WaveRNN(3, 2, 24, channels=4, nonlinearity=nonlinearity, shift_init=False, solo_init=False).double()
    with torch.no_grad():
        model.input_map.weight.normal_()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    with torch.no_grad():
        full = model(x)

    def dense(*args):
        raise AssertionError("forward_step built the dense W_hh")

    monkeypatch.setattr(WaveRNN, "recurrent_matrix", dense)
    state = model.initial_state(2, dtype=torch.float64)
    assert state.shape == (2, 24) and not state.any()
    outputs = []
    with torch.no_grad():
        for t in range(9):
            y_t, state = model.step(x[:, t], state)
            outputs.append(y_t)
    assert torch.allclose(torch.stack(outputs, 1), full, atol=1e-12)
    assert state.abs().sum() > 0


def test_stepping_makes_the_traveling_wave():
    model = WaveRNN(1, 1, 8, channels=2)
    state = model.initial_state(1)
    pulse, silence = torch.ones(1, 1), torch.zeros(1, 1)
    _, first = model.step(pulse, state)
    state = first
    for t in range(1, 4):
        _, state = model.step(silence, state)
        assert torch.equal(state.view(2, 4), torch.roll(first.view(2, 4), -t, dims=-1))


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_matches_the_authors_conv1d_cell_with_recurrent_bias(monkeypatch, nonlinearity):
    """Keller et al.'s cell: h = act(Wx x + Conv1d_circular(h) + b), the Conv1d with its bias."""
    torch.manual_seed(0)
    model = WaveRNN(3, 2, 12, channels=3, nonlinearity=nonlinearity, shift_init=False, solo_init=False,
                    recurrent_bias=True).double()  # fmt: skip
    conv = torch.nn.Conv1d(3, 3, 3, padding=1, padding_mode="circular").double()
    with torch.no_grad():
        conv.weight.copy_(model.kernel)
        conv.bias.copy_(model.recurrent_bias)
    act = torch.relu if nonlinearity == "relu" else torch.tanh
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    h, outputs = torch.zeros(2, 12, dtype=torch.float64), []
    for t in range(7):
        h = act(model.input_map(x[:, t]) + conv(h.view(2, 3, 4)).flatten(1))
        outputs.append(model.readout(h))
    reference = torch.stack(outputs, 1)
    monkeypatch.setattr(WaveRNN, "recurrent_matrix", lambda self: pytest.fail("the sequence path built W_hh"))
    for training in (True, False):  # pooled (training) and plain paths
        model.train(training)
        model.zero_grad()
        y = model(x)
        assert (y - reference).abs().max() < 1e-12
        y.square().sum().backward()
        assert model.recurrent_bias.grad.abs().sum() > 0


def test_gradients_equal_the_authors_cell():
    torch.manual_seed(1)
    model = WaveRNN(2, 3, 12, channels=3, shift_init=False, solo_init=False, recurrent_bias=True).double()
    x = torch.randn(4, 6, 2, dtype=torch.float64)
    params = dict(model.named_parameters())

    def authors(kernel, bias):
        h, outs = torch.zeros(4, 12, dtype=torch.float64), []
        for t in range(6):
            conv = F.conv1d(F.pad(h.view(4, 3, 4), (1, 1), mode="circular"), kernel, bias)
            h = torch.relu(model.input_map(x[:, t]) + conv.flatten(1))
            outs.append(model.readout(h))
        return torch.stack(outs, 1)

    loss = authors(params["kernel"], params["recurrent_bias"]).square().sum()
    expected = torch.autograd.grad(loss, list(params.values()))
    model.train()
    got = torch.autograd.grad(model(x).square().sum(), list(params.values()))
    for name, a, b in zip(params, got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-10), name


def test_initialisations_follow_the_authors():
    torch.manual_seed(0)
    solo = WaveRNN(10, 10, 600, channels=6, recurrent_bias=True)
    assert solo.input_map.bias.abs().sum() == 0 and solo.input_map.weight.sum() == 6 * 10
    assert solo.recurrent_bias.abs().max() <= (6 * 3) ** -0.5
    plain = WaveRNN(10, 10, 600, channels=6, solo_init=False)
    assert 0.0008 < plain.input_map.weight.std() < 0.0012  # N(0, 0.001)
    assert plain.input_map.bias.abs().max() > 0.1  # nn.Linear's default U(-1/sqrt(10), 1/sqrt(10)) kept
    assert plain.recurrent_bias is None and "recurrent_bias" not in plain.state_dict()


def test_steps_with_recurrent_bias_equal_the_sequence():
    torch.manual_seed(3)
    model = WaveRNN(2, 3, 24, channels=4, shift_init=False, solo_init=False, recurrent_bias=True).double().eval()
    x = torch.randn(3, 8, 2, dtype=torch.float64)
    state, outputs = model.initial_state(3, dtype=torch.float64), []
    with torch.no_grad():
        for t in range(8):
            y_t, state = model.step(x[:, t], state)
            outputs.append(y_t)
        assert torch.allclose(torch.stack(outputs, 1), model(x), atol=1e-12)
        assert torch.allclose(state, model.hidden_states(x)[:, -1], atol=1e-12)
