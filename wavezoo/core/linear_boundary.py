"""The linear boundary condition solved in parallel: the one LBC system of wavezoo (``twm_lbc`` and ``lbc_ssm``).

A traveling wave with a linear boundary is a vector autoregression of its boundary column w(t) in R^d (paper
sec. 3.1; the interior only shifts it):

    w(t) = sum_{k=1}^{s} A_k w(t - k) + e(t),        t = 1 .. L,     w(1 - s) .. w(0) given ("past"),

**one index convention**, lag order: ``lags[..., k - 1, :, :]`` = A_k weighs the value k steps old (the TWM's
Phi_{s+1-k}; :meth:`wavezoo.models.twm.LinearBoundary.lag_operators`). Tensors carry independent groups ``*G``
(the channels of an SSM, each a d = 1 wave; none for a TWM): ``lags [*G, s, d, d]``, signals ``[B, *G, L, d]``,
``past [B, *G, s, d]`` oldest first (the TWM substrate order).

Solution without a loop over time (:func:`solve`), a chunked scan in a fixed number of tensor operations for any
length: the sequence is cut into chunks of Q steps; inside a chunk, w is the block lower-triangular Toeplitz system
T w_c = e_c + F S_c (S_c the s columns before the chunk), whose inverse is the block Toeplitz of the impulse
response a_0 .. a_{Q-1} of a = (I - sum_k A_k z^k)^{-1} (one triangular solve for its first block column); the
chunk states S_c follow a first-order recursion with the transfer N = M^Q (M the companion matrix), one block
bidiagonal triangular solve for all of them. Every solve is a forward substitution, the recursion itself, so each
w(t) has the relative precision of the stepped form, growing systems included (``tests/models/
test_recurrence_core.py``). :func:`series_product` and :func:`lag_sum` are FFT products of power series (for long
convolutions and the known lag sums).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _fft_size(n: int) -> int:
    return 1 << (n - 1).bit_length()


SMALL = 16  # waves per column up to which the per-frequency products are broadcast (not batched matmuls)


def _frequency_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` over a batch of frequencies. For small matrices a broadcast product and a sum (a fixed number of
    ops: the CPU's batched matmul loops over small matrices one by one, dispatching ops per frequency), else
    ``torch.matmul``."""
    if a.shape[-1] > SMALL:  # complex as four real matmuls (a complex batched matmul loops on the CPU)
        real = a.real @ b.real - a.imag @ b.imag
        return torch.complex(real, a.real @ b.imag + a.imag @ b.real)
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)


