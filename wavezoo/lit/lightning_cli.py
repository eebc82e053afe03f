"""The LightningCLI behind the ``wavezoo`` command, over every registered model and DataModule.

    wavezoo fit  --config configs/variable_binding/elman.yaml [--data.task T3] [--test_after_fit true]
    wavezoo test --config configs/variable_binding/elman.yaml --ckpt_path runs/.../checkpoints/last.ckpt
    wavezoo analyze --ckpt runs/.../checkpoints/last.ckpt [--task T3] [--out analysis_out]

``--model`` takes any :class:`~wavezoo.lit.SequenceTaskModule` subclass and ``--data`` any LightningDataModule
(``class_path``/``init_args`` in YAML); the model's ``input_size``/``output_size`` are linked to the data's, and
its ``vocab_size`` to the data's ``vocab_size`` (token tasks) or ``None``.
A user mistake (bad name, size, shape...) prints one line, ``wavezoo: error: ...``, and exits with status 2; a
mistake on the command line itself (an unknown or misspelt option, a missing file, a value of the wrong type) at
most three: the error, a "did you mean" when an option is close, and where to look. Options are never abbreviated
(``--trainer.max_step`` is an error, not ``--trainer.max_steps``).

This module imports Lightning; :mod:`wavezoo.cli` (the ``wavezoo`` command) imports it only to run a subcommand, so
``wavezoo --help`` answers at once.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
import threading
from typing import Any, NoReturn

import lightning.pytorch as pl
from jsonargparse import ArgumentParser
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
from wavezoo.lit.wave_images import WaveImages

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


def option_names(parser: ArgumentParser) -> list[str]:
    """The long options that ``parser``'s help lists."""
    return sorted(set(re.findall(r"--[A-Za-z_][\w.\-]*", parser.format_help())))


def class_option_names(class_path: str) -> list[str]:
    """The init arguments of a wavezoo class (for a "did you mean" on ``--model.X`` / ``--data.X``)."""
    module, _, name = class_path.rpartition(".")
    if not module.startswith("wavezoo") or module not in sys.modules:  # only what jsonargparse already imported
        return []
    cls = getattr(sys.modules[module], name, None)
    if not inspect.isclass(cls):
        return []
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "x", fail_untyped=False)
    return [option.replace("--x.", "", 1) for option in option_names(parser) if option.startswith("--x.")]


def did_you_mean(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "list": "a list", "str": "a string"}
STRUCTURE = ("Does not validate", "Subtypes:", "Errors:", "Given value", "Problem with given class_path")


def value_error(lines: list[str], help_hint: str) -> tuple[str, str | None, str]:
    """(error, did-you-mean, where to look) of jsonargparse's 'Parser key "K": ...' message (nested for the init
    arguments of ``--model``/``--data``: the innermost key is the option at fault)."""
    keys = [m.group(1) for line in lines if (m := re.match(r'(?:- )?Parser key "([^"]+)":', line))]
    option = "--" + ".".join(keys)
    text = "\n".join(lines)
    if not_accepted := re.search(r"Option '([^']+)' is not accepted", text):
        name = not_accepted.group(1)
        class_path = m.group(1) if (m := re.search(r"class_path '([^']+)'", text)) else ""
        close = did_you_mean(name, class_option_names(class_path))
        where = f" ({class_path})" if class_path else ""
        return f"unrecognized option {option}.{name}{where}", f"{option}.{close}" if close else None, help_hint
    given = re.findall(r"Given value: (.*)", text)
    value = given[-1] if given else ""
    if nested := re.fullmatch(r"NestedArg\(key='[^']*', val=(.*)\)", value):
        value = nested.group(1).strip("'")
    inline = re.match(r'Parser key "[^"]+":\s*(.+)', lines[-1] if len(keys) > 1 else lines[0])
    if "Expected a dot import path string" in text:
        reason = "expected a class path, a class name or a config file"
    elif inline and not inline.group(1).startswith(STRUCTURE):
        reason = inline.group(1)
    else:
        last = max(i for i, line in enumerate(lines) if 'Parser key "' in line)
        reasons = [line.lstrip("- ") for line in lines[last + 1 :] if not line.lstrip("- ").startswith(STRUCTURE)]
        reasons = [r for r in reasons if r and "NoneType" not in r] or ["invalid value"]
        reason = reasons[0]
    reason = re.sub(r"Expected an? <class '(\w+)'>", lambda m: "expected " + TYPE_WORDS.get(m[1], m[1]), reason)
    reason = re.sub(r"<class '([\w.]+)'>", r"\1", reason)
    reason = re.sub(r"\. Got value: (.*)", lambda m: f"; got {m[1]!r}", reason).rstrip(".")
    if value and value not in reason:
        reason += f"; got {value!r}"
    if keys[:1] == ["config"]:
        help_hint = f"configs are in configs/<task>/<model>.yaml; {help_hint}"
    return f"{option}: {reason}", None, help_hint


