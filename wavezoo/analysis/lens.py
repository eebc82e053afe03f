"""The wave lens on one model (claims C6-C9): spectrum, the paper's wave basis, hidden-state waves, Jacobian by lag.

``wavezoo analyze --ckpt PATH [--task T1..T4] [--json FILE] [--out DIR]`` runs it on any checkpoint of a family that
:func:`~wavezoo.analysis.linearize.linearize` supports and writes ``analysis.json``, PNG figures and a TensorBoard
event file to ``--out``. With a variable-binding task (read from the checkpoint or given) it evaluates claims C6-C9
with their controls (:mod:`wavezoo.analysis.claims`: untrained seeds, a random W_hh of the same spectral radius,
the network scored against the other tasks) and prints each figure beside its controls and a verdict.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from wavezoo.analysis.claims import EVAL_BATCHES, TASKS, View, evaluate_views, look, reference_lens
from wavezoo.analysis.controls import fresh_copy
from wavezoo.analysis.plots import curves_figure, lattice_figure, matrices_figure, save_figures, spectra_figure
from wavezoo.analysis.spectra import count_above, eigenvalues, task_operator
from wavezoo.errors import ConfigError
from wavezoo.registry import build_model

THEORY_COUNT = {"T1": 64, "T2": 36, "T3": 36, "T4": 36}
#: The "315" demonstration input: 8 bitmap rows of the digits 3, 1, 5 (+1 = ink), fed as the 8 input vectors.
BITMAP_315 = [[2, 4, 6], [2, 3, 4, 5, 6], [], [2, 3, 4, 5, 6], [], [2, 3, 4, 6], [2, 4, 5, 6], []]
WAVE_FRAMES = [1, 2, 3, 4, 5, 14, 15, 16, 17, 18]  # the paper's frames


def bitmap_315(extra_steps: int = 12) -> torch.Tensor:
    """``[1, 8 + extra_steps, 8]``: the 315 bitmap rows (+-1) as 8 inputs, then zero input."""
    x = -torch.ones(1, 8 + extra_steps, 8)
    for t, ink in enumerate(BITMAP_315):
        x[0, t, ink] = 1.0
    x[0, 8:] = 0.0
    return x


def check_task(task: str | None) -> None:
    if task is not None and task not in THEORY_COUNT:
        raise ConfigError(f"task={task!r} is unknown: the wave lens compares with the presets {', '.join(TASKS)}")


def lens_pictures(view: View, task: str | None = None) -> dict[str, torch.Tensor]:
    """Psi^+ W_hh Psi in the task-free wave basis and the '315' lattice of one network's view, for the figures."""
    basis = view.basis()
    out = {"weights": basis.weights(view.w_hh), "cells": basis.cells}
    if view.hidden_states is not None and view.w_r.shape[0] == 8 and view.history == 8:
        with torch.no_grad():
            out["lattice_315"] = basis.lattice(view.hidden_states(bitmap_315()).double()[0])
    return out


