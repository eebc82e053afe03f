"""The ``wave_rnn`` rows of ``python -m benchmarks.run --device cuda`` at the authors' psMNIST size (16 x 256 cells,
k = 3, batch 128, length 784, forward + backward with the input map and readout), against issue 27's targets:

- the fused Triton scan (``WAVEZOO_WAVE_SCAN=triton``) and the reference path (``reference``) side by side; the
  fused step <= 15 ms;
- cuDNN ``torch.nn.RNN`` (ReLU) and ``torch.nn.LSTM`` with as many units (4,096): ``nn.RNN`` >= 5x the fused time;
- bf16 autocast rows (the fused scan, ``nn.RNN``): bf16 faster than fp32;
- tokens/s of the fused scan at batch 128 and 2,048 at length 196 (2,048 x 784 fp32 states, their pre-activations and
  both gradients would be 4 x 26 GB): B2048 >= 4x the tokens/s of B128.

The rows of the fused scan need CUDA, or the CPU with ``TRITON_INTERPRET=1`` set before triton is imported (a dry run
at toy sizes: ``Sizes(...)``); elsewhere they print ``cuda only``, as does the cuDNN bf16 row off CUDA, so that the
group runs at toy sizes in the CPU tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

import wavezoo
from benchmarks.keller_wrnn import StepwiseConvRNN
from benchmarks.measure import activation_mb, fwd_bwd, kernel_launches, median_ms, record, skipped

GROUP = "wave_rnn"


@dataclass(frozen=True)
class Sizes:
    batch: int = 128
    length: int = 784
    channels: int = 16
    cells: int = 256
    big_batch: int = 2048
    short_length: int = 196  # the tokens/s rows: B2048 at 784 steps would not fit (see the module docstring)


@contextmanager
def scan(backend: str) -> Iterator[None]:
    """``WAVEZOO_WAVE_SCAN=backend`` for the rows measured inside (read at every call of the scan)."""
    previous = os.environ.get("WAVEZOO_WAVE_SCAN")
    os.environ["WAVEZOO_WAVE_SCAN"] = backend
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("WAVEZOO_WAVE_SCAN")
        else:
            os.environ["WAVEZOO_WAVE_SCAN"] = previous


class Readout(torch.nn.Module):
    """A torch recurrent layer (batch-first) and a linear readout of its outputs."""

    def __init__(self, rnn: torch.nn.RNNBase, outputs: int) -> None:
        super().__init__()
        self.rnn, self.readout = rnn, torch.nn.Linear(rnn.hidden_size, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.rnn(x)[0])


def timed(fn: Callable[[], None], t: float, memory: bool = True) -> tuple[float, float | None, int | None]:
    """Median ms, memory (see :func:`benchmarks.measure.activation_mb`; None without ``memory``) and CUDA kernel
    launches of one call (None off CUDA) of ``fn``; CUDA's cache emptied after."""
    try:
        ms = median_ms(fn, t)
        launches = kernel_launches(fn) if torch.get_default_device().type == "cuda" else None
        return ms, (activation_mb(fn) if memory else None), launches
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def bench_wave_rnn_cuda(quick: bool, t: float, sizes: Sizes = Sizes()) -> None:
    """The rows of the module docstring on the default device (``--quick``: shorter timings only)."""
    cuda = torch.get_default_device().type == "cuda"
    fused_here = cuda or os.environ.get("TRITON_INTERPRET") == "1"
    b, length, c, n = sizes.batch, sizes.length, sizes.channels, sizes.cells
    units, tokens = c * n, sizes.batch * sizes.length
    shape = f"B={b} L={length} {c}x{n}"
    torch.manual_seed(0)
    model = wavezoo.create_model("wave_rnn", input_size=1, output_size=10, hidden_size=units, channels=c,
                                 recurrent_bias=True)  # fmt: skip
    x = torch.randn(b, length, 1)

    fused = fused_bf16 = None
    if fused_here:
        with scan("triton"):
            fused, mb, kernels = timed(fwd_bwd(model, x), t)
            record(GROUP, "fused scan (triton)", shape, fused, tokens, mb=mb, target="<= 15 ms", launches=kernels,
                   met=fused <= 15)  # fmt: skip
            fused_bf16, mb, kernels = timed(fwd_bwd(model, x, autocast=True), t)
            record(GROUP, "fused scan, bf16 autocast", shape, fused_bf16, tokens, fused, "fused fp32", mb,
                   "< 1x (bf16 faster)", launches=kernels, met=fused_bf16 < fused)  # fmt: skip
    else:
        skipped(GROUP, "fused scan (triton)", shape, "cuda only")
        skipped(GROUP, "fused scan, bf16 autocast", shape, "cuda only")
    with scan("reference"):
        ms, mb, kernels = timed(fwd_bwd(model, x), min(t, 0.5))
        record(GROUP, "reference scan", shape, ms, tokens, fused, "fused", mb, launches=kernels)
    authors = StepwiseConvRNN(1, 10, c, n)
    ms, mb, kernels = timed(fwd_bwd(authors, x), min(t, 0.5))
    record(GROUP, "authors' Conv1d loop", shape, ms, tokens, fused, "fused", mb, launches=kernels)

    rnn = Readout(torch.nn.RNN(1, units, nonlinearity="relu", batch_first=True), 10)
    label = "nn.RNN cuDNN" if cuda else "nn.RNN"
    rnn_ms, mb, kernels = timed(fwd_bwd(rnn, x), t)
    record(GROUP, f"{label} relu N={units}", shape, rnn_ms, tokens, fused, "fused", mb, ">= 5x", launches=kernels,
           met=None if fused is None else rnn_ms >= 5 * fused)  # fmt: skip
    if cuda:
        ms, mb, kernels = timed(fwd_bwd(rnn, x, autocast=True), t)
        record(GROUP, f"{label} bf16 autocast", shape, ms, tokens, fused_bf16, "fused bf16", mb, ">= 5x",
               launches=kernels, met=ms >= 5 * fused_bf16)  # fmt: skip
    else:
        skipped(GROUP, f"{label} bf16 autocast", shape, "cuda only")
    del rnn
    lstm = Readout(torch.nn.LSTM(1, units, batch_first=True), 10)
    ms, mb, kernels = timed(fwd_bwd(lstm, x), t)
    record(GROUP, f"{'nn.LSTM cuDNN' if cuda else 'nn.LSTM'} N={units}", shape, ms, tokens, fused, "fused", mb,
           launches=kernels)  # fmt: skip
    del lstm
    tokens_per_s(model, t, sizes, fused_here)


def tokens_per_s(model: torch.nn.Module, t: float, sizes: Sizes, fused_here: bool) -> None:
    """The fused scan at batch 128 and 2,048 (length ``sizes.short_length``), fp32 and bf16 autocast; the B2048 rows'
    ratio is their tokens/s over those of B128."""
    length = sizes.short_length
    for autocast in (False, True):
        kind = "bf16 autocast" if autocast else "fp32"
        per_s = {}
        for batch in (sizes.batch, sizes.big_batch):
            name, shape = f"fused {kind} B{batch}", f"B={batch} L={length} (tokens/s)"
            if not fused_here:
                skipped(GROUP, name, shape, "cuda only")
                continue
            x = torch.randn(batch, length, 1)
            with scan("triton"):
                ms, _, kernels = timed(fwd_bwd(model, x, autocast=autocast), t, memory=False)
            per_s[batch] = batch * length / ms
            big = batch == sizes.big_batch
            ratio = per_s[batch] / per_s[sizes.batch] if big else None
            record(GROUP, name, shape, ms, batch * length, ratio=ratio, ref_name=f"B={sizes.batch} tokens/s",
                   target=">= 4x" if big else "", launches=kernels,
                   met=None if ratio is None else ratio >= 4)  # fmt: skip
            del x
