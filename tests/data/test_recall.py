"""Recall tasks over token ids: each generator checked sample by sample against its definition, the presets of the
original code, determinism from (seed, batch index), and argument validation."""

import pytest
import torch

from wavezoo import ConfigError
from wavezoo.data import (
    AssociativeRecallDataModule,
    InductionHeadDataModule,
    MQARDataModule,
    SelectiveCopyDataModule,
)

TASKS = [InductionHeadDataModule, AssociativeRecallDataModule, MQARDataModule, SelectiveCopyDataModule]


def batch_of(dm, size=256):
    return dm.sample(size, torch.Generator().manual_seed(1))


# -- induction head -----------------------------------------------------------------------------------------------
def test_induction_head_target_is_the_symbol_after_the_first_trigger():
    dm = InductionHeadDataModule(vocab_size=8, length=12)
    x, y, mask = batch_of(dm)
    assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == mask.shape == (256, 12)
    assert (dm.vocab_size, dm.input_size, dm.output_size, dm.trigger) == (8, 8, 8, 7)
    for tokens, targets, keep in zip(x.tolist(), y.tolist(), mask.tolist(), strict=True):
        triggers = [t for t, token in enumerate(tokens) if token == 7]
        assert len(triggers) == 2 and triggers[1] == 11 and triggers[0] <= 12 - 4  # safari's range of positions
        assert all(1 <= token <= 6 for token in tokens if token != 7)  # no no-op token (0)
        assert targets[-1] == tokens[triggers[0] + 1]
        assert targets[:-1] == tokens[1:]  # next-token targets elsewhere (safari's training loss)
        assert keep == [False] * 11 + [True]


def test_induction_head_smallest_case_by_hand():
    """Length 4: the trigger can only be at step 0, so inputs are [trigger, s, r, trigger] and the target is s."""
    x, y, _ = batch_of(InductionHeadDataModule(vocab_size=4, length=4), 64)
    assert x[:, 0].eq(3).all() and x[:, 3].eq(3).all() and x[:, 1:3].ge(1).all() and x[:, 1:3].le(2).all()
    assert torch.equal(y[:, -1], x[:, 1])


# -- associative recall -------------------------------------------------------------------------------------------
def test_associative_recall_target_is_the_value_of_the_query_key():
    dm = AssociativeRecallDataModule(vocab_size=12, num_pairs=6)
    x, y, mask = batch_of(dm)
    assert x.shape == (256, 14) and dm.length == 14 and (dm.num_keys, dm.separator) == (5, 11)
    for tokens, targets, keep in zip(x.tolist(), y.tolist(), mask.tolist(), strict=True):
        pairs = list(zip(tokens[0:12:2], tokens[1:12:2], strict=True))
        assert all(1 <= k <= 5 and 6 <= v <= 10 for k, v in pairs)  # keys and values from disjoint halves
        value_of = dict(pairs)
        assert len(value_of) == len({(k, v) for k, v in pairs})  # a key always has the same value
        assert tokens[12] == 11 and tokens[13] in value_of  # separator, then a key that is present
        assert targets[-1] == value_of[tokens[13]] and targets[:-1] == tokens[1:]
        assert keep == [False] * 13 + [True]


def test_associative_recall_smallest_case_by_hand():
    """vocab_size 4: one key (1), one value (2), separator 3: every sample is 1 2 1 2 3 1 -> 2."""
    x, y, mask = batch_of(AssociativeRecallDataModule(vocab_size=4, num_pairs=2), 8)
    assert x.tolist() == [[1, 2, 1, 2, 3, 1]] * 8 and y[:, -1].eq(2).all() and mask.sum() == 8


def test_associative_recall_queries_are_uniform_over_the_keys_present():
    x, _, _ = batch_of(AssociativeRecallDataModule(vocab_size=6, num_pairs=1), 4000)  # keys 1, 2: one present
    assert torch.equal(x[:, -1], x[:, 0])


