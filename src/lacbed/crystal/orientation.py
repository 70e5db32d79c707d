"""Crystal orientation: the zone axis, the x-direction and the surface normal (any crystal system).

The engine works in a frame with the beam (at the pattern centre) along +z (docs/physics.md §12):

    ẑ = [UVW]/|[UVW]|,   x̂ = x⊥/|x⊥|  with  x⊥ = [HKL] − ([HKL]·ẑ) ẑ,   ŷ = ẑ × x̂,

with Felix's meanings: [UVW] is IIncidentBeamDirection, [HKL] (a reciprocal-lattice vector) is
IXDirection, and the surface normal [UVW]_n is INormalDirection. For a cubic crystal a direction
[uvw] and the reciprocal vector (hkl) with the same indices are parallel, so every vector is
rotated by the same matrix R (rows x̂, ŷ, ẑ): g_frame = R g. For the zone axis [001] with
x = [100], R is the identity and the engine's results are those of the [001] path bit for bit.

Default x-direction: the lowest-index reciprocal vector perpendicular to the zone axis (least
h² + k² + l², then the largest (h, k, l) in lexicographic order), so [001] → [100], [100] → [010],
[110] → [001], [111] → [10-1]. Felix needs an explicit IXDirection; this rule gives one.

Any other crystal system (``lattice=``, issue 12): [UVW] and the normal are direct-lattice
vectors, r = U a + V b + W c = [UVW] @ lattice, and (HKL) a reciprocal-lattice vector,
g = (HKL) @ (a*, b*, c*), both in the crystal's Cartesian frame; they are no longer parallel for
equal indices. The frame is built from these Cartesian vectors by the same formulas, and the
default x-direction is the shortest g ⊥ [UVW] (least |g|, then the lexicographically largest
(h, k, l)): for a hexagonal crystal along [001] ([0001]) it is (100). R is then always kept
(never replaced by None), so a non-cubic crystal never takes the cubic [001] shortcuts.

References
----------
.. [1] R. Beanland et al., Felix v1.3 (input keys IIncidentBeamDirection, IXDirection,
   INormalDirection).
"""

from __future__ import annotations

import numpy as np

from lacbed.errors import SettingsError

__all__ = [
    "Orientation",
    "orientation",
    "default_x_direction",
    "point_group_operations",
    "crystal_operations",
    "frame_symmetry",
]


def _int_vector(name: str, v) -> tuple[int, int, int]:
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be three integers, got {v!r}") from None
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise SettingsError(f"{name} must be three integers, got {v!r}")
    if np.any(a != np.round(a)):
        raise SettingsError(f"{name} must be three integers, got {v!r}")
    t = tuple(int(x) for x in np.round(a).astype(np.int64))
    if t == (0, 0, 0):
        raise SettingsError(f"{name} must not be 0 0 0")
    return t  # type: ignore[return-value]


def _candidates(n: int) -> np.ndarray:
    r = np.arange(n, -n - 1, -1)
    hh, kk, ll = np.meshgrid(r, r, r, indexing="ij")
    return np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)  # lexicographic, descending


