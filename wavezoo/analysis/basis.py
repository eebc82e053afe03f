"""The wave ("variable memory") basis of a trained RNN, found by power iteration from its readout (paper sec. 4.4).

For an RNN h(t) = sigma(W_hh h(t-1) + W_uh u(t)), y(t) = W_r h(t) that stores a window of s states as waves, the
start-boundary column is what the readout reads, Psi_s = pinv(W_r) (N x d), and every step moves a column one site
towards the open end. The paper's method (:func:`wave_basis`, the default everywhere) is the plain power iteration

    Psi_k = W_hh Psi_{k+1} / column norms,   k = s-1, ..., 1      (Psi_k ~ W_hh^{s-k} pinv(W_r)),

with Psi = [Psi_1 ... Psi_s] (N x sd, oldest column first), its dual Psi^+ = pinv(Psi), W_hh in the wave basis
Psi^+ W_hh Psi and the hidden state in the wave basis Psi^+ h(t). It uses W_hh and W_r only, no task knowledge.

What holds by construction. W_hh Psi_{k+1} = Psi_k D_k (D_k = the positive column norms) is how Psi is built, so
every column of Psi^+ W_hh Psi whose lattice cell (k+1, j) has its predecessor (k, j) in the basis is e_(k,j) times
a positive number, for ANY W_hh. Only the columns whose predecessor is not in the basis (cell column 1, and after
compression the oldest kept cell of each wave) close the loop: they are W_hh^s-type images expressed in the basis,
and hold the boundary row the network computes. :meth:`WaveBasis.loop_columns` names them; every score of
:mod:`wavezoo.analysis.claims` uses those columns only.

Task-free compression (:func:`free_cells`, what every claim uses first): a column of Psi that the columns
already kept (newest lattice column first, the readout's own) reproduce to within a relative residual
``tolerance`` adds no new direction to the network's memory and is dropped. The rule and its tolerance
(:data:`COMPRESSION_TOLERANCE`, fixed in advance; the claims re-run it at half and at double) use W_hh and W_r only:
the task's M enters only when the kept basis is compared with the exact TWM seen through the SAME cells.

Task-derived compression ("NNs learn a compressed basis", sec. 4.4 step 3): :func:`compress` drops, one at a time
(oldest cell first), every column of Psi whose removal keeps the number of eigenvalues of Psi_c^+ W Psi_c with
|lambda| > 0.8 at the target (the theoretical count: 64 for T1, 36 for T2-T4). Run on the exact TWM of a task it
gives the task's kept cells (:func:`task_cells`), which the lens then applies to the network under test. That
puts task knowledge inside the measurement: it is reported beside the task-free figure, labelled as such.

The earlier "boundary-corrected" iteration Psi_k = W_hh Psi_{k+1} - Psi_s Phi_{k+1} subtracts the task's own boundary
blocks, which makes s-1 of the s block columns equal to M's pattern for any W_hh. It is kept only as
:func:`task_informed_basis`, explicitly task-informed, and no claim uses it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from wavezoo.analysis.spectra import count_above, eigenvalues, task_operator


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

    def loop_columns(self) -> list[int]:
        """Positions (in ``cells``) of the columns of Psi^+ W_hh Psi NOT fixed by the power iteration: cells whose
        predecessor one lattice column older is not kept (every cell of lattice column 1, and the oldest kept cell
        of each compressed wave). All other columns are e_pred times a positive norm for any W_hh."""
        kept = set(self.cells)
        return [i for i, c in enumerate(self.cells) if c < self.dim or (c - self.dim) not in kept]

    def condition(self) -> float:
        """Condition number of Psi (large = an ill-conditioned, nearly dependent basis)."""
        return float(torch.linalg.cond(self.psi))

    def lattice(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[..., N]`` as wave-lattice states ``[..., s, d]`` (column 1 = oldest; dropped cells 0)."""
        coords = self.coordinates(hidden)
        full = coords.new_zeros(*hidden.shape[:-1], self.history * self.dim)
        full[..., self.cells] = coords
        return full.reshape(*hidden.shape[:-1], self.history, self.dim)

    def coordinates(self, hidden: torch.Tensor) -> torch.Tensor:
        """Psi^+ h for hidden states ``[..., N]``: ``[..., n_cells]``."""
        return hidden.detach().double() @ self.dual.T


def power_iteration(w_hh: torch.Tensor, w_r: torch.Tensor, history: int) -> torch.Tensor:
    """The paper's Psi = [Psi_1 ... Psi_s] (N x sd): Psi_s = pinv(W_r), Psi_k = W_hh Psi_{k+1}, columns normalised."""
    w_hh, w_r = w_hh.detach().double(), w_r.detach().double()
    start = torch.linalg.pinv(w_r)
    blocks = [start / start.norm(dim=0, keepdim=True).clamp_min(1e-300)]
    for _ in range(history - 1):
        nxt = w_hh @ blocks[0]
        blocks.insert(0, nxt / nxt.norm(dim=0, keepdim=True).clamp_min(1e-300))
    return torch.cat(blocks, dim=1)


#: Relative residual below which a power-iteration column counts as already spanned (task-free compression).
COMPRESSION_TOLERANCE = 0.1
#: The tolerances a task-free verdict is re-run at: halved and doubled (a verdict that changes is "fragile").
TOLERANCE_CHECKS = (0.05, 0.2)


