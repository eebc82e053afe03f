"""LBC state-space layer stack in the style of H3 (Fu et al., ICLR 2023): a shift SSM plus the TWM's linear
boundary condition.

Each channel c of an :class:`ShiftLBCSSM` is a one-wave TWM of N cells (s = N, d = 1)::

    x(t) = S x(t-1) + e_1 ( u(t) + phi_c^T x(t-1) ),      y(t) = C_c^T x(t) + D_c u(t)

S shifts every cell one site towards the open end (the oldest value leaves), cell 1 is the start boundary; the
transition A = S + e_1 phi_c^T is shift + rank one (the LBC, a companion matrix). Cell i holds the boundary value
w(t-i+1), so the boundary follows the all-pole (AR(N), the paper's VAR with d = 1) recursion

    w(t) = u(t) + sum_{k=1}^{N} phi_k w(t-k),      eigenvalues of A = roots of  z^N - sum_k phi_k z^{N-k}

(phi_k is the paper's boundary operator Phi_{s+1-k} for d = 1: it weighs the value k steps old).

With phi = 0 this is exactly H3's shift SSM (a finite impulse response of length N); phi adds the boundary feedback
that lets a wave recirculate, i.e. an infinite impulse response.

Stable by construction. phi is not a free parameter: with raw parameters v_c in R^N (``raw_feedback``),

    phi_c = r_max * tanh(||v_c||_1) * v_c / ||v_c||_1     (~ r_max v_c near v_c = 0),    r_max = :data:`R_MAX` = 0.999,

a radial squashing of the raw vector into the l1 ball: ||phi_c||_1 = r_max tanh(||v_c||_1) < r_max < 1 for ANY v
(<= r_max in floating point, where tanh saturates to 1), and every phi with ||phi||_1 < r_max is reached, by
v = atanh(||phi||_1 / r_max) phi / ||phi||_1 (:meth:`ShiftLBCSSM.set_feedback`). For |z| >= 1,
|sum_k phi_k z^-k| <= ||phi||_1 < 1, so the all-pole polynomial 1 - sum_k phi_k z^-k has all its roots strictly
inside the unit circle, indeed in |z| <= r_max^(1/N) (the spectral radius of A); and the boundary recursion is a
contraction, |w(t)| <= max|u| / (1 - r_max), with an impulse response bounded by 1 in modulus. v = 0 gives phi = 0:
the model starts as H3's shift SSM, exactly as before. ``feedback=False`` drops v and keeps phi = 0 (pure shift).

The ball holds the feedbacks the TWM needs: a wave recirculating with period P <= N (phi_P -> +-1, the copy task),
leaky integrators and averages of past values (phi >= 0, sum phi -> 1), and any mixture of them. It is a subset of
the stable feedbacks: it leaves out those with ||phi||_1 >= 1 (resonators, or an integrator plus sign-alternating
corrections; the unconstrained model reached ||phi||_1 ~ 1.5 at radius 0.995 in 200 training steps), which is the
price of the numerical guarantee. The complete Schur-Cohn parametrisation (reflection coefficients
k_m = r_max tanh(theta_m), Levinson step-up) also reaches the ill-conditioned ones, whose coefficients and transients
grow like binomials in N: with N(0, 3) draws of theta (saturated k) it gave impulse-response transients of 2e5
(N = 8) and 1e9 (N = 16), Newton/FFT errors of 1e74 (NaN model outputs), and for N = 64 a float64 phi that was no
longer stable (companion spectral radius 1.3), so neither the FFT path nor the float32 recurrence could follow it.

Two equivalent modes (tested equal for any parameter values):

* ``recurrent``: the update above, step by step (for generation);
* ``parallel``: the boundary wave w = a * u, a = 1 / (1 - sum_j phi_j z^j), and y = C * w + D u, both by the chunked
  scan of the one solver (a fixed number of tensor operations for any length; up to :data:`DIRECT_LENGTH`), beyond
  it the kernel K = C * a by that solver and y = K * u + D u by one FFT convolution, O(L log L). Both modes also run
  from a given state (the last N boundary values), which is how :meth:`LBCSSM.scan` carries a stream. The solver is
  the one linear-boundary module of wavezoo, :mod:`wavezoo.core.linear_boundary` (that of ``twm_lbc`` too), each
  channel a wave of d = 1 with lags ``phi[c, k - 1]`` (the state's cell order, newest first, is its lag order).

An H3 block (pre-norm, residual): q, k, v = projections; k' = SSM_shift(k); y = q * SSM_2(k' * v); out = W_o y.
``gating=False`` keeps only the linear path y = SSM(v) (an LTI model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wavezoo.core.linear_boundary import impulse_response, series_product, solve
from wavezoo.errors import ConfigError, check_choice, check_positive_int
from wavezoo.models.base import SequenceModel, State
from wavezoo.registry import register_model

MODES = ("parallel", "recurrent")
PRECISIONS = ("auto", "float64", "float32")
DIRECT_LENGTH = 1024  # up to this length the training path solves directly (chunked scan), beyond it by FFT
R_MAX = 0.999  # ||phi||_1 < R_MAX: every root of the feedback polynomial has modulus <= R_MAX ** (1 / N) < 1


def all_pole_response(phi: torch.Tensor, length: int) -> torch.Tensor:
    """a_0..a_{length-1} ``[channels, length]`` of 1 / (1 - sum_j phi_j z^j): the wave at the boundary cell after an
    impulse (:func:`wavezoo.core.linear_boundary.impulse_response` with d = 1)."""
    return impulse_response(phi[..., None, None], length).flatten(-3)


def _convolve(kernel: torch.Tensor, signal: torch.Tensor, length: int) -> torch.Tensor:
    """Causal convolution of per-channel ``kernel [C, K]`` and ``signal [B, C, L]`` (first ``length`` terms)."""
    return series_product(kernel[..., None, None], signal[..., None], length, vector=True).squeeze(-1)


class ShiftLBCSSM(nn.Module):
    """``channels`` independent shift SSMs of ``state_size`` cells with a learned, stable linear boundary feedback.

    Parameters: ``readout`` C ``[channels, N]``, ``skip`` D ``[channels]`` and, with ``feedback=True``,
    ``raw_feedback`` v ``[channels, N]`` (phi = :data:`R_MAX` tanh(||v||_1) v / ||v||_1, see the module docstring).
    State: ``[batch, channels, N]``, cell i (0-based) = the boundary value i steps ago (cell 0 newest).
    """

    def __init__(self, channels: int, state_size: int, feedback: bool = True, precision: str = "auto") -> None:
        super().__init__()
        self.precision = check_choice("precision", precision, PRECISIONS)
        self.channels = check_positive_int("channels", channels)
        self.state_size = check_positive_int("state_size", state_size)
        self.readout = nn.Parameter(torch.randn(channels, state_size) / state_size**0.5)  # C
        self.skip = nn.Parameter(torch.randn(channels))  # D
        # v = 0 -> phi = 0: the initial map is H3's shift SSM (as with the former phi = 0 init).
        self.raw_feedback = nn.Parameter(torch.zeros(channels, state_size)) if feedback else None
        self.mode = "parallel"

    # -- the feedback --------------------------------------------------------------------------------------
    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of phi, the kernel and the FFTs: float64 with ``precision="float64"``, and with ``"auto"`` on
        the CPU; float32 with ``"float32"``, and with ``"auto"`` on an accelerator (where float64 is slow or, on
        MPS, missing). See the module docstring for the measured difference."""
        on_cpu = self.readout.device.type == "cpu"
        wide = self.precision == "float64" or (self.precision == "auto" and on_cpu)
        return torch.float64 if wide else torch.float32

    def feedback_coefficients(self) -> torch.Tensor | None:
        """phi = r_max tanh(||v||_1) v / ||v||_1 ``[channels, N]`` (in :attr:`compute_dtype`), ||phi||_1 < r_max:
        the stable boundary feedback; ``None`` without feedback (phi = 0)."""
        if self.raw_feedback is None:
            return None
        raw = self.raw_feedback.to(self.compute_dtype)
        norm = raw.abs().sum(-1, keepdim=True).clamp_min(1e-12)  # tanh(n) / n -> 1 as n -> 0: phi = r_max v
        return R_MAX * raw * (torch.tanh(norm) / norm)

    @torch.no_grad()
    def set_feedback(self, phi: torch.Tensor) -> None:
        """Set the raw parameters so that :meth:`feedback_coefficients` is ``phi`` ``[channels, N]`` (or ``[N]``).

        Raises :class:`ConfigError` if some ||phi_c||_1 >= r_max (outside the stable parametrisation)."""
        if self.raw_feedback is None:
            raise ConfigError("set_feedback needs an SSM built with feedback=True")
        phi = torch.as_tensor(phi, dtype=torch.float64).expand(self.channels, self.state_size)
        norm = phi.abs().sum(-1, keepdim=True)
        if bool((norm >= R_MAX).any()):
            raise ConfigError(f"feedback with ||phi||_1 = {norm.max().item():.6g} is invalid: expected < {R_MAX}")
        self.raw_feedback.copy_(phi * (torch.atanh(norm / R_MAX) / norm.clamp_min(1e-300)))

    def transition_matrix(self) -> torch.Tensor:
        """A = S + e_1 phi^T ``[channels, N, N]`` (float64) for analysis only (the model never builds it)."""
        n = self.state_size
        shift = torch.diag(torch.ones(n - 1, dtype=torch.float64, device=self.readout.device), -1)
        a = shift.expand(self.channels, n, n).clone()
        phi = self.feedback_coefficients()
        if phi is not None:
            a[:, 0, :] = phi
        return a

    def kernel(self, length: int) -> torch.Tensor:
        """K_c[k] = C_c^T A_c^k e_1 for k < ``length``: ``[channels, length]`` (:attr:`compute_dtype` when there is
        feedback)."""
        phi = self.feedback_coefficients()
        taps = F.pad(self.readout, (0, max(0, length - self.state_size)))[:, :length]
        if phi is None:
            return taps
        # K = a * C: the boundary wave driven by e(t) = C_t (one chunked solve, no series inversion, no FFT)
        return solve(phi[..., None, None], taps.to(phi.dtype)[None, ..., None])[0, ..., 0]

    # -- the sequence map --------------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, **kwargs) -> torch.Tensor:
        """Zero registers ``[batch_size, channels, N]`` (``kwargs``: device/dtype)."""
        return torch.zeros(batch_size, self.channels, self.state_size, **kwargs)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``u [B, L, channels] -> [B, L, channels]`` from the zero state, in the current mode."""
        if self.mode == "parallel":
            return self.forward_kernel(u)
        return self.forward_recurrent(u)[0]

    def scan(self, u: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``u [B, L, channels]`` from ``state`` (default zero) -> (outputs, final state), in the current mode."""
        if self.mode == "parallel":
            return self.forward_parallel(u, state)
        return self.forward_recurrent(u, state)

    def forward_kernel(self, u: torch.Tensor) -> torch.Tensor:
        """The parallel map from the zero state, y = K * u + D u (the training path): up to :data:`DIRECT_LENGTH` by
        the chunked solve with the readout taps folded in, beyond it by one FFT convolution with the kernel."""
        length = u.shape[1]
        signal = u.transpose(1, 2)  # [B, C, L]
        # Solve and FFTs in compute_dtype: float64 on the CPU, kept as a margin rather than a necessity (with
        # ||phi||_1 < r_max the impulse response is bounded by 1; a float32 FFT path measured 3e-7 relative from a
        # float64 recurrence at L = 4000 for a slowly decaying phi, float64 8e-8), float32 on accelerators: on the
        # published lbc_ssm weights float32 differs from float64 by 8e-7 (relative), at the stability edge by 1e-4
        # (tests/models/test_ssm.py).
        dtype = self.compute_dtype
        if length > DIRECT_LENGTH:  # long sequences: the kernel, then one FFT convolution (O(L log L))
            y = _convolve(self.kernel(length).to(dtype), signal.to(dtype), length).to(u.dtype)
        else:  # y = sum_i C_i w(t - i + 1) of the boundary wave w, both in the chunked solve
            phi = self.feedback_coefficients()
            lags = self.readout.new_zeros(self.readout.shape, dtype=dtype) if phi is None else phi
            taps = self.readout.to(dtype)[..., None, None]  # C_i weighs w(t - i + 1)
            y = solve(lags[..., None, None], signal.to(dtype)[..., None], readout=taps)[..., 0].to(u.dtype)
        return (y + self.skip[:, None] * signal).transpose(1, 2)

    def forward_parallel(self, u: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The parallel map from ``state`` ``[B, C, N]`` (default zero) -> (y ``[B, L, C]``, final state).

        The boundary wave w = a * (u + e), where e(t) = sum_{j >= t} phi_j w(t-j) (t = 1..N) is what the stored
        cells feed back (the chunked solve); then y(t) = sum_i C_i w(t-i+1) + D u(t) over the stored + new boundary
        values (an FFT convolution), in :attr:`compute_dtype` (see :meth:`forward_kernel`).
        """
        batch, length, n = u.shape[0], u.shape[1], self.state_size
        signal = u.transpose(1, 2).to(self.compute_dtype)  # [B, C, L]
        past = signal.new_zeros(batch, self.channels, n) if state is None else state.to(signal.dtype)  # newest first
        phi = self.feedback_coefficients()
        if phi is None:
            wave = signal
        else:  # the one LBC solver, lag order (cell m of the state = w(-m), so the past oldest first is its flip)
            wave = solve(phi[..., None, None], signal[..., None], past.flip(-1)[..., None]).squeeze(-1)
        history = torch.cat([past.flip(-1), wave], dim=-1)  # boundary values, oldest first: w(1-N) .. w(L)
        y = _convolve(self.readout.to(signal.dtype), history, n + length)[..., n:]
        y = y.to(u.dtype) + self.skip[:, None] * u.transpose(1, 2)
        final = history[..., -n:].flip(-1).to(u.dtype)
        return y.transpose(1, 2), final

    def forward_recurrent(
        self, u: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The update step by step from ``state`` (default zero) -> (y ``[B, L, C]``, final state): the reference
        of the parallel path (``set_mode("recurrent")``), which training uses only when asked to."""
        if state is None:
            state = self.initial_state(u.shape[0], device=u.device, dtype=u.dtype)
        phi = self.feedback_coefficients()  # in compute_dtype, as in the parallel path
        outputs = []
        for t in range(u.shape[1]):
            y_t, state = self.step_registers(u[:, t], state, phi)
            outputs.append(y_t)
        return torch.stack(outputs, dim=1), state

    def step_registers(
        self, u: torch.Tensor, state: torch.Tensor, phi: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x(t) = S x(t-1) + e_1 (u(t) + phi^T x(t-1)), y(t) = C^T x(t) + D u(t) for ``u [B, C]``, ``state [B, C, N]``
        -> (y ``[B, C]``, x(t)). ``phi``: the precomputed :meth:`feedback_coefficients` (computed if left out).

        The boundary sum is taken in phi's dtype (float64 on the CPU), then stored in the state's dtype: near
        ||phi||_1 = r_max the gain 1 / (1 - ||phi||_1) reaches 1000, and phi rounded to float32 changes it by ~6e-5
        (relative)."""
        if phi is None and self.raw_feedback is not None:
            phi = self.feedback_coefficients()
        boundary = u if phi is None else (u.to(phi.dtype) + (state.to(phi.dtype) * phi).sum(-1)).to(u.dtype)
        state = torch.cat([boundary[..., None], state[..., :-1]], dim=-1)  # the shift: an index op, no matrix
        return (state * self.readout).sum(-1) + self.skip * u, state


class H3Block(nn.Module):
    """Pre-norm residual H3 block built on :class:`ShiftLBCSSM` (see the module docstring).

    State: ``(shift_ssm state, ssm state)`` with gating, ``(ssm state,)`` without, each ``[batch, width, N]``.
    """

    def __init__(
        self, width: int, state_size: int, gating: bool = True, feedback: bool = True, precision: str = "auto"
    ) -> None:
        super().__init__()
        self.gating = gating
        self.norm = nn.LayerNorm(width)
        self.value = nn.Linear(width, width)
        self.ssm = ShiftLBCSSM(width, state_size, feedback, precision)
        if gating:
            self.query = nn.Linear(width, width)
            self.key = nn.Linear(width, width)
            self.shift_ssm = ShiftLBCSSM(width, state_size, feedback, precision)
        self.output = nn.Linear(width, width)

    def ssms(self) -> tuple[ShiftLBCSSM, ...]:
        return (self.shift_ssm, self.ssm) if self.gating else (self.ssm,)

    def initial_state(self, batch_size: int, **kwargs) -> tuple[torch.Tensor, ...]:
        return tuple(ssm.initial_state(batch_size, **kwargs) for ssm in self.ssms())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, L, width]`` from the zero state (the training path)."""
        x = self.norm(z)
        if self.gating:
            mixed = self.query(x) * self.ssm(self.shift_ssm(self.key(x)) * self.value(x))
        else:
            mixed = self.ssm(self.value(x))
        return z + self.output(mixed)

    def scan(self, z: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """``z [B, L, width]`` from ``state`` -> (outputs, final state), in the SSMs' mode."""
        return self.advance(z, state, lambda ssm, u, registers: ssm.scan(u, registers))

    def forward_step(
        self, z_t: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One step ``z_t [B, width]``."""
        return self.advance(z_t, state, lambda ssm, u, registers: ssm.step_registers(u, registers))

    def advance(self, z: torch.Tensor, state: tuple[torch.Tensor, ...], run) -> tuple[torch.Tensor, tuple]:
        """The block on ``z`` (a chunk or one step) from ``state``; ``run(ssm, u, registers) -> (y, registers)``
        advances one SSM (its ``scan`` or ``step_registers``)."""
        x = self.norm(z)
        if self.gating:
            shifted, first = run(self.shift_ssm, self.key(x), state[0])
            mixed, second = run(self.ssm, shifted * self.value(x), state[1])
            return z + self.output(self.query(x) * mixed), (first, second)
        mixed, only = run(self.ssm, self.value(x), state[0])
        return z + self.output(mixed), (only,)


class LBCSSM(SequenceModel):
    """Stack of H3-style LBC-SSM blocks with input and output projections.

    ``hidden_size`` = width * ``state_size``: the state units of one SSM, i.e. width channels of N cells each (an
    H3 block with gating holds two such SSMs, so the streaming state of the model is ``2 * num_layers *
    hidden_size`` numbers per sequence). ``state_size`` must divide ``hidden_size``; the default 16 divides every
    usual size (32 -> width 2 ... 1024 -> width 64), and ``lbc_ssm`` defaults to hidden_size 512 = 32 x 16.

    Streaming state (:meth:`initial_state`): a tuple with one entry per block, each the block's tuple of SSM
    registers ``[batch, width, N]`` (see :class:`H3Block`), zeros at the start.

    Args:
        state_size: N, cells of each channel's shift register (the substrate length s).
        num_layers: H3 blocks.
        gating: H3's multiplicative q/k/v path (else the linear path y = SSM(v)).
        feedback: the learned, stable boundary feedback phi (False: H3's plain shift SSM).
        mode: ``"parallel"`` (chunked solve / FFT) or ``"recurrent"`` (step by step); both give the same outputs.
        precision: dtype of the feedback, kernel and FFTs: ``"auto"`` (float64 on the CPU, float32 on an
            accelerator), ``"float64"`` or ``"float32"`` (see :attr:`ShiftLBCSSM.compute_dtype`).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int,
        state_size: int = 16,
        num_layers: int = 2,
        gating: bool = True,
        feedback: bool = True,
        mode: str = "parallel",
        precision: str = "auto",
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        check_positive_int("state_size", state_size)
        if hidden_size % state_size:
            raise ConfigError(f"state_size={state_size} must divide hidden_size={hidden_size} (= width * N)")
        width = hidden_size // state_size
        check_positive_int("num_layers", num_layers)
        self.state_size = state_size
        self.embed = nn.Linear(input_size, width)
        blocks = (H3Block(width, state_size, gating, feedback, precision) for _ in range(num_layers))
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, output_size)
        self.set_mode(mode)

    def set_mode(self, mode: str) -> LBCSSM:
        """Switch every SSM to ``"parallel"`` or ``"recurrent"`` evaluation."""
        check_choice("mode", mode, MODES)
        for module in self.modules():
            if isinstance(module, ShiftLBCSSM):
                module.mode = mode
        return self

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        for block in self.blocks:
            z = block(z)
        return self.readout(self.norm(z))

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        kwargs = self.state_kwargs(device, dtype)
        batch_size = check_positive_int("batch_size", batch_size)
        return tuple(block.initial_state(batch_size, **kwargs) for block in self.blocks)

    def forward_step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return self.through_blocks(x_t, state, H3Block.forward_step)

    def scan_sequence(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Equal to the scan of :meth:`forward_step` (tested), but layer by layer over the whole chunk in the current
        mode: in ``"parallel"`` mode a long prompt is absorbed by FFT, and stepping goes on from the returned state."""
        if state is None:
            state = self.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
        return self.through_blocks(x, state, H3Block.scan)

    def through_blocks(self, x: torch.Tensor, state: State, advance) -> tuple[torch.Tensor, State]:
        """Embed, run every block with ``advance(block, z, block_state)`` (one step or a chunk), read out."""
        z, states = self.embed(x), []
        for block, block_state in zip(self.blocks, state, strict=True):
            z, block_state = advance(block, z, block_state)
            states.append(block_state)
        return self.readout(self.norm(z)), tuple(states)


@register_model
def lbc_ssm(input_size: int, output_size: int, hidden_size: int = 512, **kwargs) -> LBCSSM:
    """H3-style stack: shift SSM + learned stable linear boundary feedback (default width 32 x 16 cells, 2 blocks).

    ``hidden_size`` = width x ``state_size`` (default 512 = 32 x 16); ``state_size`` must divide it.
    """
    return LBCSSM(input_size, output_size, hidden_size, **kwargs)
