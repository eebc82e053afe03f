"""One GPU check of the fused Triton wave scan (wavezoo.core.wave_scan_triton), under 3 minutes on an H200.

    PYTHONPATH=. python3 scripts/triton_check.py            (from the repository root; nothing to install)
    python3 scripts/triton_check.py --cpu-smoke              (the same rows at toy sizes on the CPU, interpreted)

1. Correctness on CUDA at the psMNIST size (16 x 256 cells, k = 3, length 784, batch 16): the Triton scan against
   the reference WaveScan (fp32, TF32 off), max abs and relative differences of the output and of every gradient
   (input, V, b, u, b_u, W, readout bias), relu (shift initialisation) and tanh (random u); then the other operand
   modes (tf32, bf16) and bf16 autocast against the same fp32 reference.
2. Timing of one training step's forward + backward of the whole model (input GEMM, scan, readout GEMM) at batch 128,
   length 784 by CUDA events (warm-up first, median of several): Triton fp32 (warps forward,backward 4,8 (default),
   8,8 and 4,16), Triton with tf32 and bf16 operands, Triton under bf16 autocast, the reference path on CUDA, and
   torch.nn.RNN with 4,096 units (cuDNN);
   tokens/s at batch 128 and 2,048 (length 196 for both: 2,048 x 784 fp32 states do not fit with their gradients);
   then the ratios. Every row catches and prints its own exception.
3. The fused Triton SBC scan of ``twm_sbc`` (wavezoo.core.sbc_scan_triton) at the variable-binding size (s = d = 8,
   B64 L108, configs/variable_binding/twm_sbc.yaml: autoregressive, "replace", input_steps 8; and the driven "add"
   rule): correctness against the reference step loop on CUDA (y and every gradient), then fwd+bwd timings of both
   paths (Triton at 4, 2 and 1 warps per program, WAVEZOO_SBC_WARPS), bf16 autocast, and the ratio.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import traceback

import torch

SMOKE = "--cpu-smoke" in sys.argv
if SMOKE:  # before triton is imported
    os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, os.getcwd())
from wavezoo.models.wave_rnn import WaveRNN  # noqa: E402

C, HIDDEN, K, INPUTS, OUTPUTS = (2, 16, 3, 1, 3) if SMOKE else (16, 4096, 3, 1, 10)
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
DEVICE = "cpu" if SMOKE else "cuda"


def size(value: int) -> int:
    """Batch sizes and lengths: as given on the GPU, a toy size for the CPU smoke run."""
    return max(2, value // 64) if SMOKE else value


def env(**values: str):
    """Set WAVEZOO_* variables for one row (None removes one)."""
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def model(nonlinearity: str = "relu", shift: bool = True, bias: bool = True) -> WaveRNN:
    torch.manual_seed(0)
    m = WaveRNN(INPUTS, OUTPUTS, HIDDEN, channels=C, kernel_size=K, nonlinearity=nonlinearity, shift_init=shift,
                solo_init=False, recurrent_bias=bias)  # fmt: skip
    if shift:  # a shift plus a little channel mixing, so every tap and channel gets a gradient
        with torch.no_grad():
            m.kernel.add_(0.01 * torch.randn_like(m.kernel))
    return m.to(DEVICE)


def step(m: torch.nn.Module, x: torch.Tensor, autocast: bool = False):
    """Forward + backward; returns y and the gradients (input first, then every parameter)."""
    x = x.detach().requires_grad_()
    for p in m.parameters():
        p.grad = None
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        y = m(x)
    g = torch.Generator(device=DEVICE).manual_seed(1)
    (y.float() * torch.randn(y.shape, device=DEVICE, generator=g)).sum().backward()
    return y.detach().float(), [("x", x.grad)] + [(n, p.grad) for n, p in m.named_parameters()]


def compare(label: str, got, ref) -> None:
    (y, grads), (y_ref, grads_ref) = got, ref
    parts = []
    for name, a, b in [("y", y, y_ref)] + [(n, a, b) for (n, a), (_, b) in zip(grads, grads_ref, strict=True)]:
        diff = (a.float() - b.float()).abs().max().item()
        rel = diff / max(b.float().abs().max().item(), 1e-30)
        parts.append(f"{name} {diff:.2e} ({rel:.1e})")
    print(f"  {label:<34} max abs (rel): " + ", ".join(parts), flush=True)


def correctness() -> None:
    print("== correctness: Triton vs reference on CUDA, 16x256 k3, B16 L784 (max abs diff, relative to max |ref|)")
    x = torch.randn(size(16), size(784), INPUTS, device=DEVICE)
    for nonlinearity, shift in (("relu", True), ("tanh", False)):
        try:
            m = model(nonlinearity, shift)
            env(WAVEZOO_WAVE_SCAN="reference", WAVEZOO_TRITON_DOT=None, WAVEZOO_TRITON_WARPS=None)
            ref = step(m, x)
            for label, dot, autocast in (
                ("fp32 (ieee operands)", "ieee", False),
                ("tf32 operands", "tf32", False),
                ("bf16 operands", "bf16", False),
                ("bf16 autocast (ieee operands)", "ieee", True),
            ):
                env(WAVEZOO_WAVE_SCAN="triton", WAVEZOO_TRITON_DOT=dot)
                compare(f"{nonlinearity} {label}", step(m, x, autocast), ref)
        except Exception:  # noqa: BLE001 - print and carry on with the next row
            print(f"  {nonlinearity}: FAILED\n{traceback.format_exc()}", flush=True)
    env(WAVEZOO_WAVE_SCAN=None, WAVEZOO_TRITON_DOT=None)


def timed(fn, warmup: int = 2, repeats: int = 7) -> float:
    """Median milliseconds of ``fn()`` by CUDA events, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    if SMOKE:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)
    torch.cuda.synchronize()
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


