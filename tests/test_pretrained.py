"""Published weights: the table in code, the shipped folders, loading with sha256, re-evaluation, the retraining
script, model folders through huggingface_hub, torch.hub."""

import dataclasses
import importlib.util
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

import wavezoo
from wavezoo.cli import build_cli, main
from wavezoo.errors import ChecksumError, ConfigError
from wavezoo.models import SequenceModel
from wavezoo.models.hub_mixin import format_metric
from wavezoo.pretrained import (
    compare_metrics,
    evaluate,
    from_pretrained,
    list_pretrained,
    load_pretrained,
    pretrained_info,
    push_to_hub,
    save_pretrained,
    sha256_file,
)
from wavezoo.pretrained import weights as table
from wavezoo.pretrained.weights import FILES, Recipe, Weights

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = list_pretrained()
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def load_script():
    spec = importlib.util.spec_from_file_location("train_checkpoints", ROOT / "scripts" / "train_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = load_script()

# A recipe that trains in a few seconds: the GRU config, 16 units, 5 steps, small validation and test sets.
TINY = Weights(
    name="gru_tiny_vb_t1",
    family="gru",
    task="variable binding T1, 5 training steps (test fixture)",
    recipe=Recipe(
        "configs/variable_binding/gru.yaml",
        (
            *("--data.batch_size", "8", "--data.steps_per_epoch", "5", "--data.val_batches", "1"),
            *("--data.test_batches", "2", "--data.test_horizon", "20", "--model.init_args.hidden_size", "16"),
        ),
        seed=0,
        max_steps=5,
    ),
)


# -- the table in code, the manifest and the shipped folders agree -------------------------------------------------


def test_the_manifest_is_the_table_and_every_folder_matches_its_entry():
    assert json.loads((ROOT / "checkpoints" / "manifest.json").read_text()) == json.loads(json.dumps(table.manifest()))
    assert len(PUBLISHED) >= 24 and list(table.TABLE) == PUBLISHED  # nothing left untrained
    for name in PUBLISHED:
        w = table.get_weights(name)
        folder = ROOT / "checkpoints" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(FILES), name
        assert sha256_file(folder / "model.safetensors") == w.sha256
        assert sha256_file(folder / "lightning.ckpt") == w.ckpt_sha256
        config = json.loads((folder / "config.json").read_text())
        assert (config["name"], config["family"], config["sizes"], config["model_kwargs"]) == (
            name, w.family, w.sizes, w.model_kwargs)  # fmt: skip
        assert config["metrics"] == w.metrics and config["parameters"] == w.parameters and config["published"]
        assert config["training"]["command"] == w.command and (ROOT / w.recipe.source_config).is_file()
        card = (folder / "README.md").read_text()
        assert f'wavezoo.load_pretrained("{name}")' in card and w.command in card and "/work/" not in card
        assert card.count(f"A wavezoo model of family `{w.family}`") == 1


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_checkpoint_reproduces_its_metrics(name):
    info = pretrained_info(name)
    net = load_pretrained(name)  # checks the sha256 first
    assert not net.training and sum(p.numel() for p in net.parameters()) == info["parameters"]
    assert compare_metrics(evaluate(name), info["metrics"]) == []


BLOCK_LIGHTNING = (
    "import sys, torch\n"
    "for blocked in ('lightning', 'lightning.pytorch', 'pytorch_lightning'):\n"
    "    sys.modules[blocked] = None  # any import of them raises ImportError\n"
    "import wavezoo\n"
)


def run_python(script: str, cwd: Path, env: dict | None = None) -> None:
    import os
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def outputs_script(out: Path) -> str:
    """Load every published name twice (load_pretrained, create_model) without Lightning; save the outputs."""
    return BLOCK_LIGHTNING + (
        "out = {}\nfor name in wavezoo.list_pretrained():\n"
        "    net = wavezoo.load_pretrained(name)\n"
        "    info = wavezoo.pretrained_info(name)\n"
        "    same = wavezoo.create_model(info['family'], pretrained=name)\n"
        "    torch.manual_seed(0)\n"
        "    sizes = info['sizes']\n"
        "    x = torch.randint(0, sizes['vocab_size'], (2, 5)) if 'vocab_size' in sizes else "
        "torch.randn(2, 5, sizes['input_size'])\n"
        "    assert torch.equal(net(x), same(x))\n"
        "    out[name] = net(x)\n"
        "assert 'lightning' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        "out['__file__'] = torch.tensor([ord(c) for c in wavezoo.__file__])\n"
        f"torch.save(out, {str(out)!r})\n"
    )


def check_outputs(path: Path) -> str:
    """The outputs saved by :func:`outputs_script` equal those of the LightningModules here; returns __file__."""
    outputs = torch.load(path, weights_only=True)
    where = "".join(map(chr, outputs.pop("__file__").tolist()))
    assert sorted(outputs) == sorted(PUBLISHED)
    for name in PUBLISHED:
        module = load_pretrained(name, lightning=True)
        torch.manual_seed(0)
        vocab = module.hparams.get("vocab_size")
        x = torch.randint(0, vocab, (2, 5)) if vocab else torch.randn(2, 5, module.hparams.input_size)
        assert torch.allclose(module.net(x), outputs[name], atol=1e-6), name
    return where


def test_every_published_model_loads_without_lightning(tmp_path):
    """In a process where ``import lightning`` fails, every published name loads by ``load_pretrained`` and
    ``create_model(pretrained=...)`` (from model.safetensors) and equals the Lightning checkpoint's model."""
    run_python(outputs_script(tmp_path / "outputs.pt"), cwd=tmp_path)
    assert check_outputs(tmp_path / "outputs.pt") == str(ROOT / "wavezoo" / "__init__.py")


def test_a_built_wheel_ships_and_loads_every_published_weight(tmp_path):
    """``pip wheel .`` then install into a fresh target: from another directory, without Lightning, the installed
    package lists and loads every published name."""
    import subprocess

    build = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("wavezoo-*.whl")
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site")]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(tmp_path / "site"), "WAVEZOO_CHECKPOINTS": ""}
    run_python(outputs_script(tmp_path / "outputs.pt"), cwd=elsewhere, env=env)
    assert check_outputs(tmp_path / "outputs.pt") == str(tmp_path / "site" / "wavezoo" / "__init__.py")


def test_the_package_list_covers_the_source_tree():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "wavezoo").rglob("__init__.py")}
    assert set(config["packages"]) == found | {"wavezoo.checkpoints"}
    assert config["package-dir"] == {"wavezoo.checkpoints": "checkpoints"}


