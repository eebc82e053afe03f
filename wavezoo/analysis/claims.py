"""Claims C6-C9 on one network, each figure beside controls that break function, and a verdict that can say no.

One pass: every network (the one under test and each control) is linearised ONCE into a :class:`View` (W_hh, W_uh,
W_r, eigenvalues, the paper's power iteration Psi, a rollout on test inputs, the Jacobian by lag and the task
accuracy); every figure below is read off views, so a control costs one analysis.

Controls (:mod:`wavezoo.analysis.controls`), each with its own task accuracy:

* ``untrained_seed{0,1,2}``: the same architecture freshly initialised;
* ``gaussian``: W_hh -> a Gaussian matrix of the same spectral radius;
* ``scramble``: W_hh -> Q W_hh Q^T (the same spectrum; W_uh, W_r kept): the spectrum-matched control;
* ``rotated``: Q on W_uh, W_hh, W_r: the same linearisation in another basis, a different tanh network;
* ``mismatch_T?``: the network scored against another task's TWM (and its accuracy on that task; C6-C8);
* ``shuffled_time`` (C8): the true window at permuted times (no accuracy: it is not a network).

Verdict (:func:`verdict`): a claim **holds** only if the network solves its task (accuracy >= :data:`SOLVED`,
the paper's threshold for analysing a model) and its figure beats EVERY control that fails the task by the
margin in :data:`MARGINS`; otherwise it is "not separable from <controls>" (or "does not hold" when the network
itself fails). A control that solves the task is reported but is no counter-example. Each control entry also says
whether the claim would hold with that control as the network under test (``holds_as_subject``).

The figures (higher is better except C6):

* C6 spectral error (rad, paper Table 1) of eig(W_hh) against eig(M); lower is better. Basis invariant: the
  scramble and rotated controls have exactly the trained spectrum.
* C7 loop-closure cosine: W_hh in the wave basis, restricted to the columns the power iteration does NOT fix
  (:meth:`~wavezoo.analysis.basis.WaveBasis.loop_columns`), against the same columns of the exact TWM of the task
  seen through the same lens (same cells). The basis is TASK-FREE: the paper's power iteration from pinv(W_r),
  compressed by :func:`~wavezoo.analysis.basis.free_cells` (no task quantity); M enters only in the comparison. The
  verdict is re-run with the compression tolerance halved and doubled and says "fragile" if it changes.
  ``C7_task_cells`` is the task-derived variant (cells chosen on the task's M), reported beside it.
* C8 activity: Psi^+ h(t) from a rollout on test inputs against the true window of the task (the substrate holds the
  last s states) through the same lens; mean over the kept cells of the Pearson correlation over sequences and time.
  Same task-free basis, tolerance checks and task-derived variant (``C8_task_cells``) as C7.
* C9 Jacobian: ||d h(t) / d u(t-k)||_F by lag k (mean over sequences), t = the last input step; the figure is the
  per-step factor over lags 1..K, (J_K / J_1)^(1/(K-1)) (1 = no decay). It does not depend on the task (so it has
  no mismatch control); the spectrum-matched control is ``scramble``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from wavezoo.analysis.basis import (
    COMPRESSION_TOLERANCE,
    TOLERANCE_CHECKS,
    WaveBasis,
    free_cells,
    power_iteration,
    task_cells,
    twm_readout,
    wave_basis,
)
from wavezoo.analysis.controls import (
    fresh_copy,
    gaussian,
    random_recurrent,
    rotate,
    scramble,
    with_recurrent,
)
from wavezoo.analysis.linearize import linearize
from wavezoo.analysis.spectra import count_above, eigenvalues, spectral_error, task_operator
from wavezoo.core.operators import VARIABLE_BINDING_TASKS
from wavezoo.errors import ConfigError
from wavezoo.metrics import sign_accuracy

TASKS = tuple(VARIABLE_BINDING_TASKS)
UNTRAINED_SEEDS = (0, 1, 2)
RANDOM_SEED = 1234
#: A network solves its task at this test sign accuracy (the paper analyses models above 0.9).
SOLVED = 0.9
#: How much the trained figure must beat EVERY failing control by (chosen from the measurements in
#: docs/REPRODUCTION.md): C6 in radians (lower is better), C7 and C8 in correlation units, C9 in per-step factor units.
MARGINS = {"C6": 0.1, "C7": 0.25, "C8": 0.25, "C9": 0.05}
LOWER_IS_BETTER = {"C6"}
#: Test batches used for every network's accuracy in the claims (the whole test set is 10 batches of 64).
EVAL_BATCHES = 10


def _check_task(task: str) -> None:
    if task not in VARIABLE_BINDING_TASKS:
        raise ConfigError(f"task={task!r} is unknown: the wave lens compares with the presets {', '.join(TASKS)}")


@functools.lru_cache(maxsize=8)
def task_test_batches(task: str, count: int = EVAL_BATCHES) -> tuple:
    """The first ``count`` test batches (horizon 200) of ``task`` (generated once per process)."""
    from wavezoo.data import VariableBindingDataModule

    return tuple(VariableBindingDataModule(task).eval_set("test")[:count])


# -- one pass per network --------------------------------------------------------------------------------------------
@dataclass
class View:
    """One network through the lens, computed once and handed to every claim."""

    w_hh: torch.Tensor  # [N, N] float64
    w_uh: torch.Tensor
    w_r: torch.Tensor
    eigs: torch.Tensor  # eig(W_hh)
    psi: torch.Tensor  # the paper's power iteration [N, s*d]
    history: int
    hidden: torch.Tensor | None = None  # [B, T, N] rollout on the test inputs
    jacobian: dict[int, float] | None = None  # ||dh(t)/du(t-k)|| by lag k
    accuracy: float | None = None  # test sign accuracy on its task
    hidden_states: Callable[[torch.Tensor], torch.Tensor] | None = None
    held_out: torch.Tensor | None = None  # [B, T, N] rollout on held-out random inputs (not the task's test set)
    _cells: dict[float, list[int]] = field(default_factory=dict, repr=False)

    def free_cells(self, tolerance: float = COMPRESSION_TOLERANCE) -> list[int]:
        if tolerance not in self._cells:
            self._cells[tolerance] = free_cells(self.psi, self.w_r.shape[0], tolerance)
        return self._cells[tolerance]

    def basis(self, cells: list[int] | None = None) -> WaveBasis:
        """The wave basis on ``cells`` (default: the task-free compression)."""
        cells = self.free_cells() if cells is None else cells
        return wave_basis(self.w_hh, self.w_r, self.history, cells, psi=self.psi)


def look(
    net: torch.nn.Module,
    history: int = 8,
    inputs: torch.Tensor | None = None,
    batches=None,
    jacobian: bool = True,
) -> View:
    """Linearise ``net`` once and measure what every claim needs: spectrum, power iteration, the rollout on
    ``inputs`` ``[B, T, d]``, the Jacobian by lag over the input phase and the sign accuracy on ``batches``."""
    net.eval()
    lin = linearize(net)
    w_hh, w_r = lin.w_hh.detach().double(), lin.w_r.detach().double()
    view = View(w_hh, lin.w_uh.detach().double(), w_r, eigenvalues(w_hh), power_iteration(w_hh, w_r, history),
                history, hidden_states=lin.hidden_states)  # fmt: skip
    if inputs is not None:
        view.hidden = hidden_trajectory(net, inputs)
        view.held_out = hidden_trajectory(net, held_out_inputs(inputs.shape, history))
        if jacobian:
            view.jacobian = jacobian_by_lag(net, inputs[:, :history])
    if batches is not None:
        view.accuracy = sign_accuracy(net, batches)
    return view


def held_out_inputs(shape: torch.Size, history: int, seed: int = RANDOM_SEED) -> torch.Tensor:
    """``shape`` ``[B, T, d]``: random +-1 inputs for the first ``history`` steps, then zero input (the lens's input
    protocol, from its own seed: no task quantity, not the task's test set)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(shape)
    x[:, :history] = torch.randint(0, 2, (shape[0], min(history, shape[1]), shape[2]), generator=g).float() * 2 - 1
    return x


def own_dynamics(view: View, cells: list[int]) -> float:
    """How much of the network's own next-step recurrent drive W_hh h(t) on held-out inputs the basis on ``cells``
    keeps: 1 - ||W_hh (I - Psi Psi^+) h(t)||^2 / ||W_hh h(t) - mean||^2 over sequences and time (1 = all of it).
    Uses the network alone: a check that a compression keeps the network's dynamics, not a task score."""
    if view.held_out is None:
        return float("nan")
    basis = view.basis(cells)
    h = view.held_out.reshape(-1, view.w_hh.shape[0])
    drive = h @ view.w_hh.T
    lost = (h - h @ basis.dual.T @ basis.psi.T) @ view.w_hh.T
    return float(1 - lost.pow(2).sum() / (drive - drive.mean(0)).pow(2).sum().clamp_min(1e-300))


# -- C6, C7, C8 from views ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _reference(task: str, history: int, dim: int, cells: tuple[int, ...]) -> tuple[WaveBasis, torch.Tensor]:
    m = task_operator(task, dim=dim, history=history)
    return wave_basis(m, twm_readout(history, dim), history, list(cells)), m


def reference_lens(task: str, history: int = 8, dim: int = 8, cells: list[int] | None = None):
    """The exact TWM of ``task`` seen through the lens on ``cells`` (default: the task's own cells): (basis, M)."""
    cells = task_cells(task, history, dim) if cells is None else cells
    return _reference(task, history, dim, tuple(cells))


def spectral_score(view: View, task: str) -> float:
    """C6: spectral error (rad) of eig(W_hh) against eig(M)."""
    return spectral_error(task_operator(task, dim=view.w_r.shape[0], history=view.history), view.eigs)


def loop_score(view: View, task: str, cells: list[int]) -> float:
    """C7: cosine of the loop-closing columns of Psi^+ W_hh Psi with the exact TWM's, both on ``cells``."""
    ref, m = reference_lens(task, view.history, view.w_r.shape[0], cells)
    loop = ref.loop_columns()
    a, b = view.basis(cells).weights(view.w_hh)[:, loop].flatten(), ref.weights(m)[:, loop].flatten()
    if not torch.isfinite(a).all() or len(loop) == 0:
        return float("nan")
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


def window_score(
    view: View,
    inputs: torch.Tensor,
    task: str,
    cells: list[int],
    permutation: torch.Tensor | None = None,
    window: torch.Tensor | None = None,
) -> float:
    """C8: correlation of Psi^+ h(t) with the true window of ``task`` through the exact TWM's lens, on ``cells``
    (``window``: :func:`task_window` of ``inputs`` when computed already)."""
    ref, _ = reference_lens(task, view.history, view.w_r.shape[0], cells)
    window = task_window(inputs, task, view.history) if window is None else window
    truth = ref.coordinates(window)
    if permutation is not None:
        truth = truth[:, permutation]
    return _correlation(view.basis(cells).coordinates(view.hidden), truth)


def loop_closure_score(w_hh: torch.Tensor, w_r: torch.Tensor, task: str, history: int = 8) -> float:
    """C7, task-derived variant: :func:`loop_score` on the task's cells (:func:`task_cells`)."""
    w_hh, w_r = w_hh.detach().double(), w_r.detach().double()
    view = View(w_hh, w_r.new_zeros(0), w_r, eigenvalues(w_hh), power_iteration(w_hh, w_r, history), history)
    return loop_score(view, task, task_cells(task, history, w_r.shape[0]))


# -- C8 ---------------------------------------------------------------------------------------------------------------
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
    """C8, task-derived variant: :func:`window_score` of the rollout ``hidden`` on the task's cells."""
    w_hh, w_r = w_hh.detach().double(), w_r.detach().double()
    view = View(w_hh, w_r.new_zeros(0), w_r, eigenvalues(w_hh), power_iteration(w_hh, w_r, history), history,
                hidden=hidden.detach().double())  # fmt: skip
    return window_score(view, inputs, task, task_cells(task, history, w_r.shape[0]), permutation)


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


# -- verdicts ----------------------------------------------------------------------------------------------------------
def _beats(claim: str, score: float, other: float) -> bool:
    margin = MARGINS[claim]
    return score + margin <= other if claim in LOWER_IS_BETTER else score >= other + margin


def _solves(accuracy: float | None) -> bool:
    return accuracy is not None and accuracy >= SOLVED


def verdict(claim: str, score: float, controls: dict[str, tuple[float, float | None]], accuracy: float | None):
    """The verdict of ``claim`` for a network with figure ``score`` and task ``accuracy`` against ``controls``
    ``{name: (score, accuracy or None)}``: "holds" iff the network solves the task and beats every control that
    fails it (accuracy < :data:`SOLVED`, or None: not a network) by :data:`MARGINS` [claim]. NaN figures never
    separate. Each control says whether the claim would hold with it as the network under test."""
    failing = {n for n, (_, acc) in controls.items() if not _solves(acc)}

    def separated(mine: float, other: float) -> bool:
        return mine == mine and other == other and _beats(claim, mine, other)

    entries, unseparated = {}, []
    for name, (value, acc) in controls.items():
        ok = separated(score, value)
        if name in failing and not ok:
            unseparated.append(name)
        rivals = [controls[n][0] for n in failing if n != name] + ([] if _solves(accuracy) else [score])
        entries[name] = {
            "score": float(value), "accuracy": acc, "solves_task": _solves(acc), "separated": ok,
            "holds_as_subject": _solves(acc) and bool(rivals) and all(separated(value, r) for r in rivals),
        }  # fmt: skip
    if not _solves(accuracy):
        shown = "unknown" if accuracy is None else f"{accuracy:.4f}"
        text = f"does not hold: the network does not solve the task (accuracy {shown})"
    elif not failing:
        text = "does not hold: no control fails the task, nothing to separate from"
    elif unseparated:
        text = "not separable from " + ", ".join(unseparated)
    else:
        text = "holds"
    values = [controls[n][0] for n in failing if controls[n][0] == controls[n][0]]
    best = (min(values) if claim in LOWER_IS_BETTER else max(values)) if values else float("nan")
    return {
        "verdict": text, "holds": text == "holds", "score": float(score), "accuracy": accuracy,
        "margin": MARGINS[claim], "best_failing_control": best, "not_separable_from": unseparated,
        "controls": entries,
    }  # fmt: skip


def _with_tolerance_checks(claim: str, at: Callable[[float], dict[str, Any]]) -> dict[str, Any]:
    """The verdict at :data:`COMPRESSION_TOLERANCE` plus the same at each of :data:`TOLERANCE_CHECKS`; "fragile" when
    holds/does-not-hold changes with the tolerance."""
    main = at(COMPRESSION_TOLERANCE)
    checks = {tol: at(tol) for tol in TOLERANCE_CHECKS}
    main["tolerance_checks"] = {str(tol): {"score": c["score"], "verdict": c["verdict"], "cells": c["cells"]}
                                for tol, c in checks.items()}  # fmt: skip
    if any(c["holds"] != main["holds"] for c in checks.values()):
        states = ", ".join(f"{c['verdict']} at {tol}" for tol, c in [(COMPRESSION_TOLERANCE, main), *checks.items()])
        main["verdict"], main["holds"] = f"fragile ({states})", False
    return main


# -- all claims ----------------------------------------------------------------------------------------------------
def control_networks(
    net: torch.nn.Module, make_untrained: Callable[[int], torch.nn.Module] | None = None
) -> dict[str, torch.nn.Module]:
    """The control networks of ``net`` by name (weight surgery only for one-layer Elman cells)."""
    make_untrained = make_untrained or (lambda seed: fresh_copy(net, seed))
    nets = {f"untrained_seed{s}": make_untrained(s) for s in UNTRAINED_SEEDS}
    for name, build in (("gaussian", gaussian), ("scramble", scramble), ("rotated", rotate)):
        other = build(net)
        if other is not None:
            nets[name] = other
    return nets


def evaluate_views(
    net: torch.nn.Module,
    task: str,
    inputs: torch.Tensor,
    history: int = 8,
    make_untrained: Callable[[int], torch.nn.Module] | None = None,
    eval_batches: int = EVAL_BATCHES,
) -> tuple[dict[str, Any], dict[str, View]]:
    """:func:`evaluate_claims` and the views it measured (``"trained"`` and one per control network)."""
    _check_task(task)
    nets = {"trained": net, **control_networks(net, make_untrained)}
    batches = task_test_batches(task, eval_batches)
    views = {name: look(model, history, inputs, batches) for name, model in nets.items()}
    others = [t for t in TASKS if t != task]
    mismatch_acc = {t: sign_accuracy(net, task_test_batches(t, eval_batches)) for t in others}
    me, names = views["trained"], [n for n in views if n != "trained"]
    perm = torch.randperm(inputs.shape[1], generator=torch.Generator().manual_seed(RANDOM_SEED))

    def basis_claim(claim: str, score: Callable[..., float], cells_of: Callable[[View], list[int]], extra=None):
        controls = {n: (score(views[n], task, cells_of(views[n])), views[n].accuracy) for n in names}
        controls |= {f"mismatch_{t}": (score(me, t, cells_of(me)), mismatch_acc[t]) for t in others}
        controls |= extra(cells_of(me)) if extra else {}
        out = verdict(claim, score(me, task, cells_of(me)), controls, me.accuracy)
        out["cells"] = len(cells_of(me))
        return out

    windows = {t: task_window(inputs, t, history) for t in TASKS}
    c8_score = lambda view, t, cells: window_score(view, inputs, t, cells, window=windows[t])  # noqa: E731
    shuffled = lambda cells: {"shuffled_time": (window_score(me, inputs, task, cells, perm, windows[task]), None)}  # noqa: E731
    task_cell_list = task_cells(task, history, me.w_r.shape[0])
    by_task = lambda view: task_cell_list  # noqa: E731

    def free(tol):
        return lambda view: view.free_cells(tol)

    c6 = {n: (spectral_score(views[n], task), views[n].accuracy) for n in names}
    c6 |= {f"mismatch_{t}": (spectral_score(me, t), mismatch_acc[t]) for t in others}
    c9 = {n: (decay_factor(views[n].jacobian), views[n].accuracy) for n in names}
    claims = {
        "C6": verdict("C6", spectral_score(me, task), c6, me.accuracy),
        "C7": _with_tolerance_checks("C7", lambda tol: basis_claim("C7", loop_score, free(tol))),
        "C8": _with_tolerance_checks("C8", lambda tol: basis_claim("C8", c8_score, free(tol), shuffled)),
        "C9": verdict("C9", decay_factor(me.jacobian), c9, me.accuracy),
        "C7_task_cells": basis_claim("C7", loop_score, by_task),
        "C8_task_cells": basis_claim("C8", c8_score, by_task, shuffled),
    }
    for name in ("C7", "C8"):
        claims[name]["basis"] = (f"task-free: power iteration from pinv(W_r), {claims[name]['cells']} cells kept at "
                                 f"compression tolerance {COMPRESSION_TOLERANCE}")  # fmt: skip
        claims[f"{name}_task_cells"]["basis"] = (
            f"TASK-DERIVED: the {len(task_cell_list)} cells that compress the task's own M (task knowledge)"
        )
    basis = me.basis()
    result = {
        "task": task,
        "hidden_size": int(me.w_hh.shape[0]),
        "accuracy": me.accuracy,
        "accuracy_batches": len(batches),
        "solved_threshold": SOLVED,
        "spectral_radius": float(me.eigs.abs().max()),
        "spectral_error": spectral_score(me, task),
        "large_eigenvalues": count_above(me.eigs, 0.8),
        "theory_large_eigenvalues": count_above(
            eigenvalues(task_operator(task, dim=me.w_r.shape[0], history=history)), 0.8
        ),  # fmt: skip
        "wave_basis_cells": len(basis.cells),
        "wave_basis_condition": basis.condition(),
        "compression_tolerance": COMPRESSION_TOLERANCE,
        "own_dynamics_kept": {"uncompressed": own_dynamics(me, list(range(me.psi.shape[1])))}
        | {
            str(tol): own_dynamics(me, me.free_cells(tol)) for tol in sorted((COMPRESSION_TOLERANCE, *TOLERANCE_CHECKS))
        },
        "task_cells": len(task_cell_list),
        "task_cells_condition": me.basis(task_cell_list).condition(),
        "controls": {n: {"accuracy": views[n].accuracy, "solves_task": _solves(views[n].accuracy)} for n in names}
        | {f"mismatch_{t}": {"accuracy": mismatch_acc[t], "solves_task": _solves(mismatch_acc[t])} for t in others},
        # weight surgery exists for one-layer Elman cells only: without it C6 has no spectrum-matched control
        "controls_unavailable": [n for n in ("gaussian", "scramble", "rotated") if n not in views],
        "claims": claims,
        "jacobian_by_lag": {n: views[n].jacobian for n in views},
    }
    return result, views


def evaluate_claims(
    net: torch.nn.Module,
    task: str,
    inputs: torch.Tensor,
    history: int = 8,
    make_untrained: Callable[[int], torch.nn.Module] | None = None,
    eval_batches: int = EVAL_BATCHES,
) -> dict[str, Any]:
    """C6-C9 of ``net`` on ``task`` with their controls and verdicts; ``inputs`` ``[B, T, d]`` are test inputs of
    the task (input phase = the first ``history`` steps); accuracies on the first ``eval_batches`` test batches of
    each task. Returns the JSON-ready report (see ``wavezoo analyze``)."""
    return evaluate_views(net, task, inputs, history, make_untrained, eval_batches)[0]


__all__ = [
    "MARGINS",
    "SOLVED",
    "View",
    "activity_score",
    "control_networks",
    "decay_factor",
    "evaluate_claims",
    "evaluate_views",
    "jacobian_by_lag",
    "look",
    "loop_closure_score",
    "random_recurrent",
    "task_window",
    "verdict",
    "with_recurrent",
]