RESULTS: dict[str, float] = {}


def row(label: str, fn, batch: int, length: int, repeats: int = 7) -> None:
    try:
        ms = timed(fn, repeats=repeats)
        RESULTS[label] = ms
        print(f"  {label:<44} {ms:9.2f} ms   {batch * length / ms * 1e3 / 1e6:8.2f} M tokens/s", flush=True)
    except Exception:  # noqa: BLE001
        print(f"  {label:<44} FAILED\n{traceback.format_exc()}", flush=True)
    finally:
        if not SMOKE:
            torch.cuda.empty_cache()


def wave_row(label: str, batch: int, length: int, backend: str, dot: str = "ieee", warps: str = "4,8",
             autocast: bool = False, repeats: int = 7) -> None:  # fmt: skip
    env(WAVEZOO_WAVE_SCAN=backend, WAVEZOO_TRITON_DOT=dot, WAVEZOO_TRITON_WARPS=warps)
    try:
        m = model()
        x = torch.randn(batch, length, INPUTS, device=DEVICE)
    except Exception:  # noqa: BLE001
        print(f"  {label:<44} FAILED (set-up)\n{traceback.format_exc()}", flush=True)
        return

    def fn():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            y = m(x)
        y.float().square().mean().backward()

    row(label, fn, batch, length, repeats)


def cudnn_row(label: str, batch: int, length: int) -> None:
    try:
        torch.manual_seed(0)
        rnn = torch.nn.RNN(INPUTS, HIDDEN, batch_first=True).to(DEVICE)
        readout = torch.nn.Linear(HIDDEN, OUTPUTS).to(DEVICE)
        x = torch.randn(batch, length, INPUTS, device=DEVICE)
    except Exception:  # noqa: BLE001
        print(f"  {label:<44} FAILED (set-up)\n{traceback.format_exc()}", flush=True)
        return

    def fn():
        readout(rnn(x)[0]).square().mean().backward()

    row(label, fn, batch, length)


def kernel_rows(batch: int, length: int) -> None:
    """The two Triton launches alone (no GEMMs): forward, and forward + backward, fp32 ieee."""
    from wavezoo.core.wave_scan_triton import DEFAULT_CHUNK, TritonWaveScan

    env(WAVEZOO_TRITON_DOT="ieee", WAVEZOO_TRITON_WARPS=None)
    try:
        n = HIDDEN // C
        pre = torch.randn(length, batch, C, n, device=DEVICE).requires_grad_()
        u = model().kernel.detach().clone().requires_grad_()
        h0 = torch.zeros(batch, C, n, device=DEVICE)
    except Exception:  # noqa: BLE001
        print(f"  kernel rows FAILED (set-up)\n{traceback.format_exc()}", flush=True)
        return

    def forward():
        with torch.no_grad():
            TritonWaveScan.apply(pre, u, h0, "relu", DEFAULT_CHUNK)

    def both():
        TritonWaveScan.apply(pre, u, h0, "relu", DEFAULT_CHUNK).sum().backward()

    row("scan kernel alone: forward", forward, batch, length)
    row("scan kernels alone: forward + backward", both, batch, length)


def timing() -> None:
    b, t = size(128), size(784)
    print(f"== fwd+bwd of the whole wave_rnn 16x256 (k3, relu, I={INPUTS}, O={OUTPUTS}) at B{b} L{t}, median ms")
    wave_row("triton fp32 (ieee), 4,8 warps", b, t, "triton")
    wave_row("triton fp32 (ieee), 8,8 warps", b, t, "triton", warps="8,8")
    wave_row("triton fp32 (ieee), 4,16 warps", b, t, "triton", warps="4,16")
    wave_row("triton tf32 operands, 4,8 warps", b, t, "triton", dot="tf32")
    wave_row("triton bf16 operands, 4,8 warps", b, t, "triton", dot="bf16")
    wave_row("triton bf16 autocast (ieee operands)", b, t, "triton", autocast=True)
    wave_row("triton bf16 autocast + bf16 operands", b, t, "triton", dot="bf16", autocast=True)
    kernel_rows(b, t)
    wave_row("reference WaveScan on CUDA (fp32)", b, t, "reference", repeats=3)
    cudnn_row("torch.nn.RNN 4096 units cuDNN (fp32)", b, t)
    print("== tokens/s of the Triton scan by batch (length 196)")
    for batch in (128, 2048):
        wave_row(f"triton fp32 (ieee) B{batch} L196", size(batch), size(196), "triton")
        wave_row(f"triton bf16 autocast B{batch} L196", size(batch), size(196), "triton", autocast=True)
    env(WAVEZOO_WAVE_SCAN=None, WAVEZOO_TRITON_DOT=None, WAVEZOO_TRITON_WARPS=None)


