import torch
import torch.nn.functional as F

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
