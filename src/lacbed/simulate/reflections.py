"""Reflections of dark-field discs: parsing, labels, and where each one is in the beam pool.

A dark-field disc of g is the intensity I_g of beam g as a function of the incident direction,
on the same pixel grid as the bright field (Felix's convention, docs/physics.md §6). The engine
solves it for a reflection that is in the beam pool (docs/physics.md §5), forced into the strong
set of every tile. A reflection outside the pool is refused, except one forbidden by the lattice
centring (ITA Table 2.1.3.5): every U_{g−h} that couples it to an allowed beam vanishes, so it is
kinematically and dynamically forbidden and its disc is exactly zero.

Pure functions; the crystal enters only through the pool and the centring.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from lacbed.bloch.pool import centring_allowed
from lacbed.errors import SettingsError
from lacbed.simulate.symmetry import apply_op_hkl

__all__ = ["parse_hkl", "hkl_label", "as_hkl_array", "resolve_reflections", "symmetry_orbit"]

_COMPACT = re.compile(r"^(-?\d)(-?\d)(-?\d)$")
_SEPARATED = re.compile(r"^[\[(]?\s*(-?\d+)\s*[,\s]\s*(-?\d+)\s*[,\s]\s*(-?\d+)\s*[\])]?$")


def parse_hkl(text: str) -> tuple[int, int, int]:
    """Miller indices from Felix-style text: ``2-20`` → (2, −2, 0); also ``2,-2,0``, ``[2,-2,0]``.

    The compact form takes one digit per index with an optional minus sign (as Felix writes
    its file names and labels); indices of two or more digits need commas.

    Raises
    ------
    SettingsError
        Text that is neither form (one line naming it).
    """
    s = str(text).strip()
    m = _COMPACT.match(s) or _SEPARATED.match(s)
    if m is None:
        raise SettingsError(
            f"reflection {text!r} is not h k l: write 2-20 (one digit per index) or 2,-2,0"
        )
    hh, kk, ll = (int(x) for x in m.groups())
    return hh, kk, ll


def hkl_label(hkl: Sequence[int]) -> str:
    """Felix-style label: ``2-20`` when every |index| ≤ 9, else ``10,-2,0``."""
    h = [int(x) for x in hkl]
    if all(abs(x) <= 9 for x in h):
        return "".join(str(x) for x in h)
    return ",".join(str(x) for x in h)


def as_hkl_array(reflections: Iterable) -> np.ndarray:
    """Requested reflections as an (n, 3) int array (hkl text or triples; no duplicates)."""
    rows = []
    if isinstance(reflections, str):  # one reflection, not its characters
        reflections = [reflections]
    for r in reflections:
        if isinstance(r, str):
            rows.append(parse_hkl(r))
            continue
        try:
            v = np.asarray(r, dtype=float)
        except (TypeError, ValueError):
            raise SettingsError(f"reflection {r!r} is not three integers (h, k, l)") from None
        if v.shape != (3,) or not np.all(np.isfinite(v)) or np.any(v != np.round(v)):
            raise SettingsError(f"reflection {r!r} is not three integers (h, k, l)")
        rows.append(tuple(int(x) for x in v))
    if not rows:
        raise SettingsError("reflections is empty: give at least one (h, k, l), e.g. (0, 0, 0)")
    hkl = np.array(rows, dtype=np.int64).reshape(-1, 3)
    _, first, counts = np.unique(hkl, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup = hkl[np.sort(first[counts > 1])[0]]
        raise SettingsError(f"reflection {hkl_label(dup)} is listed more than once")
    return hkl


def resolve_reflections(
    reflections: Iterable,
    pool: np.ndarray,
    centring: str,
    *,
    max_g: float,
    a: float,
    reciprocal: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Requested reflections and their pool indices (−1: forbidden by centring, disc ≡ 0).

    Parameters
    ----------
    reflections : iterable of (h, k, l) or str
        Requested beams, in output order.
    pool : ndarray, shape (n_pool, 3), int
        The beam pool (000 first).
    centring : {'P', 'I', 'F'}
        Lattice centring of the crystal.
    max_g : float
        Largest |g| of the pool [1/Å] (for the message).
    a : float
        Lattice parameter [Å].
    reciprocal : ndarray, shape (3, 3), optional
        Reciprocal basis (rows a*, b*, c* [1/Å]) of a non-cubic crystal; None: g = hkl/a.

    Returns
    -------
    hkl : ndarray, shape (n_g, 3), int
    index : ndarray, shape (n_g,), int
        Pool index of each reflection, −1 where the centring forbids it.

    Raises
    ------
    SettingsError
        A reflection allowed by the centring but not in the pool (|g| > max_g, or too far from
        the Ewald sphere for the pool's HOLZ criterion), or malformed input.
    """
    hkl = as_hkl_array(reflections)
    lookup = {tuple(int(x) for x in h): i for i, h in enumerate(pool)}
    allowed = centring_allowed(hkl, centring)
    index = np.full(len(hkl), -1, dtype=np.int64)
    for i, h in enumerate(hkl):
        key = tuple(int(x) for x in h)
        if key in lookup:
            index[i] = lookup[key]
        elif allowed[i]:
            g = float(
                np.linalg.norm(h) / a if reciprocal is None else np.linalg.norm(h @ reciprocal)
            )
            why = (
                f"|g| = {g:.3f} 1/Å is beyond the pool's |g| ≤ {max_g:.3f} 1/Å; raise max_g"
                if g > max_g * (1 + 1e-9)
                else "too far from the Ewald sphere for the beam pool of this zone axis"
            )
            raise SettingsError(f"reflection {hkl_label(h)} is not in the beam pool ({why})")
    return hkl, index


def symmetry_orbit(index: np.ndarray, pool: np.ndarray, symmetry: str) -> np.ndarray:
    """Pool indices of the images of the given beams under the [001] symmetry ops (sorted).

    Forcing the whole orbit into the wedge tiles' strong sets puts every requested beam into the
    strong set of every pixel of a full (or half-plane) solve, whose sets are images of the wedge sets
    (:func:`lacbed.simulate.plan._jobs`); the pool is closed under these ops (it depends on |g|
    and l only).

    Parameters
    ----------
    index : ndarray of int
        Pool indices (negative entries are ignored).
    pool : ndarray, shape (n_pool, 3)
    symmetry : {'4mm', '2mm', '1'}
        The group whose images are taken (ops of :mod:`lacbed.simulate.symmetry`).
    """
    n_ops = {"4mm": 8, "2mm": 4, "1": 1}[symmetry]
    lookup = {tuple(int(x) for x in h): i for i, h in enumerate(pool)}
    idx = np.asarray(index, dtype=np.int64)
    hkl = pool[idx[idx >= 0]]
    out = set()
    for op in range(n_ops):
        for h in apply_op_hkl(hkl, op):
            out.add(lookup[tuple(int(x) for x in h)])
    return np.array(sorted(out), dtype=np.int64)
