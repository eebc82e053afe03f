"""Table 1 on one GPU within a hard time limit: the three open spectral cells first, then as much of the grid as fits.

    python scripts/table1_gpu.py --limit 420 --out $OUT [--steps 20000 --seeds 20 --workers 12 --device cuda]
        [--thresholds 0.9,0.98]

Phase 1 trains the three cells that do not reproduce (T2 N128 L2=0.001, T4 N64 L2=0.001, T4 N64 L2=0) with
``--seeds`` seeds each as ONE ensemble (the N=64 members zero-padded to 128, which is exact), on ``--device``, with
``--workers`` processes drawing the batches. Phase 2, if the time left allows by phase 1's pace (assumed linear in
the number of members, which is pessimistic on a GPU), trains the other 21 cells with as many seeds as fit. With
``--thresholds 0.9,0.98`` every seed is trained at both curriculum thresholds, the paper's protocol. Every run
writes the same JSON as ``wavezoo-paper table1`` into ``OUT/table1/``; the script prints steps/s per phase and the
summary (both selections: on test as the paper, and on validation). At ``--limit`` seconds it stops, whatever it is
doing (an ensemble cut short leaves its resume checkpoint in ``OUT/table1/.ensemble/``), and prints the summary of the
runs done. Test it on a CPU with tiny settings: ``--device cpu --steps 20 --seeds 2 --hidden-scale 8``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

OPEN_CELLS = [("T2", 128, 0.001), ("T4", 64, 0.001), ("T4", 64, 0.0)]
GRID = [(t, n, l2) for t in ("T1", "T2", "T3", "T4") for n in (64, 128) for l2 in (0.0, 0.001, 0.1)]


class OutOfTime(Exception):
    pass


def _alarm(signum, frame):
    raise OutOfTime


def run_phase(name: str, cells, seeds, args, folder: Path) -> float | None:
    """Train ``cells`` x ``seeds`` as one ensemble; returns the seconds it took (None if nothing was left to do)."""
    from wavezoo.paper.ensemble import Member
    from wavezoo.paper.table1 import train_ensembles

    members = [
        Member(t, max(1, n // args.hidden_scale), l2, s, threshold)
        for t, n, l2 in cells
        for s in seeds
        for threshold in args.thresholds
    ]
    todo = [m for m in members if not (folder / f"{m.name}.json").exists()]
    if not todo:
        print(f"{name}: all {len(members)} runs already done", flush=True)
        return None
    print(f"{name}: {len(todo)} runs x {args.steps} steps as one ensemble on {args.device}", flush=True)
    start = time.perf_counter()
    train_ensembles(
        todo, args.steps, folder, args.device, pad_hidden=True, workers=args.workers, log_every=args.log_every
    )
    seconds = time.perf_counter() - start
    print(
        f"{name}: {seconds:.1f} s, {args.steps / seconds:.1f} ensemble steps/s, "
        f"{len(todo) * args.steps / seconds:.0f} run-steps/s ({len(todo)} members)",
        flush=True,
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, required=True, help="hard limit in seconds")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--log-every", type=int, default=1000, help="steps between progress lines")
    parser.add_argument("--hidden-scale", type=int, default=1, help="divide every hidden size (CPU tests)")
    parser.add_argument("--thresholds", default="0.98", help="curriculum thresholds, a run per seed at each (the "
                        "paper: 0.9,0.98; the summary takes each seed's best over them)")  # fmt: skip
    args = parser.parse_args()
    try:
        thresholds = tuple(sorted({float(t) for t in args.thresholds.split(",") if t.strip()}))
    except ValueError:
        thresholds = ()
    if not thresholds or not all(0 < t <= 1 for t in thresholds):
        parser.error(f"--thresholds {args.thresholds!r}: expected comma-separated curriculum thresholds in (0, 1]")
    args.thresholds = thresholds

    import torch

    from wavezoo.paper.table1 import markdown_table, selection_table, summarize_table1

    started = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(max(1, int(args.limit)))
    folder = args.out / "table1"
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(f"torch {torch.__version__}, device {device}, limit {args.limit:.0f} s", flush=True)
    seeds = list(range(args.seeds))
    try:
        first = run_phase("phase 1 (open cells)", OPEN_CELLS, seeds, args, folder)
        left = args.limit - (time.perf_counter() - started) - 20  # 20 s for the summary
        rest = [cell for cell in GRID if cell not in OPEN_CELLS]
        if first is not None and left > 0:
            per_member = first / (len(OPEN_CELLS) * len(seeds) * len(args.thresholds))
            fit = min(len(seeds), int(left / per_member) // (len(rest) * len(args.thresholds)))
            if fit >= 1:
                run_phase(f"phase 2 (the other {len(rest)} cells, {fit} seeds)", rest, seeds[:fit], args, folder)
            else:
                print(f"phase 2 skipped: {left:.0f} s left, {per_member * len(rest):.0f} s per seed of 21 cells")
    except OutOfTime:
        print(f"stopped at the {args.limit:.0f} s limit; finished runs are in {folder}", flush=True)
    finally:
        signal.alarm(0)
    if not list(folder.glob("*.json")):
        print("no run finished")
        sys.exit(1)
    rows = summarize_table1(folder, thresholds=args.thresholds)
    print(markdown_table(rows, seeds_per_cell=args.seeds))
    print(selection_table(rows))
    print(json.dumps({"seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
