"""Retraining the published checkpoints from their manifest recipes: the code of ``scripts/train_checkpoints.py``.

For each selected entry: run ``wavezoo fit`` as a subprocess (``OMP_NUM_THREADS=1``), take the best checkpoint by
``val/loss``, strip it to ``checkpoints/<name>.ckpt``, copy the run's resolved config to ``checkpoints/<name>.yaml``,
re-run the test set (:func:`~wavezoo.pretrained.evaluate_entry`, as the tests do) and write what was measured
into the manifest, atomically.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wavezoo.errors import ConfigError, WavezooError
from wavezoo.pretrained.loading import _load_entry, compare_metrics, evaluate_entry, strip_checkpoint
from wavezoo.pretrained.manifest import (
    is_published,
    read_manifest,
    readable,
    repo_root,
    sha256_file,
    update_entry,
)

_PUBLISH_LOCK = threading.Lock()  # one evaluation and one manifest update at a time


def wavezoo_program() -> tuple[list[str], str]:
    """How to run the CLI (argv prefix) and how the recorded command names it."""
    script = Path(sys.executable).with_name("wavezoo")
    if script.is_file():
        return [os.fspath(script)], "wavezoo"
    return [sys.executable, "-m", "wavezoo.cli"], "python -m wavezoo.cli"


def fit_args(entry: dict[str, Any], run_dir: str) -> list[str]:
    """The arguments of ``wavezoo fit`` for a recipe; ``max_steps: null`` keeps the config's own."""
    args = ["fit", "--config", entry["source_config"], *entry["overrides"], "--seed_everything", str(entry["seed"])]
    if entry["max_steps"] is not None:
        args += ["--trainer.max_steps", str(entry["max_steps"])]
    return [
        *args,
        "--trainer.default_root_dir",
        run_dir,
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
    ]


def best_checkpoint(folder: Path) -> tuple[Path, float | None]:
    """The best checkpoint by the ModelCheckpoint of the run (recorded in ``last.ckpt``) and its score."""
    from wavezoo.trust import read_checkpoint

    last = folder / "last.ckpt"
    if last.is_file():
        state = read_checkpoint(last)
        for key, saved in (state.get("callbacks") or {}).items():
            if key.startswith(("ModelCheckpoint", "RunCheckpoint")) and saved.get("best_model_path"):
                best = folder / Path(saved["best_model_path"]).name
                score = saved.get("best_model_score")
                if best.is_file():
                    return best, None if score is None else float(score)
    candidates = sorted(folder.glob("best-step*.ckpt"))
    if len(candidates) == 1:
        return candidates[0], None
    if last.is_file():  # no validation ran
        return last, None
    raise ConfigError(f"the run wrote no checkpoint under {folder}")


def publish(entry: dict[str, Any], manifest_file: Path, run_dir: Path, command: str, wall_s: float) -> dict:
    """Strip the best checkpoint of ``run_dir`` beside the manifest, evaluate it, record it in the manifest."""
    import lightning
    import torch
    import yaml

    import wavezoo
    from wavezoo.lit.reliability import AtomicCheckpointIO
    from wavezoo.trust import read_checkpoint

    name, folder = entry["name"], manifest_file.parent
    best, score = best_checkpoint(run_dir / "checkpoints")
    raw = read_checkpoint(best)
    hparams = raw["hyper_parameters"]
    if entry.get("family") and entry["family"] != hparams["model"]:
        raise ConfigError(f"{name}: the manifest says family {entry['family']!r}, the run trained {hparams['model']!r}")
    target = folder / f"{name}.ckpt"
    AtomicCheckpointIO().save_checkpoint(strip_checkpoint(raw, name), target)
    readable(target)
    resolved_text = (run_dir / "config.yaml").read_text()
    resolved = yaml.safe_load(resolved_text)
    header = (
        f"# Resolved config of the training run of the published checkpoint {name} (checkpoints/manifest.json).\n"
        f"# Re-evaluate from the repository root: wavezoo test --config checkpoints/{name}.yaml "
        f"--ckpt_path checkpoints/{name}.ckpt\n"
    )
    (folder / f"{name}.yaml").write_text(header + resolved_text)
    measured = {
        "family": hparams["model"],
        "lit_class": resolved["model"]["class_path"],
        "sizes": {k: hparams[k] for k in ("input_size", "output_size", "hidden_size")},
        "model_kwargs": hparams.get("model_kwargs") or {},
        "datamodule": {"class_path": resolved["data"]["class_path"], "init_args": resolved["data"]["init_args"]},
        "file": target.name,
        "config": f"{name}.yaml",
        "command": command,
        "wall_s": round(wall_s, 1),
        "metrics": {},
        "parameters": 0,
        "sha256": sha256_file(target),
        "size_bytes": target.stat().st_size,
        "wavezoo_version": wavezoo.__version__,
        "torch_version": torch.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lightning_version": lightning.__version__,
        "step": raw.get("global_step"),
        "best_val_loss": score,
    }
    record = {**entry, **measured}
    record["parameters"] = sum(p.numel() for p in _load_entry(record, folder).net.parameters())
    record["metrics"] = evaluate_entry(record, folder)
    update_entry(manifest_file, record)
    return record


