"""Synthetic experiments with known parameters, for validating a fit (tests, docs/refine.md).

A pattern is simulated by the engine with the true thickness, B and U_g factors and recorded as a
detector does: each pixel integrates the intensity over its area (the mean of ``supersample`` ×
``supersample`` directions solved exactly at their own tilts, :func:`lacbed.simulate.engine.
solve_directions`, with the true alignment), the disc's aperture cuts it, a Gaussian point spread
blurs it, a constant background is added and the counts are Poisson; dead and hot pixels can be
added. The beam sets are those of the experiment's own plan (a ``sim_size`` grid over its own
field of view), not those a fit uses. ``supersample=None`` instead samples a ``sim_size`` grid at
the pixel centres by cubic convolution (:func:`lacbed.refine.geometry.render`; the experiments of
lacbed ≤ 0.1, kept for comparison in benchmarks/refine_model_floor.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from lacbed.refine.geometry import Alignment, render

__all__ = ["synthetic_experiment"]


def synthetic_experiment(
    crystal,
    thickness_nm: float,
    alignment: Alignment,
    *,
    shape: tuple[int, int] = (64, 64),
    disc: tuple[float, float, float] | None = None,
    dose: float | None = 2000.0,
    background: float = 100.0,
    b: dict | None = None,
    ug: dict | None = None,
    sim_size: int = 160,
    voltage_kv: float = 200.0,
    dead_pixels: int = 0,
    seed: int = 0,
    strong_beams: int | None = None,
    supersample: int | None = 4,
) -> np.ndarray:
    """A degraded LACBED image of ``crystal`` made by lacbed with known parameters.

    Parameters
    ----------
    crystal : Crystal or path
    thickness_nm : float
        True thickness [nm].
    alignment : Alignment
        True zone-axis position [px], rotation [deg], scale [1/Å per px] and blur σ [px].
    shape : (rows, cols)
        Image size [px].
    disc : (row, col, radius), optional
        The illuminated disc [px]; default centred, radius 0.45 × the smaller side.
    dose : float or None
        Counts per pixel for intensity 1 (the incident beam) [electrons]; None: no noise (the
        expected counts for a dose of 1, plus the background).
    background : float
        Constant detector background [counts].
    b : dict, optional
        True B per element [Å²] (``{"Ga": 0.7}``); default the crystal's.
    ug : dict, optional
        True U_g factors (``{(2, 0, 0): 1.05}``) on the crystal's U_g; complex for an acentric
        reflection (``{(1, 1, 1): 1.03 + 0.05j}``: c on its orbit, c* on that of −g,
        :class:`lacbed.refine.structure.PotentialTable`).
    sim_size : int
        Side of the experiment's plan grid [px] (its tiles' beam sets; with ``supersample=None``
        the grid that is sampled).
    voltage_kv : float
    dead_pixels : int
        Number of dead (0) and as many hot (10× the mean) pixels.
    seed : int
        Random seed of the noise and bad pixels.
    strong_beams : int, optional
        Engine beam budget (None: adaptive, as :func:`lacbed.simulate.simulate_lacbed`).
    supersample : int or None
        Directions per pixel side averaged for each pixel [-]; None: cubic convolution of the
        ``sim_size`` grid at the pixel centres.

    Returns
    -------
    ndarray, shape ``shape``
        Counts (float64).
    """
    from lacbed.crystal import Crystal, load_crystal
    from lacbed.refine.detector import pixel_means
    from lacbed.refine.structure import PotentialTable
    from lacbed.simulate.engine import solve_plan
    from lacbed.simulate.plan import plan_lacbed

    if not isinstance(crystal, Crystal):
        crystal = load_crystal(crystal)
    rows, cols = shape
    if disc is None:
        disc = ((rows - 1) / 2, (cols - 1) / 2, 0.45 * min(rows, cols))
    reach = np.hypot(disc[0] - alignment.row, disc[1] - alignment.col) + disc[2] + 3
    half_width = 1.15 * reach * alignment.scale
    plan = plan_lacbed(
        crystal, [thickness_nm], voltage_kv=voltage_kv, size=sim_size, half_width=half_width,
        convergence_sample=0.0, strong_beams=strong_beams,
        symmetry="auto" if supersample is None else "1",
    )  # fmt: skip
    table = PotentialTable(plan)
    b_all = {el: float(np.mean(crystal.b_iso[[s == el for s in crystal.symbols]]))
             for el in dict.fromkeys(crystal.symbols)}  # fmt: skip
    b_all.update(b or {})
    plan = dataclasses.replace(plan, v_table=table.table(b_all, dict(ug or {})))
    rr, cc = np.indices(shape)
    aperture = np.hypot(rr - disc[0], cc - disc[1]) <= disc[2]
    if supersample is None:
        intensity = solve_plan(plan, warn=False).intensities[0]
        sharp = Alignment(alignment.row, alignment.col, alignment.angle, alignment.scale, 0.0)
        img, _ = render(intensity, half_width, shape, sharp)
    else:
        img = np.zeros(shape)
        img[aperture] = pixel_means(plan, rr[aperture], cc[aperture], alignment, supersample)[0]
    img = img * aperture
    if alignment.blur > 0:
        img = ndimage.gaussian_filter(img, alignment.blur, mode="constant")
    if dose is None:
        return img + background
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.clip(dose * img + background, 0, None)).astype(np.float64)
    if dead_pixels:
        inside = np.flatnonzero(np.hypot(rr - disc[0], cc - disc[1]).ravel() < disc[2])
        pick = rng.choice(inside, size=2 * dead_pixels, replace=False)
        counts.ravel()[pick[:dead_pixels]] = 0.0
        counts.ravel()[pick[dead_pixels:]] = 10.0 * counts.mean()
    return counts
