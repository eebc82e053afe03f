"""LBC state-space layer stack in the style of H3 (Fu et al., ICLR 2023): a shift SSM plus the TWM's linear
boundary condition.

Each channel c of an :class:`ShiftLBCSSM` is a one-wave TWM of N cells (s = N, d = 1):

    x(t) = S x(t-1) + e_1 ( u(t) + phi_c^T x(t-1) ),      y(t) = C_c^T x(t) + D_c u(t)

S shifts every cell one site towards the open end (the oldest value leaves), cell 1 is the start boundary; the
transition A = S + e_1 phi_c^T is shift + rank one (the LBC). With phi = 0 this is exactly H3's shift SSM (a
finite impulse response of length N); phi adds the boundary feedback that lets a wave recirculate, i.e. an
infinite impulse response. Two equivalent modes:

* ``recurrent``: the update above, step by step (for generation);
* ``parallel``: the impulse response a = 1 / (1 - sum_j phi_j z^j) (power series, computed by Newton iteration
  with FFT products), the kernel K = C * a and y = K * u + D u by FFT convolution, O(L log L).

An H3 block (pre-norm, residual): q, k, v = projections; k' = SSM_shift(k); y = q * SSM_2(k' * v); out = W_o y.
``gating=False`` keeps only the linear path y = SSM(v) (an LTI model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wavezoo.errors import ConfigError, check_choice, check_positive_int
from wavezoo.models.base import SequenceModel
from wavezoo.registry import register_model

MODES = ("parallel", "recurrent")


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def causal_product(a: torch.Tensor, b: torch.Tensor, length: int) -> torch.Tensor:
    """First ``length`` coefficients of the product of the series ``a`` and ``b`` (last dim), via rFFT."""
    size = _next_pow2(a.shape[-1] + b.shape[-1])
    out = torch.fft.irfft(torch.fft.rfft(a, size) * torch.fft.rfft(b, size), size)
    return out[..., :length]


def all_pole_response(phi: torch.Tensor, length: int) -> torch.Tensor:
    """a_0..a_{length-1} of 1 / (1 - sum_j phi_j z^j): the wave at the boundary cell after an impulse.

    Newton iteration for the power-series inverse, a <- a (2 - P a) mod z^{2m}, doubles the number of exact
    coefficients each round (``log2(length)`` rounds of FFT products).
    """
    poly = torch.cat([torch.ones_like(phi[..., :1]), -phi], dim=-1)  # P(z) = 1 - sum phi_j z^j
    inverse = torch.ones_like(phi[..., :1])
    exact = 1
    while exact < length:
        exact = min(2 * exact, length)
        residual = causal_product(poly[..., :exact], inverse, exact)
        correction = -residual
        correction[..., 0] = correction[..., 0] + 2
        inverse = causal_product(inverse, correction, exact)
    return inverse[..., :length]


class ShiftLBCSSM(nn.Module):
    """``channels`` independent shift SSMs of ``state_size`` cells with a learned linear boundary feedback."""

    def __init__(self, channels: int, state_size: int, feedback: bool = True) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.state_size = check_positive_int("state_size", state_size)
        self.readout = nn.Parameter(torch.randn(channels, state_size) / state_size**0.5)  # C
        self.skip = nn.Parameter(torch.randn(channels))  # D
        self.feedback = nn.Parameter(torch.zeros(channels, state_size)) if feedback else None  # phi
        self.mode = "parallel"

    def kernel(self, length: int) -> torch.Tensor:
        """K_c[k] = C_c^T A_c^k e_1 for k < ``length``: ``[channels, length]`` (float64 when there is feedback)."""
        if self.feedback is None:
            return F.pad(self.readout, (0, max(0, length - self.state_size)))[:, :length]
        wave = all_pole_response(self.feedback.double(), length)
        return causal_product(self.readout.double(), wave, length)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``u [B, L, channels] -> [B, L, channels]``."""
        return self.forward_parallel(u) if self.mode == "parallel" else self.forward_recurrent(u)

    def forward_parallel(self, u: torch.Tensor) -> torch.Tensor:
        length = u.shape[1]
        signal = u.transpose(1, 2)  # [B, C, L]
        # FFTs in float64: a float32 FFT convolution drifts from the recurrence by ~1e-5 over a few hundred steps.
        y = causal_product(signal.double(), self.kernel(length).double(), length).to(u.dtype)
        return (y + self.skip[:, None] * signal).transpose(1, 2)

    def forward_recurrent(self, u: torch.Tensor) -> torch.Tensor:
        state = u.new_zeros(u.shape[0], self.channels, self.state_size)
        outputs = []
        for t in range(u.shape[1]):
            state = self.step(state, u[:, t])
            outputs.append((state * self.readout).sum(-1) + self.skip * u[:, t])
        return torch.stack(outputs, dim=1)

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """x(t) = S x(t-1) + e_1 (u(t) + phi^T x(t-1)) for ``state [B, C, N]``, ``u [B, C]``."""
        boundary = u if self.feedback is None else u + (state * self.feedback).sum(-1)
        return torch.cat([boundary[..., None], state[..., :-1]], dim=-1)


class H3Block(nn.Module):
    """Pre-norm residual H3 block built on :class:`ShiftLBCSSM` (see the module docstring)."""

    def __init__(self, width: int, state_size: int, gating: bool = True, feedback: bool = True) -> None:
        super().__init__()
        self.gating = gating
        self.norm = nn.LayerNorm(width)
        self.value = nn.Linear(width, width)
        self.ssm = ShiftLBCSSM(width, state_size, feedback)
        if gating:
            self.query = nn.Linear(width, width)
            self.key = nn.Linear(width, width)
            self.shift_ssm = ShiftLBCSSM(width, state_size, feedback)
        self.output = nn.Linear(width, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.norm(z)
        if self.gating:
            mixed = self.query(x) * self.ssm(self.shift_ssm(self.key(x)) * self.value(x))
        else:
            mixed = self.ssm(self.value(x))
        return z + self.output(mixed)


class LBCSSM(SequenceModel):
    """Stack of H3-style LBC-SSM blocks with input and output projections.

    ``hidden_size`` = width * ``state_size``: the state units of one SSM (width channels of N cells).

    Args:
        state_size: N, cells of each channel's shift register (the substrate length s).
        num_layers: H3 blocks.
        gating: H3's multiplicative q/k/v path (else the linear path y = SSM(v)).
        feedback: the learned boundary feedback phi (False: H3's plain shift SSM).
        mode: ``"parallel"`` (FFT) or ``"recurrent"`` (step by step); both give the same outputs.
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
    ) -> None:
        super().__init__(input_size, output_size, hidden_size)
        check_positive_int("state_size", state_size)
        if hidden_size % state_size:
            raise ConfigError(f"state_size={state_size} must divide hidden_size={hidden_size} (= width * N)")
        width = hidden_size // state_size
        check_positive_int("num_layers", num_layers)
        self.embed = nn.Linear(input_size, width)
        self.blocks = nn.ModuleList(H3Block(width, state_size, gating, feedback) for _ in range(num_layers))
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


@register_model
def lbc_ssm(input_size: int, output_size: int, hidden_size: int = 512, **kwargs) -> LBCSSM:
    """H3-style stack: shift SSM + learned linear boundary feedback (default width 32 x 16 cells, 2 blocks)."""
    return LBCSSM(input_size, output_size, hidden_size, **kwargs)
