"""The ``wavezoo`` command: a LightningCLI over every registered model and DataModule, and the wave lens.

    wavezoo fit  --config configs/variable_binding/elman.yaml [--data.task T3] [--test_after_fit true]
    wavezoo test --config configs/variable_binding/elman.yaml --ckpt_path runs/.../checkpoints/last.ckpt
    wavezoo analyze --ckpt runs/.../checkpoints/last.ckpt [--task T3] [--out analysis_out]

``wavezoo`` and ``wavezoo --help`` list every subcommand without importing Lightning (it takes seconds); the
LightningCLI itself is :mod:`wavezoo.lit.lightning_cli` (``build_cli``, ``WavezooCLI``, ``user_error`` are
re-exported here).
A user mistake prints one line, ``wavezoo: error: ...`` (at most three for a command-line mistake: the error, a
"did you mean", where to look), and exits with status 2.
"""

from __future__ import annotations

import sys
from typing import Any

SUBCOMMANDS = {
    "fit": "train a model on a task (--config configs/<task>/<model>.yaml)",
    "validate": "run the validation set on a checkpoint (--ckpt_path)",
    "test": "run the test set on a checkpoint (--ckpt_path)",
    "predict": "write the model's outputs for the predict set (--ckpt_path)",
    "analyze": "the wave lens of a trained RNN: spectra, wave basis, claims C6-C9 with controls (--ckpt)",
}
LIGHTNING_NAMES = (
    "QuietWriteErrors",
    "TRAINER_DEFAULTS",
    "WavezooCLI",
    "WavezooParser",
    "build_cli",
    "data_vocab_size",
    "user_error",
)


def __getattr__(name: str) -> Any:  # the Lightning side, imported on first use
    if name in LIGHTNING_NAMES:
        from wavezoo.lit import lightning_cli as cli

        return getattr(cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def help_text() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, what in SUBCOMMANDS.items())
    return (
        f"usage: wavezoo {{{','.join(SUBCOMMANDS)}}} ...\n\n"
        "A PyTorch Lightning model zoo for traveling-wave working memory (Karuvally, Sejnowski, Siegelmann, ICML 2024)."
        f"\n\nsubcommands:\n{rows}\n\n"
        "`wavezoo SUBCOMMAND --help` lists a subcommand's options; `wavezoo fit --config C.yaml --print_config` the\n"
        "full resolved config. Configs: configs/<task>/<model>.yaml.\n"
    )


def main(args: list[str] | None = None) -> None:
    """``wavezoo {fit,validate,test,predict}`` (LightningCLI) and ``wavezoo analyze`` (the wave lens)."""
    argv = sys.argv[1:] if args is None else list(args)
    if argv in ([], ["-h"], ["--help"]):
        print(help_text(), end="", file=sys.stdout if argv else sys.stderr)
        if not argv:
            raise SystemExit(2)
        return
    try:
        if argv[:1] == ["analyze"]:
            from wavezoo.analysis.lens import main as analyze

            analyze(argv[1:])
            return
        from wavezoo.lit.lightning_cli import QuietWriteErrors, build_cli

        background = QuietWriteErrors.install()
        build_cli(args)
        if background.error is not None:
            raise background.error
    except Exception as exc:
        from wavezoo.lit.lightning_cli import user_error

        message = user_error(exc)
        if message is None:
            raise
        print(f"wavezoo: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
