"""Electron scattering factors f_e(s) of neutral atoms from four published parametrisations.

Each table is a JSON file in ``lacbed/scattering/data/`` that carries its citation and where the
numbers were transcribed from. All factors are returned in Å as functions of
s = sinθ/λ = |g|/2 [1/Å] (g without 2π).

======================  ================================================  ==========  ============
name                    source                                            elements    fitted range
======================  ================================================  ==========  ============
``"kirkland"``          Kirkland (2010), App. C: 3 Lorentzians +          H–Lr (103)  q ≤ 12 1/Å
                        3 Gaussians in q = 2s
``"lobato"``            Lobato & Van Dyck (2014): 5 terms                 H–Lr (103)  g ≤ 12 1/Å
                        a(2 + bg²)/(1 + bg²)², g = 2s
``"peng"``              Peng et al. (1996) = ITC C Table 4.3.2.3:         H–Cf (98)   s ≤ 6 1/Å
                        5 Gaussians in s
``"peng-c4322"``        Peng et al. (1996) = ITC C Table 4.3.2.2          H–Cf (98)   s ≤ 2 1/Å
                        (gemmi's ``Element.c4322``): 5 Gaussians in s
``"doyle-turner"``      Doyle & Turner (1968) (+ Smith & Burge 1962):     H–Cf (98)   s ≤ 2 1/Å
                        4 Gaussians in s
======================  ================================================  ==========  ============

References
----------
.. [1] E. J. Kirkland, *Advanced Computing in Electron Microscopy*, 2nd ed. (Springer, 2010),
   Appendix C.
.. [2] I. Lobato and D. Van Dyck, Acta Cryst. A70 (2014) 636–649.
.. [3] L.-M. Peng, G. Ren, S. L. Dudarev and M. J. Whelan, Acta Cryst. A52 (1996) 257–276;
   International Tables for Crystallography Vol. C (2006), Tables 4.3.2.2 and 4.3.2.3.
.. [4] P. A. Doyle and P. S. Turner, Acta Cryst. A24 (1968) 390–397; G. H. Smith and
   R. E. Burge, Acta Cryst. 15 (1962) 182–186.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from lacbed.errors import LacbedError, SettingsError

__all__ = [
    "PARAMETRIZATIONS",
    "ScatteringTable",
    "available_elements",
    "get_table",
    "scattering_factor",
    "normalise_parametrization",
]

#: Names accepted by :func:`scattering_factor` (and their data files).
PARAMETRIZATIONS: dict[str, str] = {
    "kirkland": "kirkland.json",
    "peng": "peng.json",
    "peng-c4322": "peng_c4322.json",
    "lobato": "lobato.json",
    "doyle-turner": "doyle_turner.json",
}

_ALIASES = {
    "dt": "doyle-turner",
    "doyle_turner": "doyle-turner",
    "doyleturner": "doyle-turner",
    "itc": "peng",
    "c4323": "peng",
    "peng-high": "peng",
    "c4322": "peng-c4322",
    "peng-low": "peng-c4322",
    "peng_c4322": "peng-c4322",
    "lobato-van-dyck": "lobato",
}


def normalise_parametrization(name: str) -> str:
    """Canonical parametrisation name; raises :class:`SettingsError` for an unknown one."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in PARAMETRIZATIONS:
        raise SettingsError(
            f"unknown scattering-factor parametrisation {name!r}; "
            f"allowed: {', '.join(PARAMETRIZATIONS)}"
        )
    return key


@dataclass(frozen=True, eq=False)
class ScatteringTable:
    """One coefficient table.

    Attributes
    ----------
    name : str
        Canonical parametrisation name.
    citation : str
        Publication the coefficients come from.
    transcribed_from : str
        Where lacbed's copy of the numbers was taken from.
    formula : str
        The analytic form, as text.
    coefficients : dict
        Element symbol → coefficient array (float64, layout per ``formula``).
    """

    name: str
    citation: str
    transcribed_from: str
    formula: str
    coefficients: dict[str, np.ndarray]


