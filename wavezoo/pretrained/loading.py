"""Loading the published weights of :mod:`wavezoo.pretrained.weights`, with their sha256 checked before anything is
read.

The files of a name are looked for in the folders of ``$WAVEZOO_CHECKPOINTS`` (``os.pathsep``-separated), then
inside the installed package (``wavezoo/checkpoints``, as a wheel ships them), then in the source tree's
``checkpoints/``; a name with ``hf_hub_id`` whose files are not local comes through huggingface_hub
(``hf_hub_download``: its cache, ``HF_HUB_OFFLINE``, ``HF_HOME`` and tokens apply).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path
from typing import Any

from torch import nn

from wavezoo.errors import ChecksumError, ConfigError
from wavezoo.models.hub_mixin import folder_file, load_weights
from wavezoo.pretrained import weights as table
from wavezoo.pretrained.weights import FILES, Weights, get_weights
from wavezoo.registry import build_model
from wavezoo.trust import resolve_class

CHECKPOINTS_ENV = "WAVEZOO_CHECKPOINTS"
PACKAGE = Path(__file__).resolve().parents[1]


def checkpoint_roots() -> list[Path]:
    """Where published folders are looked for, in order (see the module docstring)."""
    extra = [Path(p).expanduser() for p in os.environ.get(CHECKPOINTS_ENV, "").split(os.pathsep) if p]
    return [*extra, PACKAGE / "checkpoints", PACKAGE.parent / "checkpoints"]


def list_pretrained(pattern: str | None = None, *, include_recipes: bool = False) -> list[str]:
    """Names of the published weights (``include_recipes``: also those not trained yet), in table order, optionally
    filtered by a shell-style ``pattern`` (``"elman_*"``)."""
    names = [w.name for w in table.TABLE.values() if include_recipes or w.published]
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def pretrained_info(name: str) -> dict[str, Any]:
    """The table entry of ``name`` as a dict (model, recipe, test metrics, sha256, files)."""
    return get_weights(name).as_dict()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike, expected: str, name: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless the sha256 of the file ``path`` is ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        what = f" of pretrained checkpoint {name!r}" if name else ""
        raise ChecksumError(
            f"file {os.fspath(path)!r}{what} is corrupted or was modified: its sha256 is {actual}, the weights "
            f"table expects sha256 {expected}; reinstall wavezoo or retrain it "
            f"(python scripts/train_checkpoints.py --only {name or '<name>'})"
        )


def weights_file(weights: Weights, filename: str, expected_sha256: str | None = None) -> Path:
    """The local path of one file of a published entry (downloaded from ``hf_hub_id`` if not local), its sha256
    checked against ``expected_sha256`` before anything reads it."""
    if not weights.published:
        raise ConfigError(
            f"pretrained checkpoint {weights.name!r} is a recipe that has not been trained yet; train it with "
            f"`python scripts/train_checkpoints.py --only {weights.name}`"
        )
    roots = checkpoint_roots()
    path = next((root / weights.name / filename for root in roots if (root / weights.name / filename).is_file()), None)
    if path is None and weights.hf_hub_id:
        try:
            path = folder_file(weights.hf_hub_id, filename)
        except ConfigError as err:
            raise ConfigError(f"pretrained checkpoint {weights.name!r}: {err}") from None
    if path is None:
        where = ", ".join(str(r) for r in roots)
        raise ConfigError(
            f"pretrained checkpoint {weights.name!r}: {weights.name}/{filename} is in none of {where}"
            " and the entry has no hf_hub_id"
        )
    if expected_sha256 is not None:
        verify_checksum(path, expected_sha256, weights.name)
    return path


def verify_folder(weights: Weights, first: str = "model.safetensors") -> Path:
    """Check the sha256 of every file of a published folder against the table (:class:`ChecksumError`), ``first``
    (the file about to be read) before the others, and that a local folder holds no other file; return the folder."""
    order = [first, *(name for name in FILES if name != first)]
    paths = [weights_file(weights, filename, weights.file_sha256(filename)) for filename in order]
    folder = paths[0].parent
    if all(path.parent == folder for path in paths):
        extra = sorted(path.name for path in folder.iterdir() if path.name not in FILES)
        if extra:
            raise ChecksumError(
                f"folder {os.fspath(folder)!r} of pretrained checkpoint {weights.name!r} holds files the weights "
                f"table does not cover ({', '.join(extra[:3])}); refused: a published folder holds {', '.join(FILES)}"
            )
    return folder


def _annotate(net: nn.Module, weights: Weights) -> nn.Module:
    net.wavezoo_config.update(
        pretrained=weights.name, task=weights.task, metrics=weights.metrics, command=weights.command
    )
    return net.eval()


def load_net(weights: Weights, map_location: Any = "cpu", check_hash: bool = True) -> nn.Module:
    """The plain model of a published entry from its ``model.safetensors`` (no Lightning import)."""
    if check_hash:
        verify_folder(weights)
    path = weights_file(weights, "model.safetensors", weights.sha256 if check_hash else None)
    net = build_model(weights.family, **weights.sizes, **weights.model_kwargs)
    return _annotate(load_weights(net, path, map_location), weights)


RUN_CONFIG_MAX_BYTES = 1 << 20  # a resolved LightningCLI config is a few KB


def run_config(weights: Weights, check_hash: bool = True) -> dict[str, Any]:
    """The resolved LightningCLI config of the run that trained a published entry (``<name>/train_config.yaml``):
    its ``model.class_path`` is the LightningModule of ``lightning.ckpt``, its ``data`` the DataModule whose test set
    gave the table's metrics. Its sha256 is checked against the table; read as data (``yaml.safe_load``,
    size-capped); class paths are checked where used."""
    import yaml

    expected = weights.file_sha256("train_config.yaml") if check_hash else None
    path = weights_file(weights, "train_config.yaml", expected)
    where = f"pretrained checkpoint {weights.name!r}: {path}"
    if path.stat().st_size > RUN_CONFIG_MAX_BYTES:
        raise ConfigError(f"{where} is invalid: {path.stat().st_size:,} bytes, more than a run config can be")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{where} is invalid: not YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ("model", "data")):
        raise ConfigError(f"{where} is invalid: expected a LightningCLI config with 'model' and 'data' sections")
    return config


def load_lightning(weights: Weights, map_location: Any = "cpu", check_hash: bool = True):
    """The LightningModule of a published entry from its ``lightning.ckpt`` (``weights_only`` loading), of the
    class its run config names (inside wavezoo, checked before import)."""
    from wavezoo.lit import SequenceTaskModule

    what = f"pretrained checkpoint {weights.name!r}: train_config.yaml model.class_path"
    cls = resolve_class(run_config(weights, check_hash)["model"].get("class_path"), SequenceTaskModule, what)
    if check_hash:  # train_config.yaml was checked by run_config; now the rest of the folder
        verify_folder(weights, first="lightning.ckpt")
    path = weights_file(weights, "lightning.ckpt", weights.ckpt_sha256 if check_hash else None)
    module = cls.load_from_checkpoint(path, map_location=map_location, weights_only=True)
    _annotate(module.net, weights)
    return module.eval()


def load_pretrained(
    name: str, *, lightning: bool = False, map_location: Any = "cpu", check_hash: bool = True
) -> nn.Module:
    """The published weights ``name`` as a ready model in eval mode: the zoo ``nn.Module`` (from
    ``model.safetensors``; Lightning is not imported), or with ``lightning=True`` its LightningModule from
    ``lightning.ckpt`` (metrics, ``trainer.test``, resuming training).

    The file's sha256 is checked against the weights table before it is read (:class:`ChecksumError`)."""
    weights = get_weights(name)
    if lightning:
        return load_lightning(weights, map_location, check_hash)
    return load_net(weights, map_location, check_hash)


