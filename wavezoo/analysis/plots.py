"""Figures of the wave lens (matplotlib, Agg); each returns a Figure so it can go to a PNG and to TensorBoard."""

from __future__ import annotations

import math
from pathlib import Path

import torch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(count: int, size: float = 3.2):
    plt = _pyplot()
    cols = min(count, 4)
    fig, axes = plt.subplots(math.ceil(count / cols), cols, figsize=(size * cols, size * math.ceil(count / cols)))
    return fig, list(getattr(axes, "flat", [axes]))


def spectra_figure(panels: dict[str, tuple[torch.Tensor | None, torch.Tensor]], threshold: float = 0.8):
    """Eigenvalues in the complex plane per panel: theory (red x, may be None) vs learned (blue x), counts > 0.8."""
    fig, axes = _grid(len(panels))
    circle = torch.linspace(0, 2 * math.pi, 200)
    for ax, (title, (theory, learned)) in zip(axes, panels.items(), strict=False):
        ax.plot(torch.cos(circle), torch.sin(circle), color="0.75", lw=1)
        if theory is not None:
            count = int((theory.abs() > threshold).sum())
            ax.scatter(theory.real, theory.imag, marker="x", color="red", s=40, label=f"TWM ({count})")
        count = int((learned.abs() > threshold).sum())
        ax.scatter(learned.real, learned.imag, marker="x", color="blue", s=12, label=f"learned ({count})")
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="lower left", fontsize=7)
    return fig


def matrices_figure(panels: dict[str, torch.Tensor], limit: float = 1.7):
    """Matrices as heat maps on a shared colour range (the paper's -1.7..1.7 for W_hh in the wave basis)."""
    fig, axes = _grid(len(panels))
    for ax, (title, matrix) in zip(axes, panels.items(), strict=False):
        ax.imshow(matrix.clamp(-limit, limit), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def lattice_figure(lattice: torch.Tensor, times: list[int], title: str = ""):
    """Hidden state in the wave basis (``[time, s, d]``) at the given 1-based ``times``, standardised per frame."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(times), figsize=(1.6 * len(times), 2.0))
    for ax, t in zip(axes, times, strict=True):
        frame = lattice[t - 1].T
        ax.imshow((frame - frame.mean()) / (frame.std() + 1e-9), cmap="gray")
        ax.set_title(f"t={t}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9, y=1.04)
    return fig


def curves_figure(curves: dict[str, dict[int, float]], xlabel: str, ylabel: str, log: bool = True, title: str = ""):
    """Line plot of named curves ``{x: y}`` (e.g. gradient norm against lag)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, values in curves.items():
        xs = sorted(values)
        (ax.semilogy if log else ax.plot)(xs, [values[x] for x in xs], marker=".", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def save_figures(figures: dict, out: Path, writer=None, step: int = 0) -> list[Path]:
    """Write each figure to ``out/<name>.png`` and, with a TensorBoard ``writer``, log it under ``<name>``."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        if writer is not None:
            writer.add_figure(name, fig, global_step=step, close=False)
        plt.close(fig)
        paths.append(path)
    return paths
