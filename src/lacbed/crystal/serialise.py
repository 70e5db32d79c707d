"""Exact, JSON-safe records of a :class:`Crystal`, and its structure-prototype label.

A record holds every number the physics uses (a, symbols, fractional positions, occupancies,
Debye–Waller factors, space group), so ``crystal_from_record(crystal_to_record(c))`` gives a crystal
whose structure factors, projected potential and LACBED pattern are bit-for-bit those of ``c``
(JSON writes Python floats with ``repr``, which round-trips every float64 exactly).

The prototype label groups isostructural compounds: space group, the Wyckoff letters of each
species' orbits and the stoichiometry, with the species anonymised (the idea of AFLOW's prototype
labels, Mehl et al., Comput. Mater. Sci. 136 (2017) S1), e.g. ``AB_225_a_b`` for rock salt and
``AB2_225_a_c`` for fluorite. Wyckoff letters come from spglib (Togo et al., Sci. Technol. Adv.
Mater. Meth. 4 (2024) 2384822) on the standardised conventional cell.
"""

from __future__ import annotations

import string
from math import gcd
from typing import Any

import numpy as np

from lacbed.crystal.model import Crystal
from lacbed.errors import CrystalError, NonCubicError

__all__ = ["RECORD_VERSION", "crystal_from_record", "crystal_to_record", "prototype_label"]

#: Version of the record layout (bumped on any change of fields or their meaning).
RECORD_VERSION = 1


def crystal_to_record(crystal: Crystal) -> dict[str, Any]:
    """JSON-safe dict of a cubic crystal (lengths in Å, B in Å², positions fractional).

    Raises
    ------
    NonCubicError
        For a crystal of another system: version-1 records (the dataset) hold cubic crystals
        only, and their layout is kept unchanged.
    """
    if not crystal.is_cubic:
        raise NonCubicError(
            f"{crystal.name or crystal.formula} is {crystal.space_group} "
            f"(#{crystal.space_group_number}), not cubic: crystal records hold cubic crystals only"
        )
    return {
        "record_version": RECORD_VERSION,
        "a": float(crystal.a),
        "symbols": list(crystal.symbols),
        "positions": [[float(x) for x in p] for p in crystal.positions],
        "occupancies": [float(x) for x in crystal.occupancies],
        "b_iso": [float(x) for x in crystal.b_iso],
        "space_group_number": int(crystal.space_group_number),
        "space_group": str(crystal.space_group),
        "name": str(crystal.name),
        "source": str(crystal.source),
    }


def crystal_from_record(record: dict[str, Any]) -> Crystal:
    """Inverse of :func:`crystal_to_record`.

    Raises
    ------
    CrystalError
        If the record lacks a field or has an unknown ``record_version``.
    """
    version = record.get("record_version")
    if version != RECORD_VERSION:
        raise CrystalError(f"crystal record version {version!r} is not {RECORD_VERSION}")
    try:
        return Crystal(
            a=record["a"],
            symbols=tuple(record["symbols"]),
            positions=np.asarray(record["positions"], dtype=np.float64).reshape(-1, 3),
            occupancies=np.asarray(record["occupancies"], dtype=np.float64),
            b_iso=np.asarray(record["b_iso"], dtype=np.float64),
            space_group_number=record["space_group_number"],
            space_group=record["space_group"],
            name=record.get("name", ""),
            source=record.get("source", ""),
        )
    except KeyError as exc:
        raise CrystalError(f"crystal record lacks the field {exc}") from None


def _site_species(crystal: Crystal, tol: float = 1e-4) -> tuple[np.ndarray, list[str]]:
    """Unique positions and, for each, its species (one element, or a mixed-site label)."""
    pos = crystal.positions
    keys: list[tuple] = []
    uniq: list[np.ndarray] = []
    for p, s, o in zip(pos, crystal.symbols, crystal.occupancies, strict=True):
        for i, q in enumerate(uniq):
            d = p - q
            if np.all(np.abs(d - np.round(d)) < tol):
                keys[i] = (*keys[i], (s, round(float(o), 3)))
                break
        else:
            uniq.append(p)
            keys.append(((s, round(float(o), 3)),))
    labels = []
    for k in keys:
        k = tuple(sorted(k))
        labels.append(k[0][0] if len(k) == 1 and k[0][1] == 1.0 else repr(k))
    return np.array(uniq), labels


def prototype_label(crystal: Crystal, symprec: float = 1e-3) -> str:
    """Anonymous prototype label: ``<stoichiometry>_<space group>_<Wyckoff letters per species>``.

    Species are ordered by (Wyckoff letters, count); stoichiometry letters A, B, C ... follow that
    order with counts divided by their greatest common divisor. Derived structures made by
    substituting one element for another absent one keep their parent's label.
    """
    import spglib

    pos, labels = _site_species(crystal)
    names = sorted(set(labels))
    numbers = np.array([names.index(x) + 1 for x in labels])
    cell = (crystal.lattice, pos, numbers)
    ds = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if ds is None:  # pragma: no cover - a standardised cubic crystal always has a dataset
        raise CrystalError(f"spglib finds no symmetry for {crystal.formula}")
    letters: dict[str, list[str]] = {n: [] for n in names}
    for i in np.unique(ds.equivalent_atoms):
        letters[labels[i]].append(ds.wyckoffs[i])
    per_species = []
    for n in names:
        count = int(np.count_nonzero(np.array(labels) == n))
        per_species.append(("".join(sorted(letters[n])), count))
    per_species.sort()
    div = 0
    for _, c in per_species:
        div = gcd(div, c)
    stoich = ""
    for (_, c), letter in zip(per_species, string.ascii_uppercase, strict=False):
        stoich += letter + ("" if c // div == 1 else str(c // div))
    return f"{stoich}_{int(ds.number)}_" + "_".join(w for w, _ in per_species)
