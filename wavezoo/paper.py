"""Reproduce the paper's claims: ``python -m wavezoo.paper {theorem,analyze} ...`` (also ``wavezoo-paper``).

* ``theorem`` — claims C1-C4 on exactly constructed systems: Theorem 3.1 (Fibonacci, random VAR(s), random MLP),
  the LBC algebra (rank, spectrum, RNN embedding in a random basis) and SBC = attention-only transformer.
* ``analyze --ckpt PATH`` — the wave lens on a trained Elman checkpoint of a variable-binding task (C5-C9):
  test accuracy at horizon 200, eigenvalues with |lambda| > 0.8 against the task's TWM operator, the spectral
  error of Table 1, W_hh in the wave basis, the "315" input travelling through the hidden state, and the gradient
  norm by lag against a freshly initialised network.

* ``table1`` — the Elman RNN trained with the paper's protocol on T1..T4 for hidden sizes x L2 x seeds; one JSON per
  run in ``--out/table1/`` (runs already there are skipped, so several processes can share a sweep), then the
  table: per (task, N, L2) the mean over seeds of the test accuracy and of the spectral error of the runs with
  accuracy > 0.9, next to the paper's values. ``--quick``: T2 at N = 128 with L2 in {0, 0.1}, one seed, 3,000 steps.

Each prints its figures next to the paper's, and writes JSON and PNG files to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from wavezoo.analysis import count_above, eigenvalues, input_gradient_by_lag, spectral_error, task_operator, wave_basis
from wavezoo.errors import WavezooError

#: Table 1 of the paper at N = 128, L2 = 0 (spectral error in rad, test accuracy at horizon 200) [authors' code].
PAPER_TABLE1_N128 = {"T1": (0.0005, 1.00), "T2": (0.0055, 0.98), "T3": (0.0031, 0.98), "T4": (0.0022, 1.00)}
THEORY_COUNT = {"T1": 64, "T2": 36, "T3": 36, "T4": 36}
#: The "315" demonstration input: 8 bitmap rows of the digits 3, 1, 5 (+1 = ink), fed as the 8 input vectors.
BITMAP_315 = [[2, 4, 6], [2, 3, 4, 5, 6], [], [2, 3, 4, 5, 6], [], [2, 3, 4, 6], [2, 4, 5, 6], []]


def theorem_checks() -> dict[str, float]:
    """Max deviations of the exact constructions (all should be ~0 in float64)."""
    from wavezoo.data import HDSDataModule
    from wavezoo.data.operators import random_stable_var
    from wavezoo.lbc import characteristic_value, embed_in_basis, lbc_matrix, shift_matrix
    from wavezoo.models.sbc import AttentionOnlyTransformer
    from wavezoo.models.twm import TravelingWaveMemory
    from wavezoo.theorem import twm_from_function, twm_from_lag_operators, twm_generalized_fibonacci

    torch.manual_seed(0)
    s, d = 5, 3

    def simulate(f, window, steps):
        states = list(window.unbind(1))
        for _ in range(steps):
            states.append(f(states[-s:]))
        return torch.stack(states[s:], 1)

    window = torch.randn(4, s, d, dtype=torch.float64)
    fib = twm_generalized_fibonacci(d, s).rollout(window, 10 * s)
    fib_ref = simulate(lambda xs: sum(xs), window, 10 * s)
    lag_phi = random_stable_var(d, s, 0.98, seed=1)
    var_ref = simulate(lambda xs: sum(lag_phi[k] @ xs[-1 - k].T for k in range(s)).T, window, 10 * s)
    hds = HDSDataModule("mlp", dim=d, history=s, system_seed=2)
    hds.mlp_in, hds.mlp_out = hds.mlp_in.double(), hds.mlp_out.double()
    mlp_ref = simulate(lambda xs: hds.evolve(torch.stack(xs, 1)), window, 10 * s)
    m = lbc_matrix(lag_phi.flip(0))
    rnn = embed_in_basis(lag_phi.flip(0), torch.randn(3 * s * d, s * d, dtype=torch.float64))
    drive = torch.randn(4, 30, d, dtype=torch.float64)
    transformer = AttentionOnlyTransformer(d, s, num_heads=1, head_dim=d).double()
    prompt = torch.randn(2, s, d, dtype=torch.float64)
    with torch.no_grad():
        sbc_gap = transformer.generate(prompt, 40, cache=False) - TravelingWaveMemory(
            s, d, transformer.layers[0]
        ).rollout(prompt, 40)
    return {
        "C1 Fibonacci, max relative error": float((fib - fib_ref).abs().max() / fib_ref.abs().max()),
        "C1 random VAR(5), max error": float(
            (twm_from_lag_operators(lag_phi).rollout(window, 10 * s) - var_ref).abs().max()
        ),
        "C1 random MLP, max error": float(
            (twm_from_function(hds.evolve, s, d).rollout(window, 10 * s) - mlp_ref).abs().max()
        ),
        "C2 rank(M - shift) - d (<= 0)": float(torch.linalg.matrix_rank(m - shift_matrix(s, d)) - d),
        "C2 max |det(char. polynomial)| at eig(M)": max(
            abs(characteristic_value(lag_phi.flip(0), complex(v))) for v in torch.linalg.eigvals(m)
        ),
        "C3 RNN in a random basis, max output error": float(
            (rnn.run(drive) - twm_from_lag_operators(lag_phi, "add")(drive)).abs().max()
        ),
        "C4 SBC-TWM vs attention-only transformer, max error": float(sbc_gap.abs().max()),
    }


def train_elman(task: str, hidden: int, l2: float, seed: int, steps: int, folder: Path) -> dict:
    """One Table-1 run: the paper's protocol (``configs/variable_binding/elman.yaml``), then the wave lens."""
    import lightning.pytorch as pl

    from wavezoo.data import VariableBindingDataModule
    from wavezoo.lit import SequenceRegression
    from wavezoo.lit.reliability import AtomicCheckpointIO

    pl.seed_everything(seed, verbose=False)
    data = VariableBindingDataModule(task, seed=seed)
    module = SequenceRegression(model="elman", input_size=8, output_size=8, hidden_size=hidden, weight_decay=l2)
    checkpoint = pl.callbacks.ModelCheckpoint(folder, monitor="val/loss", filename="best")
    trainer = pl.Trainer(
        max_steps=steps,
        gradient_clip_val=1.0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoint],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(module, datamodule=data)
    (metrics,) = trainer.test(module, datamodule=data, ckpt_path="best", verbose=False)
    w_hh = module.net.rnn.weight_hh_l0.detach()
    m = task_operator(task)
    return {
        "task": task,
        "hidden": hidden,
        "l2": l2,
        "seed": seed,
        "steps": steps,
        "test_acc_h200": metrics["test/acc"],
        "spectral_error_rad": spectral_error(m, w_hh),
        "eig_count_above_0.8": count_above(eigenvalues(w_hh), 0.8),
    }


#: Table 1 of the paper: (task, N, L2) -> (spectral error or None for "---", accuracy) [authors' notebook].
PAPER_TABLE1 = {
    ("T1", 64, 0.0): (None, 0.97),
    ("T1", 64, 0.001): (None, 0.88),
    ("T1", 64, 0.1): (None, 0.50),
    ("T1", 128, 0.0): (0.0005, 1.00),
    ("T1", 128, 0.001): (None, 0.93),
    ("T1", 128, 0.1): (None, 0.50),
    ("T2", 64, 0.0): (0.0075, 1.00),
    ("T2", 64, 0.001): (None, 0.85),
    ("T2", 64, 0.1): (None, 0.50),
    ("T2", 128, 0.0): (0.0055, 0.98),
    ("T2", 128, 0.001): (0.0031, 0.98),
    ("T2", 128, 0.1): (None, 0.50),
    ("T3", 64, 0.0): (0.0026, 1.00),
    ("T3", 64, 0.001): (0.0010, 0.97),
    ("T3", 64, 0.1): (None, 0.50),
    ("T3", 128, 0.0): (0.0031, 0.98),
    ("T3", 128, 0.001): (0.0005, 1.00),
    ("T3", 128, 0.1): (None, 0.50),
    ("T4", 64, 0.0): (0.0112, 0.94),
    ("T4", 64, 0.001): (0.0011, 1.00),
    ("T4", 64, 0.1): (None, 0.50),
    ("T4", 128, 0.0): (0.0022, 1.00),
    ("T4", 128, 0.001): (0.0006, 1.00),
    ("T4", 128, 0.1): (None, 0.50),
}


def table1(tasks, hiddens, l2s, seeds, steps: int, out: Path) -> list[dict]:
    """Run (or reuse) every run of the sweep, then summarise; returns the summary rows."""
    import tempfile

    folder = out / "table1"
    folder.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for hidden in hiddens:
            for l2 in l2s:
                for seed in seeds:
                    path = folder / f"{task}_N{hidden}_L2{l2:g}_seed{seed}.json"
                    if path.exists():
                        continue
                    try:  # claim the run (another process of the same sweep may be on it)
                        path.with_suffix(".running").open("x").close()
                    except FileExistsError:
                        continue
                    with tempfile.TemporaryDirectory() as tmp:
                        result = train_elman(task, hidden, l2, seed, steps, Path(tmp))
                    path.write_text(json.dumps(result, indent=1))
                    path.with_suffix(".running").unlink()
                    print(json.dumps(result), flush=True)
    return summarize_table1(folder)


