"""The benchmark helpers behind the CUDA columns (benchmarks/measure.py) and the CUDA wave_rnn group
(benchmarks/wave_rnn_cuda.py), run on the CPU: the launch counter, the op counter, the rows and their verdicts."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks import measure, wave_rnn_cuda  # noqa: E402

CUDA, CPU = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU


def test_only_device_kernels_count_as_launches():
    events = [
        SimpleNamespace(device_type=CUDA, activity_type="kernel"),
        SimpleNamespace(device_type=CUDA, activity_type="Kernel"),
        SimpleNamespace(device_type=CUDA, activity_type="gpu_memcpy"),
        SimpleNamespace(device_type=CUDA, activity_type="gpu_memset"),
        SimpleNamespace(device_type=CUDA, activity_type="gpu_user_annotation"),
        SimpleNamespace(device_type=CPU, activity_type="cpu_op"),
        SimpleNamespace(device_type=CPU, activity_type="cuda_runtime"),  # cudaLaunchKernel: the host side
    ]
    assert measure.count_kernels(events) == 2
    older = [  # events without an activity type: by name
        SimpleNamespace(device_type=CUDA, name="void gemm_kernel<float>(...)", is_user_annotation=False),
        SimpleNamespace(device_type=CUDA, name="_forward_kernel", activity_type=None),
        SimpleNamespace(device_type=CUDA, name="Memcpy HtoD (Pageable -> Device)", is_user_annotation=False),
        SimpleNamespace(device_type=CUDA, name="Memset (Device)", is_user_annotation=False),
        SimpleNamespace(device_type=CUDA, name="Optimizer.step#Adam.step", is_user_annotation=True),
        SimpleNamespace(device_type=CPU, name="aten::mm"),
    ]
    assert measure.count_kernels(older) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU answer")
def test_a_cpu_step_launches_no_kernel_and_dispatches_aten_ops():
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam(model.parameters())
    x = torch.randn(4, 3)

    def step() -> None:
        optim.zero_grad()
        model(x).square().mean().backward()
        optim.step()

    step()
    assert measure.kernel_launches(step) == 0
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    assert len(prof.events()) > 5 and measure.count_kernels(prof.events()) == 0  # real events: CPU ops only
    assert measure.aten_ops(measure.fwd_bwd(model, x)) > 5  # addmm, its backward, pow, mean, ...
    assert measure.aten_ops(measure.fwd_bwd(model, x, autocast=True)) > 5  # bf16 autocast on the CPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_step_launches_a_few_kernels():
    """The GPU tier's check of the counter: one small fwd+bwd launches a handful of kernels, none before the step."""
    model = torch.nn.Linear(3, 2).cuda()
    run = measure.fwd_bwd(model, torch.randn(4, 3, device="cuda"))
    run()
    launches = measure.kernel_launches(run)
    assert launches is not None and 3 <= launches <= 40, launches
    assert measure.kernel_launches(lambda: None) in (0, None)


def test_rows_print_their_ratio_launches_and_verdict(capsys):
    before = len(measure.ROWS)
    measure.record("g", "fast", "B=1", 2.0, tokens=10, ref_ms=4.0, ref_name="slow", target="<= 0.6x", met=True,
                   launches=1234, ops=(5, 6))  # fmt: skip
    measure.record("g", "big", "B=2", 9.0, ref_ms=2.0, ref_name="fast", target="<= 4x", met=False)
    measure.skipped("g", "fused", "B=1", "cuda only")
    out = capsys.readouterr().out.splitlines()
    assert "0.500x slow" in out[0] and "1,234" in out[0] and "5/6" in out[0] and out[0].endswith("<= 0.6x (met)")
    assert "4.500x fast" in out[1] and out[1].endswith("<= 4x (NOT met)")
    assert out[2].split()[-2:] == ["cuda", "only"]
    rows = measure.ROWS[before:]
    assert rows[0]["kernel_launches"] == 1234 and rows[0]["met"] is True and rows[2]["ms"] is None
    del measure.ROWS[before:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU answer")
def test_the_cuda_wave_rnn_group_runs_on_the_cpu_at_toy_sizes(capsys):
    before = len(measure.ROWS)
    sizes = wave_rnn_cuda.Sizes(batch=2, length=5, channels=2, cells=8, big_batch=4, short_length=3)
    wave_rnn_cuda.bench_wave_rnn_cuda(True, 0.01, sizes)
    rows = {row["model"]: row for row in measure.ROWS[before:]}
    del measure.ROWS[before:]
    ran = ["reference scan", "authors' Conv1d loop", "nn.RNN relu N=16", "nn.LSTM N=16"]
    assert all(rows[name]["ms"] > 0 and rows[name]["tokens_per_s"] > 0 for name in ran), rows
    cuda_only = [name for name, row in rows.items() if row.get("skipped") == "cuda only"]
    assert sorted(cuda_only) == sorted(["fused scan (triton)", "fused scan, bf16 autocast", "nn.RNN bf16 autocast",
                                        "fused fp32 B2", "fused fp32 B4", "fused bf16 autocast B2",
                                        "fused bf16 autocast B4"])  # fmt: skip


def test_the_scan_switch_is_restored():
    import os

    previous = os.environ.get("WAVEZOO_WAVE_SCAN")
    with wave_rnn_cuda.scan("reference"):
        assert os.environ["WAVEZOO_WAVE_SCAN"] == "reference"
    assert os.environ.get("WAVEZOO_WAVE_SCAN") == previous


def test_a_failing_row_is_reported_and_the_group_goes_on(capsys):
    before = len(measure.ROWS)

    def out_of_memory() -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 26.00 GiB\nmore detail")

    assert wave_rnn_cuda.row("fused fp32 B2048", "B=2048", out_of_memory, 0.01, 100) is None
    assert wave_rnn_cuda.row("ok", "B=1", lambda: None, 0.01, 100, ref=1.0, ref_name="x", check=lambda ms: True) > 0
    rows = measure.ROWS[before:]
    del measure.ROWS[before:]
    assert rows[0]["skipped"] == "FAILED RuntimeError: CUDA out of memory. Tried to allocate 26.00 GiB"
    assert rows[1]["met"] is True and rows[1]["ratio"] is not None
    assert "FAILED RuntimeError" in capsys.readouterr().out


def test_rows_as_a_markdown_table(capsys):
    before = len(measure.ROWS)
    measure.record("train_T1", "elman (hidden 128)", "B=64 L=108 (500.0 steps/s)", 2.0, tokens=6912, ref_ms=2.0,
                   ref_name="elman", target=">= 200 steps/s, <= 300 launches", ops=(4008, 15672), launches=75,
                   met=True)  # fmt: skip
    measure.skipped("wave_rnn", "fused scan (triton)", "B=128 L=784 16x256", "cuda only")
    table = measure.markdown(measure.ROWS[before:]).splitlines()
    del measure.ROWS[before:]
    capsys.readouterr()
    assert len(table) == 4 and all(line.startswith("|") and line.endswith("|") for line in table)
    assert table[2].split(" | ")[3:] == ["2.00", "3,456,000", "", "1.000x elman", "4,008 / 15,672", "75",
                                         ">= 200 steps/s, <= 300 launches (met) |"]  # fmt: skip
    assert table[3].endswith("| cuda only |")