# -- a checkpoint trained and published by the script's code ------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """TINY trained by ``scripts/train_checkpoints.py``'s code into a temporary folder: (folder, entry)."""
    out = tmp_path_factory.mktemp("checkpoints")
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WAVEZOO_CHECKPOINTS", str(out))
        entry = SCRIPT.train_entry(TINY, out, runs)
    return out, entry


@pytest.fixture
def tiny(trained, monkeypatch):
    """TINY published: in the table and its folder found through ``$WAVEZOO_CHECKPOINTS``."""
    out, entry = trained
    monkeypatch.setitem(table.TABLE, entry.name, entry)
    monkeypatch.setenv("WAVEZOO_CHECKPOINTS", str(out))
    return out / entry.name, entry


def test_the_script_publishes_a_folder_that_reproduces(tiny):
    folder, entry = tiny
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert entry.sha256 == sha256_file(folder / "model.safetensors")
    assert entry.ckpt_sha256 == sha256_file(folder / "lightning.ckpt")
    assert set(entry.metrics) == {"test/acc", "test/loss", "test/mse"}
    assert entry.sizes == {"input_size": 8, "output_size": 8, "hidden_size": 16}
    run = wavezoo.pretrained.loading.run_config(entry)  # the test set behind the metrics: the run's own config
    assert (
        run["data"]["init_args"]["test_horizon"] == 20
        and run["model"]["class_path"] == "wavezoo.lit.SequenceRegression"
    )
    stripped = torch.load(folder / "lightning.ckpt", weights_only=True)
    assert set(stripped) <= {*SCRIPT.KEPT_KEYS, "wavezoo_pretrained"} and stripped["global_step"] == 5
    training = json.loads((folder / "config.json").read_text())["training"]
    assert training["step"] == 5 and isinstance(training["best_val_loss"], float) and training["wall_s"] > 0
    assert entry.command.startswith("OMP_NUM_THREADS=1 wavezoo fit --config configs/variable_binding/gru.yaml ")
    assert "--seed_everything 0 --trainer.max_steps 5 --trainer.default_root_dir runs/pretrained/gru_tiny" in (
        entry.command
    )
    net = load_pretrained(TINY.name)
    assert not net.training and sum(p.numel() for p in net.parameters()) == entry.parameters
    module = load_pretrained(TINY.name, lightning=True)
    assert isinstance(module, wavezoo.lit.SequenceRegression) and not module.training
    x = torch.randn(2, 6, 8)
    assert torch.equal(module.net(x), net(x))
    assert compare_metrics(evaluate(TINY.name), entry.metrics) == []
    assert TINY.name in list_pretrained() and list_pretrained("gru_tiny*") == [TINY.name]


