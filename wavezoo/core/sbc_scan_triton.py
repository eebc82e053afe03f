"""The SBC-TWM's sequential part (``twm_sbc``) as one fused Triton scan: forward one launch, backward one launch.

The recurrence of :class:`wavezoo.models.twm.WaveMemoryModel` with an
:class:`~wavezoo.models.twm.AttentionBoundary`, the input projection u(t) = W_in x(t) and the readout left to GEMMs
outside. Per step t (k = t - 1 = 0 .. T-1), from the substrate h(t-1) (s columns)::

    q    = W_q h[s] + W_q e_s                               (query: the newest column)
    K_i  = W_k h[i] + W_k e_i,   V_i = W_v h[i]             (keys, values of the s columns)
    a_i  = softmax_i(scale q_h . K_{h,i})                   (per head h)
    c(t) = W_o concat_h(sum_i a_i V_{h,i})                  (the boundary value f(h(t-1)))
    g(t) = G c(t)                                           (G = I, or W_in W_out when ``autoregressive``)
    new(t) = g(t) + m(t) u(t)  ("add")  |  m(t) u(t) + (1 - m(t)) g(t)  ("replace")   (m(t) = 1 on input steps)
    h(t) = (h[2] .. h[s], new(t))

Each program owns one sequence and keeps the keys and values of its s columns in registers as a ring: the shift is
the ring's head moving (row k mod s takes the new column, its key and value computed once), the column in ring row r
sits at site (r - k) mod s, which selects its position key W_k e_site. All arithmetic is fp32 (bf16/fp16 inputs
under autocast are read and written in their dtype).

The backward needs no checkpoints: the substrate h(t-1) is the last s outputs new(t-s .. t-1) (or h(0) columns), so
the backward kernel rebuilds it from the saved outputs, recomputes the step's attention, and runs back-propagation
through time in reverse, with dL/dh in the same ring order (where the shift is the identity; the dropped column's
row is zeroed). Weight gradients accumulate per program and are summed outside.

With ``TRITON_INTERPRET=1`` in the environment before triton is imported, the kernels run on the CPU (the tests).
"""

from __future__ import annotations

import os

import torch
from torch.amp import custom_bwd, custom_fwd
from torch.autograd.function import once_differentiable

from wavezoo.core.triton_jit import choose_backend, jitted, tl, triton
from wavezoo.errors import ConfigError

constexpr = tl.constexpr if tl is not None else int  # (see wave_scan_triton: Triton reads the annotation's text)


def warps() -> int:
    """Warps per program, ``WAVEZOO_SBC_WARPS`` (default 4), read at every launch so a benchmark can compare them: at
    s = d = 8 a step's tensors hold 64 - 512 values, so fewer warps may win. ptxas for sm_90a (compiled on the CPU,
    not yet timed on a GPU): s = d = 8 no spills at 1 - 8 warps (4 warps: forward 54 registers, backward 80);
    s = 42, d = 8, 2 heads (the recall configs) forward 96 registers at 4 warps, backward 168 with 8 bytes spilled at
    4 warps and 127 without spills at 8."""
    value = os.environ.get("WAVEZOO_SBC_WARPS", "4")
    if value not in ("1", "2", "4", "8", "16"):
        raise ConfigError(f"WAVEZOO_SBC_WARPS={value!r} is invalid: expected 1, 2, 4, 8 or 16")
    return int(value)


def sbc_backend(x: torch.Tensor, backend: str | None = None) -> str:
    """The SBC scan that runs for ``x``: ``backend`` if given, else ``WAVEZOO_SBC_SCAN``, else ``"auto"``: the fused
    Triton scan on CUDA when triton is installed (float32, bfloat16, float16; float64 stays on the reference), the
    reference step loop otherwise (always on the CPU unless forced, e.g. under ``TRITON_INTERPRET=1``)."""
    return choose_backend(x, backend, "WAVEZOO_SBC_SCAN", "SBC scan backend")


