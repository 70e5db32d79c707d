"""Structural parameters of a fit: the ``--fit`` list, and the engine's potential table for trial
Debye–Waller factors and structure factors.

A plan (:func:`lacbed.simulate.plan.plan_lacbed`) holds V_{g−h} = U_{g−h} + iU′_{g−h} for its beam
pool (docs/physics.md §2–4). Changing B or U_g changes that table only, so a fit builds the plan
(beam pool, tiles, beam sets) once and re-solves it with new tables (``dataclasses.replace(plan,
v_table=...)``); the beam sets stay those chosen for the starting structure.

``Ug:hkl`` changes the elastic Fourier coefficient U_h of every reflection h of the orbit of
g = (h, k, l) under the crystal's point group (its rotations W⁻ᵀ on Miller indices,
:func:`lacbed.crystal.orientation.crystal_operations`) and of the Friedel orbit of −g; the
absorptive U′_g is unchanged. Symmetry-equivalent reflections differ from U_g only by fixed phase
factors exp(−2πi h·t) of the space group's translations, and Friedel's law gives
U_{−g} = U_g* for the elastic (real-space real) potential (International Tables for
Crystallography Vol. B, Chapter 1.4, "Symmetry in reciprocal space"; J. C. H. Spence and J. M.
Zuo, Electron Microdiffraction, Plenum 1992). Hence:

- g is **centric** when −g lies in its own orbit: its phase is fixed by symmetry and one real
  factor f multiplies the whole orbit (U′_h = f U_h);
- g is **acentric** otherwise (non-centrosymmetric crystals, complex algebra only): a complex
  factor c = α + iβ multiplies the orbit of g and c* that of −g (U′_h = c U_h, U′_{−h} = c* U_{−h}),
  so equivalent reflections change consistently and Friedel's law holds. The fit refines α and
  β (two parameters, ``Ug:hkl`` and ``Ug:hkl:im``).

For m-3m and -43m crystals the orbit of g and −g is the set of every ±permutation of (h, k, l)
(:func:`equivalents`), so a real factor changes what it changed in lacbed ≤ 0.2; for 23 and m-3
(and every non-cubic group) it is smaller: (1, 2, 3) and (2, 1, 3) are not equivalent there.
``B:El`` sets the isotropic Debye–Waller factor of every site of element El, which
changes U_g and U′_g of every reflection (docs/physics.md §2–3).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from lacbed.errors import SettingsError

__all__ = [
    "FitSpec",
    "parse_fit",
    "equivalents",
    "orbit",
    "is_centric",
    "with_phases",
    "PotentialTable",
]


@dataclass(frozen=True)
class FitSpec:
    """What a fit refines.

    Attributes
    ----------
    thickness : bool
        The specimen thickness.
    orientation : bool
        The pattern-centre tilt (zone-axis position), rotation and scale in the final fit (they
        are always found by the alignment).
    b_elements : tuple of str
        Elements whose Debye–Waller factor B is refined.
    ug : tuple of (h, k, l)
        Reflections whose U_g is refined (one factor per orbit of g and −g, module notes).
    acentric : tuple of (h, k, l)
        Those of ``ug`` refined with a complex factor (acentric reflections of a crystal solved
        with complex algebra, :func:`with_phases`): two parameters, ``Ug:hkl`` (α) and
        ``Ug:hkl:im`` (β).
    """

    thickness: bool = True
    orientation: bool = True
    b_elements: tuple[str, ...] = ()
    ug: tuple[tuple[int, int, int], ...] = ()
    acentric: tuple[tuple[int, int, int], ...] = ()

    @property
    def names(self) -> list[str]:
        """Parameter names in the report's order."""
        out = ["thickness"] if self.thickness else []
        out += [f"B:{el}" for el in self.b_elements]
        for h in self.ug:
            out.append(ug_name(h))
            if h in self.acentric:
                out.append(ug_name(h) + ":im")
        return out


def ug_name(hkl: tuple[int, int, int]) -> str:
    """``Ug:hkl`` (the parameter name of a reflection; ``Ug:hkl:im`` its imaginary factor)."""
    return "Ug:" + "".join(str(i) for i in hkl)


def _hkl(text: str) -> tuple[int, int, int]:
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if len(parts) == 1 and re.fullmatch(r"(-?\d){3}", parts[0]):
        parts = re.findall(r"-?\d", parts[0])
    try:
        h = tuple(int(p) for p in parts)
    except ValueError:
        h = ()
    if len(h) != 3 or h == (0, 0, 0):
        raise SettingsError(f"bad reflection {text!r} in --fit: write Ug:200 or Ug:2,0,0")
    return h  # type: ignore[return-value]