def build_datamodule(spec: dict[str, Any]):
    """A LightningDataModule from ``{"class_path": ..., "init_args": {...}}`` (class inside wavezoo)."""
    import lightning.pytorch as pl

    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ConfigError(f"datamodule={spec!r} is invalid: expected {{'class_path': ..., 'init_args': {{...}}}}")
    cls = resolve_class(spec["class_path"], pl.LightningDataModule, "datamodule.class_path")
    return cls(**(spec.get("init_args") or {}))


def evaluate_weights(weights: Weights, *, check_hash: bool = True, accelerator: str = "cpu") -> dict[str, float]:
    """Test metrics of a published entry on the test set of its run's DataModule (``trainer.test``, quiet)."""
    from wavezoo.lit.reliability import quiet_trainer

    module = load_lightning(weights, check_hash=check_hash)
    datamodule = build_datamodule(run_config(weights, check_hash)["data"])
    trainer = quiet_trainer(accelerator=accelerator, devices=1, enable_checkpointing=False)
    (results,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in sorted(results.items())}


def evaluate(name: str, *, check_hash: bool = True, accelerator: str = "cpu") -> dict[str, float]:
    """Re-run the test set of the published weights ``name``; compare with ``pretrained_info(name)["metrics"]``."""
    return evaluate_weights(get_weights(name), check_hash=check_hash, accelerator=accelerator)


