"""Benchmark suite: every figure is a ratio to a reference measured in the same process.

    python -m benchmarks.run [--quick] [--device cpu|cuda] [--out benchmarks/results.json] [--only twm_step,...]

Times are medians of ``torch.utils.benchmark`` runs (warm-up included). "act MB" is the memory of the tensors
autograd saves for the backward pass (the activation memory that dominates training on the CPU); on CUDA the
peak allocated memory is reported instead. "ops L108/432": aten ops of one fwd+bwd at lengths 108 and 432 (train_T1);
"launches": CUDA kernels of one fwd+bwd+Adam step at length 108 (train_T1, CUDA only). A target followed by "(met)"
or "(NOT met)" is checked in the run. Helpers: :mod:`benchmarks.measure`; the CUDA ``wave_rnn`` rows:
:mod:`benchmarks.wave_rnn_cuda`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from datetime import date

import torch
import torch.nn.functional as F

import wavezoo
from benchmarks.keller_wrnn import StepwiseConvRNN
from benchmarks.measure import (
    HEADER,
    ROWS,
    activation_mb,
    aten_ops,
    fwd_bwd,
    kernel_launches,
    markdown,
    median_ms,
    record,
)
from benchmarks.wave_rnn_cuda import bench_wave_rnn_cuda
from wavezoo.core.lbc_algebra import lbc_matrix
from wavezoo.core.waves import shift_in
from wavezoo.data import VariableBindingDataModule
from wavezoo.models.sbc import AttentionOnlyTransformer
from wavezoo.models.ssm import LBCSSM
from wavezoo.models.twm import LinearBoundary


def bench_twm_step(quick: bool, t: float) -> None:
    """Exact TWM step: index shift + LBC boundary vs the same step as a dense (sd x sd) matmul."""
    s = d = 32 if quick else 64
    batch = 64
    boundary = LinearBoundary(s, d, learnable=False)
    m = lbc_matrix(boundary.phi.double()).float()
    h = torch.randn(batch, s, d)
    flat = h.reshape(batch, -1)
    with torch.no_grad():
        assert torch.allclose(shift_in(h, boundary(h)).reshape(batch, -1), flat @ m.T, atol=1e-4)
        dense = median_ms(lambda: flat @ m.T, t)
        index = median_ms(lambda: shift_in(h, boundary(h)), t)
    shape = f"B={batch} s={s} d={d}"
    record("twm_step", "dense (sd x sd) matmul", shape, dense)
    record("twm_step", "index shift + boundary", shape, index, ref_ms=dense, ref_name="dense", target="<= 0.1x")


WAVE_RNN_SIZES = [  # (batch, length, channels, cells): Keller et al.'s copy sweep, a 1-ring sMNIST, their psMNIST size
    (128, 110, 6, 100),
    (64, 784, 1, 256),
    (128, 784, 16, 256),
]


def bench_wave_rnn(quick: bool, t: float) -> None:
    """The structured wave RNN (one thread) next to the authors' way of running it (a circular ``nn.Conv1d`` stepped
    in Python, :mod:`benchmarks.keller_wrnn`) and ``torch.nn.RNN`` with as many units, fwd + bwd with the readout.
    On CUDA the psMNIST size is measured by :mod:`benchmarks.wave_rnn_cuda` instead (fused and reference scans, cuDNN
    ``nn.RNN`` and ``nn.LSTM``, bf16 autocast, tokens/s at batch 128 and 2,048)."""
    cuda = torch.get_default_device().type == "cuda"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for batch, length, channels, cells in WAVE_RNN_SIZES[:-1] if cuda else WAVE_RNN_SIZES:
            length = min(length, 110) if quick else length
            units = channels * cells
            x = torch.randn(batch, length, 1)
            shape = f"B={batch} L={length} {channels}x{cells}"
            authors = StepwiseConvRNN(1, 10, channels, cells)
            model = wavezoo.create_model("wave_rnn", input_size=1, output_size=10, hidden_size=units,
                                         channels=channels, recurrent_bias=True)  # fmt: skip
            ref_ms = median_ms(fwd_bwd(authors, x), t)
            record("wave_rnn", "authors' Conv1d loop", shape, ref_ms, batch * length,
                   mb=activation_mb(fwd_bwd(authors, x)))  # fmt: skip
            ms = median_ms(fwd_bwd(model, x), t)
            record("wave_rnn", "wave_rnn (structured)", shape, ms, batch * length, ref_ms, "authors' loop",
                   activation_mb(fwd_bwd(model, x)), "<= 0.33x")  # fmt: skip
            rnn_length = length if units <= 1024 else min(length, 64)  # a dense 4096-unit RNN over 784 steps: minutes
            rnn = torch.nn.Sequential(RNNOutputs(1, units), torch.nn.Linear(units, 10))
            xr = x[:, :rnn_length]
            rnn_ms = median_ms(fwd_bwd(rnn, xr), t)
            scale = length / rnn_length
            name = "torch.nn.RNN (relu)" + ("" if scale == 1 else f", L={rnn_length} x{scale:.2f}")
            record("wave_rnn", name, f"B={batch} L={length} N={units}", rnn_ms * scale, batch * length, ms,
                   "wave_rnn", target=">= 1x")  # fmt: skip
        if cuda:
            bench_wave_rnn_cuda(quick, t)
        else:
            print(f"{'wave_rnn':<12} fused scan, cuDNN, bf16 and B2048 rows: cuda only (--device cuda)", flush=True)
    finally:
        torch.set_num_threads(threads)


class RNNOutputs(torch.nn.Module):
    """``torch.nn.RNN`` (ReLU, batch-first) returning its outputs only."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(input_size, hidden_size, nonlinearity="relu", batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def bench_lbc_ssm(quick: bool, t: float) -> None:
    batch, units, state = 16, 256, 16
    lengths = [1024] if quick else [1024, 4096, 16384]
    model = LBCSSM(1, 1, units, state_size=state, num_layers=1)
    lstm = torch.nn.LSTM(1, units, batch_first=True)
    for length in lengths:
        x = torch.randn(batch, length, 1)
        shape = f"B={batch} L={length} N={units}"
        run_parallel = fwd_bwd(model.set_mode("parallel"), x)
        par = median_ms(run_parallel, t)
        record("lbc_ssm", "lbc_ssm parallel (FFT)", shape, par, batch * length, mb=activation_mb(run_parallel))
        if length <= 4096:
            lstm_run = fwd_bwd(lambda z: lstm(z)[0], x)
            ref = median_ms(lstm_run, t)
            record(
                "lbc_ssm",
                "torch.nn.LSTM (hidden 256)",
                shape,
                ref,
                batch * length,
                par,
                "lbc_ssm par.",
                activation_mb(lstm_run),
                ">= 2x",
            )
            rec_run = fwd_bwd(model.set_mode("recurrent"), x)
            rec = median_ms(rec_run, min(t, 0.2))
            record("lbc_ssm", "lbc_ssm recurrent", shape, rec, batch * length, par, "lbc_ssm par.", target=">= 3x")
    model.set_mode("parallel")


