"""Errors raised for user mistakes.

Every user-facing check raises :class:`ConfigError` (a ``ValueError``) with a one-line message that names the bad
value and what is allowed; the command line prints that line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class WavezooError(ValueError):
    """Base of the errors the command line reports as one line (``wavezoo: error: ...``)."""


class ConfigError(WavezooError):
    """A user-supplied value is invalid (bad name, size, shape, path...)."""


class TrainingDiverged(WavezooError):
    """The training loss became NaN or infinite."""


class ChecksumError(WavezooError):
    """A published checkpoint file does not have the sha256 recorded in the weights table
    (:mod:`wavezoo.pretrained.weights`)."""


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum``, else raise a :class:`ConfigError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid: expected an integer >= {minimum}")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a :class:`ConfigError` listing the choices."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is invalid: expected one of {', '.join(map(repr, allowed))}")
    return value


def check_positive_float(name: str, value: Any, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is > 0 (or >= 0 with ``allow_zero``), else raise a :class:`ConfigError`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0) and value == value and value != float("inf")
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}={value!r} is invalid: expected a finite number {bound}")
    return float(value)