def default_x_direction(zone_axis, reciprocal=None) -> tuple[int, int, int]:
    """Lowest-index reciprocal vector perpendicular to the zone axis (module notes).

    Parameters
    ----------
    zone_axis : sequence of 3 int
        [UVW].
    reciprocal : ndarray, shape (3, 3), optional
        Reciprocal basis a*, b*, c* as rows [1/Å] of a crystal of any system: the shortest |g|
        is taken instead of the least h² + k² + l². None: cubic.

    Returns
    -------
    tuple of 3 int
        (h, k, l) with hU + kV + lW = 0, least h² + k² + l² (or |g|), then the
        lexicographically largest.
    """
    z = np.asarray(_int_vector("zone_axis", zone_axis), dtype=np.int64)
    if reciprocal is not None:
        rec = np.asarray(reciprocal, dtype=np.float64)
        lengths = np.linalg.norm(np.linalg.inv(rec).T, axis=1)  # |a|, |b|, |c| [Å]
        for n in range(1, 64):
            cand = _candidates(n)
            cand = cand[(cand @ z == 0) & np.any(cand != 0, axis=1)]
            if len(cand):
                # every g no longer than the shortest found has |h_i| ≤ |g||a_i|: search that box
                shortest = np.linalg.norm(cand @ rec, axis=1).min()
                m = min(int(np.ceil(shortest * lengths.max() * (1 + 1e-9))), 63)
                cand = _candidates(max(m, n))
                cand = cand[(cand @ z == 0) & np.any(cand != 0, axis=1)]
                gn = np.linalg.norm(cand @ rec, axis=1)
                best = np.nonzero(gn <= gn.min() * (1 + 1e-9))[0][0]  # first: largest
                return tuple(int(x) for x in cand[best])
        raise SettingsError(f"no x-direction found for zone axis {zone_axis!r}")  # pragma: no cover
    for n in range(1, 64):
        r = np.arange(n, -n - 1, -1)
        hh, kk, ll = np.meshgrid(r, r, r, indexing="ij")
        hkl = np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)  # lexicographic, descending
        ok = (hkl @ z == 0) & np.any(hkl != 0, axis=1)
        if ok.any():
            cand = hkl[ok]
            n2 = np.sum(cand * cand, axis=1)
            return tuple(int(x) for x in cand[np.argmin(n2)])  # argmin: first = largest
    raise SettingsError(f"no x-direction found for zone axis {zone_axis!r}")  # pragma: no cover


class Orientation:
    """Frame of a crystal (module notes).

    Attributes
    ----------
    zone_axis, x_direction, normal : tuple of 3 int
        [UVW], [HKL] and the surface normal, as given (x and normal resolved from defaults).
    rotation : ndarray, shape (3, 3), or None
        R with rows x̂, ŷ, ẑ (crystal Cartesian → frame); None for the standard [001] frame of a
        cubic crystal.
    normal_frame : ndarray, shape (3,), or None
        Unit surface normal in the frame; None when it is ẑ (the zone axis).
    """

    def __init__(self, zone_axis, x_direction, normal, rotation, normal_frame):
        self.zone_axis = zone_axis
        self.x_direction = x_direction
        self.normal = normal
        self.rotation = rotation
        self.normal_frame = normal_frame

    @property
    def standard(self) -> bool:
        """The [001] frame of the original engine (wedge symmetry available)."""
        return self.rotation is None and self.normal_frame is None

    def to_frame(self, g: np.ndarray) -> np.ndarray:
        """Rotate Cartesian reciprocal vectors (n, 3) [1/Å] into the frame [1/Å]."""
        g = np.asarray(g, dtype=np.float64)
        return g if self.rotation is None else g @ self.rotation.T

    def settings(self) -> dict:
        """Plain-data record for a result's settings."""
        return {
            "zone_axis": list(self.zone_axis),
            "x_direction": list(self.x_direction),
            "normal": list(self.normal),
        }


