"""Structural parameters of a fit: the ``--fit`` list, and the engine's potential table for trial
Debye–Waller factors and structure factors.

A plan (:func:`lacbed.simulate.plan.plan_lacbed`) holds V_{g−h} = U_{g−h} + iU′_{g−h} for its beam
pool (docs/physics.md §2–4). Changing B or U_g changes that table only, so a fit builds the plan
(beam pool, tiles, beam sets) once and re-solves it with new tables (``dataclasses.replace(plan,
v_table=...)``); the beam sets stay those chosen for the starting structure.

``Ug:hkl`` multiplies the elastic Fourier coefficient U_g of every ±permutation of (h, k, l) by one
real factor f, so symmetry-equivalent reflections change together, Friedel's law U_{−g} = U_g*
holds, and the phase of U_g (non-centrosymmetric crystals) is kept; the absorptive U′_g is
unchanged. ``B:El`` sets the isotropic Debye–Waller factor of every site of element El, which
changes U_g and U′_g of every reflection (docs/physics.md §2–3).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from lacbed.errors import SettingsError

__all__ = ["FitSpec", "parse_fit", "equivalents", "PotentialTable"]


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
        Reflections whose U_g is refined (one factor per ±permutation family).
    """

    thickness: bool = True
    orientation: bool = True
    b_elements: tuple[str, ...] = ()
    ug: tuple[tuple[int, int, int], ...] = ()

    @property
    def names(self) -> list[str]:
        """Parameter names in the report's order."""
        out = ["thickness"] if self.thickness else []
        out += [f"B:{el}" for el in self.b_elements]
        out += ["Ug:" + "".join(str(i) for i in h) for h in self.ug]
        return out


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
    """Every ±permutation of (h, k, l), shape (n, 3) (cubic: includes −g for Friedel's law)."""
    out = set()
    for perm in itertools.permutations(hkl):
        for signs in itertools.product((1, -1), repeat=3):
            out.add(tuple(int(s * p) for s, p in zip(signs, perm, strict=True)))
    return np.array(sorted(out), dtype=np.int64)


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

    def family(self, hkl: tuple[int, int, int]) -> np.ndarray:
        """Boolean mask of the unique differences in the ±permutation family of ``hkl``."""
        eq = {tuple(h) for h in equivalents(hkl)}
        mask = np.array([tuple(h) in eq for h in self.uniq])
        if not mask.any():
            raise SettingsError(
                f"reflection {hkl} couples no beams of the pool; it cannot be refined"
            )
        return mask

    def ug(self, b: dict[str, float], hkl: tuple[int, int, int]) -> complex:
        """U_g [Å⁻²] of the crystal with B ``b`` (engine origin), before any factor."""
        u, _ = self._parts(b)
        i = int(np.nonzero(np.all(self.uniq == np.asarray(hkl), axis=1))[0][0])
        return complex(u[i])

    def table(self, b: dict[str, float], factors: dict[tuple, float]) -> np.ndarray:
        """V_{g−h} [Å⁻²], shape (n_pool, n_pool), for B [Å²] and U_g factors [-]."""
        u, up = self._parts(b)
        for hkl, f in factors.items():
            u = np.where(self.family(hkl), u * float(f), u)
        if self.plan.real:
            return u.real[self.inv].reshape(self.n, self.n) + 1j * up.real[self.inv].reshape(
                self.n, self.n
            )
        return (u + 1j * up)[self.inv].reshape(self.n, self.n)
