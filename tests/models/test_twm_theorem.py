"""Theorem 3.1 and the LBC algebra: the exact TWM against independent simulations of the HDS."""

import pytest
import torch

from wavezoo.constructions import (
    twm_from_function,
    twm_from_lag_operators,
    twm_generalized_fibonacci,
    twm_variable_binding,
)
from wavezoo.core.lbc_algebra import characteristic_value, embed_in_basis, lbc_matrix, shift_matrix
from wavezoo.core.operators import random_stable_var
from wavezoo.data import HDSDataModule
from wavezoo.data.systems import RandomMLPSystem

pytestmark = pytest.mark.usefixtures("float64")


def simulate(f, window, steps):
    """Independent HDS simulation: a Python list of states, x(t+1) = f(x(t), ..., x(t-s+1))."""
    states = list(window.unbind(1))
    s = window.shape[1]
    for _ in range(steps):
        states.append(f(states[-s:]))
    return torch.stack(states[s:], dim=1)


def test_generalized_fibonacci_is_reproduced():
    s, d = 3, 2
    window = torch.randn(4, s, d)
    expected = simulate(lambda xs: sum(xs), window, 10 * s)
    got = twm_generalized_fibonacci(d, s).rollout(window, 10 * s)
    assert (got - expected).abs().max() / expected.abs().max() < 1e-12
    fib = twm_generalized_fibonacci(1, 2).rollout(torch.ones(1, 2, 1), 6)
    assert fib.flatten().tolist() == [2, 3, 5, 8, 13, 21]


def test_random_var_is_reproduced():
    s, d = 5, 3
    lag_phi = random_stable_var(d, s, radius=0.98, seed=2)
    window = torch.randn(6, s, d)
    expected = simulate(lambda xs: sum(lag_phi[k] @ xs[-1 - k].T for k in range(s)).T, window, 10 * s)
    assert (twm_from_lag_operators(lag_phi).rollout(window, 10 * s) - expected).abs().max() < 1e-5


def test_random_mlp_is_reproduced():
    mlp = RandomMLPSystem(3, 4, seed=5, dtype=torch.float64)
    window = torch.randn(5, 4, 3, dtype=torch.float64)
    expected = simulate(lambda xs: mlp(torch.stack(xs, 1)), window, 40)
    got = twm_from_function(mlp, history=4, dim=3).rollout(window, 40)
    assert (got - expected).abs().max() < 1e-5


@pytest.mark.parametrize("task", ["T1", "T2", "T3", "T4"])
def test_variable_binding_twm_solves_the_task(task):
    from wavezoo.data import VariableBindingDataModule

    data = VariableBindingDataModule(task)
    x, y, mask = data.eval_set("test")[0]
    out = twm_variable_binding(task)(x.double())  # inputs written at the boundary, then autonomous
    assert torch.equal(out[mask], y[mask].double())


def test_lbc_matrix_is_shift_plus_low_rank_with_var_spectrum():
    s, d = 4, 3
    lag_phi = random_stable_var(d, s, radius=0.9, seed=7)
    phi = lag_phi.flip(0)
    m = lbc_matrix(phi)
    assert torch.linalg.matrix_rank(m - shift_matrix(s, d)) <= d
    window = torch.randn(2, s, d)
    step = twm_from_lag_operators(lag_phi).evolve(window)
    assert torch.allclose(step.reshape(2, -1), window.reshape(2, -1) @ m.T)
    eig = torch.linalg.eigvals(m)
    assert max(abs(characteristic_value(phi, complex(lam))) for lam in eig) < 1e-9
    assert eig.abs().max() == pytest.approx(0.9)


def test_rnn_embedding_in_a_random_basis_gives_the_same_outputs():
    torch.manual_seed(0)
    s, d, n = 3, 2, 10
    lag_phi = random_stable_var(d, s, radius=0.95, seed=3)
    twm = twm_from_lag_operators(lag_phi, input_mode="add")
    psi = torch.randn(n, s * d)
    weights = embed_in_basis(lag_phi.flip(0), psi)
    inputs = torch.randn(4, 25, d)
    assert (weights.run(inputs) - twm(inputs)).abs().max() < 1e-9
    eig_rnn = torch.linalg.eigvals(weights.w_hh)
    eig_twm = torch.linalg.eigvals(lbc_matrix(lag_phi.flip(0)))
    nonzero = eig_rnn[eig_rnn.abs() > 1e-8]
    assert len(nonzero) == (eig_twm.abs() > 1e-8).sum()
    assert torch.allclose(nonzero.abs().sort().values, eig_twm[eig_twm.abs() > 1e-8].abs().sort().values)
    # The tanh RNN with the same weights is its linearisation at 0: small inputs give the same outputs.
    eps = 1e-4
    assert (weights.run(eps * inputs, "tanh") / eps - twm(inputs)).abs().max() < 1e-5


def test_the_data_generator_and_the_models_share_the_twm_step():
    """The HDS generator of a nonlinear f, the exact TWM and the trainable TWM all step through wave_step."""
    hds = HDSDataModule("mlp", dim=3, history=4, system_seed=5)
    window = torch.randn(5, 4, 3)
    expected = simulate(lambda xs: hds.mlp(torch.stack(xs, 1)), window, 30)
    assert (hds.rollout(window, 30) - expected).abs().max() < 1e-6
    assert torch.equal(hds.rollout(window, 30), twm_from_function(hds.mlp, history=4, dim=3).rollout(window, 30))
    same = RandomMLPSystem(3, 4, seed=5)  # the DataModule's system is the core one, drawn from system_seed
    assert torch.equal(same(window), hds.mlp(window))


@pytest.mark.parametrize("task", ["T1", "T2", "T3", "T4"])
def test_trainable_twm_with_exact_weights_is_the_exact_twm(task):
    import wavezoo
    from wavezoo.data import VariableBindingDataModule

    exact = twm_variable_binding(task)
    model = wavezoo.create_model("twm_lbc", input_size=8, output_size=8, input_mode="replace", input_steps=8).double()
    with torch.no_grad():
        model.input_map.weight.copy_(torch.eye(8))
        model.readout.weight.copy_(torch.eye(8))
        model.memory.boundary.phi.copy_(exact.boundary.phi)
    x = VariableBindingDataModule(task).eval_set("test")[0][0][:4].double()
    # every step, the input phase included; the trained form is the parallel LBC solve (rounding only)
    assert (model(x) - exact(x)).abs().max() < 1e-10


def test_replace_needs_the_number_of_input_steps():
    from wavezoo import ConfigError

    lag_phi = random_stable_var(2, 3, radius=0.9, seed=0)
    with pytest.raises(ConfigError, match="input_mode='replace' needs input_steps"):
        twm_from_lag_operators(lag_phi, "replace")
    twm = twm_from_lag_operators(lag_phi, "replace", input_steps=3)
    drive = torch.randn(2, 9, 2)
    assert torch.equal(twm(drive)[:, :3], drive[:, :3])
    assert torch.equal(twm(drive)[:, 3:], twm.rollout(drive[:, :3], 6))
