import pytest
import torch

from wavezoo.models.ssm import LBCSSM, ShiftLBCSSM, all_pole_response


def test_all_pole_response_matches_the_recursion():
    torch.manual_seed(0)
    phi = torch.randn(3, 5, dtype=torch.float64) * 0.3
    a = all_pole_response(phi, 70)
    ref = torch.zeros(3, 70, dtype=torch.float64)
    for k in range(70):
        ref[:, k] = float(k == 0) + sum(phi[:, j] * ref[:, k - 1 - j] for j in range(5) if k - 1 - j >= 0)
    assert (a - ref).abs().max() < 1e-10


def test_without_feedback_it_is_h3_shift_ssm():
    ssm = ShiftLBCSSM(2, 4, feedback=False)
    u = torch.randn(1, 10, 2)
    y = ssm(u)
    for t in range(10):  # y(t) = sum_{i < N} C_i u(t - i) + D u(t): a finite impulse response
        expected = ssm.skip * u[0, t] + sum(ssm.readout[:, i] * u[0, t - i] for i in range(4) if t - i >= 0)
        assert torch.allclose(y[0, t], expected, atol=1e-6)


def test_feedback_recirculates_the_wave():
    ssm = ShiftLBCSSM(1, 3)
    with torch.no_grad():
        ssm.feedback.zero_()
        ssm.feedback[0, 2] = 1.0  # the oldest cell feeds the boundary: period-3 recirculation
        ssm.readout.zero_()
        ssm.readout[0, 0] = 1.0
        ssm.skip.zero_()
    u = torch.zeros(1, 12, 1)
    u[0, 0] = 1.0
    assert torch.allclose(ssm(u)[0, :, 0], torch.tensor([1.0, 0, 0] * 4), atol=1e-6)


@pytest.mark.parametrize("gating", [True, False])
def test_parallel_and_recurrent_modes_agree(gating):
    torch.manual_seed(1)
    model = LBCSSM(3, 2, 64, state_size=8, num_layers=2, gating=gating)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, ShiftLBCSSM):
                module.feedback.normal_(0, 0.15)
    x = torch.randn(4, 300, 3)
    parallel = model(x)
    recurrent = model.set_mode("recurrent")(x)
    assert (parallel - recurrent).abs().max() < 1e-5
