"""What the fused Triton scans share: triton as an optional import, kernels jitted for the current interpreter
setting, and the choice between a fused scan and its reference path.

Triton reads ``TRITON_INTERPRET`` when a function is wrapped by ``triton.jit``: :func:`jitted` wraps the plain
kernel functions on first use and keeps one pair per setting, so the tests can run the same kernels on the CPU
(``TRITON_INTERPRET=1``, set before triton is imported) and a GPU compiles them natively. Every scan chooses its
backend the same way (:func:`choose_backend`): ``auto`` is the fused scan on CUDA when triton is installed and the
input is float32, bfloat16 or float16 (the kernels accumulate in fp32, so float64 stays on the reference), the
reference path otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from wavezoo.errors import ConfigError, check_choice

try:  # triton is an optional dependency (torch's CUDA wheels bring it)
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is missing
    triton = tl = None

BACKENDS = ("auto", "reference", "triton")
_JITTED: dict[tuple, tuple] = {}


def available() -> bool:
    """Whether triton can be imported."""
    return triton is not None


def jitted(forward: Callable, backward: Callable, what: str) -> tuple:
    """``(forward, backward)`` wrapped by ``triton.jit`` for the current ``TRITON_INTERPRET``, with one compile for
    every length ``T`` and batch size ``B`` (``do_not_specialize``)."""
    if triton is None:
        raise RuntimeError(f"{what} needs the triton package (pip install triton)")
    key = (forward, backward, os.environ.get("TRITON_INTERPRET", "0") == "1")
    if key not in _JITTED:
        fixed = {"do_not_specialize": ["T", "B"]}
        _JITTED[key] = (triton.jit(forward, **fixed), triton.jit(backward, **fixed))
    return _JITTED[key]


def choose_backend(x: torch.Tensor, backend: str | None, variable: str, what: str) -> str:
    """``"triton"`` or ``"reference"`` for input ``x``: ``backend`` if given, else the environment ``variable``,
    else ``"auto"`` (see the module docstring). Forcing ``"triton"`` with float64 is a one-line error."""
    name = backend if backend is not None else os.environ.get(variable, "auto")
    name = check_choice(what, name, BACKENDS)
    if name == "auto":
        return "triton" if x.is_cuda and x.dtype != torch.float64 and available() else "reference"
    if name == "triton" and x.dtype == torch.float64:
        raise ConfigError(f"{variable}='triton' computes in float32: float64 inputs need 'reference' or 'auto'")
    return name
