"""The trainable wave families can represent the paper's exact solutions, and reject bad shapes."""

import pytest
import torch

import wavezoo
from wavezoo import ConfigError
from wavezoo.data import VariableBindingDataModule
from wavezoo.data.operators import VARIABLE_BINDING_TASKS, signed_selection


@pytest.mark.parametrize("autoregressive", [False, True])
@pytest.mark.parametrize("task", ["T1", "T3"])
def test_twm_lbc_with_exact_weights_solves_variable_binding(task, autoregressive):
    model = wavezoo.create_model(
        "twm_lbc", input_size=8, output_size=8, hidden_size=64, autoregressive=autoregressive
    ).double()
    with torch.no_grad():
        model.input_map.weight.copy_(torch.eye(8))
        model.readout.weight.copy_(torch.eye(8))
        model.memory.boundary.phi.copy_(signed_selection(VARIABLE_BINDING_TASKS[task], 8, 8).flip(0))
    x, y, mask = VariableBindingDataModule(task).eval_set("test")[0]
    assert torch.equal(model(x.double())[mask], y[mask].double())


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
