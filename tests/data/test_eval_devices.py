"""Validation and test sets are the same samples whatever the number of DDP processes.

No process is spawned: a stand-in trainer with ``global_rank`` / ``world_size`` is attached to the DataModule, as
Lightning's trainer is on each rank, and the evaluation loaders of the ranks are compared with the 1-process set.
"""

from types import SimpleNamespace

import pytest
import torch
from lightning.fabric.utilities.data import has_iterable_dataset

from wavezoo import ConfigError
from wavezoo.data import CopyDataModule, DigitsDataModule, VariableBindingDataModule
from wavezoo.data.base import rank_share


def on_rank(dm, rank: int, world: int):
    dm.trainer = SimpleNamespace(global_rank=rank, world_size=world)
    return dm


def batches(loader) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(t.clone() for t in batch) for batch in loader]


def loader(dm, split: str):
    return dm.val_dataloader() if split == "val" else dm.test_dataloader()


def test_rank_share_cuts_like_tensor_split():
    for size in range(0, 12):
        for world in range(1, 5):
            expected = [t.tolist() for t in torch.arange(size).tensor_split(world)]
            assert [list(range(size))[rank_share(size, r, world)] for r in range(world)] == expected
    assert [rank_share(250, r, 3) for r in range(3)] == [slice(0, 84), slice(84, 167), slice(167, 250)]


def test_one_device_keeps_the_published_sets():
    # Values of the sets as generated before eval_batch_size existed (published metrics depend on them).
    dm = VariableBindingDataModule("T1")
    assert dm.eval_batch_size == 64 and len(dm.eval_set("test")) == 10
    x, y, _ = dm.eval_set("test")[0]
    assert x.shape == (64, 208, 8) and float(y.sum()) == -1650.0
    assert x[:2, :8, 0].tolist() == [[-1, -1, 1, -1, -1, 1, -1, -1], [-1, 1, -1, -1, -1, -1, -1, -1]]
    assert dm.eval_set("val")[3][1][0, 8:14, 0].tolist() == [1.0, 1.0, 1.0, -1.0, 1.0, 1.0]
    copy = CopyDataModule(batch_size=16)
    first_targets = copy.eval_set("val")[0][1][:2, -10:].tolist()
    assert first_targets == [[5, 6, 3, 6, 6, 3, 2, 1, 2, 3], [3, 8, 7, 2, 5, 5, 1, 7, 2, 6]]
    for split in ("val", "test"):
        served = batches(loader(dm, split))  # no trainer: one device, the whole set
        assert len(served) == len(dm.eval_set(split))
        pairs = zip(served, dm.eval_set(split), strict=True)
        assert all(torch.equal(a, b) for s, e in pairs for a, b in zip(s, e, strict=True))


def test_eval_batch_size_sets_the_evaluation_batches_only():
    dm = VariableBindingDataModule("T2", batch_size=4, eval_batch_size=6, val_batches=2, test_batches=3, horizons=[5])
    assert dm.next_train_batch()[0].shape == (4, 13, 8)
    assert [b[0].shape for b in dm.eval_set("val")] == [(6, 208, 8)] * 2
    assert [b[0].shape for b in dm.eval_set("test")] == [(6, 208, 8)] * 3
    # batch i of a set is drawn from (seed, split, i) as before: the first samples of a larger batch
    small, large = VariableBindingDataModule("T2", eval_batch_size=6), VariableBindingDataModule("T2")
    assert torch.equal(small.eval_set("test")[1][0], large.eval_set("test")[1][0][:6])


