"""The beam pool: every reflection that may take part in the Bloch-wave calculation.

Pure array functions; the crystal enters only through its lattice parameter (or, for a crystal
of any system, its reciprocal basis a*, b*, c*) and its centring.

References
----------
.. [1] R. Beanland et al., Felix v1.3 (``BlochSelection``/``HKLMake``): pool criterion
   |K − |g + Kẑ|| / |g| ≤ 0.08 with |g| ≤ RgLimit (docs/physics.md §11).
.. [2] International Tables for Crystallography Vol. A (2016), Table 2.1.3.5: reflection
   conditions of the centred lattices (P: none; I: h+k+l even; F: h, k, l all even or all odd;
   C: h+k even; A: k+l even; B: h+l even; R, obverse, hexagonal axes: −h+k+l = 3n).
"""

from __future__ import annotations

import numpy as np

__all__ = ["centring_allowed", "beam_pool", "HOLZ_TOLERANCE"]

#: Felix's pool tolerance |K − |g + Kẑ|| / |g| (docs/physics.md §11).
HOLZ_TOLERANCE: float = 0.08


def centring_allowed(hkl: np.ndarray, centring: str) -> np.ndarray:
    """Mask of reflections allowed by the lattice centring (ITA Table 2.1.3.5).

    Parameters
    ----------
    hkl : ndarray, shape (n, 3), int
        Miller indices.
    centring : {'P', 'I', 'F', 'C', 'A', 'B', 'R'}
        Lattice centring of the cell ('R': obverse rhombohedral centring of hexagonal axes).

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    hkl = np.asarray(hkl, dtype=np.int64)
    c = centring.upper()
    if c == "P":
        return np.ones(len(hkl), dtype=bool)
    if c == "I":
        return hkl.sum(axis=1) % 2 == 0
    if c == "F":
        par = hkl % 2
        return np.all(par == par[:, :1], axis=1)
    pairs = {"C": (0, 1), "A": (1, 2), "B": (0, 2)}
    if c in pairs:
        i, j = pairs[c]
        return (hkl[:, i] + hkl[:, j]) % 2 == 0
    if c == "R":
        return (-hkl[:, 0] + hkl[:, 1] + hkl[:, 2]) % 3 == 0
    raise ValueError(f"centring must be one of P, I, F, C, A, B, R, got {centring!r}")


def beam_pool(
    a: float,
    g_max: float,
    wavenumber: float,
    *,
    centring: str = "P",
    holz_tolerance: float = HOLZ_TOLERANCE,
    rotation: np.ndarray | None = None,
    reciprocal: np.ndarray | None = None,
) -> np.ndarray:
    """All centring-allowed reflections near the Ewald sphere of the [001] (or a rotated) zone axis.

    A reflection g = (h, k, l)/a enters when |g| ≤ g_max and
    |K − |g + Kẑ|| / |g| ≤ ``holz_tolerance`` (Felix's criterion, docs/physics.md §11), which
    admits the zero layer and the parts of the HOLZ layers (l < 0) that the Ewald sphere
    approaches. Kinematically forbidden reflections of glides/screws (Si 200) stay: only the
    lattice centring removes reflections, because those are zero to every order.

    Parameters
    ----------
    a : float
        Cubic lattice parameter [Å] (with ``reciprocal``: only the scale of the sort key).
    g_max : float
        Largest |g| [1/Å] (no 2π).
    wavenumber : float
        K = 1/λ [1/Å].
    centring : {'P', 'I', 'F'}
        Lattice centring.
    holz_tolerance : float
        Relative distance to the Ewald sphere allowed [-].
    rotation : ndarray, shape (3, 3), optional
        R (rows x̂, ŷ, ẑ) taking g into the frame whose z is the zone axis
        (:mod:`lacbed.crystal.orientation`, docs/physics.md §12); the criterion is then
        |K − |Rg + Kẑ|| / |g|: the zero layer ⊥ [UVW] and the HOLZ layers g·[UVW] < 0 that the
        Ewald sphere approaches. None: [001].
    reciprocal : ndarray, shape (3, 3), optional
        Reciprocal basis a*, b*, c* as rows in the crystal's Cartesian frame [1/Å] (any crystal
        system): g = (h, k, l) @ reciprocal, and |h| ≤ g_max |a| (|a| the length of the direct
        axis, a·g = h) bounds the index search. None: the cubic g = (h, k, l)/a.

    Returns
    -------
    ndarray, shape (n, 3), int64
        Miller indices, (0, 0, 0) first, then ordered by |g| and by a fixed index order, so the
        ordering is reproducible and invariant in |g| under the 4mm operations.
    """
    if not (g_max > 0 and a > 0):
        raise ValueError("g_max and a must be positive")
    if reciprocal is None:
        n = int(np.floor(g_max * a + 1e-9))
        r = np.arange(-n, n + 1)
        hh, kk, ll = np.meshgrid(r, r, r, indexing="ij")
        hkl = np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)
        g = hkl / a
    else:
        reciprocal = np.asarray(reciprocal, dtype=np.float64)
        lengths = np.linalg.norm(np.linalg.inv(reciprocal).T, axis=1)  # |a|, |b|, |c| [Å]
        n = np.floor(g_max * lengths + 1e-9).astype(np.int64)
        axes = [np.arange(-m, m + 1) for m in n]
        hh, kk, ll = np.meshgrid(*axes, indexing="ij")
        hkl = np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)
        g = hkl @ reciprocal
    gn = np.linalg.norm(g, axis=1)
    keep = (gn <= g_max * (1 + 1e-12)) & centring_allowed(hkl, centring)
    hkl, g, gn = hkl[keep], g[keep], gn[keep]
    K = float(wavenumber)
    if rotation is not None:
        g = g @ np.asarray(rotation, dtype=np.float64).T
    dist = np.abs(K - np.linalg.norm(g + np.array([0.0, 0.0, K]), axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(gn > 0, dist / np.where(gn > 0, gn, 1.0), 0.0)
    keep = ratio <= holz_tolerance
    hkl, gn = hkl[keep], gn[keep]
    order = np.lexsort((hkl[:, 1], hkl[:, 0], -hkl[:, 2], np.round(gn * a, 9)))
    return hkl[order]