def free_cells(psi: torch.Tensor, dim: int, tolerance: float = COMPRESSION_TOLERANCE) -> list[int]:
    """Task-free compression of Psi (N x sd): visit the cells newest lattice column first (the readout's
    pinv(W_r), then one power-iteration step older, ...) and keep a cell when its column's residual after projection
    on the kept ones, relative to its norm, exceeds ``tolerance`` (Gram-Schmidt with a threshold). No task quantity."""
    psi = psi.detach().double()
    order = [c for k in range(psi.shape[1] // dim - 1, -1, -1) for c in range(k * dim, (k + 1) * dim)]
    kept: list[int] = []
    q = psi.new_zeros(psi.shape[0], 0)
    for cell in order:
        column = psi[:, cell]
        residual = column - q @ (q.T @ column)
        if residual.norm() > tolerance * column.norm().clamp_min(1e-300):
            kept.append(cell)
            q = torch.cat([q, (residual / residual.norm())[:, None]], dim=1)
    return sorted(kept)


def task_free_basis(
    w_hh: torch.Tensor, w_r: torch.Tensor, history: int, tolerance: float = COMPRESSION_TOLERANCE
) -> WaveBasis:
    """The paper's power-iteration basis compressed by :func:`free_cells` (built from the network alone)."""
    psi = power_iteration(w_hh, w_r, history)
    return wave_basis(w_hh, w_r, history, free_cells(psi, w_r.shape[0], tolerance), psi=psi)


def wave_basis(
    w_hh: torch.Tensor,
    w_r: torch.Tensor,
    history: int,
    cells: list[int] | None = None,
    psi: torch.Tensor | None = None,
) -> WaveBasis:
    """The paper's wave basis (plain power iteration from pinv(W_r)); ``cells`` keeps a compressed subset; ``psi``
    is the power iteration when it was computed already."""
    psi = power_iteration(w_hh, w_r, history) if psi is None else psi
    cells = list(range(psi.shape[1])) if cells is None else list(cells)
    psi = psi[:, cells]
    return WaveBasis(psi, torch.linalg.pinv(psi), history, w_r.shape[0], cells)


def compress(w_hh: torch.Tensor, psi: torch.Tensor, target: int, threshold: float = 0.8) -> list[int]:
    """Cells of ``psi`` to keep: drop each column (oldest first) whose removal keeps ``target`` eigenvalues of
    Psi_c^+ W_hh Psi_c above ``threshold`` in modulus (paper sec. 4.4 step 3)."""
    w_hh = w_hh.detach().double()
    keep = list(range(psi.shape[1]))
    for cell in range(psi.shape[1]):
        trial = [k for k in keep if k != cell]
        sub = psi[:, trial]
        if count_above(eigenvalues(torch.linalg.pinv(sub) @ w_hh @ sub), threshold) >= target:
            keep = trial
    return keep


def twm_readout(history: int, dim: int) -> torch.Tensor:
    """``[d, sd]``: the readout of the exact TWM, which reads the start-boundary column (the newest)."""
    w_r = torch.zeros(dim, history * dim, dtype=torch.float64)
    w_r[:, (history - 1) * dim :] = torch.eye(dim, dtype=torch.float64)
    return w_r


@functools.lru_cache(maxsize=16)
def _task_cells(task: str, history: int, dim: int, threshold: float) -> tuple[int, ...]:
    m = task_operator(task, dim=dim, history=history)
    psi = power_iteration(m, twm_readout(history, dim), history)
    return tuple(compress(m, psi, count_above(eigenvalues(m), threshold), threshold))


def task_cells(task: str, history: int = 8, dim: int = 8, threshold: float = 0.8) -> list[int]:
    """The compressed cells of ``task``: :func:`compress` on the exact TWM (M, reading column s) through the same
    power iteration (64 cells for T1, 36 for T2-T4)."""
    return list(_task_cells(task, history, dim, threshold))


def compressed_cells(m: torch.Tensor, threshold: float = 0.8) -> list[int]:
    """Lattice cells of M that matter for its persistent spectrum (greedy removal on M's own lattice basis)."""
    m = m.double()
    target = count_above(eigenvalues(m), threshold)
    keep = list(range(m.shape[0]))
    for cell in range(m.shape[0]):
        trial = [k for k in keep if k != cell]
        if count_above(eigenvalues(m[trial][:, trial]), threshold) == target:
            keep = trial
    return keep


def boundary_blocks(m: torch.Tensor, history: int, dim: int) -> torch.Tensor:
    """The boundary block-row of an LBC matrix M as ``[s, d, d]`` (``[k - 1]`` = Phi_k, Phi_s: newest)."""
    row = m.double()[(history - 1) * dim :]
    return torch.stack([row[:, k * dim : (k + 1) * dim] for k in range(history)])


def task_informed_basis(
    w_hh: torch.Tensor, w_r: torch.Tensor, history: int, boundary: torch.Tensor, cells: list[int] | None = None
) -> WaveBasis:
    """TASK-INFORMED variant (not the paper's, used by no claim): Psi_k = W_hh Psi_{k+1} - Psi_s Phi_{k+1} with the
    task's boundary blocks ``boundary`` ``[s, d, d]``. It is exact on an ideal TWM of that task, but s-1 of the s
    block columns of Psi^+ W_hh Psi then equal M's pattern for ANY W_hh (7 of 8 on a random matrix), so it cannot
    serve as evidence that a network learned M."""
    w_hh, w_r = w_hh.detach().double(), w_r.detach().double()
    start = torch.linalg.pinv(w_r)
    blocks = [start / start.norm(dim=0, keepdim=True)]
    for k in range(history - 2, -1, -1):
        nxt = w_hh @ blocks[0] - blocks[-1] @ boundary[k + 1].double()
        blocks.insert(0, nxt / nxt.norm(dim=0, keepdim=True).clamp_min(1e-300))
    psi = torch.cat(blocks, dim=1)
    cells = list(range(history * w_r.shape[0])) if cells is None else list(cells)
    psi = psi[:, cells]
    return WaveBasis(psi, torch.linalg.pinv(psi), history, w_r.shape[0], cells)
