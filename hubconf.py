"""torch.hub entrypoints of wavezoo: one per published checkpoint of ``checkpoints/manifest.json`` (generated from
the manifest when this file is imported), plus the generic ``create_model``.

    torch.hub.load("path/to/wavezoo", "elman_vb_t1", source="local")            # nn.Module in eval mode
    torch.hub.load("path/to/wavezoo", "elman_vb_t1", source="local", lightning=True)
    torch.hub.load("path/to/wavezoo", "create_model", "gru", source="local", input_size=8, output_size=8)

``$WAVEZOO_CHECKPOINTS`` (a folder or a manifest file) replaces the manifest of this repository.
"""

import os as _os
from pathlib import Path as _Path

dependencies = ["torch", "lightning"]

import wavezoo as _wavezoo  # noqa: E402
from wavezoo.pretrained import load_pretrained as _load_pretrained  # noqa: E402
from wavezoo.pretrained import read_manifest as _read_manifest  # noqa: E402

_MANIFEST = _os.environ.get("WAVEZOO_CHECKPOINTS") or str(_Path(__file__).resolve().parent / "checkpoints")


def create_model(name, pretrained=False, **kwargs):
    """Any registered model: ``wavezoo.create_model(name, pretrained=..., input_size=..., output_size=..., ...)``.

    ``pretrained=True`` or a checkpoint name loads published weights (see ``wavezoo.list_pretrained()``)."""
    if pretrained:
        from wavezoo.pretrained.loading import pretrained_model

        return pretrained_model(name, pretrained, kwargs, manifest=_MANIFEST)
    return _wavezoo.create_model(name, **kwargs)


def _entrypoint(entry):
    name = entry["name"]

    def load(lightning=False, map_location="cpu", check_hash=True):
        return _load_pretrained(
            name, lightning=lightning, map_location=map_location, check_hash=check_hash, manifest=_MANIFEST
        )

    metrics = ", ".join(f"{k} = {v:.4g}" for k, v in entry["metrics"].items())
    load.__name__ = load.__qualname__ = name
    load.__doc__ = (
        f"Published checkpoint {name}: {entry['family']} ({entry['parameters']:,} parameters).\n\n"
        f"Task: {entry['task']}.\nTest metrics: {metrics}.\nTrained with: {entry['command']}\n\n"
        "Returns the nn.Module in eval mode (lightning=True: the LightningModule); the file's sha256 is checked."
    )
    return load


for _entry in _read_manifest(_MANIFEST).published():
    globals()[_entry["name"]] = _entrypoint(_entry)
