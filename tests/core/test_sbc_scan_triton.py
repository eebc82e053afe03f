"""The fused Triton SBC scan (wavezoo.core.sbc_scan_triton) against the reference step loop of ``twm_sbc``, run on
the CPU by Triton's interpreter at small shapes: outputs, final state and every gradient (input, h(0), every
parameter), for every input rule and option of the attention boundary.

As in test_wave_scan_triton: Triton reads ``TRITON_INTERPRET`` when it is imported, so
:func:`test_the_interpreted_checks_pass` runs this module again in a subprocess with ``TRITON_INTERPRET=1``; the
interpreted tests run only there. Skipped where triton is missing.
"""

import os

import pytest
import torch
from conftest import run_interpreted

pytest.importorskip("triton")
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
interpreted_only = pytest.mark.skipif(not INTERPRETED, reason="runs in the TRITON_INTERPRET=1 subprocess")

from wavezoo.core.sbc_scan_triton import check_supported, sbc_backend, warps  # noqa: E402
from wavezoo.errors import ConfigError  # noqa: E402
from wavezoo.models.sbc import sbc_transformer  # noqa: E402
from wavezoo.models.twm import AttentionBoundary, LinearBoundary, WaveMemoryModel, twm_sbc  # noqa: E402

OPTIONS = {  # every input rule and boundary option of twm_sbc (sizes: s x d, d not a power of 2 included)
    "add": dict(hidden_size=16, history=4),
    "add, 2 heads (output map), s=3 d=12": dict(hidden_size=36, history=3, num_heads=2),
    "add, no positions": dict(hidden_size=16, history=4, positions=False),
    "add, input_steps=4, s=5 d=3": dict(hidden_size=15, history=5, input_steps=4),
    "replace, input_steps=8, autoregressive (variable binding)": dict(
        hidden_size=64, history=8, autoregressive=True, input_mode="replace", input_steps=8
    ),
    "add, autoregressive, input_steps=3": dict(hidden_size=16, history=4, autoregressive=True, input_steps=3),
}


@pytest.mark.skipif(INTERPRETED, reason="this is the subprocess")
def test_the_interpreted_checks_pass():
    run_interpreted(__file__, "WAVEZOO_SBC_SCAN")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def results(model, x, state, backend, monkeypatch, seed=2):
    """(y, final substrate, gradients of x, h(0) and every parameter) of ``model.scan`` on ``backend``."""
    monkeypatch.setenv("WAVEZOO_SBC_SCAN", backend)
    x, h0 = x.clone().requires_grad_(), state[0].clone().requires_grad_()
    y, (final, steps) = model.scan(x, (h0, state[1]))
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(y.shape, generator=g, dtype=torch.float64), torch.randn(final.shape, generator=g).double()
    loss = (y * weights[0].to(y.dtype)).sum() + (final * weights[1].to(y.dtype)).sum()
    grads = torch.autograd.grad(loss, [x, h0, *model.parameters()])
    return y, final, steps, grads


@interpreted_only
@pytest.mark.parametrize("name", list(OPTIONS))
def test_triton_sbc_scan_equals_the_reference_outputs_and_every_gradient(name, monkeypatch):
    torch.manual_seed(0)
    model = twm_sbc(3, 3, **OPTIONS[name])
    batch, length = 2, 9
    x = torch.randn(batch, length, 3)
    substrate, _ = model.initial_state(batch)
    state = (0.5 * torch.randn_like(substrate), torch.tensor([0, 5]))  # sequences part-way through the input steps
    y, final, steps, grads = results(model, x, state, "triton", monkeypatch)
    exact = model.double()  # the reference in float64
    y_ref, final_ref, steps_ref, grads_ref = results(exact, x.double(), (state[0].double(), state[1]), "reference",
                                                     monkeypatch)  # fmt: skip
    assert relative(y, y_ref) < 1e-5 and relative(final, final_ref) < 1e-5 and torch.equal(steps, steps_ref)
    names = ["x", "h0"] + [n for n, _ in model.named_parameters()]
    errors = {n: relative(a, b) for n, a, b in zip(names, grads, grads_ref, strict=True) if b.abs().max() > 0}
    assert max(errors.values()) < 1e-5, errors


@interpreted_only
@pytest.mark.parametrize("output_size", [3, 2])
def test_a_one_layer_sbc_transformer_trained_recurrent_runs_the_fused_scan(output_size, monkeypatch):
    """sbc_transformer(form="recurrent"): autoregressive (3 -> 3) and with hidden columns (3 -> 2, the recall
    checkpoints' kind), its one attention layer by the fused scan, as the reference."""
    torch.manual_seed(0)
    model = sbc_transformer(3, output_size, hidden_size=16, history=4, form="recurrent")
    x = torch.randn(2, 9, 3)
    state = model.initial_state(2)
    y, final, steps, grads = results(model, x, state, "triton", monkeypatch)
    y_ref, final_ref, _, grads_ref = results(model.double(), x.double(), (state[0].double(), state[1]), "reference",
                                             monkeypatch)  # fmt: skip
    assert relative(y, y_ref) < 1e-5 and relative(final, final_ref) < 1e-5
    assert max(relative(a, b) for a, b in zip(grads, grads_ref, strict=True) if b.abs().max() > 0) < 1e-5


