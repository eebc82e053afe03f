"""Training safeguards: atomic checkpoint files and a stop on a non-finite loss."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from wavezoo.errors import ConfigError, TrainingDiverged


def read_checkpoint(path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
    """``torch.load`` a checkpoint file, turning a missing, truncated or corrupted file into one clear error."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"checkpoint {path!r} does not exist; expected the path of a .ckpt file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=bool(weights_only))
    except Exception as err:  # zip/pickle/EOF errors: the file is not a whole PyTorch checkpoint
        reason = str(err).splitlines()[0].split(". ")[0][:160]
        raise ConfigError(f"checkpoint {path!r} cannot be read, it is truncated or corrupted ({reason})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"checkpoint {path!r} has no 'state_dict': not a Lightning checkpoint of wavezoo")
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in the same folder, flushes it to disk, then renames it over the
    target, so a run killed mid-write never leaves a half-written ``last.ckpt`` (the old file stays whole).
    Reading refuses a missing, truncated or corrupted file with one clear error."""

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None):
        if "://" in os.fspath(path):
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, map_location, weights_only)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = os.fspath(path)
        if "://" in path:  # remote filesystems: fall back to Lightning's writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ckpt", dir=folder)
        try:
            with os.fdopen(handle, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


class StopOnNonFiniteLoss(Callback):
    """Stops training with :class:`~wavezoo.errors.TrainingDiverged` when the loss is NaN or infinite, before the
    backward pass and the optimizer step; no checkpoint is written for that step, the best one is kept."""

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        local = bool(torch.isfinite(loss).all())
        finite = local
        if trainer.world_size > 1:  # every rank stops together (one rank raising alone would hang the others)
            finite = trainer.strategy.reduce_boolean_decision(local, all=True)
        if not finite:
            best = getattr(trainer.checkpoint_callback, "best_model_path", "") or "none yet"
            value = "non-finite on another rank" if local else loss.item()
            raise TrainingDiverged(
                f"training loss became {value} at step {trainer.global_step}; training stopped "
                f"(lower the learning rate or clip gradients); best checkpoint kept: {best}"
            )


def quiet_trainer(**kwargs: Any) -> pl.Trainer:
    """A Trainer for scripted runs (evaluation, sweeps): no logger, progress bar or model summary; ``kwargs``
    add to or override these settings (checkpoints go through :class:`AtomicCheckpointIO`)."""
    settings = {
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "plugins": [AtomicCheckpointIO()],
    }
    return pl.Trainer(**(settings | kwargs))


class ResumableCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` is rewritten at every validation.

    Lightning 2.5+ writes ``last.ckpt`` only when a top-k checkpoint was saved at that step, so after the monitored
    metric stops improving a killed run would resume from its last improvement and lose the steps since. This
    subclass also writes it when the top-k did not change, so resuming loses at most one validation interval.
    """

    def _write_last_if_missed(self, trainer: pl.Trainer) -> None:
        missed = self._last_global_step_saved != trainer.global_step
        if self.save_last and missed and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._write_last_if_missed(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._write_last_if_missed(trainer)