def bench_generation(quick: bool, t: float) -> None:
    window, dim, batch = 256, 64, 8
    transformer = AttentionOnlyTransformer(dim, window, num_layers=1, num_heads=4)
    prompt = torch.randn(batch, window, dim)
    steps = 32 if quick else 128
    with torch.no_grad():
        slow = median_ms(lambda: transformer.generate(prompt, steps, cache=False), t) / steps
        fast = median_ms(lambda: transformer.generate(prompt, steps), t) / steps
    record("generate", "recompute full window", f"s={window} d={dim} B={batch}", slow, batch)
    record(
        "generate",
        "ring-buffer K/V cache",
        f"s={window} d={dim} B={batch}",
        fast,
        batch,
        slow,
        "recompute",
        target="<= 0.2x",
    )
    for generated in [256, 1024] if quick else [256, 1024, 4096]:
        with torch.no_grad():
            ms = median_ms(lambda n=generated: transformer.generate(prompt, n), t) / generated
        record(
            "generate", f"cached, {generated} tokens", "ms per token", ms, batch, fast, "cached@short", target="flat"
        )


def bench_training(quick: bool, t: float) -> None:
    """Training steps (forward, backward, Adam) of every family on variable binding T1 at horizon 100."""
    with torch.device("cpu"):  # the generators of the DataModules live on the CPU
        data = VariableBindingDataModule("T1", horizons=[100])
        x, y, mask = data.next_train_batch()
    device = torch.get_default_device()
    cuda = device.type == "cuda"
    x, y, mask = x.to(device), y.to(device), mask.to(device)
    hidden_sizes = {"elman": 128, "gru": 128, "lstm": 128, "irnn": 128, "transformer": 64}  # else: the default
    runs = [(name, {}) for name in ["elman", *(n for n in wavezoo.list_models() if n != "elman")]]
    runs.append(("sbc_transformer", {"form": "recurrent"}))  # the SBC trained through its loop (the old default)
    ref = None
    for name, kwargs in runs:
        model = wavezoo.create_model(name, input_size=8, output_size=8, hidden_size=hidden_sizes.get(name), **kwargs)
        label = f"{name}{''.join(f' {v}' for v in kwargs.values())} (hidden {model.hidden_size})"
        optim = torch.optim.Adam(model.parameters(), 1e-3)

        def step(model=model, optim=optim) -> None:
            optim.zero_grad()
            F.mse_loss(model.training_forward(x, y)[mask], y[mask]).backward()  # teacher-forced where it applies
            optim.step()

        ms = median_ms(step, t)
        ref = ms if name == "elman" else ref
        ops = tuple(  # L = 108 and 432
            aten_ops(fwd_bwd(lambda x, m=model, r=r: m.training_forward(x, y.repeat(1, r, 1)), x.repeat(1, r, 1)))
            for r in (1, 4)
        )
        launches = kernel_launches(step) if cuda else None  # one fwd + bwd + Adam step, after median_ms's warm-up
        target = ">= 200 steps/s, <= 300 launches" if cuda else ""
        met = 1e3 / ms >= 200 and launches is not None and launches <= 300 if cuda else None
        record("train_T1", label, f"B=64 L=108 ({1e3 / ms:.1f} steps/s)", ms, 64 * 108, ref,
               "elman", target=target, ops=ops, launches=launches, met=met)  # fmt: skip


