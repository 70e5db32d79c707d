"""Plots of LACBED patterns (matplotlib, object-oriented API: no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_pattern", "plot_discs", "plot_comparison", "pixel_extent"]

#: Panels per row of a disc montage.
MONTAGE_COLUMNS: int = 6


def pixel_extent(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """imshow extent (left, right, bottom, top) of pixel centres ``x`` (columns), ``y`` (rows).

    The edges lie half a pixel beyond the first and last centres; use with ``origin="lower"`` so
    row 0 (−y) is at the bottom, as in Felix's convention (docs/physics.md §6).
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    dx = (x[-1] - x[0]) / max(len(x) - 1, 1)
    dy = (y[-1] - y[0]) / max(len(y) - 1, 1)
    return (x[0] - dx / 2, x[-1] + dx / 2, y[0] - dy / 2, y[-1] + dy / 2)


def _axes_values(pattern, units: str) -> tuple[np.ndarray, np.ndarray, str]:
    if units == "mrad":
        return pattern.tilt_x_mrad, pattern.tilt_y_mrad, "mrad"
    if units in ("1/A", "1/Å", "invA"):
        return np.asarray(pattern.kx), np.asarray(pattern.ky), "1/Å"
    raise ValueError(f"units must be 'mrad' or '1/A', got {units!r}")


def _indices(v) -> str:
    """Felix-style indices: (1, -1, 0) → "1-10"."""
    return "".join(str(int(x)) for x in v)


def orientation_labels(settings: dict | None) -> tuple[str, str, str]:
    """Zone axis, +x and +y = zone axis × x of a pattern's settings, as "[uvw]" labels.

    Patterns without orientation settings are [001] with x = [100] and y = [010].
    """
    settings = settings or {}
    z = np.asarray(settings.get("zone_axis", (0, 0, 1)), dtype=np.int64)
    x = np.asarray(settings.get("x_direction", (1, 0, 0)), dtype=np.int64)
    cell = (settings.get("crystal") or {}).get("cell")
    if cell is not None:
        return _general_labels(z, x, cell)
    y = np.cross(z, x)
    g = np.gcd.reduce(np.abs(y)) if np.any(y) else 1
    return f"[{_indices(z)}]", f"[{_indices(x)}]", f"[{_indices(y // g)}]"


def _general_labels(z: np.ndarray, x: np.ndarray, cell) -> tuple[str, str, str]:
    """Labels of a non-cubic crystal (docs/crystal_systems.md): the zone axis [uvw] (direct),
    x (hkl) (reciprocal), y = ẑ × x̂ as a direct-lattice [uvw] when it is one with indices up
    to 12, else "⊥"."""
    from lacbed.crystal.model import lattice_from_parameters

    lat = lattice_from_parameters(*cell)  # rows a, b, c [Å]
    y = np.cross(z @ lat, x @ np.linalg.inv(lat).T) @ np.linalg.inv(lat)  # direct indices
    y = y / np.abs(y).max()
    label = "⊥"
    for m in range(1, 13):
        if np.allclose(y * m, np.round(y * m), atol=1e-6):
            label = f"[{_indices(np.round(y * m).astype(np.int64))}]"
            break
    return f"[{_indices(z)}]", f"({_indices(x)})", label


