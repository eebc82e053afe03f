"""Shared machinery of the synthetic DataModules: seeded on-the-fly training batches, fixed evaluation sets.

Every batch is a tuple ``(inputs [B, T, input_size], targets, mask [B, T])``: regression targets are
``[B, T, output_size]`` floats, classification targets ``[B, T]`` class indices; ``mask`` marks the steps that
count for the loss and the metrics.

Training step ``k`` uses the global batch of ``batch_size * world_size`` samples drawn from a generator seeded by
``(seed, "train", stream 0, k)``; rank ``r`` keeps its slice ``[r * batch_size, (r + 1) * batch_size)``. So a run is
reproducible, ranks of a DDP run never share samples, a 2-process run with batch B sees exactly the samples of a
1-process run with batch 2B, and resuming only needs the batch counter.

Evaluation sets do not depend on the number of devices: the validation (test) set is ``val_batches``
(``test_batches``) batches of ``eval_batch_size`` samples (default: ``batch_size``), batch ``i`` drawn from a
generator seeded by ``(seed, split, i)``. Under DDP with W processes, rank ``r`` evaluates the contiguous slice ``r``
of every batch (the ``r``-th of ``torch.tensor_split(batch, W)``; ``eval_batch_size`` must be a multiple of W), so
the ranks together evaluate every sample exactly once and the synced metrics equal those of one process. The
evaluation loaders are iterable datasets of ready batches, which Lightning never re-samples with a
``DistributedSampler`` (that would deal whole batches to ranks and pad with repeats).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from wavezoo.errors import ConfigError, check_positive_int

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_TRAIN_STREAM = 0  # one stream of global batches, shared by every rank (the seeds of the published results)


def seeded_generator(*parts: int) -> torch.Generator:
    """A torch generator whose seed mixes ``parts`` (well separated even for neighbouring integers)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def rank_and_world(datamodule: pl.LightningDataModule) -> tuple[int, int]:
    """``(global_rank, world_size)`` of the trainer attached to ``datamodule``; ``(0, 1)`` without one."""
    trainer = getattr(datamodule, "trainer", None)
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


