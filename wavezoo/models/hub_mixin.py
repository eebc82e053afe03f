"""Model folders in the Hugging Face Hub layout, through ``huggingface_hub``'s :class:`PyTorchModelHubMixin`.

A folder holds ``config.json`` (how to rebuild the model: ``family``, ``sizes``, ``model_kwargs``, plus its task,
test metrics and training command), ``model.safetensors`` (the plain ``nn.Module`` state dict) and a ``README.md``
model card. Every zoo model inherits :class:`ZooHubMixin`, so ::

    net.save_pretrained("out/elman")                  # the folder
    net.push_to_hub("me/elman")                       # the same folder, uploaded (huggingface_hub's HfApi)
    net = SequenceModel.from_pretrained("out/elman")  # or a Hub repo id "owner/name", from huggingface_hub's cache

``from_pretrained`` treats the folder as untrusted data: ``config.json`` is size-capped and validated field by field,
the claimed architecture is compared with the tensor shapes of the safetensors header on the ``meta`` device before
any model is built, and NaN or infinite weights are refused (:mod:`wavezoo.trust`). This module imports neither
Lightning nor ``wavezoo.lit``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin, hf_hub_download
from torch import nn

from wavezoo.errors import ConfigError
from wavezoo.registry import build_model
from wavezoo.trust import check_finite, check_model_shapes, first_line, model_spec, short
from wavezoo.version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FOLDER_FORMAT = 1
CONFIG_MAX_BYTES = 1 << 20  # a wavezoo config.json is a few KB
PAPER_URL = "https://arxiv.org/abs/2402.10163"


def folder_config(net: nn.Module, **extra: Any) -> dict[str, Any]:
    """The ``config.json`` of a zoo model: what ``wavezoo_config`` records (family, sizes, family options, and for
    a published model its task, metrics and command), with ``extra`` fields on top."""
    built = getattr(net, "wavezoo_config", None)
    if not isinstance(built, dict) or "family" not in built:
        raise ConfigError(
            f"save_pretrained needs a model built by wavezoo.create_model or a wavezoo LightningModule, "
            f"got a {type(net).__name__}"
        )
    config = {
        "format": FOLDER_FORMAT,
        "library_name": "wavezoo",
        "name": built.get("pretrained") or built["family"],
        "family": built["family"],
        "sizes": built["sizes"],
        "model_kwargs": built.get("model_kwargs") or {},
        "parameters": sum(p.numel() for p in net.parameters()),
        "task": built.get("task"),
        "metrics": built.get("metrics") or {},
        "command": built.get("command"),
        "lightning": None,
        "wavezoo_version": __version__,
        "torch_version": torch.__version__,
    }
    config.update({key: value for key, value in extra.items() if value is not None})
    config["metrics"] = {key: float(value) for key, value in config["metrics"].items()}
    return config


def model_card(config: dict[str, Any], load_from: str) -> str:
    """The ``README.md`` of a model folder: what it is, how to load it, its test metrics and training command."""
    sizes = ", ".join(f"{k}={v}" for k, v in config["sizes"].items())
    kwargs = ", ".join(f"{k}={v!r}" for k, v in config["model_kwargs"].items()) or "none"
    loader = "wavezoo.load_pretrained" if config.get("published") else "wavezoo.from_pretrained"
    lines = [
        "---",
        "library_name: wavezoo",
        f"tags: [wavezoo, pytorch, traveling-waves, working-memory, {config['family']}]",
        "---",
        "",
        f"# {config['name']}",
        "",
        f"A wavezoo model of family `{config['family']}` (the model zoo of traveling-wave working memory, Karuvally, "
        f"Sejnowski, Siegelmann, ICML 2024, [arXiv 2402.10163]({PAPER_URL})): a batch-first `nn.Module`, "
        "`[batch, time, input_size] -> [batch, time, output_size]`.",
        "",
        f"- task: {config.get('task') or 'not recorded'}",
        f"- architecture: `{config['family']}` with {sizes}; family options: {kwargs}",
        f"- parameters: {config['parameters']:,}",
        f"- wavezoo {config['wavezoo_version']}, torch {config['torch_version']}",
        "",
        "## How to load",
        "",
        "```python",
        "import wavezoo",
        "",
        f'model = {loader}("{load_from}")  # eval mode',
        "```",
        "",
        "## Test metrics",
        "",
    ]
    if config["metrics"]:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {key} | {format_metric(value)} |" for key, value in config["metrics"].items()]
    else:
        lines.append("No metrics recorded.")
    lines += ["", "## Training", ""]
    lines += ["```bash", config["command"], "```"] if config.get("command") else ["Training command not recorded."]
    return "\n".join(lines) + "\n"


def format_metric(value: float) -> str:
    return f"{value:.6g}"


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` as a dict, with one-line errors naming the file and the bad field; nothing it names is
    imported or built here."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > CONFIG_MAX_BYTES:
            raise ConfigError(f"{path} is invalid: {size:,} bytes, more than a wavezoo config.json can be; refused")
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is missing or invalid ({first_line(err)}): not a wavezoo model folder") from None
    except ValueError as err:
        raise ConfigError(f"{path} is invalid: not JSON ({first_line(err)}); not a wavezoo model folder") from None
    except RecursionError:
        raise ConfigError(f"{path} is invalid: its JSON nests too deep; not a wavezoo model folder") from None
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


def tensor_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors of a safetensors file, read from its header only (no tensor data)."""
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise ConfigError(f"{path} is missing: not a wavezoo model folder")
    try:
        with safe_open(os.fspath(path), "pt") as file:  # get_slice reads the header, no tensor data
            return {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"{path} is truncated or corrupted ({first_line(err)}); refused") from None


SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
    "C64": torch.complex64,
}  # fmt: skip


def tensor_dtypes(path: str | os.PathLike) -> dict[str, str]:
    """Names and dtypes (safetensors' spelling: ``F32``, ``I32``...) of a safetensors file's tensors, from its
    header only."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), "pt") as file:
            return {key: str(file.get_slice(key).get_dtype()) for key in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
        raise ConfigError(f"{path} is truncated or corrupted ({first_line(err)}); refused") from None


def check_dtypes(net: nn.Module, path: str | os.PathLike) -> None:
    """Refuse a safetensors file whose tensors have other dtypes than ``net``'s (an ``I32`` tensor of ``F32``'s
    byte size would otherwise be cast into float weights)."""
    for key, held in tensor_dtypes(path).items():
        want = net.state_dict().get(key)
        if want is not None and SAFETENSORS_DTYPES.get(held) != want.dtype:
            expected = str(want.dtype).replace("torch.", "")
            raise ConfigError(f"{path}: tensor {key!r} is {held}, the model's parameter is {expected}; refused")


def load_weights(net: nn.Module, path: str | os.PathLike, map_location: Any = "cpu") -> nn.Module:
    """Load a safetensors file (strict) into ``net``: dtypes checked from the header first; NaN or infinite
    weights refused."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    check_dtypes(net, path)
    try:
        load_model(net, os.fspath(path), strict=True, device=str(map_location))
    except SafetensorError as err:
        raise ConfigError(f"{path} is truncated or corrupted ({first_line(err)}); refused") from None
    except (OSError, RuntimeError) as err:
        raise ConfigError(f"{path} does not fit the model: {first_line(err)}") from None
    check_finite(net.state_dict(), os.fspath(path))
    return net


def load_folder(config_path: Path, weights_path: Path, map_location: Any = "cpu") -> tuple[nn.Module, dict]:
    """The zoo model of a model folder (eval mode) and its checked ``config.json``; the architecture is checked
    against the safetensors header before anything is built."""
    config = read_config(config_path)
    family, sizes, kwargs = config["family"], config["sizes"], config["model_kwargs"]
    check_model_shapes(family, sizes, kwargs, tensor_shapes(weights_path), f"{config_path} (with {WEIGHTS_NAME})")
    try:
        net = build_model(family, **sizes, **kwargs)
    except ConfigError as err:
        raise ConfigError(f"{config_path}: {err}") from None
    load_weights(net, weights_path, map_location)
    net.wavezoo_config.update(
        pretrained=config.get("name"), **{k: config.get(k) for k in ("task", "metrics", "command")}
    )
    return net.eval(), config


