"""Table-1 runs trained as one batched ensemble equal the same runs trained alone; resumable; the validation view."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from wavezoo.data import VariableBindingDataModule
from wavezoo.errors import ConfigError
from wavezoo.lit import SequenceRegression
from wavezoo.lit.reliability import quiet_trainer
from wavezoo.paper.commands import main
from wavezoo.paper.ensemble import Member, train_ensemble
from wavezoo.paper.table1 import train_elman


def _lone_losses(member: Member, steps: int) -> tuple[list[float], list[int]]:
    """The training loss and sequence length of each step of ``member`` trained alone (Lightning, as table1)."""
    pl.seed_everything(member.seed, verbose=False)
    data = VariableBindingDataModule(member.task, seed=member.seed, curriculum_threshold=member.threshold)
    module = SequenceRegression(
        model="elman", input_size=8, output_size=8, hidden_size=member.hidden, weight_decay=member.l2
    )
    seen: list[tuple[float, int]] = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            seen.append((float(outputs["loss"]), batch[0].shape[1]))

    trainer = quiet_trainer(
        max_steps=steps, gradient_clip_val=1.0, callbacks=[Record()], enable_checkpointing=False,
        num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return [loss for loss, _ in seen], [length for _, length in seen]


def test_a_member_of_an_ensemble_trains_as_it_would_alone():
    """Two members with other tasks, L2, seeds and curricula (a low threshold, so the horizons move apart within
    the run): each member's training loss equals its lone run's within 1e-5 relative, step by step."""
    steps = 100
    members = [Member("T1", 16, 0.001, 0, threshold=0.52), Member("T3", 16, 0.0, 1, threshold=0.52)]
    losses: list[torch.Tensor] = []
    train_ensemble(members, steps, losses=losses, snapshot_every=10**9)
    together = torch.stack(losses).double()  # [steps, K]
    for k, member in enumerate(members):
        alone, lengths = _lone_losses(member, steps)
        assert len(set(lengths)) >= 3  # the curriculum moved (horizons 10, 20, 40, ...)
        alone = torch.tensor(alone, dtype=torch.float64)
        assert torch.allclose(together[:, k], alone, rtol=1e-5, atol=0), (together[:, k] - alone).abs().max()


def test_zero_padded_hidden_units_change_nothing_and_workers_draw_the_same_batches():
    """A N=8 member padded to N=16 beside a N=16 member trains as it does alone (losses and final record), also
    when worker processes draw the batches."""
    small, large = Member("T2", 8, 0.001, 5, threshold=0.52), Member("T4", 16, 0.0, 6, threshold=0.52)
    alone_losses: list[torch.Tensor] = []
    (alone,) = train_ensemble([small], 40, losses=alone_losses, steps_per_epoch=20, snapshot_every=20)
    padded_losses: list[torch.Tensor] = []
    padded, _ = train_ensemble(
        [small, large], 40, losses=padded_losses, steps_per_epoch=20, snapshot_every=20, pad_hidden=True, workers=1
    )
    ours, theirs = torch.stack(padded_losses)[:, 0].double(), torch.cat(alone_losses).double()
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=0)
    for ours, theirs in zip([padded, *padded["snapshots"]], [alone, *alone["snapshots"]], strict=True):
        for key in ("test_acc_h200", "val_acc_h200", "spectral_error_rad", "eig_count_above_0.8"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5), key


@pytest.mark.slow
def test_an_ensemble_writes_the_record_of_the_lone_run():
    """The whole JSON record (snapshots, best checkpoint, figures) of a member equals its lone ``train_elman`` run."""
    with tempfile.TemporaryDirectory() as tmp:
        alone = train_elman("T2", 8, 0.001, 3, 500, Path(tmp))
    together, _ = train_ensemble([Member("T2", 8, 0.001, 3), Member("T1", 8, 0.0, 4)], 500)
    together.pop("ensemble")
    assert together.keys() == alone.keys()
    for ours, theirs in [(together, alone), *zip(together["snapshots"], alone["snapshots"], strict=True)]:
        for key, value in theirs.items():
            if key != "snapshots":
                assert ours[key] == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), key


def test_a_killed_ensemble_resumes_from_its_checkpoint(tmp_path, capsys):
    members = [Member("T1", 8, 0.0, 0), Member("T4", 8, 0.1, 1)]
    kwargs = {"steps_per_epoch": 10, "snapshot_every": 10}
    whole = train_ensemble(members, 30, **kwargs)
    checkpoint = tmp_path / "ensemble.pt"
    assert train_ensemble(members, 30, checkpoint, stop_after=20, **kwargs) is None  # killed after step 20
    assert checkpoint.is_file()
    capsys.readouterr()
    resumed = train_ensemble(members, 30, checkpoint, log_every=10, **kwargs)
    progress = capsys.readouterr().out.splitlines()  # the resumed run reports from step 20 on, with the time left
    assert [line.split(",")[0] for line in progress] == ["ensemble of 2: step 30/30"]
    assert "steps/s" in progress[0] and progress[0].endswith("about 0 min left")
    for a, b in zip(whole, resumed, strict=True):
        a.pop("ensemble"), b.pop("ensemble")
        assert a == b
    assert [s["step"] for s in resumed[0]["snapshots"]] == [10, 20, 30]
    with pytest.raises(ConfigError, match="belongs to another ensemble"):
        train_ensemble(members[:1], 30, checkpoint, **kwargs)


def test_an_ensemble_that_cannot_be_batched_names_the_member_and_the_reason():
    with pytest.raises(ConfigError) as info:
        train_ensemble([Member("T1", 64, 0.0, 0), Member("T2", 128, 0.0, 1)], 10)
    message = str(info.value)
    assert "\n" not in message
    assert "T2_N128_L20_seed1: hidden size 128 differs from T1_N64_L20_seed0's 64" in message


def test_table1_ensemble_writes_the_sweep_files_and_the_summary_shows_both_selections(tmp_path, capsys):
    """``--ensemble`` writes one JSON per run; the summary puts the paper's selection (on test) beside the one on
    validation, and a run recorded without validation figures says so."""
    folder = tmp_path / "table1"
    folder.mkdir()
    old = {"task": "T1", "hidden": 8, "l2": 0.0, "seed": 9, "steps": 20, "test_acc_h200": 0.5,
           "spectral_error_rad": 1.0, "eig_count_above_0.8": 0, "snapshots": []}  # fmt: skip
    (folder / "T1_N8_L20_seed9.json").write_text(json.dumps(old))  # an old run: no validation figure
    base = ["table1", "--tasks", "T1", "--hidden", "8", "--l2", "0", "--steps", "20", "--out", str(tmp_path)]
    main([*base, "--seeds", "0,1", "--ensemble"])
    for seed in (0, 1):
        run = json.loads((folder / f"T1_N8_L20_seed{seed}.json").read_text())
        assert run["ensemble"]["members"] == 2 and "val_acc_h200" in run["snapshots"][0]
    assert not list(folder.glob("*.lock")) and not list((folder / ".ensemble").iterdir())
    capsys.readouterr()
    main(["table1", "--summary", "--seeds", "0,1,9", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "selected on test (as the paper)" in out and "selected on validation (test reported once)" in out
    assert "| 2 of 3 |" in out
    (row,) = json.loads((tmp_path / "table1.json").read_text())
    assert row["selected_on_validation"]["runs"] == 2 and row["selected_on_validation"]["runs_without_validation"] == 1
    main(["table1", "--summary", "--seeds", "9", "--out", str(tmp_path)])
    assert "not recorded: these runs predate validation figures" in capsys.readouterr().out


def test_the_validation_selection_reports_the_test_figure_of_the_checkpoint_chosen_on_validation(tmp_path):
    from wavezoo.paper.table1 import summarize_table1

    folder = tmp_path / "table1"
    folder.mkdir()
    snapshots = [
        {"step": 1, "test_acc_h200": 0.99, "val_acc_h200": 0.80, "spectral_error_rad": 0.001},  # best on test
        {"step": 2, "test_acc_h200": 0.95, "val_acc_h200": 0.97, "spectral_error_rad": 0.2},  # best on validation
    ]
    run = {"task": "T3", "hidden": 64, "l2": 0.0, "seed": 0, "steps": 2, "test_acc_h200": 0.9, "val_acc_h200": 0.9,
           "spectral_error_rad": 0.3, "eig_count_above_0.8": 36, "max_test_acc_h200": 0.99,
           "min_spectral_error_rad": 0.001, "snapshots": snapshots}  # fmt: skip
    (folder / "T3_N64_L20_seed0.json").write_text(json.dumps(run))
    (row,) = summarize_table1(folder)
    assert row["mean_acc"] == 0.99 and row["mean_spectral_error_solved"] == 0.001  # the paper's: best on test
    honest = row["selected_on_validation"]
    assert honest["mean_acc"] == 0.95 and honest["mean_spectral_error_solved"] == 0.2  # step 2's test figures


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--device", "cuda"], "--device cuda: only with --ensemble"),
        (["--ensemble", "--max-members", "0"], "--max-members 0: expected a positive number"),
        (["--ensemble", "--device", "tpu"], "--device 'tpu': expected cpu or cuda"),
    ],
)
def test_table1_ensemble_options_are_checked_before_training(option, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["table1", *option, "--out", str(tmp_path)])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "table1").exists()
