"""Reliability: determinism, resume after SIGKILL, atomic checkpoints, NaN stop, 2-process DDP."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from wavezoo.cli import build_cli
from wavezoo.data import VariableBindingDataModule
from wavezoo.errors import TrainingDiverged
from wavezoo.lit import SequenceRegression
from wavezoo.lit.reliability import AtomicCheckpointIO, StopOnNonFiniteLoss

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/variable_binding/elman.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL = ["--config", CONFIG, "--model.init_args.hidden_size", "32", "--data.val_batches", "2"]
SMALL += ["--data.test_batches", "2"]
TWO_CPU_PROCESSES = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]


def wavezoo(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "wavezoo.cli", *args, *QUIET]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_same_seed_same_metrics(tmp_path):
    results = []
    for run in range(2):
        cli = build_cli(
            [
                "fit",
                *SMALL,
                "--trainer.max_steps",
                "40",
                "--data.steps_per_epoch",
                "20",
                "--trainer.logger.init_args.save_dir",
                str(tmp_path / str(run)),
                *QUIET,
            ]
        )
        results.append(cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0])
    assert results[0] == results[1]


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    steps = ["--trainer.max_steps", "400", "--data.steps_per_epoch", "100", "--checkpoint.every_n_train_steps", "10"]
    common = [*SMALL, *steps, "--trainer.logger.init_args.version", "run", "--data.curriculum_threshold", "0.6"]
    reference = wavezoo("fit", *common, "--trainer.logger.init_args.save_dir", str(tmp_path / "ref"))
    victim_dir = tmp_path / "victim"
    victim = wavezoo("fit", *common, "--trainer.logger.init_args.save_dir", str(victim_dir))
    last = victim_dir / "variable_binding/elman/run/checkpoints/last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline:
        if last.exists() and torch.load(last, weights_only=True)["global_step"] >= 100:
            break
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    finish(reference)
    killed_at = torch.load(last, weights_only=True)
    assert 100 <= killed_at["global_step"] < 400, "the run must be killed mid-training"
    stage = killed_at["VariableBindingDataModule"]["stage"]
    assert stage > 0 and killed_at["VariableBindingDataModule"]["batches_drawn"] == killed_at["global_step"]

    resumed = wavezoo("fit", *common, "--trainer.logger.init_args.save_dir", str(victim_dir), "--ckpt_path", "last")
    finish(resumed)
    final = torch.load(last, weights_only=True)
    expected = torch.load(tmp_path / "ref/variable_binding/elman/run/checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == expected["global_step"] == 400
    assert final["VariableBindingDataModule"] == expected["VariableBindingDataModule"]
    for name, value in expected["state_dict"].items():
        assert torch.allclose(final["state_dict"][name], value, atol=1e-6), name


def test_last_checkpoint_follows_every_validation_even_without_improvement(tmp_path):
    """Lightning writes last.ckpt only with a new top-k checkpoint; ours also when the metric did not improve
    (here mode=max on a falling loss: only the first validation is a "best"), so resuming loses nothing."""
    cli = build_cli(
        [
            "fit",
            *SMALL,
            "--trainer.max_steps",
            "6",
            "--data.steps_per_epoch",
            "2",
            "--checkpoint.mode",
            "max",
            "--trainer.logger",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path),
            *QUIET,
        ]
    )
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best-step2.ckpt", "last.ckpt"]
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert last["global_step"] == cli.trainer.global_step == 6
    assert last["VariableBindingDataModule"]["batches_drawn"] == 6


def test_checkpoint_writes_are_atomic(tmp_path):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        io.save_checkpoint({"step": 2, "blob": torch.zeros(1000), "bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=True) == {"step": 1}  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


class DivergesAtStep3(SequenceRegression):
    def loss(self, outputs, targets, mask):
        loss = super().loss(outputs, targets, mask)
        return loss * float("nan") if self.global_step == 3 else loss


def test_non_finite_loss_stops_without_overwriting_the_best_checkpoint(tmp_path):
    data = VariableBindingDataModule("T1", horizons=[5], steps_per_epoch=10, val_batches=1, batch_size=8)
    module = DivergesAtStep3(model="elman", input_size=8, output_size=8, hidden_size=8)
    checkpoint = pl.callbacks.ModelCheckpoint(tmp_path, every_n_train_steps=1, save_last=True, save_top_k=-1)
    trainer = pl.Trainer(
        max_steps=10,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoint, StopOnNonFiniteLoss()],
        plugins=[AtomicCheckpointIO()],
    )
    with pytest.raises(TrainingDiverged, match=r"training loss became nan at step 3; training stopped"):
        trainer.fit(module, datamodule=data)
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_cli_reports_divergence_in_one_line(tmp_path):
    proc = wavezoo(
        "fit",
        *SMALL,
        "--trainer.max_steps",
        "5",
        "--model.init_args.lr",
        "1e30",
        "--trainer.gradient_clip_val",
        "null",
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
    )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert re.search(r"wavezoo: error: training loss became (nan|inf) at step \d", out)
    assert "Traceback" not in out


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    common = [
        *SMALL,
        "--trainer.max_steps",
        "30",
        "--data.steps_per_epoch",
        "30",
        "--trainer.logger",
        "false",
        "--checkpoint.filename",
        "final",
    ]
    single = wavezoo("fit", *common, "--data.batch_size", "32", "--trainer.default_root_dir", str(tmp_path / "one"))
    finish(single)
    start = time.time()
    ddp = wavezoo(
        "fit",
        *common,
        "--data.batch_size",
        "16",
        "--trainer.default_root_dir",
        str(tmp_path / "two"),
        *TWO_CPU_PROCESSES,
    )
    finish(ddp)
    print(f"2-process DDP fit: {time.time() - start:.1f} s")
    one, two = (weights(tmp_path / d / "checkpoints/last.ckpt") for d in ("one", "two"))
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5), name

    metrics = []
    for devices in ("1", "2"):
        out = finish(
            wavezoo(
                "test",
                *SMALL,
                "--trainer.logger",
                "false",
                "--trainer.devices",
                devices,
                "--trainer.accelerator",
                "cpu",
                "--trainer.strategy",
                "ddp" if devices == "2" else "auto",
                "--ckpt_path",
                str(tmp_path / "one/checkpoints/last.ckpt"),
                "--trainer.default_root_dir",
                str(tmp_path / f"test{devices}"),
            )
        )
        metrics.append(float(re.search(r"test/mse\s*│\s*([0-9.e+-]+)", out).group(1)))
    assert metrics[0] == pytest.approx(metrics[1], rel=1e-5)


FAMILY_CONFIGS = [
    "variable_binding/" + name
    for name in ("gru", "lstm", "transformer", "twm_lbc", "twm_sbc", "sbc_transformer", "lbc_ssm")
] + ["copy/wave_rnn", "copy/irnn", "adding/elman", "hds/elman"]


@pytest.mark.parametrize("config", FAMILY_CONFIGS)
def test_every_family_and_datamodule_runs_under_ddp(config, tmp_path):
    """Two CPU processes (gloo) train and validate every family and DataModule; checkpoints hold one state."""
    size = "60" if "wave_rnn" in config else "64" if "lbc_ssm" in config else None
    hidden = ["--model.init_args.hidden_size", size] if size else []
    finish(
        wavezoo(
            "fit",
            "--config",
            str(ROOT / "configs" / f"{config}.yaml"),
            *hidden,
            "--trainer.max_steps",
            "2",
            "--data.steps_per_epoch",
            "2",
            "--data.val_batches",
            "2",
            "--data.batch_size",
            "4",
            "--trainer.logger",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path),
            *TWO_CPU_PROCESSES,
        )
    )
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 2
