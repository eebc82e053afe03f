"""The wave lens on one model (claims C5-C9): spectrum, wave basis, hidden-state waves, gradient by lag.

``wavezoo analyze --ckpt PATH [--task T1..T4] [--out DIR]`` runs it on any checkpoint of a family that
:func:`~wavezoo.analysis.linearize.linearize` supports and writes ``analysis.json``, PNG figures and a TensorBoard
event file to ``--out``. With a variable-binding task (read from the checkpoint or given) it also compares with
the task's TWM operator M: the spectral error of Table 1, Psi^+ W_hh Psi against M in the compressed wave basis,
and the "315" bitmap as a traveling wave.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from wavezoo.analysis.basis import boundary_blocks, compressed_cells, wave_basis
from wavezoo.analysis.gradients import decay_per_step, input_lag_profile
from wavezoo.analysis.linearize import linearize
from wavezoo.analysis.plots import curves_figure, lattice_figure, matrices_figure, save_figures, spectra_figure
from wavezoo.analysis.spectra import count_above, eigenvalues, spectral_error, task_operator
from wavezoo.core.accuracy import sign_accuracy
from wavezoo.errors import ConfigError

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


def wave_lens(
    net: torch.nn.Module,
    task: str | None = None,
    history: int = 8,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    fresh: torch.nn.Module | None = None,
    gradient_step: int = 24,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure the wave structure of ``net``; returns (figures as JSON-ready numbers, matplotlib figures).

    Args:
        task: a variable-binding preset (T1..T4) to compare with its TWM operator; ``None`` = spectrum and the
            plain power-iteration basis only.
        history: s, the lattice length of the basis (8 for the paper's tasks).
        batch: an evaluation batch ``(x, y, mask)`` for the gradient-by-lag study (regression targets).
        fresh: the same architecture at initialisation, for the before/after gradient comparison.
        gradient_step: the output step whose loss is differentiated (24 = 16 steps after the last input).
    """
    if task is not None and task not in THEORY_COUNT:
        raise ConfigError(f"task={task!r}: the wave lens compares with the presets {sorted(THEORY_COUNT)} only")
    net.eval()
    lin = linearize(net)
    w_hh, w_r = lin.w_hh.detach().double(), lin.w_r.detach().double()
    learned = eigenvalues(w_hh)
    result: dict[str, Any] = {
        "hidden_size": w_hh.shape[0],
        "eig_count_above_0.8": count_above(learned, 0.8),
        "spectral_radius": float(learned.abs().max()),
    }
    theory = None
    if task is not None:
        m = task_operator(task)
        theory, cells = eigenvalues(m), compressed_cells(m)
        basis = wave_basis(w_hh, w_r, history, boundary_blocks(m, history, w_r.shape[0]), cells)
        full = wave_basis(w_hh, w_r, history, boundary_blocks(m, history, w_r.shape[0]))
        result |= {
            "task": task,
            "theory_count_above_0.8": THEORY_COUNT[task],
            "spectral_error_rad": spectral_error(m, w_hh),
            "compressed_cells": len(cells),
            "wave_basis_distance": basis.distance(w_hh, m),
            "wave_basis_distance_uncompressed": full.distance(w_hh, m),
        } | basis.structure(w_hh, m)
        in_basis = {f"{task}: Psi+ W_hh Psi": basis.weights(w_hh), f"{task}: M (kept cells)": m[cells][:, cells]}
    else:
        basis = wave_basis(w_hh, w_r, history)
        in_basis = {"Psi+ W_hh Psi": basis.weights(w_hh)}
    figures = {
        "spectrum": spectra_figure({task or "learned": (theory, learned)}),
        "w_hh_wave_basis": matrices_figure(in_basis),
    }
    if lin.hidden_states is not None and w_r.shape[0] == 8 and history == 8:
        with torch.no_grad():
            lattice = basis.lattice(lin.hidden_states(bitmap_315())[0])
        result["wave_315_columns"] = travel_score(lattice)
        figures["hidden_state_315"] = lattice_figure(lattice, WAVE_FRAMES, "'315' in the wave basis")
    if batch is not None:
        x, y, _ = batch
        models = {"trained": net} | ({"init": fresh} if fresh is not None else {})
        profiles = {name: input_lag_profile(model, x, y, gradient_step) for name, model in models.items()}
        result["grad_norm_by_lag"] = profiles
        result["grad_decay_per_step"] = {name: decay_per_step(p) for name, p in profiles.items()}
        figures["gradient_by_lag"] = curves_figure(profiles, "lag", "||dL/du(t - lag)||", title="gradient by lag")
    return result, figures


