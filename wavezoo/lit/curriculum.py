"""The horizon curriculum of the history tasks as a Lightning callback.

A DataModule with a curriculum exposes ``report_train_accuracy(accuracy) -> bool`` (advance when the accuracy passes
its threshold) and ``horizon``. After every training step this callback reports the step's training accuracy (the
``"accuracy"`` entry that :meth:`wavezoo.lit.SequenceTaskModule.training_step` returns, averaged over ranks so that
every rank takes the same decision) and logs ``train/horizon``. :class:`~wavezoo.lit.SequenceTaskModule` adds it
through ``configure_callbacks``, so any Trainer runs the curriculum.

Reading the accuracy on the host is a device synchronisation. On the CPU it costs nothing and the decision is taken
after every step (the paper's protocol). On an accelerator the callback keeps the best accuracy of the last
``check_every_n_steps`` steps on the device (default :data:`ACCELERATOR_CHECK_EVERY` there) and reads it once per
window: the curriculum then advances when any step of the window passed the threshold, at most one stage per window,
up to ``check_every_n_steps - 1`` steps later than the per-step rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

ACCELERATOR_CHECK_EVERY = 25  # steps between host reads of the accuracy on an accelerator


class HorizonCurriculum(Callback):
    """Reports the training accuracy to the DataModule's curriculum (see the module docstring).

    Args:
        check_every_n_steps: steps between decisions; ``None``: 1 on the CPU, :data:`ACCELERATOR_CHECK_EVERY` on an
            accelerator.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        self.check_every_n_steps = check_every_n_steps
        self.best: Any = None  # the best (rank-mean) accuracy of the current window, on the device
        self.pending = 0

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
            accuracy = torch.as_tensor(accuracy).detach()
            self.best = accuracy if self.best is None else torch.maximum(self.best, accuracy)
            self.pending += 1
            every = self.check_every_n_steps
            if every is None:
                every = 1 if pl_module.device.type == "cpu" else ACCELERATOR_CHECK_EVERY
            if self.pending >= every:
                report(float(self.best))  # the one host read of the window
                self.best, self.pending = None, 0
        log_every = max(1, trainer.log_every_n_steps)
        if trainer.global_step == 1 or trainer.global_step % log_every == 0:  # log() costs ~1 ms: logging steps
            pl_module.log("train/horizon", float(datamodule.horizon), on_step=True, on_epoch=False, prog_bar=True)

    def state_dict(self) -> dict[str, Any]:
        return {}  # the curriculum stage is the DataModule's state (saved with the checkpoint)