def short_error(parser: ArgumentParser, message: str) -> list[str]:
    """At most three lines for a command-line mistake: the error, a "did you mean" when one is close, and where
    to look. ``message`` is jsonargparse's, often a dozen lines (every Union subtype tried)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    error, hint = lines[0] if lines else "invalid command line", None
    help_hint = f"see `{parser.prog.replace(' [options]', '')} --help`"
    if unknown := re.match(r"unrecognized arguments: (\S+)", error):
        option = unknown.group(1).split("=")[0]
        error = f"unrecognized option {option}" if option.startswith("-") else f"unexpected argument {option!r}"
        hint = did_you_mean(option, option_names(parser)) if option.startswith("-") else None
    elif choice := re.match(r"argument (\w+): invalid choice: '([^']*)' \(choose from (.*)\)", error):
        allowed = re.findall(r"'([^']*)'", choice.group(3))
        if choice.group(1) == "subcommand":
            allowed = [*allowed, "analyze"]  # which wavezoo.cli runs outside the LightningCLI
        error = f"unknown {choice.group(1)} {choice.group(2)!r}: expected one of {', '.join(allowed)}"
        hint = did_you_mean(choice.group(2), allowed)
    elif re.match(r'Parser key "([^"]+)":', error):
        error, hint, help_hint = value_error(lines, help_hint)
    elif where := next((line for line in lines[1:] if re.search(r"line \d+", line)), None):
        error = f"{error.rstrip(':')}: {' '.join(lines[1 : lines.index(where)])} ({where.rstrip(':')})"
    out = [f"wavezoo: error: {error}"]
    if hint:
        out.append(f"  did you mean {hint}?")
    out.append(f"  {help_hint}")
    return out


class WavezooParser(LightningArgumentParser):
    """LightningCLI's parser without abbreviations (``--trainer.max_step`` must not mean ``--trainer.max_steps``)
    and with short errors (:func:`short_error`) instead of the full usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse is trying alternatives: let it see the ArgumentError
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        sys.stderr.write("\n".join(short_error(parser, message)) + "\n")
        self.exit(2)


class WavezooCLI(LightningCLI):
    """LightningCLI with the zoo's defaults: TensorBoard, a progress bar counting steps (plain lines when stdout is
    not a terminal), the waves in TensorBoard (:class:`~wavezoo.lit.wave_images.WaveImages`), ``last.ckpt`` + best
    checkpoint, gradient clipping at 1.0, atomic checkpoint files, one run per run folder and a stop on a non-finite
    loss. Every checkpoint named by ``--ckpt_path`` is checked by :func:`wavezoo.trust.read_checkpoint` before
    Lightning reads it; ``--ckpt_path last`` resumes the latest run of the config in its own folder."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.input_size", "model.init_args.input_size", apply_on="instantiate")
        parser.link_arguments("data.output_size", "model.init_args.output_size", apply_on="instantiate")
        # token tasks (wavezoo.data.recall) have a vocab_size: the model embeds their ids; other data: None
        parser.link_arguments("data", "model.init_args.vocab_size", compute_fn=data_vocab_size, apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(WaveImages, "waves")  # --waves.enabled false: no images, no hp_metric
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
        parser_class=WavezooParser,
        parser_kwargs={"prog": "wavezoo"},
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
