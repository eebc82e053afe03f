"""Model registry in the style of timm: ``@register_model`` builders, ``list_models``, ``build_model`` (fresh weights;
``wavezoo.create_model`` in :mod:`wavezoo.factory` adds the published weights)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from torch import nn

from wavezoo.errors import ConfigError, check_positive_int

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


def build_model(
    name: str,
    input_size: int | None,
    output_size: int | None,
    hidden_size: int | None = None,
    vocab_size: int | None = None,
    embedding_dim: int | None = None,
    **family_kwargs: Any,
) -> nn.Module:
    """A freshly initialised registered model (``create_model`` without ``pretrained``; see
    :func:`wavezoo.factory.create_model`). Only the arguments given are passed to the family's builder; the model's
    ``wavezoo_config`` attribute records how it was built.

    With ``vocab_size`` the model reads token ids (``SequenceModel.add_token_embedding``): the family is built with
    ``embedding_dim`` input features (default ``hidden_size``, the model's width, as the recall papers embed tokens
    to their model dimension) and ``input_size`` is not used (a DataModule of token ids reports its vocabulary as
    its one-hot ``input_size``)."""
    if name not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    if vocab_size is None and embedding_dim is not None:
        raise ConfigError(
            f"embedding_dim={embedding_dim!r} is invalid without vocab_size: the embedding reads token ids; set "
            "vocab_size too, or leave embedding_dim out for float inputs"
        )
    if vocab_size is not None:
        check_positive_int("vocab_size", vocab_size)
        embedding_dim = embedding_dim if embedding_dim is not None else hidden_size
        if embedding_dim is None:
            raise ConfigError(f"create_model({name!r}, vocab_size=...) needs embedding_dim or hidden_size")
        input_size = check_positive_int("embedding_dim", embedding_dim)
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
    sizes = {**given, "hidden_size": model.hidden_size}
    if vocab_size is not None:
        model.add_token_embedding(vocab_size)
        sizes.update(vocab_size=vocab_size, embedding_dim=input_size)
    # How to rebuild it (save_pretrained, checkpoints): a plain attribute, not part of the state dict.
    model.wavezoo_config = {"family": name, "sizes": sizes, "model_kwargs": dict(family_kwargs)}
    return model
