"""Progress a person can read: steps against max_steps, integers as integers, plain lines off a terminal."""

import io
import logging
import re
import warnings

from lightning.pytorch.callbacks import Callback

from wavezoo.data import VariableBindingDataModule
from wavezoo.lit import SequenceRegression
from wavezoo.lit.progress import LineProgress, StepProgressBar, default_progress_bar, format_value
from wavezoo.lit.reliability import WavezooTrainer


def tiny_fit(steps: int, callbacks: list, steps_per_epoch: int | None = None, **trainer_kwargs) -> WavezooTrainer:
    module = SequenceRegression(model="elman", input_size=8, output_size=8, hidden_size=8)
    data = VariableBindingDataModule(
        "T1", horizons=[2], batch_size=2, steps_per_epoch=steps_per_epoch or steps, val_batches=1, test_batches=1
    )
    settings = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False}
    trainer = WavezooTrainer(max_steps=steps, callbacks=callbacks, log_every_n_steps=50, **settings, **trainer_kwargs)
    trainer.fit(module, datamodule=data)
    return trainer


def test_values_show_integers_as_integers():
    assert format_value(3.0) == "3" and format_value(100.0) == "100" and format_value(7) == "7"
    assert format_value(0.693147) == "0.6931" and format_value(1.5e-7) == "1.5e-07"
    assert format_value("x") == "x" and format_value(float("nan")) == "nan"


def test_the_default_bar_is_plain_lines_off_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(default_progress_bar(), LineProgress)
    assert not any(isinstance(c, StepProgressBar) for c in WavezooTrainer(logger=False).callbacks)


def test_a_600_step_fit_off_a_terminal_prints_progress_lines_with_the_step_count():
    """stdout redirected to a file: a line at step 1, every 60 steps and after the validation."""
    stream = io.StringIO()
    tiny_fit(600, [LineProgress(stream=stream)])
    lines = stream.getvalue().splitlines()
    steps = [int(m.group(1)) for line in lines if (m := re.match(r"step (\d+)/600 \(\d+%\)", line))]
    assert steps[:3] == [1, 60, 120] and steps[-1] == 600
    assert sum(step < 600 for step in steps) >= 2
    first = lines[0]
    assert "train/loss " in first and "steps/s" in first and "ETA " in first  # a loss from the first step
    assert any(line.startswith("validation at step 600 | val/loss ") for line in lines)
    assert any("train/horizon 2 |" in line for line in lines)  # the curriculum horizon, as an integer


def test_a_line_at_least_every_so_many_seconds():
    stream = io.StringIO()
    tiny_fit(12, [LineProgress(every_seconds=0.0, every_n_steps=0, stream=stream)])
    assert [line.split(" ")[1] for line in stream.getvalue().splitlines() if line.startswith("step ")] == [
        f"{step}/12" for step in range(1, 13)
    ]


class RecordBar(Callback):
    """Records the rich bar's training task after each step (it runs after the bar)."""

    def __init__(self, bar: StepProgressBar) -> None:
        self.bar, self.seen = bar, []

    def on_train_batch_end(self, trainer, *args) -> None:
        task = next(t for t in self.bar.progress.tasks if t.id == self.bar.train_progress_bar_id)
        self.seen.append((task.description, task.completed, task.total))


def test_the_terminal_bar_counts_steps_against_max_steps_without_negative_numbers():
    bar = StepProgressBar()
    record = RecordBar(bar)
    tiny_fit(9, [bar, record], steps_per_epoch=4)  # 3 epochs; max_epochs=-1 read "Epoch 0/-2" before
    assert [completed for _, completed, _ in record.seen] == list(range(1, 10))
    assert {total for _, _, total in record.seen} == {9}
    assert all(description.endswith("Step") and "-" not in description for description, _, _ in record.seen)
    metrics = bar.get_metrics(record_trainer := bar.trainer, record_trainer.lightning_module)
    assert metrics["train/loss"] == format_value(record_trainer.progress_bar_metrics["train/loss"])


def test_an_epoch_bounded_fit_keeps_lightnings_epoch_bar():
    bar = StepProgressBar()
    record = RecordBar(bar)
    tiny_fit(-1, [bar, record], steps_per_epoch=3, max_epochs=2)
    assert [completed for _, completed, _ in record.seen] == [1, 2, 3, 1, 2, 3]
    assert record.seen[-1][0].startswith("Epoch 1/1")


def test_progress_bars_stay_off_when_disabled():
    trainer = tiny_fit(3, [], enable_progress_bar=False)
    assert trainer.progress_bar_callback is None


def test_known_harmless_notices_are_silenced_and_real_warnings_still_show(caplog):
    """The litlogger tip, the LeafSpec deprecation and the IterableDataset length notice are dropped where they
    arise (the Trainer's constructor and fit/test); a warning of the user's own still shows."""

    class Real(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            warnings.warn("a real warning", UserWarning, stacklevel=1)

    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        trainer = tiny_fit(3, [Real()])
        # a second run of the same Trainer calls configure_callbacks again: no "will override HorizonCurriculum"
        trainer.test(trainer.lightning_module, datamodule=trainer.datamodule, verbose=False)
    messages = [str(w.message) for w in seen]
    assert "a real warning" in messages
    assert not [m for m in messages if "LeafSpec" in m or "has `__len__` defined" in m]
    assert "litlogger" not in caplog.text and "will override" not in caplog.text
