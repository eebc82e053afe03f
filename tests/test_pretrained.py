"""Published checkpoints: manifest, retraining script, loading with sha256, re-evaluation, model folders, torch.hub."""

import json
import runpy
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

import wavezoo
from wavezoo.cli import build_cli, main
from wavezoo.errors import ChecksumError, ConfigError
from wavezoo.pretrained import (
    compare_metrics,
    evaluate,
    from_pretrained,
    list_pretrained,
    load_pretrained,
    pretrained_info,
    push_to_hub,
    read_manifest,
    save_pretrained,
    training,
)
from wavezoo.pretrained.hub import format_metric
from wavezoo.pretrained.loading import KEPT_KEYS
from wavezoo.pretrained.manifest import MEASURED_FIELDS, sha256_file, write_manifest

ROOT = Path(__file__).resolve().parents[1]
REAL = read_manifest(ROOT / "checkpoints")
PUBLISHED = [entry["name"] for entry in REAL.published()]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

# A recipe that trains in a few seconds: the GRU config, 16 units, 5 steps, small validation and test sets.
TINY = {
    "name": "gru_tiny_vb_t1",
    "task": "variable binding T1, 5 training steps (test fixture)",
    "source_config": "configs/variable_binding/gru.yaml",
    "overrides": [
        "--data.batch_size",
        "8",
        "--data.steps_per_epoch",
        "5",
        "--data.val_batches",
        "1",
        "--data.test_batches",
        "2",
        "--data.test_horizon",
        "20",
        "--model.init_args.hidden_size",
        "16",
    ],
    "seed": 0,
    "max_steps": 5,
    "family": "gru",
}


# -- the real manifest: every published checkpoint loads and reproduces its metrics ------------------------------


def test_real_manifest_is_trained():
    # FAILS until the published set is trained: the manifest holds recipes only (no measured fields) until the lead
    # runs `python scripts/train_checkpoints.py --missing --jobs 2` and commits checkpoints/*.ckpt, *.yaml and the
    # updated manifest. A recipe left untrained, or one whose source config is missing, also fails here.
    recipes = [e["name"] for e in REAL.entries if e["name"] not in PUBLISHED]
    missing = [e["source_config"] for e in REAL.entries if not (ROOT / e["source_config"]).is_file()]
    assert PUBLISHED, (
        f"{REAL.path} has no trained checkpoint; train them: python scripts/train_checkpoints.py --missing"
    )
    assert not recipes, f"recipes not trained yet: {recipes}"
    assert not missing, f"source configs missing: {missing}"


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_checkpoint_reproduces_its_metrics(name):
    entry = pretrained_info(name, manifest=REAL.path)
    net = load_pretrained(name, manifest=REAL.path)  # checks the sha256 first
    assert not net.training and sum(p.numel() for p in net.parameters()) == entry["parameters"]
    assert compare_metrics(evaluate(name, manifest=REAL.path), entry["metrics"]) == []