# -- MQAR ---------------------------------------------------------------------------------------------------------
def test_mqar_every_query_target_is_the_value_that_followed_the_same_key():
    dm = MQARDataModule(vocab_size=40, length=30, num_kv_pairs=5)
    x, y, mask = batch_of(dm)
    assert x.shape == (256, 30)
    for tokens, targets, keep in zip(x.tolist(), y.tolist(), mask.tolist(), strict=True):
        keys, values = tokens[0:10:2], tokens[1:10:2]
        assert len(set(keys)) == 5 and all(1 <= k <= 19 for k in keys)  # distinct keys in 1..vocab//2 - 1
        assert len(set(values)) == 5 and all(20 <= v <= 39 for v in values)  # distinct values in vocab//2..
        value_of = dict(zip(keys, values, strict=True))
        queries = [t for t in range(10, 30) if tokens[t] != 0]
        assert sorted(tokens[t] for t in queries) == sorted(keys)  # each key queried exactly once
        assert all((t - 10) % 2 == 0 for t in queries)  # at even offsets after the context
        assert [t for t in range(30) if keep[t]] == queries  # the mask is the query steps
        assert all(targets[t] == value_of[tokens[t]] for t in queries)  # target at the query step itself
        assert all(targets[t] == 0 for t in range(30) if not keep[t])


def test_mqar_smallest_case_by_hand():
    """vocab 4, one pair, length 4: key 1, a value in {2, 3}, the query at step 2: [1, v, 1, 0], target v at 2."""
    x, y, mask = batch_of(MQARDataModule(vocab_size=4, length=4, num_kv_pairs=1), 64)
    assert x[:, [0, 2]].eq(1).all() and x[:, 3].eq(0).all() and x[:, 1].ge(2).all()
    assert torch.equal(y[:, 2], x[:, 1]) and mask.tolist() == [[False, False, True, False]] * 64


def test_mqar_power_law_puts_queries_early():
    def mean_query_step(power_a):
        _, _, mask = batch_of(MQARDataModule(vocab_size=16, length=64, num_kv_pairs=2, power_a=power_a), 2000)
        return mask.nonzero()[:, 1].float().mean().item()

    uniform, skewed = mean_query_step(1.0), mean_query_step(0.01)
    assert 32 < uniform < 38 and skewed < uniform - 8  # uniform over steps 4..62: mean 33


def test_mqar_random_non_queries_only_replace_the_filler():
    plain = batch_of(MQARDataModule(vocab_size=32, length=32))
    noisy = batch_of(MQARDataModule(vocab_size=32, length=32, random_non_queries=True))
    x, y, mask = noisy
    keep = mask.clone()
    keep[:, :8] = True  # the context and the queries are the same samples
    assert torch.equal(x[keep], plain[0][keep]) and torch.equal(y, plain[1]) and torch.equal(mask, plain[2])
    assert (x[~keep] != 0).float().mean() > 0.9  # the filler became random ids (0 with probability 1/32)


# -- selective copying --------------------------------------------------------------------------------------------
def test_selective_copy_targets_are_the_data_tokens_in_order():
    dm = SelectiveCopyDataModule(vocab_size=8, length=20, num_tokens_to_copy=5)
    x, y, mask = batch_of(dm)
    for tokens, targets, keep in zip(x.tolist(), y.tolist(), mask.tolist(), strict=True):
        data = [token for token in tokens[:15] if token != 0]
        assert len(data) == 5 and all(1 <= token <= 6 for token in data)
        assert tokens[15:] == [7] * 5 and targets[15:] == data and targets[:15] == [0] * 15
        assert keep == [False] * 15 + [True] * 5
    positions = (x[:, :15] != 0).float().mean(0)
    assert positions.min() > 0.2 and positions.max() < 0.5  # scattered uniformly: 5 of 15 steps (1/3) each


def test_selective_copy_without_noise_is_the_plain_copy():
    x, y, _ = batch_of(SelectiveCopyDataModule(vocab_size=5, length=6, num_tokens_to_copy=3), 16)
    assert x[:, :3].ge(1).all() and x[:, 3:].eq(4).all() and torch.equal(y[:, 3:], x[:, :3])


