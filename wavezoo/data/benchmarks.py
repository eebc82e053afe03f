"""Real-data sequence-classification benchmarks (definitions and procedures: ``docs/benchmarks.md``).

* :class:`DigitsDataModule` — scikit-learn's 8x8 digits as 64 one-pixel steps (sequential or permuted).
* :class:`MNIST1DDataModule` — MNIST-1D (Greydanus 2020), generated offline with the published procedure.
* :class:`UCRDataModule` — the UCR/UEA classification sets shipped inside the ``aeon`` wheel.
* :class:`SequentialMNISTDataModule` — sMNIST / psMNIST, 784 one-pixel steps (Hugging Face ``datasets``).
* :class:`NoisySequentialCIFARDataModule` — noisy sCIFAR-10: 32 rows of 96 values, then noise up to 1000 steps.

The optional packages (``pip install "wavezoo[benchmarks]"``) are imported only when data is loaded.
"""

from __future__ import annotations

import importlib.util
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wavezoo.data.sequences import SequenceDataModule, Split, optional_import, stratified_holdout
from wavezoo.errors import ConfigError, check_choice, check_positive_float, check_positive_int


class DigitsDataModule(SequenceDataModule):
    """scikit-learn's ``load_digits`` (1797 8x8 images, 17 grey levels): 64 steps of one pixel, row-major; 10 classes.

    A stratified split drawn from ``split_seed`` gives 1297 train / 250 val / 250 test images. ``permuted=True``
    (from the base class) gives permuted digits, one fixed pixel order drawn from ``permutation_seed``.
    """

    input_size, output_size = 1, 10

    def __init__(self, val_size: int = 250, test_size: int = 250, **kwargs: Any) -> None:
        """``**kwargs``: the options of :class:`~wavezoo.data.sequences.SequenceDataModule`."""
        super().__init__(**kwargs)
        self.val_size, self.test_size = val_size, test_size

    def load_splits(self) -> dict[str, Split]:
        digits = optional_import("sklearn.datasets").load_digits()
        everything = Split(digits.images.reshape(-1, 64, 1).astype(np.float32), digits.target.astype(np.int64))
        rng = np.random.default_rng(self.split_seed)
        rest, test = stratified_holdout(everything, self.test_size, rng, "test_size")
        train, val = stratified_holdout(rest, self.val_size, rng)
        return {"train": train, "val": val, "test": test}


class MNIST1DDataModule(SequenceDataModule):
    """MNIST-1D: 40 steps x 1 channel, 10 classes, made by ``mnist1d.data.make_dataset`` with its default arguments
    (5000 samples, seed 42, the published 4000 train / 1000 test split; generated offline, nothing downloaded).
    ``val_size`` training samples (stratified, from ``split_seed``) are held out for validation: 3500/500/1000.
    """

    input_size, output_size = 1, 10

    def __init__(self, val_size: int = 500, **kwargs: Any) -> None:
        """``**kwargs``: the options of :class:`~wavezoo.data.sequences.SequenceDataModule`."""
        super().__init__(**kwargs)
        self.val_size = val_size

    def load_splits(self) -> dict[str, Split]:
        mnist1d = optional_import("mnist1d.data")
        states = random.getstate(), np.random.get_state()  # make_dataset reseeds the global generators
        try:
            data = mnist1d.make_dataset(mnist1d.get_dataset_args())
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
        train = Split(data["x"][..., None].astype(np.float32), data["y"].astype(np.int64))
        train, val = stratified_holdout(train, self.val_size, np.random.default_rng(self.split_seed))
        test = Split(data["x_test"][..., None].astype(np.float32), data["y_test"].astype(np.int64))
        return {"train": train, "val": val, "test": test}


# -- UCR / UEA archive (.ts files inside the aeon wheel) ------------------------------------------------------
def _ucr_folder() -> Path:
    spec = importlib.util.find_spec("aeon")  # locates the package without importing it (aeon's import is slow)
    if spec is None or not spec.submodule_search_locations:
        optional_import("aeon")  # raises the install hint
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _ts_header(path: Path) -> dict[str, str]:
    header = {}
    with path.open() as f:
        for line in f:
            key, _, value = line.strip().partition(" ")
            if key.lower() == "@data":
                break
            if key.startswith("@"):
                header[key[1:].lower()] = value.strip()
    return header


