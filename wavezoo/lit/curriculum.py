"""The horizon curriculum of the history tasks as a Lightning callback.

A DataModule with a curriculum exposes ``report_train_accuracy(accuracy) -> bool`` (advance when the accuracy passes
its threshold) and ``horizon``. After every training step this callback reports the step's training accuracy (the
``"accuracy"`` entry that :meth:`wavezoo.lit.SequenceTaskModule.training_step` returns, averaged over ranks so that
every rank takes the same decision) and logs ``train/horizon``. :class:`~wavezoo.lit.SequenceTaskModule` adds it
through ``configure_callbacks``, so any Trainer runs the curriculum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class HorizonCurriculum(Callback):
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        datamodule = trainer.datamodule
        report = getattr(datamodule, "report_train_accuracy", None)
        if report is None:
            return
        accuracy = outputs.get("accuracy") if isinstance(outputs, Mapping) else None
        if accuracy is not None:
            if trainer.world_size > 1:  # every rank must take the same curriculum decision
                accuracy = trainer.strategy.reduce(accuracy, reduce_op="mean")
            report(float(accuracy))
        if trainer.global_step % max(1, trainer.log_every_n_steps) == 0:  # log() costs ~1 ms: logging steps only
            pl_module.log("train/horizon", float(datamodule.horizon), on_step=True, on_epoch=False, prog_bar=True)

    def state_dict(self) -> dict[str, Any]:
        return {}  # the curriculum stage is the DataModule's state (saved with the checkpoint)