def summarize_table1(folder: Path) -> list[dict]:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["task"], run["hidden"], float(run["l2"])), []).append(run)
    rows = []
    print(f"{'task':<5}{'N':>5}{'L2':>7}{'seeds':>6}{'acc':>8}{'solved':>8}{'spec.err':>10}{'eig>0.8':>9}   paper")
    for key in sorted(groups):
        group = groups[key]
        solved = [r for r in group if r["test_acc_h200"] > 0.9]
        acc = sum(r["test_acc_h200"] for r in group) / len(group)
        err = sum(r["spectral_error_rad"] for r in solved) / len(solved) if solved else None
        counts = sorted({r["eig_count_above_0.8"] for r in group})
        paper_err, paper_acc = PAPER_TABLE1.get(key, (None, None))
        paper = f"{'---' if paper_err is None else f'{paper_err:.4f}'} ({paper_acc})"
        shown = "---" if err is None else f"{err:.4f}"
        print(
            f"{key[0]:<5}{key[1]:>5}{key[2]:>7g}{len(group):>6}{acc:>8.4f}{len(solved):>8}{shown:>10}"
            f"{str(counts):>9}   {paper}"
        )
        rows.append(
            {
                "task": key[0],
                "hidden": key[1],
                "l2": key[2],
                "seeds": len(group),
                "mean_acc": acc,
                "solved": len(solved),
                "mean_spectral_error_solved": err,
                "eig_counts": counts,
            }
        )
    (folder.parent / "table1.json").write_text(json.dumps(rows, indent=1))
    return rows


def _elman_from_checkpoint(path: str):
    from wavezoo.lit import SequenceRegression
    from wavezoo.lit.reliability import read_checkpoint

    checkpoint = read_checkpoint(path, map_location="cpu", weights_only=True)
    module = SequenceRegression.load_from_checkpoint(path, map_location="cpu")
    net = module.net
    if getattr(net, "cell", None) != "rnn":
        raise WavezooError(f"analyze needs an Elman checkpoint (model 'elman' or 'irnn'), got {module.hparams.model!r}")
    return net, checkpoint.get("datamodule_hyper_parameters", {})


def analyze(ckpt: str, out: Path, task: str | None = None) -> dict:
    """The wave lens on one trained Elman checkpoint; writes ``analysis.json`` and PNGs to ``out``."""
    from wavezoo.data import VariableBindingDataModule

    net, data_hparams = _elman_from_checkpoint(ckpt)
    task = task or data_hparams.get("task")
    if task not in THEORY_COUNT:
        raise WavezooError(f"task={task!r}: pass --task T1..T4 (the checkpoint does not name a preset task)")
    net.eval()
    w_hh, w_r = net.rnn.weight_hh_l0.detach(), net.readout.weight.detach()
    data = VariableBindingDataModule(task)
    correct = total = 0
    with torch.no_grad():
        for x, y, mask in data.eval_set("test"):
            pred = net(x)
            correct += int(((pred[mask] > 0) == (y[mask] > 0)).sum())
            total += y[mask].numel()
    m = task_operator(task)
    learned, theory = eigenvalues(w_hh), eigenvalues(m)
    basis = wave_basis(w_hh, w_r, 8)
    bitmap = -torch.ones(1, 8 + 12, 8)
    for t, ink in enumerate(BITMAP_315):
        bitmap[0, t, ink] = 1.0
    bitmap[0, 8:] = 0.0
    with torch.no_grad():
        lattice = basis.lattice(net.hidden_states(bitmap)[0])  # [time, s, d]
    x, y, _ = data.eval_set("test")[0]
    torch.manual_seed(0)
    fresh = type(net)(8, 8, net.hidden_size, cell="rnn", bias=False, readout_bias=False)
    lags = {
        name: input_gradient_by_lag(model, x, y, step=8 + 16)[17:].tolist()
        for name, model in (("init", fresh), ("trained", net))
    }
    result = {
        "checkpoint": str(ckpt),
        "task": task,
        "hidden_size": net.hidden_size,
        "test_acc_h200": correct / total,
        "eig_count_above_0.8": count_above(learned, 0.8),
        "theory_count_above_0.8": THEORY_COUNT[task],
        "spectral_error_rad": spectral_error(m, w_hh),
        "paper_spectral_error_rad_N128": PAPER_TABLE1_N128[task][0],
        "wave_basis_distance": basis.distance(w_hh, m),
        "grad_norm_by_lag_17_to_24": lags,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(result, indent=1))
    _plots(out, task, theory, learned, basis.weights(w_hh), lattice, lags)
    return result


