"""The waves in TensorBoard: images of the hidden state and the spectrum at every validation, hp_metric."""

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import wavezoo
from wavezoo.cli import main
from wavezoo.lit.wave_images import RNN_FAMILIES, WAVE_FAMILIES, heatmap, hidden_trace, spectrum_image, step_jacobian

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def events(folder: Path) -> EventAccumulator:
    (path,) = folder.rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(path), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def tiny_fit(tmp_path: Path, config: str, *extra: str) -> EventAccumulator:
    args = ["fit", "--config", str(ROOT / config), "--trainer.max_steps", "4", "--data.steps_per_epoch", "2"]
    args += ["--trainer.logger.init_args.save_dir", str(tmp_path), "--checkpoint.dirpath", str(tmp_path / "ckpt")]
    main([*args, *extra, *QUIET])
    return events(tmp_path)


def test_a_short_wave_family_fit_logs_images_and_hp_metric(tmp_path):
    small = ["--model.init_args.hidden_size", "32", "--model.init_args.model_kwargs", "{channels: 2}"]
    small += ["--data.delay", "6", "--data.val_batches", "1", "--data.test_batches", "1"]
    run = tiny_fit(tmp_path, "configs/copy/wave_rnn.yaml", *small)
    assert {"waves/hidden_state", "waves/spectrum"} <= set(run.Tags()["images"])
    assert [image.step for image in run.Images("waves/spectrum")] == [2, 4]  # every validation
    hp = [event.value for event in run.Scalars("hp_metric")]
    val = [event.value for event in run.Scalars("val/loss")]
    assert hp[0] == -1 and hp[1:] == pytest.approx(val) and len(val) == 2  # Lightning's -1, then the monitored metric


def test_the_wave_basis_images_where_the_model_has_a_linear_recurrence(tmp_path):
    small = ["--model.init_args.hidden_size", "64", "--data.val_batches", "1", "--data.test_batches", "1"]
    run = tiny_fit(tmp_path, "configs/variable_binding/elman.yaml", *small)
    tags = set(run.Tags()["images"])
    assert tags == {"waves/hidden_state", "waves/hidden_state_wave_basis", "waves/W_hh_wave_basis", "waves/spectrum"}


def test_one_flag_turns_the_waves_off(tmp_path):
    small = ["--model.init_args.hidden_size", "16", "--data.val_batches", "1", "--data.test_batches", "1"]
    run = tiny_fit(tmp_path, "configs/variable_binding/elman.yaml", *small, "--waves.enabled", "false")
    assert run.Tags()["images"] == [] and [e.value for e in run.Scalars("hp_metric")] == [-1]


@pytest.mark.parametrize("family", RNN_FAMILIES + WAVE_FAMILIES)
def test_every_recurrent_and_wave_family_has_a_state_trace_and_a_step_jacobian(family):
    torch.manual_seed(0)
    net = wavezoo.create_model(family, input_size=8, output_size=8, hidden_size=64).eval()
    probe = torch.randn(1, 12, 8)
    with torch.no_grad():
        trace = hidden_trace(net, probe)
    assert trace.shape[0] == 12 and trace.shape[1] > 0 and torch.isfinite(trace).all()
    jacobian = step_jacobian(net, probe)
    assert jacobian.shape[0] == jacobian.shape[1] > 0 and torch.isfinite(jacobian).all()


def test_the_elman_step_jacobian_at_zero_is_w_hh_and_the_trace_its_hidden_states():
    """A control on the fallback: for h(t) = tanh(W_hh h(t-1) + W_uh u(t)) at h = 0, u = 0 the Jacobian is W_hh."""
    net = wavezoo.create_model("elman", input_size=3, output_size=2, hidden_size=16)
    probe = torch.randn(1, 5, 3)
    assert torch.allclose(step_jacobian(net, probe), net.rnn.weight_hh_l0, atol=1e-6)
    with torch.no_grad():
        stepped = torch.stack([h for h in _step_states(net, probe)])
        assert torch.allclose(hidden_trace(net, probe), stepped, atol=1e-6)


def _step_states(net, probe):
    state = net.initial_state(1)
    for t in range(probe.shape[1]):
        _, state = net.step(probe[:, t], state)
        yield state[-1, 0]


def test_images_are_rgb_in_the_unit_range():
    image = heatmap(torch.tensor([[1.0, -2.0], [0.0, 0.5]]))
    assert image.shape == (3, 256, 256) and image.min() >= 0 and image.max() <= 1
    assert image[:, 0, 0].tolist() == pytest.approx([1.0, 0.5, 0.5])  # 1 of max 2: light red
    assert image[:, 0, 200].tolist() == pytest.approx([0.0, 0.0, 1.0])  # -2: full blue
    spectrum = spectrum_image(torch.tensor([1.0 + 0j, 0.5j]))
    assert spectrum.shape == (3, 192, 192) and (spectrum[0] - spectrum[1] > 0.5).sum() == 18  # two 3 x 3 red dots
