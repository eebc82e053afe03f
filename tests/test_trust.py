"""Files from elsewhere: no checkpoint runs code, no data file chooses an import outside wavezoo, no claimed size is
allocated before it is checked against the file's tensors (wavezoo/trust.py and every path that reads a checkpoint)."""

import builtins
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import one_line_error, train_tiny_checkpoint

import wavezoo
import wavezoo.pretrained.weights
from wavezoo import ConfigError
from wavezoo.data import VariableBindingDataModule
from wavezoo.lit import SequenceRegression, SequenceTaskModule
from wavezoo.lit.reliability import quiet_trainer
from wavezoo.pretrained import sha256_file
from wavezoo.trust import check_model_shapes, load_tensor_file, read_checkpoint, resolve_class

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/variable_binding/elman.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]


class WritesAFile:
    """Unpickling this object with weights_only=False would create ``path`` (stands for any code an attacker runs)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("good") / "elman.ckpt")


@pytest.fixture
def evil(good, tmp_path):
    """A checkpoint whose unpickling would write ``tmp_path/pwned``: everything else is a real checkpoint."""
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["extra"] = WritesAFile(tmp_path / "pwned")
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    torch.save(checkpoint, path)
    yield path
    assert not (tmp_path / "pwned").exists(), "the checkpoint's code ran"


def edited(good: Path, target: Path, **hparams) -> Path:
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["hyper_parameters"].update(hparams)
    torch.save(checkpoint, target)
    return target


REFUSED = r"contains code objects \(io.open\); refused"


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_cli_refuses_a_checkpoint_with_code(subcommand, evil, capsys):
    err = one_line_error([subcommand, "--config", CONFIG, "--ckpt_path", str(evil), *QUIET], capsys)
    assert re.search(f"wavezoo: error: checkpoint .{re.escape(str(evil))}. {REFUSED}", err)


def test_resume_from_last_refuses_a_checkpoint_with_code(evil, capsys):
    root = evil.parent.parent  # <root>/checkpoints/last.ckpt: where `fit --ckpt_path last` looks without a logger
    args = ["fit", "--config", CONFIG, "--ckpt_path", "last", "--trainer.default_root_dir", str(root), *QUIET]
    assert re.search(REFUSED, one_line_error(args, capsys))


def test_python_paths_refuse_a_checkpoint_with_code(evil, tmp_path):
    module = SequenceRegression(model="elman", input_size=8, output_size=8, hidden_size=16)
    data = VariableBindingDataModule("T1", horizons=[4], test_batches=1, val_batches=1, steps_per_epoch=1)
    with pytest.raises(ConfigError, match=REFUSED):
        quiet_trainer().test(module, datamodule=data, ckpt_path=str(evil))
    with pytest.raises(ConfigError, match=REFUSED):
        quiet_trainer(max_steps=2, default_root_dir=tmp_path).fit(module, datamodule=data, ckpt_path=str(evil))
    for cls in (SequenceRegression, SequenceTaskModule):
        with pytest.raises(ConfigError, match=REFUSED):
            cls.load_from_checkpoint(evil)
    with pytest.raises(ConfigError, match="weights_only must stay True"):
        SequenceRegression.load_from_checkpoint(evil, weights_only=False)


def test_analyze_refuses_a_checkpoint_with_code(evil, tmp_path, capsys):
    err = one_line_error(["analyze", "--ckpt", str(evil), "--out", str(tmp_path / "out")], capsys)
    assert re.search(REFUSED, err)


def test_published_paths_refuse_a_checkpoint_with_code(evil, tmp_path, monkeypatch):
    """Even with a weights table whose sha256 matches the evil file (an attacker who controls both)."""
    entry = wavezoo.pretrained.weights.get_weights("elman_vb_t1")
    folder = tmp_path / "published" / entry.name
    folder.mkdir(parents=True)
    shutil.copy(evil, folder / "lightning.ckpt")
    shutil.copy(evil, folder / "model.safetensors")  # not a safetensors file at all
    forged = dataclasses.replace(
        entry, sha256=sha256_file(folder / "model.safetensors"), ckpt_sha256=sha256_file(folder / "lightning.ckpt")
    )
    monkeypatch.setitem(wavezoo.pretrained.weights.TABLE, entry.name, forged)
    monkeypatch.setenv("WAVEZOO_CHECKPOINTS", str(folder.parent))
    with pytest.raises(ConfigError, match="model.safetensors is truncated or corrupted"):
        wavezoo.load_pretrained(entry.name)
    with pytest.raises(ConfigError, match=REFUSED):
        wavezoo.load_pretrained(entry.name, lightning=True)
    with pytest.raises(ConfigError, match=REFUSED):
        torch.hub.load(str(ROOT), entry.name, source="local", trust_repo=True, lightning=True)


def test_empty_file_is_one_line(tmp_path, capsys):
    empty = tmp_path / "empty.ckpt"
    empty.touch()
    err = one_line_error(["test", "--config", CONFIG, "--ckpt_path", str(empty), *QUIET], capsys)
    assert f"checkpoint '{empty}' is an empty file (0 bytes)" in err
    with pytest.raises(ConfigError, match="empty file"):
        load_tensor_file(empty)


@pytest.mark.parametrize("class_path", ["this.Foo", "os.system", "wavezoo_evil.Module", "builtins.eval"])
def test_class_paths_outside_wavezoo_are_refused_before_any_import(class_path):
    with pytest.raises(ConfigError, match="must name a class inside the wavezoo package"):
        resolve_class(class_path, object, "_class_path")


def test_checkpoint_class_path_never_imports_its_module(good, tmp_path):
    """`this` prints the Zen of Python when imported: it must stay unimported (run in a fresh interpreter)."""
    bad = edited(good, tmp_path / "this.ckpt", _class_path="this.Foo")
    code = (
        "import sys; from wavezoo.cli import main\n"
        f"try: main(['test', '--config', {CONFIG!r}, '--ckpt_path', {str(bad)!r}, '--trainer.logger', 'false'])\n"
        "except SystemExit as e: assert e.code == 2\n"
        "assert 'this' not in sys.modules, 'the checkpoint imported a module'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "_class_path 'this.Foo' is refused" in proc.stderr
    assert "Beautiful is better than ugly" not in proc.stdout


def test_untrusted_instantiator_is_refused(good, tmp_path):
    bad = edited(good, tmp_path / "inst.ckpt", _instantiator="os.system")
    with pytest.raises(ConfigError, match="_instantiator='os.system' is refused"):
        SequenceRegression.load_from_checkpoint(bad)


def test_claimed_sizes_are_checked_against_the_tensors_before_allocating(good, tmp_path, capsys):
    bad = edited(good, tmp_path / "huge.ckpt", hidden_size=1_000_000)
    expected = r"has net.rnn.weight_ih_l0 of shape \(1000000, 8\), the file holds \(16, 8\); refused before allocating"
    with pytest.raises(ConfigError, match=expected):  # would allocate 4 TB of weights otherwise
        SequenceRegression.load_from_checkpoint(bad)
    err = one_line_error(["test", "--config", CONFIG, "--ckpt_path", str(bad), *QUIET], capsys)
    assert "refused before allocating" in err
    with pytest.raises(ConfigError, match="refused before allocating"):
        wavezoo.analysis.lens.model_from_checkpoint(bad)


def test_check_model_shapes_every_family_on_meta():
    """The check builds each family on the meta device: right shapes pass, a wrong size is named."""
    for family in wavezoo.list_models():
        sizes = {"input_size": 3, "output_size": 2, "hidden_size": 64 if family != "wave_rnn" else 60}
        real = wavezoo.create_model(family, **sizes).state_dict()
        shapes = {key: tuple(value.shape) for key, value in real.items()}
        check_model_shapes(family, sizes, {}, shapes, "file")
        with pytest.raises(ConfigError, match="file: "):
            check_model_shapes(family, {**sizes, "input_size": 5}, {}, shapes, "file")


def test_non_finite_weights_are_refused(good, tmp_path):
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["state_dict"]["net.rnn.weight_hh_l0"][0, 0] = float("nan")
    torch.save(checkpoint, tmp_path / "nan.ckpt")
    with pytest.raises(ConfigError, match=r"weights with NaN or infinite values in net.rnn.weight_hh_l0; refused"):
        read_checkpoint(tmp_path / "nan.ckpt")


def test_config_of_another_family_than_the_checkpoint_is_one_line(good, capsys):
    gru_config = str(ROOT / "configs/variable_binding/gru.yaml")
    err = one_line_error(["test", "--config", gru_config, "--ckpt_path", str(good), *QUIET], capsys)
    assert f"checkpoint '{good}' holds model 'elman' (the config: 'gru')" in err


def test_a_real_checkpoint_still_loads(good):
    module = SequenceRegression.load_from_checkpoint(good)
    assert module.hparams.hidden_size == 16
    assert json.loads(json.dumps(read_checkpoint(good)["hyper_parameters"]))["model"] == "elman"


def test_plain_model_path_checks_class_paths_without_importing_them():
    """Building the plain net (``import_classes=False``) still refuses class paths outside wavezoo, and checks a
    wavezoo one by its name only, so nothing is imported (Lightning may be missing)."""
    from wavezoo.trust import check_lightning_checkpoint, net_from_checkpoint

    net = wavezoo.create_model("gru", input_size=2, output_size=3, hidden_size=4)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    hparams = {"model": "gru", "input_size": 2, "output_size": 3, "hidden_size": 4, "model_kwargs": None}
    unknown = {"state_dict": state, "hyper_parameters": {**hparams, "_class_path": "wavezoo.lit.NoSuchModule"}}
    with pytest.raises(ConfigError, match="cannot be imported"):
        check_lightning_checkpoint(unknown, "ckpt")
    checked = check_lightning_checkpoint(unknown, "ckpt", import_classes=False)
    rebuilt = net_from_checkpoint(checked, "ckpt")
    x = torch.randn(2, 5, 2)
    assert torch.equal(rebuilt(x), net.eval()(x)) and not rebuilt.training
    outside = {"state_dict": state, "hyper_parameters": {**hparams, "_class_path": "os.system"}}
    with pytest.raises(ConfigError, match="_class_path 'os.system' is refused"):
        check_lightning_checkpoint(outside, "ckpt", import_classes=False)
