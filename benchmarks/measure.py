"""Measuring helpers of the benchmark suite (:mod:`benchmarks.run`): timings, memory, op and kernel counts, rows.

Every helper works on the CPU and on CUDA: on the CPU :func:`kernel_launches` returns 0 (there are no device
kernels), everything else measures the same way on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.utils import benchmark

ROWS: list[dict] = []


def median_ms(fn: Callable[[], object], min_run_time: float) -> float:
    """Median milliseconds of ``fn()`` after one warm-up call (``torch.utils.benchmark`` synchronises CUDA)."""
    fn()  # warm-up
    return benchmark.Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median * 1e3


def activation_mb(fn: Callable[[], object]) -> float:
    """The memory of the tensors autograd saves in ``fn()`` (MB); on CUDA the peak allocated memory instead."""
    if torch.get_default_device().type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        fn()
        return torch.cuda.max_memory_allocated() / 2**20
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total / 2**20


def fwd_bwd(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, autocast: bool = False
) -> Callable[[], None]:
    """Forward + backward of ``model(x)`` (gradients accumulate; their cost does not depend on the values); with
    ``autocast``, the forward under bf16 autocast on ``x``'s device."""

    def run() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            y = model(x)
        y.float().square().mean().backward()

    return run


def aten_ops(fn: Callable[[], object]) -> int:
    """The aten ops dispatched by ``fn()`` (forward and backward, nested calls included), by ``torch.profiler``."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(event.name.startswith("aten::") for event in prof.events())


def is_kernel(event) -> bool:
    """Whether a profiler event is a device kernel: a CUDA-side event whose kineto activity is ``"kernel"`` (cuBLAS,
    cuDNN, aten and Triton kernels alike; some kineto builds spell it ``"Kernel"``); memcpy, memset and GPU
    annotations are not kernel launches. Where events carry no activity (older torch), by name instead."""
    if event.device_type != torch.autograd.DeviceType.CUDA:
        return False
    kind = getattr(event, "activity_type", None)
    if kind:
        return str(kind).lower() == "kernel"
    return not getattr(event, "is_user_annotation", False) and not event.name.startswith(("Memcpy", "Memset"))


def count_kernels(events: Iterable) -> int:
    """The device kernels among profiler events (:func:`is_kernel`)."""
    return sum(map(is_kernel, events))


def kernel_launches(fn: Callable[[], object]) -> int | None:
    """CUDA kernels run by one ``fn()``, from ``torch.profiler``'s device events (call ``fn`` once before, so that
    one-time work such as Triton compilation or optimiser state is not counted); 0 where torch sees no CUDA; None
    where the profiler recorded no device event at all (e.g. no CUPTI): not measured, rather than a false 0."""
    if not torch.cuda.is_available():
        return 0
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=activities) as prof:
        fn()
        torch.cuda.synchronize()
    events = prof.events()
    if not any(e.device_type == torch.autograd.DeviceType.CUDA for e in events):
        return None
    return count_kernels(events)


HEADER = (f"{'group':<12} {'model':<26} {'shape':<28} {'ms':>10} {'tokens/s':>12} {'act MB':>8}  {'ratio':<24} "
          f"{'ops L108/432':<15} {'launches':>8}  target")  # fmt: skip


def record(
    group: str,
    name: str,
    shape: str,
    ms: float,
    tokens: int | None = None,
    ref_ms: float | None = None,
    ref_name: str = "",
    mb: float | None = None,
    target: str = "",
    ops: tuple[int, int] | None = None,
    launches: int | None = None,
    met: bool | None = None,
) -> None:
    """Print one row and keep it in :data:`ROWS`. The ratio is ``ms / ref_ms``; ``met`` (printed after the target)
    says whether the row meets its target."""
    ratio = None if ref_ms is None else ms / ref_ms
    row = {
        "group": group,
        "model": name,
        "shape": shape,
        "ms": round(ms, 3),
        "tokens_per_s": round(tokens / ms * 1e3) if tokens else None,
        "act_mb": None if mb is None else round(mb, 1),
        "ratio": None if ratio is None else round(ratio, 3),
        "reference": ref_name,
        "target": target,
        "met": met,
        "ops_per_step": None if ops is None else dict(zip(("L108", "L432"), ops, strict=True)),
        "kernel_launches": launches,
    }
    ROWS.append(row)
    shown = "" if row["ratio"] is None else f"{row['ratio']:.3f}x {ref_name}"
    tps = "" if row["tokens_per_s"] is None else f"{row['tokens_per_s']:,}"
    act = "" if row["act_mb"] is None else f"{row['act_mb']:.1f}"
    counted = "" if ops is None else f"{ops[0]:,}/{ops[1]:,}"
    kernels = "" if launches is None else f"{launches:,}"
    verdict = "" if met is None else (" (met)" if met else " (NOT met)")
    print(f"{group:<12} {name:<26} {shape:<28} {ms:>10.2f} {tps:>12} {act:>8}  {shown:<24} {counted:<15} "
          f"{kernels:>8}  {target}{verdict}", flush=True)  # fmt: skip


def skipped(group: str, name: str, shape: str, why: str) -> None:
    """Print a row that did not run here (e.g. ``cuda only``), kept in :data:`ROWS` with ``ms`` None."""
    ROWS.append({"group": group, "model": name, "shape": shape, "ms": None, "skipped": why})
    print(f"{group:<12} {name:<26} {shape:<28} {'-':>10}  {why}", flush=True)


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (for the README: the table of a run, pasted as it is)."""
    lines = ["| group | model | shape | ms | tokens/s | act MB | ratio | ops L108/432 | launches | target |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        if row.get("ms") is None:
            lines.append(f"| {row['group']} | {row['model']} | {row['shape']} | - | | | | | | {row['skipped']} |")
            continue
        ops = row.get("ops_per_step")
        cells = [
            row["group"],
            row["model"],
            row["shape"],
            f"{row['ms']:.2f}",
            "" if row["tokens_per_s"] is None else f"{row['tokens_per_s']:,}",
            "" if row["act_mb"] is None else f"{row['act_mb']:.1f}",
            "" if row["ratio"] is None else f"{row['ratio']:.3f}x {row['reference']}",
            "" if ops is None else f"{ops['L108']:,} / {ops['L432']:,}",
            "" if row.get("kernel_launches") is None else f"{row['kernel_launches']:,}",
            row["target"] + ("" if row.get("met") is None else (" (met)" if row["met"] else " (NOT met)")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