def bench_framework(quick: bool, t: float) -> None:
    """`wavezoo fit` (Lightning) against the plain PyTorch loop of benchmarks.plain_loop, same protocol."""
    import lightning.pytorch as pl

    from benchmarks.plain_loop import train
    from wavezoo.lit import SequenceRegression

    steps = 100 if quick else 300
    plain = train("T1", steps, log_every=10**9)["steps_per_s"]
    data = VariableBindingDataModule("T1", curriculum_threshold=0.98, steps_per_epoch=steps)
    module = SequenceRegression(model="elman", input_size=8, output_size=8, hidden_size=128)
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        gradient_clip_val=1.0,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    lit = steps / (time.perf_counter() - start)
    shape = f"T1 curriculum, {steps} steps"
    record("framework", "plain PyTorch loop", shape, 1e3 / plain)
    record(
        "framework",
        "wavezoo fit (Lightning)",
        shape,
        1e3 / lit,
        ref_ms=1e3 / plain,
        ref_name="plain loop",
        target="<= 1.25x (>= 0.8x steps/s)",
    )


BENCHES = {
    "twm_step": bench_twm_step,
    "wave_rnn": bench_wave_rnn,
    "lbc_ssm": bench_lbc_ssm,
    "generate": bench_generation,
    "train_T1": bench_training,
    "framework": bench_framework,
}


CPU_ONLY = {"framework"}  # compares Lightning with benchmarks.plain_loop, which runs on the CPU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes, shorter timings")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where models and tensors live")
    parser.add_argument("--out", default="benchmarks/results.json")
    parser.add_argument("--markdown", default="", help="also write the rows as a Markdown table to this file")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHES)}")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available to torch here")
    chosen = [b for b in args.only.split(",") if b] or list(BENCHES)
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    t = 0.3 if args.quick else 0.5 if args.device == "cuda" else 1.0  # seconds of timing per row (CUDA: steadier)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(HEADER)
    failed: list[str] = []
    for name in chosen:
        if args.device != "cpu" and name in CPU_ONLY:
            print(f"{name:<12} skipped on {args.device}: a CPU comparison")
            continue
        try:
            with torch.device(args.device):  # models and tensors of every benchmark are created there
                BENCHES[name](args.quick, t)
        except Exception:  # noqa: BLE001 - the other groups still run; the exit status says it
            failed.append(name)
            print(f"{name:<12} FAILED (traceback on stderr)", flush=True)
            traceback.print_exc()
    meta = {
        "date": str(date.today()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "quick": args.quick,
        "failed": failed,
    }
    with open(args.out, "w") as fh:
        json.dump({"meta": meta, "rows": ROWS}, fh, indent=1)
    print(f"wrote {args.out}")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(markdown(ROWS))
        print(f"wrote {args.markdown}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