def test_wavezoo_test_on_a_published_folder_gives_its_metrics(tiny):
    folder, entry = tiny
    cli = build_cli(
        ["test", "--config", str(folder / "train_config.yaml"), "--ckpt_path", str(folder / "lightning.ckpt"), *QUIET]
    )
    measured = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert compare_metrics(measured, entry.metrics) == []


def test_verify_and_table_modes_of_the_script(tiny, capsys):
    folder, entry = tiny
    assert SCRIPT.main(["--only", TINY.name, "--verify", "--out", str(folder.parent)]) == 0
    assert f"{TINY.name}: sha256 ok, metrics reproduced" in capsys.readouterr().out
    assert SCRIPT.main(["--all", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [table.get_weights(name).command for name in table.TABLE]
    assert SCRIPT.main(["--table", "--out", str(folder.parent)]) == 0
    header, rule, *rows = capsys.readouterr().out.splitlines()
    assert header.startswith("| checkpoint | family | parameters | test accuracy") and rule.startswith("|---|")
    (row,) = [row for row in rows if TINY.name in row]
    assert row.startswith(f"| `{TINY.name}` | `gru` | {entry.parameters:,} | {entry.metrics['test/acc']:.4f} | ")


def test_the_script_writes_a_table_that_python_reads_back(tiny, tmp_path):
    _, entry = tiny
    target, manifest = tmp_path / "weights.py", tmp_path / "manifest.json"
    target.write_text((ROOT / "wavezoo" / "pretrained" / "weights.py").read_text())
    entries = [*table.TABLE.values()]
    SCRIPT.write_table(entries, target, manifest)
    written = runpy.run_path(str(target))["TABLE"]
    assert [dataclasses.astuple(w) for w in written.values()] == [dataclasses.astuple(w) for w in entries]
    assert json.loads(manifest.read_text())["checkpoints"][-1]["name"] == entry.name
    SCRIPT.write_table(list(table.TABLE.values())[:-1], target, tmp_path / "m.json")  # the real table, unchanged
    assert target.read_text() == (ROOT / "wavezoo" / "pretrained" / "weights.py").read_text()


def flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def tampered(tiny, tmp_path, monkeypatch):
    """A copy of TINY's folder with one byte of each weights file flipped, found first."""
    folder, entry = tiny
    import shutil

    copy = tmp_path / "tampered" / entry.name
    shutil.copytree(folder, copy)
    for name in ("model.safetensors", "lightning.ckpt"):
        flip_one_byte(copy / name)
    monkeypatch.setenv("WAVEZOO_CHECKPOINTS", str(copy.parent))
    return copy, entry


def test_a_tampered_file_is_refused_before_anything_reads_it(tampered, monkeypatch, capsys):
    copy, entry = tampered
    import safetensors
    import safetensors.torch

    def never(*args, **kwargs):
        raise AssertionError("a file was read before its sha256 was checked")

    for module, name in [(torch, "load"), (safetensors, "safe_open"), (safetensors.torch, "load_model")]:
        monkeypatch.setattr(module, name, never)
    monkeypatch.setattr(wavezoo.pretrained.loading, "build_model", never)  # nothing allocated either
    for lightning, file, digest in [
        (False, "model.safetensors", entry.sha256),
        (True, "lightning.ckpt", entry.ckpt_sha256),
    ]:
        with pytest.raises(ChecksumError) as err:
            load_pretrained(TINY.name, lightning=lightning)
        message = str(err.value)
        assert str(copy / file) in message and digest in message and sha256_file(copy / file) in message


def test_the_cli_refuses_a_tampered_published_checkpoint(tampered, capsys):
    copy, entry = tampered
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", str(copy / "train_config.yaml"), "--ckpt_path", str(copy / "lightning.ckpt"), *QUIET])
    assert exit_info.value.code == 2
    err_text = capsys.readouterr().err
    (line,) = [line for line in err_text.splitlines() if line.startswith("wavezoo: error: ")]
    assert "sha256" in line and "lightning.ckpt" in line and "Traceback" not in err_text
    assert SCRIPT.main(["--only", TINY.name, "--verify", "--out", str(copy.parent)]) == 2
    assert "train_checkpoints: error: file" in capsys.readouterr().err


def test_create_model_pretrained(tiny, monkeypatch):
    net = wavezoo.create_model("gru", pretrained=TINY.name)
    assert net.wavezoo_config["pretrained"] == TINY.name and not net.training
    same = wavezoo.create_model("gru", pretrained=TINY.name, hidden_size=16, input_size=8)
    assert same.wavezoo_config["sizes"]["hidden_size"] == 16
    with pytest.raises(ConfigError, match="trained with other settings: hidden_size=32 \\(checkpoint: 16\\)"):
        wavezoo.create_model("gru", pretrained=TINY.name, hidden_size=32)
    with pytest.raises(ConfigError, match=f"'{TINY.name}' is a 'gru' model, not 'lstm'"):
        wavezoo.create_model("lstm", pretrained=TINY.name)
    with pytest.raises(ConfigError, match="unknown pretrained checkpoint 'gru_tiny_vb_t2'; did you mean"):
        wavezoo.create_model("gru", pretrained="gru_tiny_vb_t2")
    with pytest.raises(ConfigError, match="model 'gru' has 7 published checkpoints: gru_vb_t1, gru_digits, "):
        wavezoo.create_model("gru", pretrained=True)
    monkeypatch.setattr(table, "TABLE", {TINY.name: table.TABLE[TINY.name], "elman_vb_t1": table.TABLE["elman_vb_t1"]})
    assert wavezoo.create_model("gru", pretrained=True).wavezoo_config["pretrained"] == TINY.name  # the only one
    with pytest.raises(ConfigError, match="no published pretrained weights for model 'irnn'; published .*elman_vb_t1"):
        wavezoo.create_model("irnn", pretrained=True)


def test_unknown_names_and_recipes(monkeypatch):
    with pytest.raises(ConfigError, match="unknown pretrained checkpoint 'elman_vb_t9'; did you mean 'elman_vb_t"):
        load_pretrained("elman_vb_t9")
    with pytest.raises(ConfigError, match="available: elman_vb_t1, elman_vb_t2"):
        pretrained_info("nope")
    monkeypatch.setitem(table.TABLE, TINY.name, TINY)  # a recipe, not trained
    with pytest.raises(ConfigError, match="is a recipe that has not been trained yet.*--only gru_tiny_vb_t1"):
        load_pretrained(TINY.name)
    assert TINY.name not in list_pretrained() and TINY.name in list_pretrained(include_recipes=True)
    assert pretrained_info(TINY.name)["files"] == []


def test_hubconf_entrypoints(tiny):
    net = torch.hub.load(str(ROOT), "elman_vb_t2", source="local")
    x = torch.randn(2, 12, 8)
    assert not net.training and torch.equal(net(x), load_pretrained("elman_vb_t2")(x))
    module = torch.hub.load(str(ROOT), "elman_vb_t2", source="local", lightning=True)
    assert isinstance(module, wavezoo.lit.SequenceRegression)
    built = torch.hub.load(str(ROOT), "create_model", "lstm", source="local", input_size=3, output_size=2)
    assert built(torch.zeros(1, 4, 3)).shape == (1, 4, 2)
    pretrained = torch.hub.load(str(ROOT), "create_model", "twm_lbc", source="local", pretrained="twm_lbc_vb_t1")
    assert pretrained.wavezoo_config["pretrained"] == "twm_lbc_vb_t1"
    hubconf = runpy.run_path(str(ROOT / "hubconf.py"))
    doc = hubconf["elman_vb_t2"].__doc__
    assert table.get_weights("elman_vb_t2").task in doc and "test/acc" in doc and "wavezoo fit" in doc
    assert hubconf["dependencies"] == ["torch", "huggingface_hub", "safetensors"]


# -- model folders through huggingface_hub's PyTorchModelHubMixin ------------------------------------------------

SMALL = {
    "twm_lbc": {"history": 4},
    "twm_sbc": {"history": 4},
    "sbc_transformer": {"history": 4, "num_heads": 2},
    "transformer": {"num_heads": 2},
    "lbc_ssm": {"hidden_size": 32, "state_size": 4, "num_layers": 1},
    "wave_rnn": {"hidden_size": 24, "channels": 2},
}


@pytest.mark.parametrize("family", wavezoo.list_models())
def test_save_then_from_pretrained_gives_identical_outputs(family, tmp_path):
    from huggingface_hub import PyTorchModelHubMixin

    torch.manual_seed(0)
    net = wavezoo.create_model(family, input_size=4, output_size=3, **{"hidden_size": 16, **SMALL.get(family, {})})
    assert isinstance(net, PyTorchModelHubMixin)
    net.eval().save_pretrained(tmp_path)  # the mixin's method, on the model itself
    x = torch.randn(2, 9, 4)
    for again in (
        SequenceModel.from_pretrained(tmp_path),
        type(net).from_pretrained(tmp_path),
        from_pretrained(tmp_path),
    ):
        assert type(again) is type(net) and not again.training and torch.equal(net(x), again(x))
    card = (tmp_path / "README.md").read_text()
    assert str(tmp_path) not in card and f'from_pretrained("path/to/{tmp_path.name}")' in card  # no local path
    assert f"A wavezoo model of family `{family}`" in card and "library_name: wavezoo" in card


def test_a_family_class_refuses_a_folder_of_another_family(tmp_path):
    from wavezoo.models.wave_rnn import WaveRNN

    wavezoo.create_model("gru", input_size=2, output_size=2, hidden_size=4).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="holds a 'gru' model \\(RecurrentBaseline\\), not a WaveRNN"):
        WaveRNN.from_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="unknown options \\['nope'\\]"):
        SequenceModel.from_pretrained(tmp_path, nope=1)


