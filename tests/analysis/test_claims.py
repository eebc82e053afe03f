"""Acceptance of the wave lens on the published networks: C7 and C8 hold for T1 in the TASK-FREE basis; controls
that break function (untrained, Gaussian, scramble, rotated, another task) never make a claim hold unless they solve
the task themselves; each network is linearised once."""

import json

import pytest
import torch

from wavezoo.analysis import claims as claims_module
from wavezoo.analysis import evaluate_claims, free_cells, power_iteration, rotate, scramble, task_operator
from wavezoo.analysis.basis import twm_readout
from wavezoo.analysis.claims import verdict
from wavezoo.analysis.controls import fresh_copy, gaussian
from wavezoo.analysis.lens import analyze_checkpoint
from wavezoo.data import VariableBindingDataModule

CKPT = "checkpoints/elman_vb_t1/lightning.ckpt"
CLAIMS = ("C6", "C7", "C8", "C9", "C7_task_cells", "C8_task_cells")


@pytest.fixture(scope="module")
def nets():
    from wavezoo.pretrained import load_pretrained

    return {task: load_pretrained(f"elman_vb_{task.lower()}") for task in ("T1", "T2")}


def inputs_of(task):
    return VariableBindingDataModule(task).eval_set("test")[0][0][:16, :40]


def test_analyze_on_the_published_t1_checkpoint_holds_c7_c8_in_the_task_free_basis(tmp_path, monkeypatch):
    seen = []
    real = claims_module.linearize
    monkeypatch.setattr(claims_module, "linearize", lambda net: seen.append(id(net)) or real(net))
    analyze_checkpoint(CKPT, tmp_path / "out", json_path=tmp_path / "report.json", eval_batches=2)
    assert len(seen) == len(set(seen)) == 7  # one pass: the network and its 6 control networks, once each
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["task"] == "T1" and report["large_eigenvalues"] == 64 and report["spectral_error"] < 0.01
    assert report["test_acc_h200"] > 0.99 and report["wave_basis_cells"] == 64
    for claim in ("C7", "C8"):
        entry = report["claims"][claim]
        assert entry["basis"].startswith("task-free") and entry["verdict"] == "holds", entry["verdict"]
        assert set(entry["tolerance_checks"]) == {"0.05", "0.2"}
        assert all(check["verdict"] == "holds" for check in entry["tolerance_checks"].values())
        assert report["claims"][f"{claim}_task_cells"]["basis"].startswith("TASK-DERIVED")
    assert report["claims"]["C7"]["score"] > 0.95 and report["claims"]["C8"]["score"] > 0.9
    kept = report["own_dynamics_kept"]  # T1 keeps all 64 cells: compression loses none of its own dynamics
    assert set(kept) == {"uncompressed", "0.05", "0.1", "0.2"} and kept["0.1"] == kept["uncompressed"] > 0.9
    names = {"untrained_seed0", "gaussian", "scramble", "rotated", "mismatch_T2", "mismatch_T3", "mismatch_T4"}
    assert names <= set(report["controls"]) and names <= set(report["claims"]["C7"]["controls"])
    for claim in CLAIMS:
        for name, control in report["claims"][claim]["controls"].items():
            assert {"score", "accuracy", "solves_task", "separated", "holds_as_subject"} <= set(control)
            assert not control["holds_as_subject"] or control["solves_task"], (claim, name)
    # C6 is a spectral fact: the scramble control has the trained spectrum and fails the task
    assert report["claims"]["C6"]["verdict"] == "not separable from scramble"
    assert report["controls"]["scramble"]["accuracy"] < 0.9 <= report["controls"]["rotated"]["accuracy"]


def controls_as_subjects(nets, full):
    subjects = {("scramble T1", "T1"): scramble(nets["T1"]), ("rotated T2", "T2"): rotate(nets["T2"]),
                ("T1 scored as T3", "T3"): nets["T1"]}  # fmt: skip
    if full:
        subjects |= {("gaussian T2", "T2"): gaussian(nets["T2"]), ("untrained", "T1"): fresh_copy(nets["T1"], 5),
                     ("rotated T3", "T3"): rotate(nets["T3"]), ("rotated T4", "T4"): rotate(nets["T4"]),
                     ("T1 scored as T2", "T2"): nets["T1"], ("T1 scored as T4", "T4"): nets["T1"]}  # fmt: skip
    return subjects


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_controls_that_fail_the_task_make_no_claim_hold_and_each_network_is_linearised_once(nets, monkeypatch, full):
    if full:
        from wavezoo.pretrained import load_pretrained

        nets = nets | {task: load_pretrained(f"elman_vb_{task.lower()}") for task in ("T3", "T4")}
    seen = []
    real = claims_module.linearize
    monkeypatch.setattr(claims_module, "linearize", lambda net: seen.append(id(net)) or real(net))
    for (name, task), net in controls_as_subjects(nets, full).items():
        seen.clear()
        result = evaluate_claims(net, task, inputs_of(task), eval_batches=1)
        assert len(seen) == len(set(seen)) == 7  # the network and its 6 control networks, once each
        assert result["accuracy"] < 0.9, name
        held = [claim for claim in CLAIMS if result["claims"][claim]["holds"]]
        assert held == [], (name, held)
        assert result["claims"]["C7"]["verdict"].startswith("does not hold: the network does not solve the task")