def wave_lens(
    net: torch.nn.Module,
    task: str | None = None,
    history: int = 8,
    inputs: torch.Tensor | None = None,
    fresh: torch.nn.Module | None = None,
    eval_batches: int = EVAL_BATCHES,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure the wave structure of ``net``; returns (JSON-ready report, matplotlib figures).

    Every network is linearised once (:func:`~wavezoo.analysis.claims.look`); the figures reuse those views.

    Args:
        task: a variable-binding preset (T1..T4): evaluate claims C6-C9 with controls; ``None`` = the spectrum and
            the task-free wave basis only.
        history: s, the lattice length of the basis (8 for the paper's tasks).
        inputs: test inputs ``[B, T, d]`` of the task (needed with ``task``).
        fresh: without a task, the same architecture at initialisation drawn beside the trained network (default:
            seed 0); with a task the figures draw the control ``untrained_seed0`` (the same network).
        eval_batches: test batches (of 64 sequences, horizon 200) behind every network's accuracy.
    """
    check_task(task)
    net.eval()
    if task is not None:
        if inputs is None:
            raise ConfigError("the wave lens needs test inputs of the task to evaluate the claims")
        result, views = evaluate_views(net, task, inputs, history, eval_batches=eval_batches)
        mine, base = views["trained"], views.get("untrained_seed0")
        theory = eigenvalues(task_operator(task, dim=mine.w_r.shape[0], history=history))
    else:
        mine, theory = look(net, history), None
        if fresh is None:
            try:
                fresh = fresh_copy(net, 0)
            except ConfigError:
                fresh = None
        base = look(fresh, history) if fresh is not None else None
        result = {
            "hidden_size": mine.w_hh.shape[0],
            "large_eigenvalues": count_above(mine.eigs, 0.8),
            "spectral_radius": float(mine.eigs.abs().max()),
            "wave_basis_cells": len(mine.free_cells()),
            "wave_basis_condition": mine.basis().condition(),
        }
    pictures = lens_pictures(mine)
    label = f"{task}: " if task else ""
    matrices = {f"{label}trained Psi+ W_hh Psi (task-free basis)": pictures["weights"]}
    if task is not None:
        ref, m = reference_lens(task, history, mine.w_r.shape[0], pictures["cells"])
        matrices[f"{label}exact TWM, same cells"] = ref.weights(m)
    panels = {f"{task or 'learned'} (trained)": (theory, mine.eigs)}
    figures: dict[str, Any] = {}
    base_pictures = None
    if base is not None:
        base_pictures = lens_pictures(base)
        matrices[f"{label}untrained Psi+ W_hh Psi"] = base_pictures["weights"]
        panels[f"{task or 'learned'} (untrained)"] = (theory, base.eigs)
    figures["spectrum"] = spectra_figure(panels)
    figures["w_hh_wave_basis"] = matrices_figure(matrices)
    if "lattice_315" in pictures:
        figures["hidden_state_315"] = lattice_figure(pictures["lattice_315"], WAVE_FRAMES, "'315', trained")
        if base_pictures is not None and "lattice_315" in base_pictures:
            figures["hidden_state_315_untrained"] = lattice_figure(
                base_pictures["lattice_315"], WAVE_FRAMES, "'315', untrained"
            )
    if "jacobian_by_lag" in result:
        figures["jacobian_by_lag"] = curves_figure(
            result["jacobian_by_lag"], "lag k", "||dh(t)/du(t-k)||", title="Jacobian by lag (t = last input)"
        )
    return result, figures


def model_from_checkpoint(path: str | Path, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, dict, dict]:
    """(trained net, the same architecture freshly initialised with ``seed``, model hparams, data hparams)."""
    from wavezoo.trust import net_from_checkpoint, read_checkpoint

    checkpoint = read_checkpoint(path)
    hp = checkpoint.get("hyper_parameters", {})
    if "model" not in hp:
        raise ConfigError(f"checkpoint {str(path)!r} was not written by a wavezoo LightningModule (no 'model')")
    net = net_from_checkpoint(checkpoint, f"checkpoint {str(path)!r}")
    config = net.wavezoo_config
    torch.manual_seed(seed)
    fresh = build_model(config["family"], **config["sizes"], **config["model_kwargs"]).eval()
    return net, fresh, hp, checkpoint.get("datamodule_hyper_parameters", {})


def analyze_checkpoint(
    ckpt: str | Path,
    out: Path,
    task: str | None = None,
    history: int = 8,
    json_path: Path | None = None,
    eval_batches: int = EVAL_BATCHES,
) -> dict[str, Any]:
    """The wave lens on a checkpoint; writes ``analysis.json``, PNGs and TensorBoard events to ``out`` (and the
    report to ``json_path``)."""
    from torch.utils.tensorboard import SummaryWriter

    check_task(task)
    net, fresh, hp, data_hp = model_from_checkpoint(ckpt)
    task = task or (data_hp.get("task") if data_hp.get("task") in THEORY_COUNT else None)
    inputs = None
    if task is not None:
        from wavezoo.data import VariableBindingDataModule

        inputs = VariableBindingDataModule(task).eval_set("test")[0][0][:32, :40]
    result, figures = wave_lens(net, task, history, inputs, fresh, eval_batches)
    result = {"checkpoint": str(ckpt), "model": hp["model"], **result}
    if task is not None:  # the claims measured it on the whole test set (horizon 200)
        result["test_acc_h200"] = result["accuracy"]
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1)
    (out / "analysis.json").write_text(text)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text)
    with SummaryWriter(str(out / "tensorboard")) as writer:
        for key, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(f"lens/{key}", value)
        for claim, entry in result.get("claims", {}).items():
            writer.add_scalar(f"claims/{claim}/score", entry["score"])
            for name, control in entry["controls"].items():
                writer.add_scalar(f"claims/{claim}/{name}", control["score"])
        save_figures(figures, out, writer)
    return result


CLAIM_NAMES = {
    "C6": "spectral error (rad), lower is better",
    "C7": "loop-closure cosine vs the TWM, task-free basis",
    "C8": "wave-basis activity vs true window, task-free basis",
    "C9": "Jacobian ||dh(t)/du(t-k)|| per-step factor, lags 1..7",
    "C7_task_cells": "loop-closure cosine, TASK-DERIVED cells",
    "C8_task_cells": "wave-basis activity, TASK-DERIVED cells",
}


def _control(name: str, entry: dict[str, Any]) -> str:
    acc = "n/a" if entry["accuracy"] is None else f"{entry['accuracy']:.2f}"
    return f"{name} {entry['score']:.3f} (acc {acc})"


def report(result: dict[str, Any]) -> list[str]:
    """Human-readable lines of a lens result: each figure beside its controls (with their accuracy), the verdict."""
    lines = [f"model {result.get('model', '?')}, hidden {result['hidden_size']}"]
    if "accuracy" in result:
        lines.append(f"test accuracy at horizon 200: {result['accuracy']:.4f} ({result['accuracy_batches']} batches)")
    theory = f" (theory {result['theory_large_eigenvalues']})" if "theory_large_eigenvalues" in result else ""
    lines.append(f"eigenvalues |lambda| > 0.8: {result['large_eigenvalues']}{theory}")
    lines.append(f"spectral radius: {result['spectral_radius']:.3f}")
    lines.append(
        f"wave basis (task-free): power iteration from pinv(W_r), {result['wave_basis_cells']} cells, condition "
        f"number {result['wave_basis_condition']:.1f}"
    )
    if "own_dynamics_kept" in result:
        kept = ", ".join(f"{k} {v:.3f}" for k, v in result["own_dynamics_kept"].items())
        lines.append(f"share of the network's own next-step drive on held-out inputs kept by the basis: {kept}")
    if "claims" in result:
        lines.append(f"task {result['task']}; task-derived basis: {result['task_cells']} cells")
        if result.get("controls_unavailable"):
            lines.append(f"controls not available for this family: {', '.join(result['controls_unavailable'])}")
        for claim, entry in result["claims"].items():
            controls = ", ".join(_control(k, v) for k, v in entry["controls"].items())
            checks = entry.get("tolerance_checks", {})
            tol = "".join(f"; at tolerance {t}: {c['score']:.3f}" for t, c in checks.items())
            lines.append(
                f"{claim} {CLAIM_NAMES[claim]}: trained {entry['score']:.3f}{tol} | controls: {controls} | margin "
                f"{entry['margin']} -> {entry['verdict'].upper() if entry['holds'] else entry['verdict']}"
            )
    return lines


def verdict_table(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table of lens results (one row per task and claim): the figure, the tolerance checks, the best
    control that fails the task, the controls that solve it, and the verdict."""
    lines = [
        "| task | claim | trained (acc) | tol 0.05 / 0.2 | best failing control | controls that solve it | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for claim, entry in row["claims"].items():
            failing = {k: v for k, v in entry["controls"].items() if not v["solves_task"] and v["score"] == v["score"]}
            pick = min if claim == "C6" else max
            best = pick(failing, key=lambda k: failing[k]["score"]) if failing else None
            best_text = f"{failing[best]['score']:.3f} ({best})" if best else "---"
            solving = ", ".join(f"{k} {v['score']:.3f}" for k, v in entry["controls"].items() if v["solves_task"])
            checks = " / ".join(f"{c['score']:.3f}" for c in entry.get("tolerance_checks", {}).values()) or "---"
            lines.append(
                f"| {row['task']} | {claim} | {entry['score']:.3f} ({row['accuracy']:.4f}) | {checks} | {best_text} | "
                f"{solving or '---'} | {entry['verdict']} |"
            )
    return lines


def controls_table(rows: list[dict[str, Any]], claims: tuple[str, ...] = ("C6", "C7", "C8", "C9")) -> list[str]:
    """A Markdown table of every control's figure (and, in the header rows, task accuracy) beside the trained one."""
    names = ["untrained_seed0", "untrained_seed1", "untrained_seed2", "gaussian", "scramble", "rotated"]
    lines = ["| task | claim | trained | " + " | ".join(names) + " | mismatch (other tasks) | shuffled time |",
             "|---" * (len(names) + 5) + "|"]  # fmt: skip

    def cell(entry: dict[str, Any] | None) -> str:
        return "---" if entry is None else f"{entry['score']:.3f}"

    for row in rows:
        mism = sorted(k for k in row["controls"] if k.startswith("mismatch_"))
        accs = [f"{row['controls'][n]['accuracy']:.2f}" if n in row["controls"] else "---" for n in names]
        lines.append(f"| {row['task']} | accuracy | {row['accuracy']:.4f} | " + " | ".join(accs) + " | "
                     + " / ".join(f"{row['controls'][m]['accuracy']:.2f}" for m in mism) + " | --- |")  # fmt: skip
        for claim in claims:
            controls = row["claims"][claim]["controls"]
            lines.append(
                f"| {row['task']} | {claim} | {row['claims'][claim]['score']:.3f} | "
                + " | ".join(cell(controls.get(n)) for n in names)
                + " | " + (" / ".join(cell(controls[m]) for m in mism if m in controls) or "---")
                + f" | {cell(controls.get('shuffled_time'))} |"
            )  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> None:
    """``wavezoo analyze``: the wave lens on a checkpoint."""
    parser = argparse.ArgumentParser(prog="wavezoo analyze", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--ckpt", required=True, help="a wavezoo Lightning checkpoint (.ckpt)")
    parser.add_argument("--task", default=None, help="compare with this TWM task (T1..T4)")
    parser.add_argument("--history", type=int, default=8, help="lattice length s of the wave basis")
    parser.add_argument("--out", type=Path, default=Path("analysis_out"))
    parser.add_argument("--json", type=Path, default=None, help="also write the machine-readable report here")
    parser.add_argument(
        "--eval_batches", type=int, default=EVAL_BATCHES, help="test batches of 64 behind each network's accuracy"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.eval_batches <= EVAL_BATCHES:
        raise ConfigError(f"--eval_batches {args.eval_batches}: expected 1..{EVAL_BATCHES} (the test set's batches)")
    result = analyze_checkpoint(args.ckpt, args.out, args.task, args.history, args.json, args.eval_batches)
    print("\n".join(report(result)))
    print(f"wrote {args.out}/analysis.json, PNG figures and TensorBoard events")