def compare_metrics(
    measured: dict[str, float], expected: dict[str, float], *, acc_points: float = 0.5, rel: float = 0.10
) -> list[str]:
    """The metrics of ``expected`` that ``measured`` misses or does not reproduce: accuracies (``*acc*``) within
    ``acc_points`` percentage points, the others (MSE, loss) within ``rel`` relative. Empty if all match."""
    problems = []
    for key, want in expected.items():
        got = measured.get(key)
        if got is None:
            problems.append(f"{key}: missing (expected {want:.6g})")
        elif "acc" in key.rsplit("/", 1)[-1]:
            if abs(got - want) * 100 > acc_points:
                problems.append(f"{key}: {got:.6g} vs {want:.6g} (more than {acc_points} points apart)")
        elif abs(got - want) > rel * abs(want) + 1e-12:
            problems.append(f"{key}: {got:.6g} vs {want:.6g} (more than {rel:.0%} apart)")
    return problems


def verify_if_published(path: str | os.PathLike) -> None:
    """If ``path`` is the ``lightning.ckpt`` of a published folder, check its sha256 (for ``wavezoo --ckpt_path``)."""
    path = Path(path)
    weights = table.TABLE.get(path.parent.name)
    if path.name != "lightning.ckpt" or not path.is_file() or weights is None or not weights.ckpt_sha256:
        return
    if path.resolve().parent.parent in {root.resolve() for root in checkpoint_roots()}:
        verify_checksum(path, weights.ckpt_sha256, weights.name)


def pretrained_model(family: str, pretrained: bool | str, given: dict[str, Any]) -> nn.Module:
    """``create_model(family, pretrained=...)``: the one published entry of ``family`` (``True``) or the named
    one; any size or keyword also given must agree with it."""
    published = [w.name for w in table.TABLE.values() if w.published and w.family == family]
    if pretrained is True:
        if len(published) != 1:
            if not published:
                raise ConfigError(
                    f"no published pretrained weights for model {family!r}; published checkpoints: "
                    f"{', '.join(list_pretrained()) or 'none'}"
                )
            raise ConfigError(
                f"model {family!r} has {len(published)} published checkpoints: {', '.join(published)}; "
                "choose one with pretrained='<name>'"
            )
        weights = get_weights(published[0])
    elif isinstance(pretrained, str):
        weights = get_weights(pretrained)
        if weights.family != family:
            raise ConfigError(
                f"pretrained checkpoint {pretrained!r} is a {weights.family!r} model, not {family!r}; "
                f"checkpoints of {family!r}: {', '.join(published) or 'none'}"
            )
    else:
        raise ConfigError(f"pretrained={pretrained!r} is invalid: expected True, False or a checkpoint name")
    saved = {**(weights.sizes or {}), **weights.model_kwargs}
    differ = [f"{k}={v!r} (checkpoint: {saved.get(k)!r})" for k, v in given.items() if saved.get(k) != v]
    if differ:
        raise ConfigError(
            f"pretrained checkpoint {weights.name!r} was trained with other settings: {', '.join(differ)}"
        )
    return load_net(weights)