def ratios() -> None:
    print("== ratios (>1: the first is faster)")
    best = min((v, k) for k, v in RESULTS.items() if k.startswith("triton") and "L196" not in k) if RESULTS else None
    pairs = [
        ("reference WaveScan on CUDA (fp32)", "triton fp32 (ieee), 4,8 warps"),
        ("torch.nn.RNN 4096 units cuDNN (fp32)", "triton fp32 (ieee), 4,8 warps"),
        ("triton fp32 (ieee), 4,8 warps", "triton bf16 autocast (ieee operands)"),
        ("triton fp32 (ieee), 4,8 warps", "triton bf16 autocast + bf16 operands"),
        ("triton fp32 (ieee), 4,8 warps", "triton tf32 operands, 4,8 warps"),
    ]
    for slow, fast in pairs:
        if slow in RESULTS and fast in RESULTS:
            print(f"  {slow} / {fast}: {RESULTS[slow] / RESULTS[fast]:.2f}x")
    for kind in ("fp32 (ieee)", "bf16 autocast"):
        small, large = f"triton {kind} B128 L196", f"triton {kind} B2048 L196"
        if small in RESULTS and large in RESULTS:  # tokens/s ratio = (2048 / ms_large) / (128 / ms_small)
            print(f"  tokens/s B2048 / B128 ({kind}): {16 * RESULTS[small] / RESULTS[large]:.2f}x")
    if best:
        print(f"  best Triton row at B128 L784: {best[1]} {best[0]:.2f} ms (target <= 15 ms)")


def sbc_model(**options):
    from wavezoo.models.twm import twm_sbc

    torch.manual_seed(0)
    return twm_sbc(8, 8, hidden_size=64, history=8, **options).to(DEVICE)


SBC_RULES = {
    "AR replace k=8 (variable binding)": dict(autoregressive=True, input_mode="replace", input_steps=8),
    "add, every step (driven)": {},
}


def sbc_check() -> None:
    b, t = size(64), (12 if SMOKE else 108)
    print(f"== twm_sbc s=d=8: the Triton SBC scan vs the reference step loop at B{b} L{t} (max abs diff (rel))")
    x = torch.randn(b, t, 8, device=DEVICE)
    for label, options in SBC_RULES.items():
        try:
            m = sbc_model(**options)
            env(WAVEZOO_SBC_SCAN="reference")
            ref = step(m, x)
            env(WAVEZOO_SBC_SCAN="triton")
            compare(f"sbc {label}", step(m, x), ref)
        except Exception:  # noqa: BLE001
            print(f"  sbc {label}: FAILED\n{traceback.format_exc()}", flush=True)
    print(f"== twm_sbc s=d=8 fwd+bwd at B{b} L{t}, median ms")
    for label, options in SBC_RULES.items():
        tag = label.split(" (")[0]
        for backend, autocast, warps in (("triton", False, "4"), ("triton", False, "2"), ("triton", False, "1"),
                                         ("triton", True, "4"), ("reference", False, "4")):  # fmt: skip
            name = f"sbc {tag} {backend}{' bf16 autocast' if autocast else ''}"
            name += f" {warps} warps" if backend == "triton" and warps != "4" else ""
            try:
                env(WAVEZOO_SBC_SCAN=backend, WAVEZOO_SBC_WARPS=warps)
                m = sbc_model(**options)

                def fn(m=m, autocast=autocast):
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                        y = m(x)
                    y.float().square().mean().backward()

                row(name, fn, b, t, repeats=3 if backend == "reference" else 7)
            except Exception:  # noqa: BLE001
                print(f"  {name} FAILED\n{traceback.format_exc()}", flush=True)
        slow, fast = f"sbc {tag} reference", f"sbc {tag} triton"
        if slow in RESULTS and fast in RESULTS:
            print(f"  {slow} / {fast}: {RESULTS[slow] / RESULTS[fast]:.2f}x")
    env(WAVEZOO_SBC_SCAN=None, WAVEZOO_SBC_WARPS=None)


def main() -> None:
    if not SMOKE and not torch.cuda.is_available():
        sys.exit("no CUDA device visible to torch (try --cpu-smoke)")
    import triton

    name = "CPU smoke run (toy sizes, interpreted)" if SMOKE else torch.cuda.get_device_name()
    print(f"device {name}  torch {torch.__version__}  triton {triton.__version__}", flush=True)
    start = time.time()
    correctness()
    print(f"  ({time.time() - start:.0f} s)", flush=True)
    timing()
    ratios()
    sbc_check()
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
