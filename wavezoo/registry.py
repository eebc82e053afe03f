"""Model registry in the style of timm: ``@register_model`` builders, ``list_models``, ``create_model``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from torch import nn

from wavezoo.errors import ConfigError

ModelBuilder = Callable[..., nn.Module]
_MODELS: dict[str, ModelBuilder] = {}


def register_model(fn: ModelBuilder) -> ModelBuilder:
    """Register a model builder under its function name (``elman``, ``lstm``, ...)."""
    name = fn.__name__
    if name in _MODELS:
        raise RuntimeError(f"model {name!r} is registered twice")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a shell-style ``pattern`` (``"twm_*"``)."""
    names = sorted(_MODELS)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def is_model(name: str) -> bool:
    return name in _MODELS


def create_model(
    name: str,
    *,
    input_size: int,
    output_size: int,
    hidden_size: int = 128,
    pretrained: bool = False,
    **family_kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Every model obeys the zoo contract: a plain batch-first ``nn.Module`` with
    ``forward(x: [batch, time, input_size]) -> [batch, time, output_size]``. ``hidden_size`` is the number of
    recurrent state units; each family documents how its own shape parameters map to it.
    """
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    if pretrained:
        raise ConfigError(
            f"no published pretrained weights for model {name!r} in this version of wavezoo; "
            "use pretrained=False and train it with `wavezoo fit`"
        )
    try:
        return _MODELS[name](input_size=input_size, output_size=output_size, hidden_size=hidden_size, **family_kwargs)
    except TypeError as err:  # an unknown family keyword: name it instead of a bare signature error
        if "unexpected keyword argument" in str(err) or "multiple values" in str(err):
            raise ConfigError(f"model {name!r}: {err}") from None
        raise
