"""Claims on trained networks: spectra (C6), waves in the wave basis (C7, C8) and gradients by lag (C9).

The models are the published checkpoints (``wavezoo.list_pretrained()``; the paper's Elman RNN on T1..T4 is
``elman_vb_t1`` .. ``elman_vb_t4``), or the user's own via ``--ckpt T1=PATH``.
"""

from __future__ import annotations

from typing import Any

import torch

from wavezoo.analysis import (
    boundary_blocks,
    compressed_cells,
    count_above,
    decay_per_step,
    eigenvalues,
    input_lag_profile,
    linearize,
    spectral_error,
    task_operator,
    wave_basis,
)
from wavezoo.analysis.lens import THEORY_COUNT, WAVE_FRAMES, bitmap_315, travel_score
from wavezoo.analysis.plots import curves_figure, lattice_figure, matrices_figure, spectra_figure
from wavezoo.core.accuracy import sign_accuracy
from wavezoo.paper.table1 import PAPER_TABLE1

#: Gradient study (C9): published checkpoints per task, and the last output step of the loss (None = the last
#: masked step). The loss is the task's loss over the masked outputs up to that step.
GRADIENT_GROUPS = {
    "variable binding T1 (loss over outputs 8-24; inputs at lags 17-24)": (
        ["elman_vb_t1", "lstm_vb_t1", "twm_lbc_vb_t1"],
        24,
    ),
    "copy, delay 80 (loss over the recall window)": (["wave_rnn_copy", "lstm_copy"], None),
}


def trained_elman(task: str, ckpts: dict[str, str] | None = None) -> torch.nn.Module:
    """The paper's Elman RNN trained on ``task``: ``ckpts[task]`` if given, else the published checkpoint."""
    if ckpts and task in ckpts:
        from wavezoo.analysis.lens import model_from_checkpoint

        return model_from_checkpoint(ckpts[task])[0]
    from wavezoo.pretrained import load_pretrained

    return load_pretrained(f"elman_vb_{task.lower()}")


def fresh_copy(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same architecture at initialisation (seeded), from the model's ``wavezoo_config``."""
    from wavezoo.registry import create_model

    config = net.wavezoo_config
    torch.manual_seed(seed)
    return create_model(config["family"], **config["sizes"], **config["model_kwargs"]).eval()


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


def waves(tasks: list[str], ckpts: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], dict]:
    """C7/C8: W_hh in the compressed wave basis against M, and the "315" input as a traveling wave."""
    rows, matrices, figures = [], {}, {}
    for task in tasks:
        net = trained_elman(task, ckpts)
        lin, m = linearize(net), task_operator(task)
        cells = compressed_cells(m)
        basis = wave_basis(lin.w_hh, lin.w_r, 8, boundary_blocks(m, 8, 8), cells)
        with torch.no_grad():
            lattice = basis.lattice(lin.hidden_states(bitmap_315())[0])
        rows.append(
            {
                "task": task,
                "compressed_cells": len(cells),
                "distance_to_M": basis.distance(lin.w_hh, m),
                "distance_to_M_uncompressed": wave_basis(lin.w_hh, lin.w_r, 8, boundary_blocks(m, 8, 8)).distance(
                    lin.w_hh, m
                ),
                **basis.structure(lin.w_hh, m),
                "wave_315_travel_score": travel_score(lattice),
            }
        )
        matrices[f"{task}: Psi+ W_hh Psi"] = basis.weights(lin.w_hh)
        matrices[f"{task}: M on the kept cells"] = m[cells][:, cells]
        figures[f"hidden_state_315_{task}"] = lattice_figure(lattice, WAVE_FRAMES, f"'315' in the wave basis, {task}")
    return rows, {"w_hh_wave_basis": matrices_figure(matrices), **figures}


def gradients(groups: dict | None = None) -> tuple[list[dict[str, Any]], dict]:
    """C9: mean ||dL/du(t - lag)|| over a test batch, at initialisation and after training, per model."""
    from wavezoo.pretrained import load_pretrained, pretrained_info
    from wavezoo.pretrained.loading import build_datamodule

    rows, figures = [], {}
    for index, (title, (names, step)) in enumerate((groups or GRADIENT_GROUPS).items()):
        curves = {}
        for name in names:
            net, info = load_pretrained(name), pretrained_info(name)
            data = build_datamodule(info["datamodule"])
            x, y, mask = data.eval_set("test")[0] if hasattr(data, "eval_set") else next(iter(_test_loader(data)))
            loss = "ce" if y.dtype == torch.long else "mse"
            at = step if step is not None else int(mask[0].nonzero()[-1])
            for stage, model in (("init", fresh_copy(net)), ("trained", net)):
                profile = input_lag_profile(model, x, y, at, loss, mask)
                curves[f"{name} ({stage})"] = profile
                lags = sorted(profile)
                rows.append(
                    {
                        "group": title,
                        "model": name,
                        "stage": stage,
                        "lags": [lags[0], lags[-1]],
                        "grad_at_min_lag": profile[lags[0]],
                        "grad_at_max_lag": profile[lags[-1]],
                        "decay_per_step": decay_per_step(profile),
                    }
                )
        figures[f"gradient_by_lag_{index}"] = curves_figure(curves, "lag", "||dL/du(t - lag)||", title=title)
    return rows, figures


def _test_loader(data):
    data.setup("test")
    return data.test_dataloader()
