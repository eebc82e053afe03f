"""Reliability: determinism, resume after SIGKILL, atomic checkpoints, NaN stop, 2-process DDP."""

import contextlib
import errno
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
from conftest import no_logger, one_line_error

from wavezoo.cli import build_cli
from wavezoo.data import VariableBindingDataModule
from wavezoo.errors import TrainingDiverged
from wavezoo.lit import SequenceRegression
from wavezoo.lit.reliability import AtomicCheckpointIO, RunCheckpoint, RunFolderLock, StopOnNonFiniteLoss, quiet_trainer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/variable_binding/elman.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL = ["--config", CONFIG, "--model.init_args.hidden_size", "32", "--data.val_batches", "2"]
SMALL += ["--data.test_batches", "2"]
TWO_CPU_PROCESSES = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]


STARTED: list[subprocess.Popen] = []  # every `wavezoo` process of the running test (killed at its end)


def wavezoo(*args: str, **kwargs) -> subprocess.Popen:
    """``python -m wavezoo.cli ARGS`` in its own process group (DDP workers included), killed after the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "wavezoo.cli", *args, *QUIET]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **kwargs
    )
    STARTED.append(proc)
    return proc


def kill_started() -> None:
    """Kill the process group of every run started and not yet ended (then reap it)."""
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """A failed assertion must not leave a run going for minutes (it once ran 7 minutes after the failure)."""
    yield
    kill_started()


def finish(proc: subprocess.Popen) -> str:
    """Wait for the run to end, however long a loaded machine takes (no wall-clock limit), and check it passed."""
    out, _ = proc.communicate()
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
    # kill it once 100 steps are saved, however long that takes under load (no wall-clock limit)
    while not (last.exists() and torch.load(last, weights_only=True)["global_step"] >= 100):
        assert victim.poll() is None, f"the run ended before it was killed: {victim.communicate()[0][-3000:]}"
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


@pytest.mark.parametrize(
    ("every", "save_every", "message", "last_step"),
    [
        (None, 1, "became nan at step 3;", 3),  # CPU default: every step
        (5, 1, "became non-finite at step 3;", 3),  # read at the next checkpoint write (step 4), none written after 3
        (5, 10, "became non-finite at step 3;", None),  # read at step 5, the periodic read of an accelerator
    ],
)
def test_non_finite_loss_stops_without_overwriting_the_best_checkpoint(tmp_path, every, save_every, message, last_step):
    data = VariableBindingDataModule("T1", horizons=[5], steps_per_epoch=10, val_batches=1, batch_size=8)
    module = DivergesAtStep3(model="elman", input_size=8, output_size=8, hidden_size=8)
    checkpoint = pl.callbacks.ModelCheckpoint(tmp_path, every_n_train_steps=save_every, save_last=True, save_top_k=-1)
    trainer = pl.Trainer(
        max_steps=10,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoint, StopOnNonFiniteLoss(check_every_n_steps=every)],
        plugins=[AtomicCheckpointIO()],
    )
    with pytest.raises(TrainingDiverged, match=rf"training loss {message} training stopped"):
        trainer.fit(module, datamodule=data)
    if last_step is None:
        assert not (tmp_path / "last.ckpt").exists()
        return
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert last["global_step"] == last_step
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
    out, _ = proc.communicate()
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


def test_every_family_and_datamodule_trains_under_ddp(tmp_path):
    """One 2-process DDP job (torchrun, gloo) fits and validates every family and a DataModule of each kind in turn
    (tests/scripts/ddp_cycle.py): one DDP start for all of them."""
    script = ROOT / "tests/scripts/ddp_cycle.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]  # a free port
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([*cmd, str(script), str(tmp_path)], env=env, capture_output=True, text=True)  # no time limit
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ddp ok")]
    sys.path.insert(0, str(script.parent))
    from ddp_cycle import CONFIGS

    assert [line.split()[2] for line in lines] == CONFIGS
    assert all(" step 2 world 2 " in line and "val/loss" in line for line in lines)


# -- no work lost: step checkpoints, resume into the run folder, orphans, locks ------------------------------------


class RecordingIO(AtomicCheckpointIO):
    """Records (file name, global step) of every checkpoint written."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[str, int]] = []

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        self.saved.append((Path(path).name, checkpoint["global_step"]))
        super().save_checkpoint(checkpoint, path, storage_options)