@pytest.mark.parametrize(
    "build",
    [
        lambda: VariableBindingDataModule("T3", eval_batch_size=8, val_batches=2, test_batches=3),
        lambda: CopyDataModule(delay=5, batch_size=12, val_batches=3, test_batches=2),  # eval_batch_size: 12
    ],
    ids=["variable_binding", "copy"],
)
@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("split", ["val", "test"])
def test_synthetic_ranks_split_every_batch_into_contiguous_slices(build, world, split):
    whole = batches(loader(build(), split))
    per_rank = [batches(loader(on_rank(build(), r, world), split)) for r in range(world)]
    size = whole[0][0].shape[0]
    for rank_batches in per_rank:
        assert len(rank_batches) == len(whole)  # every rank runs the same number of evaluation steps
        assert all(t.shape[0] == size // world for b in rank_batches for t in b)
    for i, batch in enumerate(whole):  # rank 0's slice, then rank 1's... is the 1-process batch, exactly
        for k, tensor in enumerate(batch):
            assert torch.equal(torch.cat([per_rank[r][i][k] for r in range(world)]), tensor)


@pytest.mark.parametrize("split", ["val", "test"])
def test_synthetic_evaluation_loaders_are_never_resampled_by_lightning(split):
    dm = on_rank(VariableBindingDataModule("T1", eval_batch_size=8, val_batches=2, test_batches=2), 1, 2)
    served = loader(dm, split)
    assert has_iterable_dataset(served) and len(served) == 2  # Lightning injects no DistributedSampler here
    assert has_iterable_dataset(dm.predict_dataloader())


def test_eval_batch_size_must_divide_between_the_devices():
    message = (
        "eval_batch_size=6 is invalid with 4 devices: expected a multiple of 4 (each device evaluates an equal "
        "slice of every validation / test batch)"
    )
    dm = on_rank(VariableBindingDataModule("T1", eval_batch_size=6), 0, 4)
    for call in (dm.setup, dm.val_dataloader, dm.test_dataloader):
        with pytest.raises(ConfigError) as err:
            call()
        assert str(err.value) == message
    on_rank(VariableBindingDataModule("T1", eval_batch_size=6), 0, 3).setup("fit")  # 6 = 3 x 2: fine
    with pytest.raises(ConfigError, match="eval_batch_size=0 is invalid: expected an integer >= 1"):
        VariableBindingDataModule("T1", eval_batch_size=0)


@pytest.fixture(scope="module")
def digits_sets():
    dm = DigitsDataModule(batch_size=64)
    return {split: batches(loader(dm, split)) for split in ("val", "test")}


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("split", ["val", "test"])
def test_digits_ranks_evaluate_contiguous_shares_of_the_whole_set_once(digits_sets, world, split):
    whole = [torch.cat(t) for t in zip(*digits_sets[split], strict=True)]
    assert whole[0].shape == (250, 64, 1)
    per_rank = []
    for rank in range(world):
        served = loader(on_rank(DigitsDataModule(batch_size=64), rank, world), split)
        assert has_iterable_dataset(served)  # Lightning injects no DistributedSampler (no padding repeats)
        per_rank.append(batches(served))
        assert len(served) == len(per_rank[-1])
    sizes = [sum(b[0].shape[0] for b in rank_batches) for rank_batches in per_rank]
    assert sizes == {2: [125, 125], 3: [84, 83, 83]}[world]
    assert [b[0].shape[0] for b in per_rank[0]] == {2: [64, 61], 3: [64, 20]}[world]  # batches of batch_size
    for k, tensor in enumerate(whole):  # rank 0's samples, then rank 1's...: the 1-process set, exactly
        assert torch.equal(torch.cat([b[k] for rank_batches in per_rank for b in rank_batches]), tensor)


def test_digits_eval_set_is_the_whole_set_on_every_rank(digits_sets):
    dm = on_rank(DigitsDataModule(batch_size=64), 1, 2)
    for split in ("val", "test"):
        for got, expected in zip(dm.eval_set(split), digits_sets[split], strict=True):
            assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_a_set_smaller_than_the_devices_is_one_clear_error():
    dm = on_rank(DigitsDataModule(val_size=3), 0, 4)
    with pytest.raises(ConfigError) as err:
        dm.val_dataloader()
    assert str(err.value) == "the val set has 3 samples, fewer than the 4 devices: evaluate on fewer devices"