def plot_pattern(
    pattern,
    *,
    units: str = "mrad",
    cmap: str = "gray",
    panel_size: float = 3.2,
    title: str | None = None,
) -> Figure:
    """One panel per thickness of a :class:`~lacbed.simulate.LacbedPattern`, zone axis at 0.

    Parameters
    ----------
    pattern : LacbedPattern
        The pattern (intensities (n_thickness, size, size), kx/ky [1/Å]).
    units : {"mrad", "1/A"}
        Axis units: beam tilt [mrad] or tangential wave-vector component [1/Å].
    cmap : str
        Colour map.
    panel_size : float
        Width of one panel [inch].
    title : str, optional
        Figure title (default: the crystal name from the settings, if any).

    Returns
    -------
    matplotlib.figure.Figure
    """
    arr = np.asarray(pattern.intensities)
    if arr.ndim == 2:
        arr = arr[None]
    n = arr.shape[0]
    x, y, label = _axes_values(pattern, units)
    extent = pixel_extent(x, y)
    zone, xdir, ydir = orientation_labels(getattr(pattern, "settings", None))
    fig = Figure(figsize=(panel_size * n + 0.6, panel_size + 0.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for i, ax in enumerate(axes):
        im = ax.imshow(arr[i], origin="lower", extent=extent, cmap=cmap, interpolation="nearest")
        ax.set_title(f"t = {float(pattern.thickness_nm[i]):g} nm", fontsize=9)
        ax.set_xlabel(f"x {xdir} ({label})", fontsize=8)
        if i == 0:
            ax.set_ylabel(f"y {ydir} ({label})", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
    if title is None:
        settings = getattr(pattern, "settings", {}) or {}
        crystal = settings.get("crystal")
        if isinstance(crystal, dict):
            name = crystal.get("formula") or crystal.get("name")
        else:
            name = crystal
        title = f"{name} {zone}, 000 LACBED" if name else None
        tilt = settings.get("tilt") or (0.0, 0.0)
        if title and any(tilt):  # the centre off the zone axis (docs/physics.md §6)
            title += " (centre at k = ({:.3g}, {:.3g}) 1/Å)".format(*tilt)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_discs(
    pattern,
    *,
    units: str = "mrad",
    cmap: str = "gray",
    panel_size: float = 2.4,
    title: str | None = None,
) -> Figure:
    """Labelled montage of LACBED discs: one panel per reflection and thickness.

    Each panel has its own grey scale (a dark-field disc is far weaker than the bright field)
    and is titled with its Felix-style hkl label and thickness; the axes are the incident
    direction (the same for every disc, docs/physics.md §6), zone axis at 0.

    Parameters
    ----------
    pattern : LacbedPattern
        With ``reflections`` (n_g, 3) and intensities (n_g, n_thickness, size, size).
    units : {"mrad", "1/A"}
        Axis units: beam tilt [mrad] or tangential wave-vector component [1/Å].
    cmap : str
        Colour map.
    panel_size : float
        Width of one panel [inch].
    title : str, optional
        Figure title (default: the crystal formula, the zone axis and "LACBED discs").

    Returns
    -------
    matplotlib.figure.Figure
    """
    from lacbed.simulate.reflections import hkl_label

    hkl = np.asarray(pattern.reflections).reshape(-1, 3)
    arr = np.asarray(pattern.intensities).reshape(len(hkl), -1, *np.shape(pattern.intensities)[-2:])
    thick = np.atleast_1d(pattern.thickness_nm)
    panels = [(g, t) for t in range(arr.shape[1]) for g in range(len(hkl))]
    ncol = min(len(hkl), MONTAGE_COLUMNS)
    nrow = arr.shape[1] * int(np.ceil(len(hkl) / ncol))
    x, y, label = _axes_values(pattern, units)
    extent = pixel_extent(x, y)
    zone, xdir, ydir = orientation_labels(getattr(pattern, "settings", None))
    fig = Figure(figsize=(panel_size * ncol + 0.6, panel_size * nrow + 0.6), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    per_row = int(np.ceil(len(hkl) / ncol))
    for g, t in panels:
        ax = axes[t * per_row + g // ncol, g % ncol]
        ax.set_axis_on()
        im = ax.imshow(arr[g, t], origin="lower", extent=extent, cmap=cmap, interpolation="nearest")
        ax.set_title(f"{hkl_label(hkl[g])}, t = {float(thick[t]):g} nm", fontsize=8)
        ax.tick_params(labelsize=6)
        if g % ncol == 0:
            ax.set_ylabel(f"y {ydir} ({label})", fontsize=7)
        ax.set_xlabel(f"x {xdir} ({label})", fontsize=7)
        fig.colorbar(im, ax=ax, shrink=0.75).ax.tick_params(labelsize=6)
    if title is None:
        crystal = (getattr(pattern, "settings", {}) or {}).get("crystal")
        name = (
            crystal.get("formula") or crystal.get("name") if isinstance(crystal, dict) else crystal
        )
        title = f"{name} {zone}, LACBED discs" if name else None
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_comparison(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    extent: tuple[float, float, float, float] | None = None,
    axis_label: str = "1/Å",
    diff_of: tuple[int, int] | None = (0, 1),
    panel_size: float = 3.2,
    suptitle: str | None = None,
) -> Figure:
    """Images side by side (same grey scale), plus the difference of two of them.

    Parameters
    ----------
    images : sequence of ndarray (size, size)
        Images in Felix's convention (arr[row, col], origin lower).
    titles : sequence of str
        Panel titles.
    extent : tuple, optional
        imshow extent (see :func:`pixel_extent`).
    axis_label : str
        Axis units label.
    diff_of : (i, j) or None
        Add a panel images[i] − images[j] (diverging colour map); None for none.
    """
    imgs = [np.asarray(im, float) for im in images]
    n = len(imgs) + (diff_of is not None)
    fig = Figure(figsize=(panel_size * n + 0.6, panel_size + 0.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    vmin = min(float(im.min()) for im in imgs)
    vmax = max(float(im.max()) for im in imgs)
    for ax, im, t in zip(axes, imgs, titles, strict=False):
        h = ax.imshow(im, origin="lower", extent=extent, cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel(f"x ({axis_label})", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(h, ax=axes[len(imgs) - 1], shrink=0.8).ax.tick_params(labelsize=7)
    axes[0].set_ylabel(f"y ({axis_label})", fontsize=8)
    if diff_of is not None:
        i, j = diff_of
        d = imgs[i] - imgs[j]
        lim = float(np.abs(d).max()) or 1.0
        ax = axes[-1]
        h = ax.imshow(d, origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{titles[i]} − {titles[j]}", fontsize=9)
        ax.set_xlabel(f"x ({axis_label})", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(h, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig
