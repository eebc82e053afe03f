"""torch.hub entrypoints of wavezoo: one per published name of the weights table
(``wavezoo/pretrained/weights.py``), plus the generic ``create_model``.

    torch.hub.load("path/to/wavezoo", "elman_vb_t1", source="local")            # nn.Module in eval mode
    torch.hub.load("path/to/wavezoo", "elman_vb_t1", source="local", lightning=True)
    torch.hub.load("path/to/wavezoo", "create_model", "gru", source="local", input_size=8, output_size=8)
"""

dependencies = ["torch", "huggingface_hub", "safetensors"]

import wavezoo as _wavezoo  # noqa: E402
from wavezoo.pretrained import load_pretrained as _load_pretrained  # noqa: E402
from wavezoo.pretrained.weights import TABLE as _TABLE  # noqa: E402


def create_model(name, pretrained=False, **kwargs):
    """Any registered model: ``wavezoo.create_model(name, pretrained=..., input_size=..., output_size=..., ...)``.

    ``pretrained=True`` or a published name loads published weights (see ``wavezoo.list_pretrained()``)."""
    return _wavezoo.create_model(name, pretrained=pretrained, **kwargs)


def _entrypoint(weights):
    def load(lightning=False, map_location="cpu", check_hash=True):
        return _load_pretrained(weights.name, lightning=lightning, map_location=map_location, check_hash=check_hash)

    metrics = ", ".join(f"{k} = {v:.4g}" for k, v in weights.metrics.items())
    load.__name__ = load.__qualname__ = weights.name
    load.__doc__ = (
        f"Published weights {weights.name}: {weights.family} ({weights.parameters:,} parameters).\n\n"
        f"Task: {weights.task}.\nTest metrics: {metrics}.\nTrained with: {weights.command}\n\n"
        "Returns the nn.Module in eval mode (lightning=True: the LightningModule, which needs lightning); the "
        "file's sha256 is checked."
    )
    return load


for _weights in _TABLE.values():
    if _weights.published:
        globals()[_weights.name] = _entrypoint(_weights)