def _forward_kernel(
    drive, mask, h0, wq, wk, wv, wo, gen, qpos, kpos, new_out, comp_out, T, B, scale,
    S: constexpr, D: constexpr, E: constexpr, DH: constexpr,
    SP: constexpr, DP: constexpr, EP: constexpr, REPLACE: constexpr,
):  # fmt: skip
    b = tl.program_id(0).to(tl.int64)
    r = tl.arange(0, SP)[:, None]  # ring rows
    jd = tl.arange(0, DP)[None, :]
    je = tl.arange(0, EP)[None, :]
    ie = tl.arange(0, EP)[:, None]
    id_ = tl.arange(0, DP)[:, None]
    dvec = tl.arange(0, DP)
    evec = tl.arange(0, EP)
    rows = r < S
    w_mask = (ie < E) & (jd < D)
    Wq = tl.load(wq + ie * D + jd, mask=w_mask, other=0.0).to(tl.float32)  # [EP, DP]
    Wk = tl.load(wk + ie * D + jd, mask=w_mask, other=0.0).to(tl.float32)
    Wv = tl.load(wv + ie * D + jd, mask=w_mask, other=0.0).to(tl.float32)
    Wo = tl.load(wo + id_ * E + je, mask=(id_ < D) & (je < E), other=0.0).to(tl.float32)  # [DP, EP]
    G = tl.load(gen + id_ * D + jd, mask=(id_ < D) & (jd < D), other=0.0).to(tl.float32)  # [DP, DP]
    same = (((ie // DH) == (je // DH)) & (ie < E) & (je < E)).to(tl.float32)  # same head [EP, EP]
    qp = tl.load(qpos + evec, mask=evec < E, other=0.0).to(tl.float32)
    H = tl.load(h0 + b * (S * D) + r * D + jd, mask=rows & (jd < D), other=0.0).to(tl.float32)  # [SP, DP]
    Kc = tl.sum(H[:, None, :] * Wk[None, :, :], axis=2)  # content keys [SP, EP]
    V = tl.sum(H[:, None, :] * Wv[None, :, :], axis=2)
    hq = tl.sum(tl.where(r == S - 1, H, 0.0), axis=0)  # the newest column [DP]
    for k in range(T):
        q = tl.sum(Wq * hq[None, :], axis=1) + qp  # [EP]
        site = (r + S - k % S) % S
        Kf = Kc + tl.load(kpos + site * E + je, mask=rows & (je < E), other=0.0).to(tl.float32)
        sc = tl.sum((Kf * q[None, :])[:, :, None] * same[None, :, :], axis=1) * scale  # per head, per e [SP, EP]
        sc = tl.where(rows, sc, float("-inf"))
        p = tl.exp(sc - tl.max(sc, axis=0)[None, :])
        a = p / tl.sum(p, axis=0)[None, :]
        mixed = tl.sum(a * V, axis=0)  # [EP]
        c = tl.sum(Wo * mixed[None, :], axis=1)  # [DP]
        g = tl.sum(G * c[None, :], axis=1)
        row = (k * B + b) * D
        u = tl.load(drive + row + dvec, mask=dvec < D, other=0.0).to(tl.float32)
        m = tl.load(mask + k * B + b).to(tl.float32)
        new = m * u + (1.0 - m) * g if REPLACE else g + m * u
        tl.store(new_out + row + dvec, new.to(new_out.dtype.element_ty), mask=dvec < D)
        tl.store(comp_out + row + dvec, c.to(comp_out.dtype.element_ty), mask=dvec < D)
        slot = k % S
        kn = tl.sum(Wk * new[None, :], axis=1)
        vn = tl.sum(Wv * new[None, :], axis=1)
        Kc = tl.where(r == slot, kn[None, :], Kc)
        V = tl.where(r == slot, vn[None, :], V)
        hq = new


def _backward_kernel(
    drive, mask, h0, wq, wk, wv, wo, gen, qpos, kpos, new_out, grad_new, grad_comp,
    grad_drive, grad_h0, grad_w, T, B, scale,
    S: constexpr, D: constexpr, E: constexpr, DH: constexpr,
    SP: constexpr, DP: constexpr, EP: constexpr, REPLACE: constexpr,
):  # fmt: skip
    b = tl.program_id(0).to(tl.int64)
    r = tl.arange(0, SP)[:, None]
    jd = tl.arange(0, DP)[None, :]
    je = tl.arange(0, EP)[None, :]
    ie = tl.arange(0, EP)[:, None]
    id_ = tl.arange(0, DP)[:, None]
    dvec = tl.arange(0, DP)
    evec = tl.arange(0, EP)
    rows = r < S
    cells = rows & (jd < D)
    w_mask = (ie < E) & (jd < D)
    Wq = tl.load(wq + ie * D + jd, mask=w_mask, other=0.0).to(tl.float32)
    Wk = tl.load(wk + ie * D + jd, mask=w_mask, other=0.0).to(tl.float32)
    Wv = tl.load(wv + ie * D + jd, mask=w_mask, other=0.0).to(tl.float32)
    Wo = tl.load(wo + id_ * E + je, mask=(id_ < D) & (je < E), other=0.0).to(tl.float32)
    G = tl.load(gen + id_ * D + jd, mask=(id_ < D) & (jd < D), other=0.0).to(tl.float32)
    same = (((ie // DH) == (je // DH)) & (ie < E) & (je < E)).to(tl.float32)
    qp = tl.load(qpos + evec, mask=evec < E, other=0.0).to(tl.float32)
    d_ring = tl.zeros((SP, DP), dtype=tl.float32)  # dL/dh(k) in ring order
    d_wq = tl.zeros((EP, DP), dtype=tl.float32)
    d_wk = tl.zeros((EP, DP), dtype=tl.float32)
    d_wv = tl.zeros((EP, DP), dtype=tl.float32)
    d_wo = tl.zeros((DP, EP), dtype=tl.float32)
    d_g = tl.zeros((DP, DP), dtype=tl.float32)
    d_qp = tl.zeros((EP,), dtype=tl.float32)
    base = grad_w + b * (3 * EP * DP + DP * EP + DP * DP + EP + SP * EP)
    kp_acc = base + 3 * EP * DP + DP * EP + DP * DP + EP  # dL/d(W_k e_site) [SP, EP], zeroed by the caller
    for step in range(T):
        k = T - 1 - step
        # h(k - 1): ring row r holds new(kk), kk = the latest step < k with kk = r mod s (h(0)'s row r if kk < 0)
        kk = k - 1 - (k - 1 - r + S * SP) % S
        written = tl.load(new_out + (kk * B + b) * D + jd, mask=cells & (kk >= 0), other=0.0).to(tl.float32)
        initial = tl.load(h0 + b * (S * D) + r * D + jd, mask=cells & (kk < 0), other=0.0).to(tl.float32)
        H = tl.where(kk >= 0, written, initial)
        newest = (k - 1 + S) % S
        hq = tl.sum(tl.where(r == newest, H, 0.0), axis=0)
        Kc = tl.sum(H[:, None, :] * Wk[None, :, :], axis=2)
        V = tl.sum(H[:, None, :] * Wv[None, :, :], axis=2)
        q = tl.sum(Wq * hq[None, :], axis=1) + qp
        site = (r + S - k % S) % S
        Kf = Kc + tl.load(kpos + site * E + je, mask=rows & (je < E), other=0.0).to(tl.float32)
        sc = tl.sum((Kf * q[None, :])[:, :, None] * same[None, :, :], axis=1) * scale
        sc = tl.where(rows, sc, float("-inf"))
        p = tl.exp(sc - tl.max(sc, axis=0)[None, :])
        a = p / tl.sum(p, axis=0)[None, :]
        mixed = tl.sum(a * V, axis=0)
        c = tl.sum(Wo * mixed[None, :], axis=1)
        row = (k * B + b) * D
        m = tl.load(mask + k * B + b).to(tl.float32)
        slot = k % S
        d_new = tl.sum(tl.where(r == slot, d_ring, 0.0), axis=0)
        d_new += tl.load(grad_new + row + dvec, mask=dvec < D, other=0.0).to(tl.float32)
        d_ring = tl.where(r == slot, 0.0, d_ring)  # the column dropped by the shift
        tl.store(grad_drive + row + dvec, (m * d_new).to(grad_drive.dtype.element_ty), mask=dvec < D)
        d_gen = (1.0 - m) * d_new if REPLACE else d_new
        d_c = tl.sum(G * d_gen[:, None], axis=0)
        d_c += tl.load(grad_comp + row + dvec, mask=dvec < D, other=0.0).to(tl.float32)
        d_g += d_gen[:, None] * c[None, :]
        d_wo += d_c[:, None] * mixed[None, :]
        d_mixed = tl.sum(Wo * d_c[:, None], axis=0)  # [EP]
        d_v = a * d_mixed[None, :]
        d_a = tl.sum((d_mixed[None, :] * V)[:, :, None] * same[None, :, :], axis=1)  # per head
        d_sc = a * (d_a - tl.sum(a * d_a, axis=0)[None, :]) * scale
        d_q = tl.sum(d_sc * Kf, axis=0)
        d_kf = d_sc * q[None, :]
        kp_cells = kp_acc + site * EP + je  # ring rows -> their sites: a permutation, no two rows share a cell
        tl.store(kp_cells, tl.load(kp_cells, mask=rows, other=0.0) + d_kf, mask=rows)
        tl.debug_barrier()  # the next step reads these cells from other threads
        d_wk += tl.sum(d_kf[:, :, None] * H[:, None, :], axis=0)
        d_wv += tl.sum(d_v[:, :, None] * H[:, None, :], axis=0)
        d_h = tl.sum(d_kf[:, :, None] * Wk[None, :, :], axis=1) + tl.sum(d_v[:, :, None] * Wv[None, :, :], axis=1)
        d_wq += d_q[:, None] * hq[None, :]
        d_qp += d_q
        d_hq = tl.sum(Wq * d_q[:, None], axis=0)
        d_ring += d_h + tl.where(r == newest, d_hq[None, :], 0.0)
    tl.store(grad_h0 + b * (S * D) + r * D + jd, d_ring.to(grad_h0.dtype.element_ty), mask=cells)
    # per-program weight gradients, padded: Wq, Wk, Wv (EP x DP), Wo (DP x EP), G (DP x DP), qp (EP), kp (SP x EP)
    tl.store(base + ie * DP + jd, d_wq)
    tl.store(base + EP * DP + ie * DP + jd, d_wk)
    tl.store(base + 2 * EP * DP + ie * DP + jd, d_wv)
    tl.store(base + 3 * EP * DP + id_ * EP + je, d_wo)
    tl.store(base + 3 * EP * DP + DP * EP + id_ * DP + jd, d_g)
    tl.store(base + 3 * EP * DP + DP * EP + DP * DP + evec, d_qp)


def _kernels() -> tuple:
    """(forward, backward), jitted for the current ``TRITON_INTERPRET``."""
    return jitted(_forward_kernel, _backward_kernel, "the Triton SBC scan")


def _power(v: int) -> int:
    return max(2, triton.next_power_of_2(v))


class TritonSBCScan(torch.autograd.Function):
    """(new(1..T), c(1..T)) ``[T, B, d]`` each from the drive u ``[T, B, d]``, the input mask m ``[T, B]``, h(0)
    ``[B, s, d]``, W_q, W_k, W_v ``[E, d]``, W_o ``[d, E]``, G ``[d, d]``, the position query W_q e_s ``[E]`` and
    position keys W_k e_i ``[s, E]`` (see the module docstring); outputs in the drive's dtype, computed in fp32."""

    @staticmethod
    @custom_fwd(device_type="cuda")
    def forward(ctx, drive, mask, h0, wq, wk, wv, wo, gen, qpos, kpos, head_dim: int, scale: float, replace: bool):
        steps, batch, d = drive.shape
        s, e = h0.shape[1], wq.shape[0]
        args = [t.contiguous() for t in (drive, mask, h0, wq, wk, wv, wo, gen, qpos, kpos)]
        sizes = {"S": s, "D": d, "E": e, "DH": head_dim, "SP": _power(s), "DP": _power(d), "EP": _power(e)}
        new = torch.empty_like(args[0])
        comp = torch.empty_like(args[0])
        forward, _ = _kernels()
        forward[(batch,)](*args, new, comp, steps, batch, float(scale), **sizes, REPLACE=replace, num_warps=warps())
        ctx.save_for_backward(*args, new)
        ctx.sizes, ctx.scale, ctx.replace, ctx.warps = sizes, float(scale), replace, warps()
        return new, comp

    @staticmethod
    @once_differentiable
    @custom_bwd(device_type="cuda")
    def backward(ctx, grad_new, grad_comp):
        drive, mask, h0, wq, wk, wv, wo, gen, qpos, kpos, new = ctx.saved_tensors
        steps, batch, d = drive.shape
        sz = ctx.sizes
        sp, dp, ep, s, e = sz["SP"], sz["DP"], sz["EP"], sz["S"], sz["E"]
        grad_new = torch.zeros_like(new) if grad_new is None else grad_new.contiguous()
        grad_comp = torch.zeros_like(new) if grad_comp is None else grad_comp.contiguous()
        grad_drive = torch.empty_like(drive)
        grad_h0 = torch.empty_like(h0)
        width = 3 * ep * dp + dp * ep + dp * dp + ep + sp * ep
        grad_w = drive.new_zeros((batch, width), dtype=torch.float32)
        _, backward = _kernels()
        backward[(batch,)](drive, mask, h0, wq, wk, wv, wo, gen, qpos, kpos, new, grad_new, grad_comp,
                           grad_drive, grad_h0, grad_w, steps, batch, ctx.scale, **sz, REPLACE=ctx.replace,
                           num_warps=ctx.warps)  # fmt: skip
        total = grad_w.sum(0)
        parts, start = [], 0
        for rows, cols, keep in ((ep, dp, (e, d)), (ep, dp, (e, d)), (ep, dp, (e, d)), (dp, ep, (d, e)),
                                 (dp, dp, (d, d)), (1, ep, (1, e)), (sp, ep, (s, e))):  # fmt: skip
            block = total[start : start + rows * cols].view(rows, cols)[: keep[0], : keep[1]]
            parts.append(block)
            start += rows * cols
        d_wq, d_wk, d_wv, d_wo, d_g, d_qp, d_kp = parts
        cast = [t.to(ref.dtype) for t, ref in zip((d_wq, d_wk, d_wv, d_wo, d_g, d_qp[0], d_kp),
                                                   (wq, wk, wv, wo, gen, qpos, kpos), strict=True)]  # fmt: skip
        return (grad_drive, None, grad_h0, *cast, None, None, None)


def check_supported(boundary) -> None:
    """One line naming what the Triton SBC scan does not cover (everything of
    :class:`~wavezoo.models.twm.AttentionBoundary` is). Checked by name: ``core`` imports no model module."""
    if type(boundary).__name__ != "AttentionBoundary":
        raise ConfigError(f"the Triton SBC scan covers AttentionBoundary only, got {type(boundary).__name__}")


def triton_sbc_scan(model, x: torch.Tensor, state, boundary=None) -> tuple[torch.Tensor, tuple]:
    """:meth:`WaveMemoryModel.scan_sequence` of an SBC-TWM with the fused scan: ``x [B, L, I]`` from ``state``
    (substrate ``[B, s, d]``, steps ``[B]``) -> (y ``[B, L, O]``, the final state), as the reference step loop.
    ``boundary``: the attention layer the model's boundary is (default: the boundary itself)."""
    boundary = model.memory.boundary if boundary is None else boundary
    check_supported(boundary)
    substrate, steps = state
    batch, length = x.shape[:2]
    history = model.memory.history
    drive = model.input_map(x)  # u(t) = W_in x(t): one GEMM over the sequence
    if model.input_steps is None:
        mask = torch.ones(length, batch, device=x.device, dtype=torch.float32)
    else:
        time = torch.arange(length, device=x.device)
        mask = (steps[None, :] + time[:, None] < model.input_steps).to(torch.float32)  # [L, B]
    inner = boundary.num_heads * boundary.head_dim
    wq, wk, wv = boundary.query.weight, boundary.key.weight, boundary.value.weight
    eye = torch.eye(inner, device=x.device, dtype=wq.dtype)
    wo = boundary.output.weight if isinstance(boundary.output, torch.nn.Linear) else eye
    if model.autoregressive:
        gen = model.input_map.weight @ model.readout.weight  # G = W_in W_out
    else:
        gen = torch.eye(model.memory.dim, device=x.device, dtype=wq.dtype)
    if boundary.positions is not None:
        qpos, kpos = boundary.positions[-1] @ wq.T, boundary.positions @ wk.T
    else:
        qpos, kpos = wq.new_zeros(inner), wq.new_zeros(history, inner)
    new, computed = TritonSBCScan.apply(
        drive.transpose(0, 1), mask, substrate, wq, wk, wv, wo, gen, qpos, kpos,
        boundary.head_dim, boundary.scale, model.input_mode == "replace",
    )  # fmt: skip
    new, computed = new.transpose(0, 1), computed.transpose(0, 1)  # [B, L, d]
    final = torch.cat([substrate, new], dim=1)[:, -history:]  # (dtypes promote as in the reference shift)
    if not model.autoregressive:
        return model.readout(new), (final, steps + length)
    predicted = model.readout(computed)
    return model.emit(predicted, x, mask.T[..., None].to(predicted.dtype)), (final, steps + length)
