"""Model folders and manifests from elsewhere are data: no import outside wavezoo, no size allocated before it is
checked against the tensors, one-line errors for corrupt or malformed files, no NaN weights."""

import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import wavezoo
from wavezoo.errors import ConfigError
from wavezoo.lit import SequenceRegression
from wavezoo.pretrained import from_pretrained, save_pretrained

ROOT = Path(__file__).resolve().parents[1]
HUGE = 1_000_000


@pytest.fixture
def bare(tmp_path):
    torch.manual_seed(0)
    return save_pretrained(wavezoo.create_model("gru", input_size=8, output_size=8, hidden_size=16), tmp_path / "bare")


@pytest.fixture
def lit(tmp_path):
    torch.manual_seed(0)
    module = SequenceRegression(model="gru", input_size=8, output_size=8, hidden_size=16)
    return save_pretrained(module, tmp_path / "lit")


def edit_config(folder, **changes):
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = config
        for parent in parents:
            target = target[parent]
        target[key] = value
    path.write_text(json.dumps(config))
    return path


def refused(folder, **kwargs) -> str:
    """The one-line message of the ConfigError that ``from_pretrained`` raises."""
    with pytest.raises(ConfigError) as err:
        from_pretrained(folder, **kwargs)
    message = str(err.value)
    assert "\n" not in message, message
    return message


# -- class paths: checked before anything is imported ------------------------------------------------------------

CLASS_PATHS = ["this.Foo", "os.path.join"]

PROBE = textwrap.dedent(
    """
    import json, os, sys
    from wavezoo.errors import ConfigError
    from wavezoo.pretrained import from_pretrained
    from wavezoo.pretrained.loading import build_datamodule, load_lightning
    from wavezoo.pretrained.weights import Recipe, Weights

    messages = []
    for folder, class_path in zip(sys.argv[1::2], sys.argv[2::2]):
        os.environ["WAVEZOO_CHECKPOINTS"] = folder  # folder/probe/train_config.yaml names class_path
        calls = [
            lambda: from_pretrained(folder, lightning=True),
            lambda: load_lightning(Weights("probe", "gru", "", Recipe("x"), sha256="0")),
            lambda: build_datamodule({"class_path": class_path, "init_args": {}}),
        ]
        for call in calls:
            try:
                call()
            except ConfigError as err:
                messages.append(str(err))
            else:
                messages.append("not refused")
    print(json.dumps({"messages": messages, "imported_this": "this" in sys.modules}))
    """
)


def test_class_paths_outside_wavezoo_are_refused_before_any_import(lit, tmp_path):
    # a subprocess: another test of this session may have imported `this` (the Zen of Python) already
    args = []
    for i, class_path in enumerate(CLASS_PATHS):
        folder = tmp_path / f"evil{i}"
        folder.mkdir()
        for name in ("config.json", "model.safetensors"):
            (folder / name).write_bytes((lit / name).read_bytes())
        edit_config(folder, lightning__class_path=class_path)
        (folder / "probe").mkdir()
        (folder / "probe" / "train_config.yaml").write_text(f"model:\n  class_path: {class_path}\ndata: {{}}\n")
        args += [str(folder), class_path]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Beautiful is better than ugly" not in done.stdout  # `import this` prints the Zen
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["imported_this"] is False
    assert len(result["messages"]) == 3 * len(CLASS_PATHS)
    for message, class_path in zip(result["messages"], [p for p in CLASS_PATHS for _ in range(3)], strict=True):
        assert f"{class_path!r} is refused" in message and "inside the wavezoo package" in message, message
    hub, entry, datamodule = result["messages"][:3]
    assert "config.json" in hub and "lightning.class_path" in hub
    assert "pretrained checkpoint 'probe': train_config.yaml model.class_path" in entry
    assert datamodule.startswith("datamodule.class_path")


def test_a_wavezoo_class_of_the_wrong_kind_is_refused(lit):
    edit_config(lit, lightning__class_path="wavezoo.errors.ConfigError")
    message = refused(lit, lightning=True)
    assert "lightning.class_path 'wavezoo.errors.ConfigError' is not a SequenceTaskModule" in message


# -- a claimed architecture that does not fit the tensors allocates nothing ---------------------------------------


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def refused_cheaply(folder, **kwargs) -> str:
    before, start = max_rss_mb(), time.perf_counter()
    message = refused(folder, **kwargs)
    assert time.perf_counter() - start < 20 and max_rss_mb() - before < 256  # a real build would need ~12 TB
    return message


def test_a_lying_hidden_size_is_refused_before_building_the_model(bare, monkeypatch):
    edit_config(bare, sizes__hidden_size=HUGE)

    def no_build(*args, **kwargs):
        raise AssertionError("the model was built before its sizes were checked")

    monkeypatch.setattr(wavezoo, "create_model", no_build)
    message = refused_cheaply(bare)
    assert f"hidden_size={HUGE}" in message and "config.json" in message
    assert "of shape (3000000, 8), the file holds (48, 8); refused before allocating" in message


