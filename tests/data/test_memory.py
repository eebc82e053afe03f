import pytest
import torch

from wavezoo import ConfigError
from wavezoo.data import AddingDataModule, CopyDataModule


def test_copy_targets_reproduce_the_first_symbols_after_the_delimiter():
    dm = CopyDataModule(delay=5, num_symbols=8, copy_length=10, batch_size=16)
    x, y, mask = dm.next_train_batch()
    assert x.shape == (16, 25, 10) and y.shape == mask.shape == (16, 25)
    tokens = x.argmax(-1)
    assert x.sum(-1).eq(1).all()  # one-hot
    assert tokens[:, :10].ge(1).all() and tokens[:, :10].le(8).all()
    assert tokens[:, 10:15].eq(0).all()  # T = 5 blanks
    assert tokens[:, 15].eq(9).all()  # delimiter
    assert tokens[:, 16:].eq(0).all()  # copy_length - 1 blanks
    assert torch.equal(y[:, -10:], tokens[:, :10]) and y[:, :-10].eq(0).all()
    assert mask[:, -10:].all() and not mask[:, :-10].any()
    assert (dm.input_size, dm.output_size) == (10, 9)


def test_copy_with_keller_et_al_layout():
    """Their copy_task.py at T = 100: length T + 10, delimiter (token 9) at T - 1, recall in the last 10 steps."""
    dm = CopyDataModule(delay=90, num_symbols=8, copy_length=10, delimiter_lead=1, num_classes=10, batch_size=8)
    x, y, mask = dm.next_train_batch()
    tokens = x.argmax(-1)
    assert x.shape == (8, 110, 10) and dm.length == 110
    assert tokens[:, :10].ge(1).all() and tokens[:, :10].le(8).all()
    assert tokens[:, 99].eq(9).all() and tokens[:, 10:99].eq(0).all() and tokens[:, 100:].eq(0).all()
    assert torch.equal(y[:, 100:], tokens[:, :10]) and y[:, :100].eq(0).all()
    assert mask[:, 100:].all() and not mask[:, :100].any()
    assert (dm.input_size, dm.output_size) == (10, 10)


def test_adding_target_is_the_sum_of_the_two_marked_values():
    dm = AddingDataModule(length=50, batch_size=32)
    x, y, mask = dm.next_train_batch()
    assert x.shape == (32, 50, 2) and y.shape == (32, 50, 1)
    markers = x[..., 1]
    assert markers.sum(1).eq(2).all()
    assert markers[:, :25].sum(1).eq(1).all() and markers[:, 25:].sum(1).eq(1).all()
    expected = (x[..., 0] * markers).sum(1)
    assert torch.allclose(y[:, -1, 0], expected) and y[:, :-1].eq(0).all()
    assert mask[:, -1].all() and mask.sum() == 32


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (CopyDataModule, {"delay": -1}, "delay=-1 is invalid: expected an integer >= 0"),
        (CopyDataModule, {"num_symbols": 0}, "num_symbols=0 is invalid"),
        (CopyDataModule, {"delay": 3, "delimiter_lead": 4}, "delimiter_lead=4 is invalid: expected at most delay=3"),
        (CopyDataModule, {"num_classes": 5}, "num_classes=5 is invalid: expected an integer >= 9"),
        (AddingDataModule, {"length": 1}, "length=1 is invalid: expected an integer >= 2"),
        (AddingDataModule, {"batch_size": 0}, "batch_size=0 is invalid"),
        (CopyDataModule, {"seed": -1}, "seed=-1 is invalid: expected an integer >= 0"),
        (AddingDataModule, {"seed": -1}, "seed=-1 is invalid: expected an integer >= 0"),
        (AddingDataModule, {"seed": 2.0}, "seed=2.0 is invalid: expected an integer >= 0"),
    ],
)
def test_bad_arguments(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)
