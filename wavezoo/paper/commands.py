"""``wavezoo-paper`` (or ``python -m wavezoo.paper``): one subcommand per claim of the paper.

* ``theorem``   C1-C4 on exact constructions (Theorem 3.1, LBC algebra, SBC = attention-only transformer).
* ``table1``    C5/C6: the Elman RNN on T1..T4 x hidden x L2 x seeds with the paper's protocol (resumable sweep).
* ``spectra``   C6: eigenvalues of the trained W_hh against the TWM operator of each task.
* ``waves``     C6-C9 with controls that break function (untrained seeds, Gaussian W_hh of the same spectral radius,
                scramble Q W_hh Q^T, rotated Q on all three maps, task mismatch), each with its task accuracy, and a
                verdict per claim; C7/C8 in the task-free wave basis (the task-derived variant beside it); W_hh in
                that basis and the "315" bitmap beside an untrained network.
* ``gradients`` C9: ||dh(t)/du(t-k)|| by lag at initialisation and after training, for every family.
* ``analyze``   the wave lens on any checkpoint (same as ``wavezoo analyze``).

Each prints its figures next to the paper's, writes ``<command>.json`` and PNG files to ``--out`` and logs both to
TensorBoard under ``--out/tensorboard/<command>``. ``--quick`` runs a reduced version in about a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wavezoo.errors import WavezooError

TASKS = ("T1", "T2", "T3", "T4")


def _log(out: Path, command: str, rows, figures) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from wavezoo.analysis.plots import save_figures

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{command}.json").write_text(json.dumps(rows, indent=1))
    with SummaryWriter(str(out / "tensorboard" / command)) as writer:
        for index, row in enumerate(rows if isinstance(rows, list) else [rows]):
            label = "/".join(str(row[k]) for k in ("task", "model", "stage") if k in row) or str(index)
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(f"{command}/{label}/{key}", value)
        save_figures(figures, out, writer)


def _print_rows(rows: list[dict], columns: list[str]) -> None:
    print("  ".join(f"{c:>14}" for c in columns))
    for row in rows:
        cells = []
        for c in columns:
            value = row
            for part in c.split("/"):
                value = value.get(part) if isinstance(value, dict) else None
            cells.append(f"{value:>14.4g}" if isinstance(value, float) else f"{value!s:>14}")
        print("  ".join(cells))


def _ckpts(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        task, sep, path = pair.partition("=")
        if not sep or task not in TASKS:
            raise WavezooError(f"--ckpt {pair!r}: expected TASK=PATH with TASK in {', '.join(TASKS)}")
        out[task] = path
    return out


def _values(text: str, kind: type, option: str, lowest: float | None = None, choices: tuple = ()) -> list:
    """A comma-separated option as a list of ``kind``, each >= ``lowest`` or in ``choices``; errors name the value."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise WavezooError(f"{option} {text!r}: expected a comma-separated list of {kind.__name__} values") from None
    if not values:
        raise WavezooError(f"{option} {text!r}: expected at least one value")
    if choices and not set(values) <= set(choices):
        raise WavezooError(f"{option} {text!r}: each value must be one of {', '.join(choices)}")
    if lowest is not None and min(values) < lowest:
        raise WavezooError(f"{option} {text!r}: every value must be >= {lowest}")
    return values


def _thresholds(text: str) -> tuple[float, ...]:
    """``--thresholds``: curriculum thresholds in (0, 1], sorted, each once."""
    values = _values(text, float, "--thresholds")
    if not all(0 < v <= 1 for v in values):
        raise WavezooError(f"--thresholds {text!r}: every curriculum threshold must be in (0, 1]")
    return tuple(sorted(set(values)))