def _plots(out: Path, task: str, theory, learned, in_basis, lattice, lags) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    circle = torch.linspace(0, 2 * torch.pi, 200)
    ax.plot(torch.cos(circle), torch.sin(circle), color="0.7")
    ax.scatter(theory.real, theory.imag, marker="x", color="red", label=f"TWM {task} ({count_above(theory)})")
    ax.scatter(learned.real, learned.imag, marker="x", color="blue", s=12, label=f"W_hh ({count_above(learned)})")
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(f"eigenvalues, {task}")
    fig.savefig(out / "spectrum.png", dpi=120, bbox_inches="tight")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(in_basis.clamp(-1.7, 1.7), cmap="RdBu_r", vmin=-1.7, vmax=1.7)
    ax.set_title("Psi^+ W_hh Psi")
    fig.savefig(out / "w_hh_wave_basis.png", dpi=120, bbox_inches="tight")
    times = [1, 2, 3, 4, 5, 14, 15, 16, 17, 18]
    fig, axes = plt.subplots(1, len(times), figsize=(2 * len(times), 2))
    for ax, t in zip(axes, times, strict=True):
        frame = lattice[t - 1].T
        ax.imshow((frame - frame.mean()) / (frame.std() + 1e-9), cmap="gray")
        ax.set_title(f"t={t}")
        ax.axis("off")
    fig.savefig(out / "hidden_state_315.png", dpi=100, bbox_inches="tight")
    fig, ax = plt.subplots(figsize=(4, 3))
    for name, values in lags.items():
        ax.semilogy(range(17, 25), values, marker="o", label=name)
    ax.set_xlabel("lag")
    ax.set_ylabel("||dL/du||")
    ax.legend()
    fig.savefig(out / "gradient_by_lag.png", dpi=120, bbox_inches="tight")
    plt.close("all")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wavezoo-paper", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("theorem", help="claims C1-C4 on exact constructions")
    lens = sub.add_parser("analyze", help="the wave lens on a trained Elman checkpoint (C5-C9)")
    lens.add_argument("--ckpt", required=True)
    lens.add_argument("--task", choices=sorted(THEORY_COUNT), default=None)
    sweep = sub.add_parser("table1", help="Table 1: Elman RNN on T1..T4 x hidden x L2 x seeds")
    sweep.add_argument("--tasks", default="T1,T2,T3,T4")
    sweep.add_argument("--hidden", default="64,128")
    sweep.add_argument("--l2", default="0,0.001,0.1")
    sweep.add_argument("--seeds", default="0,1,2,3,4")
    sweep.add_argument("--steps", type=int, default=10000)
    sweep.add_argument("--quick", action="store_true", help="T2, N = 128, L2 in {0, 0.1}, one seed, 3,000 steps")
    for command in sub.choices.values():
        command.add_argument("--out", default="paper_out", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "table1":
            if args.quick:
                args.tasks, args.hidden, args.l2, args.seeds, args.steps = "T2", "128", "0,0.1", "0", 3000
            split = lambda text, kind: [kind(v) for v in text.split(",") if v]  # noqa: E731
            table1(
                split(args.tasks, str),
                split(args.hidden, int),
                split(args.l2, float),
                split(args.seeds, int),
                args.steps,
                args.out,
            )
        elif args.command == "theorem":
            checks = theorem_checks()
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "theorem.json").write_text(json.dumps(checks, indent=1))
            for name, value in checks.items():
                print(f"{name:<55} {value:.2e}   (exact: 0)")
        else:
            result = analyze(args.ckpt, args.out, args.task)
            print(
                f"task {result['task']}, hidden {result['hidden_size']}: test acc at horizon 200 "
                f"{result['test_acc_h200']:.4f} (paper {PAPER_TABLE1_N128[result['task']][1]:.2f})"
            )
            counts = result["eig_count_above_0.8"], result["theory_count_above_0.8"]
            print(f"eigenvalues |lambda| > 0.8: {counts[0]} (theory {counts[1]})")
            print(
                f"spectral error: {result['spectral_error_rad']:.4f} rad (paper, N = 128: "
                f"{result['paper_spectral_error_rad_N128']:.4f})"
            )
            print(f"||Psi^+ W_hh Psi - M|| / ||M||: {result['wave_basis_distance']:.3f}")
            print(f"wrote {args.out}/analysis.json and 4 PNG files")
    except WavezooError as err:
        print(f"wavezoo-paper: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
