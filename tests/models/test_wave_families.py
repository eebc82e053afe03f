"""The trainable wave families can represent the paper's exact solutions, and reject bad shapes."""

import pytest
import torch

import wavezoo
from wavezoo import ConfigError
from wavezoo.core.operators import VARIABLE_BINDING_TASKS, signed_selection
from wavezoo.data import VariableBindingDataModule

PAPER_PROTOCOL = {"input_mode": "replace", "input_steps": 8}  # as in configs/variable_binding/twm_*.yaml


@pytest.mark.parametrize("autoregressive", [False, True])
@pytest.mark.parametrize("task", ["T1", "T3"])
def test_twm_lbc_with_exact_weights_solves_variable_binding(task, autoregressive):
    model = wavezoo.create_model(
        "twm_lbc", input_size=8, output_size=8, hidden_size=64, autoregressive=autoregressive, **PAPER_PROTOCOL
    ).double()
    with torch.no_grad():
        model.input_map.weight.copy_(torch.eye(8))
        model.readout.weight.copy_(torch.eye(8))
        model.memory.boundary.phi.copy_(signed_selection(VARIABLE_BINDING_TASKS[task], 8, 8).flip(0))
    x, y, mask = VariableBindingDataModule(task).eval_set("test")[0]
    # the training form is the parallel LBC solve: exact up to float64 rounding
    assert (model(x.double())[mask] - y[mask].double()).abs().max() < 1e-10


def test_matched_input_and_readout_initialisation():
    model = wavezoo.create_model("twm_lbc", input_size=8, output_size=8, hidden_size=64)
    product = model.readout.weight @ model.input_map.weight
    assert torch.allclose(product, torch.eye(8), atol=1e-6)  # W_out W_in = I at initialisation


def test_autoregressive_needs_matching_sizes():
    with pytest.raises(ConfigError, match="needs input_size == output_size, got 3 and 2"):
        wavezoo.create_model("twm_lbc", input_size=3, output_size=2, hidden_size=16, autoregressive=True)
    with pytest.raises(ConfigError, match="history=5 must divide hidden_size=64"):
        wavezoo.create_model("twm_sbc", input_size=3, output_size=2, hidden_size=64, history=5)
    with pytest.raises(ConfigError, match="channels=7 must divide hidden_size=600"):
        wavezoo.create_model("wave_rnn", input_size=3, output_size=2, hidden_size=600, channels=7)
    with pytest.raises(ConfigError, match="state_size=5 must divide hidden_size=64"):
        wavezoo.create_model("lbc_ssm", input_size=3, output_size=2, hidden_size=64, state_size=5)


def test_irnn_starts_from_the_identity():
    model = wavezoo.create_model("irnn", input_size=2, output_size=2, hidden_size=10)
    assert torch.equal(model.rnn.weight_hh_l0, torch.eye(10))
    assert model.rnn.nonlinearity == "relu" and model.rnn.bias_hh_l0.abs().sum() == 0


def test_irnn_with_keller_et_al_initialisation():
    torch.manual_seed(0)
    model = wavezoo.create_model("irnn", input_size=10, output_size=10, hidden_size=625, init="keller")
    assert torch.equal(model.rnn.weight_hh_l0, torch.eye(625)) and model.rnn.bias_hh_l0.abs().sum() == 0
    assert 0.0009 < model.rnn.weight_ih_l0.std() < 0.0011  # N(0, 0.001)
    assert 0.25 < model.rnn.bias_ih_l0.abs().max() <= 10**-0.5  # nn.Linear's default U(-1/sqrt(10), 1/sqrt(10))
    with pytest.raises(ConfigError, match="init='eye' is invalid: expected one of 'le2015', 'keller'"):
        wavezoo.create_model("irnn", input_size=1, output_size=1, init="eye")


# -- the input rule, the equations, streaming ---------------------------------------------------------------------

TWM_FAMILIES = ["twm_lbc", "twm_sbc", "sbc_transformer"]


def reference_twm(model, x):
    """The documented equations of WaveMemoryModel, written out on h[i, j] with an explicit Python loop."""
    s, d = model.memory.history, model.memory.dim
    w_in, w_out, f = model.input_map.weight, model.readout.weight, model.memory.boundary
    h = torch.zeros(x.shape[0], s, d, dtype=x.dtype)
    outputs = []
    for t in range(1, x.shape[1] + 1):
        c = f(h)  # c(t) = f(h(t-1))
        is_input = model.input_steps is None or t <= model.input_steps
        if model.autoregressive:
            y_hat = c @ w_out.T
            v = (y_hat + x[:, t - 1] if model.input_mode == "add" else x[:, t - 1]) if is_input else y_hat
            new, y = v @ w_in.T, v
        else:
            u = x[:, t - 1] @ w_in.T
            new = (c + u if model.input_mode == "add" else u) if is_input else c
            y = new @ w_out.T
        h = torch.stack([h[:, i + 1] for i in range(s - 1)] + [new], dim=1)  # h[i](t) = h[i+1](t-1), h[s](t) = new
        outputs.append(y)
    return torch.stack(outputs, dim=1)


