"""K Table-1 runs trained as one batched model: the Elman RNN of the paper's protocol, K copies side by side.

Member k has its own seed (initial weights and data stream), L2 (``weight_decay``), task and curriculum threshold;
all share the hidden size N. The K networks are stacked (``torch.func.stack_module_state``) into
W_uh [K, N, d], W_hh [K, N, N], W_r [K, d, N] and run together, one batched matmul per time step::

    h_k(t) = tanh(W_hh,k h_k(t-1) + W_uh,k u_k(t)),   y_k(t) = W_r,k h_k(t),   h_k(0) = 0.

Everything else of a run stays per member, so member k computes what ``train_elman`` computes for its run alone:

* data: the same batches as its own ``VariableBindingDataModule(task, seed)`` (step j: the generator seeded by
  ``(seed, "train", 0, j)``); each member's curriculum horizon is its own: the batch is padded to the longest horizon
  of the ensemble and the steps past a member's horizon are masked out of its loss and accuracy;
* loss: the mean of (y - target)^2 over the member's own masked elements; the total loss is their sum, and as the
  members share no parameter, its gradient with respect to member k's weights is member k's gradient alone;
* clipping: each member's gradient is scaled by min(1, 1 / (||g_k|| + 1e-6)) with ||g_k|| the norm over the
  member's own three matrices (``torch.nn.utils.clip_grad_norm_`` of one run), never the norm of the stack;
* L2: g_k += lambda_k W_k after clipping, as ``torch.optim.Adam(weight_decay=lambda)`` does, then one stacked
  ``torch.optim.Adam`` (no weight decay): Adam's update is elementwise, so stacking is exact;
* curriculum: advance member k when its training sign accuracy exceeds its threshold (read after every step on the
  CPU; on an accelerator the best accuracy of ``check_every`` steps is read once per window, as
  :class:`wavezoo.lit.curriculum.HorizonCurriculum` does);
* validation loss every ``steps_per_epoch`` steps keeps the member's best weights (Lightning's ``ModelCheckpoint``
  on ``val/loss``); every ``snapshot_every`` steps a snapshot records its test and validation sign accuracy at
  horizon 200 and the spectral error of W_hh.

The state of the whole ensemble (weights, Adam moments, best weights, curricula, snapshots) is written atomically
to one checkpoint file every ``steps_per_epoch`` steps; a killed ensemble restarts from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from wavezoo.analysis import count_above, eigenvalues, spectral_error, task_operator
from wavezoo.errors import ConfigError

SNAPSHOT_EVERY = 2000
SOLVED = 0.9


def run_name(task: str, hidden: int, l2: float, seed: int, threshold: float = 0.98) -> str:
    """A run's file stem: ``T2_N128_L20.001_seed5``; the curriculum threshold shows only when not 0.98."""
    return f"{task}_N{hidden}_L2{l2:g}{'' if threshold == 0.98 else f'_thr{threshold:g}'}_seed{seed}"


@dataclass(frozen=True)
class Member:
    """One run of the sweep: what may differ between the members of an ensemble (``hidden`` may not)."""

    task: str
    hidden: int
    l2: float
    seed: int
    threshold: float = 0.98  # the curriculum threshold (the paper used 0.9 and 0.98)

    @property
    def name(self) -> str:
        """The run's file stem, as ``wavezoo-paper table1`` names it (the threshold shows only when not 0.98)."""
        return run_name(self.task, self.hidden, self.l2, self.seed, self.threshold)


def check_batchable(members: list[Member], pad_hidden: bool = False) -> None:
    """Raise one :class:`ConfigError` line naming the first member that cannot join the ensemble, and why."""
    if not members:
        raise ConfigError("an ensemble needs at least one member")
    first = members[0]
    names = set()
    for member in members:
        if member.hidden != first.hidden and not pad_hidden:
            raise ConfigError(
                f"ensemble member {member.name}: hidden size {member.hidden} differs from {first.name}'s "
                f"{first.hidden}; weights of different sizes are stacked only with pad_hidden (zero-padded units), "
                "else train one ensemble per hidden size"
            )
        if member.name in names:
            raise ConfigError(f"ensemble member {member.name} appears twice")
        names.add(member.name)


