"""Fourier coefficients V_g and U_g of the crystal potential, with absorption.

Conventions (docs/physics.md §2–3): g = h a* + k b* + l c* [1/Å] without 2π (h/a for a cubic
crystal; the reciprocal basis of any other, :attr:`lacbed.crystal.Crystal.reciprocal_basis`),
s = |g|/2, Ω the cell volume,

    V_g = (h²/(2πm₀eΩ)) Σ_j occ_j f_j(s) e^{−B_j s²} e^{−2πi g·r_j}    [V]
    U_g = γ (2m₀e/h²) V_g                                              [Å⁻²]
    ξ_g = 1/(λ|U_g|)                                                  [nm after ×0.1]

and the absorptive part U′_g (the full potential is U + iU′):

* ``"none"``: U′_g = 0;
* ``"proportional"``: U′_g = κ U_g (Felix ``RAbsorptionPer`` = 100κ);
* ``"bird-king"``: U′_g = γ/(πΩ) Σ_j occ_j f′_j(s) e^{−B_j s²} e^{−2πi g·r_j} with f′ the
  Bird–King absorptive form factor (:mod:`lacbed.scattering.absorption`).

References
----------
.. [1] E. J. Kirkland, *Advanced Computing in Electron Microscopy*, 2nd ed. (Springer, 2010),
   Ch. 5 (V_g from f_e).
.. [2] J. C. H. Spence and J. M. Zuo, *Electron Microdiffraction* (Plenum, 1992), Ch. 2 (U_g, ξ_g).
.. [3] D. M. Bird and Q. A. King, Acta Cryst. A46 (1990) 202–208 (absorptive form factors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lacbed.constants import PREFACTOR_V, U_PER_V, gamma, wavelength
from lacbed.errors import SettingsError
from lacbed.scattering.absorption import damped_absorptive_form_factor
from lacbed.scattering.parametrizations import normalise_parametrization, scattering_factor

__all__ = ["ABSORPTION_MODELS", "StructureFactors", "reflections_within", "structure_factors"]

ABSORPTION_MODELS = ("none", "proportional", "bird-king")

#: A real or imaginary part of Σ_j occ_j f_j e^{−B_j s²} e^{−2πi g·r_j} below this fraction of
#: Σ_j occ_j |f_j e^{−B_j s²}| (the largest value the sum could take) is cancellation round-off
#: and is set to exactly 0 (e.g. Si 200 for a static lattice, Im V_220 of Si).
_ZERO_TOL = 1e-12

#: Largest |hkl| = g_max·a that :func:`reflections_within` accepts (~1e6 reflections).
MAX_INDEX = 60.0


@dataclass(frozen=True, eq=False)
class StructureFactors:
    """Fourier coefficients of the potential for a list of reflections.

    Attributes
    ----------
    hkl : ndarray, shape (n, 3), int
        Miller indices.
    g : ndarray, shape (n, 3)
        Reciprocal vectors g = (h, k, l) @ (a*, b*, c*) [1/Å] (h/a for a cubic crystal), in the
        crystal's Cartesian frame.
    g_norm : ndarray, shape (n,)
        |g| [1/Å].
    V : ndarray, shape (n,), complex
        V_g [V].
    U : ndarray, shape (n,), complex
        U_g [Å⁻²].
    U_abs : ndarray, shape (n,), complex
        U′_g, the absorptive part [Å⁻²]; the full potential is U + iU′.
    xi_nm : ndarray, shape (n,)
        Extinction distance ξ_g = 1/(λ|U_g|) [nm]; ``inf`` where U_g = 0.
    voltage : float
        Accelerating voltage [V].
    scattering : str
        Parametrisation used.
    absorption : str
        Absorption model used.
    """

    hkl: np.ndarray
    g: np.ndarray
    g_norm: np.ndarray
    V: np.ndarray
    U: np.ndarray
    U_abs: np.ndarray
    xi_nm: np.ndarray
    voltage: float = 200e3
    scattering: str = "kirkland"
    absorption: str = "bird-king"

    def __len__(self) -> int:
        return int(self.hkl.shape[0])


def _normalise_absorption(absorption: str) -> str:
    key = str(absorption).strip().lower().replace("_", "-")
    key = {"birdking": "bird-king", "bk": "bird-king", "tds": "bird-king"}.get(key, key)
    if key not in ABSORPTION_MODELS:
        raise SettingsError(
            f"unknown absorption model {absorption!r}; allowed: {', '.join(ABSORPTION_MODELS)}"
        )
    return key


def _site_b(crystal, b_iso) -> np.ndarray:
    if b_iso is None:
        return np.asarray(crystal.b_iso, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b_iso, dtype=np.float64), (crystal.n_sites,))
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise SettingsError(f"Debye-Waller factor B must be finite and >= 0 Å², got {b_iso!r}")
    return b


def _clean(total: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Set round-off-sized real and imaginary parts to exactly 0 (see ``_ZERO_TOL``)."""
    re = np.where(np.abs(total.real) <= _ZERO_TOL * bound, 0.0, total.real)
    im = np.where(np.abs(total.imag) <= _ZERO_TOL * bound, 0.0, total.imag)
    return re + 1j * im