# -- shared behaviour ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", TASKS)
def test_batches_depend_only_on_seed_and_batch_index(cls, monkeypatch):
    first, second = cls(batch_size=4, seed=3), cls(batch_size=4, seed=3)
    batches = [first.next_train_batch() for _ in range(3)]
    second.load_state_dict({"batches_drawn": 2})  # a resumed run draws the third batch
    assert all(torch.equal(a, b) for a, b in zip(batches[2], second.next_train_batch(), strict=True))
    assert not torch.equal(batches[0][0], batches[1][0])
    assert not torch.equal(batches[0][0], cls(batch_size=4, seed=4).next_train_batch()[0])
    again = cls(batch_size=4, seed=3).eval_set("val")[0]
    assert all(torch.equal(a, b) for a, b in zip(first.eval_set("val")[0], again, strict=True))
    # DDP: rank 1 of 2 with batch 2 gets the second half of the 1-process batch of 4
    rank_one = cls(batch_size=2, seed=3)
    monkeypatch.setattr(rank_one, "_rank_and_world", lambda: (1, 2))
    assert all(torch.equal(a[2:], b) for a, b in zip(batches[0], rank_one.next_train_batch(), strict=True))


def test_presets_of_the_original_code():
    ih, ar = InductionHeadDataModule.safari(), AssociativeRecallDataModule.safari()
    assert (ih.vocab_size, ih.length, ih.batch_size) == (20, 31, 32)
    assert (ar.vocab_size, ar.num_pairs, ar.length, ar.num_keys, ar.batch_size) == (20, 20, 42, 9, 32)
    for dm in (ih, ar):  # safari's 500 test examples
        assert dm.eval_batch_size * dm.test_batches == 500
    mqar = MQARDataModule.zoology()
    assert (mqar.vocab_size, mqar.length, mqar.num_kv_pairs, mqar.power_a, mqar.random_non_queries) == (
        8192, 64, 4, 0.01, False
    )  # fmt: skip
    assert mqar.batch_size == 512 and mqar.eval_batch_size * mqar.test_batches == 3000
    assert MQARDataModule.zoology(256, 16).batch_size == 256
    assert MQARDataModule.zoology(128, 8, batch_size=7).batch_size == 7  # overrides
    sc = SelectiveCopyDataModule.mamba()
    assert (sc.vocab_size, sc.length, sc.num_tokens_to_copy) == (16, 4096, 16)
    x, y, mask = batch_of(sc, 2)
    assert x.shape == (2, 4096) and (x[:, :4080] != 0).sum(1).tolist() == [16, 16] and mask.sum() == 32
    x, _, _ = batch_of(mqar, 2)
    assert x.shape == (2, 64) and x.max() < 8192


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (InductionHeadDataModule, {"vocab_size": 3}, r"vocab_size=3 is invalid: expected an integer >= 4"),
        (InductionHeadDataModule, {"length": 3}, r"length=3 is invalid: expected an integer >= 4"),
        (InductionHeadDataModule, {"length": 8.0}, r"length=8.0 is invalid"),
        (AssociativeRecallDataModule, {"vocab_size": 2}, r"vocab_size=2 is invalid: expected an integer >= 4"),
        (AssociativeRecallDataModule, {"num_pairs": 0}, r"num_pairs=0 is invalid: expected an integer >= 1"),
        (MQARDataModule, {"vocab_size": 9, "num_kv_pairs": 4}, r"vocab_size=9 is too small for num_kv_pairs=4.* 10"),
        (MQARDataModule, {"length": 15, "num_kv_pairs": 4}, r"length=15 is too short for num_kv_pairs=4: .* >= 16"),
        (MQARDataModule, {"num_kv_pairs": 0}, r"num_kv_pairs=0 is invalid"),
        (MQARDataModule, {"power_a": 0.0}, r"power_a=0.0 is invalid: expected a finite number > 0"),
        (MQARDataModule, {"random_non_queries": "yes"}, r"random_non_queries='yes' is invalid: expected true or false"),
        (SelectiveCopyDataModule, {"vocab_size": 3}, r"vocab_size=3 is invalid: expected an integer >= 4"),
        (SelectiveCopyDataModule, {"length": 7, "num_tokens_to_copy": 4}, r"length=7 is too short for num_tok.* >= 8"),
        (SelectiveCopyDataModule, {"num_tokens_to_copy": -1}, r"num_tokens_to_copy=-1 is invalid"),
        (SelectiveCopyDataModule, {"seed": -1}, r"seed=-1 is invalid: expected an integer >= 0"),
    ],
)
def test_bad_arguments(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)
