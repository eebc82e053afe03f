"""Real-data sequence benchmarks: splits, normalisation, permutations, padding, loaders and their user errors."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wavezoo import ConfigError
from wavezoo.cli import main
from wavezoo.data import (
    DigitsDataModule,
    MNIST1DDataModule,
    NoisySequentialCIFARDataModule,
    SequentialMNISTDataModule,
    UCRDataModule,
    ucr_names,
)

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def stacked(dm, split):
    """Every sample of a split, normalised as the loaders serve it: (x [N, T, C], y [N], mask [N, T])."""
    x, y, mask = zip(*(dm.dataset(split)[i] for i in range(len(dm.dataset(split)))), strict=True)
    return torch.stack(x), torch.stack(y)[:, 0], torch.stack(mask)


def rows(x: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.ascontiguousarray(x)}


@pytest.fixture(scope="module")
def digits():
    dm = DigitsDataModule()
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def mnist1d():
    dm = MNIST1DDataModule()
    dm.setup()
    return dm


def test_digits_splits_are_stratified_disjoint_and_cover_the_set(digits):
    splits = digits.splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 1297, "val": 250, "test": 250}
    assert digits.input_size == 1 and digits.output_size == 10
    train, val, test = (rows(splits[k].x) for k in ("train", "val", "test"))
    assert len(train | val | test) == 1797  # the 1797 images are distinct: disjoint splits covering the set
    for split, size in (("val", 250), ("test", 250)):
        counts = np.bincount(splits[split].y, minlength=10)
        assert counts.sum() == size and counts.min() >= 24 and counts.max() <= 26  # ~178/1797 of each class
    x, y, mask = next(iter(digits.train_dataloader()))
    assert x.shape == (64, 64, 1) and x.dtype == torch.float32
    assert y.shape == mask.shape == (64, 64) and y.dtype == torch.long and mask.dtype == torch.bool
    assert (y == y[:, :1]).all() and y.min() >= 0 and y.max() <= 9  # the label at every step
    assert mask[:, -1].all() and mask.sum() == 64  # counted at the last step only
    assert DigitsDataModule(split_seed=1).splits()["test"].y.tolist() != splits["test"].y.tolist()


def test_digits_are_row_major_pixels_normalised_with_train_statistics_only(digits):
    raw = digits.splits()
    mean, std = raw["train"].x.mean(), raw["train"].x.std()
    assert torch.allclose(digits.dataset("train").mean, torch.tensor([mean]), atol=1e-5)
    assert mean != pytest.approx(np.concatenate([raw[k].x for k in raw]).mean(), abs=1e-4)  # not the full set's
    x, _, _ = stacked(digits, "train")
    assert abs(x.mean()) < 1e-5 and x.std() == pytest.approx(1.0, abs=1e-3)
    xv, _, _ = stacked(digits, "val")
    assert torch.allclose(xv[..., 0], torch.from_numpy((raw["val"].x[..., 0] - mean) / std).float(), atol=1e-4)
    assert abs(xv.mean()) > 1e-4  # the val split is not re-centred on its own statistics
    from sklearn.datasets import load_digits

    images = load_digits().images
    assert any(np.array_equal(images[i].reshape(64), raw["test"].x[0, :, 0]) for i in range(len(images)))


def test_permuted_digits_use_one_fixed_permutation_from_the_seed(digits):
    perm = DigitsDataModule(permuted=True)
    perm.setup()
    order = perm.time_permutation(64)
    assert sorted(order.tolist()) == list(range(64)) and not torch.equal(order, torch.arange(64))
    assert torch.equal(order, DigitsDataModule(permuted=True).time_permutation(64))
    assert not torch.equal(order, DigitsDataModule(permuted=True, permutation_seed=1).time_permutation(64))
    for split in ("train", "test"):
        plain_x, plain_y, _ = stacked(digits, split)
        perm_x, perm_y, perm_mask = stacked(perm, split)
        assert torch.equal(perm_x, plain_x[:, order]) and torch.equal(perm_y, plain_y)
        assert perm_mask[:, -1].all() and perm_mask.sum() == len(perm_y)


def test_training_order_is_shuffled_from_the_seed():
    def first_labels(seed):
        return next(iter(DigitsDataModule(seed=seed).train_dataloader()))[1][:, 0]

    assert torch.equal(first_labels(0), first_labels(0)) and not torch.equal(first_labels(0), first_labels(1))


def test_mnist1d_is_the_published_split_with_a_validation_hold_out(mnist1d):
    splits = mnist1d.splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 3500, "val": 500, "test": 1000}
    assert splits["train"].x.shape[1:] == (40, 1) and (mnist1d.input_size, mnist1d.output_size) == (1, 10)
    assert not rows(splits["train"].x) & rows(splits["val"].x) and not rows(splits["train"].x) & rows(splits["test"].x)
    assert np.bincount(splits["val"].y, minlength=10).min() >= 48  # 500 stratified over ~400/class
    assert np.bincount(splits["test"].y, minlength=10).tolist() == [102, 104, 89, 106, 106, 98, 99, 96, 98, 102]
    x, _, mask = stacked(mnist1d, "train")
    assert abs(x.mean()) < 1e-5 and x.std() == pytest.approx(1.0, abs=1e-3)
    assert x.shape == (3500, 40, 1) and mask[:, -1].all() and mask.sum() == 3500


def test_mnist1d_leaves_the_global_random_state_alone():
    np.random.seed(123)
    random.seed(123)
    MNIST1DDataModule().splits()
    assert np.random.randint(10**9) == np.random.RandomState(123).randint(10**9)
    assert random.random() == random.Random(123).random()


def test_ucr_univariate_gunpoint():
    assert {"GunPoint", "JapaneseVowels"} <= set(ucr_names())
    dm = UCRDataModule("GunPoint")
    assert (dm.input_size, dm.output_size) == (1, 2)
    dm.setup()
    assert [len(dm.dataset(k)) for k in ("train", "val", "test")] == [40, 10, 150]
    assert np.bincount(dm.splits()["val"].y).tolist() == [5, 5]
    x, y, mask = next(iter(dm.train_dataloader()))
    assert x.shape == (40, 150, 1) and mask[:, -1].all() and mask.sum() == 40 and set(y[:, 0].tolist()) == {0, 1}


def test_ucr_variable_length_japanese_vowels_masks_each_sequence_at_its_own_end():
    dm = UCRDataModule("JapaneseVowels")
    assert (dm.input_size, dm.output_size) == (12, 9)
    dm.setup()
    assert [len(dm.dataset(k)) for k in ("train", "val", "test")] == [216, 54, 370]
    for split in ("train", "test"):
        lengths = torch.from_numpy(dm.splits()[split].lengths)
        x, y, mask = stacked(dm, split)
        assert x.shape[1:] == (29, 12) and lengths.min() == 7 and lengths.max() <= 29
        assert torch.equal(mask.float().argmax(1), lengths - 1) and mask.sum() == len(y)
        padding = torch.arange(29) >= lengths[:, None]
        assert x[padding].abs().max() == 0  # the padding stays zero after normalisation
    x, _, mask = stacked(dm, "train")
    valid = x[~(torch.arange(29) >= torch.from_numpy(dm.splits()["train"].lengths)[:, None])]
    assert valid.mean(0).abs().max() < 1e-4 and torch.allclose(valid.std(0), torch.ones(12), atol=1e-2)


def fake_hub_folder(
    path: Path, shape: tuple[int, ...], image_column: str, n_train: int = 40, n_test: int = 10, parquet: bool = False
):
    """A tiny image-classification set saved with ``save_to_disk`` (or as parquet files), balanced over 10 classes."""
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)
    features = datasets.Features({image_column: datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        data = {image_column: list(images), "label": [i % 10 for i in range(n)]}
        splits[split] = datasets.Dataset.from_dict(data, features=features)
    datasets.disable_progress_bars()
    if parquet:  # the layout of the hub repositories: <split>-00000-of-00001.parquet
        (path / "mnist").mkdir(parents=True)
        for split, data in splits.items():
            data.to_parquet(str(path / "mnist" / f"{split}-00000-of-00001.parquet"))
    else:
        datasets.DatasetDict(splits).save_to_disk(str(path))
    return {k: np.stack(v.with_format("numpy")[image_column]) for k, v in splits.items()}


def test_sequential_mnist_from_a_saved_folder(tmp_path):
    images = fake_hub_folder(tmp_path / "mnist", (28, 28), "image")
    dm = SequentialMNISTDataModule(data_dir=str(tmp_path / "mnist"), val_size=10, normalize=False, batch_size=8)
    dm.setup()
    assert [len(dm.dataset(k)) for k in ("train", "val", "test")] == [30, 10, 10]
    x, y, mask = next(iter(dm.test_dataloader()))
    assert x.shape == (8, 784, 1) and mask[:, 783].all() and mask.sum() == 8
    assert torch.equal(x[:, :, 0], torch.from_numpy(images["test"][:8].reshape(8, 784)).float())  # row-major pixels
    assert y[:, 0].tolist() == list(range(8))
    perm = SequentialMNISTDataModule(data_dir=str(tmp_path / "mnist"), val_size=10, permuted=True, batch_size=8)
    xp = next(iter(perm.test_dataloader()))[0]
    assert xp.shape == (8, 784, 1) and not torch.equal(xp, x)
    order = perm.time_permutation(784)
    mean, std = perm.dataset("train").mean, perm.dataset("train").std
    assert torch.allclose(xp, ((x - mean) / std)[:, order], atol=1e-5)


def test_sequential_mnist_from_parquet_files(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    images = fake_hub_folder(tmp_path / "pq", (28, 28), "image", parquet=True)
    dm = SequentialMNISTDataModule(data_dir=str(tmp_path / "pq"), val_size=10, normalize=False, batch_size=10)
    x, y, _ = next(iter(dm.test_dataloader()))
    assert torch.equal(x[..., 0], torch.from_numpy(images["test"].reshape(10, 784)).float())
    assert [len(dm.dataset(k)) for k in ("train", "val", "test")] == [30, 10, 10]


def test_noisy_scifar_rows_then_gaussian_noise_up_to_1000_steps(tmp_path):
    images = fake_hub_folder(tmp_path / "cifar", (32, 32, 3), "img", n_train=30)
    dm = NoisySequentialCIFARDataModule(data_dir=str(tmp_path / "cifar"), val_size=10, batch_size=10)
    assert (dm.input_size, dm.output_size) == (96, 10)
    x, y, mask = next(iter(dm.test_dataloader()))
    assert x.shape == (10, 1000, 96) and y.shape == mask.shape == (10, 1000)
    assert mask[:, 999].all() and mask.sum() == 10
    ds = dm.dataset("train")
    assert ds.mean.shape == (96,) and torch.equal(ds.mean[:32], ds.mean[:1].expand(32))  # one statistic per colour
    raw = torch.from_numpy(images["test"]).float()  # [N, row, column, colour] -> a row = 32 red, 32 green, 32 blue
    expected = (raw.permute(0, 1, 3, 2).reshape(10, 32, 96) - ds.mean) / ds.std
    assert torch.allclose(x[:, :32], expected, atol=1e-5)
    noise = x[:, 32:]
    assert abs(noise.mean()) < 0.01 and noise.std() == pytest.approx(1.0, abs=0.01)
    assert torch.equal(noise, next(iter(dm.test_dataloader()))[0][:, 32:])  # evaluation noise is fixed
    train_noise = [dm.dataset("train")[0][0][32:] for _ in range(2)]
    assert not torch.equal(*train_noise)  # training noise is drawn afresh
    short = NoisySequentialCIFARDataModule(data_dir=str(tmp_path / "cifar"), val_size=10, length=40)
    assert short.dataset("val")[0][0].shape == (40, 96)


def test_missing_offline_data_is_one_clear_error(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    empty = tmp_path / "empty"
    empty.mkdir()
    dm = SequentialMNISTDataModule(data_dir=str(empty))
    with pytest.raises(ConfigError, match=r"cannot load 'ylecun/mnist' from data_dir=.*empty.*save_to_disk") as err:
        dm.setup()
    assert "\n" not in str(err.value)


def test_a_missing_optional_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ConfigError, match=r"pip install \"wavezoo\[benchmarks\]\""):
        DigitsDataModule().setup()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: UCRDataModule("Nope"), "name='Nope' is invalid: expected one of .*'GunPoint'.*'JapaneseVowels'"),
        (lambda: UCRDataModule("GunPoint", val_fraction=1.5), "val_fraction=1.5 is invalid"),
        (lambda: DigitsDataModule(batch_size=0), "batch_size=0 is invalid"),
        (lambda: DigitsDataModule(num_workers=-1), "num_workers=-1 is invalid"),
        (lambda: DigitsDataModule(val_size=2000).setup(), r"val_size=2000 is invalid: expected an integer in 1\.\."),
        (lambda: DigitsDataModule(test_size=0).setup(), "test_size=0 is invalid"),
        (lambda: UCRDataModule("JapaneseVowels", permuted=True).setup(), "permuted=True needs sequences of one"),
        (lambda: NoisySequentialCIFARDataModule(length=10), "length=10 is invalid: expected an integer >= 32"),
        (lambda: DigitsDataModule(seed=-1), r"^seed=-1 is invalid: expected an integer >= 0$"),
        (lambda: MNIST1DDataModule(seed=-1), r"^seed=-1 is invalid: expected an integer >= 0$"),
        (lambda: UCRDataModule("GunPoint", seed=-1), r"^seed=-1 is invalid: expected an integer >= 0$"),
        (lambda: SequentialMNISTDataModule(seed=-1), r"^seed=-1 is invalid: expected an integer >= 0$"),
        (lambda: NoisySequentialCIFARDataModule(seed=-1), r"^seed=-1 is invalid: expected an integer >= 0$"),
        (lambda: DigitsDataModule(seed=0.5), r"^seed=0\.5 is invalid: expected an integer >= 0$"),
        (lambda: DigitsDataModule(split_seed=-2), r"^split_seed=-2 is invalid: expected an integer >= 0$"),
        (lambda: DigitsDataModule(permutation_seed=-3), r"^permutation_seed=-3 is invalid: expected an integer >= 0$"),
    ],
)
def test_bad_values_are_one_line_config_errors(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_wavezoo_fit_on_digits(tmp_path, capsys):
    config = ROOT / "configs/digits/gru.yaml"
    main(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.max_steps",
            "3",
            "--trainer.limit_train_batches",
            "3",
            "--model.init_args.hidden_size",
            "8",
            "--data.batch_size",
            "128",
            "--test_after_fit",
            "true",
            *QUIET,
        ]
    )
    assert "test/acc" in capsys.readouterr().out
    last = tmp_path / "digits/gru/version_0/checkpoints/last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["input_size"] == 1 and saved["hyper_parameters"]["output_size"] == 10
    assert saved["datamodule_hyper_parameters"]["val_size"] == 250
