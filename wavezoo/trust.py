"""Reading files that come from elsewhere (checkpoints, model folders): nothing in a file runs code or chooses an
import outside ``wavezoo``, and no size a file claims is allocated before it is checked against its tensors.

- :func:`load_tensor_file` is ``torch.load(path, weights_only=True)``: tensors, containers and primitives only. A
  file whose pickle names any other global (a function, a class) is refused with one line, before anything runs.
- :func:`resolve_class` imports a dotted class path only inside the ``wavezoo`` package (the check happens before
  the import), and only a subclass of the expected base.
- :func:`check_model_shapes` builds the claimed model on the ``meta`` device (no memory) and compares its state
  dict shapes with the tensors in the file: a file claiming ``hidden_size=1000000`` beside 16-unit tensors is refused.
- :func:`check_finite` refuses weights with NaN or infinite values.

This module imports neither Lightning nor ``wavezoo.lit``: plain-PyTorch loaders use it too.
"""

from __future__ import annotations

import errno
import importlib
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from wavezoo.errors import ConfigError
from wavezoo.registry import build_model, is_model, list_models

TRUSTED_PACKAGE = "wavezoo"
# Lightning's own instantiator of LightningCLI-built modules; any other value in a checkpoint is refused.
TRUSTED_INSTANTIATORS = ("lightning.pytorch.cli.instantiate_module",)
SIZES = ("input_size", "output_size", "hidden_size")
TOKEN_SIZES = ("vocab_size", "embedding_dim")  # optional sizes of a model that reads token ids


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (values from a file can be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_line(err: BaseException) -> str:
    """The first informative line of an exception (never empty)."""
    text = str(err).strip()
    line = text.splitlines()[0].split(". ")[0][:160] if text else ""
    return line or type(err).__name__


def load_tensor_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors for a missing, empty, truncated or corrupted
    file, and for a file whose pickle holds code (functions, classes, ``__reduce__`` tricks)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"checkpoint {path!r} does not exist; expected the path of a .ckpt file")
    if os.path.getsize(path) == 0:
        raise ConfigError(f"checkpoint {path!r} is an empty file (0 bytes); expected a PyTorch checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # the weights-only unpickler met a global it does not allow
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise ConfigError(
            f"checkpoint {path!r} contains code objects{what}; refused: wavezoo reads checkpoints with "
            "torch.load(weights_only=True), which allows tensors, containers and plain values only"
        ) from None
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EISDIR):
            raise ConfigError(f"checkpoint {path!r} cannot be read: {err.strerror}") from None
        reason = first_line(err)
    except Exception as err:  # zip/EOF/format errors: the file is not a whole PyTorch checkpoint
        reason = first_line(err)
    raise ConfigError(f"checkpoint {path!r} cannot be read, it is truncated or corrupted ({reason})")


def check_class_path(path: Any, what: str) -> str:
    """``path`` if it is a dotted name inside the ``wavezoo`` package (nothing is imported), else a one-line
    :class:`ConfigError`."""
    if not isinstance(path, str) or not re.fullmatch(rf"{TRUSTED_PACKAGE}(\.\w+)+", path):
        raise ConfigError(
            f"{what} {short(path)} is refused: class paths in data files must name a class inside the "
            f"{TRUSTED_PACKAGE} package (e.g. 'wavezoo.lit.SequenceRegression')"
        )
    return path


def resolve_class(path: Any, base: type, what: str) -> type:
    """The class at the dotted ``path``, which must lie inside the ``wavezoo`` package (checked before anything
    is imported) and be a subclass of ``base``."""
    module_name, _, attr = check_class_path(path, what).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise ConfigError(f"{what} {path!r} cannot be imported") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{what} {path!r} is not a {base.__name__}")
    return cls


def check_hyperparameters(
    hparams: Any, source: str, base: type | None = None, import_classes: bool = True
) -> dict[str, Any]:
    """Refuse hyper-parameters whose ``_class_path`` leaves ``wavezoo`` (or, when ``import_classes``, is not an
    importable ``base``) or whose ``_instantiator`` is not Lightning's; return them as a dict."""
    if hparams is None:
        return {}
    if not isinstance(hparams, Mapping):
        raise ConfigError(f"{source}: hyper_parameters must be a mapping, got a {type(hparams).__name__}")
    if "_class_path" in hparams:
        what = f"{source}: _class_path"
        if import_classes:
            resolve_class(hparams["_class_path"], base or object, what)
        else:
            check_class_path(hparams["_class_path"], what)
    instantiator = hparams.get("_instantiator")
    if instantiator is not None and instantiator not in TRUSTED_INSTANTIATORS:
        expected = TRUSTED_INSTANTIATORS[0]
        raise ConfigError(f"{source}: _instantiator={short(instantiator)} is refused: expected {expected!r}")
    return dict(hparams)