def test_step_checkpoints_from_the_start_and_best_only_at_validation(tmp_path):
    """every_n_train_steps=4 with validation every 10 steps: last.ckpt at 4, 8, 10 (validation), 12, 16, 20, 24 and
    25 (the end); the best file only at validations (10, 20), never labelled with a stale metric."""
    io = RecordingIO()
    callback = RunCheckpoint(
        tmp_path, filename="best-step{step}", monitor="val/loss", every_n_train_steps=4, auto_insert_metric_name=False
    )
    data = VariableBindingDataModule("T1", horizons=[4], steps_per_epoch=10, val_batches=1, batch_size=8)
    module = SequenceRegression(model="elman", input_size=8, output_size=8, hidden_size=8)
    quiet_trainer(max_steps=25, callbacks=[callback], plugins=[io]).fit(module, datamodule=data)
    assert [step for name, step in io.saved if name == "last.ckpt"] == [4, 8, 10, 12, 16, 20, 24, 25]
    best = [(name, step) for name, step in io.saved if name.startswith("best")]
    assert best[0] == ("best-step10.ckpt", 10) and all(step in (10, 20) for _, step in best)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.ckpt", Path(callback.best_model_path).name])


def test_resume_last_continues_the_run_folder_and_keeps_the_best(tmp_path):
    """`--ckpt_path last` finds the newest run of the config, continues in its folder (no version_1), keeps the
    best known so far (mode=max on the loss: the first validation stays the best), removes orphans of killed
    writes, writes checkpoints with the run files' permissions, and `--test_after_fit` tests the kept best."""
    common = [*SMALL, "--data.steps_per_epoch", "10", "--checkpoint.mode", "max", *QUIET]
    common += ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    build_cli(["fit", *common, "--trainer.max_steps", "20"])
    run = tmp_path / "variable_binding/elman/version_0"
    folder = run / "checkpoints"
    orphan = folder / ".tmp-999-dead.ckpt"
    orphan.write_bytes(b"half a checkpoint")
    cli = build_cli(["fit", *common, "--trainer.max_steps", "30", "--ckpt_path", "last", "--test_after_fit", "true"])
    assert sorted(p.name for p in (tmp_path / "variable_binding/elman").iterdir()) == ["version_0"]
    assert sorted(p.name for p in folder.iterdir()) == ["best-step10.ckpt", "last.ckpt"]
    assert (
        cli.trainer.global_step == 30
        and Path(cli.trainer.checkpoint_callback.best_model_path).name == "best-step10.ckpt"
    )
    assert Path(cli.trainer.ckpt_path).name == "best-step10.ckpt"  # what --test_after_fit loaded
    assert (folder / "last.ckpt").stat().st_mode == (run / "config.yaml").stat().st_mode


def test_a_second_run_into_a_busy_run_folder_is_refused(tmp_path, capsys):
    from filelock import FileLock

    held = FileLock(tmp_path / RunFolderLock.LOCK_NAME)  # what a running fit holds
    with held:
        err = one_line_error(["fit", *SMALL, *no_logger(tmp_path), *QUIET], capsys)
    assert f"wavezoo: error: run folder '{tmp_path}' is in use by another running wavezoo fit" in err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "config.yaml").exists()
    build_cli(
        ["fit", *SMALL, *no_logger(tmp_path), "--trainer.max_steps", "1", *QUIET]
    )  # the lock left with its holder


