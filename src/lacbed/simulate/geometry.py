"""LACBED geometry: pixels ↔ incident-beam tilts (Felix convention, docs/physics.md §6).

A pattern has 2N × 2N pixels (``size`` = 2N, even). Pixel (row r, column c) has the tangential
incident wave-vector components

    k_x = (c − N + ½) Δ,   k_y = (r − N + ½) Δ,   Δ = W / N,

with W the half-width [1/Å]; x ∥ [100], y ∥ [010], the beam along +z = [001], the zone axis at the
image centre (between pixels). A pattern-centre tilt (k_x0, k_y0) [1/Å] adds to every pixel:
k_x = (c − N + ½) Δ + k_x0, k_y = (r − N + ½) Δ + k_y0 (the centre off the zone axis,
docs/physics.md §6). The incident wave vector has |k| = K (vacuum wavenumber; the mean
inner potential enters the structure matrix as U₀, see :mod:`lacbed.bloch.matrix`).

References
----------
.. [1] R. Beanland et al., Felix v1.3, pixel loop in ``felix.f90``/``BlochSelection``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pixel_axis", "tilts", "incident_wavevectors"]


def pixel_axis(size: int, half_width: float, centre: float = 0.0) -> np.ndarray:
    """Tangential wave-vector component of each column (or row) [1/Å].

    Parameters
    ----------
    size : int
        Pattern side 2N [pixels] (even).
    half_width : float
        W [1/Å].
    centre : float
        The pattern-centre tilt along this axis, k_x0 or k_y0 [1/Å] (docs/physics.md §6);
        0 (default): the zone axis at the centre.

    Returns
    -------
    ndarray, shape (size,)
        (i − N + ½) W/N + centre for i = 0 … size−1.
    """
    n = size // 2
    ax = (np.arange(size) - n + 0.5) * (half_width / n)
    return ax + float(centre) if centre else ax


def tilts(
    rows: np.ndarray,
    cols: np.ndarray,
    size: int,
    half_width: float,
    tilt=(0.0, 0.0),
) -> np.ndarray:
    """Tangential incident wave vectors of the given pixels [1/Å], shape (n, 2) as (k_x, k_y).

    ``tilt`` = (k_x0, k_y0) [1/Å] is the pattern-centre tilt added to every pixel
    (:func:`pixel_axis`, docs/physics.md §6).
    """
    ax_x = pixel_axis(size, half_width, tilt[0])
    ax_y = pixel_axis(size, half_width, tilt[1])
    return np.stack([ax_x[np.asarray(cols)], ax_y[np.asarray(rows)]], axis=-1)


def incident_wavevectors(kt: np.ndarray, wavenumber: float) -> np.ndarray:
    """3D incident wave vectors on the vacuum Ewald sphere [1/Å].

    k = (k_x, k_y, √(K² − k_x² − k_y²)), so |k| = K = 1/λ.

    Parameters
    ----------
    kt : ndarray, shape (n, 2)
        Tangential components [1/Å].
    wavenumber : float
        K [1/Å].

    Returns
    -------
    ndarray, shape (n, 3)
    """
    kt = np.asarray(kt, dtype=np.float64).reshape(-1, 2)
    kz = np.sqrt(wavenumber**2 - np.sum(kt**2, axis=1))
    return np.column_stack([kt, kz])
