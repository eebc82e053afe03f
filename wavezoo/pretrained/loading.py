"""Loading and re-evaluating the published checkpoints of the manifest."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from torch import nn

from wavezoo.errors import ChecksumError, ConfigError
from wavezoo.pretrained.manifest import CACHE_ENV, Manifest, is_published, manifest_path, read_manifest, sha256_file
from wavezoo.trust import check_lightning_checkpoint, load_tensor_file, net_from_checkpoint, resolve_class

# What a published checkpoint keeps of a Lightning checkpoint: enough for load_from_checkpoint and `wavezoo test
# --ckpt_path`; optimizer states, loops, callbacks and the DataModule's training state are dropped.
KEPT_KEYS = (
    "state_dict",
    "hyper_parameters",
    "hparams_name",
    "datamodule_hyper_parameters",
    "datamodule_hparams_name",
    "pytorch-lightning_version",
    "global_step",
    "epoch",
)


def list_pretrained(
    pattern: str | None = None, *, include_recipes: bool = False, manifest: str | os.PathLike | None = None
) -> list[str]:
    """Names of the published checkpoints (``include_recipes``: also the entries not trained yet), in manifest
    order, optionally filtered by a shell-style ``pattern`` (``"elman_*"``)."""
    names = read_manifest(manifest).names(published_only=not include_recipes)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def pretrained_info(name: str, *, manifest: str | os.PathLike | None = None) -> dict[str, Any]:
    """A copy of the manifest entry of ``name`` (recipe, measured metrics, sha256, command...)."""
    return read_manifest(manifest).get(name)


def strip_checkpoint(checkpoint: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The part of a Lightning checkpoint that inference and ``wavezoo test`` need (see :data:`KEPT_KEYS`)."""
    stripped = {key: checkpoint[key] for key in KEPT_KEYS if key in checkpoint}
    if name is not None:
        stripped["wavezoo_pretrained"] = name
    return stripped