RULES = [
    {},  # the default: input_mode="add", every step an input
    {"autoregressive": True},
    {"input_mode": "replace", "input_steps": 4},
    {"input_mode": "replace", "input_steps": 4, "autoregressive": True},
    {"input_mode": "add", "input_steps": 3},
]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: "-".join(f"{k}={v}" for k, v in r.items()) or "default")
@pytest.mark.parametrize("name", TWM_FAMILIES)
def test_the_documented_equations_and_streaming(name, rule):
    torch.manual_seed(0)
    kwargs = {"autoregressive": False, **rule} if name == "sbc_transformer" else rule
    model = wavezoo.create_model(name, input_size=3, output_size=3, hidden_size=32, history=4, **kwargs).double()
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    with torch.no_grad():
        full = model(x)
        assert (full - reference_twm(model, x)).abs().max() < 1e-12
        for cut in (2, 4, 7):  # inside the input phase, at its end, in the autonomous phase
            first, state = model.scan(x[:, :cut])
            second, _ = model.scan(x[:, cut:], state)
            assert (torch.cat([first, second], 1) - full).abs().max() < 1e-12
    assert model.initial_state(2)[0].shape == (2, 4, 8)


def test_inputs_after_the_input_steps_are_not_read():
    torch.manual_seed(0)
    model = wavezoo.create_model("twm_sbc", input_size=2, output_size=2, hidden_size=16, history=4, input_steps=3)
    x = torch.randn(1, 8, 2)
    changed = x.clone()
    changed[:, 3:] = 5.0
    assert torch.equal(model(x), model(changed))


@pytest.mark.parametrize("rule", [{}, PAPER_PROTOCOL], ids=["default", "paper"])
def test_sbc_transformer_output_sees_the_current_input(rule):
    torch.manual_seed(0)
    model = wavezoo.create_model("sbc_transformer", input_size=8, output_size=8, **rule)  # autoregressive: 8 == 8
    assert model.autoregressive
    x = torch.randn(2, 12, 8, requires_grad=True)
    for t in (0, 3, 7):
        (grad,) = torch.autograd.grad(model(x)[:, t].sum(), x)
        assert grad[:, t].abs().sum() > 0 and grad[:, t + 1 :].abs().sum() == 0  # sees x(t), not the future
        if t > 0 and not rule:
            assert grad[:, t - 1].abs().sum() > 0  # and the past through the window (dense inputs)


@pytest.mark.parametrize("name", TWM_FAMILIES)
def test_autoregressive_model_remembers_dense_inputs(name):
    torch.manual_seed(0)
    model = wavezoo.create_model(name, input_size=3, output_size=3, hidden_size=32, autoregressive=True)
    x = torch.randn(4, 12, 3, requires_grad=True)
    y = model(x)
    y[:, -1].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert all(x.grad[:, -1 - lag].abs().sum() > 0 for lag in range(0, 6))


def test_the_input_rule_is_checked():
    with pytest.raises(ConfigError, match="input_mode='replace' needs input_steps"):
        wavezoo.create_model("twm_lbc", input_size=3, output_size=2, input_mode="replace")
    with pytest.raises(ConfigError, match="input_steps=0 is invalid"):
        wavezoo.create_model("sbc_transformer", input_size=3, output_size=2, input_steps=0)
    with pytest.raises(ConfigError, match="input_mode='copy' is invalid"):
        wavezoo.create_model("twm_sbc", input_size=3, output_size=2, input_mode="copy")


@pytest.mark.parametrize("name", TWM_FAMILIES)
def test_other_sizes_work_or_name_the_constraint(name):
    for hidden_size in (8, 24, 40, 48, 200):
        model = wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=hidden_size)
        assert model.hidden_size == hidden_size and model(torch.randn(1, 3, 3)).shape == (1, 3, 2)
    for hidden_size in (4, 12, 50):
        with pytest.raises(ConfigError, match=f"history=8 must divide hidden_size={hidden_size}"):
            wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=hidden_size)
