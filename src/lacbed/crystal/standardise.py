"""Reduce any periodic cell of a cubic crystal to its conventional cubic cell with spglib.

Crystals of the other systems (:func:`any_crystal`, issue 12) are kept in the cell they are given
in: the user's zone axes and reflections refer to that cell, as in Felix. spglib only names their
space group.

Every reader (CIF, ASE, pymatgen) ends here: it hands over the full list of atoms of *some* cell
(conventional, primitive, a non-standard origin, ...) and gets back a :class:`Crystal` holding every
atom of the conventional cubic cell in the standard setting of International Tables A (the setting
spglib chooses: for the groups with two origin choices, spglib's default is origin choice 1).

Occupancies and Debye–Waller factors are carried through the standardisation by giving spglib one
integer species per distinct site *content* — the tuple of (element, occupancy, B) on a position —
so that a mixed site (two elements sharing a position) is one spglib atom, and two atoms of the
same element but different B are never treated as equivalent.

Orientation: when the input cell's Cartesian axes are already cubic axes (the usual case: a
conventional CIF, or ASE's/OQMD's primitive fcc/bcc cells), the conventional cell keeps the input
orientation, so that e.g. the polarity of GaAs along [001] is not silently rotated; otherwise it
takes spglib's standard orientation. The origin is always spglib's standard origin.

References
----------
A. Togo, K. Shinohara & I. Tanaka, "Spglib: a software library for crystal symmetry search",
Sci. Technol. Adv. Mater. Meth. 4 (2024) 2384822 (standardisation, ``std_*`` fields).
International Tables for Crystallography Vol. A (2016), space groups 195–230.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import numpy as np

from lacbed.crystal.elements import formula_order_key, normalise_symbol
from lacbed.crystal.model import Crystal
from lacbed.errors import CrystalError, NonCubicError

__all__ = [
    "DEFAULT_B",
    "MERGE_TOLERANCE",
    "SYMPREC",
    "any_crystal",
    "conventional_crystal",
    "crystal_system",
    "group_sites",
]

logger = logging.getLogger(__name__)

#: Default isotropic Debye–Waller factor B [Å²] for atoms whose source gives none (recorded in
#: ``crystal.info``). 0.5 Å² is a neutral guess of the size of room-temperature B values of inorganic
#: solids (e.g. Si 0.46 Å², Peng, Ren, Dudarev & Whelan, Acta Cryst. A52 (1996) 456; GaAs 0.48–0.62
#: Å², Stevenson, Acta Cryst. A50 (1994) 621; see the sources in ``lacbed/examples/*.cif``).
DEFAULT_B = 0.5

#: Symmetry tolerance passed to spglib [Å] (``symprec``). 0.01 Å accepts coordinates printed to
#: four decimals in cells up to ~50 Å and the residual forces of DFT-relaxed database cells (OQMD,
#: Materials Project), while being far below any real atomic displacement (> 0.05 Å).
SYMPREC = 1e-2

#: Atoms closer than this [Å] are taken to share one site (a mixed site, or a duplicate).
MERGE_TOLERANCE = 1e-2

_OCC_DECIMALS = 4  # occupancies are compared to 1e-4 (CIFs print at most four decimals)
_B_DECIMALS = 4  # B [Å²] compared to 1e-4 Å²

# Crystal systems by space-group number (International Tables A, Table 2.1.1.1).
_SYSTEMS = (
    (1, 2, "triclinic"),
    (3, 15, "monoclinic"),
    (16, 74, "orthorhombic"),
    (75, 142, "tetragonal"),
    (143, 167, "trigonal"),
    (168, 194, "hexagonal"),
    (195, 230, "cubic"),
)


def crystal_system(space_group_number: int) -> str:
    """Crystal system ('triclinic', ..., 'cubic') of a space group number 1–230."""
    for lo, hi, name in _SYSTEMS:
        if lo <= space_group_number <= hi:
            return name
    raise CrystalError(f"space group number {space_group_number} is outside 1-230")


def _cell_parameters(lattice: np.ndarray) -> str:
    lengths = np.linalg.norm(lattice, axis=1)
    a, b, c = lattice

    def ang(u: np.ndarray, v: np.ndarray) -> float:
        return float(
            np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))
        )

    return (
        f"a={lengths[0]:.4f} b={lengths[1]:.4f} c={lengths[2]:.4f} Å, "
        f"alpha={ang(b, c):.2f} beta={ang(a, c):.2f} gamma={ang(a, b):.2f} deg"
    )


SiteContent = tuple[tuple[str, float, float], ...]


def group_sites(
    lattice: np.ndarray,
    positions: np.ndarray,
    symbols: Sequence[str],
    occupancies: np.ndarray,
    b_iso: np.ndarray,
    *,
    tolerance: float = MERGE_TOLERANCE,
) -> tuple[np.ndarray, list[SiteContent]]:
    """Group atoms that share a position into sites.

    Parameters
    ----------
    lattice : ndarray, shape (3, 3)
        Cell vectors as rows [Å].
    positions : ndarray, shape (n, 3)
        Fractional coordinates.
    symbols, occupancies, b_iso
        Element, occupancy [-] and B [Å²] of each atom.
    tolerance : float
        Atoms closer than this [Å] (with periodic images) share a site.

    Returns
    -------
    site_positions : ndarray, shape (m, 3)
        Fractional position of each site (that of its first atom), wrapped into [0, 1).
    contents : list of tuple
        For each site, the sorted tuple of (element, occupancy, B); exact duplicates are removed.

    Raises
    ------
    CrystalError
        If the occupancies on one site add up to more than 1.
    """
    pos = np.mod(np.asarray(positions, float).reshape(-1, 3), 1.0)
    n = pos.shape[0]
    site_of = np.full(n, -1)
    site_pos: list[np.ndarray] = []
    members: list[list[int]] = []
    for i in range(n):
        if site_pos:
            d = pos[i] - np.asarray(site_pos)  # (m, 3)
            d -= np.round(d)
            dist = np.linalg.norm(d @ lattice, axis=1)
            j = int(np.argmin(dist))
            if dist[j] < tolerance:
                site_of[i] = j
                members[j].append(i)
                continue
        site_of[i] = len(site_pos)
        site_pos.append(pos[i])
        members.append([i])
    contents: list[SiteContent] = []
    for j, idx in enumerate(members):
        entries = sorted(
            {
                (
                    symbols[i],
                    round(float(occupancies[i]), _OCC_DECIMALS),
                    round(float(b_iso[i]), _B_DECIMALS),
                )
                for i in idx
            }
        )
        total = sum(e[1] for e in entries)
        if total > 1 + 1e-3:  # 1e-3: CIF occupancies are rounded to three or four decimals
            x, y, z = site_pos[j]
            desc = ", ".join(f"{s} {o:g}" for s, o, _ in entries)
            raise CrystalError(
                f"the site at ({x:.4f}, {y:.4f}, {z:.4f}) holds {desc}: total occupancy "
                f"{total:.4g} > 1 (two atoms closer than {tolerance} Å?)"
            )
        contents.append(tuple(entries))
    return np.array(site_pos).reshape(-1, 3), contents


def _signed_permutation(r: np.ndarray) -> np.ndarray | None:
    """Round ``r`` to a signed permutation matrix if it is one (within 1e-4), else None."""
    q = np.round(r)
    if (
        np.allclose(r, q, atol=1e-4)
        and np.allclose(np.abs(q).sum(axis=0), 1)
        and np.allclose(np.abs(q).sum(axis=1), 1)
    ):
        return q
    return None


def _content_key(content: SiteContent) -> tuple:
    """Order of site contents for the canonical origin: cations first (electronegativity)."""
    return tuple((formula_order_key(el), el, o, b) for el, o, b in content)


def _lexicographic_key(positions: np.ndarray, contents: list) -> list:
    pos = np.mod(np.round(positions, 8), 1.0)
    return sorted((_content_key(c), tuple(p)) for p, c in zip(pos, contents, strict=True))


def _canonical_cell(positions: np.ndarray, contents: list, a: float) -> tuple[np.ndarray, str]:
    """Translate a conventional cubic cell to a canonical origin.

    1. A translation-invariant form: the atom of the least frequent site content (ties: the first
       in cation-first order) that gives the smallest sorted list of (element, x, y, z) is
       put at the origin. Any two descriptions of one structure in one orientation now coincide.
    2. If that cell, as given, is a standard setting up to an origin shift (spglib finds an
       identity transformation), the origin is moved to the standard origin, choosing among the
       equivalent standard origins with :func:`_canonical_origin`. Otherwise step 1 is kept.

    Returns the positions (n, 3) and which origin was used ('standard' or 'atom').
    """
    import spglib

    kinds = sorted(set(contents))
    count = {k: sum(c == k for c in contents) for k in kinds}
    first = min(kinds, key=lambda k: (count[k], _content_key(k)))
    best, best_key = positions, None
    for i, c in enumerate(contents):
        if c != first:
            continue
        cand = np.mod(positions - positions[i], 1.0)
        key = _lexicographic_key(cand, contents)
        if best_key is None or key < best_key:
            best, best_key = cand, key
    pos = np.mod(np.round(best, 10), 1.0)
    types = [kinds.index(c) + 1 for c in contents]
    try:
        ds = spglib.get_symmetry_dataset((np.eye(3) * a, pos, types), symprec=1e-4 * a)
    except Exception as exc:  # noqa: BLE001 - spglib's error types vary by version
        logger.warning(
            "spglib failed on the canonical cell (%s: %s); keeping the origin on an atom",
            type(exc).__name__,
            str(exc).strip(),
        )
        ds = None
    if ds is None or not np.allclose(ds.transformation_matrix, np.eye(3), atol=1e-9):
        return pos, "atom"
    shifted = np.mod(pos + np.asarray(ds.origin_shift, dtype=np.float64), 1.0)
    return _canonical_origin(shifted, contents, int(ds.hall_number)), "standard"


def _canonical_origin(positions: np.ndarray, contents: list, hall_number: int) -> np.ndarray:
    """Choose one origin among those that keep the standard setting, deterministically.

    A translation t keeps a structure in the standard setting of its space group iff
    (R − 1) t is a centring translation for every point operation R (then each operation (R, τ)
    maps the shifted structure onto itself). Such t form the translational part of the Euclidean
    normaliser (International Tables A, Section 3.5; e.g. (½, ½, ½) in Fm-3m swaps Na and Cl of
    NaCl). Among them, the one giving the smallest sorted list of (element, x, y, z), elements in
    cation-first (electronegativity) order, is taken: Na rather than Cl at the origin of NaCl, Ga
    rather than As in GaAs. The same crystal then gets the same coordinates from any input cell.
    """
    best = None
    best_key = None
    for t in _normaliser_translations(hall_number):
        pos = np.mod(positions + t, 1.0)
        pos[np.abs(pos - 1.0) < 1e-8] = 0.0
        key = _lexicographic_key(pos, contents)
        if best_key is None or key < best_key:
            best, best_key = pos, key
    return positions if best is None else best


@functools.cache
def _normaliser_translations(hall_number: int) -> np.ndarray:
    """Translations t (multiples of 1/8) with (R − 1) t a centring vector for all R; shape (k, 3)."""
    import spglib

    db = spglib.get_symmetry_from_database(hall_number)
    rots = np.asarray(db["rotations"], dtype=np.float64)  # (n_ops, 3, 3)
    trans = np.asarray(db["translations"], dtype=np.float64)
    is_identity = np.all(rots == np.eye(3), axis=(1, 2))
    centring = np.mod(trans[is_identity], 1.0)  # (n_c, 3), includes 0
    grid = np.stack(np.meshgrid(*[np.arange(8) / 8] * 3, indexing="ij"), -1).reshape(-1, 3)
    shifted = np.einsum("rij,tj->tri", rots - np.eye(3), grid)  # (n_t, n_ops, 3)
    d = shifted[:, :, None, :] - centring[None, None, :, :]
    ok = np.all(np.any(np.all(np.abs(d - np.round(d)) < 1e-9, axis=-1), axis=-1), axis=-1)
    return grid[ok]


def conventional_crystal(
    lattice: np.ndarray,
    positions: np.ndarray,
    symbols: Sequence[str],
    occupancies: np.ndarray | float = 1.0,
    b_iso: np.ndarray | float = DEFAULT_B,
    *,
    symprec: float = SYMPREC,
    name: str = "",
    source: str = "",
    info: dict | None = None,
) -> Crystal:
    """Standardise any cell of a cubic crystal to its conventional cubic :class:`Crystal`.

    Parameters
    ----------
    lattice : array_like, shape (3, 3)
        Cell vectors as rows [Å] (any cell: conventional, primitive, supercell, any origin).
    positions : array_like, shape (n, 3)
        Fractional coordinates of every atom in that cell.
    symbols : sequence of str
        Element of each atom (charges such as ``'O2-'`` are stripped).
    occupancies : array_like, shape (n,) or float
        Site occupancies [-]; a mixed site is several atoms at one position.
    b_iso : array_like, shape (n,) or float
        Isotropic Debye–Waller factors B [Å²].
    symprec : float
        spglib symmetry tolerance [Å]; the default :data:`SYMPREC` = 0.01 Å.
    name, source : str
        Stored on the crystal.
    info : dict, optional
        Extra provenance stored in ``crystal.info`` (``symprec`` and the space group are added).

    Returns
    -------
    Crystal
        All atoms of the conventional cubic cell, sorted by element and then coordinates.

    Raises
    ------
    NonCubicError
        If the structure's space group is not cubic (the message names the one found).
    CrystalError
        If there are no atoms, an element is unknown, or spglib cannot analyse the cell.
    """
    import spglib

    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = positions.shape[0]
    if n == 0 or len(symbols) == 0:
        raise CrystalError("the structure has no atoms")
    if len(symbols) != n:
        raise CrystalError(f"{len(symbols)} element symbols but {n} positions")
    if not np.all(np.isfinite(lattice)) or abs(np.linalg.det(lattice)) < 1e-6:
        raise CrystalError("the cell vectors are degenerate or not finite")
    if not np.all(np.isfinite(positions)):
        raise CrystalError("atomic positions contain NaN or inf")
    elements = [normalise_symbol(s) for s in symbols]
    occ = np.broadcast_to(np.asarray(occupancies, dtype=np.float64), (n,))
    b = np.broadcast_to(np.asarray(b_iso, dtype=np.float64), (n,))
    if np.any(~np.isfinite(occ)) or np.any(occ <= 0) or np.any(occ > 1 + 1e-3):
        raise CrystalError("site occupancies must lie in (0, 1]")
    if np.any(~np.isfinite(b)) or np.any(b < 0):
        raise CrystalError("Debye-Waller factors B must be finite and >= 0 Å²")

    site_pos, contents = group_sites(
        lattice, positions, elements, occ, b, tolerance=min(MERGE_TOLERANCE, symprec)
    )
    kinds = sorted(set(contents))
    kind_id = {k: i + 1 for i, k in enumerate(kinds)}
    types = [kind_id[c] for c in contents]

    try:
        ds = spglib.get_symmetry_dataset((lattice, site_pos, types), symprec=symprec)
    except Exception as exc:  # spglib >= 2.5 raises SpglibError (or a DeprecationWarning as error)
        ds = None
        err = str(exc).strip() or type(exc).__name__
    else:
        err = ""
    if ds is None:
        try:
            detail = str(spglib.get_error_message() or "").strip()
        except Exception as exc:  # noqa: BLE001 - the message is only a detail
            logger.debug("spglib.get_error_message failed: %s", exc)
            detail = ""
        if not detail or detail.lower() == "no error":
            detail = err or "atoms too close or cell degenerate?"
        raise CrystalError(f"spglib could not determine the space group: {detail.splitlines()[0]}")
    number = int(ds.number)
    if not 195 <= number <= 230:
        system = crystal_system(number)
        raise NonCubicError(
            f"the structure is {system}, not cubic: space group {ds.international} (#{number}), "
            f"cell {_cell_parameters(lattice)}; lacbed needs a cubic crystal (space groups 195-230)"
        )

    std_lattice = np.asarray(ds.std_lattice, dtype=np.float64)
    a = float(np.mean(np.diag(std_lattice)))
    if not np.allclose(std_lattice, a * np.eye(3), atol=1e-6 * a):
        raise CrystalError(f"spglib returned a non-cubic conventional cell {std_lattice.tolist()}")
    std_contents = [kinds[int(t) - 1] for t in ds.std_types]
    std_pos = np.asarray(ds.std_positions, dtype=np.float64)
    # Keep the input orientation when the input axes are cubic axes: r_std = R r_in, so for a
    # signed permutation R the fractional coordinates in the input frame are x_std @ R (rows).
    rot = _signed_permutation(np.asarray(ds.std_rotation_matrix, dtype=np.float64))
    oriented = "spglib standard" if rot is None else "input"
    if rot is None or np.array_equal(rot, np.eye(3)):
        # spglib's standard setting in this frame: choose among the equivalent standard origins
        std_pos = _canonical_origin(std_pos, std_contents, int(ds.hall_number))
        origin = "standard"
    else:
        std_pos, origin = _canonical_cell(std_pos @ rot, std_contents, a)

    rows: list[tuple[str, float, float, float, float, float]] = []
    for p, cont in zip(std_pos, std_contents, strict=True):
        for el, o, bb in cont:
            rows.append((el, round(p[0], 10), round(p[1], 10), round(p[2], 10), o, bb))
    rows.sort()
    out_info = dict(info or {})
    out_info.update(
        {
            "symprec_A": symprec,
            "hall_number": int(ds.hall_number),
            "orientation": oriented,
            "origin": origin,
            "n_atoms_input_cell": int(n),
        }
    )
    crystal = Crystal(
        a=a,
        symbols=tuple(r[0] for r in rows),
        positions=np.array([r[1:4] for r in rows]),
        occupancies=np.array([r[4] for r in rows]),
        b_iso=np.array([r[5] for r in rows]),
        space_group_number=number,
        space_group=str(ds.international),
        name=name,
        source=source,
        info=out_info,
    )
    logger.debug("standardised %s: %r", source or name, crystal)
    return crystal


def _lattice_parameters(lattice: np.ndarray) -> tuple[float, ...]:
    """(a, b, c [Å], alpha, beta, gamma [degrees]) of cell vectors given as rows."""
    lengths = np.linalg.norm(lattice, axis=1)
    a, b, c = lattice

    def ang(u: np.ndarray, v: np.ndarray) -> float:
        cos = float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
        return 90.0 if abs(cos) < 1e-12 else float(np.degrees(np.arccos(np.clip(cos, -1, 1))))

    # rounded to 1e-10 (Å, degrees): the cell that the CIF's six numbers give back exactly
    # (the orthogonalisation round trip leaves ~1e-16 of noise, e.g. gamma = 119.99999999999999)
    params = (*(float(x) for x in lengths), ang(b, c), ang(a, c), ang(a, b))
    return tuple(round(x, 10) for x in params)


def any_crystal(
    lattice: np.ndarray,
    positions: np.ndarray,
    symbols: Sequence[str],
    occupancies: np.ndarray | float = 1.0,
    b_iso: np.ndarray | float = DEFAULT_B,
    *,
    symprec: float = SYMPREC,
    name: str = "",
    source: str = "",
    info: dict | None = None,
) -> Crystal:
    """A crystal of any system: cubic → :func:`conventional_crystal`; otherwise the cell as given.

    A cubic structure (spglib finds a group 195–230) is standardised exactly as by
    :func:`conventional_crystal` (canonical origin and orientation). Any other keeps the input
    cell's six lattice parameters and fractional coordinates (wrapped into [0, 1), atoms sharing
    a position within :data:`MERGE_TOLERANCE` grouped into one site), so that zone axes and
    reflections given by the user refer to that cell (Felix reads the CIF's cell as it is);
    spglib only determines the space group (number and symbol, recorded on the crystal; the
    Hall number and ``"cell": "input"`` in ``info``).

    Parameters and errors as :func:`conventional_crystal`, except that a non-cubic structure is
    accepted.
    """
    import spglib

    kw = {"symprec": symprec, "name": name, "source": source, "info": info}
    try:
        return conventional_crystal(lattice, positions, symbols, occupancies, b_iso, **kw)
    except NonCubicError:
        pass
    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = positions.shape[0]
    elements = [normalise_symbol(s) for s in symbols]
    occ = np.broadcast_to(np.asarray(occupancies, dtype=np.float64), (n,))
    b = np.broadcast_to(np.asarray(b_iso, dtype=np.float64), (n,))
    site_pos, contents = group_sites(
        lattice, positions, elements, occ, b, tolerance=min(MERGE_TOLERANCE, symprec)
    )
    kinds = sorted(set(contents))
    types = [kinds.index(k) + 1 for k in contents]
    ds = spglib.get_symmetry_dataset((lattice, site_pos, types), symprec=symprec)
    rows = []
    for p, cont in zip(np.mod(site_pos, 1.0), contents, strict=True):
        for el, o, bb in cont:
            rows.append((el, round(p[0], 10), round(p[1], 10), round(p[2], 10), o, bb))
    rows.sort()
    a, b_len, c, alpha, beta, gamma = _lattice_parameters(lattice)
    out_info = dict(info or {})
    out_info.update(
        {
            "symprec_A": symprec,
            "hall_number": int(ds.hall_number),
            "cell": "input",
            "n_atoms_input_cell": int(n),
        }
    )
    crystal = Crystal(
        a=a,
        b=b_len,
        c=c,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        symbols=tuple(r[0] for r in rows),
        positions=np.array([r[1:4] for r in rows]),
        occupancies=np.array([r[4] for r in rows]),
        b_iso=np.array([r[5] for r in rows]),
        space_group_number=int(ds.number),
        space_group=str(ds.international),
        name=name,
        source=source,
        info=out_info,
    )
    logger.debug("kept the input cell of %s: %r", source or name, crystal)
    return crystal
