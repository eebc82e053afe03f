"""Recall tasks over token sequences: induction head, associative recall (H3 / safari), multi-query associative
recall (Zoology) and selective copying (Mamba).

Unlike the other synthetic tasks, these DataModules yield **token ids**: batches are ``(inputs [B, T] int64,
targets [B, T] int64, mask [B, T] bool)``. They expose ``vocab_size`` (the number of distinct ids, which is also the
number of output classes), ``input_size = vocab_size`` (the width a one-hot encoding would have) and
``output_size = vocab_size``; the task module embeds the ids (``SequenceClassification(vocab_size=...)``, which the
``wavezoo`` command links from the DataModule). Every batch is drawn from ``(seed, split, batch index)`` as in
:class:`~wavezoo.data.base.SyntheticDataModule`, so DDP slicing and resuming work as for the other tasks.

Each class has a classmethod preset with the configuration of the original code (its repository, file and commit
in the class docstring and in ``docs/benchmarks.md``, "Recall tasks: configurations and sources"); the default
arguments are small versions that train on a CPU in minutes. The generators are written from the descriptions of
those files, not copied: they draw the same distributions with torch's seeded generator.
"""

from __future__ import annotations

from typing import Any

import torch

from wavezoo.data.base import Batch, SyntheticDataModule
from wavezoo.errors import ConfigError, check_positive_float, check_positive_int


