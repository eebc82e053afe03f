"""The model contract shared by every family of the zoo: a sequence map and its streaming form.

Every model is a causal map ``[batch, time, input_size] -> [batch, time, output_size]`` and a state machine::

    state = model.initial_state(batch_size)          # s(0)
    y_t, state = model.step(x_t, state)              # (y(t), s(t)) from (x(t), s(t-1)), x_t: [batch, input_size]

so that running :meth:`SequenceModel.step` over a sequence equals ``model(x)`` (tested for every family to 1e-5 in
float32). ``forward`` is the scan of ``step`` unless a family provides a faster ``forward_sequence`` that is proven
equal to it by the same test. States are tensors or tuples of tensors (a family documents its own layout).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wavezoo.errors import ConfigError, check_positive_int
from wavezoo.models.hub import ZooHubMixin

State = Any  # a tensor or a (nested) tuple of tensors, as each family documents


class SequenceModel(nn.Module, ZooHubMixin):
    """Base class of every zoo model: batch-first ``[batch, time, input_size] -> [batch, time, output_size]``.

    Subclasses implement :meth:`initial_state` and :meth:`forward_step`, and may override
    :meth:`forward_sequence` with a fast path equal to the scan of :meth:`forward_step`. :meth:`forward` and
    :meth:`step` check their input first, so a tensor of the wrong rank or width fails with a one-line
    :class:`~wavezoo.errors.ConfigError` instead of an error deep inside torch. ``save_pretrained``,
    ``from_pretrained`` and ``push_to_hub`` come from huggingface_hub (:class:`~wavezoo.models.hub.ZooHubMixin`).
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.output_size = check_positive_int("output_size", output_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.token_embedding: nn.Embedding | None = None  # see add_token_embedding

    # -- token inputs ---------------------------------------------------------------------------------------
    def add_token_embedding(self, vocab_size: int) -> SequenceModel:
        """Make the model read token ids: ``x [batch, time]`` (``step``: ``[batch]``) of integers in
        ``0 .. vocab_size - 1``, embedded by ``nn.Embedding(vocab_size, input_size)`` into the ``input_size``
        features the family reads (``build_model(..., vocab_size=V)`` calls it)."""
        self.token_embedding = nn.Embedding(check_positive_int("vocab_size", vocab_size), self.input_size)
        return self

    def check_tokens(self, x: torch.Tensor, what: str = "input") -> bool:
        """Whether ``x`` holds token ids, checked against the model: token ids without an embedding, float inputs
        with one, and ids outside the vocabulary raise a one-line :class:`ConfigError`. The range is checked for
        CPU tensors only: on an accelerator the check would stall the device every step (there the task module
        checks the DataModule's ``vocab_size`` once, at setup)."""
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"{type(self).__name__} expects a torch.Tensor, got {type(x).__name__}")
        tokens = not (x.is_floating_point() or x.is_complex()) and x.dtype != torch.bool
        if self.token_embedding is None:
            if tokens:
                raise ConfigError(
                    f"{type(self).__name__} got integer {what} ({x.dtype}, shape {tuple(x.shape)}) but reads float "
                    "features: token ids need a model built with vocab_size (the task module's vocab_size)"
                )
            return False
        vocab = self.token_embedding.num_embeddings
        if not tokens:
            raise ConfigError(
                f"{type(self).__name__} has vocab_size={vocab} and expects integer token ids, got {x.dtype} of shape "
                f"{tuple(x.shape)}"
            )
        if x.device.type == "cpu" and x.numel() and bool(((x < 0) | (x >= vocab)).any()):
            raise ConfigError(
                f"token ids must lie in 0..{vocab - 1} (vocab_size={vocab}); got ids from {int(x.min())} to "
                f"{int(x.max())}"
            )
        return True

    # -- the sequence map -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.check_tokens(x):
            if x.dim() != 2:
                raise ConfigError(
                    f"{type(self).__name__} got token ids of shape {tuple(x.shape)}; expected a 2-d tensor "
                    "[batch, time]"
                )
            x = self.token_embedding(x)
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ConfigError(
                f"{type(self).__name__} got input of shape {tuple(x.shape)}; expected a 3-d tensor "
                f"[batch, time, input_size={self.input_size}]"
            )
        if x.shape[1] == 0:
            raise ConfigError(f"{type(self).__name__} got an empty sequence (time = 0); expected time >= 1")
        return self.forward_sequence(x)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """The scan of :meth:`forward_step` from :meth:`initial_state` (families override it with a fast path)."""
        return self.scan(x)[0]

    def scan(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Run :meth:`forward_step` over ``x`` ``[batch, time, input_size]`` from ``state`` (default: the initial
        state); returns the outputs ``[batch, time, output_size]`` and the final state."""
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        outputs = []
        for t in range(x.shape[1]):
            y_t, state = self.forward_step(x[:, t], state)
            outputs.append(y_t)
        return torch.stack(outputs, dim=1), state

    # -- the streaming form ---------------------------------------------------------------------------------
    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """The state before the first step, s(0), for ``batch_size`` sequences (on the model's device and dtype
        unless given)."""
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One step: ``x_t`` ``[batch, input_size]`` and s(t-1) -> (y(t) ``[batch, output_size]``, s(t))."""
        if self.check_tokens(x_t, "x_t"):
            if x_t.dim() != 1:
                raise ConfigError(
                    f"{type(self).__name__}.step got token ids of shape {tuple(x_t.shape)}; expected [batch] ids"
                )
            x_t = self.token_embedding(x_t)
        if not isinstance(x_t, torch.Tensor) or x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            shape = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ConfigError(
                f"{type(self).__name__}.step got x_t of shape {shape}; expected [batch, input_size={self.input_size}]"
            )
        return self.forward_step(x_t, state)

    def forward_step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------------------
    def state_kwargs(self, device, dtype) -> dict[str, Any]:
        """``device``/``dtype`` keyword arguments for a new state tensor: the given ones, else the parameters'."""
        reference = next(self.parameters(), None)
        if reference is None:
            reference = next(self.buffers(), torch.empty(0))
        return {"device": device or reference.device, "dtype": dtype or reference.dtype}

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, output_size={self.output_size}, hidden_size={self.hidden_size}"
