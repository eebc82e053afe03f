"""Claims on trained networks: spectra (C6), the wave lens with controls (C6-C9) and the Jacobian by lag (C9).

The models are the published checkpoints (``wavezoo.list_pretrained()``; the paper's Elman RNN on T1..T4 is
``elman_vb_t1`` .. ``elman_vb_t4``), or the user's own via ``--ckpt T1=PATH``.
"""

from __future__ import annotations

from typing import Any

import torch

from wavezoo.analysis import (
    count_above,
    decay_factor,
    eigenvalues,
    jacobian_by_lag,
    linearize,
    spectral_error,
    task_operator,
)
from wavezoo.analysis.claims import EVAL_BATCHES, evaluate_views, reference_lens
from wavezoo.analysis.lens import THEORY_COUNT, WAVE_FRAMES, lens_pictures
from wavezoo.analysis.plots import curves_figure, lattice_figure, matrices_figure, spectra_figure
from wavezoo.metrics import sign_accuracy
from wavezoo.paper.table1 import PAPER_TABLE1
from wavezoo.registry import build_model

#: Jacobian study (C9): (published checkpoint, family, number of input steps t, sequences). h(t) is the state after
#: the last of the t inputs; lags 1..t-1. Variable binding: t = 8 = the input phase; copy: t = 100 (the 10 symbols,
#: the delay and the cue).
JACOBIAN_MODELS = [
    ("elman_vb_t1", "elman", 8, 32),
    ("elman_vb_t2", "elman", 8, 32),
    ("elman_vb_t3", "elman", 8, 32),
    ("elman_vb_t4", "elman", 8, 32),
    ("lstm_vb_t1", "lstm", 8, 32),
    ("gru_vb_t1", "gru", 8, 32),
    ("twm_lbc_vb_t1", "twm_lbc", 8, 32),
    ("lbc_ssm_vb_t1", "lbc_ssm", 8, 2),
    ("wave_rnn_copy", "wave_rnn", 100, 2),
]


def trained_elman(task: str, ckpts: dict[str, str] | None = None) -> torch.nn.Module:
    """The paper's Elman RNN trained on ``task``: ``ckpts[task]`` if given, else the published checkpoint."""
    if ckpts and task in ckpts:
        from wavezoo.analysis.lens import model_from_checkpoint

        return model_from_checkpoint(ckpts[task])[0]
    from wavezoo.pretrained import load_pretrained

    return load_pretrained(f"elman_vb_{task.lower()}")


def fresh_copy(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same architecture at initialisation (seeded), from the model's ``wavezoo_config``."""
    from wavezoo.analysis.controls import fresh_copy as fresh

    return fresh(net, seed)


def spectra(tasks: list[str], ckpts: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], dict]:
    """C5/C6: accuracy at horizon 200, eigenvalue counts and spectral error of the trained W_hh per task."""
    from wavezoo.data import VariableBindingDataModule

    rows, panels = [], {}
    for task in tasks:
        net = trained_elman(task, ckpts)
        w_hh, m = linearize(net).w_hh.double(), task_operator(task)
        learned = eigenvalues(w_hh)
        paper_err, paper_acc = PAPER_TABLE1[(task, 128, 0.0)]
        rows.append(
            {
                "task": task,
                "test_acc_h200": sign_accuracy(net, VariableBindingDataModule(task).eval_set("test")),
                "eig_count_above_0.8": count_above(learned, 0.8),
                "theory_count_above_0.8": THEORY_COUNT[task],
                "spectral_error_rad": spectral_error(m, w_hh),
                "paper": {"spectral_error_rad": paper_err, "test_acc_h200": paper_acc},
            }
        )
        panels[f"{task}: {rows[-1]['eig_count_above_0.8']} of {THEORY_COUNT[task]} on the circle"] = (
            eigenvalues(m),
            learned,
        )
    return rows, {"spectra": spectra_figure(panels)}