def test_a_published_folder_is_a_model_folder(tiny):
    folder, entry = tiny
    x = torch.randn(2, 5, 8)
    assert torch.equal(from_pretrained(folder)(x), load_pretrained(TINY.name)(x))
    module = from_pretrained(folder, lightning=True)
    assert isinstance(module, wavezoo.lit.SequenceRegression) and module.hparams.hidden_size == 16


def test_lightning_module_round_trip_and_push_to_hub_folder(tiny, tmp_path):
    _, entry = tiny
    module = load_pretrained(TINY.name, lightning=True)
    folder = Path(push_to_hub(module, "someone/gru-tiny", local_dir=tmp_path / "hub"))
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    config = json.loads((folder / "config.json").read_text())
    assert config["metrics"] == entry.metrics and config["family"] == "gru" and config["name"] == "gru-tiny"
    card = (folder / "README.md").read_text()
    for key, value in entry.metrics.items():
        assert f"| {key} | {format_metric(value)} |" in card
    assert entry.command in card and 'from_pretrained("someone/gru-tiny")' in card
    again = from_pretrained(folder, lightning=True)
    assert isinstance(again, wavezoo.lit.SequenceRegression) and again.hparams.hidden_size == 16
    x = torch.randn(3, 10, 8)
    assert torch.equal(module(x), again(x)) and torch.equal(module.net(x), from_pretrained(folder)(x))


