import pytest
import torch

import wavezoo
from wavezoo import ConfigError
from wavezoo.models.ssm import LBCSSM, R_MAX, ShiftLBCSSM, all_pole_response


def randomize(model: torch.nn.Module, std: float = 3.0) -> torch.nn.Module:
    """Every parameter of ``model`` drawn from N(0, std^2)."""
    with torch.no_grad():
        for p in model.parameters():
            torch.nn.init.normal_(p, 0, std)
    return model


def test_all_pole_response_matches_the_recursion():
    torch.manual_seed(0)
    phi = torch.randn(3, 5, dtype=torch.float64) * 0.3
    a = all_pole_response(phi, 70)
    ref = torch.zeros(3, 70, dtype=torch.float64)
    for k in range(70):
        ref[:, k] = float(k == 0) + sum(phi[:, j] * ref[:, k - 1 - j] for j in range(5) if k - 1 - j >= 0)
    assert (a - ref).abs().max() < 1e-10


@pytest.mark.parametrize("mode", ["parallel", "recurrent"])
def test_without_feedback_it_is_h3_shift_ssm(mode):
    ssm = ShiftLBCSSM(2, 4, feedback=False)
    ssm.mode = mode
    assert ssm.feedback_coefficients() is None and [n for n, _ in ssm.named_parameters()] == ["readout", "skip"]
    u = torch.randn(1, 10, 2)
    y = ssm(u)
    for t in range(10):  # y(t) = sum_{i < N} C_i u(t - i) + D u(t): a finite impulse response
        expected = ssm.skip * u[0, t] + sum(ssm.readout[:, i] * u[0, t - i] for i in range(4) if t - i >= 0)
        assert torch.allclose(y[0, t], expected, atol=1e-6)


def test_initial_feedback_is_zero_so_the_model_starts_as_the_shift_ssm():
    torch.manual_seed(0)
    ssm = ShiftLBCSSM(3, 4)
    assert torch.equal(ssm.feedback_coefficients(), torch.zeros(3, 4, dtype=torch.float64))
    plain = ShiftLBCSSM(3, 4, feedback=False)
    plain.load_state_dict({"readout": ssm.readout, "skip": ssm.skip})
    u = torch.randn(2, 12, 3)
    assert torch.allclose(ssm(u), plain(u), atol=1e-6)


@pytest.mark.parametrize("mode", ["parallel", "recurrent"])
def test_feedback_recirculates_the_wave(mode):
    ssm = ShiftLBCSSM(1, 3)
    ssm.mode = mode
    ssm.set_feedback(torch.tensor([0.0, 0.0, 0.998]))  # the oldest cell feeds the boundary: period-3 recirculation
    assert torch.allclose(ssm.feedback_coefficients(), torch.tensor([[0.0, 0.0, 0.998]], dtype=torch.float64))
    with torch.no_grad():
        ssm.readout.zero_()
        ssm.readout[0, 0] = 1.0
        ssm.skip.zero_()
    u = torch.zeros(1, 12, 1)
    u[0, 0] = 1.0
    expected = torch.tensor([0.998**p if lag == 0 else 0.0 for p in range(4) for lag in range(3)])
    assert torch.allclose(ssm(u)[0, :, 0], expected, atol=1e-6)


def test_set_feedback_rejects_an_unstable_or_marginal_phi():
    ssm = ShiftLBCSSM(2, 3)
    with pytest.raises(ConfigError, match=r"\|\|phi\|\|_1 = 1 is invalid: expected < 0.999"):
        ssm.set_feedback(torch.tensor([0.0, 0.0, 1.0]))  # the former "period-3" example: on the unit circle
    with pytest.raises(ConfigError, match="feedback=True"):
        ShiftLBCSSM(2, 3, feedback=False).set_feedback(torch.zeros(3))


@pytest.mark.parametrize("state_size", [1, 4, 16, 64])
def test_feedback_roots_are_inside_the_unit_circle_for_any_raw_parameters(state_size):
    """Companion-matrix eigenvalues = roots of z^N - sum phi_k z^(N-k): modulus < 1 (<= r_max^(1/N)) for N(0, 3)
    raw parameters, and still for huge ones."""
    torch.manual_seed(0)
    ssm = randomize(ShiftLBCSSM(32, state_size))
    for scale in (1.0, 1e8):
        with torch.no_grad():
            ssm.raw_feedback.mul_(scale)
        phi = ssm.feedback_coefficients()
        assert bool((phi.abs().sum(-1) <= R_MAX * (1 + 1e-12)).all())  # = R_MAX once tanh saturates
        radius = torch.linalg.eigvals(ssm.transition_matrix()).abs().max().item()
        assert radius < 1.0 and radius <= R_MAX ** (1 / state_size) + 1e-9, radius
        assert bool((all_pole_response(phi, 2000).abs() <= 1 + 1e-9).all())  # a contraction: |a_k| <= 1


@pytest.mark.parametrize("gating", [True, False])
def test_parallel_equals_recurrent_for_any_parameters(gating):
    """Every parameter drawn from N(0, 3): parallel (FFT) and recurrent agree at length 1000 to 1e-4 of the output
    scale (measured: 2.6e-5 with gating, 9e-7 without: float32 rounding of the whole network)."""
    torch.manual_seed(2)
    model = randomize(LBCSSM(3, 2, 64, state_size=16, num_layers=2, gating=gating))
    x = torch.randn(2, 1000, 3)
    with torch.no_grad():
        parallel = model.set_mode("parallel")(x)
        recurrent = model.set_mode("recurrent")(x)
    assert torch.isfinite(parallel).all()
    relative = ((parallel - recurrent).abs().max() / parallel.abs().max()).item()
    print(f"gating={gating}: max |parallel - recurrent| / max |output| = {relative:.2e}")
    assert relative <= 1e-4


