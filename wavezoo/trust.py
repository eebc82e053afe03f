"""Reading files that come from elsewhere (checkpoints, model folders): nothing in a file runs code or chooses an
import outside ``wavezoo``, and no size a file claims is allocated before it is checked against its tensors.

- :func:`load_tensor_file` is ``torch.load(path, weights_only=True)``: tensors, containers and primitives only. A
  file whose pickle names any other global (a function, a class) is refused with one line, before anything runs.
- :func:`resolve_class` imports a dotted class path only inside the ``wavezoo`` package (the check happens before
  the import), and only a subclass of the expected base.
- :func:`check_model_shapes` builds the claimed model on the ``meta`` device (no memory) and compares its state
  dict shapes with the tensors in the file: a file claiming ``hidden_size=1000000`` beside 16-unit tensors is refused.
- :func:`check_finite` refuses weights with NaN or infinite values (complex ones included).
- :func:`scan_archive` reads a checkpoint's zip directory and its small ``data.pkl`` (stubs for tensors, nothing
  inflated or allocated): compressed, duplicate, unreferenced or mis-sized records are refused before ``torch.load``.
- :func:`check_plain_values` walks hyper-parameters whole: only primitives, lists and dicts, and no key naming a
  class or module outside ``wavezoo`` (``class_path``, ``_class_path``, ``__path__``...), at any depth.

This module imports neither Lightning nor ``wavezoo.lit``: plain-PyTorch loaders use it too.
"""

from __future__ import annotations

import errno
import importlib
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from wavezoo.errors import ConfigError
from wavezoo.registry import build_model, is_model, list_models

TRUSTED_PACKAGE = "wavezoo"
# Lightning's own instantiator of LightningCLI-built modules; any other value in a checkpoint is refused.
TRUSTED_INSTANTIATORS = ("lightning.pytorch.cli.instantiate_module",)
SIZES = ("input_size", "output_size", "hidden_size")
TOKEN_SIZES = ("vocab_size", "embedding_dim")  # optional sizes of a model that reads token ids
# What SequenceTaskModule builds for a key its hyper-parameters leave out (a test checks they agree with its
# signature): a checkpoint without ``model`` claims this architecture, and is checked against it.
LIGHTNING_DEFAULTS = {"model": "elman", "input_size": 1, "output_size": 1, "hidden_size": 128}
MAX_PICKLE_BYTES = 8 << 20  # data.pkl: hyper-parameters and the structure of the containers; tensors live apart
RECORD_FACTOR = 4  # a checkpoint holds the weights and at most three optimizer tensors of the same size each
RECORD_SLACK = 1 << 20  # scalars (steps, scores) and rounding
MAX_DEPTH = 32  # nesting of hyper-parameters
MAX_VALUES = 100_000  # values in hyper-parameters
# keys that name a class, a module or a callable to import: their value must be a class inside wavezoo
CLASS_KEY = re.compile(r"(?i)^_*(class_?path|target|instantiator|callable|import_?path|module_?path|path)_*$")
STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128, "UntypedStorage": torch.uint8,
}  # fmt: skip


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


def check_plain_values(value: Any, where: str, depth: int = 0, budget: list[int] | None = None) -> None:
    """Refuse anything in ``value`` but plain data: ``None``, booleans, numbers, strings, and lists or string-keyed
    dicts of those (at most ``MAX_DEPTH`` deep, ``MAX_VALUES`` values); a key naming a class, module or callable
    (``class_path``, ``_class_path``, ``__path__``, ``_target_``...) must hold a dotted name inside ``wavezoo``,
    at any depth. Nothing is imported."""
    budget = [MAX_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise ConfigError(f"{where} is refused: more than {MAX_VALUES:,} values or {MAX_DEPTH} levels of nesting")
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_plain_values(item, f"{where}[{index}]", depth + 1, budget)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where} is refused: key {short(key)} is not a string")
            if CLASS_KEY.match(key) or (key.startswith("__") and key.endswith("__")):
                check_class_path(item, f"{where}.{key}")
            check_plain_values(item, f"{where}.{key}", depth + 1, budget)
        return
    kind = "a tensor" if isinstance(value, (torch.Tensor, TensorRef)) else f"a {type(value).__name__}"
    raise ConfigError(
        f"{where} is refused: it holds {kind}; hyper-parameters must be plain numbers, strings, lists, dicts"
    )


