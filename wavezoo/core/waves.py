"""The traveling-wave step, the one recurrence every TWM in wavezoo runs (models, exact constructions, data).

Substrate h in R^{s x d} (``[batch, s, d]``; site i = 1..s is ``h[:, i - 1]``, i = 1 the oldest at the open end,
i = s the start boundary), wave j = 1..d:

    h[i, j](t) = h[i + 1, j](t - 1)     for 1 <= i < s      (an index shift, never a dense sd x sd matrix)
    h[s, :](t) = new(t),   new(t) = f(h(t - 1)) [+ u(t) on input steps] or u(t)   (see :func:`write_boundary`)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from wavezoo.errors import check_positive_int

INPUT_MODES = ("add", "replace")

Boundary = Callable[[torch.Tensor], torch.Tensor]  # f: substrate [B, s, d] -> new column [B, d]
IsInput = bool | torch.Tensor  # a Python bool for the whole batch, or a [B, 1] bool mask


def shift_in(substrate: torch.Tensor, new_column: torch.Tensor) -> torch.Tensor:
    """The interior shift: drop the oldest column h[1], move every column one site down, write ``new_column``
    as h[s]."""
    return torch.cat([substrate[:, 1:], new_column.unsqueeze(1)], dim=1)


def write_boundary(generated: torch.Tensor, drive: torch.Tensor | None, is_input: IsInput, input_mode: str):
    """The start boundary's new value from the ``generated`` one and the input ``drive`` (None: autonomous):
    ``"add"`` gives generated + drive on input steps, ``"replace"`` gives drive; generated on the other steps.
    ``is_input`` is a bool for the whole batch or a ``[B, 1]`` mask."""
    if drive is None or is_input is False:
        return generated
    written = generated + drive if input_mode == "add" else drive
    return written if is_input is True else torch.where(is_input, written, generated)


def wave_step(
    substrate: torch.Tensor,
    boundary: Boundary,
    drive: torch.Tensor | None = None,
    is_input: IsInput = True,
    input_mode: str = "add",
    feedback: Boundary | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One TWM step, h(t-1) -> h(t) (the only implementation of the step in wavezoo).

    The boundary computes c(t) = f(h(t-1)); the generated value is c(t), or ``feedback(c(t))`` (a learned model
    feeding its output back as a token); :func:`write_boundary` combines it with the input ``drive``; the result
    is shifted in as the new start column. Returns (h(t), c(t)).
    """
    computed = boundary(substrate)
    generated = computed if feedback is None else feedback(computed)
    return shift_in(substrate, write_boundary(generated, drive, is_input, input_mode)), computed


def wave_rollout(boundary: Boundary, substrate: torch.Tensor, steps: int) -> torch.Tensor:
    """Autonomous evolution of ``substrate [B, s, d]`` (oldest first): the new start columns h[s](1..steps),
    ``[B, steps, d]``. With h(0) the window x(1..s) of an HDS x(t+1) = f(window) this is x(s+1..s+steps)."""
    check_positive_int("steps", steps)
    out = []
    for _ in range(steps):
        substrate, _ = wave_step(substrate, boundary)
        out.append(substrate[:, -1])
    return torch.stack(out, dim=1)


def wave_windows(columns: torch.Tensor, history: int, length: int) -> torch.Tensor:
    """The substrates h(0), ..., h(length - 1) at once, ``[B, length, s, d]``, when every column is known in advance
    (teacher forcing: the written columns are given, not computed). ``columns [B, s + length - 1 (or more), d]`` is
    h(0) followed by the written columns w(1), w(2), ...; h(t) = (w(t-s+1), ..., w(t)) with w(k <= 0) the columns of
    h(0). A strided view (``Tensor.unfold``): no copy until a boundary reads it."""
    check_positive_int("length", length)
    return columns.unfold(1, history, 1)[:, :length].transpose(-1, -2)
