"""The ``wavezoo`` command: a LightningCLI over every registered model and DataModule.

    wavezoo fit  --config configs/variable_binding/elman.yaml [--data.task T3] [--test_after_fit true]
    wavezoo test --config configs/variable_binding/elman.yaml --ckpt_path runs/.../checkpoints/last.ckpt
    wavezoo analyze --ckpt runs/.../checkpoints/last.ckpt [--task T3] [--out analysis_out]

``--model`` takes any :class:`~wavezoo.lit.SequenceTaskModule` subclass and ``--data`` any LightningDataModule
(``class_path``/``init_args`` in YAML); the model's ``input_size``/``output_size`` are linked to the data's, and
its ``vocab_size`` to the data's ``vocab_size`` (token tasks) or ``None``.
A user mistake (bad name, size, shape...) prints one line, ``wavezoo: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import sys
import threading
import warnings
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from wavezoo.cli_checks import check_run_arguments
from wavezoo.errors import WavezooError
from wavezoo.lit import SequenceTaskModule
from wavezoo.lit.reliability import (
    WRITE_ERRNOS,
    RunCheckpoint,
    RunFolderLock,
    WavezooTrainer,
)

TRAINER_DEFAULTS = {
    "gradient_clip_val": 1.0,  # on by default: every family here is recurrent or trained through a rollout
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "wavezoo"},
    },
}


def data_vocab_size(datamodule: pl.LightningDataModule) -> int | None:
    """The DataModule's ``vocab_size`` (token inputs), or ``None`` (float features)."""
    return getattr(datamodule, "vocab_size", None)


class WavezooCLI(LightningCLI):
    """LightningCLI with the zoo's defaults: TensorBoard, rich progress, ``last.ckpt`` + best checkpoint, gradient
    clipping at 1.0, atomic checkpoint files, one run per run folder and a stop on a non-finite loss. Every
    checkpoint named by ``--ckpt_path`` is checked by :func:`wavezoo.trust.read_checkpoint` before Lightning reads
    it; ``--ckpt_path last`` resumes the latest run of the config in its own folder."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.input_size", "model.init_args.input_size", apply_on="instantiate")
        parser.link_arguments("data.output_size", "model.init_args.output_size", apply_on="instantiate")
        # token tasks (wavezoo.data.recall) have a vocab_size: the model embeds their ids; other data: None
        parser.link_arguments("data", "model.init_args.vocab_size", compute_fn=data_vocab_size, apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-step{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_argument("--test_after_fit", type=bool, default=False, help="after `fit`, test the best checkpoint")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then check what Lightning would otherwise trust: the trainer's devices and seed, and the
        checkpoint of ``--ckpt_path`` (before Lightning reads its hyper-parameters)."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            check_run_arguments(self.config[subcommand], subcommand)

    def after_fit(self) -> None:
        if not self.config.get(self.subcommand, {}).get("test_after_fit"):
            return
        best = getattr(self.trainer.checkpoint_callback, "best_model_path", "")
        if not best:  # no validation ran: test the weights as they are at the end of the fit
            print("wavezoo: no best checkpoint (no validation ran); testing the final weights")
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path="best" if best else None)


def build_cli(args: list[str] | None = None, run: bool = True) -> WavezooCLI:
    return WavezooCLI(
        SequenceTaskModule,
        pl.LightningDataModule,
        trainer_class=WavezooTrainer,
        subclass_mode_model=True,
        subclass_mode_data=True,
        # persistent callbacks (LightningCLI adds them to any configured ones): one fit per run folder
        trainer_defaults={**TRAINER_DEFAULTS, "callbacks": [RunFolderLock()]},
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


def user_error(exc: BaseException) -> str | None:
    """The one-line message of the user's mistake behind ``exc``, if it is one (jsonargparse wraps errors raised
    while instantiating): a :class:`WavezooError`, a Lightning ``MisconfigurationException``, or a file that
    cannot be written (permissions, read-only or full disk)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (WavezooError, MisconfigurationException)):
            return str(exc).strip().splitlines()[0]
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            where = f" {exc.filename!r}" if exc.filename else ""
            return f"cannot write{where}: {exc.strerror or exc}; choose a writable folder with free space"
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class QuietWriteErrors:
    """A ``threading.excepthook`` that keeps a background writer's failed write (a full disk under TensorBoard's
    event-file thread) from printing a traceback: the error is recorded and reported as the command's one line (the
    main thread also meets it at its next write). Installed once by :func:`main` and left in place, since such a
    thread may end after the command does; any other exception goes to the previous hook."""

    def __init__(self, previous) -> None:
        self.previous = previous
        self.error: OSError | None = None

    def __call__(self, hook_args: threading.ExceptHookArgs) -> None:
        exc = hook_args.exc_value
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            self.error = self.error or exc
            return
        self.previous(hook_args)

    @classmethod
    def install(cls) -> QuietWriteErrors:
        """The installed hook (installed now if it is not), with no error recorded."""
        hook = threading.excepthook
        if not isinstance(hook, cls):
            hook = threading.excepthook = cls(threading.excepthook)
        hook.error = None
        return hook


def main(args: list[str] | None = None) -> None:
    """``wavezoo {fit,validate,test,predict}`` (LightningCLI) and ``wavezoo analyze`` (the wave lens)."""
    warnings.filterwarnings("ignore", message=r".*IterableDataset.*has `__len__` defined")
    argv = sys.argv[1:] if args is None else list(args)
    background = QuietWriteErrors.install()
    try:
        if argv[:1] == ["analyze"]:
            from wavezoo.analysis.lens import main as analyze

            analyze(argv[1:])
            return
        build_cli(args)
        if background.error is not None:
            raise background.error
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        print(f"wavezoo: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
