"""The wave RNN's sequential part as one fused Triton scan (forward one launch, backward one launch).

The recurrence of :mod:`wavezoo.core.circular`, with the input projection and readout left to two GEMMs outside::

    z(t) = V x(t) + b                                  (one GEMM over all t, outside)
    h(t) = sigma(z(t) + u (*) h(t-1)),   (u (*) h)[a, i] = sum_{b, j} u[a, b, j] h[b, (i + j - p) mod n]
    y(t) = W h(t)                                      (one GEMM over all t, outside)

Each program owns one sequence of the batch and its whole c x n state, and loops over time. A step is one matrix
product ``U [c, k c] @ H [k c, n]`` where U stacks the k taps side by side and H stacks the k shifted copies of
h(t-1) (read back from a small per-program scratch ring, fp32, one barrier per step); everything is accumulated in
fp32 whatever the dtype of z (bf16/fp16 under autocast).

The forward saves fp32 checkpoints h(m C) every C steps (C = ``chunk`` >= 64 by default) and no per-step state for
the backward. The backward walks the chunks from the last: it recomputes the chunk's states from its checkpoint, then
runs back-propagation through time over the chunk (u^T (*) is the adjoint: transposed channels, reversed taps)::

    g(t)      = (dL/dh(t) + u^T (*) g(t+1)) * sigma'(h(t))                = dL/dz(t)
    dL/du_j   = sum_{t, i} g(t)[:, i] h(t-1)[:, (i + j - p) mod n]^T        (g(t) H(t-1)^T per step and program)
    dL/dh(0)  = u^T (*) g(1)

With ``TRITON_INTERPRET=1`` in the environment before triton is imported, the kernels run on the CPU (the tests).
"""

from __future__ import annotations

import os

import torch
from torch.amp import custom_bwd, custom_fwd
from torch.autograd.function import once_differentiable

from wavezoo.core.triton_jit import jitted, tl, triton
from wavezoo.errors import ConfigError

# Kernel parameters annotated ``constexpr`` (kept unevaluated by ``from __future__ import annotations``: Triton reads
# the annotation's text) are compile-time constants.
constexpr = tl.constexpr if tl is not None else int

DEFAULT_CHUNK = 64
DOT_MODES = ("ieee", "tf32", "bf16")


def launch_options(backward: bool = False) -> dict:
    """Per-launch settings, read at every call (so a benchmark can compare them): ``WAVEZOO_TRITON_WARPS`` (warps per
    program, ``"F,B"`` for the forward and backward kernels or one number for both; default ``"4,8"``: ptxas fits the
    forward in 148 registers at 4 warps and the backward, with two more products per step, in 255 at 8, where 4 warps
    spill kilobytes per thread) and ``WAVEZOO_TRITON_DOT``, the operands of the per-step products: ``ieee`` (fp32,
    default), ``tf32`` (tensor cores, ~1e-3 relative) or ``bf16`` (operands rounded to bf16; Triton's interpreter
    gets bf16 products wrong, so only a GPU checks it); fp32 accumulation in all three.
    ``num_stages=1``: no software pipelining, whose prefetch would read a state before the barrier that publishes
    it."""
    mode = os.environ.get("WAVEZOO_TRITON_DOT", "ieee")
    warps = os.environ.get("WAVEZOO_TRITON_WARPS", "4,8").split(",")
    if mode not in DOT_MODES:
        raise ConfigError(f"WAVEZOO_TRITON_DOT={mode!r} is invalid: expected one of {', '.join(DOT_MODES)}")
    if not (1 <= len(warps) <= 2 and all(w in ("1", "2", "4", "8", "16", "32") for w in warps)):
        raise ConfigError(f"WAVEZOO_TRITON_WARPS={','.join(warps)!r} is invalid: expected W or F,B (powers of 2)")
    return {
        "OPERAND": tl.bfloat16 if mode == "bf16" else tl.float32,
        "PRECISION": "ieee" if mode == "ieee" else "tf32",  # (for bf16 operands the precision is moot)
        "num_warps": int(warps[-1] if backward else warps[0]),
        "num_stages": 1,
    }


