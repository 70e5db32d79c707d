"""Crystals from ASE ``Atoms`` and pymatgen ``Structure`` objects, and :func:`load_crystal`.

ASE and pymatgen are optional: they are imported only when one of their objects is passed. Any
cell (typically a primitive database cell) is standardised to the conventional cubic cell with
spglib at tolerance :data:`lacbed.crystal.standardise.SYMPREC` = 0.01 Å.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lacbed.crystal.model import Crystal
from lacbed.crystal.standardise import DEFAULT_B, SYMPREC, any_crystal, conventional_crystal
from lacbed.errors import CrystalError

__all__ = ["from_ase", "from_pymatgen", "load_crystal"]


def _b_from_properties(props: Any, n: int) -> np.ndarray | None:
    """Per-atom B [Å²] from an array-like property, if present and sane."""
    if props is None:
        return None
    b = np.asarray(props, dtype=np.float64).reshape(-1)
    return b if b.shape == (n,) else None


def from_ase(
    atoms: Any,
    *,
    b_iso: float | np.ndarray | None = None,
    symprec: float = SYMPREC,
    name: str = "",
    source: str = "",
    any_system: bool = False,
) -> Crystal:
    """Conventional cubic :class:`Crystal` from an ASE ``Atoms`` (any cell, e.g. primitive).

    Parameters
    ----------
    atoms : ase.Atoms
        A periodic structure. Occupancies are 1 (ASE has no partial occupancy).
    b_iso : float or array_like, optional
        Debye–Waller factor(s) B [Å²]. Default: the per-atom array ``atoms.arrays["b_iso"]`` if
        set, else ``DEFAULT_B`` = 0.5 Å².
    symprec : float
        spglib symmetry tolerance [Å] (default 0.01 Å).
    name, source : str
        Stored on the crystal (default name: the chemical formula).
    any_system : bool
        Keep a non-cubic structure in the given cell (:func:`any_crystal`) instead of refusing it.

    Raises
    ------
    NonCubicError
        If the structure is not cubic and ``any_system`` is False.
    CrystalError
        If it is empty, not periodic in 3D, or otherwise unusable.
    """
    n = len(atoms)
    if n == 0:
        raise CrystalError("the ASE Atoms object has no atoms")
    if not all(atoms.pbc):
        raise CrystalError("the ASE Atoms object must be periodic in all three directions (pbc)")
    info: dict = {"from": "ase"}
    if b_iso is None:
        b = _b_from_properties(atoms.arrays.get("b_iso"), n)
        if b is None:
            b = DEFAULT_B
            info["default_b_A2"] = DEFAULT_B
    else:
        b = b_iso
    build = any_crystal if any_system else conventional_crystal
    return build(
        np.asarray(atoms.cell.array),
        atoms.get_scaled_positions(wrap=True),
        atoms.get_chemical_symbols(),
        1.0,
        b,
        symprec=symprec,
        name=name or atoms.get_chemical_formula(mode="metal"),
        source=source or "ase.Atoms",
        info=info,
    )


def from_pymatgen(
    structure: Any,
    *,
    b_iso: float | np.ndarray | None = None,
    symprec: float = SYMPREC,
    name: str = "",
    source: str = "",
    any_system: bool = False,
) -> Crystal:
    """Conventional cubic :class:`Crystal` from a pymatgen ``Structure`` (any cell).

    Disordered sites (several species with partial occupancies) become mixed sites.

    Parameters
    ----------
    structure : pymatgen.core.Structure
    b_iso : float or array_like, optional
        Debye–Waller factor(s) B [Å²], one per *site*. Default: the site property ``"b_iso"`` if
        every site has it, else ``DEFAULT_B`` = 0.5 Å².
    symprec : float
        spglib symmetry tolerance [Å] (default 0.01 Å).
    name, source : str
        Stored on the crystal (default name: the reduced formula).
    any_system : bool
        Keep a non-cubic structure in the given cell (:func:`any_crystal`) instead of refusing it.

    Raises
    ------
    NonCubicError, CrystalError
    """
    n_sites = len(structure)
    if n_sites == 0:
        raise CrystalError("the pymatgen Structure has no sites")
    info: dict = {"from": "pymatgen"}
    if b_iso is None:
        b_site = _b_from_properties(structure.site_properties.get("b_iso"), n_sites)
        if b_site is None:
            b_site = np.full(n_sites, DEFAULT_B)
            info["default_b_A2"] = DEFAULT_B
    else:
        b_site = np.broadcast_to(np.asarray(b_iso, dtype=np.float64), (n_sites,))
    symbols: list[str] = []
    frac: list[np.ndarray] = []
    occ: list[float] = []
    b: list[float] = []
    for site, bs in zip(structure, b_site, strict=True):
        for sp, o in site.species.items():
            el = getattr(sp, "symbol", None) or getattr(
                getattr(sp, "element", None), "symbol", None
            )
            if el is None:
                raise CrystalError(f"pymatgen species {sp!s} is not an element")
            symbols.append(el)
            frac.append(np.asarray(site.frac_coords, dtype=np.float64))
            occ.append(float(o))
            b.append(float(bs))
    build = any_crystal if any_system else conventional_crystal
    return build(
        np.asarray(structure.lattice.matrix),
        np.array(frac),
        symbols,
        np.array(occ),
        np.array(b),
        symprec=symprec,
        name=name or structure.composition.reduced_formula,
        source=source or "pymatgen.Structure",
        info=info,
    )


def load_crystal(obj: Any, **kwargs: Any) -> Crystal:
    """A :class:`Crystal` from a CIF path, a Crystal, an ASE ``Atoms`` or a pymatgen ``Structure``.

    Parameters
    ----------
    obj : str, PathLike, Crystal, ase.Atoms or pymatgen.core.Structure
        The structure. A path is read with :func:`lacbed.crystal.read_cif`.
    **kwargs
        Passed to the reader (e.g. ``symprec``, ``block`` for CIFs, ``b_iso`` for ASE/pymatgen;
        ``any_system=True`` keeps a non-cubic structure instead of refusing it).

    Raises
    ------
    CrystalError
        If ``obj`` is of an unsupported type.
    FileNotFoundError
        If a path does not exist.
    """
    if isinstance(obj, Crystal):
        return obj
    if isinstance(obj, str | os.PathLike):
        from lacbed.crystal.cif import read_cif

        return read_cif(Path(obj), **kwargs)
    mod = type(obj).__module__
    if mod.startswith("ase"):
        return from_ase(obj, **kwargs)
    if mod.startswith("pymatgen"):
        if hasattr(obj, "lattice") and hasattr(obj, "species"):
            return from_pymatgen(obj, **kwargs)
    raise CrystalError(
        f"cannot make a crystal from a {type(obj).__name__}; give a CIF path, a Crystal, an "
        "ase.Atoms or a pymatgen Structure"
    )
