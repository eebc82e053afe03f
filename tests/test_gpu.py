"""The GPU tier (``-m gpu``): every family on CUDA equals its CPU result, in float32 and under bf16 autocast.

Skipped where torch sees no CUDA device, so CPU CI is unchanged; ``scripts/gpu_check.sh`` runs it on a borrowed GPU.
Tolerances: float32 on CUDA may use TF32 matmuls (cuBLAS/cuDNN), hence 2e-3 relative; bf16 autocast keeps about
three significant digits, hence 5e-2 relative on the outputs. Gradients through T steps of a recurrence that does not
contract (the iRNN: W_hh = I) carry one TF32 rounding (unit roundoff 2^-11) per step forward and per step backward,
hence a bound of 2 T 2^-11 (1.1e-2 at T = 11) where the 5e-3 of the contracting families is too tight.
"""

from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

import wavezoo

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

FAMILIES = wavezoo.list_models()


TF32_UNIT = 2.0**-11  # unit roundoff of TF32's 10-bit mantissa
STEPS = 11


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float().cpu() - b.float().cpu()).norm() / b.float().cpu().norm().clamp_min(1e-12)).item()


def pair(name: str, hidden_size: int = 48):
    torch.manual_seed(0)
    cpu = wavezoo.create_model(name, input_size=3, output_size=5, hidden_size=hidden_size)
    gpu = wavezoo.create_model(name, input_size=3, output_size=5, hidden_size=hidden_size).cuda()
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_backward_on_cuda_equal_the_cpu(name, training):
    cpu, gpu = pair(name)
    cpu.train(training)
    gpu.train(training)
    x = torch.randn(4, STEPS, 3)
    y_cpu, y_gpu = cpu(x), gpu(x.cuda())
    assert y_gpu.device.type == "cuda" and relative_error(y_gpu, y_cpu) < 2e-3
    y_cpu.square().mean().backward()
    y_gpu.square().mean().backward()
    tolerance = 2 * STEPS * TF32_UNIT if name == "irnn" else 5e-3  # see the module docstring
    for (label, p_cpu), p_gpu in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        if p_cpu.grad is not None and p_cpu.grad.norm() > 0:
            assert relative_error(p_gpu.grad, p_cpu.grad) < tolerance, label


def test_teacher_forced_sbc_training_on_cuda_equals_the_cpu():
    """sbc_transformer's default training form (autoregressive: teacher-forced, every window at once) on CUDA."""
    torch.manual_seed(0)
    cpu = wavezoo.create_model("sbc_transformer", input_size=4, output_size=4, hidden_size=32, history=4)
    gpu = wavezoo.create_model("sbc_transformer", input_size=4, output_size=4, hidden_size=32, history=4).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x, targets = torch.randn(4, 40, 4), torch.randn(4, 40, 4)
    y_cpu, y_gpu = cpu.training_forward(x, targets), gpu.training_forward(x.cuda(), targets.cuda())
    assert relative_error(y_gpu, y_cpu) < 2e-3
    y_cpu.square().mean().backward()
    y_gpu.square().mean().backward()
    for (label, p_cpu), p_gpu in zip(cpu.named_parameters(), gpu.parameters(), strict=True):
        assert relative_error(p_gpu.grad, p_cpu.grad) < 5e-3, label


@pytest.mark.parametrize("name", FAMILIES)
def test_bf16_autocast_stays_close(name):
    cpu, gpu = pair(name)
    x = torch.randn(4, 11, 3)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = gpu(x.cuda())
    assert torch.isfinite(y).all() and relative_error(y, cpu(x)) < 5e-2


@pytest.mark.parametrize("name", FAMILIES)
def test_steps_on_cuda_equal_the_sequence(name):
    _, gpu = pair(name)
    gpu.eval()
    x = torch.randn(2, 6, 3, device="cuda")
    state, outputs = gpu.initial_state(2, device="cuda"), []
    with torch.no_grad():
        for t in range(6):
            y_t, state = gpu.step(x[:, t], state)
            outputs.append(y_t)
        assert relative_error(torch.stack(outputs, 1), gpu(x)) < 1e-4


def test_wave_rnn_at_the_authors_size_on_cuda():
    """The structured kernel on CUDA (no buffer pool there) equals the CPU one at 1,024 units (4 x 256 cells)."""
    cpu, gpu = pair("wave_rnn", hidden_size=1024)
    x = torch.randn(8, 50, 3)
    assert relative_error(gpu(x.cuda()), cpu(x)) < 2e-3


def test_a_published_checkpoint_gives_its_metric_on_cuda():
    from wavezoo.pretrained import compare_metrics, evaluate, pretrained_info

    name = "wave_rnn_copy"
    assert compare_metrics(evaluate(name, accelerator="gpu"), pretrained_info(name)["metrics"]) == []


def tensors(batch):
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, dict):
        for value in batch.values():
            yield from tensors(value)
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            yield from tensors(value)


class DevicesSeen(Callback):
    """Records the device type of every training batch's tensors and of the model's parameters at each step."""

    def __init__(self) -> None:
        self.devices: set[str] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.devices |= {t.device.type for t in tensors(batch)}
        self.devices.add(next(pl_module.parameters()).device.type)


@pytest.mark.parametrize("task", ["variable_binding", "copy", "digits"])
def test_training_batches_move_to_the_device(task, tmp_path):
    """A short fit of a paper task, a synthetic task and a real benchmark on one GPU in bf16-mixed precision."""
    from wavezoo.cli import build_cli

    config = {"variable_binding": "elman", "copy": "wave_rnn_keller", "digits": "gru"}[task]
    path = Path(__file__).parents[1] / "configs" / task / f"{config}.yaml"
    options = {"accelerator": "gpu", "devices": "1", "precision": "bf16-mixed", "max_steps": "20", "logger": "false",
               "enable_progress_bar": "false", "default_root_dir": str(tmp_path)}  # fmt: skip
    args = ["--config", str(path)] + [item for key, value in options.items() for item in (f"--trainer.{key}", value)]
    cli = build_cli(args, run=False)
    seen = DevicesSeen()
    cli.trainer.callbacks.append(seen)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    # during the fit (Lightning's teardown moves the model back to the CPU afterwards)
    assert cli.trainer.global_step == 20 and seen.devices == {"cuda"}, seen.devices


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_gpu_ddp_trains_like_one_gpu_with_the_same_global_batch(tmp_path):
    """The multi-GPU recipe of the README: ``--trainer.accelerator gpu --trainer.devices 2 --trainer.strategy ddp``
    with batch B per device trains like one GPU with batch 2B (the CPU stand-in: tests/test_reliability.py), up to
    TF32 and reduction-order rounding."""
    import os
    import subprocess
    import sys

    config = Path(__file__).parents[1] / "configs" / "variable_binding" / "elman.yaml"
    common = ["fit", "--config", str(config), "--model.init_args.hidden_size", "32", "--trainer.max_steps", "30",
              "--data.steps_per_epoch", "30", "--data.val_batches", "2", "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "gpu"]  # fmt: skip
    runs = {"one": ["--data.batch_size", "32", "--trainer.devices", "1"],
            "two": ["--data.batch_size", "16", "--trainer.devices", "2", "--trainer.strategy", "ddp"]}  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, extra in runs.items():
        cmd = [sys.executable, "-m", "wavezoo.cli", *common, *extra, "--trainer.default_root_dir", str(tmp_path / name)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    one, two = (torch.load(tmp_path / d / "checkpoints/last.ckpt", weights_only=True)["state_dict"] for d in runs)
    for key in one:
        assert relative_error(two[key], one[key]) < 1e-2, key