def waves(
    tasks: list[str], ckpts: dict[str, str] | None = None, eval_batches: int = EVAL_BATCHES
) -> tuple[list[dict[str, Any]], dict]:
    """C6-C9 with controls on the paper's Elman RNNs (:func:`wavezoo.analysis.claims.evaluate_views`: every
    network linearised once), and the figures a reader checks by eye (Psi^+ W_hh Psi in the task-free basis, the
    "315" bitmap) beside the same picture for the untrained control and, for the matrix, the exact TWM through the
    same cells. Every network's accuracy is measured on the first ``eval_batches`` test batches."""
    from wavezoo.data import VariableBindingDataModule

    rows, matrices, figures = [], {}, {}
    for task in tasks:
        net = trained_elman(task, ckpts)
        inputs = VariableBindingDataModule(task).eval_set("test")[0][0][:32, :40]
        result, views = evaluate_views(net, task, inputs, eval_batches=eval_batches)
        rows.append({k: v for k, v in result.items() if k != "jacobian_by_lag"})
        mine, base = lens_pictures(views["trained"]), lens_pictures(views["untrained_seed0"])
        ref, m = reference_lens(task, cells=mine["cells"])
        matrices[f"{task}: trained ({len(mine['cells'])} cells)"] = mine["weights"]
        matrices[f"{task}: untrained (seed 0)"] = base["weights"]
        matrices[f"{task}: exact TWM, same cells"] = ref.weights(m)
        blocks, names = [mine["lattice_315"], base["lattice_315"]], "trained / untrained"
        if "rotated" in views:  # the same linearisation, a tanh network that fails T2-T4
            blocks.append(lens_pictures(views["rotated"])["lattice_315"])
            names += f" / rotated (acc {views['rotated'].accuracy:.2f})"
        figures[f"hidden_state_315_{task}"] = lattice_figure(
            torch.cat(blocks, dim=2), WAVE_FRAMES, f"'315' in the wave basis, {task}, 8 rows each: {names}"
        )
    return rows, {"w_hh_wave_basis": matrices_figure(matrices), **figures}


def gradients(models: list | None = None) -> tuple[list[dict[str, Any]], dict]:
    """C9: ||d h(t) / d u(t-k)|| by lag k at initialisation (seed 0) and after training, per family."""
    from wavezoo.errors import WavezooError
    from wavezoo.pretrained import load_pretrained
    from wavezoo.pretrained.loading import build_datamodule, run_config
    from wavezoo.pretrained.weights import get_weights

    rows, curves = [], {}
    for name, family, step, count in models or JACOBIAN_MODELS:
        weights = get_weights(name)
        data = build_datamodule(run_config(weights)["data"])
        x = data.eval_set("test")[0][0] if hasattr(data, "eval_set") else next(iter(_test_loader(data)))[0]
        x = x[:count, :step].float()
        try:
            trained, reason = load_pretrained(name), None
        except WavezooError as err:
            trained, reason = None, str(err).split(":")[0] + ": does not load with the current model code"
        torch.manual_seed(0)
        init = build_model(family, **weights.sizes, **weights.model_kwargs).eval()
        for stage, model in (("init", init), ("trained", trained)):
            if model is None:
                rows.append({"model": name, "stage": stage, "note": reason})
                continue
            profile = jacobian_by_lag(model, x)
            curves[f"{name} ({stage})"] = {k: v for k, v in profile.items() if k >= 1}
            rows.append(
                {
                    "model": name,
                    "family": family,
                    "stage": stage,
                    "lags": [1, step - 1],
                    "jacobian_at_lag_1": profile[1],
                    "jacobian_at_max_lag": profile[step - 1],
                    "decay_per_step": decay_factor(profile),
                    "profile": profile,
                }
            )
    figure = curves_figure(curves, "lag k", "||dh(t)/du(t-k)||", title="Jacobian by lag, init vs trained")
    return rows, {"jacobian_by_lag": figure}


def _test_loader(data):
    data.setup("test")
    return data.test_dataloader()
