"""Bright-field symmetry reduction and the crystal symmetry checks the engine needs.

The [001] bright-field disc of a cubic crystal has 4mm or 2mm symmetry (Buxton et al. 1976,
docs/physics.md §7). Each symmetry operation S acts on tilts k_t and on beams (h, k) with l unchanged;
I₀₀₀(S k_t) = I₀₀₀(k_t) when the beam set at S k_t is the image of the set at k_t. For point-group
operations that keep z this is a symmetry of the structure matrix; for those that flip z (the -4
of -43m, the 2-folds about x, y of 23 and 432) it follows from reciprocity (the 000 element of
exp(iAt) equals that of exp(iAᵀt); docs/physics.md §7), so it is exact in the Bloch-wave model too.

Pixel coordinates: u = c − N + ½, v = r − N + ½ (half-integers). The irreducible wedge is
u > 0, v > 0 (2mm) and additionally v ≤ u (4mm); pixels with u = v lie on the diagonal mirror.

References
----------
.. [1] B. F. Buxton, J. A. Eades, J. W. Steeds and G. M. Rackham, Phil. Trans. R. Soc. A281
   (1976) 171, Table 2.
"""

from __future__ import annotations

import numpy as np

from lacbed.errors import SettingsError

__all__ = [
    "resolve_symmetry",
    "wedge_pixels",
    "representative_ops",
    "fill_from_wedge",
    "apply_op_hkl",
    "find_inversion_centre",
    "lattice_centring",
]

#: Operation codes: bit 0 flips x, bit 1 flips y, bit 2 swaps x and y (applied after the flips).
#: An op maps a full-pattern tilt to its wedge representative: k_rep = op(k).


#: Bright-field symmetries in increasing order; each is a subgroup of the next.
_SYMMETRY_ORDER = ("1", "2mm", "4mm")


def resolve_symmetry(requested: str, crystal_symmetry: str) -> str:
    """The symmetry to reduce the pixels by: the crystal's, or a lower one on request.

    Parameters
    ----------
    requested : {'auto', '4mm', '2mm', '1'}
        'auto' takes ``crystal_symmetry``; '1' solves every pixel.
    crystal_symmetry : {'4mm', '2mm'}
        The crystal's [001] bright-field symmetry (:attr:`lacbed.crystal.Crystal.bright_field_symmetry`).

    Raises
    ------
    SettingsError
        An unknown symmetry, or one higher than the crystal's (4mm for an m-3 or 23 crystal would
        impose a diagonal mirror the pattern does not have).
    """
    if requested == "auto":
        return crystal_symmetry
    if requested not in _SYMMETRY_ORDER:
        raise SettingsError(f"symmetry must be 'auto', '4mm', '2mm' or '1', got {requested!r}")
    if _SYMMETRY_ORDER.index(requested) > _SYMMETRY_ORDER.index(crystal_symmetry):
        raise SettingsError(
            f"symmetry {requested!r} is higher than the crystal's [001] bright-field symmetry "
            f"{crystal_symmetry!r}; use 'auto', {crystal_symmetry!r} or '1'"
        )
    return requested


def _uv(size: int) -> tuple[np.ndarray, np.ndarray]:
    n = size // 2
    u = np.arange(size) - n + 0.5
    return u, u


