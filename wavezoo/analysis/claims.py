"""Claims C6-C9 on one network, each figure beside its controls, and a verdict that can say no.

Every figure is computed by the same code for the network under test and for its controls:

* ``untrained_seed{0,1,2}``: the same architecture freshly initialised (3 seeds);
* ``random_radius``: W_hh replaced by a Gaussian matrix scaled to the trained W_hh's spectral radius (the input and
  readout weights are the network's own);
* ``mismatch_T?``: the network scored against another task's TWM (C6-C8; C9 does not depend on the task).

A claim holds for a network only when its figure beats every control by the margin in :data:`MARGINS`.

The figures (higher is better except C6):

* C6 spectral error (rad, paper Table 1) of W_hh against the task's M; lower is better.
* C7 loop-closure cosine: W_hh in the paper's wave basis (plain power iteration from pinv(W_r), compressed to the
  task's cells, :mod:`wavezoo.analysis.basis`), restricted to the columns that the construction does NOT fix (the
  loop-closing columns, :meth:`~wavezoo.analysis.basis.WaveBasis.loop_columns`), compared by cosine with the same
  columns of the exact TWM of the task seen through the same lens (for T1 that is the boundary row Phi_1; for
  T2-T4 the plain power iteration of M gives the task's VAR coefficients in companion form). The shift blocks and
  every other column are excluded: they equal the pattern for any W_hh.
* C8 activity: the hidden states of a rollout on test inputs projected on the same basis, Psi^+ h(t), against the
  true window contents of the task (the substrate at time t holds the last s states: the inputs during the input
  phase, then the outputs y(t-s+1..t)) seen through the same lens; mean over the kept cells of the Pearson
  correlation over sequences and time. Extra control: ``shuffled_time`` (the window at permuted times).
* C9 Jacobian: ||d h(t) / d u(t-k)||_F by lag k (mean over sequences; h = the whole recurrent state), t = the
  last input step; the figure is the per-step factor of the norm over lags 1..K, (J_K / J_1)^(1/(K-1))
  (1 = no decay). It does not depend on the loss, so a network that failed to learn is not "flat" by default.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from wavezoo.analysis.basis import WaveBasis, power_iteration, task_cells, twm_readout, wave_basis
from wavezoo.analysis.linearize import linearize
from wavezoo.analysis.spectra import count_above, eigenvalues, spectral_error, task_operator
from wavezoo.core.operators import VARIABLE_BINDING_TASKS
from wavezoo.errors import ConfigError
from wavezoo.registry import build_model

TASKS = tuple(VARIABLE_BINDING_TASKS)
UNTRAINED_SEEDS = (0, 1, 2)
RANDOM_SEED = 1234
#: How much the trained figure must beat EVERY control by (chosen from the measurements in docs/REPRODUCTION.md):
#: C6 in radians (lower is better), C7 and C8 in correlation units, C9 in per-step factor units.
MARGINS = {"C6": 0.1, "C7": 0.25, "C8": 0.25, "C9": 0.05}
LOWER_IS_BETTER = {"C6"}


def _check_task(task: str) -> None:
    if task not in VARIABLE_BINDING_TASKS:
        raise ConfigError(f"task={task!r} is unknown: the wave lens compares with the presets {', '.join(TASKS)}")


def verdict(claim: str, score: float, controls: dict[str, float]) -> dict[str, Any]:
    """``{"holds", "score", "controls", "margin", "best_control"}``: holds iff the score beats every control by
    :data:`MARGINS` [claim] (NaN controls are ignored)."""
    margin = MARGINS[claim]
    values = [v for v in controls.values() if v == v]
    lower = claim in LOWER_IS_BETTER
    best = (min(values) if lower else max(values)) if values else float("nan")
    holds = bool(values) and score == score and (score + margin <= best if lower else score >= best + margin)
    return {"holds": bool(holds), "score": float(score), "controls": controls, "margin": margin, "best_control": best}


# -- C7 ------------------------------------------------------------------------------------------------------------
def reference_lens(task: str, history: int = 8, dim: int = 8) -> tuple[WaveBasis, torch.Tensor]:
    """The exact TWM of ``task`` seen through the lens: (its compressed plain basis, M)."""
    m = task_operator(task, dim=dim, history=history)
    return wave_basis(m, twm_readout(history, dim), history, task_cells(task, history, dim)), m


def loop_closure_score(w_hh: torch.Tensor, w_r: torch.Tensor, task: str, history: int = 8) -> float:
    """C7: cosine between the loop-closing columns of Psi^+ W_hh Psi (plain basis, the task's cells) and those of
    the exact TWM through the same lens. The columns fixed by construction are excluded."""
    ref, m = reference_lens(task, history, w_r.shape[0])
    basis = wave_basis(w_hh, w_r, history, ref.cells)
    loop = ref.loop_columns()
    a, b = basis.weights(w_hh)[:, loop].flatten(), ref.weights(m)[:, loop].flatten()
    if not torch.isfinite(a).all():
        return float("nan")
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


# -- C8 ------------------------------------------------------------------------------------------------------------
def task_window(inputs: torch.Tensor, task: str, history: int = 8) -> torch.Tensor:
    """``[B, T, s*d]``: the substrate of the exact TWM of ``task`` driven by ``inputs`` ``[B, T, d]`` (the first
    ``history`` steps write the inputs into the start column, later steps run M): column s at time t > s is the
    task's target y(t), column 1 the state s-1 steps back."""
    dim = inputs.shape[-1]
    m = task_operator(task, dim=dim, history=history)
    x = inputs.detach().double()
    state = x.new_zeros(x.shape[0], history * dim)
    out = []
    for t in range(x.shape[1]):
        state = torch.cat([state[:, dim:], x[:, t]], dim=1) if t < history else state @ m.T
        out.append(state)
    return torch.stack(out, dim=1)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over the last axis of the Pearson correlation over all other axes (constant columns skipped)."""
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    a, b = a - a.mean(0), b - b.mean(0)
    norm = a.norm(dim=0) * b.norm(dim=0)
    ok = (norm > 1e-12) & torch.isfinite(norm)
    if not ok.any():
        return float("nan")
    return float(((a * b).sum(0)[ok] / norm[ok]).mean())


def activity_score(
    hidden: torch.Tensor,
    w_hh: torch.Tensor,
    w_r: torch.Tensor,
    inputs: torch.Tensor,
    task: str,
    history: int = 8,
    permutation: torch.Tensor | None = None,
) -> float:
    """C8: correlation between Psi^+ h(t) (the network's plain basis on the task's cells) and the true window of
    ``task`` through the exact TWM's lens, per cell over sequences and time; ``permutation`` shuffles the time
    axis of the true window (the shuffled-time control)."""
    ref, _ = reference_lens(task, history, w_r.shape[0])
    basis = wave_basis(w_hh, w_r, history, ref.cells)
    truth = ref.coordinates(task_window(inputs, task, history))
    if permutation is not None:
        truth = truth[:, permutation]
    return _correlation(basis.coordinates(hidden), truth)


# -- C9 ------------------------------------------------------------------------------------------------------------
def _dtype(net: torch.nn.Module) -> torch.dtype:
    return next(iter(net.parameters()), torch.empty(0)).dtype


def _flat_state(state, batch: int) -> torch.Tensor:
    """The floating-point tensors of a (nested) state as ``[batch, size]`` (``[layers, batch, N]`` RNN states too)."""
    if isinstance(state, torch.Tensor):
        if not state.is_floating_point():
            return state.new_zeros(batch, 0, dtype=torch.float32)
        if state.dim() >= 2 and state.shape[0] != batch and state.shape[1] == batch:
            state = state.transpose(0, 1)
        return state.reshape(batch, -1)
    return torch.cat([_flat_state(s, batch) for s in state], dim=1)


def jacobian_by_lag(net: torch.nn.Module, inputs: torch.Tensor, step: int | None = None) -> dict[int, float]:
    """``{lag k: mean over sequences of ||d h(t) / d u(t-k)||_F}`` for k = 0..t-1, with h(t) the model's whole
    recurrent state after ``step`` = t inputs (default: all of ``inputs``), through the public ``scan`` API.

    Exact: each sequence is replicated once per state unit and each replica back-propagates its own unit."""
    step = inputs.shape[1] if step is None else step
    x = inputs[:, :step].detach().to(_dtype(net))
    with torch.no_grad():
        size = _flat_state(net.scan(x[:1])[1], 1).shape[1]
    x = x[: max(1, min(x.shape[0], 16384 // size))]
    batch = x.shape[0]
    replicas = x.repeat_interleave(size, dim=0).requires_grad_(True)
    with torch.enable_grad():
        h = _flat_state(net.scan(replicas)[1], batch * size).reshape(batch, size, size)
        (grad,) = torch.autograd.grad(h.diagonal(dim1=1, dim2=2).sum(), replicas)
    squares = grad.double().reshape(batch, size, step, -1).pow(2).sum((1, 3))  # [batch, time]
    norms = squares.sqrt().mean(0).flip(0)  # index = lag
    return {lag: float(norms[lag]) for lag in range(step)}


def decay_factor(profile: dict[int, float], first: int = 1, last: int | None = None) -> float:
    """Per-step factor of the norm from lag ``first`` to lag ``last`` (default: the largest): (J_last /
    J_first)^(1 / (last - first)); 1 = flat, 0.5 = halves per step of lag."""
    last = max(profile) if last is None else last
    a, b = max(profile[first], 1e-300), max(profile[last], 1e-300)
    return float((b / a) ** (1.0 / max(last - first, 1)))


# -- controls ------------------------------------------------------------------------------------------------------
def random_recurrent(w_hh: torch.Tensor, seed: int = RANDOM_SEED) -> torch.Tensor:
    """A Gaussian matrix with the spectral radius of ``w_hh`` (same shape)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(w_hh.shape, generator=g, dtype=torch.float64)
    radius = eigenvalues(w_hh).abs().max()
    return w * radius / eigenvalues(w).abs().max()


def with_recurrent(net: torch.nn.Module, w_hh: torch.Tensor) -> torch.nn.Module | None:
    """A copy of a one-layer Elman ``net`` whose W_hh is ``w_hh`` (``None`` for other families)."""
    from wavezoo.models.rnn import RecurrentBaseline

    if not (isinstance(net, RecurrentBaseline) and net.cell == "rnn"):
        return None
    other = copy.deepcopy(net)
    with torch.no_grad():
        other.rnn.weight_hh_l0.copy_(w_hh.to(other.rnn.weight_hh_l0.dtype))
    return other


def hidden_trajectory(net: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``[B, T, N]``: the recurrent state after every step (``hidden_states`` where the family has it)."""
    with torch.no_grad():
        if getattr(net, "hidden_states", None) is not None:
            return net.hidden_states(inputs.to(_dtype(net))).double()
        state, out = net.initial_state(inputs.shape[0]), []
        for t in range(inputs.shape[1]):
            _, state = net.step(inputs[:, t].to(_dtype(net)), state)
            out.append(_flat_state(state, inputs.shape[0]))
        return torch.stack(out, dim=1).double()


def fresh_copy(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same architecture at initialisation (seeded), from the model's ``wavezoo_config``."""

    config = getattr(net, "wavezoo_config", None)
    if config is None:
        raise ConfigError(f"{type(net).__name__} was not built by wavezoo.create_model: no untrained control")
    torch.manual_seed(seed)
    return build_model(config["family"], **config["sizes"], **config["model_kwargs"]).eval()


# -- all claims ----------------------------------------------------------------------------------------------------
def evaluate_claims(
    net: torch.nn.Module,
    task: str,
    inputs: torch.Tensor,
    history: int = 8,
    make_untrained: Callable[[int], torch.nn.Module] | None = None,
) -> dict[str, Any]:
    """C6-C9 of ``net`` on ``task`` with their controls and verdicts; ``inputs`` ``[B, T, d]`` are test inputs of
    the task (input phase = the first ``history`` steps). Returns the JSON-ready report (see ``wavezoo analyze``)."""
    _check_task(task)
    make_untrained = make_untrained or (lambda seed: fresh_copy(net, seed))
    net.eval()
    lin = linearize(net)
    w_hh, w_r = lin.w_hh.detach().double(), lin.w_r.detach().double()
    w_rand = random_recurrent(w_hh)
    random_net = with_recurrent(net, w_rand)
    untrained = {f"untrained_seed{s}": make_untrained(s) for s in UNTRAINED_SEEDS}
    lins = {name: linearize(model) for name, model in untrained.items()}
    others = [t for t in TASKS if t != task]
    m = task_operator(task, dim=w_r.shape[0], history=history)
    learned = eigenvalues(w_hh)

    def rollout(model):
        return hidden_trajectory(model, inputs)

    def rand_rollout():
        if random_net is not None:
            return rollout(random_net)
        h, out = inputs.new_zeros(inputs.shape[0], w_hh.shape[0]).double(), []
        for t in range(inputs.shape[1]):
            h = h @ w_rand.T + inputs[:, t].double() @ lin.w_uh.detach().double().T
            out.append(h)
        return torch.stack(out, dim=1)

    c6 = {name: spectral_error(m, ln.w_hh) for name, ln in lins.items()}
    c6 |= {"random_radius": spectral_error(m, w_rand)}
    c6 |= {f"mismatch_{t}": spectral_error(task_operator(t, dim=w_r.shape[0], history=history), w_hh) for t in others}

    c7 = {name: loop_closure_score(ln.w_hh, ln.w_r, task, history) for name, ln in lins.items()}
    c7 |= {"random_radius": loop_closure_score(w_rand, w_r, task, history)}
    c7 |= {f"mismatch_{t}": loop_closure_score(w_hh, w_r, t, history) for t in others}

    hidden = rollout(net)
    perm = torch.randperm(inputs.shape[1], generator=torch.Generator().manual_seed(RANDOM_SEED))
    c8 = {name: activity_score(rollout(model), lins[name].w_hh, lins[name].w_r, inputs, task, history)
          for name, model in untrained.items()}  # fmt: skip
    c8 |= {"random_radius": activity_score(rand_rollout(), w_rand, w_r, inputs, task, history)}
    c8 |= {f"mismatch_{t}": activity_score(hidden, w_hh, w_r, inputs, t, history) for t in others}
    c8 |= {"shuffled_time": activity_score(hidden, w_hh, w_r, inputs, task, history, perm)}

    probe = inputs[:, :history]
    profile = jacobian_by_lag(net, probe)
    profiles = {name: jacobian_by_lag(model, probe) for name, model in untrained.items()}
    if random_net is not None:
        profiles["random_radius"] = jacobian_by_lag(random_net, probe)
    c9 = {name: decay_factor(p) for name, p in profiles.items()}

    return {
        "task": task,
        "hidden_size": int(w_hh.shape[0]),
        "spectral_radius": float(learned.abs().max()),
        "spectral_error": spectral_error(m, w_hh),
        "large_eigenvalues": count_above(learned, 0.8),
        "theory_large_eigenvalues": count_above(eigenvalues(m), 0.8),
        "wave_basis_cells": len(task_cells(task, history, w_r.shape[0])),
        "wave_basis_condition": wave_basis(w_hh, w_r, history, task_cells(task, history, w_r.shape[0])).condition(),
        "claims": {
            "C6": verdict("C6", spectral_error(m, w_hh), c6),
            "C7": verdict("C7", loop_closure_score(w_hh, w_r, task, history), c7),
            "C8": verdict("C8", activity_score(hidden, w_hh, w_r, inputs, task, history), c8),
            "C9": verdict("C9", decay_factor(profile), c9),
        },
        "jacobian_by_lag": {"trained": profile} | profiles,
    }


__all__ = [
    "MARGINS",
    "activity_score",
    "decay_factor",
    "evaluate_claims",
    "jacobian_by_lag",
    "loop_closure_score",
    "power_iteration",
    "random_recurrent",
    "task_window",
    "verdict",
]
