"""The ``wave_rnn`` rows of ``python -m benchmarks.run --device cuda`` at the authors' psMNIST size (16 x 256 cells,
k = 3, batch 128, length 784, forward + backward with the input map and readout), against issue 27's targets:

- the fused Triton scan (``WAVEZOO_WAVE_SCAN=triton``) and the reference path (``reference``) side by side; the
  fused step <= 15 ms;
- cuDNN ``torch.nn.RNN`` (ReLU) and ``torch.nn.LSTM`` with as many units (4,096): ``nn.RNN`` >= 5x the fused time;
- bf16 autocast rows (the fused scan, ``nn.RNN``): bf16 faster than fp32;
- tokens/s of the fused scan at batch 128 and 2,048 at length 196 (2,048 x 784 fp32 states, their pre-activations and
  both gradients would be 4 x 26 GB): B2048 >= 4x the tokens/s of B128 (the row's ratio: time per token, <= 0.25x).

A row that raises (e.g. out of memory) prints ``FAILED`` and the group goes on.

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
    """The group's shapes: the psMNIST size by default, toy sizes for the CPU checks."""

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


def row(name: str, shape: str, fn: Callable[[], None], t: float, tokens: int, ref: float | None = None,
        ref_name: str = "", target: str = "", check: Callable[[float], bool] | None = None,
        memory: bool = True) -> float | None:  # fmt: skip
    """Time ``fn`` and record its row (ratio: ms / ``ref``; ``check(ms)``: whether the target is met); the ms, or None
    with a ``FAILED`` row where it raised (e.g. out of memory): one failed row does not end the group."""
    try:
        ms, mb, kernels = timed(fn, t, memory)
    except Exception as error:  # noqa: BLE001 - reported in the row, the group goes on
        skipped(GROUP, name, shape, f"FAILED {type(error).__name__}: {str(error).strip().splitlines()[0][:90]}")
        return None
    met = None if check is None else check(ms)
    record(GROUP, name, shape, ms, tokens, ref, ref_name, mb, target, launches=kernels, met=met)
    return ms


def times(k: float, ref: float | None) -> Callable[[float], bool] | None:
    """The check "ms >= k x ref" (None without a reference)."""
    return None if ref is None else lambda ms: ms >= k * ref


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
            fused = row("fused scan (triton)", shape, fwd_bwd(model, x), t, tokens, target="<= 15 ms",
                        check=lambda ms: ms <= 15)  # fmt: skip
            fused_bf16 = row("fused scan, bf16 autocast", shape, fwd_bwd(model, x, autocast=True), t, tokens, fused,
                             "fused fp32", "< 1x (bf16 faster)",
                             None if fused is None else lambda ms: ms < fused)  # fmt: skip
    else:
        skipped(GROUP, "fused scan (triton)", shape, "cuda only")
        skipped(GROUP, "fused scan, bf16 autocast", shape, "cuda only")
    with scan("reference"):
        row("reference scan", shape, fwd_bwd(model, x), min(t, 0.5), tokens, fused, "fused")
    authors = StepwiseConvRNN(1, 10, c, n)
    row("authors' Conv1d loop", shape, fwd_bwd(authors, x), min(t, 0.5), tokens, fused, "fused")
    del authors

    label = "nn.RNN cuDNN" if cuda else "nn.RNN"
    rnn = Readout(torch.nn.RNN(1, units, nonlinearity="relu", batch_first=True), 10)
    row(f"{label} relu N={units}", shape, fwd_bwd(rnn, x), t, tokens, fused, "fused", ">= 5x", times(5, fused))
    if cuda:
        row(f"{label} bf16 autocast", shape, fwd_bwd(rnn, x, autocast=True), t, tokens, fused_bf16, "fused bf16",
            ">= 5x", times(5, fused_bf16))  # fmt: skip
    else:
        skipped(GROUP, f"{label} bf16 autocast", shape, "cuda only")
    del rnn
    lstm = Readout(torch.nn.LSTM(1, units, batch_first=True), 10)
    row(f"{'nn.LSTM cuDNN' if cuda else 'nn.LSTM'} N={units}", shape, fwd_bwd(lstm, x), t, tokens, fused, "fused")
    del lstm
    tokens_per_s(model, t, sizes, fused_here)


def tokens_per_s(model: torch.nn.Module, t: float, sizes: Sizes, fused_here: bool) -> None:
    """The fused scan at batch 128 and 2,048 (length ``sizes.short_length``), fp32 and bf16 autocast; the B2048 rows'
    ratio is their tokens/s over those of B128."""
    length = sizes.short_length
    for autocast in (False, True):
        kind = "bf16 autocast" if autocast else "fp32"
        small = None
        for batch in (sizes.batch, sizes.big_batch):
            name, shape = f"fused {kind} B{batch}", f"B={batch} L={length} (tokens/s)"
            if not fused_here:
                skipped(GROUP, name, shape, "cuda only")
                continue
            x = torch.randn(batch, length, 1)
            big = batch == sizes.big_batch
            # tokens/s of B2048 over those of B128 = (2048 / ms) / (128 / ms_128): as a time ratio, ms_128 x 16 / ms
            ref = None if small is None or not big else small * batch / sizes.batch
            with scan("triton"):
                ms = row(name, shape, fwd_bwd(model, x, autocast=autocast), t, batch * length, ref,
                         f"B={sizes.batch} per token", "<= 0.25x (>= 4x tokens/s)" if big else "",
                         None if ref is None else lambda ms, ref=ref: ms <= ref / 4, memory=False)  # fmt: skip
            small = ms if not big else small
            del x
