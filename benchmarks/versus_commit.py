"""train_T1 steps of this checkout against an earlier commit, in one process, on the same batch.

    python -m benchmarks.versus_commit 9c85c4a [--families elman,twm_lbc,sbc_transformer] [--rounds 5] [--threads 2]

Separate processes on a small shared machine can differ by 1.5x in the same code (thread placement: a 2-thread step
of ``twm_lbc`` measured 3.5 ms in some processes and 5.9 ms in others), so a before/after figure from two runs of
:mod:`benchmarks.run` is partly a draw. Here the commit's ``wavezoo`` package is extracted with ``git archive``,
renamed (``wavezoo_at_<rev>``, its imports rewritten) and imported beside this checkout's, and the two step
functions alternate in the same process: ``--rounds`` rounds of one :func:`benchmarks.measure.median_ms` each,
before then after. Each family is built in both versions with the same seed and the same sizes as the train_T1
rows of :mod:`benchmarks.run`, and trains by its default training form (this checkout: ``training_forward``;
a commit without it: ``forward``). It prints the median over rounds of each and the ratio before / after.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import wavezoo
from benchmarks.measure import median_ms
from wavezoo.data import VariableBindingDataModule

HIDDEN = {"elman": 128, "gru": 128, "lstm": 128, "irnn": 128, "transformer": 64}  # as benchmarks/run.py train_T1
IMPORT = re.compile(r"\bwavezoo(?=[.\s,;)]|$)", re.MULTILINE)  # the package name where code names it


def import_commit(rev: str, root: Path) -> object:
    """The ``wavezoo`` package of commit ``rev`` imported as ``wavezoo_at_<rev>`` (extracted under ``root``)."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "wavezoo"], capture_output=True, check=False)
    if archive.returncode:
        raise SystemExit(f"git archive {rev!r} failed: {archive.stderr.decode().strip()}")
    name = f"wavezoo_at_{re.sub(r'[^0-9A-Za-z]', '_', rev)}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    package = root / name
    (root / "wavezoo").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(IMPORT.sub(name, path.read_text()))
    sys.path.insert(0, str(root))
    return importlib.import_module(name)


def train_step(package, family: str, batch: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    """One Adam step of ``family`` from ``package`` on ``batch`` (x, y, mask), seed 0."""
    x, y, mask = batch
    torch.manual_seed(0)
    model = package.create_model(family, input_size=8, output_size=8, hidden_size=HIDDEN.get(family))
    forward = getattr(model, "training_forward", None) or (lambda x, y: model(x))
    optim = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        optim.zero_grad()
        F.mse_loss(forward(x, y)[mask], y[mask]).backward()
        optim.step()

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the earlier commit (anything git archive accepts)")
    parser.add_argument("--families", default="elman,twm_lbc,sbc_transformer")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per timing")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    families = [name.strip() for name in args.families.split(",") if name.strip()]
    unknown = [name for name in families if not wavezoo.is_model(name)]
    if unknown or args.rounds < 1:
        raise SystemExit(f"--families {unknown} unknown (models: {wavezoo.list_models()})" if unknown
                         else f"--rounds {args.rounds}: expected at least 1")  # fmt: skip
    with tempfile.TemporaryDirectory() as root:
        before = import_commit(args.rev, Path(root))
        data = VariableBindingDataModule("T1", horizons=[100])
        batch = data.next_train_batch()
        print(f"train_T1 (B64 L108, one Adam step), {args.threads} threads, median of {args.rounds} alternating "
              f"rounds, ms; before = {args.rev}, after = this checkout")  # fmt: skip
        print("| family | before | after | before / after |\n|---|---|---|---|")
        for family in families:
            if not before.is_model(family):
                print(f"| {family} | (not in {args.rev}) | | |")
                continue
            steps = {"before": train_step(before, family, batch), "after": train_step(wavezoo, family, batch)}
            times: dict[str, list[float]] = {key: [] for key in steps}
            for _ in range(args.rounds):
                for key, step in steps.items():
                    times[key].append(median_ms(step, args.min_run_time))
            old, new = (statistics.median(times[key]) for key in ("before", "after"))
            print(f"| {family} | {old:.2f} | {new:.2f} | {old / new:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
