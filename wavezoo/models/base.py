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

    # -- the sequence map -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"{type(self).__name__} expects a torch.Tensor, got {type(x).__name__}")
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