def parse_fit(text: str, elements: list[str]) -> FitSpec:
    """Parse ``thickness,orientation,B,Ug:200`` (B alone: every element; ``B:Ga``: one).

    Parameters
    ----------
    text : str
        Comma-separated items: ``thickness``, ``orientation``, ``B``, ``B:El``, ``Ug:hkl``.
    elements : list of str
        The crystal's elements.

    Raises
    ------
    SettingsError
        Unknown item, element or reflection.
    """
    spec = {"thickness": False, "orientation": False, "b": [], "ug": []}
    items = [t.strip() for t in text.split(",") if t.strip()]
    # "Ug:2,0,0" contains commas: re-join the digits that follow a Ug item
    merged: list[str] = []
    for t in items:
        if merged and merged[-1].lower().startswith("ug:") and re.fullmatch(r"-?\d+", t):
            merged[-1] += "," + t
        else:
            merged.append(t)
    for t in merged:
        low = t.lower()
        if low in ("thickness", "orientation"):
            spec[low] = True
        elif low == "b":
            spec["b"] += [e for e in elements if e not in spec["b"]]
        elif low.startswith("b:"):
            el = t[2:].strip()
            if el not in elements:
                raise SettingsError(f"--fit {t}: no element {el!r} in the crystal ({elements})")
            if el not in spec["b"]:
                spec["b"].append(el)
        elif low.startswith("ug:"):
            h = _hkl(t[3:])
            if h not in spec["ug"]:
                spec["ug"].append(h)
        else:
            raise SettingsError(
                f"unknown --fit item {t!r}; use thickness, orientation, B, B:El or Ug:hkl"
            )
    return FitSpec(spec["thickness"], spec["orientation"], tuple(spec["b"]), tuple(spec["ug"]))


def equivalents(hkl: tuple[int, int, int]) -> np.ndarray:
    """Every ±permutation of (h, k, l), shape (n, 3): the m-3m orbit with −g (the family
    ``Ug:hkl`` changed in lacbed ≤ 0.2; now :func:`orbit` of the crystal's own point group)."""
    out = set()
    for perm in itertools.permutations(hkl):
        for signs in itertools.product((1, -1), repeat=3):
            out.add(tuple(int(s * p) for s, p in zip(signs, perm, strict=True)))
    return np.array(sorted(out), dtype=np.int64)


def orbit(hkl_ops: np.ndarray, hkl: tuple[int, int, int]) -> set[tuple[int, int, int]]:
    """The reflections equivalent to ``hkl`` under point-group operations on Miller indices.

    Parameters
    ----------
    hkl_ops : ndarray of int, shape (n_ops, 3, 3)
        W⁻ᵀ of each rotation W (:func:`lacbed.crystal.orientation.crystal_operations`), acting on
        (h, k, l) as column vectors.
    hkl : (h, k, l)

    Returns
    -------
    set of (h, k, l)
    """
    images = np.asarray(hkl_ops) @ np.asarray(hkl, dtype=np.int64)
    return {tuple(int(i) for i in row) for row in images}


def is_centric(hkl_ops: np.ndarray, hkl: tuple[int, int, int]) -> bool:
    """Whether −g is equivalent to g (its phase fixed by symmetry; ITC Vol. B, Chapter 1.4)."""
    return tuple(-int(i) for i in hkl) in orbit(hkl_ops, hkl)


def with_phases(spec: FitSpec, crystal, real: bool = False) -> FitSpec:
    """``spec`` with its acentric reflections marked (refined with a complex factor).

    Parameters
    ----------
    spec : FitSpec
    crystal : Crystal
        The crystal whose point group defines the orbits.
    real : bool
        The plan uses real algebra (a centrosymmetric crystal on its inversion centre, where
        every reflection is centric): nothing is marked.
    """
    from lacbed.crystal.orientation import crystal_operations

    if real or not spec.ug:
        return spec
    _, ops = crystal_operations(crystal)
    acentric = tuple(h for h in spec.ug if not is_centric(ops, h))
    return FitSpec(spec.thickness, spec.orientation, spec.b_elements, spec.ug, acentric)


