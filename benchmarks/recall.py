"""The recall benchmarks of the SSM literature (issue 16): every family on induction head, associative recall, MQAR
and selective copying, each with a small learning-rate sweep.

    python -m benchmarks.recall [--tasks induction_head,...] [--families lstm,...] [--lrs 0.001,0.003,0.01]
                                [--seeds 0] [--steps N] [--out docs/results] [--at-best-lr] [--table]

Each run is ``wavezoo fit --config configs/<task>/benchmark*.yaml`` (see :data:`TASKS`) with the family, its size,
the learning rate and the seed as overrides (the exact command is recorded), then ``test`` of the best checkpoint by
validation loss. One JSON per run in ``<out>/recall/``; runs already there are skipped and a run in progress holds
an OS file lock (``<run>.lock``), so several processes can share one sweep and a killed sweep resumes. ``--table``
prints the Markdown tables of docs/benchmarks.md from the JSON files; ``--at-best-lr --seeds 1,2`` adds seeds at
the learning rate each family chose on seed 0.

Sizes: every recurrent family holds about 256 numbers of state per sequence (LSTM: 128 units = 256 with its cell);
the TWM families a wave as long as the sequence (``history`` = sequence length, 8 numbers per cell); the LBC-SSM
stack 2 blocks of width 8 x 16 cells (512 numbers: two SSMs per block); the transformer a KV cache that grows with
the sequence. Both the state at the end of a sequence (``numel`` of the model's streaming state) and the parameter
count are recorded. Token ids are embedded to 32 features for every family.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

TASKS = {  # task -> (config, sequence length: the TWM wave length, chance accuracy)
    "induction_head": ("configs/induction_head/benchmark.yaml", 31, 1 / 18),
    "associative_recall": ("configs/associative_recall/benchmark.yaml", 22, 1 / 4),
    "associative_recall_20pairs": ("configs/associative_recall/benchmark_20pairs.yaml", 42, 1 / 9),
    "mqar": ("configs/mqar/benchmark.yaml", 32, 1 / 32),
    "mqar_zoology": ("configs/mqar/benchmark_zoology.yaml", 64, 1 / 4096),
    "selective_copy": ("configs/selective_copy/benchmark.yaml", 32, 1 / 14),
}
ANCHOR = {  # H3 (Fu et al. 2023), Table 1, synthetic language tasks at safari's configuration, test accuracy %
    "induction_head": {"random": 5.0, "S4D": 35.6, "H3": 100.0, "attention": 100.0},
    "associative_recall": {"random": 25.0, "S4D": 86.0, "H3": 99.8, "attention": 100.0},
}
WAVE_CELL = 8  # numbers per wave cell of the TWM families


def family_settings(family: str, length: int) -> tuple[int, dict[str, Any]]:
    """(hidden_size, model_kwargs) of ``family`` for a task of ``length`` steps (see the module docstring)."""
    wave = {"history": length, "input_mode": "add"}
    return {
        "elman": (256, {}),
        "irnn": (256, {}),
        "gru": (256, {}),
        "lstm": (128, {}),
        "transformer": (64, {"num_layers": 2, "num_heads": 4}),
        "twm_lbc": (WAVE_CELL * length, wave),
        "twm_sbc": (WAVE_CELL * length, {**wave, "num_heads": 2}),
        "sbc_transformer": (WAVE_CELL * length, {**wave, "num_heads": 2, "num_layers": 1}),
        "wave_rnn": (256, {"channels": 4}),
        "lbc_ssm": (128, {"state_size": 16, "num_layers": 2}),
    }[family]


FAMILIES = [
    "elman", "irnn", "gru", "lstm", "transformer", "twm_lbc", "twm_sbc", "sbc_transformer", "wave_rnn", "lbc_ssm"
]  # fmt: skip


def run_args(task: str, family: str, lr: float, seed: int, steps: int | None, run_dir: str) -> list[str]:
    """The ``wavezoo fit`` arguments of one run (``steps=None``: the config's own ``max_steps``)."""
    hidden, kwargs = family_settings(family, TASKS[task][1])
    return [
        "fit",
        "--config",
        TASKS[task][0],
        "--model.init_args.model",
        family,
        "--model.init_args.hidden_size",
        str(hidden),
        "--model.init_args.model_kwargs",
        json.dumps(kwargs),
        "--model.init_args.lr",
        str(lr),
        "--seed_everything",
        str(seed),
        *([] if steps is None else ["--trainer.max_steps", str(steps)]),
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.default_root_dir",
        run_dir,
    ]


def state_numel(net: torch.nn.Module, length: int) -> int:
    """Numbers of streaming state per sequence after ``length`` steps (a KV cache counts what it holds by then)."""

    def count(state: Any) -> int:
        if isinstance(state, torch.Tensor):
            return state.numel()
        if isinstance(state, (tuple, list)):
            return sum(count(s) for s in state)
        return 0

    with torch.no_grad():
        ids = torch.zeros(1, dtype=torch.long)
        state = net.initial_state(1)
        for _ in range(length):
            _, state = net.step(ids, state)
    return count(state)


def run_one(task: str, family: str, lr: float, seed: int, steps: int | None, runs: Path) -> dict[str, Any]:
    """Train and test one configuration in this process; the record of the run."""
    from wavezoo.cli import build_cli

    run_dir = runs / f"{task}_{family}_lr{lr}_seed{seed}"
    args = run_args(task, family, lr, seed, steps, os.fspath(run_dir))
    start = time.perf_counter()
    cli = build_cli(args[1:], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    train_s = time.perf_counter() - start
    best = cli.trainer.checkpoint_callback.best_model_path or None  # none before the first validation
    (test,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)
    module = type(cli.model).load_from_checkpoint(best) if best else cli.model
    score = cli.trainer.checkpoint_callback.best_model_score
    hidden, kwargs = family_settings(family, TASKS[task][1])
    shown = [*args[:-1], f"runs/recall/{run_dir.name}"]
    return {
        "task": task,
        "family": family,
        "lr": lr,
        "seed": seed,
        "steps": cli.trainer.max_steps,
        "hidden_size": hidden,
        "model_kwargs": kwargs,
        "parameters": sum(p.numel() for p in module.net.parameters()),
        "state_numel": state_numel(module.net.eval(), TASKS[task][1]),
        "test_acc": float(test["test/acc"]),
        "test_loss": float(test["test/loss"]),
        "best_val_loss": None if score is None else float(score),
        "best_step": int(torch.load(best, weights_only=True)["global_step"]) if best else cli.trainer.global_step,
        "train_s": round(train_s, 1),
        "command": "OMP_NUM_THREADS=1 " + shlex.join(["wavezoo", *shown]),
        "torch_version": torch.__version__,
    }


def sweep(opts: argparse.Namespace) -> None:
    from filelock import FileLock, Timeout

    out = Path(opts.out) / "recall"
    out.mkdir(parents=True, exist_ok=True)
    chosen = best_runs(load(opts.out)) if opts.at_best_lr else {}
    for task in opts.tasks:
        for family in opts.families:
            lrs = [chosen[(task, family)]["lr"]] if (task, family) in chosen else [] if opts.at_best_lr else opts.lrs
            for lr in lrs:
                for seed in opts.seeds:
                    path = out / f"{task}_{family}_lr{lr}_seed{seed}.json"
                    if path.exists():
                        continue
                    lock = FileLock(path.with_suffix(".lock"))
                    try:
                        lock.acquire(timeout=0)
                    except Timeout:
                        continue  # another process runs it
                    try:
                        if not path.exists():
                            record = run_one(task, family, lr, seed, opts.steps, Path(opts.runs))
                            path.write_text(json.dumps(record, indent=1) + "\n")
                            print(f"{path.stem}: test acc {record['test_acc']:.4f} ({record['train_s']:.0f} s)")
                    finally:
                        lock.release()
                        path.with_suffix(".lock").unlink(missing_ok=True)


def load(out: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((Path(out) / "recall").glob("*.json"))]


def best_runs(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (task, family): the learning rate with the best seed-0 test accuracy (the sweep runs seed 0 at every
    rate), with the mean, minimum and count of the test accuracies of all seeds run at that rate."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        key = (r["task"], r["family"])
        if r["seed"] == 0 and (key not in best or r["test_acc"] > best[key]["test_acc"]):
            best[key] = r
    for key, chosen in best.items():
        accs = [r["test_acc"] for r in records if (r["task"], r["family"]) == key and r["lr"] == chosen["lr"]]
        best[key] = {**chosen, "mean_acc": sum(accs) / len(accs), "min_acc": min(accs), "seeds": len(accs)}
    return best


def span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def tables(records: list[dict[str, Any]]) -> str:
    """The Markdown tables: the best learning rate per family and task (mean test accuracy % over the seeds run at
    it, the lowest seed in brackets when there are several), then every run."""
    best = best_runs(records)
    tasks = [t for t in TASKS if any(r["task"] == t for r in records)]
    lines = [
        "| family | hidden | state | parameters | " + " | ".join(f"{t}: acc % (lr)" for t in tasks) + " |",
        "|---|---|---|---|" + "---|" * len(tasks),
    ]
    for family in FAMILIES:
        cells = [best.get((t, family)) for t in tasks]
        found = [c for c in cells if c]
        if not found:
            continue
        shown = []
        for c in cells:
            seeds = f", {c['seeds']} seeds, min {100 * c['min_acc']:.1f}" if c and c["seeds"] > 1 else ""
            shown.append(f"{100 * c['mean_acc']:.1f} ({c['lr']:g}{seeds})" if c else "-")
        sizes = [span([c[k] for c in found]) for k in ("hidden_size", "state_numel", "parameters")]
        lines.append(f"| `{family}` | " + " | ".join(sizes) + " | " + " | ".join(shown) + " |")
    lines += ["", "| task | family | lr | seed | test acc % | best step | train s |", "|---|---|---|---|---|---|---|"]
    order = lambda r: (list(TASKS).index(r["task"]), FAMILIES.index(r["family"]), r["lr"], r["seed"])  # noqa: E731
    for r in sorted(records, key=order):
        lines.append(
            f"| {r['task']} | `{r['family']}` | {r['lr']:g} | {r['seed']} | {100 * r['test_acc']:.1f} | "
            f"{r['best_step']} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recall", description=__doc__.split("\n\n")[0])
    split = lambda kind: lambda text: [kind(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--tasks", type=split(str), default=list(TASKS))
    parser.add_argument("--families", type=split(str), default=FAMILIES)
    parser.add_argument("--lrs", type=split(float), default=[0.001, 0.003, 0.01])
    parser.add_argument("--seeds", type=split(int), default=[0])
    parser.add_argument("--steps", type=int, default=None, help="default: each config's max_steps")
    parser.add_argument("--out", default="docs/results")
    parser.add_argument("--runs", default="runs/recall", help="training run folders")
    parser.add_argument(
        "--at-best-lr", action="store_true", help="run each family at the rate chosen on seed 0 (for more seeds)"
    )
    parser.add_argument("--table", action="store_true", help="print the tables from the JSON files, run nothing")
    opts = parser.parse_args(argv)
    unknown = sorted(set(opts.tasks) - set(TASKS)) + sorted(set(opts.families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown tasks or families {unknown}; tasks: {', '.join(TASKS)}; families: {', '.join(FAMILIES)}")
    if opts.table:
        print(tables(load(opts.out)))
        return
    torch.set_num_threads(1)
    sys.argv = sys.argv[:1]  # the runs' arguments are passed to LightningCLI directly
    sweep(opts)


if __name__ == "__main__":
    main()