def rank_share(size: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s contiguous share of ``range(size)`` split between ``world`` ranks, cut as
    ``torch.tensor_split`` cuts: the first ``size % world`` ranks get one item more. The shares are disjoint, in
    rank order, and cover ``range(size)`` exactly once (no padding, no repeats)."""
    base, extra = divmod(size, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class EvalBatches(IterableDataset):
    """Ready-made evaluation batches (a list, or a DataLoader over this rank's share of a set) served as they are.

    An ``IterableDataset``: Lightning never injects a ``DistributedSampler`` into it, so under DDP each rank
    evaluates exactly the batches given here. Serve it with ``DataLoader(EvalBatches(...), batch_size=None)``.
    """

    def __init__(self, batches: Iterable[Batch]) -> None:
        if not isinstance(batches, Sized):
            raise TypeError("EvalBatches needs a sized iterable of batches (a list or a DataLoader)")
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        yield from self.batches


class _TrainStream(IterableDataset):
    """``steps_per_epoch`` fresh batches per epoch, drawn by the DataModule from the batch counter."""

    def __init__(self, datamodule: SyntheticDataModule) -> None:
        self.datamodule = datamodule

    def __len__(self) -> int:
        return self.datamodule.steps_per_epoch

    def __iter__(self) -> Iterator[Batch]:
        for _ in range(self.datamodule.steps_per_epoch):
            yield self.datamodule.next_train_batch()


class SyntheticDataModule(pl.LightningDataModule):
    """Base class of the generated tasks. Subclasses set ``input_size``, ``output_size``, ``task_type`` and
    implement :meth:`sample` (and may change :meth:`eval_kwargs` to evaluate under other settings).

    The validation and test sets are the same samples whatever the number of devices: ``val_batches`` /
    ``test_batches`` batches of ``eval_batch_size`` samples, generated once from ``(seed, split, batch index)``
    (:meth:`eval_set`). With one device the loaders serve these batches; under DDP with W processes rank ``r``
    evaluates the contiguous slice ``r`` of every batch (:meth:`rank_eval_set`), so ``eval_batch_size`` must be a
    multiple of W.

    Args:
        batch_size: samples per training batch (per device).
        steps_per_epoch: training batches per epoch (the training stream is endless; this sets how often
            validation runs).
        val_batches / test_batches: size of the fixed validation / test sets, in batches of ``eval_batch_size``.
        seed: seed of every sample drawn (an integer >= 0).
        eval_batch_size: samples per validation / test batch, for all devices together (``None``: ``batch_size``,
            which keeps the sets of a 1-device run as they always were).
    """

    task_type: str = "regression"
    input_size: int
    output_size: int

    def __init__(
        self,
        batch_size: int = 64,
        steps_per_epoch: int = 500,
        val_batches: int = 4,
        test_batches: int = 10,
        seed: int = 0,
        eval_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.steps_per_epoch = check_positive_int("steps_per_epoch", steps_per_epoch)
        self.val_batches = check_positive_int("val_batches", val_batches)
        self.test_batches = check_positive_int("test_batches", test_batches)
        self.seed = check_positive_int("seed", seed, minimum=0)
        self.eval_batch_size = (
            self.batch_size if eval_batch_size is None else check_positive_int("eval_batch_size", eval_batch_size)
        )
        self.batches_drawn = 0
        self._eval_sets: dict[str, list[Batch]] = {}

    # -- what a task defines ------------------------------------------------------------------------------
    def sample(self, batch_size: int, generator: torch.Generator, **kwargs: Any) -> Batch:
        raise NotImplementedError

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`sample` for training batches (e.g. the current curriculum horizon)."""
        return {}

    def eval_kwargs(self, split: str) -> dict[str, Any]:
        """Keyword arguments of :meth:`sample` for the ``"val"`` and ``"test"`` sets."""
        return {}

    # -- batches ------------------------------------------------------------------------------------------
    def _rank_and_world(self) -> tuple[int, int]:
        return rank_and_world(self)

    def next_train_batch(self) -> Batch:
        """This rank's slice of the next global training batch."""
        rank, world = self._rank_and_world()
        gen = seeded_generator(self.seed, _SPLIT_IDS["train"], _TRAIN_STREAM, self.batches_drawn)
        self.batches_drawn += 1
        batch = self.sample(self.batch_size * world, gen, **self.train_kwargs())
        if world == 1:
            return batch
        return tuple(t[rank * self.batch_size : (rank + 1) * self.batch_size] for t in batch)

    def eval_set(self, split: str) -> list[Batch]:
        """The whole fixed ``split`` set (``"val"`` or ``"test"``), the same for any number of devices: generated
        once and cached."""
        if split not in self._eval_sets:
            count = self.val_batches if split == "val" else self.test_batches
            kwargs = self.eval_kwargs(split)
            self._eval_sets[split] = [
                self.sample(self.eval_batch_size, seeded_generator(self.seed, _SPLIT_IDS[split], i), **kwargs)
                for i in range(count)
            ]
        return self._eval_sets[split]

    def _check_eval_batch_size(self, world: int) -> None:
        if self.eval_batch_size % world:
            raise ConfigError(
                f"eval_batch_size={self.eval_batch_size} is invalid with {world} devices: expected a multiple of "
                f"{world} (each device evaluates an equal slice of every validation / test batch)"
            )

    def rank_eval_set(self, split: str) -> list[Batch]:
        """This rank's part of :meth:`eval_set`: the contiguous slice ``global_rank`` of every batch, cut in
        ``world_size`` equal slices (the whole set with one device)."""
        rank, world = self._rank_and_world()
        batches = self.eval_set(split)
        if world == 1:
            return batches
        self._check_eval_batch_size(world)
        share = rank_share(self.eval_batch_size, rank, world)
        return [tuple(t[share] for t in batch) for batch in batches]

    def setup(self, stage: str | None = None) -> None:
        self._check_eval_batch_size(self._rank_and_world()[1])  # before training, not at the first validation

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_TrainStream(self), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(EvalBatches(self.rank_eval_set("val")), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(EvalBatches(self.rank_eval_set("test")), batch_size=None)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    # -- checkpointed state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # Lightning draws one batch ahead of the optimizer: a checkpoint records the batches actually trained on,
        # so a resumed run draws exactly the batches the uninterrupted run trains on next.
        trainer = getattr(self, "trainer", None)
        trained = trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else None
        return {"batches_drawn": self.batches_drawn if trained is None else min(trained, self.batches_drawn)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches_drawn = int(state_dict.get("batches_drawn", 0))
