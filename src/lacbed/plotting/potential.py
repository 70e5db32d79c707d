"""Plot of a projected-potential image (matplotlib, object-oriented API: no pyplot state)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_potential"]


def plot_potential(
    image: np.ndarray,
    a: float,
    *,
    title: str | None = None,
    cmap: str = "viridis",
    size_inches: float = 4.6,
    cell: np.ndarray | None = None,
) -> Figure:
    """Projected potential of one cell with axes in Å and a colour bar in V·Å.

    Parameters
    ----------
    image : ndarray, shape (size, size)
        ``image[row, col]`` = V_p(x = col·a/size, y = row·a/size) [V·Å]
        (:func:`lacbed.scattering.projected_potential`).
    a : float
        Lattice parameter [Å].
    title : str, optional
        Figure title.
    cmap : str
        Colour map.
    size_inches : float
        Figure width [inch].
    cell : ndarray, shape (2, 3), optional
        Real-space 2D cell a₁, a₂ [units of a] of a projection along another zone axis
        (:func:`lacbed.scattering.potential.projection_cell`); ``image[row, col]`` is then
        V_p(a(u a₁ + v a₂)), u = col/size, v = row/size, drawn in its true (possibly oblique)
        shape with x along a₁.

    Returns
    -------
    matplotlib.figure.Figure
    """
    img = np.asarray(image, dtype=float)
    if cell is not None:
        return _plot_cell(img, a, np.asarray(cell, dtype=float), title, cmap, size_inches)
    n_rows, n_cols = img.shape
    dx, dy = a / n_cols, a / n_rows
    # pixel centres at x = col·a/size: the edges lie half a pixel either side
    extent = (-dx / 2, a - dx / 2, -dy / 2, a - dy / 2)
    fig = Figure(figsize=(size_inches, size_inches * 0.86), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(img, origin="lower", extent=extent, cmap=cmap, interpolation="nearest")
    ax.set_xlabel("x along [100] (Å)")
    ax.set_ylabel("y along [010] (Å)")
    ax.set_aspect("equal")
    fig.colorbar(im, ax=ax, label="projected potential (V·Å)")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def _plot_cell(img, a, cell, title, cmap, size_inches) -> Figure:
    """Projected potential of an oblique 2D cell (see :func:`plot_potential`)."""
    n_rows, n_cols = img.shape
    e1 = cell[0] / np.linalg.norm(cell[0])
    e2 = cell[1] - (cell[1] @ e1) * e1
    e2 /= np.linalg.norm(e2)
    p = a * np.array([[c @ e1, c @ e2] for c in cell])  # a₁, a₂ in plot coordinates [Å]
    u = (np.arange(n_cols + 1) - 0.5) / n_cols  # pixel edges
    v = (np.arange(n_rows + 1) - 0.5) / n_rows
    uu, vv = np.meshgrid(u, v)
    x = uu * p[0, 0] + vv * p[1, 0]
    y = uu * p[0, 1] + vv * p[1, 1]
    fig = Figure(figsize=(size_inches, size_inches * 0.86), layout="constrained")
    ax = fig.subplots()
    im = ax.pcolormesh(x, y, img, cmap=cmap, shading="flat")
    ax.set_xlabel("x along a₁ (Å)")
    ax.set_ylabel("y ⊥ a₁ (Å)")
    ax.set_aspect("equal")
    fig.colorbar(im, ax=ax, label="projected potential (V·Å)")
    if title:
        ax.set_title(title, fontsize=10)
    return fig