def _forward_kernel(
    pre, u, h0, out, ckpt, scratch, T, B,
    C: constexpr, N: constexpr, K: constexpr,
    CP: constexpr, NP: constexpr, KP: constexpr, CHUNK: constexpr, RELU: constexpr,
    OPERAND: constexpr, PRECISION: constexpr,
):  # fmt: skip
    b = tl.program_id(0).to(tl.int64)
    P = K // 2
    state = C * N
    a = tl.arange(0, CP)[:, None]
    i = tl.arange(0, NP)[None, :]
    cells = (a < C) & (i < N)
    offs = a * N + i
    # H[j CP + b, i] = h[b, (i + j - p) mod n]
    r = tl.arange(0, KP * CP)[:, None]
    rj = r // CP
    rb = r % CP
    stack_offs = rb * N + (i + rj + (N - P % N)) % N
    stack_mask = (rj < K) & (rb < C) & (i < N)
    # U[a, j CP + b] = u[a, b, j]
    q = tl.arange(0, KP * CP)[None, :]
    qj = q // CP
    qb = q % CP
    U = tl.load(u + a * (C * K) + qb * K + qj, mask=(a < C) & (qb < C) & (qj < K), other=0.0).to(OPERAND)
    h = tl.load(h0 + b * state + offs, mask=cells, other=0.0).to(tl.float32)
    ring = scratch + b * (2 * state)
    tl.store(ring + offs, h, mask=cells)
    tl.debug_barrier()
    for s in range(T):
        if s % CHUNK == 0:
            tl.store(ckpt + ((s // CHUNK) * B + b) * state + offs, h, mask=cells)
        stacked = tl.load(ring + (s % 2) * state + stack_offs, mask=stack_mask, other=0.0)
        row = (s * B + b) * state
        z = tl.load(pre + row + offs, mask=cells, other=0.0).to(tl.float32)
        z += tl.dot(U, stacked.to(OPERAND), input_precision=PRECISION)
        if RELU:
            h = tl.maximum(z, 0.0)
        else:  # tanh from exp(-2|z|): no overflow
            e = tl.exp(-2.0 * tl.abs(z))
            h = tl.where(z < 0.0, (e - 1.0) / (1.0 + e), (1.0 - e) / (1.0 + e))
        tl.store(out + row + offs, h.to(out.dtype.element_ty), mask=cells)
        tl.store(ring + ((s + 1) % 2) * state + offs, h, mask=cells)
        tl.debug_barrier()


def _backward_kernel(
    pre, u, grad_out, grad_pre, ckpt, rec, scratch, grad_u, grad_h0, T, B,
    C: constexpr, N: constexpr, K: constexpr,
    CP: constexpr, NP: constexpr, KP: constexpr, CHUNK: constexpr, RELU: constexpr,
    OPERAND: constexpr, PRECISION: constexpr,
):  # fmt: skip
    b = tl.program_id(0).to(tl.int64)
    P = K // 2
    state = C * N
    a = tl.arange(0, CP)[:, None]
    i = tl.arange(0, NP)[None, :]
    cells = (a < C) & (i < N)
    offs = a * N + i
    r = tl.arange(0, KP * CP)[:, None]
    rj = r // CP
    rb = r % CP
    stack_mask = (rj < K) & (rb < C) & (i < N)
    stack_offs = rb * N + (i + rj + (N - P % N)) % N  # H[j CP + b, i] = h[b, (i + j - p) mod n]
    adjoint_offs = rb * N + (i + P % N + N * KP - rj) % N  # G[j CP + a, m] = g[a, (m - j + p) mod n]
    q = tl.arange(0, KP * CP)[None, :]
    qj = q // CP
    qb = q % CP
    u_mask = (a < C) & (qb < C) & (qj < K)
    U = tl.load(u + a * (C * K) + qb * K + qj, mask=u_mask, other=0.0).to(OPERAND)  # U[a, j CP + b] = u[a, b, j]
    UT = tl.load(u + qb * (C * K) + a * K + qj, mask=u_mask, other=0.0).to(OPERAND)  # UT[b, j CP + a] = u[a, b, j]
    states = rec + b * ((CHUNK + 1) * state)
    ring = scratch + b * (2 * state)
    du = tl.zeros((CP, KP * CP), dtype=tl.float32)
    carry = tl.zeros((CP, NP), dtype=tl.float32)  # u^T (*) g(t+1)
    chunks = (T + CHUNK - 1) // CHUNK
    for back in range(chunks):
        m = chunks - 1 - back
        t0 = m * CHUNK
        t1 = tl.minimum(T, t0 + CHUNK)
        tl.debug_barrier()  # the previous chunk's reads of ``states`` are done
        h = tl.load(ckpt + (m * B + b) * state + offs, mask=cells, other=0.0)
        tl.store(states + offs, h, mask=cells)
        tl.debug_barrier()
        for s in range(t0, t1):  # recompute h(t0 + 1 .. t1) from the checkpoint
            stacked = tl.load(states + (s - t0) * state + stack_offs, mask=stack_mask, other=0.0)
            z = tl.load(pre + (s * B + b) * state + offs, mask=cells, other=0.0).to(tl.float32)
            z += tl.dot(U, stacked.to(OPERAND), input_precision=PRECISION)
            if RELU:
                h = tl.maximum(z, 0.0)
            else:  # tanh from exp(-2|z|): no overflow
                e = tl.exp(-2.0 * tl.abs(z))
                h = tl.where(z < 0.0, (e - 1.0) / (1.0 + e), (1.0 - e) / (1.0 + e))
            tl.store(states + (s - t0 + 1) * state + offs, h, mask=cells)
            tl.debug_barrier()
        for step in range(t0, t1):
            s = t1 - 1 - (step - t0)
            h = tl.load(states + (s - t0 + 1) * state + offs, mask=cells, other=0.0)
            row = (s * B + b) * state
            g = tl.load(grad_out + row + offs, mask=cells, other=0.0).to(tl.float32) + carry
            g = tl.where(h > 0.0, g, 0.0) if RELU else g * (1.0 - h * h)
            tl.store(grad_pre + row + offs, g.to(grad_pre.dtype.element_ty), mask=cells)
            slot = ring + (s % 2) * state
            tl.store(slot + offs, g, mask=cells)
            tl.debug_barrier()
            shifted = tl.load(slot + adjoint_offs, mask=stack_mask, other=0.0)
            carry = tl.dot(UT, shifted.to(OPERAND), input_precision=PRECISION)
            previous = tl.load(states + (s - t0) * state + stack_offs, mask=stack_mask, other=0.0)  # H(t-1)
            du += tl.dot(g.to(OPERAND), tl.trans(previous.to(OPERAND)), input_precision=PRECISION)
    tl.store(grad_h0 + b * state + offs, carry.to(grad_h0.dtype.element_ty), mask=cells)
    tl.store(grad_u + b * (CP * KP * CP) + a * (KP * CP) + q, du)


def _kernels() -> tuple:
    """(forward, backward), jitted for the current ``TRITON_INTERPRET``."""
    return jitted(_forward_kernel, _backward_kernel, "the Triton wave scan")


def _sizes(c: int, n: int, k: int) -> dict[str, int]:
    def power(v: int, least: int) -> int:
        return max(least, triton.next_power_of_2(v))

    return {"C": c, "N": n, "K": k, "CP": power(c, 16), "NP": power(n, 16), "KP": power(k, 1)}


class TritonWaveScan(torch.autograd.Function):
    """h(1..T) ``[T, B, c, n]`` from pre-activations z ``[T, B, c, n]`` (any float dtype), u ``[c, c, k]`` and h(0)
    ``[B, c, n]``; h is returned in z's dtype, computed in fp32 (see the module docstring)."""

    @staticmethod
    @custom_fwd(device_type="cuda")
    def forward(ctx, pre, kernel, h0, nonlinearity: str, chunk: int):
        steps, batch, c, n = pre.shape
        pre, kernel, h0 = pre.contiguous(), kernel.detach().contiguous(), h0.contiguous()
        sizes = _sizes(c, n, kernel.shape[-1])
        chunks = -(-steps // chunk)
        out = torch.empty_like(pre)
        ckpt = pre.new_empty((chunks, batch, c, n), dtype=torch.float32)
        scratch = pre.new_empty((batch, 2, c, n), dtype=torch.float32)
        forward, _ = _kernels()
        relu = nonlinearity == "relu"
        options = launch_options()
        forward[(batch,)](pre, kernel, h0, out, ckpt, scratch, steps, batch, **sizes, CHUNK=chunk, RELU=relu,
                          **options)  # fmt: skip
        ctx.save_for_backward(pre, kernel, ckpt)
        ctx.relu, ctx.chunk, ctx.sizes, ctx.h0_dtype = relu, chunk, sizes, h0.dtype
        ctx.backward_options = launch_options(backward=True)
        return out

    @staticmethod
    @once_differentiable
    @custom_bwd(device_type="cuda")
    def backward(ctx, grad_out):
        pre, kernel, ckpt = ctx.saved_tensors
        steps, batch, c, n = pre.shape
        sizes, chunk = ctx.sizes, ctx.chunk
        grad_pre = torch.empty_like(pre)
        rec = pre.new_empty((batch, chunk + 1, c, n), dtype=torch.float32)
        scratch = pre.new_empty((batch, 2, c, n), dtype=torch.float32)
        cp, kp = sizes["CP"], sizes["KP"]
        grad_u = pre.new_empty((batch, cp, kp * cp), dtype=torch.float32)
        grad_h0 = pre.new_empty((batch, c, n), dtype=ctx.h0_dtype)
        _, backward = _kernels()
        backward[(batch,)](pre, kernel, grad_out.contiguous(), grad_pre, ckpt, rec, scratch, grad_u, grad_h0,
                           steps, batch, **sizes, CHUNK=chunk, RELU=ctx.relu, **ctx.backward_options)  # fmt: skip
        k = kernel.shape[-1]
        grad_kernel = grad_u.sum(0).view(cp, kp, cp)[:c, :k, :c].permute(0, 2, 1).to(kernel.dtype)
        return grad_pre, grad_kernel, grad_h0, None, None


def triton_wave_scan(
    x: torch.Tensor,
    in_weight: torch.Tensor,
    in_bias: torch.Tensor,
    kernel: torch.Tensor,
    h0: torch.Tensor,
    out_weight: torch.Tensor,
    nonlinearity: str,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The wave RNN with :func:`wavezoo.core.circular.wave_scan`'s signature and results (y ``[T B, O]``, h(1..T)
    ``[c, T, B, n]`` as a view): z = V x + b and y = W h as two GEMMs (autocast applies to them), the scan fused."""
    c, batch, n = h0.shape
    steps = x.shape[0] // batch
    pre = torch.addmm(in_bias.reshape(-1), x, in_weight.reshape(c * n, -1).T)
    states = TritonWaveScan.apply(pre.view(steps, batch, c, n), kernel, h0.transpose(0, 1), nonlinearity, chunk)
    y = states.view(steps * batch, c * n) @ out_weight.reshape(out_weight.shape[0], -1).T
    return y, states.permute(2, 0, 1, 3)
