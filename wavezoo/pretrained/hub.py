"""``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for a zoo model or a wavezoo LightningModule.

A plain model goes through huggingface_hub's mixin of every zoo model (:class:`~wavezoo.models.hub_mixin.ZooHubMixin`).
A LightningModule is saved as its model's folder whose ``config.json`` also records the module's class and
hyper-parameters (``"lightning"``), so ``from_pretrained(folder, lightning=True)`` rebuilds the module; that class
must lie inside ``wavezoo`` and its claimed architecture must fit the tensors before anything is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from wavezoo.errors import ConfigError
from wavezoo.models import SequenceModel
from wavezoo.models.hub_mixin import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    folder_config,
    folder_file,
    load_weights,
    read_config,
    tensor_shapes,
)
from wavezoo.pretrained import weights as table
from wavezoo.trust import check_model_shapes, first_line, model_spec, resolve_class, short


def _split(model_or_module: nn.Module) -> tuple[nn.Module, dict[str, Any] | None]:
    """The zoo model and, for a wavezoo LightningModule, its class path and hyper-parameters."""
    net = getattr(model_or_module, "net", None)
    if isinstance(net, nn.Module) and hasattr(model_or_module, "hparams"):
        cls = type(model_or_module)
        hparams = {k: v for k, v in dict(model_or_module.hparams).items() if not k.startswith("_")}
        return net, {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": hparams}
    return model_or_module, None


def _folder_config(model_or_module: nn.Module, **fields: Any) -> tuple[SequenceModel, dict[str, Any]]:
    net, lightning = _split(model_or_module)
    if not isinstance(net, SequenceModel):
        raise ConfigError(
            f"save_pretrained needs a model built by wavezoo.create_model or a wavezoo LightningModule, "
            f"got a {type(model_or_module).__name__}"
        )
    return net, folder_config(net, lightning=lightning, **fields)


def save_pretrained(
    model_or_module: nn.Module,
    folder: str | os.PathLike,
    *,
    metrics: dict[str, float] | None = None,
    task: str | None = None,
    name: str | None = None,
    command: str | None = None,
    load_from: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``folder/config.json``, ``model.safetensors`` and a ``README.md`` model card (huggingface_hub's
    ``save_pretrained``). ``metrics``, ``task`` and ``command`` default to those of the published weights the
    model was loaded from; ``load_from`` is the name the card tells readers to load (default ``path/to/<folder>``);
    ``extra``: more ``config.json`` fields (the training run's provenance of a published folder)."""
    fields = {"metrics": metrics, "task": task, "name": name, "command": command, **(extra or {})}
    net, config = _folder_config(model_or_module, **fields)
    net.save_pretrained(folder, config=config, model_card_kwargs={"load_from": load_from} if load_from else None)
    return Path(folder)


def _lightning_module(config: dict[str, Any], shapes: dict[str, tuple[int, ...]], source: str):
    """The LightningModule recorded in ``config.json``, checked against the tensors before it is instantiated."""
    from wavezoo.lit import SequenceTaskModule

    spec = config.get("lightning")
    if not spec:
        raise ConfigError(f"{source} holds a bare model, not a LightningModule; use lightning=False")
    if not isinstance(spec, dict) or not isinstance(spec.get("init_args"), dict):
        raise ConfigError(
            f"{source}: lightning={short(spec)} is invalid: expected {{'class_path': ..., 'init_args': {{...}}}}"
        )
    cls = resolve_class(spec.get("class_path"), SequenceTaskModule, f"{source}: lightning.class_path")
    family, sizes, kwargs = model_spec(spec["init_args"], f"{source}: lightning.init_args")
    check_model_shapes(family, sizes, kwargs, shapes, f"{source}: lightning.init_args")
    try:
        return cls(**spec["init_args"])
    except ConfigError as err:
        raise ConfigError(f"{source}: lightning.init_args: {err}") from None
    except TypeError as err:
        raise ConfigError(f"{source}: lightning.init_args is invalid ({first_line(err)})") from None


def from_pretrained(
    folder_or_repo: str | os.PathLike,
    *,
    lightning: bool = False,
    map_location: str = "cpu",
    revision: str | None = None,
    token: str | None = None,
) -> nn.Module:
    """A model written by :func:`save_pretrained` (a local folder, or a Hub repo id ``"owner/name"`` through
    huggingface_hub's cache), in eval mode; ``lightning=True`` gives its LightningModule when the folder records
    one. The folder is untrusted data (see :mod:`wavezoo.models.hub_mixin` and :mod:`wavezoo.trust`)."""
    model_id = os.fspath(folder_or_repo)
    if model_id in table.TABLE and not os.path.isdir(model_id):
        raise ConfigError(f"{model_id!r} is a published name, not a folder: use wavezoo.load_pretrained({model_id!r})")
    if not lightning:
        return SequenceModel.from_pretrained(model_id, revision=revision, token=token, map_location=map_location)
    config_path = folder_file(model_id, CONFIG_NAME, revision=revision, token=token)
    weights_path = folder_file(model_id, WEIGHTS_NAME, revision=revision, token=token)
    config = read_config(config_path)
    source = f"{config_path} (with {WEIGHTS_NAME})"
    shapes = tensor_shapes(weights_path)
    check_model_shapes(config["family"], config["sizes"], config["model_kwargs"], shapes, source)
    module = _lightning_module(config, shapes, source)
    load_weights(module.net, weights_path, map_location)
    module.net.wavezoo_config.update(
        pretrained=config.get("name"), **{k: config.get(k) for k in ("task", "metrics", "command")}
    )
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
    """Publish the model folder of :func:`save_pretrained` as the Hub repo ``repo_id`` (huggingface_hub's
    ``push_to_hub``) and return the commit URL; with ``local_dir`` only write the folder there and return its path."""
    name = name or repo_id.rsplit("/", 1)[-1]
    if local_dir is not None:
        return os.fspath(
            save_pretrained(model_or_module, local_dir, metrics=metrics, task=task, name=name, load_from=repo_id)
        )
    net, config = _folder_config(model_or_module, metrics=metrics, task=task, name=name)
    url = net.push_to_hub(repo_id, config=config, token=token, private=private, commit_message=commit_message)
    return str(url)
