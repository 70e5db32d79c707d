"""The :class:`Crystal` dataclass: a crystal in its unit cell, cubic or of any other system.

A cubic crystal (space groups 195–230) is held in its conventional cubic cell with one lattice
parameter ``a``; that is every crystal the dataset and the ML code accept. Any other crystal
(issue 12, docs/crystal_systems.md) also carries ``b``, ``c``, ``alpha``, ``beta``, ``gamma``: the
six lattice parameters of the cell its atoms are given in. The Cartesian frame of the cell is
gemmi's (PDB) convention: a ∥ x, b in the xy plane, c completing a right-handed set
(:attr:`Crystal.lattice`), and the reciprocal basis a*, b*, c* (no 2π) is its inverse transpose.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from lacbed.errors import CrystalError, NonCubicError

__all__ = [
    "Crystal",
    "point_group_of",
    "bright_field_symmetry",
    "any_point_group",
    "lattice_from_parameters",
]

# International Tables A, Table 10.1.2.2 / space-group ranges of the five cubic point groups.
_CUBIC_POINT_GROUPS = (
    (195, 199, "23"),
    (200, 206, "m-3"),
    (207, 214, "432"),
    (215, 220, "-43m"),
    (221, 230, "m-3m"),
)


def point_group_of(space_group_number: int) -> str:
    """Hermann–Mauguin point group of a cubic space group (numbers 195–230)."""
    for lo, hi, pg in _CUBIC_POINT_GROUPS:
        if lo <= space_group_number <= hi:
            return pg
    raise CrystalError(f"space group {space_group_number} is not cubic (cubic groups are 195-230)")


def any_point_group(space_group_number: int) -> str:
    """Hermann–Mauguin point group of any space group (numbers 1–230), e.g. 194 → '6/mmm'.

    The cubic groups give the symbols of :func:`point_group_of`; the others gemmi's
    (International Tables A, Table 3.2.3.1).
    """
    n = int(space_group_number)
    if not 1 <= n <= 230:
        raise CrystalError(f"space group number {n} is outside 1-230")
    if n >= 195:
        return point_group_of(n)
    import gemmi

    return str(gemmi.find_spacegroup_by_number(n).point_group_hm())


def lattice_from_parameters(
    a: float, b: float, c: float, alpha: float, beta: float, gamma: float
) -> np.ndarray:
    """Cell vectors a, b, c as rows [Å] from the six lattice parameters [Å, degrees].

    gemmi's orthogonalisation (the PDB convention: a ∥ x, b in the xy plane, c completing a
    right-handed set; International Tables B, Section 1.1.4).
    """
    import gemmi

    cell = gemmi.UnitCell(a, b, c, alpha, beta, gamma)
    return np.array(cell.orth.mat.tolist()).T


def bright_field_symmetry(point_group: str) -> str:
    """Symmetry of the [001] bright-field disc: '4mm' or '2mm'.

    References
    ----------
    Buxton, Eades, Steeds & Rackham, Phil. Trans. R. Soc. A281 (1976) 171, Table 2 (with
    reciprocity for the non-centrosymmetric groups).
    """
    table = {"m-3m": "4mm", "-43m": "4mm", "432": "4mm", "m-3": "2mm", "23": "2mm"}
    if point_group not in table:
        raise NonCubicError(
            f"point group {point_group} is not cubic: the [001] bright-field symmetry is "
            "tabulated for the cubic point groups only"
        )
    return table[point_group]


@dataclass(frozen=True, eq=False)
class Crystal:
    """A crystal: every atom of its unit cell (the conventional cell for a cubic crystal).

    Attributes
    ----------
    a : float
        Lattice parameter a [Å] (the cubic lattice parameter of a cubic crystal).
    symbols : tuple of str
        Element symbol of each site, e.g. ``("Si", "Si", ...)``; a mixed site is several entries
        at the same position with partial occupancies.
    positions : ndarray, shape (n_sites, 3)
        Fractional coordinates in [0, 1).
    occupancies : ndarray, shape (n_sites,)
        Site occupancies [-].
    b_iso : ndarray, shape (n_sites,)
        Isotropic Debye–Waller factors B = 8π²⟨u²⟩ [Å²].
    space_group_number : int
        International Tables number (1–230; 195–230 for a cubic crystal).
    space_group : str
        Hermann–Mauguin symbol.
    name : str
        Free-text label (file stem, database id, ...).
    source : str
        Where the structure came from (path, database and id, ...).
    info : dict
        Provenance (reader, symmetry tolerance, origin, ...).
    b, c : float or None
        Lattice parameters b, c [Å]; None on input means a. A cubic crystal stores None (b = c =
        a); use :attr:`lattice_parameters` for the six numbers of any crystal.
    alpha, beta, gamma : float
        Cell angles [degrees]; 90 by default, and 90 for a cubic crystal.
    """

    a: float
    symbols: tuple[str, ...]
    positions: np.ndarray
    occupancies: np.ndarray
    b_iso: np.ndarray
    space_group_number: int
    space_group: str
    name: str = ""
    source: str = ""
    info: dict = field(default_factory=dict)
    b: float | None = None
    c: float | None = None
    alpha: float = 90.0
    beta: float = 90.0
    gamma: float = 90.0

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        n = len(self.symbols)
        if n == 0:
            raise CrystalError("the structure has no atoms")
        occ = np.broadcast_to(np.asarray(self.occupancies, dtype=np.float64), (n,)).copy()
        biso = np.broadcast_to(np.asarray(self.b_iso, dtype=np.float64), (n,)).copy()
        if pos.shape[0] != n:
            raise CrystalError(f"{n} symbols but {pos.shape[0]} positions")
        if not (np.isfinite(self.a) and self.a > 0):
            raise CrystalError(f"lattice parameter must be a positive length in Å, got {self.a!r}")
        if not np.all(np.isfinite(pos)):
            raise CrystalError("atomic positions contain NaN or inf")
        if np.any(occ <= 0) or np.any(occ > 1 + 1e-6) or not np.all(np.isfinite(occ)):
            raise CrystalError("site occupancies must lie in (0, 1]")
        if np.any(biso < 0) or not np.all(np.isfinite(biso)):
            raise CrystalError("Debye-Waller factors B must be finite and >= 0 Å²")
        pos = np.mod(pos, 1.0)
        pos[np.isclose(pos, 1.0, atol=1e-9)] = 0.0
        for arr in (pos, occ, biso):
            arr.setflags(write=False)
        object.__setattr__(self, "a", float(self.a))
        object.__setattr__(self, "symbols", tuple(str(s) for s in self.symbols))
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "occupancies", occ)
        object.__setattr__(self, "b_iso", biso)
        object.__setattr__(self, "space_group_number", int(self.space_group_number))
        any_point_group(self.space_group_number)  # validates the number
        self._check_cell()

    def _check_cell(self) -> None:
        """Check the six lattice parameters (one-line errors); b, c: None → a.

        A cubic crystal stores ``b = c = None`` (so that ``replace(crystal, a=...)`` rescales it
        whole); the others store floats.
        """
        b = self.a if self.b is None else float(self.b)
        c = self.a if self.c is None else float(self.c)
        for name, v in (("b", b), ("c", c)):
            if not (np.isfinite(v) and v > 0):
                raise CrystalError(
                    f"lattice parameter {name} must be a positive length in Å, got {v!r}"
                )
        angles = (float(self.alpha), float(self.beta), float(self.gamma))
        if not all(np.isfinite(x) and 0 < x < 180 for x in angles):
            raise CrystalError(f"cell angles must lie in (0, 180) degrees, got {angles}")
        if self.is_cubic:
            if b != self.a or c != self.a or angles != (90.0, 90.0, 90.0):
                raise CrystalError(
                    f"space group {self.space_group_number} is cubic but the cell has b={b:.4f} "
                    f"c={c:.4f} Å, angles {angles}; a cubic crystal has b = c = a and 90° angles"
                )
            object.__setattr__(self, "b", None)
            object.__setattr__(self, "c", None)
            return
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "alpha", angles[0])
        object.__setattr__(self, "beta", angles[1])
        object.__setattr__(self, "gamma", angles[2])
        if self.volume <= 1e-6 * self.a * b * c:
            raise CrystalError(f"the cell {self._cell_text()} is degenerate (no volume)")

    def _cell_text(self) -> str:
        a, b, c, al, be, ga = self.lattice_parameters
        return f"a={a:.4f} b={b:.4f} c={c:.4f} Å, alpha={al:.2f} beta={be:.2f} gamma={ga:.2f} deg"

    # ------------------------------------------------------------------ derived quantities
    @property
    def n_sites(self) -> int:
        """Number of (possibly partially occupied) sites in the conventional cell."""
        return len(self.symbols)

    @property
    def is_cubic(self) -> bool:
        """The space group is cubic (195–230): the cubic path of the engine, dataset and ML."""
        return 195 <= self.space_group_number <= 230

    @property
    def lattice_parameters(self) -> tuple[float, float, float, float, float, float]:
        """(a, b, c [Å], alpha, beta, gamma [degrees]); (a, a, a, 90, 90, 90) when cubic."""
        if self.is_cubic:
            return (self.a, self.a, self.a, 90.0, 90.0, 90.0)
        return (self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    @property
    def lattice(self) -> np.ndarray:
        """Cell vectors a, b, c as rows in Cartesian coordinates [Å], shape (3, 3).

        gemmi's orthogonalisation (a ∥ x, b in the xy plane); exactly ``a·I`` for a cubic
        crystal. A fractional position x is at the Cartesian point ``x @ lattice``.
        """
        if self.is_cubic:
            return np.eye(3) * self.a
        return lattice_from_parameters(*self.lattice_parameters)

    @property
    def reciprocal_basis(self) -> np.ndarray:
        """Reciprocal vectors a*, b*, c* as rows [1/Å] (no 2π), shape (3, 3).

        a_i · a*_j = δ_ij, i.e. the inverse transpose of :attr:`lattice`; a reflection (h, k, l)
        is g = (h, k, l) @ reciprocal_basis [1/Å] (International Tables B, Section 1.1.2).
        Exactly ``I/a`` for a cubic crystal.
        """
        if self.is_cubic:
            return np.eye(3) / self.a
        return np.linalg.inv(self.lattice).T

    @property
    def volume(self) -> float:
        """Cell volume Ω [Å³]: a³ for a cubic crystal, |det(lattice)| otherwise."""
        if self.is_cubic:
            return self.a**3
        return float(abs(np.linalg.det(self.lattice)))

    @property
    def point_group(self) -> str:
        """Hermann–Mauguin point group (23, m-3, 432, -43m, m-3m for a cubic crystal)."""
        return any_point_group(self.space_group_number)

    @property
    def centrosymmetric(self) -> bool:
        """The point group contains the inversion (one of the 11 Laue classes)."""
        return self.point_group in _LAUE_CLASSES

    @property
    def bright_field_symmetry(self) -> str:
        """Symmetry of the [001] bright-field disc ('4mm' or '2mm') of a cubic crystal.

        Raises
        ------
        NonCubicError
            For a crystal of any other system (not tabulated; the engine solves every pixel).
        """
        return bright_field_symmetry(self.point_group)

    @property
    def atomic_numbers(self) -> np.ndarray:
        """Atomic number of each site, shape (n_sites,)."""
        from lacbed.crystal.elements import atomic_number

        return np.array([atomic_number(s) for s in self.symbols], dtype=np.int64)

    @property
    def composition(self) -> dict[str, float]:
        """Atoms per conventional cell by element (occupancy-weighted)."""
        comp: Counter[str] = Counter()
        for s, o in zip(self.symbols, self.occupancies, strict=True):
            comp[s] += float(o)
        return dict(comp)

    @property
    def formula(self) -> str:
        """Reduced chemical formula, cations first, e.g. ``'GaAs'``, ``'SrTiO3'``, ``'Fe0.9O'``.

        Elements are ordered by Pauling electronegativity. Counts are divided by the greatest
        common divisor of the fully occupied (integer) counts, or of all counts when every one is
        an integer.
        """
        from math import gcd

        from lacbed.crystal.elements import formula_order_key

        comp = self.composition
        ints = [round(v) for v in comp.values() if abs(v - round(v)) < 1e-3 and round(v) > 0]
        div = 0
        for v in ints:
            div = gcd(div, int(v))
        div = max(div, 1)
        parts = []
        for s in sorted(comp, key=formula_order_key):
            n = comp[s] / div
            if abs(n - round(n)) < 1e-3:
                n_str = "" if round(n) == 1 else str(int(round(n)))
            else:
                n_str = f"{n:.4g}"
            parts.append(f"{s}{n_str}")
        return "".join(parts)

    # ------------------------------------------------------------------ variants
    def with_b_iso(self, b: float | np.ndarray) -> Crystal:
        """Copy with Debye–Waller factors replaced by ``b`` [Å²] (scalar or per site)."""
        return replace(self, b_iso=np.broadcast_to(np.asarray(b, float), (self.n_sites,)))

    def shifted(self, origin: np.ndarray) -> Crystal:
        """Copy with every position translated by ``-origin`` (fractional), i.e. a new origin."""
        return replace(self, positions=self.positions - np.asarray(origin, float))

    def scaled(self, a: float) -> Crystal:
        """Copy with lattice parameter ``a`` [Å] (fractional coordinates and, for a non-cubic
        crystal, the ratios b/a, c/a and the angles kept)."""
        if self.is_cubic:
            return replace(self, a=a)
        return replace(self, a=a, b=self.b * (a / self.a), c=self.c * (a / self.a))

    def __repr__(self) -> str:
        cell = f"a={self.a:.4f} Å" if self.is_cubic else self._cell_text()
        return (
            f"Crystal({self.formula}, {cell}, {self.space_group} "
            f"(#{self.space_group_number}), {self.n_sites} sites)"
        )


# The 11 centrosymmetric point groups (Laue classes), International Tables A, Table 3.2.3.1.
_LAUE_CLASSES = frozenset(
    ("-1", "2/m", "mmm", "4/m", "4/mmm", "-3", "-3m", "6/m", "6/mmm", "m-3", "m-3m")
)
