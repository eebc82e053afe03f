"""Acceptance of the honest wave lens on the published T1 Elman RNN: C7 holds; random weights of the same shapes
make C7 and C8 fail; the T1 network scored against T3 fails C7."""

import json

import pytest
import torch

from wavezoo.analysis import evaluate_claims
from wavezoo.analysis.lens import analyze_checkpoint, model_from_checkpoint
from wavezoo.data import VariableBindingDataModule

CKPT = "checkpoints/elman_vb_t1/lightning.ckpt"


@pytest.fixture(scope="module")
def t1():
    net = model_from_checkpoint(CKPT)[0]
    inputs = VariableBindingDataModule("T1").eval_set("test")[0][0][:32, :40]
    return net, inputs


def test_analyze_on_the_published_t1_checkpoint_says_c7_holds(tmp_path):
    result = analyze_checkpoint(CKPT, tmp_path / "out", json_path=tmp_path / "report.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["task"] == "T1" and report["large_eigenvalues"] == 64 and report["spectral_error"] < 0.01
    for claim in ("C7", "C8", "C9"):
        assert set(report["claims"][claim]) >= {"holds", "score", "controls"}
    assert report["claims"]["C7"]["holds"] and report["claims"]["C7"]["score"] > 0.95
    assert report["claims"]["C8"]["holds"]
    assert {"untrained_seed0", "untrained_seed1", "untrained_seed2", "random_radius", "mismatch_T3"} <= set(
        result["claims"]["C7"]["controls"]
    )
    assert "shuffled_time" in result["claims"]["C8"]["controls"]


def test_random_weights_of_the_same_shapes_fail_c7_and_c8(t1):
    net, inputs = t1
    torch.manual_seed(7)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    try:
        claims = evaluate_claims(net, "T1", inputs)["claims"]
    finally:
        net.load_state_dict(model_from_checkpoint(CKPT)[0].state_dict())
    assert not claims["C7"]["holds"] and not claims["C8"]["holds"]
    assert abs(claims["C7"]["score"]) < 0.2


def test_the_t1_network_scored_against_t3_fails_c7(t1):
    net, inputs = t1
    claims = evaluate_claims(net, "T3", inputs)["claims"]
    assert not claims["C7"]["holds"]
    assert claims["C7"]["controls"]["mismatch_T1"] > claims["C7"]["score"]


def test_unknown_task_is_a_one_line_error(capsys):
    from wavezoo.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", "--ckpt", CKPT, "--task", "T9"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "wavezoo: error: task='T9' is unknown: the wave lens compares with the presets T1, T2, T3, T4"
