"""The one recurrence core: parallel == stepped in float64, one input path for forward / scan / step (issue 26)."""

import itertools

import pytest
import torch

import wavezoo
from wavezoo import ConfigError
from wavezoo.core.linear_boundary import solve, spectral_radius
from wavezoo.core.waves import wave_step, wave_windows, write_boundary
from wavezoo.models.twm import AttentionBoundary, WaveMemoryModel

LENGTH = 300


def stepped(model, x):
    state, outputs = model.initial_state(x.shape[0]), []
    for t in range(x.shape[1]):
        y_t, state = model.step(x[:, t], state)
        outputs.append(y_t)
    return torch.stack(outputs, 1)


def recursion(lags, drive, past):
    values = list(past.unbind(1))
    for t in range(drive.shape[1]):
        new = sum(lags[k - 1] @ values[-k][..., None] for k in range(1, lags.shape[0] + 1))[..., 0] + drive[:, t]
        values.append(new)
    return torch.stack(values[past.shape[1] :], 1)


def test_the_solver_is_the_recursion():
    """w(t) = sum_k A_k w(t-k) + e(t) from a given past; a growing system solved damped (rate = its spectral
    radius) keeps its relative precision."""
    torch.manual_seed(0)
    lags, past, drive = torch.randn(5, 3, 3).double() * 0.12, torch.randn(2, 5, 3).double(), torch.randn(2, 70, 3)
    drive = drive.double()
    assert (solve(lags, drive, past) - recursion(lags, drive, past)).abs().max() < 1e-12
    lags = lags * 3
    rate = spectral_radius(lags)
    assert rate > 1.1
    reference = recursion(lags, drive, past)
    assert (solve(lags, drive, past, rate) - reference).abs().max() < 1e-12 * reference.abs().max()


@pytest.mark.parametrize(("scale", "length", "with_past"), [(0.12, 70, True), (0.9, 300, True), (0.3, 3, False)])
def test_the_solvers_adjoint_backward_is_the_gradient_of_the_recursion(scale, length, with_past):
    """LinearRecurrence's backward (the adjoint system run back in time, then one product for dl/dA_k) == autograd
    through the stepped recursion in float64: the lags, the drive and the past, a growing system (rho > 1.5 at
    L = 300), a length shorter than the history; torch.autograd.gradcheck on a small system."""
    torch.manual_seed(1)
    lags = (torch.randn(5, 3, 3, dtype=torch.float64) * scale).requires_grad_()
    drive = torch.randn(2, length, 3, dtype=torch.float64, requires_grad=True)
    past = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    inputs = [lags, drive, past] if with_past else [lags, drive]
    weights = torch.randn(2, length, 3, dtype=torch.float64)
    fast = torch.autograd.grad((solve(lags, drive, past if with_past else None) * weights).sum(), inputs)
    zeros = torch.zeros_like(past)
    slow = torch.autograd.grad((recursion(lags, drive, past if with_past else zeros) * weights).sum(), inputs)
    for a, b in zip(fast, slow, strict=True):
        assert (a - b).abs().max() <= 1e-12 * b.abs().max()
    if length == 300:
        assert spectral_radius(lags) > 1.5
    small = [t.detach()[..., :2].clone().requires_grad_() for t in (lags[:, :2], drive[:, :12], past)]
    assert torch.autograd.gradcheck(solve, small)


RULES = [
    (mode, steps, ar)
    for mode, steps, ar in itertools.product(["add", "replace"], [None, 8, 3], [False, True])
    if not (mode == "replace" and steps is None)
]


@pytest.mark.parametrize(("input_mode", "input_steps", "autoregressive"), RULES)
def test_twm_lbc_parallel_is_the_stepped_form_in_float64(input_mode, input_steps, autoregressive):
    """Length 300, float64: <= 1e-10 for a stable boundary; relative 1e-10 for the (growing) default init."""
    torch.manual_seed(0)
    model = wavezoo.create_model("twm_lbc", input_size=4, output_size=4, hidden_size=32, input_mode=input_mode,
                                 input_steps=input_steps, autoregressive=autoregressive).double()  # fmt: skip
    x = torch.randn(2, LENGTH, 4, dtype=torch.float64)
    with torch.no_grad():
        reference = stepped(model, x)
        assert (model(x) - reference).abs().max() <= 1e-10 * reference.abs().max()
        model.memory.boundary.phi.mul_(0.5)  # stable: spectral radius < 1
        model.input_map.weight.mul_(0.5)
        reference = stepped(model, x)
        assert (model(x) - reference).abs().max() <= 1e-10
        first, state = model.scan(x[:, :123])
        second, _ = model.scan(x[:, 123:], state)
        assert (torch.cat([first, second], 1) - reference).abs().max() <= 1e-10


