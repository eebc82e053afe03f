"""The wave lens on exactly known systems: spectra, spectral error, wave basis, gradient by lag."""

import cmath

import pytest
import torch

from wavezoo.analysis import count_above, eigenvalues, input_gradient_by_lag, spectral_error, task_operator, wave_basis
from wavezoo.lbc import embed_in_basis

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
    from wavezoo.data.operators import VARIABLE_BINDING_TASKS, signed_selection

    rnn = embed_in_basis(signed_selection(VARIABLE_BINDING_TASKS["T1"], d, s).flip(0), psi)
    basis = wave_basis(rnn.w_hh, rnn.w_r, s)
    assert basis.distance(rnn.w_hh, m) < 1e-8
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


class LinearRNN(torch.nn.Module):
    def __init__(self, w_hh, w_uh, w_r):
        super().__init__()
        self.w_hh, self.w_uh, self.w_r = w_hh, w_uh, w_r

    def forward(self, x):
        h, out = x.new_zeros(x.shape[0], self.w_hh.shape[0]), []
        for t in range(x.shape[1]):
            h = h @ self.w_hh.T + x[:, t] @ self.w_uh.T
            out.append(h @ self.w_r.T)
        return torch.stack(out, 1)


def test_gradient_by_lag_decays_for_a_contraction_and_stays_flat_for_a_wave():
    d, s, n = 2, 6, 12
    x, y = torch.randn(16, 7, d), torch.randn(16, 7, d)
    contraction = LinearRNN(0.5 * torch.eye(n), torch.randn(n, d), torch.randn(d, n))
    decay = input_gradient_by_lag(contraction, x, y, step=6)
    assert torch.allclose(decay[1:] / decay[:-1], torch.full((6,), 0.5), atol=1e-6)
    from wavezoo.data.operators import generalized_fibonacci

    rnn = embed_in_basis(generalized_fibonacci(d, s, "spectral").flip(0), torch.linalg.qr(torch.randn(n, n))[0])
    wave = input_gradient_by_lag(LinearRNN(rnn.w_hh, rnn.w_uh, rnn.w_r), x, y, step=6)
    assert wave[1:].min() > 0.1 * wave[0]  # no geometric decay within the window
