"""The paper's protocol end to end (minutes of training): run with `pytest -m slow`."""

from pathlib import Path

import pytest

from wavezoo.cli import build_cli

CONFIG = Path(__file__).resolve().parents[1] / "configs/variable_binding/elman.yaml"


@pytest.mark.slow
@pytest.mark.parametrize(("task", "threshold"), [("T1", 0.99), ("T3", 0.97)])
def test_elman_solves_variable_binding_at_horizon_200(task, threshold, tmp_path):
    cli = build_cli(
        [
            "fit",
            "--config",
            str(CONFIG),
            "--data.task",
            task,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    (result,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    assert result["test/acc"] >= threshold
