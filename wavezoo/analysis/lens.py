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

from wavezoo.analysis.basis import task_cells, wave_basis
from wavezoo.analysis.claims import TASKS, evaluate_claims, fresh_copy, reference_lens
from wavezoo.analysis.linearize import linearize
from wavezoo.analysis.plots import curves_figure, lattice_figure, matrices_figure, save_figures, spectra_figure
from wavezoo.analysis.spectra import count_above, eigenvalues, task_operator
from wavezoo.core.accuracy import sign_accuracy
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


def lens_pictures(net: torch.nn.Module, task: str | None, history: int = 8) -> dict[str, torch.Tensor]:
    """Psi^+ W_hh Psi (paper's basis, the task's cells) and the '315' lattice of one network, for the figures."""
    lin = linearize(net)
    cells = task_cells(task, history, lin.w_r.shape[0]) if task is not None else None
    basis = wave_basis(lin.w_hh, lin.w_r, history, cells)
    out = {"weights": basis.weights(lin.w_hh)}
    if lin.hidden_states is not None and lin.w_r.shape[0] == 8 and history == 8:
        with torch.no_grad():
            out["lattice_315"] = basis.lattice(lin.hidden_states(bitmap_315())[0])
    return out


def wave_lens(
    net: torch.nn.Module,
    task: str | None = None,
    history: int = 8,
    inputs: torch.Tensor | None = None,
    fresh: torch.nn.Module | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure the wave structure of ``net``; returns (JSON-ready report, matplotlib figures).

    Args:
        task: a variable-binding preset (T1..T4): evaluate claims C6-C9 with controls; ``None`` = the spectrum and
            the plain wave basis only.
        history: s, the lattice length of the basis (8 for the paper's tasks).
        inputs: test inputs ``[B, T, d]`` of the task (needed with ``task``).
        fresh: the same architecture at initialisation, drawn beside the trained network in the figures
            (default: seed 0 of the untrained controls).
    """
    check_task(task)
    net.eval()
    lin = linearize(net)
    w_hh = lin.w_hh.detach().double()
    learned = eigenvalues(w_hh)
    result: dict[str, Any] = {
        "hidden_size": w_hh.shape[0],
        "large_eigenvalues": count_above(learned, 0.8),
        "spectral_radius": float(learned.abs().max()),
    }
    theory = None
    if task is not None:
        if inputs is None:
            raise ConfigError("the wave lens needs test inputs of the task to evaluate the claims")
        result |= evaluate_claims(net, task, inputs, history)
        theory = eigenvalues(task_operator(task))
    if fresh is None:
        try:
            fresh = fresh_copy(net, 0)
        except ConfigError:
            fresh = None
    mine = lens_pictures(net, task, history)
    label = f"{task}: " if task else ""
    matrices = {f"{label}trained Psi+ W_hh Psi": mine["weights"]}
    if task is not None:
        ref, m = reference_lens(task, history)
        matrices[f"{label}exact TWM, same lens"] = ref.weights(m)
    panels = {f"{task or 'learned'} (trained)": (theory, learned)}
    figures: dict[str, Any] = {}
    base = None
    if fresh is not None:
        base = lens_pictures(fresh, task, history)
        matrices[f"{label}untrained Psi+ W_hh Psi"] = base["weights"]
        panels[f"{task or 'learned'} (untrained)"] = (theory, eigenvalues(linearize(fresh).w_hh))
    figures["spectrum"] = spectra_figure(panels)
    figures["w_hh_wave_basis"] = matrices_figure(matrices)
    if "lattice_315" in mine:
        figures["hidden_state_315"] = lattice_figure(mine["lattice_315"], WAVE_FRAMES, "'315', trained")
        if base is not None and "lattice_315" in base:
            figures["hidden_state_315_untrained"] = lattice_figure(base["lattice_315"], WAVE_FRAMES, "'315', untrained")
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
    ckpt: str | Path, out: Path, task: str | None = None, history: int = 8, json_path: Path | None = None
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

        data = VariableBindingDataModule(task)
        inputs = data.eval_set("test")[0][0][:32, :40]
    result, figures = wave_lens(net, task, history, inputs, fresh)
    result = {"checkpoint": str(ckpt), "model": hp["model"], **result}
    if task is not None:
        result["test_acc_h200"] = sign_accuracy(net, data.eval_set("test"))
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
            for name, value in entry["controls"].items():
                writer.add_scalar(f"claims/{claim}/{name}", value)
        save_figures(figures, out, writer)
    return result


CLAIM_NAMES = {
    "C6": "spectral error (rad), lower is better",
    "C7": "loop-closure cosine vs the TWM (construction-fixed columns excluded)",
    "C8": "wave-basis activity vs true window (correlation)",
    "C9": "Jacobian ||dh(t)/du(t-k)|| per-step factor, lags 1..7",
}


def report(result: dict[str, Any]) -> list[str]:
    """Human-readable lines of a lens result: each figure beside its controls, and the verdict."""
    lines = [f"model {result.get('model', '?')}, hidden {result['hidden_size']}"]
    if "test_acc_h200" in result:
        lines.append(f"test accuracy at horizon 200: {result['test_acc_h200']:.4f}")
    theory = f" (theory {result['theory_large_eigenvalues']})" if "theory_large_eigenvalues" in result else ""
    lines.append(f"eigenvalues |lambda| > 0.8: {result['large_eigenvalues']}{theory}")
    lines.append(f"spectral radius: {result['spectral_radius']:.3f}")
    if "claims" in result:
        lines.append(
            f"task {result['task']}: wave basis = plain power iteration from pinv(W_r), {result['wave_basis_cells']} "
            f"cells, condition number {result['wave_basis_condition']:.1f}"
        )
        for claim, entry in result["claims"].items():
            controls = ", ".join(f"{k} {v:.3f}" for k, v in entry["controls"].items())
            verdict = "HOLDS" if entry["holds"] else "does not hold"
            lines.append(
                f"{claim} {CLAIM_NAMES[claim]}: trained {entry['score']:.3f} | controls: {controls} | margin "
                f"{entry['margin']} -> {verdict}"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    """``wavezoo analyze``: the wave lens on a checkpoint."""
    parser = argparse.ArgumentParser(prog="wavezoo analyze", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--ckpt", required=True, help="a wavezoo Lightning checkpoint (.ckpt)")
    parser.add_argument("--task", default=None, help="compare with this TWM task (T1..T4)")
    parser.add_argument("--history", type=int, default=8, help="lattice length s of the wave basis")
    parser.add_argument("--out", type=Path, default=Path("analysis_out"))
    parser.add_argument("--json", type=Path, default=None, help="also write the machine-readable report here")
    args = parser.parse_args(argv)
    result = analyze_checkpoint(args.ckpt, args.out, args.task, args.history, args.json)
    print("\n".join(report(result)))
    print(f"wrote {args.out}/analysis.json, PNG figures and TensorBoard events")