def _device(name: str) -> str:
    """``--device``: ``cpu`` or ``cuda`` (``cuda:I``), the latter only where torch sees a GPU."""
    import torch

    if name != "cpu" and not name.startswith("cuda"):
        raise WavezooError(f"--device {name!r}: expected cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WavezooError(f"--device {name!r}: torch sees no CUDA device here; use --device cpu")
    return name


def run(args: argparse.Namespace) -> None:
    from wavezoo.paper import trained
    from wavezoo.paper.table1 import table1
    from wavezoo.paper.theorem import theorem_checks

    ckpts = _ckpts(args.ckpt) if args.command in ("spectra", "waves") else {}
    tasks = sorted(ckpts) or (["T2"] if args.quick else list(TASKS))
    if args.command == "theorem":
        checks = theorem_checks()
        for name, value in checks.items():
            print(f"{name:<55} {value:.2e}   (exact: 0)")
        _log(args.out, "theorem", checks, {})
    elif args.command == "table1" and args.summary:
        from wavezoo.paper.table1 import markdown_table, summarize_table1, summary_name

        seeds, thresholds = _values(args.seeds, int, "--seeds", lowest=0), _thresholds(args.thresholds)
        rows = summarize_table1(args.out / "table1", seeds, thresholds)
        print(markdown_table(rows, seeds_per_cell=len(seeds)))
        print(f"wrote {args.out}/{summary_name(seeds, thresholds)}")
        return
    elif args.command == "table1":
        if args.quick:
            args.tasks, args.hidden, args.l2, args.seeds, args.steps = "T2", "128", "0,0.1", "0", 3000
        if args.steps < 1:
            raise WavezooError(f"--steps {args.steps}: expected a positive number of training steps")
        if args.max_members is not None and args.max_members < 1:
            raise WavezooError(f"--max-members {args.max_members}: expected a positive number of runs per ensemble")
        if args.workers < 0:
            raise WavezooError(f"--workers {args.workers}: expected a number of processes >= 0")
        if args.device != "cpu" and not args.ensemble:
            raise WavezooError(f"--device {args.device}: only with --ensemble (single runs train on the CPU)")
        rows = table1(
            _values(args.tasks, str, "--tasks", choices=TASKS), _values(args.hidden, int, "--hidden", lowest=1),
            _values(args.l2, float, "--l2", lowest=0), _values(args.seeds, int, "--seeds", lowest=0), args.steps,
            args.out, ensemble=args.ensemble, device=_device(args.device), max_members=args.max_members,
            pad_hidden=args.pad_hidden, workers=args.workers, thresholds=_thresholds(args.thresholds),
        )  # fmt: skip
        _log(args.out, "table1", rows, {})
    elif args.command == "spectra":
        rows, figures = trained.spectra(tasks, ckpts)
        _print_rows(rows, ["task", "test_acc_h200", "eig_count_above_0.8", "theory_count_above_0.8",
                           "spectral_error_rad", "paper/spectral_error_rad", "paper/test_acc_h200"])  # fmt: skip
        _log(args.out, "spectra", rows, figures)
    elif args.command == "waves":
        from wavezoo.analysis.lens import controls_table, report, verdict_table

        rows, figures = trained.waves(tasks, ckpts, eval_batches=2 if args.quick else 10)
        for row in rows:
            print("\n".join(report({"model": "elman", **row})))
        print("\n".join(controls_table(rows)))
        print("\n".join(verdict_table(rows)))
        _log(args.out, "waves", rows, figures)
    elif args.command == "gradients":
        models = trained.JACOBIAN_MODELS[:1] + trained.JACOBIAN_MODELS[4:7] if args.quick else None
        rows, figures = trained.gradients(models)
        _print_rows(rows, ["model", "stage", "lags", "jacobian_at_lag_1", "jacobian_at_max_lag", "decay_per_step"])
        _log(args.out, "gradients", rows, figures)
    else:
        from wavezoo.analysis.lens import analyze_checkpoint, report

        print("\n".join(report(analyze_checkpoint(args.ckpt[0] if args.ckpt else "", args.out, args.task))))
    print(f"wrote {args.out}/{args.command}.json, PNG figures and TensorBoard events ({args.out}/tensorboard)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="wavezoo-paper", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    for name, text in [
        ("theorem", "C1-C4 on exact constructions"),
        ("table1", "Table 1: Elman RNN on T1..T4 x hidden x L2 x seeds"),
        ("spectra", "C6: eigen-spectra of the trained Elman RNNs against the TWM operators"),
        ("waves", "C6-C9 with controls and verdicts; W_hh in the wave basis; the '315' bitmap"),
        ("gradients", "C9: Jacobian norm by lag, init vs trained, every family"),
        ("analyze", "the wave lens on a checkpoint"),
    ]:
        command = sub.add_parser(name, help=text)
        command.add_argument("--out", default=Path("paper_out"), type=Path)
        command.add_argument("--quick", action="store_true", help="a reduced version (about a minute on a CPU)")
        if name in ("spectra", "waves"):
            command.add_argument("--ckpt", nargs="*", default=[], help="TASK=PATH: your own checkpoints")
        if name == "analyze":
            command.add_argument("--ckpt", nargs=1, required=True)
            command.add_argument("--task", choices=TASKS, default=None)
        if name == "table1":
            command.add_argument("--tasks", default="T1,T2,T3,T4")
            command.add_argument("--hidden", default="64,128")
            command.add_argument("--l2", default="0,0.001,0.1")
            command.add_argument("--seeds", default="0,1,2,3,4")
            command.add_argument("--steps", type=int, default=20000, help="the authors' sweep: 10 x 2,000 batches")
            command.add_argument(
                "--thresholds",
                default="0.98",
                help="curriculum thresholds, one run per seed at each (the paper: 0.9,0.98); the summary takes each "
                "seed's best over its runs at these thresholds",
            )
            command.add_argument(
                "--ensemble",
                action="store_true",
                help="train the runs as batched ensembles (one per hidden size); same JSON files",
            )
            command.add_argument("--device", default="cpu", help="with --ensemble: cpu or cuda")
            command.add_argument("--max-members", type=int, default=None, help="with --ensemble: runs per ensemble")
            command.add_argument(
                "--pad-hidden", action="store_true", help="with --ensemble: one ensemble for all sizes (zero-padded)"
            )
            command.add_argument("--workers", type=int, default=0, help="with --ensemble: processes drawing batches")
            command.add_argument(
                "--summary", action="store_true", help="train nothing: the runs of --seeds in --out as a Markdown table"
            )
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        run(args)
    except WavezooError as err:
        print(f"wavezoo-paper: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
