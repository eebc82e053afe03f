"""Shared machinery of the real-data sequence benchmarks: fixed splits, train-only normalisation, permutations.

Every sample is a whole sequence with one label. A batch follows the contract of the synthetic tasks,
``(inputs [B, T, input_size] float32, targets [B, T] long, mask [B, T] bool)``: the label sits at every step and the
mask marks only the sequence's last step (its own last step for variable-length sets), so
:class:`~wavezoo.lit.SequenceClassification` classifies from the final state.

A subclass only defines :meth:`SequenceDataModule.load_splits` (raw, unnormalised ``train``/``val``/``test``
arrays). The base class then

* normalises each input channel with the mean and standard deviation of the TRAIN split only (valid steps);
* optionally permutes the time axis with one fixed permutation drawn from ``permutation_seed`` (the same for every
  split and sample: "permuted" benchmarks such as psMNIST);
* optionally appends ``noise_steps`` steps of N(0, 1) noise (noisy sCIFAR-10): fresh draws for training, a fixed
  draw per sample index for validation and test;
* serves the training set map-style, so a DDP run gets Lightning's ``DistributedSampler``; a single process
  shuffles the training set with a generator seeded by ``seed``;
* evaluates the same samples whatever the number of devices: under DDP with W processes rank ``r`` evaluates the
  contiguous share ``r`` of the validation / test set (cut as ``torch.tensor_split`` cuts ``range(len(set))``), in
  batches of ``batch_size``: no padding, no repeats, every sample exactly once over the ranks. The evaluation
  loaders are iterable datasets (:class:`~wavezoo.data.base.EvalBatches`), which Lightning never re-samples.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from wavezoo.data.base import Batch, EvalBatches, rank_and_world, rank_share, seeded_generator
from wavezoo.errors import ConfigError, check_positive_int

SPLITS = ("train", "val", "test")
_NOISE_STREAM = {"val": 1, "test": 2}


def optional_import(module: str) -> Any:
    """Import an optional dependency of the benchmarks, or raise a :class:`ConfigError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(
            f'{module!r} is not installed ({err}); install the benchmark extras: pip install "wavezoo[benchmarks]"'
        ) from None


@dataclass
class Split:
    """Raw samples of one split: ``x [N, T, C]`` (any numeric dtype; variable-length sequences padded with zeros
    after their end), integer labels ``y [N]`` and, for variable-length sets, ``lengths [N]`` (else ``None``)."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Split:
        return Split(self.x[index], self.y[index], None if self.lengths is None else self.lengths[index])


def stratified_holdout(
    split: Split, size: int, rng: np.random.Generator, what: str = "val_size"
) -> tuple[Split, Split]:
    """Split ``split`` into (rest, held-out) with ``size`` samples held out, class proportions kept (largest
    remainders), each class's samples drawn at random from ``rng``."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < len(split):
        raise ConfigError(f"{what}={size!r} is invalid: expected an integer in 1..{len(split) - 1} (of {len(split)})")
    classes, counts = np.unique(split.y, return_counts=True)
    quota = counts * size / len(split)
    take = np.floor(quota).astype(int)
    take[np.argsort(take - quota, kind="stable")[: size - take.sum()]] += 1
    held = np.concatenate(
        [rng.permutation(np.flatnonzero(split.y == c))[:k] for c, k in zip(classes, take, strict=True)]
    )
    held.sort()
    rest = np.setdiff1d(np.arange(len(split)), held)
    return split.take(rest), split.take(held)


class SequenceDataset(Dataset):
    """One split as a map-style dataset of ``(inputs [T, C], targets [T], mask [T])`` samples (see module doc).

    ``noise_seed``: ``None`` draws the noise padding afresh (training); a tuple of ints fixes it per sample index.
    """

    def __init__(
        self,
        split: Split,
        mean: torch.Tensor,
        std: torch.Tensor,
        permutation: torch.Tensor | None = None,
        noise_steps: int = 0,
        noise_seed: tuple[int, ...] | None = None,
    ) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(split.x))
        self.y = torch.from_numpy(np.asarray(split.y, dtype=np.int64))
        self.lengths = None if split.lengths is None else torch.from_numpy(np.asarray(split.lengths, dtype=np.int64))
        self.mean, self.std = mean.float(), std.float()
        self.permutation = permutation
        self.noise_steps, self.noise_seed = noise_steps, noise_seed

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> Batch:
        x = (self.x[index].float() - self.mean) / self.std
        length = x.shape[0] if self.lengths is None else int(self.lengths[index])
        x[length:] = 0.0  # the padding of a variable-length sequence stays zero after normalisation
        if self.permutation is not None:
            x = x[self.permutation]
        if self.noise_steps:
            gen = None if self.noise_seed is None else seeded_generator(*self.noise_seed, index)
            x = torch.cat([x, torch.randn(self.noise_steps, x.shape[1], generator=gen)])
            length = x.shape[0]
        targets = torch.full((x.shape[0],), int(self.y[index]), dtype=torch.long)
        mask = torch.zeros(x.shape[0], dtype=torch.bool)
        mask[length - 1] = True
        return x, targets, mask


class SequenceDataModule(pl.LightningDataModule):
    """Base class of the whole-sequence classification benchmarks. Subclasses set ``input_size``,
    ``output_size`` (before any data is loaded: the CLI links them into the model) and implement
    :meth:`load_splits`.

    Args:
        batch_size: samples per batch (per device), for every split.
        normalize: standardise each input channel with train-split statistics.
        permuted: apply one fixed random permutation of the time axis to every sequence.
        permutation_seed: seed of that permutation.
        split_seed: seed of the validation (and test) samples carved out of the published splits.
        seed: seed of the training-set shuffle of a single-process run (DDP: Lightning's sampler shuffles) and of
            the fixed evaluation noise. Every seed is an integer >= 0.
        num_workers: DataLoader worker processes.

    Validation and test are the same samples for any number of devices: each DDP rank evaluates its own
    contiguous share of the set (see the module documentation).
    """

    task_type = "classification"
    input_size: int
    output_size: int
    noise_steps = 0  # Gaussian-noise steps appended to every sequence

    def __init__(
        self,
        batch_size: int = 64,
        normalize: bool = True,
        permuted: bool = False,
        permutation_seed: int = 0,
        split_seed: int = 0,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.num_workers = check_positive_int("num_workers", num_workers, minimum=0)
        self.normalize, self.permuted = bool(normalize), bool(permuted)
        self.permutation_seed = check_positive_int("permutation_seed", permutation_seed, minimum=0)
        self.split_seed = check_positive_int("split_seed", split_seed, minimum=0)
        self.seed = check_positive_int("seed", seed, minimum=0)
        self._splits: dict[str, Split] | None = None
        self._datasets: dict[str, SequenceDataset] = {}
        self.save_hyperparameters()  # collects the subclass's arguments too: the benchmark travels with checkpoints

    # -- what a benchmark defines ---------------------------------------------------------------------------
    def load_splits(self) -> dict[str, Split]:
        """The raw ``train``, ``val`` and ``test`` splits (deterministic: same arguments, same samples)."""
        raise NotImplementedError

    def statistics(self, train: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and standard deviation ``[C]`` over the valid steps of the training split."""
        total, squares = 0.0, 0.0
        for start in range(0, len(train), 4096):  # chunks: sMNIST / CIFAR would not fit in float64 at once
            chunk = train.x[start : start + 4096].astype(np.float64)
            total, squares = total + chunk.sum((0, 1)), squares + (chunk**2).sum((0, 1))
        count = train.x.shape[0] * train.x.shape[1] if train.lengths is None else int(np.sum(train.lengths))
        mean = total / count  # the zero padding of variable-length sets adds nothing to the sums
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        return torch.from_numpy(mean), torch.from_numpy(np.maximum(std, 1e-8))

    # -- data -------------------------------------------------------------------------------------------------
    def splits(self) -> dict[str, Split]:
        """The raw splits, loaded once."""
        if self._splits is None:
            self._splits = self.load_splits()
        return self._splits

    def time_permutation(self, length: int) -> torch.Tensor:
        """The fixed permutation of ``length`` steps drawn from ``permutation_seed``."""
        return torch.from_numpy(np.random.default_rng(self.permutation_seed).permutation(length))

    def prepare_data(self) -> None:
        self.splits()  # a download, if any, happens once per node (Lightning calls this on local rank 0)

    def setup(self, stage: str | None = None) -> None:
        if self._datasets:
            return
        splits = self.splits()
        channels = splits["train"].x.shape[-1]
        if self.normalize:
            mean, std = self.statistics(splits["train"])
        else:
            mean, std = torch.zeros(channels), torch.ones(channels)
        permutation = None
        if self.permuted:
            if any(s.lengths is not None for s in splits.values()):
                raise ConfigError("permuted=True needs sequences of one length; this set has variable lengths")
            permutation = self.time_permutation(splits["train"].x.shape[1])
        for name, split in splits.items():
            noise_seed = None if name == "train" else (self.seed, _NOISE_STREAM[name])
            self._datasets[name] = SequenceDataset(split, mean, std, permutation, self.noise_steps, noise_seed)

    def dataset(self, split: str) -> SequenceDataset:
        """The ``"train"``, ``"val"`` or ``"test"`` dataset (normalised, permuted, padded)."""
        self.setup()
        return self._datasets[split]

    def rank_dataset(self, split: str) -> Dataset:
        """This rank's contiguous share of the ``"val"`` or ``"test"`` dataset (the whole dataset with one device)."""
        dataset = self.dataset(split)
        rank, world = rank_and_world(self)
        if world == 1:
            return dataset
        if len(dataset) < world:
            raise ConfigError(
                f"the {split} set has {len(dataset)} samples, fewer than the {world} devices: evaluate on fewer devices"
            )
        share = rank_share(len(dataset), rank, world)
        return Subset(dataset, range(share.start, share.stop))

    # -- loaders ----------------------------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        # Batches made by an inner loader over this rank's share; the outer loader's IterableDataset keeps
        # Lightning's DistributedSampler (which would pad with repeats) away.
        return DataLoader(EvalBatches(self._loader(self.rank_dataset(split))), batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def eval_set(self, split: str) -> list[Batch]:
        """Every batch of the whole ``"val"`` or ``"test"`` split, in order, whatever the number of devices (as the
        synthetic DataModules offer)."""
        return list(self._loader(self.dataset(split)))
