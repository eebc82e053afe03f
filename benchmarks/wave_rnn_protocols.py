"""The wave RNN against its baselines at Keller et al.'s protocols: steps to a solved task, several seeds.

    python -m benchmarks.wave_rnn_protocols [--runs copy,adding,...] [--seeds 0,1,2] [--out FILE]

Each run trains one YAML config of ``configs/`` through the Lightning CLI (``wavezoo fit``), validating every
epoch, and records the first training step at which the validation metric reached the run's bar (recall accuracy
>= 0.99 on the copy task; MSE <= 0.05 on the adding problem, Keller et al.'s "solved"; otherwise the best
accuracy), its best value, the test metric of the best checkpoint by val/loss, and the wall time per training step (one
process; see ``--threads``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from wavezoo.cli import build_cli

#: name -> (config, max_steps, metric, bar, higher is better)
RUNS = {
    "copy/wave_rnn_keller": ("configs/copy/wave_rnn_keller.yaml", 600, "val/acc", 0.99, True),
    "copy/irnn_keller": ("configs/copy/irnn_keller.yaml", 600, "val/acc", 0.99, True),
    "adding/wave_rnn": ("configs/adding/wave_rnn.yaml", 3000, "val/mse", 0.05, False),
    "adding/irnn": ("configs/adding/irnn.yaml", 3000, "val/mse", 0.05, False),
    "permuted_digits/wave_rnn_16x256": ("configs/permuted_digits/wave_rnn_16x256.yaml", 1000, "val/acc", None, True),
    "mnist1d/wave_rnn_16x256": ("configs/mnist1d/wave_rnn_16x256.yaml", 1000, "val/acc", None, True),
    "permuted_digits/irnn_keller": ("configs/permuted_digits/irnn_keller.yaml", 1000, "val/acc", None, True),
    "mnist1d/irnn_keller": ("configs/mnist1d/irnn_keller.yaml", 1000, "val/acc", None, True),
}


class History(pl.Callback):
    """(global step, value of ``metric``) after every validation; wall time of the training batches."""

    def __init__(self, metric: str) -> None:
        self.metric, self.points, self.train_seconds, self.steps = metric, [], 0.0, 0
        self._start = 0.0

    def on_validation_end(self, trainer, module) -> None:
        if not trainer.sanity_checking and self.metric in trainer.callback_metrics:
            self.points.append((trainer.global_step, float(trainer.callback_metrics[self.metric])))

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.train_seconds += time.perf_counter() - self._start
        self.steps += 1


def run_one(name: str, seed: int, max_steps: int | None = None) -> dict:
    config, default_steps, metric, bar, higher = RUNS[name]
    steps = max_steps or default_steps
    with tempfile.TemporaryDirectory() as tmp:
        cli = build_cli(
            ["--config", config, "--seed_everything", str(seed), "--trainer.max_steps", str(steps),
             "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
             "--trainer.default_root_dir", tmp],
            run=False,
        )  # fmt: skip
        history = History(metric)
        cli.trainer.callbacks.append(history)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        (tested,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    values = [v for _, v in history.points]
    reached = [s for s, v in history.points if bar is not None and (v >= bar if higher else v <= bar)]
    return {
        "run": name,
        "seed": seed,
        "max_steps": steps,
        "metric": metric,
        "bar": bar,
        "steps_to_bar": reached[0] if reached else None,
        "best": (max(values) if higher else min(values)) if values else None,
        "final": values[-1] if values else None,
        "test": tested.get(metric.replace("val/", "test/")),
        "ms_per_step": 1e3 * history.train_seconds / max(1, history.steps),
        "history": history.points,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="copy/wave_rnn_keller,copy/irnn_keller", help=f"of {', '.join(RUNS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-steps", type=int, default=None, help="override every run's step budget")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/wave_rnn_protocols.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in args.runs.split(",") if n]
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    for name in names:
        for seed in (int(s) for s in args.seeds.split(",") if s):
            row = run_one(name, seed, args.max_steps)
            rows = [r for r in rows if (r["run"], r["seed"]) != (name, seed)] + [row]
            out.write_text(json.dumps(rows, indent=1))
            shown = {k: row[k] for k in ("run", "seed", "metric", "bar", "steps_to_bar", "best", "final", "test")}
            print(json.dumps({**shown, "ms_per_step": round(row["ms_per_step"], 1)}), flush=True)


if __name__ == "__main__":
    main()
