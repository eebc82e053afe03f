import pytest
import torch

from wavezoo import ConfigError
from wavezoo.core.operators import generalized_fibonacci, spectral_radius
from wavezoo.data import HDSDataModule


def test_unnormalised_fibonacci_is_fibonacci():
    dm = HDSDataModule("fibonacci", dim=1, history=2, normalize="none")
    y = dm.rollout(torch.tensor([[[1.0], [1.0]]]), 8)[0, :, 0]
    assert y.tolist() == [2, 3, 5, 8, 13, 21, 34, 55]


def test_generalized_fibonacci_sums_the_last_s_vectors():
    dm = HDSDataModule("fibonacci", dim=2, history=3, normalize="none")
    window = torch.tensor([[[1.0, 0.0], [2.0, 1.0], [3.0, -1.0]]])
    y = dm.rollout(window, 2)[0]
    assert y[0].tolist() == [6.0, 0.0] and y[1].tolist() == [11.0, 0.0]


@pytest.mark.parametrize("normalize", ["spectral", "mean"])
def test_normalised_fibonacci_stays_bounded(normalize):
    assert spectral_radius(generalized_fibonacci(3, 4, normalize)) == pytest.approx(1.0)
    dm = HDSDataModule("fibonacci", dim=3, history=4, normalize=normalize)
    x, y, _ = dm.eval_set("test")[0]
    assert y.abs().max() < 20 * x.abs().max()


def test_spectral_normalisation_is_fibonacci_over_its_growth():
    # z(t) = x(t) / rho^(t - 2): the window (z(1), z(2)) = (rho x(1), x(2)), then z(2 + k) = x(2 + k) / rho^k
    rho = spectral_radius(generalized_fibonacci(1, 2, "none"))  # golden ratio
    assert rho == pytest.approx((1 + 5**0.5) / 2)
    window = torch.tensor([[[1.0], [1.0]]], dtype=torch.float64)
    plain = HDSDataModule("fibonacci", dim=1, history=2, normalize="none").rollout(window, 10)[0, :, 0]
    scaled = HDSDataModule("fibonacci", dim=1, history=2, normalize="spectral").rollout(
        window * rho ** torch.tensor([[[1.0], [0.0]]], dtype=torch.float64), 10
    )[0, :, 0]
    assert torch.allclose(scaled, plain / rho ** torch.arange(1, 11, dtype=torch.float64))


def test_var_is_stable_and_follows_its_recursion():
    dm = HDSDataModule("var", dim=3, history=2, radius=0.9, system_seed=1)
    assert spectral_radius(dm.phi) == pytest.approx(0.9)
    window = torch.randn(4, 2, 3, dtype=torch.float64)
    y = dm.rollout(window, 3)
    expected = window[:, 1] @ dm.phi[0].T + window[:, 0] @ dm.phi[1].T
    assert torch.allclose(y[:, 0], expected)


def test_mlp_system_steps_its_map():
    dm = HDSDataModule("mlp", dim=2, history=3, system_seed=4)
    window = torch.randn(5, 3, 2)
    y = dm.rollout(window, 2)
    assert torch.allclose(y[:, 0], dm.mlp(window))
    assert torch.allclose(y[:, 1], dm.mlp(torch.cat([window[:, 1:], y[:, :1]], 1)))
    assert y.abs().max() <= 1


def test_bad_system_name():
    with pytest.raises(ConfigError, match="system='lorenz' is invalid: expected one of 'fibonacci', 'var', 'mlp'"):
        HDSDataModule("lorenz")
    with pytest.raises(ConfigError, match="normalize='max' is invalid"):
        HDSDataModule("fibonacci", normalize="max")


def test_only_none_means_the_default_horizons():
    assert HDSDataModule().horizons == [50] and HDSDataModule(horizons=[5, 10]).horizons == [5, 10]
    for horizons in ([], ()):
        with pytest.raises(ConfigError) as err:
            HDSDataModule(horizons=horizons)
        assert str(err.value) == f"horizons={horizons!r} is invalid: expected a non-empty list of integers >= 1"


@pytest.mark.parametrize("seed", [-1, 0.5, "0", True])
def test_a_seed_out_of_range_is_refused_at_construction(seed):
    with pytest.raises(ConfigError) as err:
        HDSDataModule(seed=seed)
    assert str(err.value) == f"seed={seed!r} is invalid: expected an integer >= 0"
