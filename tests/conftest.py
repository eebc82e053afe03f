import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Two cores: recurrent loops slow down badly when threads oversubscribe.
    torch.set_num_threads(1)


@pytest.fixture
def float64():
    """Run a test with float64 as the default dtype (exactness checks), restoring the previous default."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def train_tiny_checkpoint(path, model: str = "elman", task: str = "T1", steps: int = 1):
    """Train a 16-unit model for a few steps on a variable-binding task and save a Lightning checkpoint."""
    from wavezoo.data import VariableBindingDataModule
    from wavezoo.lit import SequenceRegression
    from wavezoo.lit.reliability import quiet_trainer

    module = SequenceRegression(model=model, input_size=8, output_size=8, hidden_size=16)
    trainer = quiet_trainer(max_steps=steps, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(module, datamodule=VariableBindingDataModule(task, horizons=[4], steps_per_epoch=steps))
    trainer.save_checkpoint(path)
    return path


def one_line_error(args, capsys) -> str:
    """Run ``wavezoo ARGS`` in this process; assert it exits with status 2 and prints one line, no traceback."""
    from wavezoo.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def no_logger(folder) -> list[str]:
    """CLI arguments of a run without a logger whose files go to ``folder``."""
    return ["--trainer.logger", "false", "--trainer.default_root_dir", str(folder)]


def run_interpreted(test_file: str, *unset: str) -> None:
    """Run ``test_file`` again in a subprocess with ``TRITON_INTERPRET=1`` (Triton reads it when it is imported, so
    the Triton kernel tests run there, on the CPU), without the environment variables ``unset``; its tests must pass."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    for name in unset:
        env.pop(name, None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-2000:]