def orientation(
    zone_axis=(0, 0, 1),
    x_direction=None,
    normal=None,
    *,
    names: tuple[str, str, str] = ("zone axis", "x-direction", "normal"),
    lattice: np.ndarray | None = None,
) -> Orientation:
    """Resolve and check a crystal's orientation (module notes, docs/physics.md §12).

    Parameters
    ----------
    zone_axis : sequence of 3 int
        [UVW], the beam direction at the pattern centre (Felix IIncidentBeamDirection).
    x_direction : sequence of 3 int, optional
        (HKL), the reciprocal vector whose component perpendicular to [UVW] is the pattern's +x
        (Felix IXDirection); default :func:`default_x_direction`.
    normal : sequence of 3 int, optional
        Surface normal [UVW]_n (Felix INormalDirection); default the zone axis. It must point
        into the same half space as the beam (n·ẑ > 0).
    names : tuple of 3 str
        How the three vectors are called in error messages (CLI options, felix.inp keys).
    lattice : ndarray, shape (3, 3), optional
        Cell vectors a, b, c as rows [Å] of a crystal of any system
        (:attr:`lacbed.crystal.Crystal.lattice`): [UVW] and the normal are direct-lattice
        vectors, (HKL) a reciprocal one (module notes). None: cubic (indices used as Cartesian
        directions, the original behaviour).

    Returns
    -------
    Orientation

    Raises
    ------
    SettingsError
        A zero vector, non-integers, an x-direction parallel to the zone axis, or a normal at 90°
        or more to the zone axis (one line each).
    """
    nz, nx, nn = names
    z_i = _int_vector(nz, zone_axis)
    rec = None if lattice is None else np.linalg.inv(np.asarray(lattice, dtype=np.float64)).T
    x_i = default_x_direction(z_i, rec) if x_direction is None else _int_vector(nx, x_direction)
    n_i = z_i if normal is None else _int_vector(nn, normal)
    z = np.asarray(z_i, dtype=np.float64)
    x = np.asarray(x_i, dtype=np.float64)
    n = np.asarray(n_i, dtype=np.float64)
    if lattice is not None:  # Cartesian directions of the indices (module notes)
        lat = np.asarray(lattice, dtype=np.float64)
        z, x, n = z @ lat, x @ rec, n @ lat
    z /= np.linalg.norm(z)
    x_perp = x - (x @ z) * z
    if np.linalg.norm(x_perp) < 1e-9 * np.linalg.norm(x):
        raise SettingsError(
            f"{nx} {' '.join(map(str, x_i))} is parallel to the {nz} "
            f"{' '.join(map(str, z_i))}; give one with a component perpendicular to it"
        )
    n /= np.linalg.norm(n)
    if n @ z <= 1e-9:
        raise SettingsError(
            f"{nn} {' '.join(map(str, n_i))} is at 90° or more to the {nz} "
            f"{' '.join(map(str, z_i))}; the beam must enter through the surface"
        )
    ex = x_perp / np.linalg.norm(x_perp)
    rot = np.stack([ex, np.cross(z, ex), z])
    n_frame = None if np.allclose(np.cross(n, z), 0.0, atol=1e-15) else rot @ n
    if lattice is None and np.array_equal(rot, np.eye(3)):
        rot = None  # [001] with x ∥ [100] (any index multiples): the original frame, exactly
    return Orientation(z_i, x_i, n_i, rot, n_frame)


def point_group_operations(point_group: str) -> np.ndarray:
    """The operations of a cubic point group as integer matrices acting on (h, k, l) and [uvw].

    All are signed permutation matrices M = S P (International Tables A, Table 10.1.2.2): m-3m
    all 48; 432 those with det M = +1; -43m those with an even number of minus signs; m-3 the
    cyclic permutations with any signs; 23 the cyclic permutations with an even number of minus
    signs.

    Returns
    -------
    ndarray of int, shape (n_ops, 3, 3)
    """
    import itertools

    ops = []
    for perm in itertools.permutations(range(3)):
        p = np.eye(3, dtype=np.int64)[list(perm)]
        cyclic = round(np.linalg.det(p)) == 1
        for signs in itertools.product((1, -1), repeat=3):
            m = np.diag(signs) @ p
            even = np.prod(signs) == 1
            keep = {
                "m-3m": True,
                "432": round(np.linalg.det(m)) == 1,
                "-43m": even,
                "m-3": cyclic,
                "23": cyclic and even,
            }.get(point_group)
            if keep is None:
                raise ValueError(f"not a cubic point group: {point_group!r}")
            if keep:
                ops.append(m)
    return np.array(ops)


