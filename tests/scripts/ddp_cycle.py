"""Run under ``torchrun --nproc_per_node 2``: one 2-process DDP job that fits every model family and DataModule in
turn (2 steps each, with validation) and prints ``ddp ok <config> step <n>`` from rank 0 for each.

One pair of processes serves all configurations (the process group is set up once), so the whole cycle costs one
DDP start instead of one per configuration."""

import os
import sys
from pathlib import Path

import torch

from wavezoo.cli import build_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [f"variable_binding/{name}" for name in ("gru", "lstm", "transformer", "twm_lbc", "twm_sbc")]
CONFIGS += ["variable_binding/sbc_transformer", "variable_binding/lbc_ssm", "copy/wave_rnn", "copy/irnn"]
CONFIGS += ["adding/elman", "hds/elman", "digits/gru"]
SIZES = {"wave_rnn": "60", "lbc_ssm": "64"}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    for config in CONFIGS:
        folder = out / config.replace("/", "-")
        hidden = SIZES.get(config.split("/")[1])
        args = ["fit", "--config", str(ROOT / "configs" / f"{config}.yaml")]
        args += ["--model.init_args.hidden_size", hidden] if hidden else []
        args += ["--trainer.max_steps", "2", "--trainer.limit_val_batches", "2", "--data.batch_size", "4"]
        args += ["--trainer.val_check_interval", "2", "--trainer.check_val_every_n_epoch", "null"]
        args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(folder)]
        args += ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
        args += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
        cli = build_cli(args)
        if rank == 0:
            step = torch.load(folder / "checkpoints/last.ckpt", weights_only=True)["global_step"]
            metrics = sorted(k for k in cli.trainer.callback_metrics if k.startswith("val/"))
            print(f"ddp ok {config} step {step} world {cli.trainer.world_size} {' '.join(metrics)}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