def test_rotated_t2_network_keeps_the_linear_figures_and_loses_the_task(nets):
    """The rotation keeps the linearisation (C6, C7 identical) but the tanh network fails T2: C6 and C7 cannot
    separate the trained T2 network from it; C8, read from the actual hidden states, tells them apart."""
    result = evaluate_claims(nets["T2"], "T2", inputs_of("T2"), eval_batches=1)
    c6, c7, c8 = (result["claims"][c] for c in ("C6", "C7", "C8"))
    assert result["controls"]["rotated"]["accuracy"] < 0.6 and result["accuracy"] > 0.99
    assert c6["controls"]["rotated"]["score"] == pytest.approx(c6["score"], abs=1e-6)
    assert c7["controls"]["rotated"]["score"] == pytest.approx(c7["score"], abs=1e-6)
    assert "rotated" in c6["not_separable_from"] and "scramble" in c6["not_separable_from"]
    assert "rotated" in c7["not_separable_from"] and not c7["holds"]
    assert c8["score"] > c8["controls"]["rotated"]["score"] + 0.2
    assert "scramble" in result["claims"]["C9"]["not_separable_from"]  # the spectrum-matched control is as flat


def test_verdict_needs_a_solved_task_and_beats_every_failing_control():
    controls = {"a": (0.1, 0.5), "b": (0.8, 1.0), "c": (0.3, None)}
    out = verdict("C7", 0.9, controls, accuracy=1.0)
    assert out["verdict"] == "holds"  # b solves the task: no counter-example
    assert out["controls"]["b"]["holds_as_subject"] and not out["controls"]["a"]["holds_as_subject"]
    assert verdict("C7", 0.5, controls, accuracy=1.0)["verdict"] == "not separable from c"
    assert verdict("C7", 0.9, controls, accuracy=0.6)["verdict"].startswith("does not hold: the network does not")
    assert verdict("C6", 0.01, {"x": (0.05, 0.4)}, accuracy=1.0)["not_separable_from"] == ["x"]  # lower is better


def test_fragile_when_the_verdict_changes_with_the_compression_tolerance():
    def at(tol):
        holds = tol >= 0.1
        return {"verdict": "holds" if holds else "not separable from x", "holds": holds, "score": tol, "cells": 1}

    out = claims_module._with_tolerance_checks("C7", at)
    assert out["verdict"].startswith("fragile (holds at 0.1, not separable from x at 0.05") and not out["holds"]


def test_task_free_compression_uses_the_network_alone():
    """The rule sees Psi only: it keeps every cell of the exact TWM (the substrate stores all 64) and of a random
    matrix, and drops the power-iteration columns that repeat a direction already kept (a memory that never moves)."""
    r = twm_readout(8, 8)
    assert len(free_cells(power_iteration(task_operator("T1"), r, 8), 8)) == 64
    assert len(free_cells(power_iteration(task_operator("T2"), r, 8), 8)) == 64
    w, w_r = torch.randn(128, 128) / 128**0.5, torch.randn(8, 128)
    assert len(free_cells(power_iteration(w, w_r, 8), 8)) == 64
    assert free_cells(power_iteration(0.9 * torch.eye(128), w_r, 8), 8) == list(range(56, 64))  # newest column only
    assert len(free_cells(power_iteration(w, w_r, 8), 8, tolerance=0.999)) < 64


def test_the_docs_show_the_committed_lens_records():
    """docs/REPRODUCTION.md's two C6-C9 tables are what `wavezoo-paper waves` prints for docs/results/waves.json."""
    from pathlib import Path

    from wavezoo.analysis.lens import controls_table, verdict_table

    docs = Path(__file__).resolve().parents[2] / "docs"
    rows = json.loads((docs / "results/waves.json").read_text())
    text = (docs / "REPRODUCTION.md").read_text()
    assert "\n".join(controls_table(rows)) in text and "\n".join(verdict_table(rows)) in text
    verdicts = {(row["task"], claim): row["claims"][claim]["verdict"] for row in rows for claim in ("C7", "C8")}
    assert verdicts[("T1", "C7")] == verdicts[("T1", "C8")] == "holds"
    assert not any(v.startswith("fragile") for v in verdicts.values())  # T2-T4: the same at tolerance 0.05 and 0.2


def test_analyze_names_a_bad_eval_batches_value_in_one_line(capsys):
    from conftest import one_line_error

    err = one_line_error(["analyze", "--ckpt", CKPT, "--eval_batches", "0"], capsys)
    assert "--eval_batches 0: expected 1..10 (the test set's batches)" in err
