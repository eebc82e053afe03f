"""The `wavezoo` LightningCLI: every config parses, fit/test/predict run, user mistakes give one line."""

from pathlib import Path

import pytest
import torch

from wavezoo.cli import build_cli, main
from wavezoo.errors import ConfigError
from wavezoo.lit import SequenceRegression

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*/*.yaml"))
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


SYNTHETIC = {"variable_binding", "hds", "copy", "adding"}
RECALL = {"induction_head", "associative_recall", "mqar", "selective_copy"}  # token tasks: an LSTM and an LBC-SSM
HUB_DATA = {"smnist", "psmnist", "noisy_scifar"}  # Hugging Face datasets: not available offline
BENCHMARKS = {"digits", "permuted_digits", "mnist1d", "gunpoint", "japanese_vowels", "acsf1"} | HUB_DATA


def test_there_is_a_config_per_task_and_baseline():
    tasks = {p.parent.name for p in CONFIGS}
    assert tasks == SYNTHETIC | RECALL | BENCHMARKS
    for task in tasks:
        needed = {"elman", "gru", "lstm", "transformer"} if task in SYNTHETIC else {"gru"}
        if task in {"digits", "permuted_digits", "mnist1d"}:
            needed = {"gru", "lstm", "lbc_ssm", "wave_rnn"}
        if task in RECALL:
            needed = {"lstm", "lbc_ssm"}
        assert needed <= {p.stem for p in CONFIGS if p.parent.name == task}


@pytest.mark.parametrize(
    "config", [c for c in CONFIGS if c.parent.name not in HUB_DATA], ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_every_config_instantiates_model_and_data(config):
    cli = build_cli(["--config", str(config), "--trainer.logger", "false", *QUIET], run=False)
    x, y, mask = cli.datamodule.eval_set("val")[0]
    out = cli.model(x[:2])
    assert out.shape[:2] == x[:2].shape[:2] and out.shape[-1] == cli.datamodule.output_size


@pytest.mark.parametrize("config", sorted(c for c in CONFIGS if c.parent.name in HUB_DATA), ids=lambda p: p.parent.name)
def test_hub_data_configs_instantiate_and_say_what_to_download_offline(config, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    args = ["--config", str(config), "--trainer.logger", "false", "--data.data_dir", str(tmp_path), *QUIET]
    cli = build_cli(args, run=False)
    assert cli.model.hparams.input_size == cli.datamodule.input_size
    with pytest.raises(ConfigError, match=r"cannot load .* on a machine with internet run .*save_to_disk"):
        cli.datamodule.eval_set("val")


def test_fit_then_test_then_predict(tmp_path, capsys):
    config = ROOT / "configs/variable_binding/gru.yaml"
    common = ["--config", str(config), "--trainer.logger.init_args.save_dir", str(tmp_path), *QUIET]
    small = ["--data.task", "T4", "--data.test_batches", "1", "--data.val_batches", "1"]
    main(
        [
            "fit",
            *common,
            *small,
            "--trainer.max_steps",
            "4",
            "--data.steps_per_epoch",
            "2",
            "--model.init_args.hidden_size",
            "16",
            "--test_after_fit",
            "true",
        ]
    )
    run = tmp_path / "variable_binding/gru/version_0"
    last = run / "checkpoints/last.ckpt"
    assert last.exists() and any(p.name.startswith("best-step") for p in (run / "checkpoints").iterdir())
    assert (run / "config.yaml").exists() and list(run.glob("events.out.tfevents*"))
    assert "test/acc" in capsys.readouterr().out
    restored = SequenceRegression.load_from_checkpoint(last)
    assert restored.hparams.hidden_size == 16
    main(["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(last), *QUIET])
    assert "test/acc" in capsys.readouterr().out
    predict = build_cli(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(last), *QUIET])
    assert predict.trainer.predict_loop.predictions[0].shape == (64, 208, 8)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.task", "T9"], "task='T9' is invalid: expected one of 'T1', 'T2', 'T3', 'T4', 'custom'"),
        (["--model.init_args.model", "rnnn"], "unknown model 'rnnn'; registered models: elman"),
        (["--data.dim", "0", "--data.task", "custom", "--data.operator", "[]"], "d (dim)=0 is invalid"),
        (["--data.horizons", "[0]"], "horizon=0 is invalid: expected an integer >= 1"),
        (["--model.init_args.hidden_size", "-3"], "hidden_size=-3 is invalid"),
        (["--model.init_args.lr", "0"], "lr=0.0 is invalid: expected a finite number > 0"),
    ],
)
def test_user_mistakes_give_one_line(args, message, capsys):
    config = ROOT / "configs/variable_binding/elman.yaml"
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), *args, "--trainer.logger", "false", *QUIET])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("wavezoo: error: ")]
    assert message in line
    assert "Traceback" not in err


def test_wrong_tensor_rank_for_a_loaded_model():
    cli = build_cli(
        ["--config", str(ROOT / "configs/adding/lstm.yaml"), "--trainer.logger", "false", *QUIET], run=False
    )
    with pytest.raises(ValueError, match=r"expected a 3-d tensor \[batch, time, input_size=2\]"):
        cli.model(torch.zeros(100, 2))


CONFIG = str(ROOT / "configs/variable_binding/elman.yaml")


@pytest.mark.parametrize(
    ("args", "first", "hint"),
    [
        (["--trainer.max_step", "10"], "unrecognized option --trainer.max_step", "did you mean --trainer.max_steps?"),
        (["--bogus", "1"], "unrecognized option --bogus", None),
        (["--data.tsk", "T3"], "unrecognized option --data.tsk", "did you mean --data.task?"),
        (["--model.init_args.hiden_size", "8"], "unrecognized option --model.hiden_size", "--model.hidden_size?"),
        (["--trainer.max_steps", "ten"], "--trainer.max_steps: expected an integer; got 'ten'", None),
        (["--model.init_args.lr", "abc"], "--model.lr: expected a number; got 'abc'", None),
        (["--data", "Nope"], "--data: expected a class path, a class name or a config file; got 'Nope'", None),
    ],
)
def test_command_line_mistakes_give_at_most_three_lines(args, first, hint, capsys):
    """No abbreviations (--trainer.max_step is not --trainer.max_steps), and no 68-line usage before the error."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", CONFIG, *args])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert 2 <= len(lines) <= 3, lines
    assert lines[0].startswith(f"wavezoo: error: {first}")
    assert (hint in lines[1]) if hint else len(lines) == 2
    assert lines[-1] == "  see `wavezoo fit --help`"


def test_a_missing_config_file_and_an_unknown_subcommand_give_at_most_three_lines(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "no/such/config.yaml"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("wavezoo: error: --config: File does not exist: ")
    with pytest.raises(SystemExit):
        main(["fot"])
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "wavezoo: error: unknown subcommand 'fot': expected one of fit, validate, test, predict, analyze",
        "  did you mean fit?",
        "  see `wavezoo --help`",
    ]


def test_help_lists_every_subcommand_without_importing_lightning():
    import subprocess
    import sys

    code = "import sys; from wavezoo.cli import main; main(['--help']); print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("usage: wavezoo {fit,validate,test,predict,analyze} ...")
    for name in ("fit", "validate", "test", "predict", "analyze"):
        assert f"\n  {name} " in out
    assert out.splitlines()[-1] == "False"