def _fourier_sum(crystal, hkl, b_site, factor, g_norm=None) -> tuple[np.ndarray, np.ndarray]:
    """Σ_j occ_j F_j(s) e^{−2πi h·x_j} and its bound Σ_j occ_j |F_j(s)|.

    ``factor(symbol, b, s)`` returns F_j (including the Debye–Waller factor) on the unique values
    of s; sites sharing (element, B) share one evaluation. ``g_norm`` [1/Å] gives s = |g|/2 for a
    crystal of any system; None: the cubic s computed from h² + k² + l².
    """
    if g_norm is None:
        # cubic cell: s² = (h² + k² + l²)/(4a²), so f is evaluated once per integer h² + k² + l²
        n2_unique, inverse = np.unique(np.sum(hkl * hkl, axis=1), return_inverse=True)
        s_unique = np.sqrt(n2_unique.astype(np.float64)) / (2.0 * crystal.a)
    else:
        s_unique, inverse = np.unique(0.5 * np.asarray(g_norm), return_inverse=True)
    total = np.zeros(hkl.shape[0], dtype=np.complex128)
    bound = np.zeros(hkl.shape[0], dtype=np.float64)
    species: dict[tuple[str, float], list[int]] = {}
    for j, (sym, b) in enumerate(zip(crystal.symbols, b_site, strict=True)):
        species.setdefault((sym, float(b)), []).append(j)
    hkl_f = hkl.astype(np.float64)
    for (sym, b), sites in species.items():
        amp = factor(sym, b, s_unique)[inverse]  # (n,)
        x = crystal.positions[sites]  # (m, 3)
        occ = crystal.occupancies[sites]  # (m,)
        phase = np.exp(-2j * np.pi * (hkl_f @ x.T)) @ occ  # (n,)
        total += amp * phase
        bound += np.abs(amp) * occ.sum()
    return total, bound


def structure_factors(
    crystal,
    hkl: np.ndarray,
    *,
    voltage: float = 200e3,
    scattering: str = "kirkland",
    absorption: str = "bird-king",
    kappa: float = 0.078,
    b_iso: float | np.ndarray | None = None,
) -> StructureFactors:
    """Fourier coefficients V_g, U_g and U′_g of a crystal's potential (any crystal system).

    Parameters
    ----------
    crystal : lacbed.crystal.Crystal
        The crystal (conventional cubic cell, or the cell of a crystal of another system).
    hkl : array_like, shape (n, 3) or (3,)
        Miller indices (integers).
    voltage : float
        Accelerating voltage [V].
    scattering : {"kirkland", "peng", "lobato", "doyle-turner"}
        Electron scattering-factor parametrisation.
    absorption : {"bird-king", "proportional", "none"}
        Absorption model for U′_g.
    kappa : float
        U′_g/U_g for ``absorption="proportional"`` [-].
    b_iso : float, ndarray or None
        Debye–Waller factor(s) B [Å²] replacing the crystal's; ``None`` keeps them.

    Returns
    -------
    StructureFactors

    References
    ----------
    V_g: Kirkland (2010), Ch. 5; U_g and ξ_g: Spence & Zuo (1992), Ch. 2; U′_g: Bird & King
    (1990). See the module docstring.
    """
    hkl = np.asarray(hkl)
    if hkl.ndim == 1:
        hkl = hkl.reshape(1, 3)
    if hkl.ndim != 2 or hkl.shape[1] != 3:
        raise SettingsError(f"hkl must have shape (n, 3), got {hkl.shape}")
    if not np.all(np.isfinite(hkl)) or not np.all(np.asarray(hkl) == np.round(hkl)):
        raise SettingsError("Miller indices must be integers")
    hkl = hkl.astype(np.int64)
    scattering = normalise_parametrization(scattering)
    absorption = _normalise_absorption(absorption)
    kappa = float(kappa)
    if absorption == "proportional" and not (np.isfinite(kappa) and kappa >= 0):
        raise SettingsError(f"kappa must be a finite number >= 0, got {kappa!r}")
    gam = gamma(voltage)
    lam = wavelength(voltage)
    b_site = _site_b(crystal, b_iso)

    omega = crystal.volume
    if crystal.is_cubic:
        g = hkl / crystal.a  # (n, 3) [1/Å]
    else:
        g = hkl @ crystal.reciprocal_basis  # (n, 3) [1/Å], International Tables B §1.1.2
    g_norm = np.sqrt(np.sum(g * g, axis=1))
    s_from = None if crystal.is_cubic else g_norm

    def elastic(sym: str, b: float, s_u: np.ndarray) -> np.ndarray:
        return scattering_factor(sym, s_u, scattering) * np.exp(-b * s_u**2)

    fsum, bound = _fourier_sum(crystal, hkl, b_site, elastic, s_from)
    fsum = _clean(fsum, bound)
    V = PREFACTOR_V / omega * fsum
    U = gam * U_PER_V * V

    if absorption == "none":
        U_abs = np.zeros_like(U)
    elif absorption == "proportional":
        U_abs = kappa * U
    else:

        def absorptive(sym: str, b: float, s_u: np.ndarray) -> np.ndarray:
            return damped_absorptive_form_factor(
                sym, b, s_u, voltage=voltage, parametrization=scattering
            )

        asum, abound = _fourier_sum(crystal, hkl, b_site, absorptive, s_from)
        asum = _clean(asum, abound)
        U_abs = gam / (np.pi * omega) * asum

    with np.errstate(divide="ignore"):
        xi_nm = 0.1 / (lam * np.abs(U))
    for arr in (hkl, g, g_norm, V, U, U_abs, xi_nm):
        arr.setflags(write=False)
    return StructureFactors(
        hkl=hkl,
        g=g,
        g_norm=g_norm,
        V=V,
        U=U,
        U_abs=U_abs,
        xi_nm=xi_nm,
        voltage=float(voltage),
        scattering=scattering,
        absorption=absorption,
    )