def test_push_to_hub_goes_through_the_mixin(monkeypatch):
    import huggingface_hub.hub_mixin

    calls = []

    class FakeApi:
        def __init__(self, token=None, **kwargs):
            calls.append(("token", token))

        def create_repo(self, repo_id, private=False, exist_ok=False, **kwargs):
            calls.append(("create_repo", repo_id, private, exist_ok))
            return type("Url", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, commit_message, **kwargs):
            card = (Path(folder_path) / "README.md").read_text()
            calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir()), card))
            return f"https://huggingface.co/{repo_id}/commit/1"

    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeApi)  # no network
    net = wavezoo.create_model("elman", input_size=2, output_size=2, hidden_size=4)
    assert push_to_hub(net, "someone/elman", token="t", metrics={"test/acc": 0.5}) == (
        "https://huggingface.co/someone/elman/commit/1"
    )
    assert calls[:2] == [("token", "t"), ("create_repo", "someone/elman", False, True)]
    (_, repo, files, card) = calls[2]
    assert repo == "someone/elman" and files == ["README.md", "config.json", "model.safetensors"]
    assert 'from_pretrained("someone/elman")' in card and "| test/acc | 0.5 |" in card


def hub_cache(root: Path, repo_id: str, folder: Path) -> Path:
    """A Hugging Face Hub cache (as huggingface_hub lays it out) holding ``folder`` as ``repo_id`` at main."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root


def test_hub_ids_resolve_offline_from_the_hub_cache(tiny, tmp_path):
    """``from_pretrained("owner/name")`` and a table entry with ``hf_hub_id`` whose files are not local both load
    from a local huggingface_hub cache with HF_HUB_OFFLINE=1; a missing repo is a one-line error."""
    folder, entry = tiny
    cache = hub_cache(tmp_path / "hub", "someone/gru-tiny", folder)
    x = torch.randn(1, 4, 8)
    torch.save(load_pretrained(TINY.name)(x), tmp_path / "expected.pt")
    torch.save(x, tmp_path / "x.pt")
    hubbed = dataclasses.replace(entry, name="gru_tiny_hub", hf_hub_id="someone/gru-tiny")
    script = BLOCK_LIGHTNING + (
        "import dataclasses, pytest\n"
        "from wavezoo.pretrained.weights import TABLE, Weights, Recipe\n"
        f"TABLE['gru_tiny_hub'] = {hubbed!r}\n"
        f"x, expected = torch.load({str(tmp_path / 'x.pt')!r}), torch.load({str(tmp_path / 'expected.pt')!r})\n"
        "assert torch.equal(wavezoo.from_pretrained('someone/gru-tiny')(x), expected)\n"
        "assert torch.equal(wavezoo.load_pretrained('gru_tiny_hub')(x), expected)\n"
        "with pytest.raises(wavezoo.ConfigError, match='cannot fetch model.safetensors of nobody/none'):\n"
        "    TABLE['gru_tiny_hub'] = dataclasses.replace(TABLE['gru_tiny_hub'], hf_hub_id='nobody/none')\n"
        "    wavezoo.load_pretrained('gru_tiny_hub')\n"
        "with pytest.raises(wavezoo.ConfigError, match='cannot fetch config.json of nobody/none from the Hugging'):\n"
        "    wavezoo.from_pretrained('nobody/none')\n"
    )
    run_python(script, cwd=tmp_path, env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "WAVEZOO_CHECKPOINTS": ""})


def test_model_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs a model built by wavezoo.create_model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(ConfigError, match="model folder 'no/such/folder' does not exist"):
        from_pretrained("no/such/folder")
    with pytest.raises(
        ConfigError, match=r"'elman_vb_t1' is a published name, not a folder: use wavezoo.load_pretrained"
    ):
        from_pretrained("elman_vb_t1")
    with pytest.raises(ConfigError, match="config.json is missing or invalid"):
        from_pretrained(tmp_path, lightning=True)
    save_pretrained(wavezoo.create_model("gru", input_size=2, output_size=2, hidden_size=4), tmp_path)
    with pytest.raises(ConfigError, match="holds a bare model, not a LightningModule"):
        from_pretrained(tmp_path, lightning=True)


def test_the_script_file_runs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["train_checkpoints.py", "--only", "wave_rnn_copy", "--dry-run"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts/train_checkpoints.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("OMP_NUM_THREADS=1 wavezoo fit --config configs/copy/wave_rnn.yaml ")