def test_every_published_model_loads_without_lightning(tmp_path):
    """Plain models need no Lightning: in a process where ``import lightning`` fails, every published name loads by
    ``load_pretrained`` and ``create_model(pretrained=...)`` and gives the outputs of the Lightning path."""
    import subprocess

    names = list_pretrained(manifest=REAL.path)
    script = (
        "import sys, torch\n"
        "for blocked in ('lightning', 'lightning.pytorch', 'pytorch_lightning'):\n"
        "    sys.modules[blocked] = None  # any import of them raises ImportError\n"
        "import wavezoo\n"
        f"out = {{}}\nfor name in {names!r}:\n"
        "    net = wavezoo.load_pretrained(name)\n"
        "    info = wavezoo.pretrained_info(name)\n"
        "    same = wavezoo.create_model(info['family'], pretrained=name)\n"
        "    torch.manual_seed(0)\n"
        "    x = torch.randn(2, 5, info['sizes']['input_size'])\n"
        "    assert torch.equal(net(x), same(x))\n"
        "    out[name] = net(x)\n"
        "assert 'lightning' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
        f"torch.save(out, {str(tmp_path / 'outputs.pt')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = torch.load(tmp_path / "outputs.pt", weights_only=True)
    assert sorted(outputs) == sorted(names)
    for name in names:
        module = load_pretrained(name, manifest=REAL.path, lightning=True)
        torch.manual_seed(0)
        x = torch.randn(2, 5, module.hparams.input_size)
        assert torch.allclose(module.net(x), outputs[name], atol=1e-6), name


def test_real_manifest_recipes_are_well_formed(capsys):
    assert len(REAL.entries) >= 22
    for entry in REAL.entries:
        assert wavezoo.is_model(entry["family"]) and entry["source_config"].startswith("configs/")
    assert training.main(["--all", "--dry-run", "--manifest", str(REAL.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(REAL.entries)
    first = REAL.entries[0]
    assert lines[0].startswith(f"OMP_NUM_THREADS=1 wavezoo fit --config {first['source_config']} ")
    assert f"--seed_everything {first['seed']} --trainer.max_steps {first['max_steps']} " in lines[0]
    assert f"--trainer.default_root_dir runs/pretrained/{first['name']} --trainer.logger false" in lines[0]


# -- a checkpoint trained by the script's code path, in a temporary manifest ---------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A manifest folder with TINY trained and published by ``train_checkpoints.py``'s code."""
    folder = tmp_path_factory.mktemp("checkpoints")
    write_manifest(folder / "manifest.json", [TINY])
    runs = tmp_path_factory.mktemp("runs")
    assert training.main(["--manifest", str(folder), "--missing", "--runs-dir", str(runs)]) == 0
    return folder


def flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def use_manifest(published, monkeypatch):
    monkeypatch.setenv(wavezoo.pretrained.MANIFEST_ENV, str(published))
    return published


def test_script_publishes_and_the_checkpoint_reproduces(published):
    entry = pretrained_info(TINY["name"], manifest=published)
    assert all(entry.get(field) is not None for field in MEASURED_FIELDS)
    assert set(entry["metrics"]) == {"test/acc", "test/loss", "test/mse"}
    assert entry["command"].startswith("OMP_NUM_THREADS=1 wavezoo fit --config configs/variable_binding/gru.yaml ")
    assert "--seed_everything 0 --trainer.max_steps 5 --trainer.default_root_dir " in entry["command"]
    path = published / entry["file"]
    assert entry["sha256"] == sha256_file(path) and entry["size_bytes"] == path.stat().st_size
    assert (published / entry["config"]).is_file() and entry["datamodule"]["init_args"]["test_horizon"] == 20
    stripped = torch.load(path, weights_only=True)
    assert set(stripped) <= {*KEPT_KEYS, "wavezoo_pretrained"} and "optimizer_states" not in stripped
    assert entry["sizes"] == {"input_size": 8, "output_size": 8, "hidden_size": 16} and entry["step"] == 5
    assert isinstance(entry["best_val_loss"], float)  # read from the run's RunCheckpoint state in last.ckpt
    net = load_pretrained(TINY["name"], manifest=published)
    assert not net.training and sum(p.numel() for p in net.parameters()) == entry["parameters"]
    module = load_pretrained(TINY["name"], manifest=published, lightning=True)
    assert isinstance(module, wavezoo.lit.SequenceRegression) and not module.training
    assert compare_metrics(evaluate(TINY["name"], manifest=published), entry["metrics"]) == []
    assert list_pretrained(manifest=published) == [TINY["name"]] == list_pretrained("gru_*", manifest=published)


def test_wavezoo_test_on_a_published_checkpoint_gives_its_metrics(use_manifest):
    entry = pretrained_info(TINY["name"])
    config, ckpt = use_manifest / entry["config"], use_manifest / entry["file"]
    cli = build_cli(["test", "--config", str(config), "--ckpt_path", str(ckpt), *QUIET])
    measured = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert compare_metrics(measured, entry["metrics"]) == []


def test_verify_mode_of_the_script(published, capsys):
    assert training.main(["--manifest", str(published), "--all", "--verify"]) == 0
    assert f"{TINY['name']}: sha256 ok, metrics reproduced" in capsys.readouterr().out


def test_table_mode_of_the_script_lists_parameters_and_metrics(published, capsys):
    entry = pretrained_info(TINY["name"], manifest=published)
    assert training.main(["--manifest", str(published), "--table"]) == 0
    header, rule, row = capsys.readouterr().out.splitlines()
    assert header.startswith("| checkpoint | family | parameters | test accuracy") and rule.startswith("|---|")
    assert row.startswith(
        f"| `{TINY['name']}` | `gru` | {entry['parameters']:,} | {entry['metrics']['test/acc']:.4f} |"
    )


def test_tampered_checkpoint_is_refused(published, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "checkpoints"
    shutil.copytree(published, copy)
    entry = pretrained_info(TINY["name"], manifest=copy)
    path = copy / entry["file"]
    flip_one_byte(path)
    with pytest.raises(ChecksumError) as err:
        load_pretrained(TINY["name"], manifest=copy)
    message = str(err.value)
    assert entry["file"] in message and "sha256" in message
    assert entry["sha256"] in message and sha256_file(path) in message
    monkeypatch.setenv(wavezoo.pretrained.MANIFEST_ENV, str(copy))
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--config", str(copy / entry["config"]), "--ckpt_path", str(path), *QUIET])
    assert exit_info.value.code == 2
    err_text = capsys.readouterr().err
    (line,) = [line for line in err_text.splitlines() if line.startswith("wavezoo: error: ")]
    assert "sha256" in line and entry["file"] in line and "Traceback" not in err_text
    assert training.main(["--manifest", str(copy), "--all", "--verify"]) == 2
    assert "train_checkpoints: error: checkpoint file" in capsys.readouterr().err


def test_create_model_pretrained(use_manifest, tmp_path):
    net = wavezoo.create_model("gru", pretrained=True)
    assert net.wavezoo_config["pretrained"] == TINY["name"] and not net.training
    same = wavezoo.create_model("gru", pretrained=TINY["name"], hidden_size=16, input_size=8)
    assert same.wavezoo_config["sizes"]["hidden_size"] == 16
    with pytest.raises(ConfigError, match="trained with other settings: hidden_size=32 \\(checkpoint: 16\\)"):
        wavezoo.create_model("gru", pretrained=TINY["name"], hidden_size=32)
    with pytest.raises(ConfigError, match=f"'{TINY['name']}' is a 'gru' model, not 'lstm'"):
        wavezoo.create_model("lstm", pretrained=TINY["name"])
    with pytest.raises(ConfigError, match=f"no published pretrained weights for model 'lstm'.*{TINY['name']}"):
        wavezoo.create_model("lstm", pretrained=True)
    with pytest.raises(ConfigError, match="unknown pretrained checkpoint 'gru_tiny_vb_t2'; did you mean"):
        wavezoo.create_model("gru", pretrained="gru_tiny_vb_t2")
    # two checkpoints of a family: pretrained=True is ambiguous
    entry = pretrained_info(TINY["name"])
    write_manifest(tmp_path / "manifest.json", [entry, {**entry, "name": "gru_other"}])
    shutil.copy(use_manifest / entry["file"], tmp_path / entry["file"])
    with pytest.raises(ConfigError, match=f"model 'gru' has 2 published checkpoints: {TINY['name']}, gru_other; "):
        wavezoo.pretrained.loading.pretrained_model("gru", True, {}, manifest=tmp_path)


def test_unknown_names_and_recipes(tmp_path):
    with pytest.raises(ConfigError, match="unknown pretrained checkpoint 'elman_vb_t9'; did you mean 'elman_vb_t"):
        load_pretrained("elman_vb_t9", manifest=REAL.path)
    with pytest.raises(ConfigError, match="available: elman_vb_t1, elman_vb_t2"):
        pretrained_info("nope", manifest=REAL.path)
    write_manifest(tmp_path / "manifest.json", [TINY])
    with pytest.raises(ConfigError, match="is a recipe that has not been trained yet.*--only gru_tiny_vb_t1"):
        load_pretrained(TINY["name"], manifest=tmp_path)
    assert list_pretrained(manifest=tmp_path) == [] and list_pretrained(include_recipes=True, manifest=tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoints": [{"name": "Bad-Name"}]}))
    with pytest.raises(ConfigError, match="lacks the recipe fields"):
        read_manifest(tmp_path)


def test_hubconf_entrypoints(use_manifest):
    net = torch.hub.load(str(ROOT), TINY["name"], source="local")
    x = torch.randn(2, 12, 8)
    assert not net.training and torch.equal(net(x), load_pretrained(TINY["name"])(x))
    module = torch.hub.load(str(ROOT), TINY["name"], source="local", lightning=True)
    assert isinstance(module, wavezoo.lit.SequenceRegression)
    built = torch.hub.load(str(ROOT), "create_model", "lstm", source="local", input_size=3, output_size=2)
    assert built(torch.zeros(1, 4, 3)).shape == (1, 4, 2)
    pretrained = torch.hub.load(str(ROOT), "create_model", "gru", source="local", pretrained=True)
    assert pretrained.wavezoo_config["pretrained"] == TINY["name"]
    hubconf = runpy.run_path(str(ROOT / "hubconf.py"))
    doc = hubconf[TINY["name"]].__doc__
    assert TINY["task"] in doc and "test/acc" in doc and "wavezoo fit" in doc
    assert hubconf["dependencies"] == ["torch", "lightning"]


# -- Hugging Face-style folders ----------------------------------------------------------------------------------

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
    torch.manual_seed(0)
    net = wavezoo.create_model(family, input_size=4, output_size=3, **{"hidden_size": 16, **SMALL.get(family, {})})
    save_pretrained(net.eval(), tmp_path)
    again = from_pretrained(tmp_path)
    x = torch.randn(2, 9, 4)
    assert not again.training and torch.equal(net(x), again(x))
    card = (tmp_path / "README.md").read_text()
    assert str(tmp_path) not in card and f'from_pretrained("path/to/{tmp_path.name}")' in card  # no local path
    assert f"A wavezoo model of family `{family}`" in card  # no "A `elman`"


def test_lightning_module_round_trip_and_push_to_hub_folder(published, tmp_path):
    module = load_pretrained(TINY["name"], manifest=published, lightning=True)
    entry = pretrained_info(TINY["name"], manifest=published)
    folder = push_to_hub(module, "someone/gru-tiny", local_dir=tmp_path / "hub")
    assert {p.name for p in Path(folder).iterdir()} == {"config.json", "model.safetensors", "README.md"}
    config = json.loads((Path(folder) / "config.json").read_text())
    assert config["metrics"] == entry["metrics"] and config["family"] == "gru" and config["name"] == "gru-tiny"
    card = (Path(folder) / "README.md").read_text()
    for key, value in entry["metrics"].items():
        assert f"| {key} | {format_metric(value)} |" in card
    assert entry["command"] in card and 'from_pretrained("someone/gru-tiny")' in card
    again = from_pretrained(folder, lightning=True)
    assert isinstance(again, wavezoo.lit.SequenceRegression) and again.hparams.hidden_size == 16
    x = torch.randn(3, 10, 8)
    assert torch.equal(module(x), again(x)) and torch.equal(module.net(x), from_pretrained(folder)(x))


def test_push_to_hub_uploads_with_huggingface_hub(monkeypatch, tmp_path):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, private, exist_ok))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))

    fake = types.ModuleType("huggingface_hub")
    fake.HfApi = FakeApi
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)  # no network, and no need for the package
    net = wavezoo.create_model("elman", input_size=2, output_size=2, hidden_size=4)
    url = push_to_hub(net, "someone/elman", token="t", metrics={"test/acc": 0.5})
    assert url == "https://huggingface.co/someone/elman"
    assert calls == [
        ("token", "t"),
        ("create_repo", "someone/elman", False, True),
        ("upload_folder", "someone/elman", ["README.md", "config.json", "model.safetensors"]),
    ]


def test_model_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs a model built by wavezoo.create_model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(ConfigError, match="model folder 'no/such/folder' does not exist"):
        from_pretrained("no/such/folder")
    with pytest.raises(ConfigError, match="config.json is missing or invalid"):
        from_pretrained(tmp_path)
    save_pretrained(wavezoo.create_model("gru", input_size=2, output_size=2, hidden_size=4), tmp_path)
    with pytest.raises(ConfigError, match="holds a bare model, not a LightningModule"):
        from_pretrained(tmp_path, lightning=True)


def test_the_script_file_runs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["train_checkpoints.py", "--only", "wave_rnn_copy", "--dry-run"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts/train_checkpoints.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("OMP_NUM_THREADS=1 wavezoo fit --config configs/copy/wave_rnn.yaml ")


def test_a_checkpoint_with_a_url_is_downloaded_to_the_cache_and_checked(published, tmp_path, monkeypatch):
    entry = pretrained_info(TINY["name"], manifest=published)
    source = tmp_path / "remote" / entry["file"]
    source.parent.mkdir()
    shutil.copy(published / entry["file"], source)
    write_manifest(tmp_path / "manifest.json", [{**entry, "url": source.as_uri()}])  # no local file beside it
    monkeypatch.setenv("WAVEZOO_CACHE", str(tmp_path / "cache"))
    x = torch.randn(1, 5, 8)
    local = load_pretrained(TINY["name"], manifest=published)
    assert torch.equal(load_pretrained(TINY["name"], manifest=tmp_path)(x), local(x))
    assert (tmp_path / "cache" / entry["file"]).is_file()
    (tmp_path / "cache" / entry["file"]).unlink()
    flip_one_byte(source)
    with pytest.raises(ChecksumError, match="sha256"):
        load_pretrained(TINY["name"], manifest=tmp_path)
    assert not (tmp_path / "cache" / entry["file"]).exists()  # a bad download is not kept
    source.unlink()
    with pytest.raises(ConfigError, match=f"'{TINY['name']}': cannot download file://"):
        load_pretrained(TINY["name"], manifest=tmp_path)


def test_push_to_hub_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    net = wavezoo.create_model("gru", input_size=2, output_size=2, hidden_size=4)
    with pytest.raises(ConfigError, match="push_to_hub needs huggingface_hub: pip install huggingface_hub"):
        push_to_hub(net, "someone/gru")
