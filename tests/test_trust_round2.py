"""Trust, round 2 (issue 25): hyper-parameters walked whole, sizes and dtypes before bytes, one lock per output
folder, every published file hashed, and one-line errors for the cases an adversarial review found."""

import os
import re
import resource
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import no_logger, one_line_error, train_tiny_checkpoint

import wavezoo
from wavezoo import ConfigError
from wavezoo.lit import SequenceRegression, SequenceTaskModule
from wavezoo.lit.reliability import AtomicCheckpointIO, RunFolderLock
from wavezoo.trust import LIGHTNING_DEFAULTS, check_plain_values, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/variable_binding/elman.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.logger", "false"]
MARKER = "wz_issue25_marker"
TORCH_LOAD = torch.load  # the tests' own reads, untouched by no_torch_load


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return train_tiny_checkpoint(tmp_path_factory.mktemp("good") / "elman.ckpt")


def saved(good: Path, target: Path, edit) -> Path:
    checkpoint = TORCH_LOAD(good, weights_only=True)
    edit(checkpoint)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """A module on sys.path that records its import: it must never be imported."""
    (tmp_path / f"{MARKER}.py").write_text("import pathlib\npathlib.Path(__file__).with_suffix('.ran').touch()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    assert MARKER not in sys.modules and not (tmp_path / f"{MARKER}.ran").exists(), "the checkpoint imported a module"


@pytest.fixture
def no_torch_load(monkeypatch):
    """Fail the test if torch.load is called (a refusal must come before any byte of tensor data is read)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load was called before the file was refused")

    monkeypatch.setattr(torch, "load", forbidden)


def nested_class_path(checkpoint):
    checkpoint["hyper_parameters"].update(
        _class_path="wavezoo.lit.SequenceRegression",
        _instantiator="lightning.pytorch.cli.instantiate_module",
        scheduler_kwargs={"gamma": {"class_path": f"{MARKER}.Evil", "init_args": {}}},
    )


# -- F1: nothing in hyper-parameters is imported -------------------------------------------------------------------


def test_nested_class_path_never_imports_a_module(good, tmp_path, marker, capsys):
    bad = saved(good, tmp_path / "run" / "checkpoints" / "last.ckpt", nested_class_path)
    refused = rf"scheduler_kwargs.gamma.class_path '{MARKER}.Evil' is refused"
    with pytest.raises(ConfigError, match=refused):
        SequenceRegression.load_from_checkpoint(bad)
    with pytest.raises(ConfigError, match=refused):
        SequenceTaskModule.load_from_checkpoint(bad)
    for sub in ("test", "fit"):
        err = one_line_error([sub, "--config", CONFIG, "--ckpt_path", str(bad), *QUIET], capsys)
        assert re.search(refused, err)
    args = ["fit", "--config", CONFIG, "--ckpt_path", "last", "--trainer.default_root_dir", str(bad.parent.parent)]
    assert re.search(refused, one_line_error([*args, *QUIET], capsys))
    assert re.search(refused, one_line_error(["analyze", "--ckpt", str(bad), "--out", str(tmp_path / "o")], capsys))


@pytest.mark.parametrize(
    "value",
    [
        {"a": [{"__path__": "os"}]},
        {"_target_": "os.system"},
        {"deep": {"callable": "builtins.eval"}},
        {"x": torch.zeros(1)},
        {1: "not a string key"},
        {"x": {1, 2}},
    ],
)
def test_only_plain_values_pass_the_walk(value):
    with pytest.raises(ConfigError, match="is refused"):
        check_plain_values(value, "hp")


def test_plain_values_and_wavezoo_class_paths_pass():
    check_plain_values({"a": [1, 2.5, None, True, "x.y"], "class_path": "wavezoo.lit.SequenceRegression"}, "hp")


def test_load_from_checkpoint_rebuilds_the_module_without_lightning_instantiating(good):
    module = SequenceRegression.load_from_checkpoint(good, lr=0.5)
    assert module.hparams.lr == 0.5 and module.hparams.hidden_size == 16
    reference = torch.load(good, weights_only=True)["state_dict"]
    assert all(torch.equal(module.state_dict()[k], v) for k, v in reference.items())
    with pytest.raises(ConfigError, match="hparams_file is not supported"):
        SequenceRegression.load_from_checkpoint(good, hparams_file="h.yaml")


# -- F2, F3: sizes before bytes --------------------------------------------------------------------------------------


def without_model(checkpoint):
    hparams = checkpoint["hyper_parameters"]
    del hparams["model"]
    hparams["hidden_size"] = 30_000  # the default family (elman) at 30,000 units: 3.6 GB of weights


def test_defaults_are_the_modules():
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(SequenceTaskModule.__init__).parameters.items()}
    assert all(defaults[key] == value for key, value in LIGHTNING_DEFAULTS.items())


def test_a_size_lie_without_model_is_refused_before_torch_load(good, tmp_path, no_torch_load):
    bad = saved(good, tmp_path / "lie.ckpt", without_model)
    with pytest.raises(ConfigError, match=r"the 'elman' model it claims \(.*hidden_size=30000.*refused before"):
        SequenceRegression.load_from_checkpoint(bad)


def deflated(path: Path, target: Path, record: str) -> Path:
    """``path`` with the record ending in ``record`` compressed (deflate), everything else as written."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            kind = zipfile.ZIP_DEFLATED if info.filename.endswith(record) else zipfile.ZIP_STORED
            dst.writestr(info.filename, src.read(info.filename), compress_type=kind)
    return target


def with_extra(numel: int):
    def edit(checkpoint):
        checkpoint["extra"] = torch.zeros(numel)  # outside state_dict, the last storage written

    return edit


def last_record(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        keys = [n.rsplit("/", 1)[1] for n in archive.namelist() if "/data/" in n]
    return "/data/" + max(keys, key=int)


def test_a_deflate_bomb_is_refused_before_torch_load(good, tmp_path, no_torch_load, capsys):
    plain = saved(good, tmp_path / "plain.ckpt", with_extra(1 << 20))  # 4 MiB of zeros
    bomb = deflated(plain, tmp_path / "bomb.ckpt", last_record(plain))
    assert bomb.stat().st_size < plain.stat().st_size / 50  # a few KB on disk
    refused = r"record '.*/data/\d+' is compressed \(torch.save never compresses; refused before inflating anything\)"
    with pytest.raises(ConfigError, match=refused):
        SequenceRegression.load_from_checkpoint(bomb)
    with pytest.raises(ConfigError, match=refused):
        wavezoo.analysis.lens.model_from_checkpoint(bomb)
    assert re.search(refused, one_line_error(["test", "--config", CONFIG, "--ckpt_path", str(bomb), *QUIET], capsys))


def test_records_larger_than_the_claimed_model_are_refused_before_torch_load(good, tmp_path, no_torch_load):
    big = saved(good, tmp_path / "big.ckpt", with_extra(1 << 20))  # 4 MiB beside a 16-unit model
    with pytest.raises(ConfigError, match=r"its records hold .* bytes .* more than its 'elman' model of 2,048 bytes"):
        read_checkpoint(big)


def test_unexpected_state_dict_keys_are_refused_before_torch_load(good, tmp_path, no_torch_load):
    def planted(checkpoint):
        checkpoint["state_dict"]["hidden.payload"] = torch.zeros(4)

    bad = saved(good, tmp_path / "keys.ckpt", planted)
    with pytest.raises(ConfigError, match=r"unexpected keys \['hidden.payload'\]"):
        read_checkpoint(bad)


def address_space() -> int:
    """The process's virtual memory size in bytes (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmSize"].split()[0]) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")
def test_bomb_and_size_lie_stay_within_a_small_memory_budget(good, tmp_path):
    """With the address space capped at its size plus 256 MiB, the refusals come as one line: neither the 1 GiB
    the bomb would inflate to nor the 3.6 GB of the size lie is ever asked for."""
    lie = saved(good, tmp_path / "lie.ckpt", without_model)
    plain = saved(good, tmp_path / "plain.ckpt", with_extra(1 << 18))
    bomb = deflated(plain, tmp_path / "bomb.ckpt", last_record(plain))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (address_space() + (256 << 20), hard))
    try:
        for path in (lie, bomb):
            with pytest.raises(ConfigError, match="refused"):
                SequenceRegression.load_from_checkpoint(path)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# -- F4: dtypes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int32, torch.float64])
def test_weights_of_another_dtype_are_refused(good, tmp_path, dtype, no_torch_load):
    def retyped(checkpoint):
        weight = checkpoint["state_dict"]["net.rnn.weight_hh_l0"]
        checkpoint["state_dict"]["net.rnn.weight_hh_l0"] = weight.to(dtype)

    bad = saved(good, tmp_path / "dtype.ckpt", retyped)
    name = str(dtype).replace("torch.", "")
    with pytest.raises(ConfigError, match=rf"net.rnn.weight_hh_l0 is {name}, the 'elman' model's parameter is float32"):
        SequenceRegression.load_from_checkpoint(bad)


def test_complex_nan_is_not_finite():
    from wavezoo.trust import check_finite

    with pytest.raises(ConfigError, match="NaN or infinite"):
        check_finite({"w": torch.tensor([complex(float("nan"), 0)])}, "file")


def test_safetensors_of_another_dtype_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    net = wavezoo.create_model("elman", input_size=2, output_size=2, hidden_size=4)
    folder = tmp_path / "folder"
    wavezoo.save_pretrained(net, folder)
    tensors = load_file(folder / "model.safetensors")
    tensors["rnn.weight_hh_l0"] = tensors["rnn.weight_hh_l0"].view(torch.int32)  # F32's byte size, I32's dtype
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ConfigError, match=r"tensor 'rnn.weight_hh_l0' is I32, the model's parameter is float32"):
        wavezoo.from_pretrained(folder)


# -- F5, F8: one lock per output folder; a refused run writes nothing -------------------------------------------------

SMALL = [
    "--config",
    CONFIG,
    "--data.steps_per_epoch",
    "1",
    "--trainer.max_steps",
    "1",
    "--model.init_args.hidden_size",
    "8",
]
SMALL += ["--trainer.enable_progress_bar", "false"]


def files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")} if folder.exists() else {}


def test_a_shared_checkpoint_folder_is_locked(tmp_path, capsys):
    from filelock import FileLock

    shared = tmp_path / "shared"
    shared.mkdir()
    with FileLock(shared / RunFolderLock.LOCK_NAME):  # what the first fit holds
        err = one_line_error(
            ["fit", *SMALL, *no_logger(tmp_path / "second"), "--checkpoint.dirpath", str(shared)], capsys
        )
    assert f"run folder '{shared}' is in use by another running wavezoo fit" in err
    assert not (tmp_path / "second").exists() and files(shared) == {RunFolderLock.LOCK_NAME: 0}


def test_a_refused_fit_writes_nothing_in_the_busy_run_folder(tmp_path, capsys):
    from filelock import FileLock

    logger = ["--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.logger.init_args.version", "0"]
    run = tmp_path / "variable_binding" / "elman" / "version_0"
    run.mkdir(parents=True)
    with FileLock(run / RunFolderLock.LOCK_NAME):
        before = files(tmp_path)
        err = one_line_error(["fit", *SMALL, *logger], capsys)
        assert files(tmp_path) == before, "the refused run wrote files"
    assert "is in use by another running wavezoo fit" in err


def test_orphans_of_a_running_writer_are_kept(tmp_path):
    alive = tmp_path / f"{AtomicCheckpointIO.TEMP_PREFIX}{os.getppid()}-live.ckpt"
    dead = tmp_path / f"{AtomicCheckpointIO.TEMP_PREFIX}{2**22 + 12345}-dead.ckpt"
    alive.touch()
    dead.touch()
    assert AtomicCheckpointIO.remove_orphans(tmp_path) == [str(dead)]
    assert alive.exists()


# -- F6: every file of a published folder is covered -----------------------------------------------------------------


def test_every_published_file_is_in_the_table():
    from wavezoo.pretrained import sha256_file
    from wavezoo.pretrained import weights as table

    for w in table.TABLE.values():
        if w.published:
            folder = ROOT / "checkpoints" / w.name
            assert sorted(p.name for p in folder.iterdir()) == sorted(table.FILES)
            assert all(sha256_file(folder / name) == w.file_sha256(name) for name in table.FILES), w.name


@pytest.fixture
def published_copy(tmp_path, monkeypatch):
    import shutil

    name = "elman_vb_t1"
    shutil.copytree(ROOT / "checkpoints" / name, tmp_path / name)
    monkeypatch.setenv("WAVEZOO_CHECKPOINTS", str(tmp_path))
    return tmp_path / name


def test_a_modified_train_config_is_refused(published_copy):
    from wavezoo.errors import ChecksumError

    config = published_copy / "train_config.yaml"
    config.write_text(config.read_text().replace("task: T1", "task: T4"))
    for call in (
        lambda: wavezoo.pretrained.evaluate("elman_vb_t1"),
        lambda: wavezoo.load_pretrained("elman_vb_t1", lightning=True),
        lambda: wavezoo.load_pretrained("elman_vb_t1"),
    ):
        with pytest.raises(ChecksumError, match=r"train_config.yaml' of pretrained checkpoint 'elman_vb_t1' is corr"):
            call()


def test_a_published_folder_with_another_file_is_refused(published_copy):
    from wavezoo.errors import ChecksumError

    (published_copy / "extra.py").write_text("print('hi')\n")
    with pytest.raises(ChecksumError, match=r"holds files the weights table does not cover \(extra.py\)"):
        wavezoo.load_pretrained("elman_vb_t1")


# -- F7: one line, exit status 2 -------------------------------------------------------------------------------------


def test_a_deeply_nested_config_json_is_one_line(tmp_path):
    net = wavezoo.create_model("elman", input_size=2, output_size=2, hidden_size=4)
    folder = tmp_path / "folder"
    wavezoo.save_pretrained(net, folder)
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)  # 200 kB
    with pytest.raises(ConfigError, match="config.json is invalid: its JSON nests too deep"):
        wavezoo.from_pretrained(folder)
    with pytest.raises(ConfigError, match="config.json is invalid: its JSON nests too deep"):
        wavezoo.from_pretrained(folder, lightning=True)


def test_a_deeply_nested_config_json_in_the_hub_cache_is_one_line(tmp_path, monkeypatch):
    import wavezoo.models.hub_mixin as hub

    deep = tmp_path / "cache" / "config.json"
    deep.parent.mkdir()
    deep.write_text("{" + '"a":{' * 60_000 + "}" * 60_001)
    monkeypatch.setattr(hub, "hf_hub_download", lambda *args, **kwargs: str(deep))
    with pytest.raises(ConfigError, match="its JSON nests too deep"):
        wavezoo.from_pretrained("someone/deep")


def test_a_negative_gradient_clip_val_is_refused(tmp_path, capsys):
    err = one_line_error(["fit", *SMALL, *no_logger(tmp_path), "--trainer.gradient_clip_val", "-1"], capsys)
    assert "trainer.gradient_clip_val=-1 is invalid: expected a finite number >= 0" in err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_huge_horizon_is_refused_at_once(tmp_path, capsys):
    args = ["fit", *SMALL, *no_logger(tmp_path), "--data.init_args.horizons", "[1000000000]"]
    err = one_line_error(args, capsys)
    assert "horizon=1000000000 is invalid: expected an integer in [1, 100000]" in err


def test_a_full_disk_at_logger_start_is_one_line(tmp_path, monkeypatch, capsys):
    import errno

    from tensorboard.summary.writer import record_writer

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_writer.RecordWriter, "write", full)
    printed = []  # what would reach Python's default hook: a traceback on stderr
    monkeypatch.setattr(threading, "excepthook", lambda hook_args: printed.append(hook_args.exc_value))
    logger = ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    err = one_line_error(["fit", *SMALL, *logger], capsys)
    assert "No space left on device; choose a writable folder with free space" in err
    for thread in threading.enumerate():  # the event-file writer thread ends after the command: wait for it
        if thread is not threading.current_thread() and "AsyncWriter" in type(thread).__name__:
            thread.join()
    assert not printed and "Traceback" not in capsys.readouterr().err, "the writer thread printed a traceback"