def travel_score(lattice: torch.Tensor) -> float:
    """Mean correlation between the wave-basis column k at time t and column k - 1 at time t + 1 during the
    free run after the input phase (1 = every column moves one site per step, the traveling wave)."""
    a, b = lattice[8:-1, 1:].reshape(len(lattice) - 9, -1), lattice[9:, :-1].reshape(len(lattice) - 9, -1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)).mean())


def model_from_checkpoint(path: str | Path, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module, dict, dict]:
    """(trained net, the same architecture freshly initialised with ``seed``, model hparams, data hparams)."""
    from wavezoo.registry import create_model
    from wavezoo.trust import read_checkpoint

    checkpoint = read_checkpoint(path)
    hp = checkpoint.get("hyper_parameters", {})
    if "model" not in hp:
        raise ConfigError(f"checkpoint {str(path)!r} was not written by a wavezoo LightningModule (no 'model')")
    kwargs = {k: hp[k] for k in ("input_size", "output_size", "hidden_size")} | dict(hp.get("model_kwargs") or {})
    net = create_model(hp["model"], **kwargs)
    net.load_state_dict({k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")})
    torch.manual_seed(seed)
    return net.eval(), create_model(hp["model"], **kwargs).eval(), hp, checkpoint.get("datamodule_hyper_parameters", {})


def analyze_checkpoint(ckpt: str | Path, out: Path, task: str | None = None, history: int = 8) -> dict[str, Any]:
    """The wave lens on a checkpoint; writes ``analysis.json``, PNGs and TensorBoard events to ``out``."""
    from torch.utils.tensorboard import SummaryWriter

    net, fresh, hp, data_hp = model_from_checkpoint(ckpt)
    task = task or (data_hp.get("task") if data_hp.get("task") in THEORY_COUNT else None)
    batch = None
    if task is not None:
        from wavezoo.data import VariableBindingDataModule

        data = VariableBindingDataModule(task)
        batch = data.eval_set("test")[0]
    result, figures = wave_lens(net, task, history, batch, fresh)
    result = {"checkpoint": str(ckpt), "model": hp["model"], **result}
    if task is not None:
        result["test_acc_h200"] = sign_accuracy(net, data.eval_set("test"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(result, indent=1))
    with SummaryWriter(str(out / "tensorboard")) as writer:
        for key, value in result.items():
            if isinstance(value, (int, float)):
                writer.add_scalar(f"lens/{key}", value)
        save_figures(figures, out, writer)
    return result


def report(result: dict[str, Any]) -> list[str]:
    """Human-readable lines of a lens result."""
    lines = [f"model {result.get('model', '?')}, hidden {result['hidden_size']}"]
    if "test_acc_h200" in result:
        lines.append(f"test accuracy at horizon 200: {result['test_acc_h200']:.4f}")
    theory = f" (theory {result['theory_count_above_0.8']})" if "theory_count_above_0.8" in result else ""
    lines.append(f"eigenvalues |lambda| > 0.8: {result['eig_count_above_0.8']}{theory}")
    if "spectral_error_rad" in result:
        lines.append(f"spectral error: {result['spectral_error_rad']:.4f} rad")
        lines.append(
            f"compressed wave basis ({result['compressed_cells']} cells): ||Psi+ W_hh Psi - M|| / ||M|| = "
            f"{result['wave_basis_distance']:.3f}; share on M's pattern {result['support_fraction']:.3f}, "
            f"sign agreement {result['sign_agreement']:.3f}"
        )
    if "wave_315_columns" in result:
        lines.append(f"'315' traveling-wave score (1 = one site per step): {result['wave_315_columns']:.3f}")
    for name, rate in result.get("grad_decay_per_step", {}).items():
        lines.append(f"gradient norm change per step of lag ({name}): x{rate:.3f}")
    return lines


def main(argv: list[str] | None = None) -> None:
    """``wavezoo analyze``: the wave lens on a checkpoint."""
    parser = argparse.ArgumentParser(prog="wavezoo analyze", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a wavezoo Lightning checkpoint (.ckpt)")
    parser.add_argument("--task", choices=sorted(THEORY_COUNT), default=None, help="compare with this TWM task")
    parser.add_argument("--history", type=int, default=8, help="lattice length s of the wave basis")
    parser.add_argument("--out", type=Path, default=Path("analysis_out"))
    args = parser.parse_args(argv)
    result = analyze_checkpoint(args.ckpt, args.out, args.task, args.history)
    print("\n".join(report(result)))
    print(f"wrote {args.out}/analysis.json, PNG figures and TensorBoard events")