@pytest.mark.parametrize("gating", [True, False])
def test_parallel_and_recurrent_modes_agree(gating):
    torch.manual_seed(1)
    model = LBCSSM(3, 2, 64, state_size=8, num_layers=2, gating=gating)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ShiftLBCSSM):
                module.raw_feedback.normal_(0, 0.5)
    x = torch.randn(4, 300, 3)
    parallel = model(x)
    recurrent = model.set_mode("recurrent")(x)
    assert (parallel - recurrent).abs().max() < 1e-5


@pytest.mark.parametrize("feedback", [True, False])
@pytest.mark.parametrize("cut", [3, 9, 25])  # shorter than, and longer than, the N = 8 cells
def test_ssm_scan_carries_the_state_in_both_modes(feedback, cut):
    torch.manual_seed(0)
    ssm = randomize(ShiftLBCSSM(4, 8, feedback), std=1.0)
    u = torch.randn(2, 40, 4, dtype=torch.float64)
    ssm.double()
    ssm.mode = "recurrent"
    full, final = ssm.scan(u)
    for mode in ("parallel", "recurrent"):
        ssm.mode = mode
        first, carried = ssm.scan(u[:, :cut])
        second, last = ssm.scan(u[:, cut:], carried)
        assert torch.allclose(torch.cat([first, second], 1), full, atol=1e-10)
        assert torch.allclose(last, final, atol=1e-10)
        assert torch.allclose(ssm(u), full, atol=1e-10)


@pytest.mark.parametrize("mode", ["parallel", "recurrent"])
@pytest.mark.parametrize("gating", [True, False])
def test_model_streams_in_both_modes(mode, gating):
    """step over the sequence == model(x) == scan cut in two, with the parallel scan absorbing a prompt by FFT."""
    torch.manual_seed(0)
    model = randomize(LBCSSM(3, 2, 32, state_size=4, num_layers=2, gating=gating), std=1.0).set_mode(mode).eval()
    x = torch.randn(2, 30, 3)
    with torch.no_grad():
        full = model(x)
        state = model.initial_state(2)
        assert len(state) == 2 and all(len(s) == (2 if gating else 1) for s in state)
        assert all(r.shape == (2, 8, 4) for s in state for r in s)
        steps = []
        for t in range(30):
            y_t, state = model.step(x[:, t], state)
            steps.append(y_t)
        prompt, carried = model.scan(x[:, :17])
        rest = []
        for t in range(17, 30):
            y_t, carried = model.step(x[:, t], carried)
            rest.append(y_t)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)
    assert torch.allclose(torch.cat([prompt, torch.stack(rest, 1)], 1), full, atol=1e-5)


def test_default_and_usual_sizes_and_the_size_error():
    model = wavezoo.create_model("lbc_ssm", input_size=8, output_size=8)
    assert model.hidden_size == 512 and model.blocks[0].ssm.channels == 32 and model.state_size == 16
    for hidden_size in (32, 64, 128, 256, 512, 1024):
        with torch.device("meta"):
            model = wavezoo.create_model("lbc_ssm", input_size=3, output_size=2, hidden_size=hidden_size)
        assert model.blocks[0].ssm.channels * model.state_size == hidden_size
    with pytest.raises(ConfigError, match=r"state_size=16 must divide hidden_size=40 \(= width \* N\)"):
        wavezoo.create_model("lbc_ssm", input_size=3, output_size=2, hidden_size=40)


def test_float32_precision_stays_close_to_float64_near_the_stability_edge():
    """``precision="float32"`` (the accelerator default of ``"auto"``) against ``"float64"`` (the CPU default), same
    weights, every phi at ||phi||_1 = 0.99 r_max (slowly decaying waves, gain up to 90), length 2000: relative
    output difference below 1e-3 (measured 9.5e-5 parallel, 3.1e-5 recurrent on this CPU; the published
    ``lbc_ssm_vb_t1`` at length 2000 and ``lbc_ssm_mnist1d``: 8.3e-7 and 8.8e-7). ``"auto"`` on the CPU is float64."""
    torch.manual_seed(0)
    wide = LBCSSM(3, 2, 64, state_size=16, num_layers=2, precision="float64")
    with torch.no_grad():
        for block in wide.blocks:
            for ssm in (block.ssm, block.shift_ssm):
                phi = torch.rand(ssm.channels, ssm.state_size)
                ssm.set_feedback(0.99 * R_MAX * phi / phi.sum(-1, keepdim=True))
    narrow = LBCSSM(3, 2, 64, state_size=16, num_layers=2, precision="float32")
    narrow.load_state_dict(wide.state_dict())
    auto = LBCSSM(3, 2, 64, state_size=16, num_layers=2)
    assert auto.blocks[0].ssm.compute_dtype == torch.float64 and narrow.blocks[0].ssm.compute_dtype == torch.float32
    x = torch.randn(2, 2000, 3)
    for mode in ("parallel", "recurrent"):
        with torch.no_grad():
            reference, approx = wide.set_mode(mode)(x), narrow.set_mode(mode)(x)
        relative = ((reference - approx).abs().max() / reference.abs().max()).item()
        print(f"{mode}: float32 vs float64 relative difference {relative:.2e}")
        assert relative < 1e-3
    with pytest.raises(ConfigError, match="precision='half' is invalid"):
        LBCSSM(3, 2, 64, precision="half")
