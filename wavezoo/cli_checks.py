"""Checks of a parsed ``wavezoo`` command line that Lightning would otherwise trust or get wrong silently.

- ``--trainer.devices``: a positive count, ``-1`` (all), ``"auto"`` or a non-empty list of device indices.
- ``--seed_everything``: ``true``/``false`` or an integer in [0, 2**32 - 1] (Lightning replaces others by 0).
- ``--ckpt_path``: the file is read and checked by :func:`wavezoo.trust.read_checkpoint` (and against the manifest's
  sha256 for a published checkpoint) before Lightning reads its hyper-parameters; it must hold the model family and
  LightningModule that the config names. ``last`` resolves to the ``last.ckpt`` of the latest run folder of the
  config and ``fit`` continues in that folder; ``best`` exists only after a ``fit`` in the same command.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from wavezoo.errors import ConfigError
from wavezoo.lit import SequenceTaskModule
from wavezoo.pretrained.loading import verify_if_published
from wavezoo.trust import read_checkpoint

MAX_SEED = 2**32 - 1  # numpy's bound, which Lightning's seed_everything enforces
LAST = "last.ckpt"


def check_devices(devices: Any) -> None:
    if devices is None or devices in ("auto", -1, "-1"):
        return
    if isinstance(devices, str) and re.fullmatch(r"\s*\d+\s*(,\s*\d+\s*)*,?\s*", devices):
        devices = [int(d) for d in devices.split(",") if d.strip()] if "," in devices else int(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1:
        return
    if isinstance(devices, list) and devices and all(isinstance(d, int) and d >= 0 for d in devices):
        return
    raise ConfigError(
        f"trainer.devices={devices!r} is invalid: expected an integer >= 1, -1 (all devices), 'auto' or a "
        "non-empty list of device indices"
    )


def check_seed(seed: Any) -> None:
    if seed is None or isinstance(seed, bool):
        return
    if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed_everything={seed!r} is invalid: expected true, false or an integer in [0, {MAX_SEED}]")


def _logger_args(cfg: Namespace) -> Namespace | None:
    logger = cfg.trainer.get("logger")
    return logger.get("init_args") if isinstance(logger, Namespace) else None


def find_last_checkpoint(cfg: Namespace, subcommand: str) -> str:
    """The ``last.ckpt`` that ``--ckpt_path last`` means: in ``--checkpoint.dirpath``, in the logger's run folder
    (the newest ``<save_dir>/<name>/*/checkpoints/last.ckpt`` when no version is set; ``fit`` then continues in
    that version), or in ``<default_root_dir>/checkpoints`` without a logger."""
    root = Path(cfg.trainer.get("default_root_dir") or os.getcwd())
    logger, args = cfg.trainer.get("logger"), _logger_args(cfg)
    version = None
    if (cfg.get("checkpoint") or Namespace()).get("dirpath"):
        folders = [Path(cfg.checkpoint.dirpath)]
    elif logger in (None, False):
        folders = [root / "checkpoints"]
    else:
        args = args or Namespace()
        base = Path(args.get("save_dir") or root) / str(args.get("name") or "")
        version = args.get("version")
        if version is not None:
            folders = [base / (version if isinstance(version, str) else f"version_{version}") / "checkpoints"]
        else:
            folders = sorted(base.glob("*/checkpoints"))
    candidates = [folder / LAST for folder in folders if (folder / LAST).is_file()]
    if not candidates:
        where = ", ".join(str(f) for f in folders[:3]) or f"{base}/*/checkpoints"
        raise ConfigError(
            f"ckpt_path='last' found no {LAST} in {where}: nothing to resume (leave out --ckpt_path to start a new "
            "run, or pass the path of a checkpoint file)"
        )
    last = max(candidates, key=lambda p: p.stat().st_mtime)
    if subcommand == "fit" and version is None and args is not None and "version" in args:
        args.version = last.parent.parent.name  # continue in the run folder of that checkpoint
    return str(last)


def check_same_model(cfg: Namespace, checkpoint: dict[str, Any], path: str) -> None:
    """Refuse a checkpoint of another model family or LightningModule than the config names (LightningCLI would
    silently replace the config's model by the checkpoint's)."""
    hparams = checkpoint.get("hyper_parameters") or {}
    model = cfg.get("model")
    if not isinstance(model, Namespace):
        return
    wanted = {"model": (model.get("init_args") or Namespace()).get("model"), "module": model.get("class_path")}
    held = {"model": hparams.get("model"), "module": hparams.get("_class_path")}
    differ = [f"{k} {held[k]!r} (the config: {wanted[k]!r})" for k in held if held[k] and wanted[k] != held[k]]
    if differ:
        raise ConfigError(
            f"checkpoint {path!r} holds {' and '.join(differ)}; use the config it was trained with (config.yaml in "
            f"its run folder) or set --model.init_args.model {held['model']}"
        )


def check_run_arguments(cfg: Namespace, subcommand: str) -> None:
    """Check the parsed config of one subcommand (may resolve ``ckpt_path='last'`` and the logger version)."""
    check_devices(cfg.trainer.get("devices"))
    check_seed(cfg.get("seed_everything"))
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None or ckpt_path in ("hpc", "registry"):
        return
    if ckpt_path == "best":
        raise ConfigError(
            "ckpt_path='best' means the best checkpoint of a fit in the same command (wavezoo fit --test_after_fit "
            "true); here pass the path of a checkpoint file (runs/.../checkpoints/best-stepN.ckpt) or 'last'"
        )
    if ckpt_path == "last":
        ckpt_path = cfg.ckpt_path = find_last_checkpoint(cfg, subcommand)
    verify_if_published(ckpt_path)  # a published checkpoint (checkpoints/<name>/lightning.ckpt): check its sha256 first
    check_same_model(cfg, read_checkpoint(ckpt_path, base=SequenceTaskModule), ckpt_path)
