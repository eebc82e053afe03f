"""The wave lens on exactly known systems: spectra, spectral error, wave basis, gradient by lag."""

import cmath

import pytest
import torch

from wavezoo.analysis import count_above, eigenvalues, spectral_error, task_operator, wave_basis
from wavezoo.core.lbc_algebra import embed_in_basis

pytestmark = pytest.mark.usefixtures("float64")


@pytest.mark.parametrize(("task", "count"), [("T1", 64), ("T2", 36), ("T3", 36), ("T4", 36)])
def test_theoretical_unit_circle_counts(task, count):
    eigs = eigenvalues(task_operator(task))
    assert count_above(eigs, 0.8) == count
    assert torch.allclose(eigs[eigs.abs() > 0.8].abs(), torch.ones(count, dtype=torch.float64), atol=1e-6)


def test_spectral_error_is_zero_for_the_same_spectrum_in_another_basis():
    m = task_operator("T3")
    psi = torch.randn(100, 64)
    learned = embed_in_basis_matrix(m, psi)
    assert spectral_error(m, learned) < 1e-6


def embed_in_basis_matrix(m, psi):
    return psi @ m @ torch.linalg.pinv(psi)


def test_spectral_error_measures_the_mean_angle():
    theory = torch.tensor([1, -1, 1j, -1j], dtype=torch.complex128)
    rotated = theory * cmath.exp(0.1j)
    assert spectral_error(theory, rotated) == pytest.approx(0.1)
    missing = rotated[:2]  # two learned eigenvalues missing: padded with zeros, matched at angle pi/2
    assert spectral_error(theory, missing) == pytest.approx((0.1 * 2 + 2 * cmath.pi / 2) / 4)


def test_wave_basis_recovers_the_twm_matrix_and_the_traveling_inputs():
    s, d, n = 8, 8, 128
    m = task_operator("T1")
    psi = torch.linalg.qr(torch.randn(n, s * d))[0]  # orthonormal: then pinv(W_r) is exactly Psi_s
    from wavezoo.core.operators import VARIABLE_BINDING_TASKS, signed_selection

    rnn = embed_in_basis(signed_selection(VARIABLE_BINDING_TASKS["T1"], d, s).flip(0), psi)
    basis = wave_basis(rnn.w_hh, rnn.w_r, s)  # T1: the plain power iteration is exact
    assert torch.allclose(basis.weights(rnn.w_hh), m.double(), atol=1e-8)
    # drive with 3 inputs: in the wave basis each input moves one column per step
    u = torch.zeros(1, 3, d)
    u[0, :, :] = torch.randn(3, d)
    h, states = torch.zeros(n), []
    for t in range(3):
        h = rnn.w_hh @ h + rnn.w_uh @ u[0, t]
        states.append(h)
    lattice = basis.lattice(torch.stack(states))  # [time, s, d]
    assert torch.allclose(lattice[2, -1], u[0, 2], atol=1e-8)  # newest input at the start boundary
    assert torch.allclose(lattice[2, -3], u[0, 0], atol=1e-8)  # two steps later, two columns down


@pytest.mark.parametrize(("task", "cells"), [("T1", 64), ("T2", 36), ("T3", 36), ("T4", 36)])
def test_plain_basis_scores_the_exact_twm_perfectly_and_compresses_to_its_persistent_cells(task, cells):
    from wavezoo.analysis import loop_closure_score, task_cells
    from wavezoo.core.operators import VARIABLE_BINDING_TASKS, signed_selection

    kept = task_cells(task)
    assert len(kept) == cells
    rnn = embed_in_basis(
        signed_selection(VARIABLE_BINDING_TASKS[task], 8, 8).flip(0), torch.linalg.qr(torch.randn(96, 64))[0]
    )
    assert loop_closure_score(rnn.w_hh, rnn.w_r, task) == pytest.approx(1.0, abs=1e-8)


