"""The checkpoint manifest: ``checkpoints/manifest.json``, one entry per published checkpoint.

An entry is first a *recipe* (how to train it: ``source_config``, ``overrides``, ``seed``, ``max_steps``); the
retraining script (``scripts/train_checkpoints.py``) adds what it measured (``file``, ``sha256``, ``metrics``...).
Only entries with measured fields are *published* (loadable). See ``checkpoints/README.md`` for the schema.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wavezoo.errors import ConfigError

MANIFEST_ENV = "WAVEZOO_CHECKPOINTS"  # a folder holding manifest.json, or the path of a manifest file
CACHE_ENV = "WAVEZOO_CACHE"  # where checkpoints with a ``url`` are downloaded (default: <torch hub dir>/wavezoo)
MANIFEST_NAME = "manifest.json"
FORMAT = 1

RECIPE_FIELDS = ("name", "task", "source_config", "overrides", "seed", "max_steps")
RUN_FIELDS = ("family", "lit_class", "sizes", "model_kwargs", "datamodule")  # (re)written from the resolved run
MEASURED_FIELDS = (
    "file",
    "config",
    "command",
    "wall_s",
    "metrics",
    "parameters",
    "sha256",
    "size_bytes",
    "wavezoo_version",
    "torch_version",
    "created",
)
_ORDER = (*RECIPE_FIELDS, *RUN_FIELDS, "url", *MEASURED_FIELDS)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = {"create_model", "dependencies"}  # names taken in hubconf.py


def repo_root() -> Path:
    """The folder above the package (the repository root of an editable install)."""
    return Path(__file__).resolve().parents[2]


def manifest_path(manifest: str | os.PathLike | None = None) -> Path:
    """The manifest file: ``manifest`` if given, else ``$WAVEZOO_CHECKPOINTS``, else ``<repo>/checkpoints``.

    A folder stands for the ``manifest.json`` inside it."""
    chosen = manifest if manifest is not None else os.environ.get(MANIFEST_ENV) or None
    path = Path(chosen).expanduser() if chosen is not None else repo_root() / "checkpoints"
    return path if path.suffix == ".json" and not path.is_dir() else path / MANIFEST_NAME


def is_published(entry: dict[str, Any]) -> bool:
    """Whether the entry has its measured fields (a trained, loadable checkpoint), not only a recipe."""
    return entry.get("sha256") is not None


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: ``path`` of the file, ``entries`` in file order (file paths are relative to ``folder``)."""

    path: Path
    entries: list[dict[str, Any]]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def names(self, *, published_only: bool = False) -> list[str]:
        return [e["name"] for e in self.entries if is_published(e) or not published_only]

    def published(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if is_published(e)]

    def get(self, name: str) -> dict[str, Any]:
        """A copy of the entry ``name``; an unknown name raises a :class:`ConfigError` with the close matches."""
        for entry in self.entries:
            if entry["name"] == name:
                return copy.deepcopy(entry)
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        listed = ", ".join(names) if names else f"none ({self.path} has no entries)"
        raise ConfigError(f"unknown pretrained checkpoint {name!r}; {hint}available: {listed}")


def _check_entry(entry: Any, index: int, path: Path) -> dict[str, Any]:
    where = f"{path}: entry {index}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is a {type(entry).__name__}; expected an object")
    missing = [f for f in RECIPE_FIELDS if f not in entry]
    if missing:
        raise ConfigError(f"{where} ({entry.get('name', '?')}) lacks the recipe fields {missing}")
    name = entry["name"]
    if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED:
        raise ConfigError(f"{where}: name={name!r} is invalid: expected lower-case letters, digits and '_'")
    overrides = entry["overrides"]
    if not isinstance(overrides, list) or not all(isinstance(a, str) for a in overrides):
        raise ConfigError(f"{where} ({name}): overrides={overrides!r} is invalid: expected a list of strings")
    if isinstance(entry["seed"], bool) or not isinstance(entry["seed"], int):
        raise ConfigError(f"{where} ({name}): seed={entry['seed']!r} is invalid: expected an integer")
    steps = entry["max_steps"]
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"{where} ({name}): max_steps={steps!r} is invalid: expected an integer >= 1 or null")
    if is_published(entry):
        missing = [f for f in (*MEASURED_FIELDS, *RUN_FIELDS) if entry.get(f) is None and f != "model_kwargs"]
        if missing:
            raise ConfigError(f"{where} ({name}) has a sha256 but lacks the measured fields {missing}")
    return entry


def read_manifest(manifest: str | os.PathLike | None = None) -> Manifest:
    """Parse and check the manifest (see :func:`manifest_path`). A missing file is an empty manifest."""
    path = manifest_path(manifest)
    if not path.is_file():
        return Manifest(path, [])
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"checkpoint manifest {path} cannot be read: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), list):
        raise ConfigError(f"checkpoint manifest {path} is invalid: expected an object with a 'checkpoints' list")
    if data.get("format", FORMAT) != FORMAT:
        raise ConfigError(f"checkpoint manifest {path} has format {data['format']!r}; this wavezoo reads {FORMAT}")
    entries = [_check_entry(e, i, path) for i, e in enumerate(data["checkpoints"])]
    names = [e["name"] for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"checkpoint manifest {path} lists {twice} more than once")
    return Manifest(path, entries)


def ordered_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its fields in the documented order (unknown fields last, kept)."""
    known = {k: entry[k] for k in _ORDER if k in entry}
    return {**known, **{k: v for k, v in entry.items() if k not in known}}


def _dumps(value: Any, indent: int = 0) -> str:
    """JSON with objects one key a line and lists of plain values on one line (short diffs)."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(f"{inner}{_dumps(v, indent + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value)


def readable(path: str | os.PathLike) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the usual mode of a new file (0644 under umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_manifest(path: str | os.PathLike, entries: list[dict[str, Any]], about: str | None = None) -> None:
    """Write a manifest atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    data = {
        "format": FORMAT,
        "about": about or previous.get("about") or "Published wavezoo checkpoints; see checkpoints/README.md.",
        "checkpoints": [ordered_entry(e) for e in entries],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as fh:
            fh.write(_dumps(data) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def update_entry(path: str | os.PathLike, entry: dict[str, Any]) -> None:
    """Re-read the manifest at ``path`` and replace the entry of the same name by ``entry``, atomically."""
    current = read_manifest(path)
    entries = [entry if e["name"] == entry["name"] else e for e in current.entries]
    if entry["name"] not in current.names():
        entries.append(entry)
    write_manifest(current.path, entries)
