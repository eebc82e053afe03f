"""Published weights: the table (:mod:`wavezoo.pretrained.weights`), loading with a sha256 check, re-evaluation, and
model folders in the Hugging Face Hub layout.

    wavezoo.list_pretrained()                      # names of the published weights
    net = wavezoo.load_pretrained("elman_vb_t1")   # nn.Module in eval mode (lightning=True: the LightningModule)
    wavezoo.pretrained.evaluate("elman_vb_t1")     # the test metrics, to compare with pretrained_info(name)["metrics"]
    wavezoo.save_pretrained(net, "folder")         # config.json + model.safetensors + README.md
    wavezoo.from_pretrained("folder")              # or "owner/name" on the Hub

``scripts/train_checkpoints.py`` (re)trains the table's recipes. See ``checkpoints/README.md``.
"""

from wavezoo.pretrained.hub import from_pretrained, push_to_hub, save_pretrained
from wavezoo.pretrained.loading import (
    CHECKPOINTS_ENV,
    compare_metrics,
    evaluate,
    list_pretrained,
    load_pretrained,
    pretrained_info,
    sha256_file,
    verify_checksum,
    verify_folder,
)

__all__ = [
    "CHECKPOINTS_ENV",
    "compare_metrics",
    "evaluate",
    "from_pretrained",
    "list_pretrained",
    "load_pretrained",
    "pretrained_info",
    "push_to_hub",
    "save_pretrained",
    "sha256_file",
    "verify_checksum",
    "verify_folder",
]
