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

    Returns
    -------
    matplotlib.figure.Figure
    """
    img = np.asarray(image, dtype=float)
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