class PotentialTable:
    """V_{g−h} of a plan's pool for trial B and U_g factors (as the plan's own table).

    Parameters
    ----------
    plan : EnginePlan
        The plan whose pool, origin and settings are used.
    """

    def __init__(self, plan) -> None:
        from lacbed.constants import electron_constants

        self.plan = plan
        o = plan.options
        pool = plan.pool
        n = len(pool)
        diff = (pool[:, None, :] - pool[None, :, :]).reshape(-1, 3)
        m = int(np.abs(diff).max()) + 1
        key = ((diff[:, 0] + m) * (2 * m + 1) + diff[:, 1] + m) * (2 * m + 1) + diff[:, 2] + m
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        self.uniq = diff[first]
        self.inv = inv.reshape(-1)
        self.n = n
        shift = plan.info.get("origin_shift")
        self.shift = None if shift is None else np.asarray(shift, dtype=np.float64)
        self.voltage = electron_constants(o["voltage_kv"] * 1e3).voltage
        self.sf_kw = {k: o[k] for k in ("scattering", "absorption", "kappa")}
        self._ops = None

    def crystal_with_b(self, b: dict[str, float]):
        """The plan's crystal with B [Å²] of the named elements replaced."""
        cr = self.plan.crystal
        biso = np.array(cr.b_iso, dtype=np.float64)
        for el, val in b.items():
            biso[np.array([s == el for s in cr.symbols])] = float(val)
        return cr.with_b_iso(biso)

    def _parts(self, b: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        from lacbed.scattering import structure_factors

        cr = self.crystal_with_b(b)
        work = cr.shifted(self.shift) if self.shift is not None else cr
        b_iso = self.plan.options.get("b_iso")
        sf = structure_factors(work, self.uniq, voltage=self.voltage, b_iso=b_iso, **self.sf_kw)
        u = np.asarray(sf.U, dtype=np.complex128)
        up = np.asarray(sf.U_abs, dtype=np.complex128)
        if self.plan.real:
            u, up = u.real.astype(np.complex128), up.real.astype(np.complex128)
        return u, up

    @property
    def hkl_ops(self) -> np.ndarray:
        """The crystal's point-group operations on Miller indices, shape (n_ops, 3, 3) (W⁻ᵀ;
        the same at the engine's shifted origin, which changes only the phases)."""
        if self._ops is None:
            from lacbed.crystal.orientation import crystal_operations

            self._ops = crystal_operations(self.plan.crystal)[1]
        return self._ops

    def orbits(self, hkl: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, bool]:
        """Masks of the unique differences in the orbit of g and in that of −g, and whether g
        is centric (−g in its own orbit: then both masks are the same)."""
        g = orbit(self.hkl_ops, hkl)
        minus = {tuple(-i for i in h) for h in g}
        mask_g = np.array([tuple(int(i) for i in h) in g for h in self.uniq])
        mask_m = np.array([tuple(int(i) for i in h) in minus for h in self.uniq])
        if not (mask_g.any() or mask_m.any()):
            raise SettingsError(
                f"reflection {hkl} couples no beams of the pool; it cannot be refined"
            )
        return mask_g, mask_m, tuple(-int(i) for i in hkl) in g

    def family(self, hkl: tuple[int, int, int]) -> np.ndarray:
        """Boolean mask of the unique differences in the orbits of g and −g."""
        mask_g, mask_m, _ = self.orbits(hkl)
        return mask_g | mask_m

    def ug(self, b: dict[str, float], hkl: tuple[int, int, int]) -> complex:
        """U_g [Å⁻²] of the crystal with B ``b`` (engine origin), before any factor."""
        u, _ = self._parts(b)
        i = int(np.nonzero(np.all(self.uniq == np.asarray(hkl), axis=1))[0][0])
        return complex(u[i])

    def table(self, b: dict[str, float], factors: dict[tuple, complex]) -> np.ndarray:
        """V_{g−h} [Å⁻²], shape (n_pool, n_pool), for B [Å²] and U_g factors [-].

        ``factors`` maps (h, k, l) to a real factor f (any reflection: U′_h = f U_h on the
        orbits of g and −g) or a complex c (acentric reflections under complex algebra only:
        c U_h on the orbit of g, c* U_h on that of −g; module notes).

        Raises
        ------
        SettingsError
            A complex factor for a centric reflection or under real algebra.
        """
        u, up = self._parts(b)
        for hkl, f in factors.items():
            c = complex(f)
            mask_g, mask_m, centric = self.orbits(hkl)
            if c.imag != 0.0 and (centric or self.plan.real):
                raise SettingsError(
                    f"U_g of {hkl} is centric (its phase is fixed by symmetry): give a real "
                    f"factor, not {c}"
                )
            u = np.where(mask_g, u * c, u)
            if not centric:
                u = np.where(mask_m, u * c.conjugate(), u)
        if self.plan.real:
            return u.real[self.inv].reshape(self.n, self.n) + 1j * up.real[self.inv].reshape(
                self.n, self.n
            )
        return (u + 1j * up)[self.inv].reshape(self.n, self.n)
