"""The :class:`Crystal` dataclass: a cubic crystal in its conventional cell."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from lacbed.errors import CrystalError

__all__ = ["Crystal", "point_group_of", "bright_field_symmetry"]

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


def bright_field_symmetry(point_group: str) -> str:
    """Symmetry of the [001] bright-field disc: '4mm' or '2mm'.

    References
    ----------
    Buxton, Eades, Steeds & Rackham, Phil. Trans. R. Soc. A281 (1976) 171, Table 2 (with
    reciprocity for the non-centrosymmetric groups).
    """
    return {"m-3m": "4mm", "-43m": "4mm", "432": "4mm", "m-3": "2mm", "23": "2mm"}[point_group]


@dataclass(frozen=True, eq=False)
class Crystal:
    """A cubic crystal: every atom of the conventional unit cell.

    Attributes
    ----------
    a : float
        Cubic lattice parameter [Å].
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
        International Tables number (195–230).
    space_group : str
        Hermann–Mauguin symbol.
    name : str
        Free-text label (file stem, database id, ...).
    source : str
        Where the structure came from (path, database and id, ...).
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
        point_group_of(self.space_group_number)  # validates the number

    # ------------------------------------------------------------------ derived quantities
    @property
    def n_sites(self) -> int:
        """Number of (possibly partially occupied) sites in the conventional cell."""
        return len(self.symbols)

    @property
    def volume(self) -> float:
        """Cell volume Ω = a³ [Å³]."""
        return self.a**3

    @property
    def point_group(self) -> str:
        """Hermann–Mauguin point group (one of 23, m-3, 432, -43m, m-3m)."""
        return point_group_of(self.space_group_number)

    @property
    def bright_field_symmetry(self) -> str:
        """Symmetry of the [001] bright-field disc ('4mm' or '2mm')."""
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
        """Copy with lattice parameter ``a`` [Å] (fractional coordinates kept)."""
        return replace(self, a=a)

    def __repr__(self) -> str:
        return (
            f"Crystal({self.formula}, a={self.a:.4f} Å, {self.space_group} "
            f"(#{self.space_group_number}), {self.n_sites} sites)"
        )