def test_construction_fixed_columns_match_for_any_matrix_and_are_excluded_from_the_score():
    """The old circularity: W_hh Psi_{k+1} = Psi_k D_k by construction, so those columns of Psi^+ W_hh Psi are a
    positive shift for ANY W_hh; the loop-closing columns are free and score ~0 on a random matrix."""
    from wavezoo.analysis import boundary_blocks, loop_closure_score, task_informed_basis

    w, w_r = torch.randn(128, 128) / 128**0.5, torch.randn(8, 128)
    basis = wave_basis(w, w_r, 8)
    fixed = [i for i in range(64) if i not in basis.loop_columns()]
    assert basis.loop_columns() == list(range(8)) and len(fixed) == 56
    weights = basis.weights(w)
    norms = torch.diagonal(weights, 8)  # W Psi_{k+1} = Psi_k D_k: a positive shift, whatever W is
    assert (norms > 0).all()
    assert torch.allclose(weights[:, fixed], torch.cat([torch.diag(norms), torch.zeros(8, 56)]), atol=1e-6)
    assert abs(loop_closure_score(w, w_r, "T1")) < 0.15
    m = task_operator("T3")  # the named task-informed variant reproduces M's pattern on 7 of 8 block columns
    informed = task_informed_basis(w, w_r, 8, boundary_blocks(m, 8, 8)).weights(w)
    assert torch.equal(informed[:, 8:].abs() > 1e-6, m[:, 8:] != 0)  # M's pattern, up to positive column norms
    assert torch.equal(informed[:, 8:][m[:, 8:] != 0].sign(), m[:, 8:][m[:, 8:] != 0].double().sign())


def test_jacobian_by_lag_decays_for_a_contraction_and_not_for_the_twm():
    from wavezoo import create_model
    from wavezoo.analysis import decay_factor, jacobian_by_lag

    elman = create_model("elman", input_size=3, output_size=3, hidden_size=16)
    with torch.no_grad():
        elman.rnn.weight_hh_l0.copy_(0.5 * torch.eye(16))
    profile = jacobian_by_lag(elman, 0.01 * torch.randn(4, 6, 3))  # near 0: tanh' ~ 1
    assert decay_factor(profile) == pytest.approx(0.5, rel=1e-3)
    twm = create_model("twm_lbc", input_size=4, output_size=4, hidden_size=32, history=8)
    assert decay_factor(jacobian_by_lag(twm, torch.randn(3, 8, 4))) > 0.95  # the shift keeps every stored input


def test_task_window_holds_the_targets_in_the_start_column():
    from wavezoo.analysis import task_window
    from wavezoo.data import VariableBindingDataModule

    x, y, mask = VariableBindingDataModule("T3").eval_set("test")[0]
    window = task_window(x[:4, :30], "T3")
    assert torch.equal(window[:, 8:, -8:], y[:4, 8:30].double())
    assert torch.equal(window[:, 7].reshape(4, 8, 8), x[:4, :8].double())  # after the input phase: the 8 inputs


def test_linearize_reads_the_recurrence_of_each_supported_family_and_names_the_others():
    from wavezoo import create_model
    from wavezoo.analysis import linearize
    from wavezoo.core.lbc_algebra import lbc_matrix
    from wavezoo.errors import ConfigError

    elman = create_model("elman", input_size=3, output_size=2, hidden_size=16)
    assert torch.equal(linearize(elman).w_hh, elman.rnn.weight_hh_l0)
    wave = create_model("wave_rnn", input_size=3, output_size=2, hidden_size=24, channels=2)
    assert torch.equal(linearize(wave).w_hh, wave.recurrent_matrix())
    twm = create_model("twm_lbc", input_size=4, output_size=4, hidden_size=32, history=8)
    lin = linearize(twm)
    assert torch.allclose(lin.w_hh, lbc_matrix(twm.memory.boundary.phi.detach()))
    assert lin.w_r.shape == (4, 32) and lin.w_r[:, :28].abs().sum() == 0  # reads the start-boundary column only
    with pytest.raises(ConfigError, match=r"wave lens needs a recurrence .* got RecurrentBaseline \(lstm\)"):
        linearize(create_model("lstm", input_size=3, output_size=2))
