"""Plots for the surrogates: prediction galleries and learning curves (matplotlib Figure API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["gallery_picks", "plot_gallery", "plot_learning_curve", "plot_training_curves"]


def gallery_picks(z: np.ndarray) -> list[tuple[str, tuple[int, int]]]:
    """(label, (structure, thickness) index) of the best, median and worst Z of a (n, T) array."""
    flat = np.asarray(z, dtype=np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    picks = [("best", order[0]), ("median", order[len(order) // 2]), ("worst", order[-1])]
    t = np.asarray(z).shape[1]
    return [(label, (int(k) // t, int(k) % t)) for label, k in picks]


def plot_gallery(
    potentials: np.ndarray,
    simulated: np.ndarray,
    predicted: np.ndarray,
    z: np.ndarray,
    *,
    labels: Sequence[str],
    panel_size: float = 2.4,
) -> Figure:
    """Rows of potential | simulated | predicted | difference for a few samples.

    Parameters
    ----------
    potentials : ndarray, shape (rows, S, S)
        Projected potentials [V·Å].
    simulated, predicted : ndarray, shape (rows, S, S)
        Standardised patterns (zero mean, unit variance); the difference is simulated − predicted
        on a symmetric colour scale.
    z : ndarray, shape (rows,)
        Z of each row (shown in %).
    labels : sequence of str
        Row labels (e.g. "best: Si 100 nm").
    """
    n = len(labels)
    fig = Figure(figsize=(4 * panel_size, n * panel_size), layout="constrained")
    axes = fig.subplots(n, 4, squeeze=False)
    titles = ["potential [V·Å]", "simulated", "predicted", "simulated − predicted"]
    for i in range(n):
        diff = simulated[i] - predicted[i]
        lim = float(np.max(np.abs(diff))) or 1.0
        imgs = [
            (potentials[i], "viridis", None, None),
            (simulated[i], "gray", None, None),
            (predicted[i], "gray", None, None),
            (diff, "RdBu_r", -lim, lim),
        ]
        for j, (img, cmap, vmin, vmax) in enumerate(imgs):
            ax = axes[i, j]
            im = ax.imshow(img, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
            if j in (0, 3):
                fig.colorbar(im, ax=ax, shrink=0.8)
        axes[i, 0].set_ylabel(f"{labels[i]}\nZ = {100 * z[i]:.1f} %", fontsize=8)
    return fig


def plot_learning_curve(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    spread: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    target: float | None = 0.05,
    xlabel: str = "training structures",
) -> Figure:
    """Test Z [%] against training-set size, one line per model.

    ``curves[name] = (sizes, mean_z)``; ``spread[name] = (median_z, p90_z)`` draws a band
    between the median and P90. ``target`` draws the study's Z = 5 % line.
    """
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for name, (n, z) in curves.items():
        (line,) = ax.plot(n, 100 * np.asarray(z), "o-", label=f"{name} (mean)")
        if spread and name in spread:
            med, p90 = spread[name]
            ax.fill_between(
                n, 100 * np.asarray(med), 100 * np.asarray(p90), color=line.get_color(), alpha=0.15
            )
    if target is not None:
        ax.axhline(100 * target, color="k", ls="--", lw=0.8, label=f"Z = {100 * target:g} %")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test Z [%]")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def plot_training_curves(logs: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> Figure:
    """Validation Z [%] per epoch, one line per run: ``logs[name] = (epochs, val_z)``."""
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for name, (ep, z) in logs.items():
        ax.plot(ep, 100 * np.asarray(z), label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Z [%]")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
