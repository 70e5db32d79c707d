"""Plots for the surrogates: prediction galleries and learning curves (matplotlib Figure API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "gallery_picks",
    "plot_gallery",
    "plot_learning_curve",
    "plot_predictions",
    "plot_training_curves",
]


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


def plot_predictions(
    predicted: np.ndarray,
    names: Sequence[str],
    a: Sequence[float],
    *,
    thickness_nm: float | Sequence[float],
    voltage_kv: float = 200.0,
    half_width: float | None = None,
    units: str = "mrad",
    panel_size: float = 3.2,
    sources: np.ndarray | None = None,
) -> Figure:
    """Surrogate predictions drawn like :func:`lacbed.plotting.pattern.plot_pattern`.

    One panel per pattern with axes (beam tilt [mrad] or k [1/Å], zone axis at 0, Felix's pixel
    convention), a colour bar and the thickness: one row of crystals for (n, S, S), a grid of
    rows = crystals and columns = thicknesses for (n, T, S, S).

    Parameters
    ----------
    predicted : ndarray, shape (n, S, S) or (n, T, S, S)
        Standardised patterns (zero mean, unit variance per image).
    names : sequence of str
        Crystal names for the panel titles.
    a : sequence of float
        Lattice parameters [Å]: the default half-width of each pattern is W = 4/a.
    thickness_nm : float or sequence of float
        Thickness the model predicted at [nm] (one per column for (n, T, S, S)).
    voltage_kv : float
        Accelerating voltage of the model's training data [kV] (for the mrad axes).
    half_width : float, optional
        W [1/Å] of the training data if it was fixed (None: 4/a, lacbed's default).
    units : {"mrad", "1/A"}
        Axis units.
    sources : ndarray of str, shape (n,) or (n, T), optional
        Where each pattern came from, shown in its title (default "surrogate"; "hybrid" for a
        model that corrects an engine run; "engine" where the Bloch-wave engine replaced the
        prediction).
    """
    if units not in ("mrad", "1/A"):
        raise ValueError(f"units must be 'mrad' or '1/A', got {units!r}")
    pred = np.asarray(predicted)
    grid = pred.ndim == 4
    if not grid:
        pred = pred[None]  # (1, n, S, S): one row, a column per crystal
    else:
        pred = np.swapaxes(pred, 0, 1)  # (T, n, S, S) -> panel [row=crystal, col=thickness]
    ts = np.atleast_1d(np.asarray(thickness_nm, dtype=float))
    src = np.full(pred.shape[:2][::-1], "surrogate", dtype=object)
    if sources is not None:
        src[...] = np.asarray(sources, dtype=object).reshape(src.shape)
    n_t, n = pred.shape[0], pred.shape[1]
    rows, cols = (n, n_t) if grid else (1, n)
    fig = Figure(figsize=(panel_size * cols + 0.6, panel_size * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(n):
        for j in range(n_t):
            ax = axes[i, j] if grid else axes[0, i]
            _prediction_panel(
                fig,
                ax,
                pred[j, i],
                f"{names[i]}: t = {ts[j if grid else 0]:g} nm ({src[i, j]})",
                half_width if half_width is not None else 4.0 / a[i],
                voltage_kv,
                units,
                ylabel=j == 0 if grid else i == 0,
            )
    return fig


def _prediction_panel(fig, ax, img, title, half_width, voltage_kv, units, ylabel) -> None:
    """One pattern with its angular axes [mrad or 1/Å], title and colour bar."""
    from lacbed.constants import wavelength
    from lacbed.plotting.pattern import pixel_extent
    from lacbed.simulate.geometry import pixel_axis

    lam = wavelength(voltage_kv * 1e3)  # [Å]
    label = "mrad" if units == "mrad" else "1/Å"
    k = pixel_axis(img.shape[-1], half_width)  # [1/Å]
    x = 1e3 * lam * k if units == "mrad" else k
    im = ax.imshow(
        img, origin="lower", extent=pixel_extent(x, x), cmap="gray", interpolation="nearest"
    )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"x [100] ({label})", fontsize=8)
    if ylabel:
        ax.set_ylabel(f"y [010] ({label})", fontsize=8)
    ax.tick_params(labelsize=7)
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.ax.tick_params(labelsize=7)
    cb.set_label("standardised intensity", fontsize=7)


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