def crystal_operations(crystal, symprec: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Point-group operations of a crystal of any system, found from its atoms by spglib.

    The rotations W of the space group in the crystal's own cell (acting on fractional
    coordinates and direct indices [uvw] as column vectors) are found by spglib from the atoms,
    one species per distinct (element, occupancy, B), so that they are symmetries of the
    potential itself; the Cartesian operation is M = Lᵀ W L⁻ᵀ (L: cell vectors as rows), and
    on Miller indices (hkl) it acts as W⁻ᵀ (International Tables A, Section 1.5.2).

    Parameters
    ----------
    crystal : lacbed.crystal.Crystal
    symprec : float
        spglib tolerance [Å]; 1e-3 Å, far below any real displacement.

    Returns
    -------
    cartesian : ndarray, shape (n_ops, 3, 3)
        Orthogonal matrices M acting on Cartesian (column) vectors.
    hkl : ndarray of int, shape (n_ops, 3, 3)
        W⁻ᵀ, acting on (h, k, l) as column vectors.
    """
    import spglib

    from lacbed.crystal.standardise import group_sites

    lat = crystal.lattice
    pos, contents = group_sites(
        lat, crystal.positions, crystal.symbols, crystal.occupancies, crystal.b_iso
    )
    kinds = sorted(set(contents))
    types = [kinds.index(c) + 1 for c in contents]
    sym = spglib.get_symmetry((lat, pos, types), symprec=symprec)
    rots = np.unique(np.asarray(sym["rotations"], dtype=np.int64), axis=0)
    cart = np.einsum("ji,njk,kl->nil", lat, rots, np.linalg.inv(lat).T)  # Lᵀ W L⁻ᵀ
    hkl = np.round(np.linalg.inv(rots).transpose(0, 2, 1)).astype(np.int64)
    return cart, hkl


def frame_symmetry(
    orient: Orientation, point_group: str, operations=None
) -> tuple[str, np.ndarray | None]:
    """Bright-field reduction of an oriented crystal from its direct symmetries.

    Only point-group operations M that keep the zone axis (M ẑ = ẑ, so they keep the surface
    normal only when it is the zone axis) and map the square pixel grid onto itself (R M Rᵀ a
    flip of x and/or y, or a swap of x and y) are used: they are symmetries of the structure
    matrix, I₀₀₀(F k_t) = I₀₀₀(k_t) with the beam sets mapped by M (Buxton et al. 1976: the
    vertical mirrors and rotations of the diffraction group). Operations that hold by reciprocity
    only are not used away from the [001] frame.

    Parameters
    ----------
    orient : Orientation
    point_group : str
        Cubic point group of the crystal (ignored when ``operations`` is given).
    operations : tuple of ndarray, optional
        (Cartesian, hkl) operations of a crystal of any system (:func:`crystal_operations`);
        None: the cubic point group's signed permutations, which act alike on both.

    Returns
    -------
    symmetry : {'4mm', '2mm', '1'}
        '2mm' when both mirrors x → −x and y → −y are operations, '4mm' when also the diagonal
        swap is; anything less gives '1' (every pixel solved).
    swap : ndarray of int, shape (3, 3), or None
        For '4mm': the operation M (acting on h, k, l) whose frame image swaps x and y.
    """
    if orient.normal_frame is not None:
        return "1", None
    rot = np.eye(3) if orient.rotation is None else orient.rotation
    if operations is None:
        ops = point_group_operations(point_group)
        operations = (ops, ops)
    grid = {}
    for m_cart, m in zip(*operations, strict=True):
        f = rot @ m_cart @ rot.T
        if not np.allclose(f[2], [0, 0, 1], atol=1e-9) or not np.allclose(f[:, 2], [0, 0, 1]):
            continue
        f2 = np.round(f[:2, :2]).astype(np.int64)
        if not np.allclose(f[:2, :2], f2, atol=1e-9):
            continue  # a rotation by other than a multiple of 90°: not on the pixel grid
        grid[(tuple(f2[0]), tuple(f2[1]))] = m
    mx = ((-1, 0), (0, 1)) in grid
    my = ((1, 0), (0, -1)) in grid
    swap = grid.get(((0, 1), (1, 0)))
    if mx and my and swap is not None:
        return "4mm", swap
    if mx and my:
        return "2mm", None
    return "1", None
