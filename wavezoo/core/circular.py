"""The wave RNN's recurrence as a structured operator: circular convolution over cells, never a dense matrix.

A state of c channels x n cells is convolved with a kernel u ``[c, c, k]`` (k odd, p = k // 2)::

    (u (*) h)[a, i] = sum_{b, j} u[a, b, j] h[b, (i + j - p) mod n]

Layout (what makes it cheap): channel-outer. The states of a sequence live in one buffer ``[c, T + 1, B, n + 2p]``,
each ring stored with p wrapped cells on either side. Row a of the buffer flattened to ``[c, (T + 1) B (n + 2p)]``
holds every ring of channel a one after the other, so shifting the flat rows by j - p shifts every ring at once and
the convolution of a step is k GEMMs ``u[:, :, j] @ rows[:, j : j + X]`` on strided views (no copy, no im2col):
O(c^2 k B n) work where the equivalent dense block-circulant matrix costs O(c^2 n^2 B). The outputs that land on
padding cells are discarded when the new ring is re-wrapped.

:class:`WaveScan` runs the whole wave RNN ``h(t) = sigma(V x(t) + b + u (*) h(t-1))``, ``y(t) = W h(t)`` over a
sequence as one autograd node with a hand-written backward (back-propagation through time; u^T (*) is the adjoint:
transposed channels, reversed taps):

    g(t)    = (W^T dL/dy(t) + dL/dh(t) + u^T (*) g(t+1)) * sigma'(h(t))    = dL/d(pre-activation)(t)
    dL/du_j = sum_{t, B, i} g(t)[:, i] h(t-1)[:, (i + j - p) mod n]^T       (one GEMM per tap over the sequence)
    dL/dV = sum_t g(t) x(t)^T,   dL/db = sum_t g(t),   dL/dW = sum_t dL/dy(t) h(t)^T

Per step it runs k GEMMs and three elementwise passes forward and backward; everything else is batched over time.
"""

from __future__ import annotations

import os

import torch
from torch.autograd.function import once_differentiable

NONLINEARITIES = ("relu", "tanh")


class Rings:
    """Padded ring geometry: n cells, p = k // 2 wrapped cells on each side, width w = n + 2p (the last axis)."""

    def __init__(self, cells: int, kernel_size: int) -> None:
        self.cells, self.half, self.width = cells, kernel_size // 2, cells + 2 * (kernel_size // 2)
        p, n = self.half, cells
        # left pad q <- cell (q - p) mod n, right pad p + n + q <- cell q mod n (general, even when n < p)
        self.pad_index = [*range(p), *range(p + n, n + 2 * p)]
        self.source_index = [p + (q - p) % n for q in range(p)] + [p + q % n for q in range(p)]

    def interior(self, padded: torch.Tensor) -> torch.Tensor:
        return padded[..., self.half : self.half + self.cells]

    def wrap_(self, padded: torch.Tensor) -> torch.Tensor:
        """Fill the pads of ``padded`` ``[..., w]`` from its interior (circular padding, in place)."""
        p, n = self.half, self.cells
        if p == 0:
            return padded
        if n >= p:  # two slice copies
            padded[..., :p] = padded[..., n : n + p]
            padded[..., n + p :] = padded[..., p : 2 * p]
        else:
            padded[..., self.pad_index] = padded[..., self.source_index]
        return padded

    def zero_pads_(self, padded: torch.Tensor) -> torch.Tensor:
        p = self.half
        if p:
            padded[..., :p] = 0
            padded[..., p + self.cells :] = 0
        return padded


def taps(kernel: torch.Tensor) -> torch.Tensor:
    """u ``[c, c, k]`` as k contiguous ``[c, c]`` matrices ``[k, c, c]`` (BLAS needs a unit stride)."""
    return kernel.detach().permute(2, 0, 1).contiguous()


def conv_rows_(out: torch.Tensor, taps: torch.Tensor, rows: torch.Tensor, accumulate: bool = True) -> torch.Tensor:
    """``out (+)= sum_j taps[j] @ rows[:, j : j + X]`` for flat padded rows ``[c, X + 2p]`` (strided views allowed),
    ``out`` ``[c, X]``, ``taps`` from :func:`taps`: the circular convolution at every flat position (see the module
    docstring)."""
    size = out.shape[1]
    for j, tap in enumerate(taps):
        out.addmm_(tap, rows[:, j : j + size], beta=1 if (accumulate or j) else 0)
    return out