def _random_subsets(batch_size: int, pool: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``[batch_size, size]`` distinct indices of ``range(pool)`` per row, each row a uniform random subset in
    uniform random order (the first ``size`` entries of a random permutation)."""
    return torch.rand(batch_size, pool, generator=generator).argsort(dim=-1)[:, :size]


def _next_token_targets(tokens: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    """Language-model targets: the next input token at every step, ``answer`` at the last step."""
    return torch.cat([tokens[:, 1:], answer[:, None]], dim=1)


class TokenTaskDataModule(SyntheticDataModule):
    """Base of the recall tasks: classification over ``vocab_size`` token ids, inputs of ``length`` steps.

    ``input_size`` and ``output_size`` both equal ``vocab_size``: the CLI links them to the task module, whose
    ``vocab_size`` (also linked) makes it embed the ids instead of reading ``input_size`` features.
    """

    task_type = "classification"
    vocab_size: int
    length: int

    def _set_vocab(self, vocab_size: int, minimum: int) -> None:
        self.vocab_size = check_positive_int("vocab_size", vocab_size, minimum=minimum)
        self.input_size = self.output_size = self.vocab_size

    @classmethod
    def _preset(cls, preset: dict[str, Any], overrides: dict[str, Any]):
        return cls(**{**preset, **overrides})


class InductionHeadDataModule(TokenTaskDataModule):
    """Induction head (H3, Fu et al. 2023; safari's ``generate_induction_head``): recall the token that followed
    the trigger.

    Ids: ``0`` is safari's no-op token (never used by this task), ``1 .. vocab_size - 2`` the random symbols,
    ``vocab_size - 1`` the trigger (safari's copy prefix ``=>``). A sample of ``length`` steps holds random symbols,
    the trigger once at a position ``p`` drawn uniformly from ``0 .. length - 4`` (safari:
    ``rng.integers(input_seq_len - 2)`` with ``input_seq_len = length - 1``, so at least one random symbol lies
    between the symbol to recall and the end), and the trigger again at the last step. The target at the last
    step is the symbol at ``p + 1`` (mask: the last step only; chance accuracy ``1 / (vocab_size - 2)``). The
    targets of the other steps are the next input tokens, so ``SequenceClassification(loss_steps="all")`` trains
    on the next-token loss of every step as safari does (their metric, like ours, counts only the last step).

    Source: ``HazyResearch/safari``, ``src/dataloaders/synthetics.py`` at commit
    ``42f326e4ab3769d27b9f57d33c51f22ab4329168`` (``generate_induction_head``, ``ICLDataModule``); configuration
    ``configs/pipeline/induction_head.yaml`` and ``configs/experiment/synthetics/induction_head/base.yaml`` at
    commit ``fc2d8b18be36bce427a4b9b8073e508c86c8f7ee``: ``vocab_size: 20`` (18 symbols and 2 special tokens),
    ``input_seq_len: 30`` plus the final trigger, ``induction_len: 1``, one trigger, batch 32, 500 test examples.
    :meth:`safari` gives that configuration (``length = 31``); safari trains on a fixed set of 5000 examples for
    400 epochs, here every training batch is fresh.

    Args:
        vocab_size: token ids (at least 4: two symbols, the no-op id and the trigger).
        length: input steps, the final trigger included (at least 4).
        ``**kwargs``: the options of :class:`~wavezoo.data.base.SyntheticDataModule`.
    """

    def __init__(
        self, vocab_size: int = 10, length: int = 16, batch_size: int = 64, steps_per_epoch: int = 100, **kwargs: Any
    ) -> None:
        super().__init__(batch_size, steps_per_epoch, **kwargs)
        self._set_vocab(vocab_size, minimum=4)
        self.length = check_positive_int("length", length, minimum=4)
        self.trigger = self.vocab_size - 1

    @classmethod
    def safari(cls, **overrides: Any) -> InductionHeadDataModule:
        """Safari's induction-head configuration (see the class docstring); keyword arguments override it."""
        preset = {"vocab_size": 20, "length": 31, "batch_size": 32, "eval_batch_size": 100}
        return cls._preset({**preset, "val_batches": 5, "test_batches": 5}, overrides)

    def sample(self, batch_size: int, generator: torch.Generator, **_: Any) -> Batch:
        rows = torch.arange(batch_size)
        tokens = torch.randint(1, self.trigger, (batch_size, self.length), generator=generator)
        position = torch.randint(0, self.length - 3, (batch_size,), generator=generator)
        tokens[rows, position] = self.trigger
        tokens[:, -1] = self.trigger
        answer = tokens[rows, position + 1]
        mask = torch.zeros(batch_size, self.length, dtype=torch.bool)
        mask[:, -1] = True
        return tokens, _next_token_targets(tokens, answer), mask


class AssociativeRecallDataModule(TokenTaskDataModule):
    """Associative recall (H3, Fu et al. 2023; safari's ``generate_assoc_recall``): key-value pairs, then a query.

    Ids: ``0`` is safari's no-op token (unused here), ``1 .. vocab_size - 2`` the symbols, split as safari splits
    them into keys (the first ``(vocab_size - 2) // 2``) and values (the rest), ``vocab_size - 1`` the separator
    (safari's ``=>``). Each sample draws a key -> value map (a value per key, with repetition), then ``num_pairs``
    keys uniformly with repetition, each followed by its value, then the separator and a query key drawn uniformly
    among the keys present (safari's ``allow_dot=False``). Inputs: ``k v k v ... k v => q`` (``2 * num_pairs + 2``
    steps); the target at the last step is the value of ``q`` (mask: the last step only). The targets of the other
    steps are the next input tokens (safari trains on the next-token loss of every step:
    ``SequenceClassification(loss_steps="all")``).

    Source: ``HazyResearch/safari``, ``src/dataloaders/synthetics.py`` at commit
    ``42f326e4ab3769d27b9f57d33c51f22ab4329168`` (``generate_assoc_recall``, ``ICLDataModule``, ``num_keys: 1``);
    configuration ``configs/dataset/icl_synthetics.yaml`` at commit ``fc2d8b18be36bce427a4b9b8073e508c86c8f7ee``:
    ``vocab_size: 20``, ``input_seq_len: 40`` (20 pairs), 500 test examples, batch 32
    (``configs/experiment/synthetics/associative_recall/base.yaml`` at ``541902aca88cb11af4d816ac762f3303e4ff8eea``).
    :meth:`safari` gives it; its variants are ``safari(vocab_size=10, num_pairs=10)``
    (``associative_recall/vocab_size_10.yaml``) and ``safari(vocab_size=30, num_pairs=65536)``
    (``hyena-131k-30vs.yaml``, input_seq_len 131072). Multi-token keys (safari's ``num_keys > 1``) and queries of
    absent keys (``allow_dot=True``) are not provided. The defaults are safari's ``vocab_size_10`` variant.

    Args:
        vocab_size: token ids (at least 4: a key, a value, the no-op id and the separator).
        num_pairs: key-value pairs before the query (at least 1).
        ``**kwargs``: the options of :class:`~wavezoo.data.base.SyntheticDataModule`.
    """

    def __init__(
        self,
        vocab_size: int = 10,
        num_pairs: int = 10,
        batch_size: int = 64,
        steps_per_epoch: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size, steps_per_epoch, **kwargs)
        self._set_vocab(vocab_size, minimum=4)
        self.num_pairs = check_positive_int("num_pairs", num_pairs)
        self.num_keys = (self.vocab_size - 2) // 2
        self.separator = self.vocab_size - 1
        self.length = 2 * self.num_pairs + 2

    @classmethod
    def safari(cls, **overrides: Any) -> AssociativeRecallDataModule:
        """Safari's associative-recall configuration (see the class docstring); keyword arguments override it."""
        preset = {"vocab_size": 20, "num_pairs": 20, "batch_size": 32, "eval_batch_size": 100}
        return cls._preset({**preset, "val_batches": 5, "test_batches": 5}, overrides)

    def sample(self, batch_size: int, generator: torch.Generator, **_: Any) -> Batch:
        first_value, num_values = self.num_keys + 1, self.vocab_size - 2 - self.num_keys
        value_of = first_value + torch.randint(0, num_values, (batch_size, self.num_keys), generator=generator)
        keys = torch.randint(0, self.num_keys, (batch_size, self.num_pairs), generator=generator)  # key index
        present = torch.zeros(batch_size, self.num_keys).scatter_(1, keys, 1.0)
        query = torch.multinomial(present, 1, generator=generator)  # uniform among the keys present
        pairs = torch.stack([keys + 1, value_of.gather(1, keys)], dim=-1).flatten(1)
        separator = torch.full((batch_size, 1), self.separator)
        tokens = torch.cat([pairs, separator, query + 1], dim=1)
        mask = torch.zeros(batch_size, self.length, dtype=torch.bool)
        mask[:, -1] = True
        return tokens, _next_token_targets(tokens, value_of.gather(1, query)[:, 0]), mask


class MQARDataModule(TokenTaskDataModule):
    """Multi-query associative recall (Zoology, Arora, Eyuboglu et al. 2023; their ``multiquery_ar``).

    Ids: ``0`` is the filler, keys are drawn from ``1 .. vocab_size // 2 - 1`` and values from
    ``vocab_size // 2 .. vocab_size - 1``. Each sample draws ``num_kv_pairs`` distinct keys and distinct values and
    writes them as ``k1 v1 k2 v2 ...`` in the first ``2 * num_kv_pairs`` steps. Each key is then queried exactly
    once in the rest of the sequence: the slots are the even offsets ``2 * g`` after the context,
    ``g < (length - 2 * num_kv_pairs) // 2``, and the ``num_kv_pairs`` gaps ``g`` are drawn without replacement
    with probabilities proportional to ``power_a * (g + 1) ** (power_a - 1)`` (Zoology's power law: small gaps are
    likely; ``power_a = 1`` is uniform). Other steps hold the filler, or uniform random ids in
    ``0 .. vocab_size - 1`` with ``random_non_queries`` (as Zoology, such ids may repeat a key).

    **Where the targets are**: at each query step itself, the target is the value that followed the same key in the
    context; the mask marks exactly the query steps. Zoology builds the same alignment: its labels hold the value
    one step after the query and are then shifted left by one for next-token prediction (``labels[:, 1:]``), so the
    value is the prediction made while reading the query key. That is the only causal choice that asks for recall
    and not for copying the input (at the step after the query, the key would already be gone from the input, and
    Zoology's next input there is filler, not the value).

    Source: ``HazyResearch/zoology``, ``zoology/data/multiquery_ar.py`` at commit
    ``dbcb60d2bd10a3cc7a89ee60c446c44900a4687f`` (``multiquery_ar``, ``num_passes=1``); configuration
    ``zoology/experiments/paper_configs/iclr24_zoology_figure2/configs.py`` at commit
    ``4261f62eecc372d0af99e57890f922caf0d188c2``: ``VOCAB_SIZE = 8_192``, ``(input_seq_len, num_kv_pairs)`` in
    ``(64, 4), (128, 8), (256, 16)``, power 0.01, ``random_non_queries=False``, 100,000 training and 3,000 test
    examples, batch 512 (256 at length 256, 128 at 512, 64 at 1024). :meth:`zoology` gives it. Zoology asserts
    ``vocab_size > input_seq_len`` and an even length; neither is needed here.

    Args:
        vocab_size: token ids (at least ``2 * num_kv_pairs + 2``: ``vocab_size // 2 - 1`` keys are available).
        length: input steps (at least ``4 * num_kv_pairs``, as Zoology asserts: the context and one query slot
            per key).
        num_kv_pairs: key-value pairs, each queried once.
        power_a: exponent of the power law of the query gaps (> 0).
        random_non_queries: random ids instead of the filler 0 outside the context and the queries.
        ``**kwargs``: the options of :class:`~wavezoo.data.base.SyntheticDataModule`.
    """

    def __init__(
        self,
        vocab_size: int = 32,
        length: int = 32,
        num_kv_pairs: int = 4,
        power_a: float = 0.01,
        random_non_queries: bool = False,
        batch_size: int = 64,
        steps_per_epoch: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size, steps_per_epoch, **kwargs)
        self.num_kv_pairs = check_positive_int("num_kv_pairs", num_kv_pairs)
        self.length = check_positive_int("length", length)
        self._set_vocab(vocab_size, minimum=1)
        pairs = self.num_kv_pairs
        if self.vocab_size < 2 * pairs + 2:
            raise ConfigError(
                f"vocab_size={vocab_size} is too small for num_kv_pairs={pairs}: keys are distinct ids in "
                f"1..vocab_size//2 - 1 ({max(self.vocab_size // 2 - 1, 0)} of them); expected vocab_size >= "
                f"{2 * pairs + 2}"
            )
        if self.length < 4 * pairs:
            raise ConfigError(
                f"length={length} is too short for num_kv_pairs={pairs}: the context takes {2 * pairs} steps and "
                f"each key needs its own query slot; expected length >= {4 * pairs}"
            )
        self.power_a = check_positive_float("power_a", power_a)
        if not isinstance(random_non_queries, bool):
            raise ConfigError(f"random_non_queries={random_non_queries!r} is invalid: expected true or false")
        self.random_non_queries = random_non_queries
        slots = torch.arange(1, (self.length - 2 * pairs) // 2 + 1, dtype=torch.float64)
        weights = self.power_a * slots ** (self.power_a - 1)
        self.gap_probabilities = (weights / weights.sum()).float()

    @classmethod
    def zoology(cls, length: int = 64, num_kv_pairs: int = 4, **overrides: Any) -> MQARDataModule:
        """Zoology's Figure 2 configuration at ``(length, num_kv_pairs)`` (theirs: (64, 4), (128, 8), (256, 16)),
        with their batch size for that length; the 3,000 test examples as 5 batches of 600. Keyword arguments
        override it."""
        batch_size = {1024: 64, 512: 128, 256: 256}.get(length, 512)
        preset = {"vocab_size": 8192, "length": length, "num_kv_pairs": num_kv_pairs, "power_a": 0.01}
        preset.update(random_non_queries=False, batch_size=batch_size, eval_batch_size=600)
        return cls._preset({**preset, "val_batches": 5, "test_batches": 5}, overrides)

    def sample(self, batch_size: int, generator: torch.Generator, **_: Any) -> Batch:
        pairs, half = self.num_kv_pairs, self.vocab_size // 2
        keys = 1 + _random_subsets(batch_size, half - 1, pairs, generator)
        values = half + _random_subsets(batch_size, self.vocab_size - half, pairs, generator)
        probabilities = self.gap_probabilities.expand(batch_size, -1)
        gaps = torch.multinomial(probabilities, pairs, replacement=False, generator=generator)
        queries = 2 * pairs + 2 * gaps  # the step of the query of key i
        tokens = torch.zeros(batch_size, self.length, dtype=torch.long)
        tokens[:, 0 : 2 * pairs : 2] = keys
        tokens[:, 1 : 2 * pairs : 2] = values
        tokens.scatter_(1, queries, keys)
        targets = torch.zeros_like(tokens).scatter_(1, queries, values)
        mask = torch.zeros_like(tokens, dtype=torch.bool).scatter_(1, queries, True)
        if self.random_non_queries:
            noise = torch.randint(0, self.vocab_size, tokens.shape, generator=generator)
            tokens = torch.where(tokens == 0, noise, tokens)
        return tokens, targets, mask


class SelectiveCopyDataModule(TokenTaskDataModule):
    """Selective copying (Mamba, Gu & Dao 2023, sec. 4.1.1): copy the data tokens scattered among noise, in order.

    Ids: ``0`` is the noise (blank) token, ``1 .. vocab_size - 2`` the data symbols, ``vocab_size - 1`` the marker.
    A sample of ``length`` steps: ``num_tokens_to_copy`` random symbols at distinct, uniformly drawn positions of
    the first ``length - num_tokens_to_copy`` steps (noise elsewhere), then ``num_tokens_to_copy`` markers. The
    targets at the last ``num_tokens_to_copy`` steps are the symbols in their order of appearance (mask: those
    steps; chance accuracy ``1 / (vocab_size - 2)``).

    Source: the Mamba repository (``state-spaces/mamba``) holds no selective-copying code. The generator follows
    ``torch_copying_data(L, M, A, variable=True)`` of ``state-spaces/s4``, ``src/dataloaders/datasets/copying.py``
    at commit ``d589d982216485cce0a46bbe7605fe75c03d3223`` (the S4 copying task whose ``variable`` flag scatters the
    tokens: ``L`` noise steps, ``M`` tokens, alphabet ``A``; here ``length = L + 2 * M``). The configuration of
    :meth:`mamba` is the paper's (arXiv:2312.00752, sec. 4.1.1 / app. E.1), as given in the issue, not read from
    code: sequence length 4096 (read here as the whole input, ``L = 4096 - 32``), vocabulary 16 (noise and marker
    included, so 14 data symbols), 16 tokens to copy; the paper's batch size and training schedule are not part of
    the preset.

    Args:
        vocab_size: token ids (at least 4: two symbols, the noise and the marker).
        length: input steps, the markers included (at least ``2 * num_tokens_to_copy``).
        num_tokens_to_copy: data tokens to copy.
        ``**kwargs``: the options of :class:`~wavezoo.data.base.SyntheticDataModule`.
    """

    def __init__(
        self,
        vocab_size: int = 10,
        length: int = 32,
        num_tokens_to_copy: int = 4,
        batch_size: int = 64,
        steps_per_epoch: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size, steps_per_epoch, **kwargs)
        self._set_vocab(vocab_size, minimum=4)
        self.num_tokens_to_copy = check_positive_int("num_tokens_to_copy", num_tokens_to_copy)
        self.length = check_positive_int("length", length)
        copy = self.num_tokens_to_copy
        if self.length < 2 * copy:
            raise ConfigError(
                f"length={length} is too short for num_tokens_to_copy={copy}: the tokens need {copy} steps before "
                f"the {copy} markers; expected length >= {2 * copy}"
            )
        self.marker = self.vocab_size - 1

    @classmethod
    def mamba(cls, **overrides: Any) -> SelectiveCopyDataModule:
        """The Mamba paper's configuration (see the class docstring); keyword arguments override it."""
        return cls._preset({"vocab_size": 16, "length": 4096, "num_tokens_to_copy": 16}, overrides)

    def sample(self, batch_size: int, generator: torch.Generator, **_: Any) -> Batch:
        copy, first = self.num_tokens_to_copy, self.length - self.num_tokens_to_copy
        symbols = torch.randint(1, self.marker, (batch_size, copy), generator=generator)
        positions = _random_subsets(batch_size, first, copy, generator).sort(dim=-1).values
        tokens = torch.zeros(batch_size, self.length, dtype=torch.long)
        tokens[:, :first].scatter_(1, positions, symbols)
        tokens[:, first:] = self.marker
        targets = torch.zeros_like(tokens)
        targets[:, first:] = symbols
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        mask[:, first:] = True
        return tokens, targets, mask
