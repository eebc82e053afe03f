"""The wave ("variable memory") basis of a trained RNN, found by power iteration from its readout.

For an RNN h(t) = sigma(W_hh h(t-1) + W_uh u(t)), y(t) = W_r h(t) that stores a window of s states as waves, the
start-boundary column is what the readout reads, Psi_s = pinv(W_r) (N x d), and each step moves a column one site
down the lattice, Psi_{k} = W_hh Psi_{k+1}, so Psi_k = W_hh^{s-k} pinv(W_r) (each block normalised column-wise).
With Psi = [Psi_1 ... Psi_s] (N x sd) and its dual Psi^+ = pinv(Psi), the weights in the wave basis are
Psi^+ W_hh Psi, which for a wave solution is close to the TWM matrix M = shift + boundary block-row, and the
hidden state in the wave basis, Psi^+ h(t) reshaped to s x d, shows the inputs moving one column per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class WaveBasis:
    psi: torch.Tensor  # [N, s*d], columns of block k (1..s) = Psi_k, oldest column first
    dual: torch.Tensor  # [s*d, N] = pinv(psi)
    history: int
    dim: int

    def weights(self, w_hh: torch.Tensor) -> torch.Tensor:
        """W_hh seen in the wave basis, Psi^+ W_hh Psi (sd x sd)."""
        return self.dual @ w_hh.detach().double() @ self.psi

    def distance(self, w_hh: torch.Tensor, m: torch.Tensor) -> float:
        """||Psi^+ W_hh Psi - M||_F / ||M||_F."""
        return float(torch.linalg.norm(self.weights(w_hh) - m) / torch.linalg.norm(m))

    def lattice(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[..., N]`` as wave-lattice states ``[..., s, d]`` (column 1 = oldest)."""
        return (hidden.double() @ self.dual.T).reshape(*hidden.shape[:-1], self.history, self.dim)


def wave_basis(w_hh: torch.Tensor, w_r: torch.Tensor, history: int) -> WaveBasis:
    """Psi by power iteration from pinv(W_r): Psi_k = W_hh^{s-k} pinv(W_r), k = s..1, each block normalised."""
    w_hh, start = w_hh.detach().double(), torch.linalg.pinv(w_r.detach().double())
    blocks = [start / start.norm(dim=0, keepdim=True)]
    for _ in range(history - 1):
        nxt = w_hh @ blocks[0]
        blocks.insert(0, nxt / nxt.norm(dim=0, keepdim=True))
    psi = torch.cat(blocks, dim=1)
    return WaveBasis(psi, torch.linalg.pinv(psi), history, w_r.shape[0])