def _frequency_apply(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``a [*G, F, d, d]`` (complex) applied to the vectors ``v [B, *G, F, d]``: for every frequency one real
    matmul of the whole batch, ``[B, 2d] @ [2d, 2d]`` (the complex product in real blocks: a batched matmul of
    complex or of small matrices dispatches ops per matrix on the CPU, so its op count would grow with L)."""
    batch = v.shape[: v.dim() - a.dim() + 1]
    rows = v.reshape(-1, *v.shape[len(batch) :]).movedim(0, -2)  # [*G, F, B, d]
    rows = torch.cat([rows.real, rows.imag], dim=-1)  # [*G, F, B, 2d]
    ar, ai = a.real.transpose(-1, -2), a.imag.transpose(-1, -2)
    blocks = torch.cat([torch.cat([ar, ai], dim=-1), torch.cat([-ai, ar], dim=-1)], dim=-2)  # [*G, F, 2d, 2d]
    out = rows @ blocks
    dim = a.shape[-1]
    out = torch.complex(out[..., :dim], out[..., dim:]).movedim(-2, 0)
    return out.reshape(*batch, *v.shape[len(batch) :])


def series_product(a: torch.Tensor, b: torch.Tensor, length: int, vector: bool = False) -> torch.Tensor:
    """First ``length`` coefficients of the product of two power series, by FFT along the time dim.

    ``a [..., La, p, q]`` (a matrix series) times ``b [..., Lb, q, r]``, or with ``vector=True`` times a vector
    series ``b [..., Lb, q]``; leading dims broadcast. With p = q = 1 the product is elementwise."""
    time = -2 if vector else -3
    size = _fft_size(a.shape[-3] + b.shape[time])
    if a.shape[-1] == a.shape[-2] == b.shape[-1] == 1:  # scalar waves (d = 1): FFTs along the contiguous last dim
        scalar_a, scalar_b = a.flatten(-3), (b.flatten(-2) if vector else b.flatten(-3))  # views, no copies
        out = torch.fft.irfft(torch.fft.rfft(scalar_a, size) * torch.fft.rfft(scalar_b, size), size)[..., :length]
        return out.unsqueeze(-1) if vector else out.unsqueeze(-1).unsqueeze(-1)
    fa = torch.fft.rfft(a, size, dim=-3)
    fb = torch.fft.rfft(b, size, dim=time)
    if a.shape[-1] == a.shape[-2] == 1:
        fy = fa[..., 0] * fb if vector else fa * fb
    else:
        fy = _frequency_apply(fa, fb) if vector else _frequency_matmul(fa, fb)
    out = torch.fft.irfft(fy, size, dim=time)
    return out[..., :length, :] if vector else out[..., :length, :, :]


def impulse_response(lags: torch.Tensor, length: int) -> torch.Tensor:
    """a_0 .. a_{length-1} ``[*G, length, d, d]`` of (I - sum_k A_k z^k)^{-1}: w after an impulse e(1) = I (column j
    of a_t is :func:`solve` driven by e(1) = e_j)."""
    dim = lags.shape[-1]
    impulse = torch.zeros(dim, *lags.shape[:-3], length, dim, dtype=lags.dtype, device=lags.device)
    impulse[..., 0, :] = torch.eye(dim, dtype=lags.dtype, device=lags.device).reshape(dim, *[1] * (lags.dim() - 3), dim)
    return solve(lags, impulse).movedim(0, -1)


def lag_sum(lags: torch.Tensor, sequence: torch.Tensor, length: int) -> torch.Tensor:
    """c(t) = sum_{k=1}^{s} A_k v(t - k) for t = 1 .. ``length``, from ``sequence`` = v(1 - s) .. v(length - 1)
    ``[B, *G, s + length - 1 (or more), d]`` (oldest first): the boundary's value before the input is written."""
    history = lags.shape[-3]
    kernel = torch.cat([torch.zeros_like(lags[..., :1, :, :]), lags], dim=-3)  # A_0 = 0
    return series_product(kernel, sequence, history + length, vector=True)[..., history:, :]


def spectral_radius(lags: torch.Tensor) -> float:
    """The largest |eigenvalue| of the block companion matrix of ``lags [s, d, d]`` (a float, no gradient)."""
    from wavezoo.core.operators import companion_matrix  # lag order, as here

    with torch.no_grad():
        return float(torch.linalg.eigvals(companion_matrix(lags.detach().double().cpu())).abs().max())


NESTED = 1 << 21  # entries of the dense chunk-state systems (all groups) above which they are solved nested


def chunk_size(length: int, history: int, dim: int = 1, batch: int = 1) -> int:
    """The chunk length Q for :func:`solve`: among Q = ceil(L / nc) for nc ~ L / (sqrt(L s) x 2^(k/2)) chunks,
    k = -4 .. 2 (Q at least s; a Q that divides the length wastes no padded steps), the one of least estimated work,
    (Q d)^2 (nc B + s d) for the chunks plus (nc s d)^2 (B + 1) for the chunk states (B right-hand sides): about
    sqrt(L s) for a batch, shorter for one sequence (a kernel)."""
    middle = math.sqrt(length * history)
    counts = {max(1, round(length / (middle * 2 ** (k / 2)))) for k in range(-4, 3)}
    sizes = {max(history, -(-length // count)) for count in counts}

    def work(size: int) -> float:
        chunks = -(-length // size)
        return (size * dim) ** 2 * (chunks * batch + history * dim) + (chunks * history * dim) ** 2 * (batch + 1)

    return min(sorted(sizes), key=work)


def solve(
    lags: torch.Tensor,
    drive: torch.Tensor,
    past: torch.Tensor | None = None,
    rate: float = 1.0,
    readout: torch.Tensor | None = None,
) -> torch.Tensor:
    """w(1 .. L) ``[B, *G, L, d]`` of w(t) = sum_k A_k w(t - k) + e(t) for ``drive`` e ``[B, *G, L, d]`` from
    ``past`` w(1 - s) .. w(0) ``[B, *G, s, d]`` (oldest first; None: zeros). With ``readout`` R ``[*G, s, p, d]``
    it returns y(t) = sum_{m=0}^{s-1} R_m w(t - m) ``[B, *G, L, p]`` instead (a finite readout of the wave,
    applied per chunk as y_c = R_1 S_c + R_0 w_c, R_0 folded into T^-1).

    A chunked scan in a fixed number of tensor operations (Q = :func:`chunk_size`; the length padded to nc chunks):
    within a chunk, w_c = T^-1 (e_c + F S_c), T the block lower-triangular Toeplitz matrix (I on the diagonal, -A_k
    on the k-th block sub-diagonal), F what the chunk's start state S_c (its s previous columns) feeds back; T^-1 is
    the block Toeplitz of the impulse response a_0 .. a_{Q-1} (one triangular solve with d right-hand sides), so
    X_e = T^-1 e_c (every chunk and batch row at once) and X_F = T^-1 F are matmuls. The chunk states follow
    S_{c+1} = N S_c + g_c (N, g_c: the last s columns of X_F, X_e; N = M^Q for the companion matrix M), all nc of
    them by one block bidiagonal triangular solve (beyond :data:`NESTED` entries, by this solver again, a first-order
    system of d = s d: a few nested levels even for very long sequences); then w_c = X_e + X_F S_c.

    A growing system needs no damping here: both triangular solves are forward substitutions (the recursion itself,
    chunk by chunk), so every w(t) keeps its own relative precision (a spectral radius of 1.61 at L = 300, w ~ 1e62:
    7e-15 relative at every step, against the recursion). ``rate`` > 1 still solves the damped system of
    v(t) = rate^-t w(t) (A_k -> rate^-k A_k, e(t) -> rate^-t e(t)) and scales back (optional; it was needed by the
    FFT series inversion this solver replaced). Without ``readout`` the backward pass is the adjoint system, solved
    the same way (:class:`LinearRecurrence`), not autograd through the scan's own operations."""
    length, history, dim = drive.shape[-2], lags.shape[-3], lags.shape[-1]
    groups, batch = lags.shape[:-3], drive.shape[0]
    if rate != 1.0:
        lag_power = rate ** -torch.arange(1, history + 1, dtype=lags.dtype, device=lags.device)
        time = torch.arange(1 - history, length + 1, dtype=drive.dtype, device=drive.device)
        damping = (rate**-time)[:, None]  # t = 1 - s .. L
        lags = lags * lag_power[:, None, None]
        drive = drive * damping[history:]
        past = None if past is None else past * damping[:history]
        if readout is not None:  # y(t) = rate^t sum_m (rate^-m R_m) v(t - m)
            readout = readout * (rate * lag_power[:, None, None])
    lags = lags.reshape(-1, history, dim, dim)  # [g, s, d, d]: the groups flattened
    drive = drive.reshape(batch, -1, length, dim)
    past = None if past is None else past.reshape(batch, -1, history, dim)
    if readout is None:  # the adjoint backward (LinearRecurrence)
        solution = LinearRecurrence.apply(lags, drive, past)
    else:
        solution = chunked_solve(lags, drive, past, readout.reshape(-1, history, *readout.shape[-2:]))
    solution = solution.reshape(batch, *groups, length, solution.shape[-1])
    return solution if rate == 1.0 else solution / damping[history:]


class LinearRecurrence(torch.autograd.Function):
    """w = :func:`chunked_solve` (lags, drive, past) with the adjoint system as its backward, in place of autograd
    through the chunked scan's matmuls, gathers and triangular solves (one more solve and one product):

        lambda(t) = g(t) + sum_k A_k^T lambda(t + k)  (lambda(t > L) = 0; the same recursion, reversed in time),
        dl/de(t) = lambda(t),  dl/dA_k = sum_t lambda(t) w(t - k)^T,
        dl/dw(j) = sum_{k >= 1 - j} A_k^T lambda(j + k) for the past columns j = 1 - s .. 0.

    ``lags [g, s, d, d]``, ``drive [B, g, L, d]``, ``past [B, g, s, d]`` or None. Once differentiable."""

    @staticmethod
    def forward(ctx, lags: torch.Tensor, drive: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
        written = chunked_solve(lags, drive, past)
        ctx.save_for_backward(lags, written, past)
        return written

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        lags, written, past = ctx.saved_tensors
        history = lags.shape[-3]
        adjoint = chunked_solve(lags.transpose(-1, -2), grad.flip(-2), None).flip(-2)  # lambda(1 .. L)
        grad_lags = grad_past = None
        if ctx.needs_input_grad[0]:
            start = written.new_zeros(*written.shape[:2], history, lags.shape[-1]) if past is None else past
            before = torch.cat([start, written[..., :-1, :]], dim=-2).unfold(-2, history, 1)  # w(t - s .. t - 1)
            grad_lags = torch.einsum("bgti,bgtjm->gmij", adjoint, before).flip(1)  # slot m holds w(t - (s - m))
        if past is not None and ctx.needs_input_grad[2]:
            first = F.pad(adjoint[..., :history, :], (0, 0, 0, max(0, history - adjoint.shape[-2])))
            slots = torch.arange(history, device=lags.device)  # past slot p = column p - s + 1; lambda(m + 1)
            lag = (slots[None, :] + history - 1 - slots[:, None]).clamp(max=history)  # k - 1 = m + s - 1 - p
            table = torch.cat([lags, lags.new_zeros(lags.shape[0], 1, *lags.shape[-2:])], 1)[:, lag]  # [g, p, m]
            grad_past = torch.einsum("gpmij,bgmi->bgpj", table, first)
        return grad_lags, adjoint if ctx.needs_input_grad[1] else None, grad_past


def chunked_solve(
    lags: torch.Tensor, drive: torch.Tensor, past: torch.Tensor | None, readout: torch.Tensor | None = None
) -> torch.Tensor:
    """The chunked scan of :func:`solve` on flattened groups: ``lags [g, s, d, d]``, ``drive [B, g, L, d]``,
    ``past [B, g, s, d]`` or None, ``readout [g, s, p, d]`` or None; ``[B, g, L, d or p]``."""
    batch, length, history, dim = drive.shape[0], drive.shape[-2], lags.shape[-3], lags.shape[-1]
    size = chunk_size(length, history, dim, batch)
    chunks = -(-length // size)
    state = history * dim
    # T and F from one gather: block (i, j) of [F | I - T] is A_{i + s - j} (i: chunk step, j: s past + Q steps)
    table = torch.cat(
        [lags.new_zeros(lags.shape[0], 1, dim, dim), lags, lags.new_zeros(lags.shape[0], size, dim, dim)], 1
    )
    steps = torch.arange(size, device=lags.device)
    index = (steps[:, None] + history - torch.arange(history + size, device=lags.device)[None]).clamp(min=0)
    blocks = table[:, index].transpose(-3, -2).reshape(-1, size * dim, (history + size) * dim)
    if readout is not None:  # block (i, j) of [R_1 | R_0] is R_{i + s - j} (index + 1: slot 0 holds the zero block)
        outputs = readout.shape[-2]
        readout = readout.reshape(-1, history, outputs, dim)
        taps = torch.cat([readout.new_zeros(readout.shape[0], 1, outputs, dim), readout, readout.new_zeros(
            readout.shape[0], size, outputs, dim)], 1)  # fmt: skip
        raw = steps[:, None] + history - torch.arange(history + size, device=lags.device)[None]
        readout = taps[:, (raw + 1).clamp(min=0)].transpose(-3, -2).reshape(-1, size * outputs, (history + size) * dim)
    eye = torch.eye(size * dim, dtype=lags.dtype, device=lags.device)
    toeplitz, feed = eye - blocks[..., state:], blocks[..., :state]
    forcing = F.pad(drive, (0, 0, 0, chunks * size - length)).reshape(batch, -1, chunks, size * dim)
    forcing = forcing.permute(1, 3, 2, 0).reshape(lags.shape[0], size * dim, chunks * batch)  # column c B + b
    # T^-1 is block Toeplitz too, of the impulse response a_0 .. a_{Q-1}: one triangular solve for its first block
    # column (d right-hand sides), a gather for the rest, then matmuls (faster than a solve for every column)
    response = torch.linalg.solve_triangular(toeplitz, eye[:, :dim], upper=False, unitriangular=True)
    response = torch.cat([response.reshape(-1, size, dim, dim), lags.new_zeros(lags.shape[0], 1, dim, dim)], 1)
    lag = steps[:, None] - steps[None, :]
    inverse = response[:, torch.where(lag >= 0, lag, size)].transpose(-3, -2).reshape(-1, size * dim, size * dim)
    carried = inverse @ feed  # X_F
    if readout is None:
        within = inverse @ forcing  # X_e
        ends = within[..., -state:, :]
    else:  # only the chunk's last s columns of X_e (for g_c): the outputs come from R_0 T^-1 below
        ends = inverse[..., -state:, :] @ forcing
    start = (
        lags.new_zeros(lags.shape[0], state, batch) if past is None else past.reshape(batch, -1, state).permute(1, 2, 0)
    )
    starts = start[:, None]  # S_c [g, nc, sd, B]
    if chunks > 1:
        transfer = carried[..., -state:, :]  # N [g, sd, sd]
        gained = ends.reshape(-1, state, chunks, batch)[:, :, :-1].permute(0, 2, 1, 3)  # g_0 .. g_{nc-2}
        gained = gained + F.pad((transfer @ start)[:, None], (0, 0, 0, 0, 0, chunks - 2))  # + N S_0 in the first
        if lags.shape[0] * ((chunks - 1) * state) ** 2 > NESTED:  # many chunks: the states' recursion (s = 1,
            # d = s d) by this solver
            later = solve(transfer[:, None], gained.permute(3, 0, 1, 2)).permute(1, 2, 3, 0)
        else:
            links = torch.diag(torch.ones(chunks - 2, dtype=lags.dtype, device=lags.device), -1)
            system = torch.eye((chunks - 1) * state, dtype=lags.dtype, device=lags.device) - (
                links[:, None, :, None] * transfer[:, None, :, None, :]
            ).reshape(-1, (chunks - 1) * state, (chunks - 1) * state)
            later = gained.reshape(-1, (chunks - 1) * state, batch)
            later = torch.linalg.solve_triangular(system, later, upper=False, unitriangular=True)
        starts = torch.cat([starts, later.reshape(-1, chunks - 1, state, batch)], 1)
    starts = starts.permute(0, 2, 1, 3).reshape(-1, state, chunks * batch)
    if readout is None:
        solution = within + carried @ starts
    else:  # y_c = R_1 S_c + R_0 w_c = (R_0 T^-1) e_c + (R_1 + R_0 X_F) S_c (R_0 T^-1: the Toeplitz of K = R * a)
        head, tail = readout[..., state:], readout[..., :state]
        solution, dim = (head @ inverse) @ forcing + (tail + head @ carried) @ starts, outputs
    solution = (
        solution.reshape(-1, size, dim, chunks, batch).permute(4, 0, 3, 1, 2).reshape(batch, -1, chunks * size, dim)
    )
    return solution[..., :length, :]
