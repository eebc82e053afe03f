"""Retrain the published checkpoints of ``checkpoints/manifest.json`` from their recipes.

    python scripts/train_checkpoints.py --missing --jobs 2     # train the recipes not trained yet, two at a time
    python scripts/train_checkpoints.py --only elman_vb_t1     # retrain one (overwrites its file and measurements)
    python scripts/train_checkpoints.py --all --dry-run        # print the exact training commands
    python scripts/train_checkpoints.py --all --verify         # check sha256 and re-evaluate every published one

Each entry runs ``OMP_NUM_THREADS=1 wavezoo fit --config <source_config> <overrides> --seed_everything <seed>
--trainer.max_steps <max_steps> --trainer.default_root_dir runs/pretrained/<name> --trainer.logger false
--trainer.enable_progress_bar false`` from the repository root; the best checkpoint by val/loss is stripped to
``checkpoints/<name>.ckpt``, the run's resolved config copied to ``checkpoints/<name>.yaml``, the test set re-run
(``wavezoo.pretrained.evaluate``) and the measured fields written into the manifest. See checkpoints/README.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from wavezoo.pretrained.training import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
