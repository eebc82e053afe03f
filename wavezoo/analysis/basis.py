"""The wave ("variable memory") basis of a trained RNN, found by power iteration from its readout (paper sec. 4.4).

For an RNN h(t) = sigma(W_hh h(t-1) + W_uh u(t)), y(t) = W_r h(t) that stores a window of s states as waves, the
start-boundary column is what the readout reads, Psi_s = pinv(W_r) (N x d), and every step moves a column one site
towards the open end. With the TWM matrix M = shift + boundary block-row [Phi_1 ... Phi_s] this reads

    W_hh Psi_{k+1} = Psi_k + Psi_s Phi_{k+1},   so   Psi_k = W_hh Psi_{k+1} - Psi_s Phi_{k+1},  k = s-1, ..., 1.

The paper's power iteration is the case Phi = 0 (Psi_k = W_hh^{s-k} pinv(W_r), exact for T1, whose boundary reads
only the oldest column); passing the task's boundary row makes the lens exact for every LBC task on an orthogonal
embedding. Each block is column-normalised, as in the paper. With Psi = [Psi_1 ... Psi_s] (N x sd, oldest first) and
its dual Psi^+ = pinv(Psi), W_hh in the wave basis is Psi^+ W_hh Psi (close to M for a wave solution) and the
hidden state in the wave basis, Psi^+ h(t) reshaped to s x d, shows the inputs moving one column per step.

Compressed basis ("NNs learn a compressed basis"): a trained network keeps only the lattice cells the task reads
again. :func:`compressed_cells` drops, one at a time, every cell of M whose removal keeps the number of eigenvalues
with |lambda| > 0.8 (64 cells remain for T1, 36 for T2-T4); the lens then uses those columns of Psi only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wavezoo.analysis.spectra import count_above, eigenvalues


@dataclass
class WaveBasis:
    psi: torch.Tensor  # [N, n_cells]: the kept lattice cells, cell (k, j) = column k * d + j, oldest column first
    dual: torch.Tensor  # [n_cells, N] = pinv(psi)
    history: int
    dim: int
    cells: list[int]  # indices into the s*d lattice of the kept columns (all of them when uncompressed)

    def weights(self, w_hh: torch.Tensor) -> torch.Tensor:
        """W_hh seen in the wave basis, Psi^+ W_hh Psi (n_cells x n_cells)."""
        return self.dual @ w_hh.detach().double() @ self.psi

    def distance(self, w_hh: torch.Tensor, m: torch.Tensor) -> float:
        """||Psi^+ W_hh Psi - M_c||_F / ||M_c||_F with M_c = M restricted to the kept cells."""
        m_c = m.double()[self.cells][:, self.cells]
        return float(torch.linalg.norm(self.weights(w_hh) - m_c) / torch.linalg.norm(m_c))

    def structure(self, w_hh: torch.Tensor, m: torch.Tensor) -> dict[str, float]:
        """How much of Psi^+ W_hh Psi is M's pattern: Frobenius share on M's non-zero entries (shift blocks and
        boundary row), sign agreement there, and the largest entry off the pattern."""
        m_c = m.double()[self.cells][:, self.cells]
        w_c, support = self.weights(w_hh), m_c != 0
        return {
            "support_fraction": float(w_c[support].norm() / w_c.norm()),
            "sign_agreement": float((w_c[support].sign() == m_c[support].sign()).double().mean()),
            "max_off_support": float(w_c[~support].abs().max()) if (~support).any() else 0.0,
        }

    def lattice(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[..., N]`` as wave-lattice states ``[..., s, d]`` (column 1 = oldest; dropped cells 0)."""
        coords = hidden.double() @ self.dual.T
        full = coords.new_zeros(*hidden.shape[:-1], self.history * self.dim)
        full[..., self.cells] = coords
        return full.reshape(*hidden.shape[:-1], self.history, self.dim)


def boundary_blocks(m: torch.Tensor, history: int, dim: int) -> torch.Tensor:
    """The boundary block-row of an LBC matrix M as ``[s, d, d]`` (``[k - 1]`` = Phi_k, Phi_s: newest)."""
    row = m.double()[(history - 1) * dim :]
    return torch.stack([row[:, k * dim : (k + 1) * dim] for k in range(history)])


def compressed_cells(m: torch.Tensor, threshold: float = 0.8) -> list[int]:
    """Lattice cells of M that matter for its persistent spectrum (greedy removal, paper sec. 4.4 step 3)."""
    m = m.double()
    target = count_above(eigenvalues(m), threshold)
    keep = list(range(m.shape[0]))
    for cell in range(m.shape[0]):
        trial = [k for k in keep if k != cell]
        if count_above(eigenvalues(m[trial][:, trial]), threshold) == target:
            keep = trial
    return keep


def wave_basis(
    w_hh: torch.Tensor,
    w_r: torch.Tensor,
    history: int,
    boundary: torch.Tensor | None = None,
    cells: list[int] | None = None,
) -> WaveBasis:
    """Psi from the readout by (boundary-corrected) power iteration; ``cells`` keeps a compressed subset.

    Args:
        w_hh: ``[N, N]`` recurrent weights (the linearisation at 0 for a tanh RNN).
        w_r: ``[d, N]`` readout.
        history: s, the number of lattice columns.
        boundary: ``[s, d, d]`` boundary blocks Phi_k of the task's M (see :func:`boundary_blocks`); ``None``
            is the paper's plain power iteration.
        cells: lattice cells to keep (e.g. :func:`compressed_cells`); ``None`` keeps all s*d.
    """
    w_hh, w_r = w_hh.detach().double(), w_r.detach().double()
    dim = w_r.shape[0]
    start = torch.linalg.pinv(w_r)
    blocks = [start / start.norm(dim=0, keepdim=True)]
    for k in range(history - 2, -1, -1):  # Psi_k (0-based k) from Psi_{k+1}
        nxt = w_hh @ blocks[0]
        if boundary is not None:
            nxt = nxt - blocks[-1] @ boundary[k + 1].double()
        blocks.insert(0, nxt / nxt.norm(dim=0, keepdim=True).clamp_min(1e-300))
    psi = torch.cat(blocks, dim=1)
    cells = list(range(history * dim)) if cells is None else list(cells)
    psi = psi[:, cells]
    return WaveBasis(psi, torch.linalg.pinv(psi), history, dim, cells)