class ElmanEnsemble(nn.Module):
    """K bias-free Elman RNNs (``wavezoo.models.rnn.elman``) with stacked weights; see the module docstring."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.sizes = [net.hidden_size for net in nets]
        if len(set(self.sizes)) == 1:
            params, _ = torch.func.stack_module_state(nets)
        else:  # zero-pad the smaller networks to the largest N (see :meth:`pad`)
            n, d = max(self.sizes), nets[0].rnn.input_size
            shapes = {"rnn.weight_ih_l0": (n, d), "rnn.weight_hh_l0": (n, n), "readout.weight": (d, n)}
            params = {
                name: torch.stack([self.pad(dict(net.named_parameters())[name], shape) for net in nets])
                for name, shape in shapes.items()
            }
        self.w_uh = nn.Parameter(params["rnn.weight_ih_l0"].detach().clone())  # [K, N, d]
        self.w_hh = nn.Parameter(params["rnn.weight_hh_l0"].detach().clone())  # [K, N, N]
        self.w_r = nn.Parameter(params["readout.weight"].detach().clone())  # [K, d, N]

    @staticmethod
    def pad(weight: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """``weight`` zero-padded to ``shape`` (zero hidden units). Exact: a zero unit has h_i = tanh(0) = 0 and no
        path to the output, so every gradient of a padded weight is exactly 0 and Adam and L2 leave it at 0."""
        return torch.nn.functional.pad(weight.detach(), (0, shape[1] - weight.shape[1], 0, shape[0] - weight.shape[0]))

    def w_hh_of(self, k: int) -> torch.Tensor:
        """Member ``k``'s own W_hh (without padded units)."""
        return self.w_hh[k, : self.sizes[k], : self.sizes[k]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [K, B, T, d]`` -> ``y [K, B, T, d]``: one ``baddbmm`` per time step for all members."""
        drive = torch.einsum("kbtd,knd->tkbn", x, self.w_uh)  # W_uh u(t) of every step at once
        w_hh_t = self.w_hh.transpose(1, 2)
        h = x.new_zeros(drive.shape[1:])
        states = []
        # unbind, not drive[t]: the backward of T selects would write T full-size gradients of ``drive``
        for drive_t in drive.unbind(0):
            h = torch.tanh(torch.baddbmm(drive_t, h, w_hh_t))
            states.append(h)
        return torch.einsum("tkbn,kdn->kbtd", torch.stack(states), self.w_r)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, mask: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member: (sign accuracy, mean squared error) over the masked steps of ``x, y [T, K, n, d]`` (time-major;
        ``mask [T]`` on the host), stepping without keeping the hidden states (large sets fit on any device)."""
        w_uh_t, w_hh_t, w_r_t = self.w_uh.transpose(1, 2), self.w_hh.transpose(1, 2), self.w_r.transpose(1, 2)
        h = x.new_zeros(*x.shape[1:3], self.w_hh.shape[1])
        agree = x.new_zeros(x.shape[1], dtype=torch.float64)
        squared = x.new_zeros(x.shape[1], dtype=torch.float64)
        for t, counted in enumerate(mask):
            h = torch.tanh(torch.baddbmm(torch.bmm(x[t], w_uh_t), h, w_hh_t))
            if counted:
                out, target = torch.bmm(h, w_r_t), y[t]
                agree += ((out > 0) == (target > 0)).sum((1, 2)).double()
                squared += (out - target).double().pow(2).sum((1, 2))
        count = sum(mask) * x.shape[2] * x.shape[3]
        return agree / count, squared / count


def _member_nets(members: list[Member]) -> list[nn.Module]:
    """Each member's network as its lone run builds it: ``seed_everything(seed)`` then the Elman model."""
    import lightning.pytorch as pl

    from wavezoo.registry import build_model

    nets = []
    for member in members:
        pl.seed_everything(member.seed, verbose=False)
        nets.append(build_model("elman", input_size=8, output_size=8, hidden_size=member.hidden))
    return nets


class _Data:
    """The members' batches, drawn as their own DataModules draw them, stacked and padded to one horizon."""

    def __init__(self, members: list[Member], device: torch.device) -> None:
        from wavezoo.core.operators import _rollout_rows
        from wavezoo.data import VariableBindingDataModule

        self.modules = [
            VariableBindingDataModule(m.task, seed=m.seed, curriculum_threshold=m.threshold) for m in members
        ]
        first = self.modules[0]
        self.history, self.dim, self.horizons = first.history, first.dim, first.horizons
        self.device = device
        longest = max(self.horizons)
        rows = {}
        for module in self.modules:
            if module.task not in rows:
                phi = module.phi.detach().to(torch.float64).contiguous()
                rows[module.task] = _rollout_rows(phi.numpy().tobytes(), tuple(phi.shape), longest)
        self.rows = torch.stack([rows[m.task] for m in self.modules]).to(device)  # [K, H, d, s*d] float64
        self._ends: dict[tuple, torch.Tensor] = {}

    def windows(self, step: int) -> torch.Tensor:
        """``[K, B, s, d]`` int8 sign bits (1 for +1): every member's initial windows of training batch ``step``.

        The windows do not depend on the curriculum (it only sets how far the targets roll out), so they can be drawn
        ahead, in worker processes (:meth:`stream`)."""
        from wavezoo.data.base import _SPLIT_IDS, _TRAIN_STREAM, seeded_generator

        return torch.stack(
            [
                m.initial_window(m.batch_size, seeded_generator(m.seed, _SPLIT_IDS["train"], _TRAIN_STREAM, step)) > 0
                for m in self.modules
            ]
        ).to(torch.int8)

    def stream(self, start: int, stop: int, workers: int = 0):
        """The windows of steps ``start .. stop - 1`` in order, drawn by ``workers`` processes (0: this one)."""
        loader = torch.utils.data.DataLoader(
            _Steps(self, start, stop), batch_size=None, num_workers=workers, pin_memory=self.device.type == "cuda",
            prefetch_factor=8 if workers else None, persistent_workers=False,
        )  # fmt: skip
        return iter(loader)

    def batch(self, bits: torch.Tensor, horizons: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs, targets ``[K, B, s + H, d]`` and mask ``[K, s + H]`` with H the longest of ``horizons``."""
        window = bits.to(self.device, non_blocking=True).float() * 2 - 1
        longest = max(horizons)
        flat = window.reshape(*window.shape[:2], -1).double()
        future = torch.einsum("khdj,kbj->kbhd", self.rows[:, :longest], flat).to(window.dtype)
        inputs = torch.cat([window, torch.zeros_like(future)], dim=2)
        targets = torch.cat([torch.zeros_like(window), future], dim=2)
        key = tuple(horizons)
        if key not in self._ends:  # a new curriculum state: one small copy to the device
            self._ends = {key: torch.tensor(horizons, device=self.device)}
        ends = self._ends[key]
        t = torch.arange(self.history + longest, device=self.device)
        mask = (t >= self.history) & (t < self.history + ends[:, None])
        return inputs, targets, mask

    def eval_set(self, split: str) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
        """Each member's own fixed ``split`` set, stacked time-major: ``x, y [T, K, n, d]`` and the mask ``[T]``."""
        sets = [m.eval_set(split) for m in self.modules]
        x = torch.stack([torch.cat([b[0] for b in batches]).transpose(0, 1) for batches in sets], dim=1)
        y = torch.stack([torch.cat([b[1] for b in batches]).transpose(0, 1) for batches in sets], dim=1)
        return x.to(self.device), y.to(self.device), sets[0][0][2][0].tolist()


class _Steps(torch.utils.data.Dataset):
    """Step ``start + i`` -> its windows (:meth:`_Data.windows`), for a ``DataLoader`` that draws them ahead."""

    def __init__(self, data: _Data, start: int, stop: int) -> None:
        self.data, self.start, self.stop = data, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.data.windows(self.start + index)


def _clip_per_member(params: list[nn.Parameter], max_norm: float = 1.0) -> None:
    """``clip_grad_norm_(max_norm)`` of every member on its own: the norm over member k's slices of ``params``."""
    norms = torch.stack([torch.linalg.vector_norm(p.grad.flatten(1), dim=1) for p in params], dim=1)  # [K, P]
    total = torch.linalg.vector_norm(norms, dim=1)
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in params:
        p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))


