"""Linear history-dependent systems (VAR(s)) and the paper's variable-binding operators.

A linear HDS of state dimension d and history length s is

    x(t+1) = sum_{k=1}^{s} phi_k x(t+1-k),        phi_k in R^{d x d}  (phi_k multiplies the state k steps back).

Here it is stored as ``phi`` of shape ``[s, d, d]`` with ``phi[k-1] = phi_k``. On the TWM substrate (columns
h_1..h_s, oldest first, h_s = x(t)) the boundary operators are Phi_i = phi_{s+1-i} and the whole update is the
block companion matrix (paper sec. 3.1, oldest block first)

    M = S_s (x) I_d + e_s (x) [Phi_1 ... Phi_s].
"""

from __future__ import annotations

import functools

import torch

from wavezoo.errors import ConfigError, check_positive_int

#: The paper's variable-binding tasks (d = s = 8), one ``(source_dim, lag, sign)`` triple per output dim j:
#: y_j(t) = sign * y_source(t - lag). Decoded from the authors' task ids (``paper_spec.md`` sec. 4.1).
VARIABLE_BINDING_TASKS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "T1": tuple((j, 8, 1) for j in range(8)),
    "T2": tuple((j, 8 - j, 1) for j in range(8)),
    "T3": ((4, 4, -1), (3, 5, 1), (2, 6, -1), (0, 8, -1), (1, 7, -1), (5, 3, -1), (7, 1, 1), (6, 2, -1)),
    "T4": ((5, 3, -1), (6, 2, 1), (0, 8, 1), (1, 7, 1), (2, 6, -1), (3, 5, 1), (4, 4, 1), (7, 1, -1)),
}


def signed_selection(spec, dim: int, history: int) -> torch.Tensor:
    """Lag operators ``phi [s, d, d]`` of a signed-selection task: y_j(t) = sign_j * y_{src_j}(t - lag_j).

    ``spec`` holds one ``(source_dim, lag, sign)`` per output dimension, with ``0 <= source_dim < dim``,
    ``1 <= lag <= history`` and ``sign`` in {-1, +1}.
    """
    check_positive_int("dim", dim)
    check_positive_int("history", history)
    if len(spec) != dim:
        raise ConfigError(f"operator has {len(spec)} rows; expected one (source_dim, lag, sign) row per dim={dim}")
    phi = torch.zeros(history, dim, dim, dtype=torch.float64)
    for j, row in enumerate(spec):
        if len(row) != 3:
            raise ConfigError(f"operator row {j}={list(row)!r} is invalid: expected [source_dim, lag, sign]")
        src, lag, sign = (int(v) for v in row)
        if not 0 <= src < dim:
            raise ConfigError(f"operator row {j}: source_dim={src} is invalid: expected 0 <= source_dim < {dim}")
        if not 1 <= lag <= history:
            raise ConfigError(f"operator row {j}: lag={lag} is invalid: expected 1 <= lag <= history={history}")
        if sign not in (-1, 1):
            raise ConfigError(f"operator row {j}: sign={sign} is invalid: expected -1 or +1")
        phi[lag - 1, j, src] = sign
    return phi


def generalized_fibonacci(dim: int, history: int, normalize: str = "spectral") -> torch.Tensor:
    """Lag operators of the generalized Fibonacci HDS x(t+1) = sum_{k=1}^{s} c_k x(t+1-k) (paper, Theorem 3.1).

    ``normalize`` keeps values bounded: ``"none"`` (c_k = 1: the plain sum, growing like rho^t with rho the
    s-nacci constant, the root of lambda^s = lambda^{s-1} + ... + 1), ``"spectral"`` (c_k = rho^{-k}: the same
    sequence divided by rho^t, so the dominant mode has modulus exactly 1), ``"mean"`` (c_k = 1/s: the window
    average, which converges).
    """
    check_positive_int("dim", dim)
    check_positive_int("history", history)
    lags = torch.arange(1, history + 1, dtype=torch.float64)
    if normalize == "none":
        coeffs = torch.ones(history, dtype=torch.float64)
    elif normalize == "mean":
        coeffs = torch.full((history,), 1.0 / history, dtype=torch.float64)
    elif normalize == "spectral":
        rho = spectral_radius(torch.ones(history, 1, 1, dtype=torch.float64))
        coeffs = rho**-lags
    else:
        raise ConfigError(f"normalize={normalize!r} is invalid: expected one of 'spectral', 'mean', 'none'")
    return coeffs[:, None, None] * torch.eye(dim, dtype=torch.float64)


def random_stable_var(dim: int, history: int, radius: float = 0.95, seed: int = 0) -> torch.Tensor:
    """Random Gaussian VAR(s) operators rescaled so the companion matrix has spectral radius ``radius``."""
    check_positive_int("dim", dim)
    check_positive_int("history", history)
    if not radius > 0:
        raise ConfigError(f"radius={radius!r} is invalid: expected a number > 0")
    gen = torch.Generator().manual_seed(seed)
    phi = torch.randn(history, dim, dim, generator=gen, dtype=torch.float64) / (dim * history) ** 0.5
    # Scaling phi_k by c^k scales every companion eigenvalue by c.
    rho = spectral_radius(phi)
    powers = (radius / rho) ** torch.arange(1, history + 1, dtype=torch.float64)
    return phi * powers[:, None, None]


def companion_matrix(phi: torch.Tensor) -> torch.Tensor:
    """The (sd x sd) LBC-TWM matrix M = S_s (x) I_d + e_s (x) [Phi_1 ... Phi_s] (oldest block first)."""
    history, dim, _ = phi.shape
    size = history * dim
    m = torch.zeros(size, size, dtype=phi.dtype)
    m[: size - dim, dim:] = torch.eye(size - dim, dtype=phi.dtype)
    m[size - dim :] = torch.cat(list(phi.flip(0)), dim=1)  # Phi_i = phi_{s+1-i}
    return m


def spectral_radius(phi: torch.Tensor) -> float:
    return float(torch.linalg.eigvals(companion_matrix(phi)).abs().max())


@functools.lru_cache(maxsize=32)
def _rollout_rows(phi_key: bytes, shape: tuple[int, int, int], horizon: int) -> torch.Tensor:
    phi = torch.frombuffer(bytearray(phi_key), dtype=torch.float64).reshape(shape)
    m = companion_matrix(phi)
    dim = shape[1]
    rows = [m[-dim:]]  # last block-row of M^k gives x(t+k) from the window at t
    for _ in range(horizon - 1):
        rows.append(rows[-1] @ m)
    return torch.stack(rows)  # [horizon, d, s*d]


def linear_rollout(phi: torch.Tensor, window: torch.Tensor, horizon: int) -> torch.Tensor:
    """Roll a linear HDS forward ``horizon`` steps from ``window [batch, s, d]`` (oldest first).

    Vectorised over time: x(t+k) = (last block-row of M^k) vec(window), with the rows of M^k cached per operator
    and horizon, so one batched matmul produces the whole ``[batch, horizon, d]`` rollout.
    """
    phi = phi.detach().to(torch.float64).contiguous()
    rows = _rollout_rows(phi.numpy().tobytes(), tuple(phi.shape), horizon)
    flat = window.reshape(window.shape[0], -1).to(torch.float64)
    return torch.einsum("hdk,bk->bhd", rows, flat).to(window.dtype)