def reflections_within(a, g_max: float) -> np.ndarray:
    """All (h, k, l) with |g| ≤ g_max, sorted by |g| then h, k, l.

    Parameters
    ----------
    a : float or Crystal
        Cubic lattice parameter [Å] (|g| = |hkl|/a), or a crystal of any system (|g| from its
        reciprocal basis).
    g_max : float
        Largest |g| [1/Å] (inclusive, with a 1e-9 relative margin for round-off).

    Returns
    -------
    ndarray, shape (n, 3), int64
        Including 000 and reflections that are absent by symmetry.
    """
    if not (np.isfinite(g_max) and g_max > 0):
        raise SettingsError(f"g_max must be > 0 [1/Å], got {g_max!r}")
    if hasattr(a, "reciprocal_basis"):
        if a.is_cubic:
            a = a.a
        else:
            return _reflections_within_cell(a.reciprocal_basis, g_max)
    if g_max * a > MAX_INDEX:
        n_est = 4.0 / 3.0 * np.pi * (g_max * a) ** 3
        raise SettingsError(
            f"g_max = {g_max:g} 1/Å would give ~{n_est:.2g} reflections for a = {a:g} Å; "
            f"allowed: g_max ≤ {MAX_INDEX / a:.3g} 1/Å"
        )
    n_max = int(np.floor((g_max * a) ** 2 * (1 + 1e-9)))  # h² + k² + l² ≤ (g_max a)²
    m = int(np.floor(np.sqrt(n_max)))
    r = np.arange(-m, m + 1)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    n2 = np.sum(hkl * hkl, axis=1)
    hkl, n2 = hkl[n2 <= n_max], n2[n2 <= n_max]
    order = np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0], n2))
    return hkl[order]


def _reflections_within_cell(reciprocal: np.ndarray, g_max: float) -> np.ndarray:
    """:func:`reflections_within` for a reciprocal basis (rows a*, b*, c* [1/Å])."""
    lengths = np.linalg.norm(np.linalg.inv(reciprocal).T, axis=1)  # |a|, |b|, |c| [Å]
    m = np.floor(g_max * lengths * (1 + 1e-9)).astype(np.int64)  # |h| ≤ |g||a|
    n_est = float(np.prod(2 * m + 1))
    if n_est > (2 * MAX_INDEX + 1) ** 3 / 8:
        raise SettingsError(
            f"g_max = {g_max:g} 1/Å would search ~{n_est:.2g} reflections for this cell; "
            f"allowed: g_max ≤ {MAX_INDEX / lengths.max():.3g} 1/Å"
        )
    axes = [np.arange(-k, k + 1) for k in m]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    gn = np.linalg.norm(hkl @ reciprocal, axis=1)
    keep = gn <= g_max * (1 + 1e-9)
    hkl, gn = hkl[keep], gn[keep]
    order = np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0], np.round(gn, 12)))
    return hkl[order]
