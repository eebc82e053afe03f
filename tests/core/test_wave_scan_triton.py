"""The fused Triton wave scan (wavezoo.core.wave_scan_triton) against the reference WaveScan, run on the CPU by
Triton's interpreter at small shapes: outputs and every gradient, relu and tanh, with and without the recurrent bias.

Triton reads ``TRITON_INTERPRET`` when it is imported (its own library functions are jitted then), so the checks run
in a process that has it from the start: in an ordinary test run, :func:`test_the_interpreted_checks_pass` runs this
module again in a subprocess with ``TRITON_INTERPRET=1`` (a few seconds); the other tests run only there. Skipped
where triton is missing; nothing here changes the environment of the calling process.
"""

import os

import pytest
import torch
from conftest import run_interpreted

pytest.importorskip("triton")
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
interpreted_only = pytest.mark.skipif(not INTERPRETED, reason="runs in the TRITON_INTERPRET=1 subprocess")

from wavezoo.core.circular import scan_backend, wave_scan  # noqa: E402
from wavezoo.core.wave_scan_triton import launch_options, triton_wave_scan  # noqa: E402
from wavezoo.errors import ConfigError  # noqa: E402
from wavezoo.models.wave_rnn import WaveRNN  # noqa: E402

SHAPES = [  # (T, c, B, n, k, I, O, chunk): chunks that divide T, that do not, a single chunk, k = 5 and k = 1
    (20, 2, 3, 8, 3, 2, 3, 4),
    (9, 2, 2, 8, 3, 2, 3, 4),
    (7, 3, 2, 5, 5, 2, 2, 64),
    (6, 2, 2, 4, 1, 1, 2, 4),
    (5, 16, 2, 256, 3, 1, 2, 2),  # the psMNIST state (16 x 256): no channel or cell padding
]


@pytest.mark.skipif(INTERPRETED, reason="this is the subprocess")
def test_the_interpreted_checks_pass():
    run_interpreted(__file__, "WAVEZOO_WAVE_SCAN")


def inputs(shape, seed=0):
    steps, c, batch, n, k, i, o, _ = shape
    g = torch.Generator().manual_seed(seed)
    sizes = [(steps * batch, i), (c, n, i), (c, n), (c, c, k), (c, batch, n), (o, c, n)]
    scales = [1.0, 1.0, 1.0, 0.4, 1.0, 1.0]  # u small enough that relu states stay O(1) over T steps
    return [(torch.randn(s, generator=g) * a).requires_grad_() for s, a in zip(sizes, scales, strict=True)]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@interpreted_only
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("shape", SHAPES)
def test_triton_scan_equals_the_reference_outputs_and_every_gradient(shape, nonlinearity):
    args = inputs(shape)
    y, states = triton_wave_scan(*args, nonlinearity, chunk=shape[-1])
    g = torch.Generator().manual_seed(1)
    grad_y, grad_states = torch.randn(y.shape, generator=g), torch.randn(states.shape, generator=g)
    grads = torch.autograd.grad((y * grad_y).sum() + (states * grad_states).sum(), args)
    exact = [a.detach().double().requires_grad_() for a in args]  # the reference in float64
    y_ref, states_ref = wave_scan(*exact, nonlinearity, backend="reference")
    loss = (y_ref * grad_y.double()).sum() + (states_ref * grad_states.double()).sum()
    expected = torch.autograd.grad(loss, exact)
    assert relative(y, y_ref) < 1e-5 and relative(states, states_ref) < 1e-5
    names = ["x", "V", "b", "u", "h0", "W"]
    errors = {name: relative(a, b) for name, a, b in zip(names, grads, expected, strict=True)}
    assert max(errors.values()) < 1e-5, errors


@interpreted_only
@pytest.mark.parametrize(("nonlinearity", "recurrent_bias"), [("relu", True), ("tanh", False)])
def test_wave_rnn_on_the_triton_backend_equals_the_reference(monkeypatch, nonlinearity, recurrent_bias):
    torch.manual_seed(0)
    model = WaveRNN(3, 2, 16, channels=2, nonlinearity=nonlinearity, shift_init=False, recurrent_bias=recurrent_bias)
    x = torch.randn(2, 12, 3)
    results = {}
    for backend in ("reference", "triton"):
        monkeypatch.setenv("WAVEZOO_WAVE_SCAN", backend)
        model.zero_grad()
        y = model(x)  # training mode: the pooled reference path
        y.square().mean().backward()
        results[backend] = (y.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    (y_ref, grads_ref), (y, grads) = results["reference"], results["triton"]
    assert torch.allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    assert set(grads) == set(grads_ref) and ("recurrent_bias" in grads) == recurrent_bias
    for name, grad in grads.items():
        assert torch.allclose(grad, grads_ref[name], rtol=1e-5, atol=1e-6), name


def test_the_backend_is_the_reference_on_the_cpu_unless_forced(monkeypatch):
    x = torch.zeros(2, 3)
    monkeypatch.delenv("WAVEZOO_WAVE_SCAN", raising=False)
    assert scan_backend(x) == "reference" and scan_backend(x, "triton") == "triton"
    monkeypatch.setenv("WAVEZOO_WAVE_SCAN", "triton")
    assert scan_backend(x) == "triton" and scan_backend(x, "auto") == "reference"
    monkeypatch.setenv("WAVEZOO_WAVE_SCAN", "cuda")
    with pytest.raises(ConfigError, match="wave scan backend='cuda'"):
        scan_backend(x)


def test_launch_options_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("WAVEZOO_TRITON_WARPS", raising=False)
    monkeypatch.delenv("WAVEZOO_TRITON_DOT", raising=False)
    assert (launch_options()["num_warps"], launch_options(backward=True)["num_warps"]) == (4, 8)
    assert launch_options()["PRECISION"] == "ieee" and launch_options()["num_stages"] == 1
    monkeypatch.setenv("WAVEZOO_TRITON_WARPS", "16")
    monkeypatch.setenv("WAVEZOO_TRITON_DOT", "tf32")
    assert launch_options(backward=True)["num_warps"] == 16 and launch_options()["PRECISION"] == "tf32"
    for variable, value in (("WAVEZOO_TRITON_DOT", "fp8"), ("WAVEZOO_TRITON_WARPS", "3")):
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError, match=variable):
            launch_options()
        monkeypatch.delenv(variable)
