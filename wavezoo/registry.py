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
    input_size: int | None = None,
    output_size: int | None = None,
    hidden_size: int | None = None,
    pretrained: bool | str = False,
    **family_kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Every model obeys the zoo contract: a plain batch-first ``nn.Module`` with
    ``forward(x: [batch, time, input_size]) -> [batch, time, output_size]`` and the streaming form
    ``initial_state`` / ``step`` (:class:`~wavezoo.models.base.SequenceModel`). ``hidden_size`` is the number of
    recurrent state units; left out, the family's own default is used (see ``help(wavezoo.models.<family>)``).
    Only the arguments given are passed to the family's builder.

    ``pretrained=True`` loads the one published checkpoint of this family (``wavezoo.list_pretrained()``),
    ``pretrained="<checkpoint name>"`` a named one, in eval mode; sizes and keywords then come from the checkpoint
    (any also given must agree with it). The model's ``wavezoo_config`` attribute records how it was built.
    """
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    if pretrained:
        from wavezoo.pretrained.loading import pretrained_model

        given = {"input_size": input_size, "output_size": output_size, "hidden_size": hidden_size}
        given = {k: v for k, v in given.items() if v is not None}
        return pretrained_model(name, pretrained, {**given, **family_kwargs})
    if input_size is None or output_size is None:
        raise ConfigError(f"create_model({name!r}) needs input_size and output_size (or pretrained=...)")
    given = {"input_size": input_size, "output_size": output_size}
    if hidden_size is not None:  # else the family's own default (each builder documents it)
        given["hidden_size"] = hidden_size
    try:
        model = _MODELS[name](**given, **family_kwargs)
    except TypeError as err:  # an unknown family keyword: name it instead of a bare signature error
        if "unexpected keyword argument" in str(err) or "multiple values" in str(err):
            raise ConfigError(f"model {name!r}: {err}") from None
        raise
    # How to rebuild it (save_pretrained, checkpoints): a plain attribute, not part of the state dict.
    sizes = {**given, "hidden_size": model.hidden_size}
    model.wavezoo_config = {"family": name, "sizes": sizes, "model_kwargs": dict(family_kwargs)}
    return model