@interpreted_only
def test_triton_sbc_scan_over_many_ring_turns_with_an_output_map_and_a_scale(monkeypatch):
    torch.manual_seed(1)
    boundary = AttentionBoundary(2, 4, num_heads=1, head_dim=6, output_map=True, scale=0.7)
    model = WaveMemoryModel(2, 2, 8, boundary, 2)
    x = torch.randn(1, 30, 2)  # the ring turns 15 times
    state = model.initial_state(1)
    y, final, _, grads = results(model, x, state, "triton", monkeypatch)
    exact = model.double()
    y_ref, final_ref, _, grads_ref = results(exact, x.double(), (state[0].double(), state[1]), "reference", monkeypatch)
    assert relative(y, y_ref) < 1e-5 and relative(final, final_ref) < 1e-5
    assert max(relative(a, b) for a, b in zip(grads[2:], grads_ref[2:], strict=True)) < 1e-5


@interpreted_only
def test_bfloat16_inputs_are_read_and_written_in_bfloat16_and_computed_in_float32(monkeypatch):
    torch.manual_seed(0)
    model = twm_sbc(3, 3, hidden_size=16, history=4).to(torch.bfloat16)
    x = torch.randn(2, 9, 3).to(torch.bfloat16)
    state = model.initial_state(2)
    y, final, _, grads = results(model, x, state, "triton", monkeypatch)
    assert y.dtype == final.dtype == torch.bfloat16 and all(g.dtype == torch.bfloat16 for g in grads)
    exact = model.double()  # the same (bf16-valued) parameters in float64
    y_ref, _, _, grads_ref = results(exact, x.double(), (state[0].double(), state[1]), "reference", monkeypatch)
    assert relative(y, y_ref) < 1.5e-2  # bf16 rounding (2^-8 relative) of inputs and stored outputs; measured 5.8e-3
    assert max(relative(a, b) for a, b in zip(grads, grads_ref, strict=True)) < 2e-2  # measured 9.4e-3


def test_the_backend_is_the_reference_on_the_cpu_unless_forced(monkeypatch):
    x = torch.zeros(2, 3)
    monkeypatch.delenv("WAVEZOO_SBC_SCAN", raising=False)
    assert sbc_backend(x) == "reference" and sbc_backend(x, "triton") == "triton"
    monkeypatch.setenv("WAVEZOO_SBC_SCAN", "triton")
    assert sbc_backend(x) == "triton" and sbc_backend(x, "auto") == "reference"
    with pytest.raises(ConfigError, match="float64"):
        sbc_backend(x.double())
    monkeypatch.setenv("WAVEZOO_SBC_SCAN", "cuda")
    with pytest.raises(ConfigError, match="SBC scan backend='cuda'"):
        sbc_backend(x)


@pytest.mark.skipif(INTERPRETED, reason="compiles the GPU kernels; runs in the ordinary process")
@pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")
def test_the_kernels_compile_for_a_hopper_gpu_without_one():
    """The interpreter runs the kernels as Python; this runs Triton's GPU compiler (to sm_90 machine code, ptxas
    included) on the CPU, so what only the compiler rejects (types of loop-carried values, layouts) shows here."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    from wavezoo.core.sbc_scan_triton import _kernels

    sizes = dict(S=5, D=3, E=6, DH=3, SP=8, DP=4, EP=8, REPLACE=True)
    pointers = {"forward": 12, "backward": 16}
    for kernel, (name, count) in zip(_kernels(), pointers.items(), strict=True):
        names = kernel.arg_names
        signature = {n: "*fp32" for n in names[:count]} | {"T": "i32", "B": "i32", "scale": "fp32"}
        signature |= {key: "constexpr" for key in sizes}
        compiled = compile(ASTSource(kernel, signature, constexprs=sizes), target=GPUTarget("cuda", 90, 32))
        assert compiled.asm["cubin"], name


def test_bad_warps_are_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("WAVEZOO_SBC_WARPS", "3")
    with pytest.raises(ConfigError, match="WAVEZOO_SBC_WARPS='3'"):
        warps()
    monkeypatch.setenv("WAVEZOO_SBC_WARPS", "2")
    assert warps() == 2


def test_other_boundaries_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="AttentionBoundary only, got LinearBoundary"):
        check_supported(LinearBoundary(2, 3))
