"""The classical long-memory benchmarks: copy and adding (standard definitions, as in Keller et al. 2024)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from wavezoo.data.base import Batch, SyntheticDataModule
from wavezoo.errors import ConfigError, check_positive_int


class CopyDataModule(SyntheticDataModule):
    """Copy task with delay T: sequence length T + 2 * copy_length.

    Inputs (one-hot over ``num_symbols + 2`` tokens): ``copy_length`` symbols drawn from {1..num_symbols}, blanks
    (token 0), the delimiter (token num_symbols + 1) ``delimiter_lead`` steps before the first recall step, blanks.
    Targets are class indices (0 = blank, 1..num_symbols): blank everywhere except the last ``copy_length`` steps,
    which must reproduce the first ``copy_length`` inputs. The mask keeps the recall window (chance accuracy there:
    1 / num_symbols).

    Keller et al.'s preset (their ``copy_task.py``, sequence length T_K + 10 for their T_K):
    ``delay = T_K - 10``, ``copy_length = 10``, ``num_symbols = 8``, ``delimiter_lead = 1`` (the delimiter at
    T_K - 1, one step before recall), ``num_classes = 10`` (their output layer, also over the delimiter token);
    with ``SequenceClassification(loss_steps="all", loss_scale=1 / batch_size)`` as their loss
    (``configs/copy/wave_rnn_keller.yaml``).
    """

    task_type = "classification"

    def __init__(
        self,
        delay: int = 80,
        num_symbols: int = 8,
        copy_length: int = 10,
        batch_size: int = 128,
        steps_per_epoch: int = 200,
        delimiter_lead: int = 0,
        num_classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        """``**kwargs``: the other options of :class:`~wavezoo.data.base.SyntheticDataModule`.

        Args:
            delimiter_lead: steps between the delimiter and the first recall step (0: the delimiter arrives with
                the first recall step; Keller et al.: 1). At most ``delay``.
            num_classes: output classes (default ``num_symbols + 1``: blank and symbols; at least that many).
        """
        super().__init__(batch_size, steps_per_epoch, **kwargs)
        self.delay = check_positive_int("delay", delay, minimum=0)
        self.num_symbols = check_positive_int("num_symbols", num_symbols)
        self.copy_length = check_positive_int("copy_length", copy_length)
        self.delimiter_lead = check_positive_int("delimiter_lead", delimiter_lead, minimum=0)
        if delimiter_lead > delay:
            raise ConfigError(f"delimiter_lead={delimiter_lead} is invalid: expected at most delay={delay}")
        self.input_size = num_symbols + 2
        if num_classes is None:
            num_classes = num_symbols + 1
        self.output_size = check_positive_int("num_classes", num_classes, minimum=num_symbols + 1)
        self.length = self.delay + 2 * self.copy_length

    def sample(self, batch_size: int, generator: torch.Generator, **_: Any) -> Batch:
        n, length = self.copy_length, self.length
        symbols = torch.randint(1, self.num_symbols + 1, (batch_size, n), generator=generator)
        tokens = torch.zeros(batch_size, length, dtype=torch.long)
        tokens[:, :n] = symbols
        tokens[:, n + self.delay - self.delimiter_lead] = self.num_symbols + 1
        targets = torch.zeros(batch_size, length, dtype=torch.long)
        targets[:, -n:] = symbols
        mask = torch.zeros(batch_size, length, dtype=torch.bool)
        mask[:, -n:] = True
        return F.one_hot(tokens, self.input_size).float(), targets, mask


class AddingDataModule(SyntheticDataModule):
    """Adding problem (Hochreiter & Schmidhuber 1997) of length T.

    Inputs ``[B, T, 2]``: channel 0 ~ U[0, 1]; channel 1 marks one step in the first half and one in the second
    half with a 1. The target, at the last step only (mask), is the sum of the two marked values. Predicting the
    mean 1.0 gives MSE ~ 0.167; the usual bar for "solved" is MSE <= 0.05 (Keller et al.) or far lower.
    """

    task_type = "regression"

    def __init__(self, length: int = 100, **kwargs: Any) -> None:
        """``**kwargs``: the options of :class:`~wavezoo.data.base.SyntheticDataModule`."""
        super().__init__(**kwargs)
        self.length = check_positive_int("length", length, minimum=2)
        self.input_size, self.output_size = 2, 1

    def sample(self, batch_size: int, generator: torch.Generator, **_: Any) -> Batch:
        half = self.length // 2
        values = torch.rand(batch_size, self.length, generator=generator)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, self.length, (batch_size,), generator=generator)
        markers = torch.zeros(batch_size, self.length)
        rows = torch.arange(batch_size)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        targets = torch.zeros(batch_size, self.length, 1)
        targets[:, -1, 0] = values[rows, first] + values[rows, second]
        mask = torch.zeros(batch_size, self.length, dtype=torch.bool)
        mask[:, -1] = True
        return torch.stack([values, markers], dim=-1), targets, mask