def test_disk_full_while_writing_a_checkpoint_is_one_line(tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    steps = ["--trainer.max_steps", "2", "--checkpoint.every_n_train_steps", "1"]
    err = one_line_error(["fit", *SMALL, *no_logger(tmp_path), *steps, *QUIET], capsys)
    assert "wavezoo: error: cannot write checkpoint" in err and "No space left on device (the disk is full)" in err
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


UNWRITABLE = Path("/sys/wavezoo-test")  # sysfs refuses new folders, even to root


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a sysfs mount as an unwritable folder")
@pytest.mark.parametrize("where", ["--trainer.default_root_dir", "--trainer.logger.init_args.save_dir"])
def test_unwritable_output_folder_is_one_line(where, capsys):
    logger = ["--trainer.logger", "false"] if where == "--trainer.default_root_dir" else []
    err = one_line_error(["fit", *SMALL, *logger, where, str(UNWRITABLE), "--trainer.max_steps", "1", *QUIET], capsys)
    assert "wavezoo: error: cannot write '/sys/wavezoo-test" in err


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a sysfs mount as an unwritable folder")
def test_analyze_into_an_unwritable_folder_is_one_line(capsys):
    ckpt = ROOT / "checkpoints/elman_vb_t1/lightning.ckpt"
    err = one_line_error(["analyze", "--ckpt", str(ckpt), "--out", str(UNWRITABLE)], capsys)
    assert "wavezoo: error: cannot write '/sys/wavezoo-test'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trainer.devices", "0"], "trainer.devices=0 is invalid: expected an integer >= 1, -1 (all devices)"),
        (["--seed_everything", "-3"], "seed_everything=-3 is invalid: expected true, false or an integer in [0, "),
        (["--seed_everything", str(2**40)], f"seed_everything={2**40} is invalid"),
        pytest.param(  # Lightning's own MisconfigurationException, first line
            ["--trainer.accelerator", "gpu"],
            "No supported gpu backend found!",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU"),
        ),
        (
            ["--model.init_args.scheduler", "cosine", "--model.init_args.scheduler_kwargs", "{warmup: 5}"],
            "scheduler_kwargs key 'warmup' is invalid for scheduler='cosine': expected one of 'T_max', 'eta_min'",
        ),
    ],
)
def test_trainer_and_module_mistakes_are_one_line(args, message, tmp_path, capsys):
    err = one_line_error(["fit", *SMALL, *no_logger(tmp_path), *args, *QUIET], capsys)
    assert f"wavezoo: error: {message}" in err


@pytest.mark.parametrize(
    ("subcommand", "ckpt", "message"),
    [
        ("test", "best", "ckpt_path='best' means the best checkpoint of a fit in the same command"),
        ("test", "last", "ckpt_path='last' found no last.ckpt in"),
        ("fit", "last", "ckpt_path='last' found no last.ckpt in"),
    ],
)
def test_best_or_last_without_a_run_is_one_line(subcommand, ckpt, message, tmp_path, capsys):
    args = [subcommand, *SMALL, "--trainer.logger.init_args.save_dir", str(tmp_path), "--ckpt_path", ckpt, *QUIET]
    assert f"wavezoo: error: {message}" in one_line_error(args, capsys)


def test_ddp_spawn_trains_and_hands_back_its_weights(tmp_path):
    """ddp_spawn passes the trained weights back through a temporary weights-only file (`.temp.ckpt`)."""
    finish(
        wavezoo(
            "fit",
            *SMALL,
            "--trainer.max_steps",
            "2",
            "--data.steps_per_epoch",
            "2",
            "--data.batch_size",
            "4",
            "--trainer.logger",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp_spawn",
        )
    )
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 2


def test_a_run_still_going_when_its_test_ends_is_killed(tmp_path):
    proc = wavezoo("fit", *SMALL, "--trainer.max_steps", "100000", *no_logger(tmp_path))
    assert proc.poll() is None
    kill_started()
    assert proc.returncode == -signal.SIGKILL and not STARTED