def verify_checksum(path: str | os.PathLike, expected: str, name: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless the sha256 of the file ``path`` is ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        what = f" of pretrained checkpoint {name!r}" if name else ""
        raise ChecksumError(
            f"checkpoint file {os.fspath(path)!r}{what} is corrupted or was modified: its sha256 is {actual}, the "
            f"manifest expects sha256 {expected}; download or retrain it "
            f"(python scripts/train_checkpoints.py --only {name or '<name>'})"
        )


def _cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    import torch.hub

    return Path(torch.hub.get_dir()) / "wavezoo"


def checkpoint_file(entry: dict[str, Any], folder: str | os.PathLike) -> Path:
    """The local file of a published entry: beside the manifest, else in the cache, downloaded from ``url``."""
    if not is_published(entry):
        raise ConfigError(
            f"pretrained checkpoint {entry['name']!r} is a recipe that has not been trained yet; train it with "
            f"`python scripts/train_checkpoints.py --only {entry['name']}`"
        )
    local = Path(folder) / entry["file"]
    if local.is_file():
        return local
    cached = _cache_dir() / entry["file"]
    if cached.is_file():
        return cached
    if not entry.get("url"):
        raise ConfigError(f"pretrained checkpoint {entry['name']!r}: file {str(local)!r} does not exist (no url)")
    import torch.hub

    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(entry["url"], os.fspath(cached), progress=True)
    except OSError as err:  # URLError, HTTPError, disk errors
        raise ConfigError(f"pretrained checkpoint {entry['name']!r}: cannot download {entry['url']} ({err})") from None
    try:
        verify_checksum(cached, entry["sha256"], entry["name"])
    except ChecksumError:
        cached.unlink()  # never keep a bad download in the cache
        raise
    return cached


def _load_entry(entry: dict[str, Any], folder, *, check_hash: bool = True, map_location: Any = "cpu"):
    """The LightningModule of a published entry, in eval mode, after checking the file's sha256."""
    from wavezoo.lit import SequenceTaskModule

    # The manifest is data: its class path is checked (inside wavezoo, a SequenceTaskModule) before anything is
    # imported, downloaded or read.
    what = f"pretrained checkpoint {entry.get('name')!r}: lit_class"
    cls = resolve_class(entry.get("lit_class") or "wavezoo.lit.SequenceTaskModule", SequenceTaskModule, what)
    path = checkpoint_file(entry, folder)
    if check_hash:
        verify_checksum(path, entry["sha256"], entry["name"])
    module = cls.load_from_checkpoint(path, map_location=map_location)
    if entry.get("family") and module.hparams.model != entry["family"]:
        raise ConfigError(
            f"pretrained checkpoint {entry['name']!r} holds a {module.hparams.model!r} model, "
            f"the manifest says {entry['family']!r}"
        )
    module.net.wavezoo_config.update(
        pretrained=entry["name"], task=entry.get("task"), metrics=entry.get("metrics"), command=entry.get("command")
    )
    return module.eval()


def _load_net(entry: dict[str, Any], folder, *, check_hash: bool = True, map_location: Any = "cpu") -> nn.Module:
    """The plain zoo model of a published entry, in eval mode, without importing Lightning.

    The file's sha256 is checked first; the stripped checkpoint is read with ``weights_only=True`` and checked by
    :func:`wavezoo.trust.check_lightning_checkpoint` (class paths, the claimed architecture against the tensors'
    shapes on the meta device, finite weights) before :func:`wavezoo.trust.net_from_checkpoint` builds the model.
    """
    path = checkpoint_file(entry, folder)
    if check_hash:
        verify_checksum(path, entry["sha256"], entry["name"])
    source = f"pretrained checkpoint {entry['name']!r}"
    raw = check_lightning_checkpoint(load_tensor_file(path, map_location), source, import_classes=False)
    net = net_from_checkpoint(raw, source)
    family = net.wavezoo_config["family"]
    if entry.get("family") and family != entry["family"]:
        raise ConfigError(f"{source} holds a {family!r} model, the manifest says {entry['family']!r}")
    net.wavezoo_config.update(
        pretrained=entry["name"], task=entry.get("task"), metrics=entry.get("metrics"), command=entry.get("command")
    )
    return net.eval()


def load_pretrained(
    name: str,
    *,
    lightning: bool = False,
    map_location: Any = "cpu",
    check_hash: bool = True,
    manifest: str | os.PathLike | None = None,
) -> nn.Module:
    """The published checkpoint ``name`` as a ready model in eval mode: the zoo ``nn.Module``, or with
    ``lightning=True`` its LightningModule (metrics, ``trainer.test``...).

    The file's sha256 is checked against the manifest before it is loaded (:class:`ChecksumError` if it differs).
    The plain model needs no Lightning: it loads where ``import lightning`` fails.
    """
    index = read_manifest(manifest)
    if not lightning:
        return _load_net(index.get(name), index.folder, check_hash=check_hash, map_location=map_location)
    return _load_entry(index.get(name), index.folder, check_hash=check_hash, map_location=map_location)


def build_datamodule(spec: dict[str, Any]):
    """A LightningDataModule from ``{"class_path": ..., "init_args": {...}}``."""
    import lightning.pytorch as pl

    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ConfigError(f"datamodule={spec!r} is invalid: expected {{'class_path': ..., 'init_args': {{...}}}}")
    cls = resolve_class(spec["class_path"], pl.LightningDataModule, "datamodule.class_path")
    return cls(**(spec.get("init_args") or {}))


def evaluate_entry(
    entry: dict[str, Any], folder, *, check_hash: bool = True, accelerator: str = "cpu"
) -> dict[str, float]:
    """Test metrics of a published entry on its DataModule's test set (what :func:`evaluate` returns)."""
    from wavezoo.lit.reliability import quiet_trainer

    module = _load_entry(entry, folder, check_hash=check_hash)
    datamodule = build_datamodule(entry["datamodule"])
    trainer = quiet_trainer(accelerator=accelerator, devices=1, enable_checkpointing=False)
    (results,) = trainer.test(module, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in sorted(results.items())}


def evaluate(
    name: str, *, manifest: str | os.PathLike | None = None, check_hash: bool = True, accelerator: str = "cpu"
) -> dict[str, float]:
    """Re-run the test set of the published checkpoint ``name`` (``trainer.test``, no logger, no progress bar)."""
    index = read_manifest(manifest)
    return evaluate_entry(index.get(name), index.folder, check_hash=check_hash, accelerator=accelerator)


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


def verify_if_published(path: str | os.PathLike, manifest: str | os.PathLike | None = None) -> None:
    """If ``path`` is the file of a published entry (beside the manifest), check its sha256 (for the CLI)."""
    path = Path(path)
    if not path.is_file() or path.resolve().parent != manifest_path(manifest).parent.resolve():
        return  # not beside the manifest: the manifest is not even read
    for entry in read_manifest(manifest).published():
        if entry["file"] == path.name:
            verify_checksum(path, entry["sha256"], entry["name"])


def _published_for(family: str, index: Manifest) -> list[str]:
    return [e["name"] for e in index.published() if e.get("family") == family]


def pretrained_model(family: str, pretrained: bool | str, given: dict[str, Any], manifest=None) -> nn.Module:
    """``create_model(family, pretrained=...)``: the one published checkpoint of ``family`` (``True``) or the
    named one; any size or keyword also given must agree with the checkpoint."""
    index = read_manifest(manifest)
    published = _published_for(family, index)
    if pretrained is True:
        if len(published) != 1:
            if not published:
                raise ConfigError(
                    f"no published pretrained weights for model {family!r}; published checkpoints: "
                    f"{', '.join(index.names(published_only=True)) or 'none'}"
                )
            raise ConfigError(
                f"model {family!r} has {len(published)} published checkpoints: {', '.join(published)}; "
                "choose one with pretrained='<name>'"
            )
        name = published[0]
    elif isinstance(pretrained, str):
        entry = index.get(pretrained)
        if entry.get("family") != family:
            raise ConfigError(
                f"pretrained checkpoint {pretrained!r} is a {entry.get('family')!r} model, not {family!r}; "
                f"checkpoints of {family!r}: {', '.join(published) or 'none'}"
            )
        name = pretrained
    else:
        raise ConfigError(f"pretrained={pretrained!r} is invalid: expected True, False or a checkpoint name")
    net = _load_net(index.get(name), index.folder)
    saved = {**net.wavezoo_config["sizes"], **net.wavezoo_config["model_kwargs"]}
    differ = [f"{k}={v!r} (checkpoint: {saved.get(k)!r})" for k, v in given.items() if saved.get(k) != v]
    if differ:
        raise ConfigError(f"pretrained checkpoint {name!r} was trained with other settings: {', '.join(differ)}")
    return net
