"""The model contract shared by every family of the zoo: a sequence map and its streaming form.

Every model is a causal map ``[batch, time, input_size] -> [batch, time, output_size]`` and a state machine::

    state = model.initial_state(batch_size)          # s(0)
    y_t, state = model.step(x_t, state)              # (y(t), s(t)) from (x(t), s(t-1)), x_t: [batch, input_size]

so that running :meth:`SequenceModel.step` over a sequence equals ``model(x)`` (tested for every family to 1e-5 in
float32, and to 1e-10 in float64 at length 300). One contract, three entry points sharing one input path
(:meth:`SequenceModel.prepare_input`: token ids, checks, dtype):

* ``forward(x)``: the sequence map, the family's ``forward_sequence`` (a parallel form where the math allows:
  ``transformer``, ``twm_lbc``, ``lbc_ssm``; else the stepped scan); training calls
  ``training_forward(x, targets)``, which is ``forward(x)`` except for a model trained teacher-forced
  (``sbc_transformer``'s default: the targets stand in for its generated tokens, in parallel);
* ``scan(x, state=None) -> (y, state)``: the same map from any state (``scan_sequence``);
* ``step(x_t, state) -> (y_t, state)``: the streaming form (``forward_step``).

States are tensors or tuples of tensors (a family documents its own layout).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wavezoo.errors import ConfigError, check_positive_int
from wavezoo.models.hub_mixin import ZooHubMixin

State = Any  # a tensor or a (nested) tuple of tensors, as each family documents


class SequenceModel(nn.Module, ZooHubMixin):
    """Base class of every zoo model: batch-first ``[batch, time, input_size] -> [batch, time, output_size]``.

    Subclasses implement :meth:`initial_state` and :meth:`forward_step`, and may override
    :meth:`forward_sequence` with a fast path equal to the scan of :meth:`forward_step`. :meth:`forward` and
    :meth:`step` check their input first, so a tensor of the wrong rank or width fails with a one-line
    :class:`~wavezoo.errors.ConfigError` instead of an error deep inside torch. ``save_pretrained``,
    ``from_pretrained`` and ``push_to_hub`` come from huggingface_hub (:class:`~wavezoo.models.hub_mixin.ZooHubMixin`).
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

    # -- the one input path of forward, scan and step --------------------------------------------------------
    def prepare_input(self, x: torch.Tensor, streaming: bool = False) -> torch.Tensor:
        """The input path shared by :meth:`forward`, :meth:`scan` (``streaming=False``: a sequence
        ``[batch, time, input_size]`` or token ids ``[batch, time]``) and :meth:`step` (``streaming=True``: one step
        ``[batch, input_size]`` or ids ``[batch]``): checks, then the token embedding. Returns the float features the
        family reads. Refused with a one-line :class:`ConfigError`: a non-tensor, bool or complex inputs, an empty
        batch or sequence, the wrong rank or width; token ids as :meth:`check_tokens` says. Floating inputs of
        another dtype than the model's (float64, float16, bfloat16) are cast to the model's dtype."""
        name, what = type(self).__name__, ("x_t" if streaming else "input")
        if isinstance(x, torch.Tensor) and (x.dtype == torch.bool or x.is_complex()):
            raise ConfigError(f"{name} got {what} of dtype {x.dtype}; expected float features or integer token ids")
        if self.check_tokens(x, what):
            if x.dim() != (1 if streaming else 2):
                expected = "[batch] ids" if streaming else "a 2-d tensor [batch, time]"
                raise ConfigError(
                    f"{name}{'.step' if streaming else ''} got token ids of shape {tuple(x.shape)}; expected {expected}"
                )
            x = self.token_embedding(x)
        elif streaming and (x.dim() != 2 or x.shape[-1] != self.input_size):
            raise ConfigError(
                f"{name}.step got x_t of shape {tuple(x.shape)}; expected [batch, input_size={self.input_size}]"
            )
        elif not streaming and (x.dim() != 3 or x.shape[-1] != self.input_size):
            raise ConfigError(
                f"{name} got input of shape {tuple(x.shape)}; expected a 3-d tensor "
                f"[batch, time, input_size={self.input_size}]"
            )
        if x.shape[0] == 0:
            raise ConfigError(f"{name} got {what} of shape {tuple(x.shape)}: an empty batch; expected batch >= 1")
        if not streaming and x.shape[1] == 0:
            raise ConfigError(f"{name} got an empty sequence (time = 0); expected time >= 1")
        dtype = self.state_kwargs(None, None)["dtype"]
        return x.to(dtype) if x.dtype != dtype and dtype.is_floating_point else x

    # -- the sequence map -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training form: ``x [batch, time, input_size]`` (or ids ``[batch, time]``) from the initial state ->
        ``[batch, time, output_size]``."""
        return self.forward_sequence(self.prepare_input(x))

    def training_forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The outputs a training loss reads, given the ``targets``: :meth:`forward` for every family except those
        that feed their own outputs back (``sbc_transformer``'s default), which read the targets in their place
        (teacher forcing, the transformer's training form) and so train without a time loop."""
        return self(x)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """The scan of :meth:`forward_step` from :meth:`initial_state` (families override it with a parallel form)."""
        return self.scan_sequence(x, None)[0]

    def scan(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """``x`` (as :meth:`forward` reads it) from ``state`` (default: the initial state) -> (the outputs
        ``[batch, time, output_size]``, the final state); equal to :meth:`step` over ``x`` and, from the initial
        state, to :meth:`forward`."""
        return self.scan_sequence(self.prepare_input(x), state)

    def scan_sequence(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """The family's scan of checked features ``x`` from ``state`` (None: the initial state); by default
        :meth:`forward_step` step by step (families with a parallel form override it)."""
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
        """The state before the first step, s(0), for ``batch_size`` >= 1 sequences (on the model's device and
        dtype unless given); families check ``batch_size`` with :func:`~wavezoo.errors.check_positive_int`."""
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One step: ``x_t`` ``[batch, input_size]`` (or ids ``[batch]``) and s(t-1) -> (y(t)
        ``[batch, output_size]``, s(t)). ``state`` is required (``None`` is refused: start from
        :meth:`initial_state`)."""
        if state is None:
            raise ConfigError(
                f"{type(self).__name__}.step got state=None; expected a state: start a stream from "
                "model.initial_state(batch_size)"
            )
        return self.forward_step(self.prepare_input(x_t, streaming=True), state)

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
