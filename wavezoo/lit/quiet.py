"""Lightning's known-harmless notices, silenced where they arise (never process-wide); real warnings still show.

- the ``litlogger`` tip, logged by the Trainer's constructor on every run without a LitLogger: dropped from
  Lightning's ``rank_zero`` logger for the duration of :class:`QuietTrainer`'s constructor only;
- ``isinstance(treespec, LeafSpec)`` is deprecated: a FutureWarning from torch about Lightning's own pytree code
  (its CombinedLoader), nothing a user can act on;
- "Your `IterableDataset` has `__len__` defined": the synthetic DataModules stream batches from an IterableDataset
  whose length is ``steps_per_epoch`` on purpose (one epoch = that many steps, with a progress bar that knows it).

The two warnings are ignored inside the Trainer's ``fit``/``validate``/``test``/``predict`` only
(:func:`known_warnings`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl

LIGHTNING_INFO_LOGGER = "lightning.pytorch.utilities.rank_zero"
HARMLESS_INFO = ("try installing [litlogger]",)
HARMLESS_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"Your `IterableDataset` has `__len__` defined",
)


class DropMessages(logging.Filter):
    """Drops log records whose message contains one of ``parts``."""

    def __init__(self, parts: tuple[str, ...]) -> None:
        super().__init__()
        self.parts = parts

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in self.parts)


@contextmanager
def known_warnings() -> Iterator[None]:
    """Ignore :data:`HARMLESS_WARNINGS` (by message) inside the block; every other warning is untouched."""
    with warnings.catch_warnings():
        for message in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


class QuietTrainer(pl.Trainer):
    """``pl.Trainer`` without the known-harmless notices (see the module docstring); same arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        logger, drop = logging.getLogger(LIGHTNING_INFO_LOGGER), DropMessages(HARMLESS_INFO)
        logger.addFilter(drop)
        try:
            super().__init__(*args, **kwargs)
        finally:
            logger.removeFilter(drop)

    def fit(self, *args: Any, **kwargs: Any) -> None:
        with known_warnings():
            return super().fit(*args, **kwargs)

    def validate(self, *args: Any, **kwargs: Any):
        with known_warnings():
            return super().validate(*args, **kwargs)

    def test(self, *args: Any, **kwargs: Any):
        with known_warnings():
            return super().test(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any):
        with known_warnings():
            return super().predict(*args, **kwargs)