def model_spec(
    hparams: Mapping[str, Any], source: str, family_key: str = "model", sizes_key: str | None = None
) -> tuple[str, dict[str, int], dict[str, Any]]:
    """(family, sizes, family keyword arguments) recorded in a file, each checked: a registered family, three sizes
    that are integers >= 1 (and ``vocab_size`` / ``embedding_dim`` of a token model, each an integer >= 1 where
    given), and keyword arguments that are a mapping without sizes or ``pretrained``.

    A LightningModule's hyper-parameters hold ``model`` and the sizes at the top level; a ``config.json`` of
    :func:`~wavezoo.save_pretrained` holds ``family`` and a ``sizes`` object (``family_key="family"``,
    ``sizes_key="sizes"``). Messages name the field as the file spells it."""
    family = hparams.get(family_key)
    if not isinstance(family, str) or not is_model(family):
        valid = ", ".join(list_models())
        raise ConfigError(f"{source}: {family_key}={short(family)} is invalid: expected one of {valid}")
    found = hparams.get(sizes_key) if sizes_key else hparams
    prefix = f"{sizes_key}." if sizes_key else ""
    if not isinstance(found, Mapping):
        raise ConfigError(f"{source}: {sizes_key}={short(found)} is invalid: expected an object of {', '.join(SIZES)}")
    sizes = {key: found.get(key) for key in SIZES}
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{source}: {prefix}{key}={short(value)} is invalid: expected an integer >= 1")
    kwargs = hparams.get("model_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"{source}: model_kwargs={short(kwargs)} is invalid: expected an object of family options")
    for key in ("pretrained", *SIZES, *TOKEN_SIZES):
        if key in kwargs:
            raise ConfigError(f"{source}: model_kwargs.{key} is refused: sizes and weights are not family options")
    for key in TOKEN_SIZES:
        value = found.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{source}: {prefix}{key}={short(value)} is invalid: expected an integer >= 1")
            sizes[key] = value
    return family, sizes, dict(kwargs)


def check_model_shapes(
    family: str,
    sizes: Mapping[str, Any],
    model_kwargs: Mapping[str, Any],
    shapes: Mapping[str, Sequence[int]],
    source: str,
    prefix: str = "",
) -> None:
    """Refuse a file whose claimed architecture does not match its tensors, before anything is allocated.

    The model is built on the ``meta`` device (shapes only) from the claimed ``sizes`` and ``model_kwargs``;
    ``shapes`` are the file's tensor shapes, whose keys carry ``prefix`` (``"net."`` in a Lightning checkpoint).
    """
    try:
        with torch.device("meta"):
            expected = build_model(family, **sizes, **model_kwargs).state_dict()
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:  # sizes past what torch can even describe
        raise ConfigError(f"{source}: the {family!r} model it claims cannot be built ({first_line(err)})") from None
    found = {key[len(prefix) :]: tuple(shape) for key, shape in shapes.items() if key.startswith(prefix)}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    claimed = ", ".join(f"{k}={v}" for k, v in {**sizes, **model_kwargs}.items())
    if missing or unexpected:
        raise ConfigError(
            f"{source}: its tensors do not fit the {family!r} model it claims ({claimed}): missing "
            f"{missing[:3] or 'none'}, unexpected {unexpected[:3] or 'none'}"
        )
    for key, tensor in expected.items():
        if tuple(tensor.shape) != found[key]:
            raise ConfigError(
                f"{source}: the {family!r} model it claims ({claimed}) has {prefix}{key} of shape "
                f"{tuple(tensor.shape)}, the file holds {found[key]}; refused before allocating"
            )


def check_finite(state_dict: Mapping[str, Any], source: str) -> None:
    """Refuse weights holding NaN or infinite values (a diverged run's file)."""
    bad = [
        key
        for key, value in state_dict.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if bad:
        raise ConfigError(
            f"{source}: weights with NaN or infinite values in {', '.join(bad[:3])}"
            f"{' and more' if len(bad) > 3 else ''}; refused (the run diverged before this file was written)"
        )


def check_lightning_checkpoint(
    checkpoint: Any, source: str, base: type | None = None, import_classes: bool = True
) -> dict[str, Any]:
    """Everything wavezoo checks of a loaded Lightning checkpoint before building a model from it: a dict with a
    ``state_dict`` of tensors, trusted class paths, a claimed architecture that fits the tensors, finite weights.
    ``import_classes=False`` checks the class paths without importing them (to build the plain model only, where
    Lightning may be missing)."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise ConfigError(f"{source} has no 'state_dict': not a Lightning checkpoint of wavezoo")
    hparams = check_hyperparameters(checkpoint.get("hyper_parameters"), source, base, import_classes)
    check_hyperparameters(checkpoint.get("datamodule_hyper_parameters"), source, import_classes=import_classes)
    state = checkpoint["state_dict"]
    if "model" in hparams:
        family, sizes, kwargs = model_spec(hparams, source)
        shapes = {key: tuple(value.shape) for key, value in state.items() if isinstance(value, torch.Tensor)}
        check_model_shapes(family, sizes, kwargs, shapes, source, prefix="net.")
    check_finite(state, source)
    return checkpoint


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", base: type | None = None) -> dict[str, Any]:
    """A wavezoo Lightning checkpoint read with ``weights_only=True``, checked by :func:`check_lightning_checkpoint`."""
    return check_lightning_checkpoint(load_tensor_file(path, map_location), f"checkpoint {os.fspath(path)!r}", base)


def net_from_checkpoint(checkpoint: Mapping[str, Any], source: str) -> torch.nn.Module:
    """The plain zoo model inside a checkpoint that :func:`check_lightning_checkpoint` accepted: built from its
    hyper-parameters and loaded with its ``net.`` weights (a token model's embedding included), in eval mode (no
    Lightning needed)."""
    family, sizes, kwargs = model_spec(checkpoint.get("hyper_parameters") or {}, source)
    net = build_model(family, **sizes, **kwargs)
    net.load_state_dict({k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")})
    return net.eval()