@pytest.mark.parametrize("gating", [True, False])
def test_lbc_ssm_parallel_is_the_stepped_form_in_float64(gating):
    torch.manual_seed(0)
    model = wavezoo.create_model("lbc_ssm", input_size=3, output_size=2, hidden_size=64, gating=gating).double()
    for module in model.modules():
        if hasattr(module, "set_feedback"):
            module.set_feedback(torch.rand(module.channels, module.state_size).double() * 0.9 / module.state_size)
    x = torch.randn(2, LENGTH, 3, dtype=torch.float64)
    with torch.no_grad():
        assert (model(x) - stepped(model, x)).abs().max() <= 1e-10


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_scan_reads_token_ids_like_forward(name):
    """scan(ids) == forward(ids) for every family built with vocab_size (it used to skip the embedding)."""
    torch.manual_seed(0)
    model = wavezoo.create_model(name, input_size=7, output_size=3, hidden_size=32, vocab_size=7).eval()
    ids = torch.randint(0, 7, (2, 9))
    with torch.no_grad():
        y, _ = model.scan(ids)
        assert torch.allclose(y, model(ids), atol=1e-5)


@pytest.mark.parametrize("name", wavezoo.list_models())
def test_bad_model_inputs_are_one_line_errors(name):
    """Issue 25 F7: batch 0, bool inputs, step(x, None), initial_state(-1); other float dtypes are cast."""
    torch.manual_seed(0)
    model = wavezoo.create_model(name, input_size=3, output_size=2, hidden_size=32).eval()
    with pytest.raises(ConfigError, match=r"got input of shape \(0, 5, 3\): an empty batch; expected batch >= 1"):
        model(torch.zeros(0, 5, 3))
    with pytest.raises(ConfigError, match=r"got x_t of shape \(0, 3\): an empty batch"):
        model.step(torch.zeros(0, 3), model.initial_state(1))
    with pytest.raises(ConfigError, match=r"got input of dtype torch.bool; expected float features or integer"):
        model(torch.zeros(2, 5, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match=r"got x_t of dtype torch.bool"):
        model.step(torch.zeros(2, 3, dtype=torch.bool), model.initial_state(2))
    with pytest.raises(ConfigError, match=r"step got state=None; expected a state: start a stream from"):
        model.step(torch.zeros(2, 3), None)
    for bad in (-1, 0):
        with pytest.raises(ConfigError, match=rf"batch_size={bad} is invalid: expected an integer >= 1"):
            model.initial_state(bad)
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        reference = model(x)
        for dtype in (torch.float64, torch.float16):
            y = model(x.to(dtype))
            assert y.dtype == torch.float32
            assert torch.allclose(y, model(x.to(dtype).float()), atol=1e-6)
            y_t, _ = model.step(x[:, 0].to(dtype), model.initial_state(2))
            assert y_t.dtype == torch.float32
        assert torch.allclose(model(x.double()), reference, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "residual": True}, {"num_heads": 1}])
def test_the_input_window_sbc_parallel_is_the_stepped_form_in_float64(options):
    """sbc_transformer(form="teacher_forced") not autoregressive: one SDPA sliding-window attention per layer over
    the given inputs == the windowed step."""
    torch.manual_seed(0)
    model = wavezoo.create_model("sbc_transformer", input_size=4, output_size=3, hidden_size=32,
                                 form="teacher_forced", **options).double()  # fmt: skip
    x = torch.randn(2, LENGTH, 4, dtype=torch.float64)
    with torch.no_grad():
        assert (model(x) - stepped(model, x)).abs().max() <= 1e-10


def teacher_forced_loop(model, x, targets):
    """The reference: the TWM step by step, the target token written where the model would write its own."""
    substrate, _ = model.initial_state(x.shape[0])
    outputs = []
    for t in range(x.shape[1]):
        is_input = model.input_steps is None or t < model.input_steps
        token = x[:, t] if model.input_mode == "replace" and is_input else targets[:, t]
        substrate, computed = wave_step(substrate, model.memory.boundary, model.input_map(token), True, "replace")
        outputs.append(write_boundary(model.readout(computed), x[:, t], is_input, model.input_mode))
    return torch.stack(outputs, 1)


SBC_RULES = [{}, {"input_mode": "replace", "input_steps": 8}, {"input_steps": 5}, {"num_layers": 2},
             {"num_layers": 2, "residual": True}, {"num_heads": 1}]  # fmt: skip


@pytest.mark.parametrize("options", SBC_RULES)
def test_teacher_forced_sbc_is_the_stepped_teacher_forced_loop_and_the_same_model(options):
    """sbc_transformer's default training form (autoregressive: teacher forcing, one boundary call on every window)
    == the teacher-forced TWM loop in float64 at length 300; and fed its own outputs as targets it gives them back:
    the model that trains teacher-forced is the one that generates."""
    torch.manual_seed(0)
    model = wavezoo.create_model("sbc_transformer", input_size=4, output_size=4, hidden_size=32, **options).double()
    assert model.teacher_forcing and model.autoregressive
    x, targets = torch.randn(2, LENGTH, 4, dtype=torch.float64), torch.randn(2, LENGTH, 4, dtype=torch.float64)
    with torch.no_grad():
        assert (model.training_forward(x, targets) - teacher_forced_loop(model, x, targets)).abs().max() <= 1e-10
        generated = model(x)
        scale = max(1.0, generated.abs().max().item())  # relative: some random inits grow without bound
        assert (generated - stepped(model, x)).abs().max() <= 1e-10 * scale
        assert (model.training_forward(x, generated) - generated).abs().max() <= 1e-10 * scale