def folder_file(model_id: str, filename: str, **download: Any) -> Path:
    """``filename`` of a local folder, or of the Hub repo ``model_id`` through huggingface_hub's cache (its
    ``HF_HUB_OFFLINE``, ``HF_HUB_CACHE`` and tokens apply); a file that cannot be fetched is a one-line error."""
    if os.path.isdir(model_id):
        return Path(model_id) / filename
    if model_id.count("/") != 1 or model_id.startswith((".", "/", "~")):
        raise ConfigError(f"model folder {model_id!r} does not exist; expected a folder of save_pretrained")
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(model_id, filename, library_name="wavezoo", **download))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
        raise ConfigError(
            f"cannot fetch {filename} of {model_id} from the Hugging Face Hub ({first_line(err)})"
        ) from None


class ZooHubMixin(
    PyTorchModelHubMixin,
    library_name="wavezoo",
    paper_url=PAPER_URL,
    tags=["wavezoo", "traveling-waves", "working-memory"],
):
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` of huggingface_hub for zoo models.

    The mixin's own config (the ``__init__`` arguments of the class) is replaced by :func:`folder_config`, which
    rebuilds the model through the registry, and its model card by :func:`model_card`. ``from_pretrained`` on a
    family class (``WaveRNN.from_pretrained``) refuses a folder of another family; on ``SequenceModel`` it returns
    whatever family the folder holds.
    """

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        *,
        force_download=False,
        token=None,
        cache_dir=None,
        local_files_only=False,
        revision=None,
        **model_kwargs,
    ):  # noqa: D102
        download = {"force_download": force_download, "token": token, "cache_dir": cache_dir,
                    "local_files_only": local_files_only, "revision": revision}  # fmt: skip
        # config.json is checked (size, JSON object, fields) before the mixin reads it
        read_config(folder_file(os.fspath(pretrained_model_name_or_path), CONFIG_NAME, **download))
        return super().from_pretrained(pretrained_model_name_or_path, **download, **model_kwargs)

    def save_pretrained(self, save_directory, *, config=None, model_card_kwargs=None, **kwargs):  # noqa: D102
        config = config if config is not None else folder_config(self)
        card = {"config": config, "load_from": f"path/to/{Path(save_directory).resolve().name}"}
        return super().save_pretrained(
            save_directory, config=config, model_card_kwargs={**card, **(model_card_kwargs or {})}, **kwargs
        )

    def push_to_hub(self, repo_id: str, *, model_card_kwargs=None, **kwargs):  # noqa: D102
        return super().push_to_hub(
            repo_id, model_card_kwargs={"load_from": repo_id, **(model_card_kwargs or {})}, **kwargs
        )

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_model

        family = self.wavezoo_config["family"]
        save_model(self, os.fspath(Path(save_directory) / WEIGHTS_NAME), metadata={"format": "pt", "family": family})

    def generate_model_card(self, *args, config=None, load_from=None, **kwargs) -> ModelCard:  # noqa: D102
        return ModelCard(model_card(config or folder_config(self), load_from or "path/to/folder"))

    @classmethod
    def _from_pretrained(cls, *, model_id: str, map_location: str = "cpu", **options: Any):
        download = {k: options.pop(k) for k in ("revision", "cache_dir", "force_download", "local_files_only", "token")}
        config_path = folder_file(model_id, CONFIG_NAME, **download)
        net, config = load_folder(config_path, folder_file(model_id, WEIGHTS_NAME, **download), map_location)
        unknown = sorted(key for key in options if key not in config and key != "config")
        if unknown:
            raise ConfigError(f"from_pretrained got unknown options {unknown}; the model is rebuilt from config.json")
        if not isinstance(net, cls):
            raise ConfigError(
                f"{model_id} holds a {config['family']!r} model ({type(net).__name__}), not a {cls.__name__}"
            )
        return net
