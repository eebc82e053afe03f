"""Hugging Face-style model folders: ``config.json`` + ``model.safetensors`` + a generated ``README.md`` model card."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wavezoo.errors import ConfigError
from wavezoo.registry import build_model
from wavezoo.trust import check_finite, check_model_shapes, first_line, model_spec, resolve_class, short

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FOLDER_FORMAT = 1


def _split(model_or_module: nn.Module) -> tuple[nn.Module, dict[str, Any] | None]:
    """The zoo model and, for a wavezoo LightningModule, its class path and hyper-parameters."""
    net = getattr(model_or_module, "net", None)
    if isinstance(net, nn.Module) and hasattr(model_or_module, "hparams"):
        cls = type(model_or_module)
        hparams = {k: v for k, v in dict(model_or_module.hparams).items() if not k.startswith("_")}
        return net, {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": hparams}
    return model_or_module, None


def _config(model_or_module: nn.Module, metrics, task, name, command) -> tuple[nn.Module, dict[str, Any]]:
    import wavezoo

    net, lightning = _split(model_or_module)
    built = getattr(net, "wavezoo_config", None)
    if not isinstance(built, dict) or "family" not in built:
        raise ConfigError(
            f"save_pretrained needs a model built by wavezoo.create_model or a wavezoo LightningModule, "
            f"got a {type(model_or_module).__name__}"
        )
    config = {
        "format": FOLDER_FORMAT,
        "library_name": "wavezoo",
        "name": name or built.get("pretrained") or built["family"],
        "family": built["family"],
        "sizes": built["sizes"],
        "model_kwargs": built.get("model_kwargs") or {},
        "parameters": sum(p.numel() for p in net.parameters()),
        "task": task if task is not None else built.get("task"),
        "metrics": {k: float(v) for k, v in (metrics if metrics is not None else built.get("metrics") or {}).items()},
        "command": command if command is not None else built.get("command"),
        "lightning": lightning,
        "wavezoo_version": wavezoo.__version__,
        "torch_version": torch.__version__,
    }
    return net, config


def model_card(config: dict[str, Any], load_from: str) -> str:
    """The ``README.md`` of a model folder: description, how to load, metrics table, training command."""
    sizes = ", ".join(f"{k}={v}" for k, v in config["sizes"].items())
    kwargs = ", ".join(f"{k}={v!r}" for k, v in config["model_kwargs"].items()) or "none"
    lines = [
        "---",
        "library_name: wavezoo",
        f"tags: [wavezoo, pytorch, traveling-waves, working-memory, {config['family']}]",
        "---",
        "",
        f"# {config['name']}",
        "",
        f"A wavezoo model of family `{config['family']}` (wavezoo: the model zoo of traveling-wave working memory, "
        "Karuvally, Sejnowski, Siegelmann, ICML 2024, arXiv 2402.10163): a batch-first `nn.Module`, "
        "`[batch, time, input_size] -> [batch, time, output_size]`.",
        "",
        f"- task: {config['task'] or 'not recorded'}",
        f"- architecture: `{config['family']}` with {sizes}; family options: {kwargs}",
        f"- parameters: {config['parameters']:,}",
        f"- wavezoo {config['wavezoo_version']}, torch {config['torch_version']}",
        "",
        "## How to load",
        "",
        "```python",
        "import wavezoo",
        "",
        f'model = wavezoo.from_pretrained("{load_from}")  # eval mode; lightning=True for the LightningModule',
        "```",
        "",
        "## Metrics",
        "",
    ]
    if config["metrics"]:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {key} | {format_metric(value)} |" for key, value in config["metrics"].items()]
    else:
        lines.append("No metrics recorded.")
    lines += ["", "## Training", ""]
    if config["command"]:
        lines += ["```bash", config["command"], "```"]
    else:
        lines.append("Training command not recorded.")
    return "\n".join(lines) + "\n"


def format_metric(value: float) -> str:
    return f"{value:.6g}"


def save_pretrained(
    model_or_module: nn.Module,
    folder: str | os.PathLike,
    *,
    metrics: dict[str, float] | None = None,
    task: str | None = None,
    name: str | None = None,
    command: str | None = None,
    load_from: str | None = None,
) -> Path:
    """Write ``folder/config.json``, ``model.safetensors`` and a ``README.md`` model card.

    ``model_or_module``: a model of ``wavezoo.create_model`` / ``load_pretrained`` or a wavezoo LightningModule
    (whose class and hyper-parameters are kept, for ``from_pretrained(..., lightning=True)``). ``metrics``,
    ``task`` and ``command`` default to those of the published checkpoint the model was loaded from.
    """
    from safetensors.torch import save_model

    net, config = _config(model_or_module, metrics, task, name, command)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(net, os.fspath(folder / WEIGHTS_NAME), metadata={"format": "pt", "family": config["family"]})
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    # the card travels with the folder: never a path of this machine in it
    (folder / CARD_NAME).write_text(model_card(config, load_from or f"path/to/{folder.resolve().name}"))
    return folder


def _local_folder(folder_or_repo: str | os.PathLike, revision: str | None, token: str | None) -> Path:
    path = Path(folder_or_repo).expanduser()
    if path.is_dir():
        return path
    text = os.fspath(folder_or_repo)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise ConfigError(f"model folder {text!r} does not exist; expected a folder of save_pretrained")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError(
            f"{text!r} is no local folder and huggingface_hub is not installed to download it: "
            "pip install huggingface_hub"
        ) from None
    return Path(snapshot_download(text, revision=revision, token=token, library_name="wavezoo"))


CONFIG_MAX_BYTES = 1 << 20  # a config.json of save_pretrained is a few KB


def _read_config(path: Path) -> dict[str, Any]:
    """``config.json`` as a dict, with one-line errors naming the file and the bad field; nothing it names is
    imported or built here."""
    try:
        size = path.stat().st_size
        if size > CONFIG_MAX_BYTES:
            raise ConfigError(f"{path} is invalid: {size:,} bytes, more than a wavezoo config.json can be; refused")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is missing or invalid ({first_line(err)}): not a wavezoo model folder") from None
    try:
        config = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{path} is invalid: not JSON ({first_line(err)}); not a wavezoo model folder") from None
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path} is invalid: expected a JSON object, got a {type(config).__name__}; not a wavezoo model folder"
        )
    config["family"], config["sizes"], config["model_kwargs"] = model_spec(config, str(path), "family", "sizes")
    for key in ("name", "task", "command"):
        if config.get(key) is not None and not isinstance(config[key], str):
            raise ConfigError(f"{path}: {key}={short(config[key])} is invalid: expected a string or null")
    metrics = config.get("metrics")
    if metrics is not None and not (
        isinstance(metrics, dict)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
    ):
        raise ConfigError(f"{path}: metrics={short(metrics)} is invalid: expected an object of numbers")
    return config


def _tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors of a safetensors file, read from its header only (no tensor data)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ConfigError(f"{path} is missing: not a wavezoo model folder")
    try:
        with safe_open(os.fspath(path), "pt") as file:  # the header only: get_slice reads no tensor data
            return {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"{path} is truncated or corrupted ({first_line(err)}); refused") from None


def _lightning_class(config: dict[str, Any], shapes, source: str) -> tuple[type, dict[str, Any]]:
    """The LightningModule class and keyword arguments recorded in ``config.json``, checked against the tensors
    (class inside wavezoo, claimed architecture fits the file) before anything is instantiated."""
    from wavezoo.lit import SequenceTaskModule

    spec = config["lightning"]
    if not isinstance(spec, dict) or not isinstance(spec.get("init_args"), dict):
        raise ConfigError(
            f"{source}: lightning={short(spec)} is invalid: expected {{'class_path': ..., 'init_args': {{...}}}}"
        )
    cls = resolve_class(spec.get("class_path"), SequenceTaskModule, f"{source}: lightning.class_path")
    init_args = spec["init_args"]
    family, sizes, kwargs = model_spec(init_args, f"{source}: lightning.init_args")
    check_model_shapes(family, sizes, kwargs, shapes, f"{source}: lightning.init_args")
    return cls, init_args


def from_pretrained(
    folder_or_repo: str | os.PathLike,
    *,
    lightning: bool = False,
    map_location: str = "cpu",
    revision: str | None = None,
    token: str | None = None,
) -> nn.Module:
    """Rebuild a model written by :func:`save_pretrained` (a local folder, or a Hugging Face Hub repo id
    ``"owner/name"``), in eval mode; ``lightning=True`` gives its LightningModule when the folder records one.

    The folder is untrusted data: ``config.json`` is validated field by field, a LightningModule class must lie
    inside ``wavezoo``, the claimed architecture is compared with the tensor shapes of the safetensors header before
    any model is built (a config claiming ``hidden_size=1000000`` beside 16-unit tensors allocates nothing), and
    weights with NaN or infinite values are refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model


    folder = _local_folder(folder_or_repo, revision, token)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    config = _read_config(config_path)
    family, sizes, kwargs = config["family"], config["sizes"], config["model_kwargs"]
    shapes = _tensor_shapes(weights_path)
    check_model_shapes(family, sizes, kwargs, shapes, f"{config_path} (with {WEIGHTS_NAME})")
    if lightning:
        if not config.get("lightning"):
            raise ConfigError(f"{folder} holds a bare model, not a LightningModule; use lightning=False")
        cls, init_args = _lightning_class(config, shapes, f"{config_path} (with {WEIGHTS_NAME})")
        try:
            module = cls(**init_args)
        except ConfigError as err:
            raise ConfigError(f"{config_path}: lightning.init_args: {err}") from None
        except TypeError as err:
            raise ConfigError(f"{config_path}: lightning.init_args is invalid ({first_line(err)})") from None
        net = module.net
    else:
        try:
            module = net = build_model(family, **sizes, **kwargs)
        except ConfigError as err:
            raise ConfigError(f"{config_path}: {err}") from None
    try:
        load_model(net, weights_path, strict=True, device=str(map_location))
    except SafetensorError as err:
        raise ConfigError(f"{weights_path} is truncated or corrupted ({first_line(err)}); refused") from None
    except (OSError, RuntimeError) as err:
        raise ConfigError(f"{weights_path} does not fit a {family!r} model with {sizes}: {first_line(err)}") from None
    check_finite(net.state_dict(), str(weights_path))
    keep = {k: config.get(k) for k in ("task", "metrics", "command")}
    net.wavezoo_config.update(pretrained=config.get("name"), **keep)
    return module.eval()


def push_to_hub(
    model_or_module: nn.Module,
    repo_id: str,
    *,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload wavezoo model",
    metrics: dict[str, float] | None = None,
    task: str | None = None,
    name: str | None = None,
) -> str:
    """Publish a model folder (see :func:`save_pretrained`) as the Hugging Face Hub repo ``repo_id``.

    With ``local_dir`` the folder is only written there (nothing is uploaded) and its path is returned; otherwise
    it is uploaded with ``huggingface_hub`` (``create_repo`` + ``upload_folder``) and the repo URL is returned."""
    kwargs = {"metrics": metrics, "task": task, "name": name or repo_id.rsplit("/", 1)[-1], "load_from": repo_id}
    if local_dir is not None:
        return os.fspath(save_pretrained(model_or_module, local_dir, **kwargs))
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ConfigError("push_to_hub needs huggingface_hub: pip install huggingface_hub") from None
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wavezoo-hub-") as tmp:
        save_pretrained(model_or_module, tmp, **kwargs)
        api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
    return str(url)