@lru_cache(maxsize=1)
def ucr_names() -> tuple[str, ...]:
    """Names of the UCR/UEA classification sets shipped with ``aeon`` (a train and a test ``.ts`` file, class
    labels, no time stamps), e.g. ``GunPoint``, ``JapaneseVowels``, ``ArrowHead``, ``BasicMotions``."""
    names = []
    for train in sorted(_ucr_folder().glob("*/*_TRAIN.ts")):
        header = _ts_header(train)
        name = train.name[: -len("_TRAIN.ts")]
        usable = header.get("classlabel", "").startswith("true") and header.get("timestamps", "false") == "false"
        if usable and (train.parent / f"{name}_TEST.ts").exists():
            names.append(name)
    return tuple(names)


def read_ts(path: Path, classes: list[str]) -> Split:
    """Read a ``.ts`` classification file: cases ``dim1:dim2:...:label``, comma-separated values per dim. Shorter
    cases are zero-padded to the file's longest; ``lengths`` gives each case's own length (``None`` if all equal)."""
    cases, labels, data = [], [], False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not data or not line or line.startswith("#"):
            data = data or line.lower().startswith("@data")
            continue
        *dims, label = line.split(":")
        cases.append([np.array([float(v) for v in d.split(",")], dtype=np.float32) for d in dims])
        labels.append(classes.index(label.strip()))
    lengths = np.array([max(len(d) for d in case) for case in cases])
    x = np.zeros((len(cases), lengths.max(), len(cases[0])), dtype=np.float32)
    for i, case in enumerate(cases):
        for c, values in enumerate(case):
            x[i, : len(values), c] = values
    if np.isnan(x).any():
        raise ConfigError(f"{path.name} has missing values ('?'), which wavezoo does not support")
    return Split(x, np.array(labels, dtype=np.int64), None if (lengths == lengths.max()).all() else lengths)


class UCRDataModule(SequenceDataModule):
    """A UCR/UEA classification set from the ``aeon`` wheel (see :func:`ucr_names`), read from its ``.ts`` files:
    the published train/test split, with a stratified ``val_fraction`` of the training cases (from ``split_seed``)
    held out for validation. Channels = the set's dimensions; classes in the order of the file's ``@classLabel``.

    Variable-length sets (e.g. JapaneseVowels, 7-29 steps x 12 channels) are zero-padded at the end to the longest
    case of train and test; the mask marks each sequence's own last step, so a causal model's prediction there
    never sees the padding.
    """

    def __init__(self, name: str = "GunPoint", val_fraction: float = 0.2, **kwargs: Any) -> None:
        """``**kwargs``: the options of :class:`~wavezoo.data.sequences.SequenceDataModule`."""
        super().__init__(**kwargs)
        self.name = check_choice("name", name, ucr_names())
        self.val_fraction = check_positive_float("val_fraction", val_fraction)
        if val_fraction >= 1:
            raise ConfigError(f"val_fraction={val_fraction!r} is invalid: expected a number in (0, 1)")
        train_path = next(_ucr_folder().glob(f"*/{name}_TRAIN.ts"))
        classes = _ts_header(train_path)["classlabel"].split()[1:]
        self._raw = {
            split: read_ts(train_path.with_name(f"{name}_{split.upper()}.ts"), classes) for split in ("train", "test")
        }
        self.input_size, self.output_size = self._raw["train"].x.shape[-1], len(classes)

    def load_splits(self) -> dict[str, Split]:
        train, test = self._raw["train"], self._raw["test"]
        length = max(train.x.shape[1], test.x.shape[1])
        if train.lengths is not None or test.lengths is not None:  # pad both splits to one length
            train, test = (_pad(s, length) for s in (train, test))
        size = max(1, round(self.val_fraction * len(train)))
        train, val = stratified_holdout(train, size, np.random.default_rng(self.split_seed), "val size")
        return {"train": train, "val": val, "test": test}


def _pad(split: Split, length: int) -> Split:
    lengths = split.lengths if split.lengths is not None else np.full(len(split), split.x.shape[1])
    x = np.zeros((len(split), length, split.x.shape[2]), dtype=split.x.dtype)
    x[:, : split.x.shape[1]] = split.x
    return Split(x, split.y, lengths)


