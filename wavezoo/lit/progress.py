"""Training progress a person can read: steps against ``max_steps``, integers as integers, and plain lines when
stdout is not a terminal (nohup, CI, a notebook's subprocess), where a live bar prints nothing until the end.

:func:`default_progress_bar` picks :class:`StepProgressBar` (Lightning's ``RichProgressBar``) for a terminal and
:class:`LineProgress` otherwise; :class:`~wavezoo.lit.reliability.WavezooTrainer` adds it when progress bars are on
and none is given.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.trainer.states import TrainerFn

LINE_EVERY_SECONDS = 30.0  # a plain line at least this often
LINE_EVERY_FRACTION = 10  # and every max_steps // 10 steps


def format_value(value: Any) -> Any:
    """A progress-bar value as text: integers (also integral floats such as ``v_num`` or ``train/horizon``) without
    decimals, other numbers to 4 significant digits."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.4g}"


def format_duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def step_total(trainer: pl.Trainer) -> int | None:
    """The number of optimizer steps of the fit, when ``max_steps`` bounds it (``None``: epochs are the unit)."""
    return trainer.max_steps if trainer.max_steps is not None and trainer.max_steps > 0 else None


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar, counting optimizer steps against ``max_steps`` when the fit is bounded by steps (its
    epochs are then an artefact of ``steps_per_epoch``, and ``max_epochs=-1`` read ``Epoch 0/-2``); integers show as
    integers (:func:`format_value`)."""

    def show_steps(self, trainer: pl.Trainer, restart: bool = False) -> None:
        """Set the training bar to ``global_step / max_steps`` (``restart``: at an epoch start, where Lightning reset
        it to the epoch's batches; a reset, not an update, so the speed column does not see a jump)."""
        if self.progress is None or self.train_progress_bar_id is None or not self.is_enabled:
            return
        total = step_total(trainer)
        style = f"[{self.theme.description}]" if self.theme.description else ""
        if total is not None:
            bar = {"total": total, "completed": trainer.global_step, "description": f"{style}Step"}
            (self.progress.reset if restart else self.progress.update)(self.train_progress_bar_id, **bar)
        elif trainer.max_epochs is None or trainer.max_epochs < 0:  # unbounded: "Epoch 3", not "Epoch 3/-2"
            self.progress.update(self.train_progress_bar_id, description=f"{style}Epoch {trainer.current_epoch}")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self.show_steps(trainer, restart=True)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # the rich bar shows batch_idx + 1 done: here the steps done, so that its speed column sees no jumps
        if step_total(trainer) is not None:
            batch_idx = trainer.global_step - 1
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return {name: format_value(value) for name, value in super().get_metrics(trainer, pl_module).items()}


class LineProgress(ProgressBar):
    """Plain progress lines for a stdout that is not a terminal, e.g.

        step 120/600 (20%) | train/loss 0.6931 | train/acc 0.512 | train/horizon 20 | 41.2 steps/s | ETA 0:00:11

    one at the first step, then every ``every_n_steps`` steps (default ``max_steps // 10``) and at least every
    ``every_seconds`` seconds; one line after each validation of the fit (its metrics) and one at the end.

    Args:
        every_seconds: the longest silence between two lines during training.
        every_n_steps: a line every so many steps (``None``: a tenth of ``max_steps``; 0: by time only).
        stream: where the lines go (default ``sys.stdout`` at the time of printing).
    """

    def __init__(
        self, every_seconds: float = LINE_EVERY_SECONDS, every_n_steps: int | None = None, stream: TextIO | None = None
    ) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self.every_n_steps = every_n_steps
        self.stream = stream
        self.enabled = True
        self.started = self.last_line = 0.0
        self.start_step = 0
        self.last_step: int | None = None

    @property
    def is_enabled(self) -> bool:
        return self.enabled

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        print(*args, file=self.stream or sys.stdout, flush=True, **kwargs)

    def metrics_text(self, trainer: pl.Trainer, prefix: str) -> list[str]:
        metrics = self.get_metrics(trainer, trainer.lightning_module)
        return [f"{name} {format_value(value)}" for name, value in metrics.items() if name.startswith(prefix)]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = self.last_line = time.monotonic()
        self.start_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs) -> None:
        if not self.enabled:
            return
        step, total, now = trainer.global_step, step_total(trainer), time.monotonic()
        every = self.every_n_steps
        if every is None:
            every = max(1, total // LINE_EVERY_FRACTION) if total else 0
        due = step == self.start_step + 1 or (every and step % every == 0) or now - self.last_line >= self.every_seconds
        if due:
            self.print_step(trainer, now)

    def print_step(self, trainer: pl.Trainer, now: float) -> None:
        step, total = trainer.global_step, step_total(trainer)
        parts = [f"step {step}/{total} ({100 * step / total:.0f}%)" if total else f"step {step}"]
        parts += self.metrics_text(trainer, "train/")
        elapsed = now - self.started
        if elapsed > 0 and step > self.start_step:
            rate = (step - self.start_step) / elapsed
            parts.append(f"{rate:.3g} steps/s")
            if total:
                parts.append(f"ETA {format_duration((total - step) / rate)}")
        self.print(" | ".join(parts))
        self.last_line, self.last_step = now, step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            values = self.metrics_text(trainer, "val/")
            if values:
                self.print(f"validation at step {trainer.global_step} | " + " | ".join(values))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and self.last_step != trainer.global_step:
            self.print_step(trainer, time.monotonic())


def default_progress_bar() -> ProgressBar:
    """:class:`StepProgressBar` when stdout is a terminal, else :class:`LineProgress`."""
    isatty = getattr(sys.stdout, "isatty", None)
    return StepProgressBar() if isatty is not None and isatty() else LineProgress()
