"""User mistakes around files and checkpoints: one clear line, never a traceback (see docs/errors.md)."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from conftest import one_line_error, train_tiny_checkpoint

from wavezoo import ConfigError
from wavezoo.cli import main
from wavezoo.data import VariableBindingDataModule
from wavezoo.lit import SequenceRegression

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/variable_binding/elman.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]


@pytest.fixture(scope="module")
def elman_checkpoint(tmp_path_factory) -> Path:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "elman.ckpt")


def test_missing_checkpoint_file(capsys):
    err = one_line_error(["test", "--config", CONFIG, "--ckpt_path", "missing.ckpt", *QUIET], capsys)
    assert "wavezoo: error: checkpoint 'missing.ckpt' does not exist; expected the path of a .ckpt file" in err


def test_truncated_checkpoint_file(elman_checkpoint, tmp_path, capsys):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(elman_checkpoint.read_bytes()[:2000])
    err = one_line_error(["test", "--config", CONFIG, "--ckpt_path", str(truncated), *QUIET], capsys)
    assert f"checkpoint '{truncated}' cannot be read, it is truncated or corrupted" in err
    with pytest.raises(ConfigError, match="cannot be read, it is truncated or corrupted"):
        SequenceRegression.load_from_checkpoint(truncated)


def test_file_that_is_not_a_checkpoint(tmp_path):
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ConfigError, match="has no 'state_dict': not a Lightning checkpoint of wavezoo"):
        SequenceRegression.load_from_checkpoint(other)


def test_checkpoint_of_another_architecture(elman_checkpoint):
    module = SequenceRegression(model="lstm", input_size=8, output_size=8, hidden_size=16)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    data = VariableBindingDataModule("T1", test_batches=1)
    with pytest.raises(ConfigError, match=r"trained with another architecture: model='elman' \(this model: 'lstm'\)"):
        trainer.test(module, datamodule=data, ckpt_path=str(elman_checkpoint))


def test_checkpoint_with_missing_keys():
    module = SequenceRegression(model="elman", input_size=8, output_size=8, hidden_size=16)
    weights = {k: v for k, v in module.state_dict().items() if "readout" not in k}
    with pytest.raises(ConfigError, match=r"missing keys \['net.readout.weight'\], unexpected keys none"):
        module.load_state_dict(weights)


def test_malformed_yaml_points_at_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: wavezoo.lit.SequenceRegression\n  init_args:\n   model: [elman,\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Problems parsing config" in err and "line 5" in err


def test_missing_config_file(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", "no/such.yaml"])
    assert "File does not exist" in capsys.readouterr().err