def check_hyperparameters(
    hparams: Any, source: str, base: type | None = None, import_classes: bool = True
) -> dict[str, Any]:
    """Refuse hyper-parameters that are not plain data (:func:`check_plain_values`, whole), whose ``_class_path``
    leaves ``wavezoo`` (or, when ``import_classes``, is not an importable ``base``) or whose ``_instantiator`` is
    not Lightning's; return them as a dict."""
    if hparams is None:
        return {}
    if not isinstance(hparams, Mapping):
        raise ConfigError(f"{source}: hyper_parameters must be a mapping, got a {type(hparams).__name__}")
    instantiator = hparams.get("_instantiator")
    if instantiator is not None and instantiator not in TRUSTED_INSTANTIATORS:
        expected = TRUSTED_INSTANTIATORS[0]
        raise ConfigError(f"{source}: _instantiator={short(instantiator)} is refused: expected {expected!r}")
    plain = {key: value for key, value in hparams.items() if key != "_instantiator"}
    check_plain_values(plain, f"{source}: hyper_parameters")
    if "_class_path" in hparams:
        what = f"{source}: _class_path"
        if import_classes:
            resolve_class(hparams["_class_path"], base or object, what)
        else:
            check_class_path(hparams["_class_path"], what)
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
    dtypes: Mapping[str, torch.dtype] | None = None,
) -> int:
    """Refuse a file whose claimed architecture does not match its tensors, before anything is allocated; return
    the claimed model's size in bytes.

    The model is built on the ``meta`` device (shapes only) from the claimed ``sizes`` and ``model_kwargs``;
    ``shapes`` (and ``dtypes``, when given) are the file's tensor shapes and dtypes, whose keys carry ``prefix``
    (``"net."`` in a Lightning checkpoint). Every tensor must have its parameter's dtype (no complex or integer
    tensor for float weights).
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
        held = (dtypes or {}).get(prefix + key, tensor.dtype)
        if held != tensor.dtype:
            raise ConfigError(
                f"{source}: {prefix}{key} is {str(held).replace('torch.', '')}, the {family!r} model's parameter is "
                f"{str(tensor.dtype).replace('torch.', '')}; refused"
            )
    return sum(tensor.numel() * tensor.element_size() for tensor in expected.values())


def check_finite(state_dict: Mapping[str, Any], source: str) -> None:
    """Refuse weights holding NaN or infinite values (a diverged run's file)."""
    bad = [
        key
        for key, value in state_dict.items()
        if isinstance(value, torch.Tensor)
        and (value.is_floating_point() or value.is_complex())
        and not bool(torch.isfinite(value).all())
    ]
    if bad:
        raise ConfigError(
            f"{source}: weights with NaN or infinite values in {', '.join(bad[:3])}"
            f"{' and more' if len(bad) > 3 else ''}; refused (the run diverged before this file was written)"
        )


def claimed_spec(hparams: Mapping[str, Any], source: str) -> tuple[str, dict[str, int], dict[str, Any]]:
    """:func:`model_spec` of a LightningModule's hyper-parameters, the keys they leave out taken from
    ``LIGHTNING_DEFAULTS`` (what Lightning would build: the default family is checked too)."""
    return model_spec({**LIGHTNING_DEFAULTS, **hparams}, source)


def check_lightning_checkpoint(
    checkpoint: Any, source: str, base: type | None = None, import_classes: bool = True
) -> dict[str, Any]:
    """Everything wavezoo checks of a loaded Lightning checkpoint before building a model from it: a dict with a
    ``state_dict`` of tensors, plain hyper-parameters with trusted class paths, a claimed architecture (defaults
    included) that fits the tensors' keys, shapes and dtypes, finite weights. ``import_classes=False`` checks the
    class paths without importing them (to build the plain model only, where Lightning may be missing)."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise ConfigError(f"{source} has no 'state_dict': not a Lightning checkpoint of wavezoo")
    hparams = check_hyperparameters(checkpoint.get("hyper_parameters"), source, base, import_classes)
    check_hyperparameters(checkpoint.get("datamodule_hyper_parameters"), source, import_classes=import_classes)
    state = checkpoint["state_dict"]
    family, sizes, kwargs = claimed_spec(hparams, source)
    tensors = {key: value for key, value in state.items() if isinstance(value, (torch.Tensor, TensorRef))}
    if len(tensors) != len(state):
        raise ConfigError(f"{source}: its state_dict holds values that are not tensors; refused")
    outside = sorted(key for key in tensors if not key.startswith("net."))
    if outside:
        raise ConfigError(f"{source}: its state_dict holds unexpected keys {outside[:3]}; refused")
    shapes = {key: tuple(value.shape) for key, value in tensors.items()}
    dtypes = {key: value.dtype for key, value in tensors.items()}
    check_model_shapes(family, sizes, kwargs, shapes, source, prefix="net.", dtypes=dtypes)
    check_finite(state, source)
    return checkpoint


# -- the archive, before torch.load ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageRef:
    """A storage record of a checkpoint archive, as its pickle names it (nothing read)."""

    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor of a checkpoint archive, as its pickle describes it (nothing allocated)."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def dtype(self) -> torch.dtype:
        return self.storage.dtype


def _tensor_ref(storage, offset, size, stride, *args) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("a tensor without a storage record")
    return TensorRef(storage, int(offset), tuple(int(n) for n in size), tuple(int(n) for n in stride))


def _parameter_ref(data, *args) -> TensorRef:
    return data


class _ArchiveScanner(pickle.Unpickler):
    """Reads a checkpoint's ``data.pkl`` into plain containers with :class:`TensorRef` in place of tensors: the
    only globals it resolves are ``OrderedDict`` and stand-ins of its own for torch's tensor and storage rebuilders
    (the restricting-globals recipe of the :mod:`pickle` documentation); anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _tensor_ref
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _parameter_ref
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"GLOBAL {module}.{name}")

    def persistent_load(self, pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("an unknown persistent record")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, torch.dtype) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError("a malformed storage record")
        return StorageRef(str(key), dtype, numel)


