"""K Table-1 runs as one batched ensemble against the same K runs one after the other, side by side in one process.

    python -m benchmarks.ensemble [--members 8 --task T1 --hidden 128 --steps 300 --device cpu]

References: each run alone as the sweep trains it (``WavezooTrainer.fit`` of ``SequenceRegression``, the paper's
protocol, validation off), and each run alone as the plain PyTorch loop of :mod:`benchmarks.plain_loop` (no
Lightning). The ensemble (:func:`wavezoo.paper.ensemble.train_ensemble`, snapshots off) is timed twice: the whole
call, which also builds every member's validation and test sets (horizon 200) and evaluates on them at the end (the
references do not), and its training loop alone (the record's ``ensemble.seconds``, one validation included).
Target (issue 30): the ensemble takes <= 0.9x the time of the lone Lightning runs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def lone_lightning(task: str, hidden: int, seed: int, steps: int) -> None:
    import lightning.pytorch as pl

    from wavezoo.data import VariableBindingDataModule
    from wavezoo.lit import SequenceRegression
    from wavezoo.lit.reliability import quiet_trainer

    pl.seed_everything(seed, verbose=False)
    data = VariableBindingDataModule(task, seed=seed)
    module = SequenceRegression(model="elman", input_size=8, output_size=8, hidden_size=hidden)
    trainer = quiet_trainer(
        max_steps=steps, gradient_clip_val=1.0, enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0
    )
    trainer.fit(module, datamodule=data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--task", default="T1")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from benchmarks.plain_loop import train as plain_train
    from wavezoo.paper.ensemble import Member, train_ensemble

    seeds = range(args.members)
    timings = {}
    start = time.perf_counter()
    for seed in seeds:
        lone_lightning(args.task, args.hidden, seed, args.steps)
    timings["lone runs (Lightning, as the sweep)"] = time.perf_counter() - start
    start = time.perf_counter()
    for seed in seeds:
        plain_train(args.task, args.steps, args.hidden, seed, log_every=10**9)
    timings["lone runs (plain PyTorch loop)"] = time.perf_counter() - start
    members = [Member(args.task, args.hidden, 0.0, seed) for seed in seeds]
    start = time.perf_counter()
    records = train_ensemble(members, args.steps, device=args.device, snapshot_every=10**9, steps_per_epoch=10**9)
    if args.device != "cpu":
        torch.cuda.synchronize()
    timings[f"one ensemble of {args.members}, whole call"] = time.perf_counter() - start
    timings[f"one ensemble of {args.members}, training loop"] = records[0]["ensemble"]["seconds"]

    reference = timings["lone runs (Lightning, as the sweep)"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.members} x {args.task} "
        f"N={args.hidden} {args.steps} steps, device {args.device}"
    )
    rows = []
    for name, seconds in timings.items():
        steps_per_s = args.members * args.steps / seconds
        ratio = seconds / reference
        print(f"{name:<40} {seconds:8.2f} s  {steps_per_s:8.1f} run-steps/s  {ratio:6.3f}x lone Lightning runs")
        rows.append({"name": name, "seconds": seconds, "run_steps_per_s": steps_per_s, "ratio": ratio})
    print(json.dumps({"target": "ensemble <= 0.9x lone Lightning runs", "rows": rows}))


if __name__ == "__main__":
    main()