def test_sbc_forms_and_their_errors():
    """form="auto" (default): teacher-forced when autoregressive, else recurrent; targets that are not tokens and
    the recurrent input rule on the input-window form are one-line errors."""
    build = wavezoo.create_model
    assert build("sbc_transformer", input_size=4, output_size=4).teacher_forcing
    assert not build("sbc_transformer", input_size=4, output_size=4, form="recurrent").teacher_forcing
    recurrent = build("sbc_transformer", input_size=4, output_size=3)
    assert not recurrent.teacher_forcing and not recurrent.autoregressive
    x = torch.randn(2, 6, 4)
    assert torch.equal(recurrent.training_forward(x, torch.zeros(2, 6, dtype=torch.long)), recurrent(x))
    message = r"teacher forcing reads the targets as the tokens: expected targets \[batch, time, output_size=4\]"
    with pytest.raises(ConfigError, match=message + r" matching the input, got \(2, 6\)"):
        build("sbc_transformer", input_size=4, output_size=4).training_forward(x, torch.zeros(2, 6))
    with pytest.raises(ConfigError, match="form='teacher_forced' without autoregressive reads every input as a token"):
        build("sbc_transformer", input_size=4, output_size=3, form="teacher_forced", input_steps=8)
    with pytest.raises(ConfigError, match="teacher_forcing=True .* needs autoregressive=True"):
        WaveMemoryModel(4, 3, 32, torch.nn.Identity(), 8, teacher_forcing=True)
    message = "form='parallel' is invalid: expected one of 'auto', 'teacher_forced', 'recurrent'"
    with pytest.raises(ConfigError, match=message):
        build("sbc_transformer", input_size=4, output_size=4, form="parallel")


def test_teacher_forced_sbc_training_has_a_fixed_number_of_ops():
    """One fwd+bwd of the teacher-forced SBC dispatches the same aten ops at length 108 and 432 (issue 26)."""
    from benchmarks.measure import aten_ops, fwd_bwd

    model = wavezoo.create_model("sbc_transformer", input_size=8, output_size=8)
    counts = []
    for length in (108, 432):
        x, targets = torch.randn(4, length, 8), torch.randn(4, length, 8)
        counts.append(aten_ops(fwd_bwd(lambda x, t=targets: model.training_forward(x, t), x)))
    assert counts[1] <= 1.5 * counts[0], counts


def test_the_solver_nests_for_many_chunks_and_has_a_fixed_number_of_ops(monkeypatch):
    """Many chunks: the chunk states by the solver again (nested), still the recursion to 1e-12; and the same
    number of tensor operations at length 108 and 432."""
    from wavezoo.core import linear_boundary

    torch.manual_seed(1)
    lags, past = torch.randn(2, 2, 2).double() * 0.3, torch.randn(3, 2, 2).double()
    drive = torch.randn(3, 3000, 2).double()
    reference = recursion(lags, drive, past)
    assert (solve(lags, drive, past) - reference).abs().max() < 1e-12
    monkeypatch.setattr(linear_boundary, "NESTED", 8)  # nested at every level with more than 3 chunks
    assert (solve(lags, drive, past) - reference).abs().max() < 1e-12
    monkeypatch.undo()

    def count(length):
        with torch.profiler.profile() as prof:
            solve(lags, drive[:, :length], past)
        return sum(event.name.startswith("aten::") for event in prof.events())

    assert count(108) == count(432)


@pytest.mark.parametrize("positions,heads", [(True, 1), (True, 2), (False, 2)])
def test_attention_over_every_window_at_once_is_the_boundary_on_each_window(positions, heads):
    """AttentionBoundary.attend_windows (keys and values once per column, the windows as strided views: the
    teacher-forced SBC's training path) == the boundary called on each window, values and gradients, float64."""
    torch.manual_seed(0)
    boundary = AttentionBoundary(history=5, dim=6, num_heads=heads, positions=positions).double()
    columns = torch.randn(3, 5 + 40 - 1, 6, dtype=torch.float64, requires_grad=True)
    fast = boundary.attend_windows(columns)
    windows = wave_windows(columns, 5, 40).flatten(0, 1)
    reference = boundary(windows).reshape(3, 40, 6)
    assert fast.shape == (3, 40, 6) and (fast - reference).abs().max() <= 1e-12
    weights = torch.randn_like(fast)
    grads = [torch.autograd.grad((out * weights).sum(), [columns, *boundary.parameters()]) for out in (fast, reference)]
    assert all((a - b).abs().max() <= 1e-12 for a, b in zip(*grads, strict=True))