@dataclass(frozen=True)
class ArchiveScan:
    """What :func:`scan_archive` found: the checkpoint's structure (tensors as :class:`TensorRef`) and the size of
    each storage record (bytes, from the zip directory)."""

    structure: Any
    records: dict[str, int]


def scan_archive(path: str | os.PathLike, source: str) -> ArchiveScan:
    """A checkpoint archive read from its zip directory and its ``data.pkl`` alone (nothing inflated, no tensor
    allocated): compressed or duplicate records, records that no tensor uses, storages whose record holds another
    byte count than the pickle claims, and views outside their storage are refused with one line."""
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            pickles = [name for name in names if name.endswith("/data.pkl") or name == "data.pkl"]
            if len(pickles) != 1:
                raise ConfigError(f"{source} cannot be read: not a PyTorch checkpoint archive (no single data.pkl)")
            if len(set(names)) != len(names):
                raise ConfigError(f"{source} is refused: its archive holds duplicate records")
            compressed = [info.filename for info in infos if info.compress_type != zipfile.ZIP_STORED]
            if compressed:
                raise ConfigError(
                    f"{source} is refused: record {compressed[0]!r} is compressed (torch.save never compresses; "
                    "refused before inflating anything)"
                )
            prefix = pickles[0][: -len("data.pkl")]
            info = archive.getinfo(pickles[0])
            if info.file_size > MAX_PICKLE_BYTES:
                raise ConfigError(
                    f"{source} is refused: its data.pkl is {info.file_size:,} bytes (at most {MAX_PICKLE_BYTES:,})"
                )
            data = archive.read(pickles[0])
            records = {
                info.filename[len(prefix) + len("data/") :]: info.file_size
                for info in infos
                if info.filename.startswith(prefix + "data/")
            }
    except ConfigError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as err:
        raise ConfigError(f"{source} cannot be read, it is truncated or corrupted ({first_line(err)})") from None
    except OSError as err:
        raise ConfigError(f"{source} cannot be read: {err.strerror or first_line(err)}") from None
    try:
        import io

        structure = _ArchiveScanner(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else f" ({first_line(err)})"
        raise ConfigError(
            f"{source} contains code objects{what}; refused: wavezoo reads checkpoints with "
            "torch.load(weights_only=True), which allows tensors, containers and plain values only"
        ) from None
    except RecursionError:
        raise ConfigError(f"{source} is refused: its data.pkl nests too deep") from None
    except Exception as err:  # a pickle cut short or malformed
        raise ConfigError(f"{source} cannot be read, it is truncated or corrupted ({first_line(err)})") from None
    used = _check_refs(structure, records, source)
    unused = sorted(set(records) - used)
    if unused:
        raise ConfigError(f"{source} is refused: its archive holds records no tensor uses ({unused[:3]})")
    return ArchiveScan(structure, records)


def _tensor_refs(value: Any, depth: int = 0):
    if isinstance(value, TensorRef):
        yield value
    elif depth < 64 and isinstance(value, Mapping):
        for item in value.values():
            yield from _tensor_refs(item, depth + 1)
    elif depth < 64 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensor_refs(item, depth + 1)


def _check_refs(structure: Any, records: Mapping[str, int], source: str) -> set[str]:
    """Check every tensor against its storage record; return the keys of the records used."""
    used: set[str] = set()
    for ref in _tensor_refs(structure):
        storage = ref.storage
        size = records.get(storage.key)
        itemsize = torch.empty((), dtype=storage.dtype, device="meta").element_size()
        if size is None or size != storage.numel * itemsize:
            raise ConfigError(
                f"{source} is refused: storage {storage.key!r} claims {storage.numel:,} {storage.dtype} values, its "
                f"record holds {size if size is not None else 'no'} bytes"
            )
        if any(n < 0 for n in ref.shape) or any(n < 0 for n in ref.stride) or len(ref.shape) != len(ref.stride):
            raise ConfigError(f"{source} is refused: a tensor of storage {storage.key!r} has a malformed shape")
        if all(ref.shape):
            last = ref.offset + sum((n - 1) * step for n, step in zip(ref.shape, ref.stride, strict=True))
            if ref.offset < 0 or last >= storage.numel:
                raise ConfigError(f"{source} is refused: a tensor reaches outside its storage {storage.key!r}")
        used.add(storage.key)
    return used


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", base: type | None = None) -> dict[str, Any]:
    """A wavezoo Lightning checkpoint, checked before a byte of tensor data is read, then read with
    ``weights_only=True`` and checked again (:func:`check_lightning_checkpoint`).

    Before ``torch.load``: :func:`scan_archive`; the hyper-parameters walked whole and the claimed architecture
    (defaults included) built on the ``meta`` device and matched against the ``state_dict``'s keys, shapes and
    dtypes; no record larger than that model, and all records together at most ``RECORD_FACTOR`` times it (the
    weights and their optimizer state) plus ``RECORD_SLACK``."""
    source = f"checkpoint {os.fspath(path)!r}"
    if os.path.isfile(path) and os.path.getsize(path) > 0:
        scan = scan_archive(path, source)
        # hyper-parameters, keys, shapes and dtypes on the stand-ins (finiteness waits for the data)
        structure = check_lightning_checkpoint(scan.structure, source, base, import_classes=False)
        family, sizes, kwargs = claimed_spec(structure.get("hyper_parameters") or {}, source)
        shapes = {key: ref.shape for key, ref in structure["state_dict"].items()}
        model_bytes = check_model_shapes(family, sizes, kwargs, shapes, source, prefix="net.")
        largest = max(scan.records.values(), default=0)
        total = sum(scan.records.values())
        if largest > model_bytes + RECORD_SLACK or total > RECORD_FACTOR * model_bytes + RECORD_SLACK:
            raise ConfigError(
                f"{source} is refused: its records hold {total:,} bytes (largest {largest:,}), more than its "
                f"{family!r} model of {model_bytes:,} bytes and its optimizer state can; refused before reading them"
            )
    return check_lightning_checkpoint(load_tensor_file(path, map_location), source, base)


def net_from_checkpoint(checkpoint: Mapping[str, Any], source: str) -> torch.nn.Module:
    """The plain zoo model inside a checkpoint that :func:`check_lightning_checkpoint` accepted: built from its
    hyper-parameters and loaded with its ``net.`` weights (a token model's embedding included), in eval mode (no
    Lightning needed)."""
    family, sizes, kwargs = claimed_spec(checkpoint.get("hyper_parameters") or {}, source)
    net = build_model(family, **sizes, **kwargs)
    net.load_state_dict({k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")})
    return net.eval()