def ensemble_id(members: list[Member], steps: int) -> str:
    """A short name of an ensemble (its members and length): the name of its resume checkpoint."""
    text = json.dumps([[asdict(m) for m in members], steps], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save_atomic(state: dict, path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _spectral_figures(members: list[Member], model: ElmanEnsemble) -> list[dict]:
    """Spectral error and eigenvalue count of every member's own W_hh (threads: eigvals releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(k: int) -> dict:
        w_hh = model.w_hh_of(k).detach().cpu()
        return {
            "spectral_error_rad": spectral_error(task_operator(members[k].task), w_hh),
            "eig_count_above_0.8": count_above(eigenvalues(w_hh), 0.8),
        }

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, range(len(members))))


def _expand(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-member ``values [K]`` shaped to broadcast against ``like [K, ...]``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def train_ensemble(
    members: list[Member],
    steps: int,
    checkpoint: Path | None = None,
    device: str | torch.device = "cpu",
    steps_per_epoch: int = 500,
    snapshot_every: int = SNAPSHOT_EVERY,
    check_every: int | None = None,
    pad_hidden: bool = False,
    workers: int = 0,
    log_every: int | None = None,
    stop_after: int | None = None,
    losses: list | None = None,
) -> list[dict] | None:
    """Train ``members`` together for ``steps`` steps; returns one record per member (``train_elman``'s keys).

    ``checkpoint``: the resume file (written every ``steps_per_epoch`` steps, read at the start when it exists).
    ``check_every``: steps between curriculum decisions (``None``: 1 on the CPU, 25 on an accelerator).
    ``pad_hidden``: members of smaller hidden sizes join with zero-padded units (exact; costs their compute).
    ``workers``: processes that draw the training batches ahead (0: this process).
    ``log_every``: print the step, the pace (ensemble steps/s) and the members' horizons every that many steps.
    ``stop_after``: stop (returning ``None``) once that many steps are done, as a killed run would (for tests).
    ``losses``: if a list, each step's per-member training losses ``[K]`` are appended to it (for tests).
    """
    check_batchable(members, pad_hidden)
    device = torch.device(device)
    check_every = check_every or (1 if device.type == "cpu" else 25)
    data = _Data(members, device)
    model = ElmanEnsemble(_member_nets(members)).to(device)
    params = [model.w_uh, model.w_hh, model.w_r]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    l2 = torch.tensor([m.l2 for m in members], device=device)
    thresholds = torch.tensor([m.threshold for m in members], device=device)
    k = len(members)
    state = {
        "step": 0,
        "stage": torch.zeros(k, dtype=torch.long),  # on the host: it sets the batch's length
        "best_loss": torch.full((k,), float("inf"), dtype=torch.float64),
        "best": [p.detach().clone() for p in params],
        "snapshots": [[] for _ in members],
        "seconds": 0.0,
    }
    window_best = torch.full((k,), -1.0, device=device)
    if checkpoint is not None and checkpoint.exists():
        from wavezoo.trust import load_tensor_file

        saved = load_tensor_file(checkpoint, map_location=device)
        if saved.get("members") != [asdict(m) for m in members] or saved.get("steps") != steps:
            raise ConfigError(f"ensemble checkpoint {checkpoint} belongs to another ensemble; delete it to restart")
        with torch.no_grad():
            for p, w in zip(params, saved["params"], strict=True):
                p.copy_(w)
        optimizer.load_state_dict(saved["optimizer"])
        state = {key: saved[key] for key in state}
        state["stage"], state["best_loss"] = state["stage"].cpu(), state["best_loss"].cpu()
        window_best = saved["window_best"].to(device)
    stage = state["stage"]
    last_stage = len(data.horizons) - 1
    val, test = data.eval_set("val"), data.eval_set("test")
    started = time.perf_counter() - state["seconds"]
    resumed_at, first_step = time.perf_counter(), state["step"]
    every_snapshot = min(snapshot_every, steps)
    windows = data.stream(state["step"], steps, workers)
    for step in range(state["step"], steps):
        x, y, mask = data.batch(next(windows), [data.horizons[i] for i in stage.tolist()])
        out = model(x)
        m = mask[:, None, :, None]
        count = mask.sum(1) * x.shape[1] * x.shape[3]
        loss = ((out - y).pow(2) * m).sum((1, 2, 3)) / count
        optimizer.zero_grad(set_to_none=False)
        loss.sum().backward()
        with torch.no_grad():
            accuracy = (((out > 0) == (y > 0)) & m).sum((1, 2, 3)) / count
            _clip_per_member(params)
            for p in params:
                p.grad.add_(p * _expand(l2, p))
        optimizer.step()
        if losses is not None:
            losses.append(loss.detach().cpu())
        # the curriculum: advance where the (window's best) accuracy passed the threshold; one host read per window
        torch.maximum(window_best, accuracy, out=window_best)
        done = step + 1
        if done % check_every == 0:
            advance = (window_best > thresholds).cpu() & (stage < last_stage)
            stage = stage + advance.long()
            window_best.fill_(-1.0)
        if done % steps_per_epoch == 0 or (done == steps and torch.isinf(state["best_loss"]).all()):
            val_loss = model.evaluate(*val)[1].cpu()
            better = val_loss < state["best_loss"]
            state["best_loss"] = torch.where(better, val_loss, state["best_loss"])
            keep = better.to(device)
            for b, p in zip(state["best"], params, strict=True):
                b.copy_(torch.where(_expand(keep, p), p.detach(), b))
        if done % every_snapshot == 0:
            test_acc, val_acc = model.evaluate(*test)[0].tolist(), model.evaluate(*val)[0].tolist()
            for i, figures in enumerate(_spectral_figures(members, model)):
                snapshot = {"step": done, "test_acc_h200": test_acc[i], "val_acc_h200": val_acc[i], **figures}
                state["snapshots"][i].append(snapshot)
        if checkpoint is not None and (done % steps_per_epoch == 0 or done == steps):
            state["step"], state["stage"] = done, stage
            state["seconds"] = time.perf_counter() - started
            saved = {"members": [asdict(m) for m in members], "steps": steps, "window_best": window_best}
            saved |= {"params": [p.detach() for p in params], "optimizer": optimizer.state_dict()}
            _save_atomic({**state, **saved}, checkpoint)
        if log_every and done % log_every == 0:
            pace = (done - first_step) / (time.perf_counter() - resumed_at)
            longest = max(data.horizons[i] for i in stage.tolist())
            left = (steps - done) / pace / 60
            print(
                f"ensemble of {k}: step {done}/{steps}, {pace:.2f} steps/s, longest horizon {longest}, "
                f"about {left:.0f} min left",
                flush=True,
            )
        if stop_after is not None and stop_after <= done < steps:
            return None
    seconds = time.perf_counter() - started
    return _records(members, steps, model, state, test, val, seconds)


@torch.no_grad()
def _records(members, steps, model, state, test, val, seconds) -> list[dict]:
    """Each member's JSON record: the best-by-validation-loss weights as the final model, as ``train_elman``."""
    for p, b in zip([model.w_uh, model.w_hh, model.w_r], state["best"], strict=True):
        p.copy_(b)
    test_acc, val_acc = model.evaluate(*test)[0].tolist(), model.evaluate(*val)[0].tolist()
    spectra = _spectral_figures(members, model)
    records = []
    for i, member in enumerate(members):
        final = {"test_acc_h200": test_acc[i], "val_acc_h200": val_acc[i], **spectra[i]}
        candidates = [*state["snapshots"][i], final]
        solved = [r["spectral_error_rad"] for r in candidates if r["test_acc_h200"] > SOLVED]
        record = {"task": member.task, "hidden": member.hidden, "l2": member.l2, "seed": member.seed}
        if member.threshold != 0.98:
            record["curriculum_threshold"] = member.threshold
        records.append(
            {
                **record,
                "steps": steps,
                **final,
                "max_test_acc_h200": max(r["test_acc_h200"] for r in candidates),
                "min_spectral_error_rad": min(solved) if solved else None,
                "snapshots": state["snapshots"][i],
                "ensemble": {"members": len(members), "seconds": round(seconds, 1), "device": str(model.w_hh.device)},
            }
        )
    return records
