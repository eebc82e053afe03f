"""Algebra of the linear boundary condition (paper sec. 3.1): the TWM as one matrix, and as an RNN in any basis.

With f(h) = sum_i Phi_i h_i the vectorised substrate H = [h_1; ...; h_s] (oldest first) evolves linearly,

    H(t+1) = M H(t) + e_s (x) u(t),       M = S_s (x) I_d + e_s (x) [Phi_1 ... Phi_s],

a shift plus a block-row of rank <= d (the structure of H3's shift SSM). Its spectrum is the set of roots of
det(lambda^s I - sum_i Phi_i lambda^{i-1}). In any basis Psi (N x sd, full column rank) the same system is the
linear Elman RNN

    h(t) = W_hh h(t-1) + W_uh u(t),   y(t) = W_r h(t),   W_hh = Psi M Psi^+,  W_uh = Psi_s,  W_r = (Psi^+)_s,

with Psi_s the d columns of Psi for the start-boundary column and (Psi^+)_s the matching rows of Psi^+.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wavezoo.core.operators import companion_matrix
from wavezoo.errors import ConfigError


def lbc_matrix(phi: torch.Tensor) -> torch.Tensor:
    """M for boundary operators ``phi[i - 1] = Phi_i`` (``[s, d, d]``, Phi_s multiplies the newest column)."""
    return companion_matrix(phi.flip(0))  # companion_matrix takes lag order (newest first)


def shift_matrix(history: int, dim: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """S_s (x) I_d: the interior of the substrate, every wave moved one site towards the open end."""
    return torch.kron(torch.diag(torch.ones(history - 1, dtype=dtype), 1), torch.eye(dim, dtype=dtype))


def characteristic_value(phi: torch.Tensor, lam: complex) -> complex:
    """det(lambda^s I - sum_i Phi_i lambda^{i-1}): zero exactly at the eigenvalues of M."""
    history, dim, _ = phi.shape
    lam_t = torch.tensor(lam, dtype=torch.complex128)
    powers = lam_t ** torch.arange(history, dtype=torch.float64)
    poly = lam_t**history * torch.eye(dim, dtype=torch.complex128) - torch.einsum(
        "i,ijk->jk", powers, phi.to(torch.complex128)
    )
    return complex(torch.linalg.det(poly))


@dataclass
class RNNWeights:
    """Weights of a linear (or linearised tanh) Elman RNN: h(t) = W_hh h(t-1) + W_uh u(t), y(t) = W_r h(t)."""

    w_hh: torch.Tensor
    w_uh: torch.Tensor
    w_r: torch.Tensor

    def run(self, inputs: torch.Tensor, nonlinearity: str = "linear") -> torch.Tensor:
        """Outputs ``[B, T, d]`` for ``inputs [B, T, d]`` from h(0) = 0 (``nonlinearity``: linear or tanh), step by
        step: the reference the algebra's claims are checked against (C3), never a training path (a trained linear
        boundary runs through :mod:`wavezoo.core.linear_boundary`)."""
        act = torch.tanh if nonlinearity == "tanh" else (lambda z: z)
        h = inputs.new_zeros(inputs.shape[0], self.w_hh.shape[0])
        outputs = []
        for t in range(inputs.shape[1]):
            h = act(h @ self.w_hh.T + inputs[:, t] @ self.w_uh.T)
            outputs.append(h @ self.w_r.T)
        return torch.stack(outputs, dim=1)


def embed_in_basis(phi: torch.Tensor, psi: torch.Tensor) -> RNNWeights:
    """The LBC-TWM of ``phi`` written as RNN weights in the basis ``psi`` (N x sd, full column rank)."""
    history, dim, _ = phi.shape
    size = history * dim
    if psi.dim() != 2 or psi.shape[1] != size or psi.shape[0] < size:
        raise ConfigError(f"psi has shape {tuple(psi.shape)}; expected [N, s*d={size}] with N >= {size}")
    psi_pinv = torch.linalg.pinv(psi)
    if not torch.allclose(psi_pinv @ psi, torch.eye(size, dtype=psi.dtype), atol=1e-6):
        raise ConfigError("psi must have full column rank (its columns are the wave basis vectors)")
    return RNNWeights(
        w_hh=psi @ lbc_matrix(phi).to(psi.dtype) @ psi_pinv,
        w_uh=psi[:, size - dim :],
        w_r=psi_pinv[size - dim :],
    )
