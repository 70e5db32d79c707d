"""The detector's pixels solved directly: each pixel's mean intensity over its area.

A detector pixel (r, c) records the intensity integrated over its square, i.e. over the tilts
k = s R(φ) (c + u − c₀, r + v − r₀) for u, v ∈ [−½, ½] (:func:`lacbed.refine.geometry.
pixel_tilts`). :func:`pixel_means` approximates that mean by the midpoint rule on an
n × n grid of sub-pixel points, u_j = (j + ½)/n − ½, each solved exactly at its own tilt by the
engine (:func:`lacbed.simulate.engine.solve_directions`; no simulation grid, no interpolation).
The midpoint rule's error falls as 1/n² for a smooth pattern; sharp lines (HOLZ lines, sharper
than a pixel) converge more slowly (benchmarks/refine_model_floor.py measures what n a fit needs).
"""

from __future__ import annotations

import numpy as np

from lacbed.refine.geometry import Alignment, pixel_tilts, subpixel_offsets

__all__ = ["pixel_means"]


def pixel_means(
    plan, rows: np.ndarray, cols: np.ndarray, al: Alignment, supersample: int = 1, *,
    n_jobs: int | None = None,
) -> np.ndarray:  # fmt: skip
    """Mean intensity over the area of each pixel, at every thickness of ``plan``.

    Parameters
    ----------
    plan : EnginePlan
        A bright-field plan that solves every pixel (symmetry '1'), covering the tilts (its
        pixels give the beam sets, :func:`lacbed.simulate.plan.direction_jobs`).
    rows, cols : ndarray of int, shape (n,)
        Detector pixels.
    al : Alignment
        Geometry (zone-axis position [px], rotation [deg], scale [1/Å per px]); the blur is not
        applied.
    supersample : int
        Sub-pixel points per pixel side (1: the pixel centre only) [-].
    n_jobs : int, optional
        Engine worker threads.

    Returns
    -------
    ndarray, shape (n_thickness, n)
        Intensities [-].
    """
    from lacbed.simulate.engine import solve_directions

    off = subpixel_offsets(supersample)
    dv, du = (a.ravel() for a in np.meshgrid(off, off, indexing="ij"))  # (s²,)
    r = np.asarray(rows, dtype=np.float64)[:, None] + dv[None, :]  # (n, s²)
    c = np.asarray(cols, dtype=np.float64)[:, None] + du[None, :]
    kt = pixel_tilts(r.ravel(), c.ravel(), al)  # (n s², 2)
    inten = solve_directions(plan, kt, n_jobs=n_jobs)  # (t, n s²)
    return inten.reshape(inten.shape[0], len(r), -1).mean(axis=2)