class StepViews:
    """The per-step views of a padded sequence buffer ``[c, T + 1, B, w]`` that the scan loops use, made once:
    ``block[s]`` (step s), ``interior[s]``, ``wraps[s]`` (the pad copies of step s), ``sources[s]`` (the k shifted
    flat rows of step s, the GEMM inputs) and ``targets[s]`` (step s's flat rows, the GEMM output). Building
    views costs Python time at every step; a pooled buffer keeps its views between training steps."""

    def __init__(self, buffer: torch.Tensor, rings: Rings, kernel_size: int) -> None:
        c, blocks, batch, width = buffer.shape
        p, span = rings.half, batch * width
        rows = buffer.view(c, -1)
        self.block = list(buffer.unbind(1))
        self.interior = [rings.interior(b) for b in self.block]
        self.targets = [rows[:, s * span + p : (s + 1) * span - p] for s in range(blocks)]
        size = span - 2 * p
        self.sources = [
            [rows[:, s * span + j : s * span + j + size] for j in range(kernel_size)] for s in range(blocks)
        ]
        n = rings.cells
        if 0 < p <= n:
            self.wraps = [((b[..., :p], b[..., n : n + p]), (b[..., n + p :], b[..., p : 2 * p])) for b in self.block]
        else:
            self.wraps = None  # no pads, or rings shorter than the pads: Rings.wrap_ handles it
        self.rings, self.kernel_size = rings, kernel_size

    @classmethod
    def of(cls, buffer: torch.Tensor, rings: Rings, kernel_size: int, cached: StepViews | None) -> StepViews:
        """``cached`` if it was made for this geometry, else new views of ``buffer``."""
        if cached is not None and (cached.rings.cells, cached.rings.half, cached.kernel_size) == (
            rings.cells,
            rings.half,
            kernel_size,
        ):
            return cached
        return cls(buffer, rings, kernel_size)

    def wrap_(self, s: int) -> None:
        if self.wraps is None:
            self.rings.wrap_(self.block[s])
            return
        for destination, source in self.wraps[s]:
            destination.copy_(source)

    def conv_(self, target: int, source: int, taps: torch.Tensor) -> None:
        """``targets[target] += sum_j taps[j] @ sources[source][j]``."""
        out = self.targets[target]
        for tap, rows in zip(taps, self.sources[source], strict=True):
            out.addmm_(tap, rows)