@pytest.mark.parametrize("where", ["both", "init_args"])
def test_a_lying_lightning_config_is_refused_before_instantiating(lit, monkeypatch, where):
    changes = {"lightning__init_args__hidden_size": HUGE}
    if where == "both":
        changes["sizes__hidden_size"] = HUGE
    edit_config(lit, **changes)

    def no_init(self, *args, **kwargs):
        raise AssertionError("the LightningModule was instantiated before its sizes were checked")

    monkeypatch.setattr(SequenceRegression, "__init__", no_init)
    message = refused_cheaply(lit, lightning=True)
    assert f"hidden_size={HUGE}" in message and "config.json" in message and "refused before allocating" in message
    if where == "init_args":
        assert "lightning.init_args" in message


def test_absurd_sizes_are_one_line(bare):
    edit_config(bare, sizes__hidden_size=10**18)
    assert "cannot be built" in refused(bare)


# -- corrupt weights, malformed config.json ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda data: data[:10], id="truncated-to-10-bytes"),
        pytest.param(lambda data: data[:-4], id="tensor-data-cut"),
        pytest.param(lambda data: bytes(torch.randint(0, 256, (len(data),), dtype=torch.uint8)), id="random-bytes"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
@pytest.mark.parametrize("lightning", [False, True])
def test_a_corrupt_safetensors_file_is_one_line(lit, corrupt, lightning):
    path = lit / "model.safetensors"
    torch.manual_seed(0)
    path.write_bytes(corrupt(path.read_bytes()))
    message = refused(lit, lightning=lightning)
    assert message.startswith(f"{path} is truncated or corrupted (") and message.endswith("); refused")


def test_missing_weights_are_one_line(bare):
    (bare / "model.safetensors").unlink()
    assert refused(bare) == f"{bare / 'model.safetensors'} is missing: not a wavezoo model folder"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "config.json is invalid: not JSON ("),
        ("[1, 2]", "config.json is invalid: expected a JSON object, got a list"),
        (
            {"sizes": "16"},
            "config.json: sizes='16' is invalid: expected an object of input_size, output_size, hidden_size",
        ),
        (
            {"sizes": {"input_size": 8, "output_size": 8}},
            "config.json: sizes.hidden_size=None is invalid: expected an integer >= 1",
        ),
        ({"sizes__hidden_size": 0}, "config.json: sizes.hidden_size=0 is invalid: expected an integer >= 1"),
        ({"sizes__hidden_size": "16"}, "config.json: sizes.hidden_size='16' is invalid"),
        ({"sizes__hidden_size": True}, "config.json: sizes.hidden_size=True is invalid"),
        ({"family": "nope"}, "config.json: family='nope' is invalid: expected one of elman, gru,"),
        ({"family": None}, "config.json: family=None is invalid"),
        ({"model_kwargs": [1]}, "config.json: model_kwargs=[1] is invalid: expected an object"),
        (
            {"model_kwargs": {"pretrained": True}},
            "config.json: model_kwargs.pretrained is refused: sizes and weights are not family options",
        ),
        (
            {"model_kwargs": {"hidden_size": 16}},
            "config.json: model_kwargs.hidden_size is refused: sizes and weights are not",
        ),
        ({"model_kwargs": {"nope": 1}}, "config.json (with model.safetensors): model 'gru': "),
        ({"metrics": [1]}, "config.json: metrics=[1] is invalid: expected an object of numbers"),
        ({"name": 3}, "config.json: name=3 is invalid: expected a string or null"),
        ({"lightning": "x"}, "config.json (with model.safetensors): lightning='x' is invalid"),
    ],
)
def test_a_malformed_config_is_one_line_naming_the_field(bare, text, expected):
    if isinstance(text, dict):
        edit_config(bare, **text)
    else:
        (bare / "config.json").write_text(text)
    assert expected in refused(bare, lightning="lightning" in text)


def test_a_huge_config_is_refused_unread(bare):
    with open(bare / "config.json", "ab") as file:
        file.truncate(2 << 20)
    assert "config.json is invalid: 2,097,152 bytes, more than a wavezoo config.json can be; refused" in refused(bare)


# -- weights that are not finite ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("lightning", [False, True])
def test_non_finite_weights_are_refused(lit, value, lightning):
    path = lit / "model.safetensors"
    tensors = load_file(path)
    tensors["rnn.weight_hh_l0"][0, 0] = value
    save_file(tensors, path, metadata={"format": "pt"})
    message = refused(lit, lightning=lightning)
    assert message.startswith(f"{path}: weights with NaN or infinite values in rnn.weight_hh_l0")


def test_the_untouched_folders_still_load(bare, lit):
    x = torch.randn(2, 5, 8)
    module = from_pretrained(lit, lightning=True)
    assert isinstance(module, SequenceRegression) and torch.equal(from_pretrained(lit)(x), module(x))
    assert from_pretrained(bare)(x).shape == (2, 5, 8)