# -- image sets through Hugging Face datasets -----------------------------------------------------------------
def load_hub_images(hub_id: str, data_dir: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": ...}`` of an image-classification set, from ``data_dir`` if it holds a
    ``save_to_disk`` folder or parquet files, else from the hub (``cache_dir=data_dir``; offline: the cache only)."""
    datasets = optional_import("datasets")
    folder = Path(data_dir) if data_dir else None
    try:
        if folder is not None and (folder / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(folder))
        elif folder is not None and any(folder.rglob("*.parquet")):
            loaded = datasets.load_dataset("parquet", data_dir=str(folder))
        else:
            loaded = datasets.load_dataset(hub_id, cache_dir=data_dir)
    except Exception as err:
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise ConfigError(
            f"cannot load {hub_id!r} from data_dir={data_dir!r} ({reason}); on a machine with internet run "
            f"python -c \"import datasets; datasets.load_dataset('{hub_id}').save_to_disk('DIR')\" and pass "
            f"data_dir=DIR (a Hugging Face cache folder or a folder of the set's parquet files also works)"
        ) from None
    if not {"train", "test"} <= set(loaded):
        raise ConfigError(
            f"{hub_id!r} in data_dir={data_dir!r} needs 'train' and 'test' splits, found {sorted(loaded)}"
        )
    out = {}
    for split in ("train", "test"):
        columns = loaded[split].column_names
        image = next((c for c in ("image", "img") if c in columns), None)
        if image is None or "label" not in columns:
            raise ConfigError(f"{hub_id!r} needs an 'image' (or 'img') and a 'label' column, found {columns}")
        rows = loaded[split].with_format("numpy", columns=[image, "label"])[:]
        out[split] = (np.asarray(rows[image]), np.asarray(rows["label"], dtype=np.int64))
    return out


class _HubImageDataModule(SequenceDataModule):
    """An image set from the Hugging Face hub read as a sequence; ``val_size`` training images (stratified,
    from ``split_seed``) are held out for validation."""

    image_shape: tuple[int, ...]

    def __init__(self, hub_id: str, data_dir: str | None, val_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hub_id, self.data_dir, self.val_size = hub_id, data_dir, val_size

    def to_sequences(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def load_splits(self) -> dict[str, Split]:
        raw = load_hub_images(self.hub_id, self.data_dir)
        splits = {}
        for name, (images, labels) in raw.items():
            if images.shape[1:] != self.image_shape:
                raise ConfigError(f"{self.hub_id!r} images are {images.shape[1:]}, expected {self.image_shape}")
            splits[name] = Split(self.to_sequences(images), labels)
        train, val = stratified_holdout(splits["train"], self.val_size, np.random.default_rng(self.split_seed))
        return {"train": train, "val": val, "test": splits["test"]}


class SequentialMNISTDataModule(_HubImageDataModule):
    """sMNIST: each 28x28 MNIST image as 784 steps of one pixel (row-major), label at the last step; 60000 train
    (57000 + ``val_size`` 3000 for validation, as Keller et al.) / 10000 test. ``permuted=True`` gives psMNIST with
    one fixed pixel permutation drawn from ``permutation_seed``. Pixels are standardised with train statistics.
    """

    input_size, output_size = 1, 10
    image_shape = (28, 28)

    def __init__(
        self, hub_id: str = "ylecun/mnist", data_dir: str | None = None, val_size: int = 3000, **kwargs: Any
    ) -> None:
        """``data_dir``: a ``save_to_disk`` folder, a folder of parquet files or a hub cache folder (``None``: the
        default cache). ``**kwargs``: the options of :class:`~wavezoo.data.sequences.SequenceDataModule`."""
        super().__init__(hub_id, data_dir, val_size, **kwargs)

    def to_sequences(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), 784, 1)


class NoisySequentialCIFARDataModule(_HubImageDataModule):
    """Noisy sequential CIFAR-10 (Chang et al. 2019; Keller et al. 2024): each 32x32x3 image row is one step of
    96 values (the row's 32 red, then 32 green, then 32 blue pixels), standardised per colour with train statistics;
    then ``length - 32`` steps of N(0, 1) noise, label at step ``length`` (1000). Training draws fresh noise for every
    sample; validation and test noise is fixed per sample. 50000 train (47000 + ``val_size`` 3000) / 10000 test.
    """

    input_size, output_size = 96, 10
    image_shape = (32, 32, 3)

    def __init__(
        self,
        hub_id: str = "uoft-cs/cifar10",
        data_dir: str | None = None,
        val_size: int = 3000,
        length: int = 1000,
        **kwargs: Any,
    ) -> None:
        """``data_dir``: as for :class:`SequentialMNISTDataModule`. ``**kwargs``: the options of
        :class:`~wavezoo.data.sequences.SequenceDataModule`."""
        super().__init__(hub_id, data_dir, val_size, **kwargs)
        self.noise_steps = check_positive_int("length", length, minimum=32) - 32

    def to_sequences(self, images: np.ndarray) -> np.ndarray:
        return images.transpose(0, 1, 3, 2).reshape(len(images), 32, 96)  # [N, row, colour, column]

    def statistics(self, train: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """Per colour (the 32 values of one colour in a step share their statistics)."""
        colours = Split(
            train.x.reshape(len(train), -1, 3, 32).transpose(0, 1, 3, 2).reshape(len(train), -1, 3), train.y
        )
        mean, std = super().statistics(colours)
        return mean.repeat_interleave(32), std.repeat_interleave(32)