@functools.cache
def get_table(parametrization: str = "kirkland") -> ScatteringTable:
    """Load (once) the coefficient table of a parametrisation."""
    name = normalise_parametrization(parametrization)
    text = (
        resources.files("lacbed.scattering")
        .joinpath("data", PARAMETRIZATIONS[name])
        .read_text(encoding="utf-8")
    )
    raw = json.loads(text)
    coefs = {}
    for sym, entry in raw["elements"].items():
        arr = np.asarray(entry["coef"], dtype=np.float64)
        arr.setflags(write=False)
        coefs[sym] = arr
    return ScatteringTable(
        name=name,
        citation=raw["citation"],
        transcribed_from=raw["transcribed_from"],
        formula=raw["formula"],
        coefficients=coefs,
    )


def available_elements(parametrization: str = "kirkland") -> tuple[str, ...]:
    """Element symbols covered by a parametrisation, in order of atomic number."""
    return tuple(get_table(parametrization).coefficients)


def _symbol(symbol_or_z: str | int) -> str:
    from lacbed.crystal.elements import normalise_symbol

    if isinstance(symbol_or_z, (int, np.integer)):
        import gemmi

        z = int(symbol_or_z)
        if not 1 <= z <= 118:
            raise LacbedError(f"atomic number must be 1-118, got {z}")
        return gemmi.Element(z).name
    return normalise_symbol(symbol_or_z)


def _coefficients(symbol: str, parametrization: str) -> tuple[str, np.ndarray]:
    table = get_table(parametrization)
    try:
        return table.name, table.coefficients[symbol]
    except KeyError:
        raise LacbedError(
            f"element {symbol} is not covered by the {table.name!r} parametrisation "
            f"(covers {next(iter(table.coefficients))}-{list(table.coefficients)[-1]})"
        ) from None


def _evaluate(name: str, coef: np.ndarray, s: np.ndarray) -> np.ndarray:
    """f_e [Å] at s [1/Å] for one element's coefficients (any shape of s)."""
    if name == "kirkland":
        # Kirkland (2010), App. C: q = 2s.
        q2 = 4.0 * s * s
        a, b, c, d = coef[0:6:2], coef[1:6:2], coef[6:12:2], coef[7:12:2]
        f = np.zeros_like(q2)
        for i in range(3):
            f += a[i] / (q2 + b[i]) + c[i] * np.exp(-d[i] * q2)
        return f
    if name == "lobato":
        # Lobato & Van Dyck (2014): g = 2s.
        g2 = 4.0 * s * s
        a, b = coef[:5], coef[5:]
        f = np.zeros_like(g2)
        for i in range(5):
            t = 1.0 + b[i] * g2
            f += a[i] * (1.0 + t) / (t * t)
        return f
    # Peng et al. (1996) and Doyle & Turner (1968): sums of Gaussians in s.
    n = coef.size // 2
    a, b = coef[:n], coef[n:]
    s2 = s * s
    f = np.zeros_like(s2)
    for i in range(n):
        f += a[i] * np.exp(-b[i] * s2)
    return f


def scattering_factor(
    symbol_or_z: str | int | np.ndarray | list,
    s: float | np.ndarray,
    parametrization: str = "kirkland",
) -> np.ndarray:
    """Electron scattering factor f_e(s) of a neutral atom [Å].

    Parameters
    ----------
    symbol_or_z : str, int, or sequence of them
        Element symbol(s) (``'Si'``, ``'O2-'`` – charges are ignored) or atomic number(s).
    s : float or ndarray
        s = sinθ/λ = |g|/2 [1/Å].
    parametrization : {"kirkland", "peng", "lobato", "doyle-turner", "peng-c4322"}
        Coefficient table (see the module docstring for sources).

    Returns
    -------
    ndarray
        f_e [Å], shape ``np.shape(s)`` for one element or ``(n_elements, *np.shape(s))`` for a
        sequence of elements.

    Raises
    ------
    LacbedError
        Unknown element, element not covered by the table, or unknown parametrisation.

    References
    ----------
    See the module docstring.
    """
    s_arr = np.asarray(s, dtype=np.float64)
    if isinstance(symbol_or_z, (str, int, np.integer)):
        name, coef = _coefficients(_symbol(symbol_or_z), parametrization)
        return _evaluate(name, coef, s_arr)
    return np.stack(
        [scattering_factor(e, s_arr, parametrization) for e in np.asarray(symbol_or_z).tolist()]
    )
