"""The recall sweep runner (benchmarks/recall.py): its commands, sizes, state counts, resumable records and tables."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch

import wavezoo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks import recall  # noqa: E402


def test_every_family_builds_with_its_settings_and_its_state_is_counted():
    for family in recall.FAMILIES:
        hidden, kwargs = recall.family_settings(family, 31)
        net = wavezoo.create_model(family, input_size=20, output_size=20, hidden_size=hidden, vocab_size=20,
                                   embedding_dim=32, **kwargs)  # fmt: skip
        state = recall.state_numel(net.eval(), 31)
        if family.startswith(("twm", "sbc")):
            assert kwargs["history"] == 31 and hidden == 8 * 31  # the wave spans the whole sequence
        if family in ("elman", "irnn", "gru", "lstm", "wave_rnn"):
            assert state == 256
        if family == "transformer":  # a KV cache: it grows with the sequence
            assert state > recall.state_numel(net, 10)
        assert state > 0


def test_run_args_are_the_recorded_command():
    args = recall.run_args("mqar", "lbc_ssm", 0.003, 1, 50, "runs/x")
    assert args[:3] == ["fit", "--config", "configs/mqar/benchmark.yaml"]
    pairs = dict(zip(args[3::2], args[4::2], strict=True))
    assert pairs["--model.init_args.model"] == "lbc_ssm" and pairs["--model.init_args.lr"] == "0.003"
    assert json.loads(pairs["--model.init_args.model_kwargs"]) == {"state_size": 16, "num_layers": 2}
    assert pairs["--seed_everything"] == "1" and pairs["--trainer.max_steps"] == "50"


def test_the_learning_rate_is_chosen_on_seed_0_and_the_tables_list_every_run():
    def run(family, lr, seed, acc):
        return {"task": "induction_head", "family": family, "lr": lr, "seed": seed, "test_acc": acc, "steps": 10,
                "hidden_size": 128, "parameters": 100, "state_numel": 256, "best_step": 10, "train_s": 1.0}  # fmt: skip

    records = [
        run("lstm", 0.001, 0, 0.7),
        run("lstm", 0.01, 0, 0.8),
        run("lstm", 0.01, 1, 0.6),
        run("lstm", 0.01, 2, 0.7),
    ]
    best = recall.best_runs(records)[("induction_head", "lstm")]  # chosen on seed 0, then every seed at that rate
    assert best["lr"] == 0.01 and best["mean_acc"] == pytest.approx(0.7) and best["seeds"] == 3
    table = recall.tables(records).splitlines()
    assert table[2] == "| `lstm` | 128 | 256 | 100 | 70.0 (0.01, 3 seeds, min 60.0) |"
    assert sum(line.startswith("| induction_head | `lstm`") for line in table) == 4


def test_a_sweep_writes_one_record_per_run_and_skips_done_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the configs are read relative to the repository
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    where = {"out": str(tmp_path / "out"), "runs": str(tmp_path / "runs")}
    opts = recall.argparse.Namespace(tasks=["mqar"], families=["lstm"], lrs=[0.01], seeds=[0], steps=3,
                                     at_best_lr=False, **where)  # fmt: skip
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    recall.sweep(opts)
    (path,) = (tmp_path / "out" / "recall").glob("*.json")
    record = json.loads(path.read_text())
    assert path.name == "mqar_lstm_lr0.01_seed0.json" and record["steps"] == 3 and 0 <= record["test_acc"] <= 1
    assert record["state_numel"] == 256 and record["parameters"] > 0
    assert record["command"].startswith("OMP_NUM_THREADS=1 wavezoo fit --config configs/mqar/benchmark.yaml ")
    path.write_text(json.dumps({**record, "test_acc": 0.123}))
    recall.sweep(opts)  # done runs are not run again
    assert json.loads(path.read_text())["test_acc"] == 0.123
    opts.at_best_lr, opts.lrs, opts.seeds = True, [0.5], [1]  # another seed at the chosen rate, not at --lrs
    recall.sweep(opts)
    assert sorted(p.name for p in path.parent.glob("*.json")) == [path.name, "mqar_lstm_lr0.01_seed1.json"]