def train_entry(entry: dict[str, Any], manifest_file: Path, runs_dir: Path, *, dry_run: bool = False) -> dict | None:
    """Train one recipe (``wavezoo fit`` in a subprocess, cwd = the repository root) and publish it."""
    root = repo_root()
    run_dir = (runs_dir if runs_dir.is_absolute() else root / runs_dir) / entry["name"]
    shown = os.path.relpath(run_dir, root) if run_dir.is_relative_to(root) else os.fspath(run_dir)
    program, program_name = wavezoo_program()
    args = fit_args(entry, shown)
    command = "OMP_NUM_THREADS=1 " + shlex.join([program_name, *args])
    if dry_run:
        print(command, flush=True)
        return None
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    log = run_dir / "train.log"
    print(f"{entry['name']}: training, log in {log}", flush=True)
    start = time.perf_counter()
    with open(log, "w") as fh:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        code = subprocess.run([*program, *args], cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if code != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(empty log)"]
        raise ConfigError(f"{entry['name']}: `{command}` exited with status {code}: {tail[0]} (log: {log})")
    with _PUBLISH_LOCK:
        return publish(entry, manifest_file, run_dir, command, wall)


def verify_entry(entry: dict[str, Any], folder: Path) -> list[str]:
    """Problems of a published entry: checksum (raises), then metrics not reproduced by a fresh evaluation."""
    return compare_metrics(evaluate_entry(entry, folder), entry["metrics"])


def _metrics_line(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())


def markdown_table(entries: list[dict[str, Any]]) -> str:
    """The published entries as a Markdown table: name, family, parameters, test metrics, steps, wall time, size."""
    lines = [
        "| checkpoint | family | parameters | test accuracy | test loss | best at step | wall time | file size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        metrics = e.get("metrics", {})
        acc = metrics.get("test/acc")
        lines.append(
            f"| `{e['name']}` | `{e['family']}` | {e['parameters']:,} | "
            f"{'-' if acc is None else f'{acc:.4f}'} | {metrics.get('test/loss', float('nan')):.3g} | "
            f"{e.get('step')} | {e['wall_s'] / 60:.1f} min | {e['size_bytes'] / 1e6:.2f} MB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="train_checkpoints.py",
        description="Retrain the published checkpoints of the manifest from their recipes and record the results.",
    )
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--only", nargs="+", metavar="NAME", help="these entries")
    chosen.add_argument("--all", action="store_true", help="every entry")
    chosen.add_argument("--missing", action="store_true", help="the recipes not trained yet (no measured fields)")
    chosen.add_argument("--table", action="store_true", help="print the published checkpoints as a Markdown table")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel, one thread each (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the training commands, run nothing")
    parser.add_argument(
        "--verify", action="store_true", help="train nothing: check sha256 and re-evaluate the selected checkpoints"
    )
    parser.add_argument("--manifest", help="manifest file or folder (default: $WAVEZOO_CHECKPOINTS or checkpoints/)")
    parser.add_argument("--runs-dir", default="runs/pretrained", help="training runs go to <runs-dir>/<name>")
    opts = parser.parse_args(argv)
    try:
        return _run(opts)
    except WavezooError as err:
        print(f"train_checkpoints: error: {err}", file=sys.stderr)
        return 2


def _run(opts: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    index = read_manifest(opts.manifest)
    if opts.table:
        print(markdown_table(index.published()))
        return 0
    if opts.only:
        entries = [index.get(name) for name in opts.only]
    else:
        entries = [e for e in index.entries if opts.all or opts.verify or not is_published(e)]
    if opts.verify:
        failed = 0
        for entry in [e for e in entries if is_published(e)]:
            problems = verify_entry(entry, index.folder)
            failed += bool(problems)
            print(f"{entry['name']}: sha256 ok, {'; '.join(problems) or 'metrics reproduced'}", flush=True)
        return 1 if failed else 0
    if not entries:
        print("nothing to train", flush=True)
        return 0
    runs_dir = Path(opts.runs_dir)
    if opts.dry_run:
        for entry in entries:
            train_entry(entry, index.path, runs_dir, dry_run=True)
        return 0
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        futures = {pool.submit(train_entry, e, index.path, runs_dir): e["name"] for e in entries}
        for future in as_completed(futures):
            try:
                record = future.result()
                print(f"{record['name']}: published in {record['wall_s']:.0f} s: {_metrics_line(record['metrics'])}")
            except Exception as err:  # report it and go on with the other entries
                failed += 1
                what = "" if isinstance(err, WavezooError) else f"{type(err).__name__}: "
                print(f"train_checkpoints: error: {futures[future]}: {what}{err}", file=sys.stderr, flush=True)
    return 1 if failed else 0