def circular_conv(h: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """u (*) h for ``h`` ``[c, ..., n]`` (channel first, cell last): one step of the recurrence."""
    c, n = h.shape[0], h.shape[-1]
    rings = Rings(n, kernel.shape[-1])
    padded = h.new_empty(*h.shape[:-1], rings.width)
    rings.interior(padded).copy_(h)
    rows = rings.wrap_(padded).view(c, -1)
    out = torch.empty_like(padded)
    conv_rows_(out.view(c, -1)[:, rings.half : rows.shape[1] - rings.half], kernel.permute(2, 0, 1), rows, False)
    return rings.interior(out)


def _activation_grad_(grad: torch.Tensor, h: torch.Tensor, nonlinearity: str, buffer: torch.Tensor | None) -> None:
    """``grad *= sigma'(pre)`` in place, from sigma's output h (``buffer``: scratch of h's shape, for tanh)."""
    if nonlinearity == "relu":  # one fused pass: grad where h > 0, else 0 (a core ATen op)
        torch.ops.aten.threshold_backward.grad_input(grad, h, 0, grad_input=grad)
    else:  # grad (1 - h^2)
        grad.addcmul_(grad, torch.mul(h, h, out=buffer), value=-1)


def kernel_grad(g_rows: torch.Tensor, h_rows: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """dL/du ``[c, c, k]``: dL/du_j = G[:, p : p + X] @ H(t-1)[:, j : j + X]^T over the flat rows of the whole
    sequence (G with zero pads), in column chunks that stay in cache so G and H are read from memory once."""
    c, p = g_rows.shape[0], kernel_size // 2
    size = g_rows.shape[1] - 2 * p
    grad = g_rows.new_zeros(kernel_size, c, c)
    chunk = max(4096, (1 << 17) // c)
    for start in range(0, size, chunk):
        end = min(start + chunk, size)
        g = g_rows[:, p + start : p + end]
        for j in range(kernel_size):
            grad[j].addmm_(g, h_rows[:, j + start : j + end].T)
    return grad.permute(1, 2, 0)


class BufferPool:
    """Large CPU buffers reused between training steps (a fresh multi-megabyte tensor costs its page faults on
    first touch every step; torch's CPU allocator does not cache), each with its :class:`StepViews`. A buffer is
    taken exclusively and given back only when nothing refers to it any more. Only the buffers of the latest shape
    are kept (at most ``per_shape``), so the pool never holds more than one training step's buffers. CUDA tensors
    bypass it (torch's CUDA allocator caches)."""

    def __init__(self, per_shape: int = 2) -> None:
        self.per_shape = per_shape  # a training step needs two: the states and the gradient buffer
        self.free: dict[tuple, list[tuple[torch.Tensor, StepViews | None]]] = {}

    def take(self, shape: tuple[int, ...], like: torch.Tensor) -> tuple[torch.Tensor, StepViews | None]:
        """A buffer of ``shape`` (and the step views it was given back with, if any)."""
        free = self.free.get((tuple(shape), like.dtype, like.device))
        return free.pop() if free else (like.new_empty(shape), None)

    def give(self, buffer: torch.Tensor, views: StepViews | None = None) -> None:
        if buffer.device.type == "cpu":
            key = (tuple(buffer.shape), buffer.dtype, buffer.device)
            if key not in self.free:  # keep the buffers of the latest shape only: at most per_shape buffers
                self.free = {key: []}
            free = self.free[key]
            if len(free) < self.per_shape:
                free.append((buffer, views))

    def clear(self) -> None:
        """Free every pooled buffer (``wavezoo.core.circular.POOL.clear()``)."""
        self.free.clear()


POOL = BufferPool()


class WaveScan(torch.autograd.Function):
    """The whole wave RNN over a sequence in one autograd node (see the module docstring):

        h(t) = sigma(V x(t) + b + u (*) h(t-1)),    y(t) = W h(t)     (readout bias added outside)

    Inputs: ``x`` ``[T B, I]`` (time-major rows), ``in_weight`` V ``[c, n, I]``, ``in_bias`` b ``[c, n]``,
    ``kernel`` u ``[c, c, k]``, ``h0`` ``[c, B, n]``, ``out_weight`` W ``[O, c, n]``, ``nonlinearity``,
    ``pooled`` (reuse the states buffer between steps; the states are then not returned and the graph can be
    back-propagated only once). Outputs: y ``[T B, O]`` and h(1..T) ``[c, T, B, n]`` (a view of the buffer;
    ``None`` when pooled). Nothing of size T B c n is allocated besides the states buffer and, in the backward,
    one pooled gradient buffer: the input projection is written straight into the states buffer and the readout's
    gradient straight into the gradient buffer.
    """

    @staticmethod
    def forward(ctx, x, in_weight, in_bias, kernel, h0, out_weight, nonlinearity: str, pooled: bool):
        c, batch, n = h0.shape
        steps, k = x.shape[0] // batch, kernel.shape[-1]
        rings = Rings(n, k)
        kernel = kernel.detach()
        forward_taps = taps(kernel)
        shape = (c, steps + 1, batch, rings.width)
        states, cached = POOL.take(shape, x) if pooled else (x.new_empty(shape), None)  # padded h(0..T)
        views = StepViews.of(states, rings, k, cached)
        views.interior[0].copy_(h0)
        views.wrap_(0)
        inner = rings.interior(states[:, 1:])  # [c, T, B, n]
        for a in range(c):  # V x + b, straight into the buffer
            torch.addmm(in_bias[a], x, in_weight[a].T, out=inner[a].flatten(0, 1))
        relu = nonlinearity == "relu"
        for t in range(steps):
            views.conv_(t + 1, t, forward_taps)
            new = views.block[t + 1]
            new.clamp_(min=0) if relu else new.tanh_()
            views.wrap_(t + 1)
        y = x.new_zeros(x.shape[0], out_weight.shape[0])
        for a in range(c):
            y.addmm_(inner[a].flatten(0, 1), out_weight[:, a].T)
        ctx.save_for_backward(x, in_weight, kernel, out_weight, states)
        ctx.nonlinearity, ctx.pooled, ctx.done, ctx.views = nonlinearity, pooled, False, views
        ctx.set_materialize_grads(False)
        if pooled and not any(ctx.needs_input_grad):  # no backward will come: the buffer is free again
            POOL.give(states, views)
        return y, None if pooled else inner

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y, grad_states):
        if ctx.pooled and ctx.done:
            raise RuntimeError("the wave RNN's pooled training path can be back-propagated once (no retain_graph)")
        x, in_weight, kernel, out_weight, states = ctx.saved_tensors
        c, steps, batch, width = states.shape[0], states.shape[1] - 1, states.shape[2], states.shape[3]
        k = kernel.shape[-1]
        rings = Rings(width - 2 * (k // 2), k)
        adjoint = taps(kernel.transpose(0, 1).flip(-1))  # u^T with reversed taps
        # grads[:, t] = dL/d(pre-activation)(t), padded: starts as dL/dh(t) from the outputs; the adjoint convolution
        # of step t + 1 is accumulated into it before sigma' is applied.
        grads, cached = POOL.take(states.shape, states)
        views, state_views = StepViews.of(grads, rings, k, cached), ctx.views
        inner = rings.interior(grads[:, 1:])
        for a in range(c):
            target = inner[a].flatten(0, 1)
            if grad_states is not None:
                target.copy_(grad_states[a].flatten(0, 1))
            if grad_y is not None:
                target.addmm_(grad_y, out_weight[:, a], beta=0 if grad_states is None else 1)
            elif grad_states is None:
                target.zero_()
        views.interior[0].zero_()
        scratch = torch.empty_like(views.interior[0]) if ctx.nonlinearity == "tanh" else None
        for t in range(steps, 0, -1):
            _activation_grad_(views.interior[t], state_views.interior[t], ctx.nonlinearity, scratch)
            views.wrap_(t)
            views.conv_(t - 1, t, adjoint)
        rings.zero_pads_(grads[:, 1:])  # the kernel gradient below sums over interior cells only
        need = ctx.needs_input_grad
        g = [inner[a].flatten(0, 1) for a in range(c)]  # dL/d(pre-activation), [T B, n] per channel
        h = rings.interior(states[:, 1:])
        grad_x = grad_w_in = grad_b_in = grad_kernel = grad_w_out = None
        if need[0]:
            grad_x = torch.zeros_like(x)
            for a in range(c):
                grad_x.addmm_(g[a], in_weight[a])
        if need[1] or need[2]:  # [dL/dV | dL/db] = G^T [x | 1]: one GEMM per channel, no separate reduction
            x_one = torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)
            both = torch.stack([g[a].T @ x_one for a in range(c)])
            grad_w_in, grad_b_in = both[..., :-1], both[..., -1]
        if need[3]:
            span = batch * width
            grad_kernel = kernel_grad(grads.view(c, -1)[:, span:], states[:, :steps].reshape(c, -1), k)
        if need[5] and grad_y is not None:
            grad_w_out = torch.stack([grad_y.T @ h[a].flatten(0, 1) for a in range(c)], dim=1)
        grad_h0 = views.interior[0].clone() if need[4] else None
        POOL.give(grads, views)
        if ctx.pooled:
            ctx.done = True
            POOL.give(states, state_views)
        return grad_x, grad_w_in, grad_b_in, grad_kernel, grad_h0, grad_w_out, None, None


def scan_backend(x: torch.Tensor, backend: str | None = None) -> str:
    """The wave scan that runs for ``x``: ``backend`` if given, else the ``WAVEZOO_WAVE_SCAN`` environment variable,
    else ``"auto"``: the fused Triton scan (:mod:`wavezoo.core.wave_scan_triton`) on CUDA when triton is installed
    (float32, bfloat16 or float16 inputs; float64 stays on the reference), the reference :class:`WaveScan`
    otherwise (always on the CPU, unless forced, e.g. under ``TRITON_INTERPRET=1``); see
    :func:`wavezoo.core.triton_jit.choose_backend`."""
    if backend is None and "WAVEZOO_WAVE_SCAN" not in os.environ and not x.is_cuda:
        return "reference"  # the CPU default, decided without importing triton
    from wavezoo.core.triton_jit import choose_backend

    return choose_backend(x, backend, "WAVEZOO_WAVE_SCAN", "wave scan backend")


def wave_scan(
    x: torch.Tensor,
    in_weight: torch.Tensor,
    in_bias: torch.Tensor,
    kernel: torch.Tensor,
    h0: torch.Tensor,
    out_weight: torch.Tensor,
    nonlinearity: str,
    pooled: bool = False,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """y ``[T B, O]`` and h(1..T) ``[c, T, B, n]`` (``None`` when ``pooled`` on the reference path): :class:`WaveScan`
    or the fused Triton scan, as :func:`scan_backend` chooses (``pooled`` concerns the reference path only)."""
    if scan_backend(x, backend) == "triton":
        from wavezoo.core.wave_scan_triton import triton_wave_scan

        y, states = triton_wave_scan(x, in_weight, in_bias, kernel, h0, out_weight, nonlinearity)
        return y, None if pooled else states
    return WaveScan.apply(x, in_weight, in_bias, kernel, h0, out_weight, nonlinearity, pooled)
