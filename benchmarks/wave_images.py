"""The cost of the waves in TensorBoard (:class:`wavezoo.lit.wave_images.WaveImages`) against the run time of a fit.

    python -m benchmarks.wave_images [--runs elman_vb,wave_rnn_copy] [--repeat 1]

Each run is a ``wavezoo fit`` of a shipped config at its own validation interval (``steps_per_epoch``), shortened to
two validations, once with the images (the default) and once with ``--waves.enabled false``. Printed: the wall time
of both fits, the time spent inside the callback (timed around its ``on_validation_end``, the one hook where it
works) and its share of the fit with images: the target is under 5 %. The two wall times are printed as a cross
check; on a shared machine their difference is noise of the same size as the callback.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from wavezoo.cli import build_cli
from wavezoo.lit.wave_images import WaveImages

RUNS = {
    # name: (config, arguments): two validations at the config's own interval
    "elman_vb": ("configs/variable_binding/elman.yaml", ["--trainer.max_steps", "1000"]),
    "wave_rnn_copy": ("configs/copy/wave_rnn.yaml", ["--trainer.max_steps", "400"]),
}
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


class Timer:
    """Times :meth:`WaveImages.on_validation_end` while installed (``install()``/``remove()``)."""

    def __init__(self) -> None:
        self.seconds, self.calls = 0.0, 0
        self.hook = WaveImages.on_validation_end

    def install(self) -> None:
        def timed(callback, trainer, pl_module) -> None:
            start = time.perf_counter()
            self.hook(callback, trainer, pl_module)
            self.seconds += time.perf_counter() - start
            self.calls += 1

        WaveImages.on_validation_end = timed

    def remove(self) -> None:
        WaveImages.on_validation_end = self.hook


def fit_seconds(config: str, args: list[str], waves: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        extra = ["--trainer.logger.init_args.save_dir", folder, "--checkpoint.dirpath", f"{folder}/ckpt"]
        start = time.perf_counter()
        build_cli(["fit", "--config", config, *args, *extra, *QUIET, "--waves.enabled", str(waves).lower()])
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--repeat", type=int, default=1, help="fits of each kind per run (the fastest is kept)")
    args = parser.parse_args(argv)
    print(f"{'run':<14} {'fit, images':>12} {'fit, none':>10} {'callback':>9} {'calls':>5} {'share':>7}  target")
    for name in args.runs.split(","):
        config, extra = RUNS[name]
        timer = Timer()
        timer.install()
        try:
            with_images = min(fit_seconds(config, extra, True) for _ in range(args.repeat))
        finally:
            timer.remove()
        without = min(fit_seconds(config, extra, False) for _ in range(args.repeat))
        per_fit = timer.seconds / args.repeat
        share = per_fit / with_images
        print(
            f"{name:<14} {with_images:>11.2f}s {without:>9.2f}s {per_fit:>8.3f}s {timer.calls // args.repeat:>5} "
            f"{100 * share:>6.2f}%  < 5 %"
        )


if __name__ == "__main__":
    main()