def wedge_pixels(size: int, symmetry: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels that are solved.

    Parameters
    ----------
    size : int
        Pattern side (even).
    symmetry : {'4mm', '2mm', '2', '1'}
        '1' returns every pixel; '2' (the 2-fold axis along [001], used for dark-field discs,
        docs/dark_field.md) the half plane v > 0 (rows ≥ N).

    Returns
    -------
    rows, cols : ndarray of int, shape (n_unique,)
        Row-major order (n_unique = N(N+1)/2 for 4mm, N² for 2mm, 2N² for '2', 4N² for '1').
    """
    u, v = _uv(size)
    vv, uu = np.meshgrid(v, u, indexing="ij")  # (row, col)
    if symmetry == "4mm":
        mask = (uu > 0) & (vv > 0) & (vv <= uu)
    elif symmetry == "2mm":
        mask = (uu > 0) & (vv > 0)
    elif symmetry == "2":
        mask = vv > 0
    elif symmetry == "1":
        mask = np.ones_like(uu, dtype=bool)
    else:
        raise ValueError(f"symmetry must be '4mm', '2mm', '2' or '1', got {symmetry!r}")
    rows, cols = np.nonzero(mask)
    return rows, cols


def representative_ops(size: int, symmetry: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every pixel, its wedge representative and the op that maps it there.

    Returns
    -------
    rep_rows, rep_cols : ndarray of int, shape (size, size)
        Row and column of the representative of pixel [r, c].
    ops : ndarray of int, shape (size, size)
        Operation code (see module notes): k_rep = op(k).
    """
    n = size // 2
    u, v = _uv(size)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    ops = np.zeros((size, size), dtype=np.int64)
    if symmetry == "1":
        r, c = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        return r, c, ops
    if symmetry == "2":  # the 180° rotation (flip x and y, op 3) for v < 0
        r, c = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        lower = vv < 0
        ops[lower] = 3
        return np.where(lower, size - 1 - r, r), np.where(lower, size - 1 - c, c), ops
    fx = uu < 0
    fy = vv < 0
    au, av = np.abs(uu), np.abs(vv)
    ops |= fx.astype(np.int64) | (fy.astype(np.int64) << 1)
    if symmetry == "4mm":
        sw = av > au
        ops |= sw.astype(np.int64) << 2
        ru = np.where(sw, av, au)
        rv = np.where(sw, au, av)
    elif symmetry == "2mm":
        ru, rv = au, av
    else:
        raise ValueError(f"symmetry must be '4mm', '2mm', '2' or '1', got {symmetry!r}")
    rep_cols = (ru + n - 0.5).astype(np.int64)
    rep_rows = (rv + n - 0.5).astype(np.int64)
    return rep_rows, rep_cols, ops


def apply_op_hkl(hkl: np.ndarray, op: int, *, inverse: bool = False) -> np.ndarray:
    """Apply an operation code to Miller indices (h, k act like k_x, k_y; l unchanged)."""
    out = np.array(hkl, dtype=np.int64, copy=True)
    if not inverse:
        if op & 1:
            out[:, 0] *= -1
        if op & 2:
            out[:, 1] *= -1
        if op & 4:
            out[:, [0, 1]] = out[:, [1, 0]]
    else:
        if op & 4:
            out[:, [0, 1]] = out[:, [1, 0]]
        if op & 1:
            out[:, 0] *= -1
        if op & 2:
            out[:, 1] *= -1
    return out


def fill_from_wedge(
    values: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int, symmetry: str
) -> np.ndarray:
    """Spread values solved on the wedge pixels over the full pattern (exact copies).

    Parameters
    ----------
    values : ndarray, shape (..., n_unique)
        Values at ``(rows, cols)`` from :func:`wedge_pixels`.

    Returns
    -------
    ndarray, shape (..., size, size)
    """
    index = np.full((size, size), -1, dtype=np.int64)
    index[rows, cols] = np.arange(len(rows))
    rr, rc, _ = representative_ops(size, symmetry)
    src = index[rr, rc]
    if np.any(src < 0):
        raise ValueError("wedge pixels do not cover the pattern for this symmetry")
    return values[..., src]


# ---------------------------------------------------------------------------- crystal symmetry
def _site_keys(crystal) -> np.ndarray:
    keys = [
        f"{s}|{o:.6f}|{b:.6f}"
        for s, o, b in zip(crystal.symbols, crystal.occupancies, crystal.b_iso, strict=True)
    ]
    _, inv = np.unique(keys, return_inverse=True)
    return inv


def _maps_onto(pos: np.ndarray, keys: np.ndarray, new_pos: np.ndarray, tol: float) -> bool:
    """True when the transformed sites coincide (mod 1) with sites of the same kind."""
    for k in np.unique(keys):
        a = pos[keys == k]
        b = new_pos[keys == k]
        d = b[:, None, :] - a[None, :, :]
        d -= np.round(d)
        hit = np.all(np.abs(d) < tol, axis=-1)
        if not (np.all(hit.any(axis=1)) and np.all(hit.any(axis=0))):
            return False
    return True


def lattice_centring(crystal, *, tol: float = 1e-4) -> str:
    """Lattice centring ('F', 'I', 'P'; for a non-cubic crystal also 'C', 'A', 'B', 'R')
    detected from the atoms (not from the symbol).

    The structure is F-centred when it maps onto itself under (0,½,½), (½,0,½) and (½,½,0),
    I-centred under (½,½,½); a non-cubic crystal is C-, A- or B-centred under (½,½,0), (0,½,½)
    or (½,0,½), and R-centred (obverse, hexagonal axes) under (⅔,⅓,⅓) (International Tables A,
    Table 2.1.1.2). Reflection conditions: :func:`lacbed.bloch.pool.centring_allowed`.
    """
    pos = np.asarray(crystal.positions, dtype=np.float64)
    keys = _site_keys(crystal)
    f = [np.array(t) for t in ((0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0))]
    if all(_maps_onto(pos, keys, pos + t, tol) for t in f):
        return "F"
    if _maps_onto(pos, keys, pos + 0.5, tol):
        return "I"
    if getattr(crystal, "is_cubic", True):
        return "P"
    for label, t in (("C", f[2]), ("A", f[0]), ("B", f[1]), ("R", np.array([2, 1, 1]) / 3)):
        if _maps_onto(pos, keys, pos + t, tol):
            return label
    return "P"


def find_inversion_centre(crystal, *, tol: float = 1e-4) -> np.ndarray | None:
    """A centre of inversion of the structure (fractional), or None when there is none.

    Candidates are midpoints between the first site and every site of the same kind, plus
    half-lattice translations; a candidate p is accepted when r → 2p − r maps the structure onto
    itself. Shifting the origin there makes every U_g and U′_g real.
    """
    pos = np.asarray(crystal.positions, dtype=np.float64)
    keys = _site_keys(crystal)
    base = pos[0]
    halves = np.array([[i, j, k] for i in (0, 0.5) for j in (0, 0.5) for k in (0, 0.5)])
    for p in pos[keys == keys[0]]:
        for h in halves:
            centre = np.mod(0.5 * (base + p) + h, 1.0)
            if _maps_onto(pos, keys, 2 * centre - pos, tol):
                return centre
    return None
