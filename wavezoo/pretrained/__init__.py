"""Published pretrained checkpoints: the manifest, loading with a sha256 check, re-evaluation, and
Hugging Face-style model folders.

    wavezoo.list_pretrained()                      # names of the published checkpoints
    net = wavezoo.load_pretrained("elman_vb_t1")   # nn.Module in eval mode (lightning=True: the LightningModule)
    wavezoo.pretrained.evaluate("elman_vb_t1")     # the test metrics, to compare with pretrained_info(name)["metrics"]
    wavezoo.save_pretrained(net, "folder")         # config.json + model.safetensors + README.md
    wavezoo.from_pretrained("folder")

The manifest is ``checkpoints/manifest.json`` of the repository, or ``$WAVEZOO_CHECKPOINTS`` (a folder or a file);
``scripts/train_checkpoints.py`` (re)trains its entries. See ``checkpoints/README.md``.
"""

from wavezoo.pretrained.hub import from_pretrained, push_to_hub, save_pretrained
from wavezoo.pretrained.loading import (
    compare_metrics,
    evaluate,
    evaluate_entry,
    list_pretrained,
    load_pretrained,
    pretrained_info,
    strip_checkpoint,
    verify_checksum,
)
from wavezoo.pretrained.manifest import MANIFEST_ENV, Manifest, manifest_path, read_manifest

__all__ = [
    "MANIFEST_ENV",
    "Manifest",
    "compare_metrics",
    "evaluate",
    "evaluate_entry",
    "from_pretrained",
    "list_pretrained",
    "load_pretrained",
    "manifest_path",
    "pretrained_info",
    "push_to_hub",
    "read_manifest",
    "save_pretrained",
    "strip_checkpoint",
    "verify_checksum",
]
