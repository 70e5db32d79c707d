"""Relativistic electron constants for a given accelerating voltage.

All quantities use Å, V, eV and reciprocal lengths in 1/Å without a factor 2π.

References
----------
.. [1] E. J. Kirkland, *Advanced Computing in Electron Microscopy*, 2nd ed. (Springer, 2010),
   Sec. 2.2, Eqs. (2.5)-(2.6) (wavelength) and Eq. (5.6) (interaction parameter σ).
.. [2] CODATA 2018 recommended values, via :mod:`scipy.constants`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import constants as _c

from lacbed.errors import SettingsError

__all__ = [
    "ElectronConstants",
    "electron_constants",
    "wavelength",
    "gamma",
    "wavenumber",
    "interaction_constant",
    "speed",
    "PREFACTOR_V",
    "U_PER_V",
]

_M0 = _c.m_e  # kg
_E = _c.e  # C
_H = _c.h  # J s
_C = _c.c  # m/s (exact; Felix's 2.99762458e8 is a typo)

#: h^2/(2π m0 e) in V·Å²: converts Σ f_j(s) e^{-2πi g·r}/Ω [Å/Å³] into V_g [V]
#: (Kirkland 2010, Eq. 5.16 with the electron scattering factor in Å).
PREFACTOR_V: float = _H**2 / (2.0 * np.pi * _M0 * _E) * 1e20

#: 2 m0 e / h² in Å⁻² V⁻¹: U_g = γ · U_PER_V · V_g (Spence & Zuo 1992, Eq. 2.1).
U_PER_V: float = 2.0 * _M0 * _E / _H**2 * 1e-20


def _check_voltage(voltage: float) -> float:
    voltage = float(voltage)
    if not np.isfinite(voltage) or voltage <= 0:
        raise SettingsError(f"accelerating voltage must be > 0 V, got {voltage!r}")
    return voltage


def gamma(voltage: float) -> float:
    """Lorentz factor γ = 1 + eE/(m₀c²).

    Parameters
    ----------
    voltage : float
        Accelerating voltage E [V].
    """
    voltage = _check_voltage(voltage)
    return 1.0 + _E * voltage / (_M0 * _C**2)


def wavelength(voltage: float) -> float:
    """Relativistic electron wavelength λ = h / √(2m₀eE(1 + eE/(2m₀c²))) [Å].

    Parameters
    ----------
    voltage : float
        Accelerating voltage E [V].

    References
    ----------
    Kirkland (2010), Eq. (2.5).
    """
    voltage = _check_voltage(voltage)
    p = np.sqrt(2.0 * _M0 * _E * voltage * (1.0 + _E * voltage / (2.0 * _M0 * _C**2)))
    return _H / p * 1e10


def wavenumber(voltage: float) -> float:
    """Vacuum wavenumber K = 1/λ [1/Å] (no 2π)."""
    return 1.0 / wavelength(voltage)


def speed(voltage: float) -> float:
    """Electron speed v [m/s] from γ: v = c√(1 − 1/γ²)."""
    g = gamma(voltage)
    return _C * np.sqrt(1.0 - 1.0 / g**2)


def interaction_constant(voltage: float) -> float:
    """Interaction parameter σ = 2πγm₀eλ/h² [rad V⁻¹ Å⁻¹].

    References
    ----------
    Kirkland (2010), Eq. (5.6). 7.2884e-4 at 200 kV.
    """
    lam = wavelength(voltage) * 1e-10  # m
    return 2.0 * np.pi * gamma(voltage) * _M0 * _E * lam / _H**2 * 1e-10


@dataclass(frozen=True)
class ElectronConstants:
    """Relativistic constants of the beam.

    Attributes
    ----------
    voltage : float
        Accelerating voltage [V].
    gamma : float
        Lorentz factor [-].
    wavelength : float
        λ [Å].
    wavenumber : float
        K = 1/λ [1/Å].
    sigma : float
        Interaction parameter [rad V⁻¹ Å⁻¹].
    speed : float
        v [m/s].
    """

    voltage: float
    gamma: float
    wavelength: float
    wavenumber: float
    sigma: float
    speed: float


def electron_constants(voltage: float) -> ElectronConstants:
    """All beam constants for an accelerating voltage [V]."""
    return ElectronConstants(
        voltage=_check_voltage(voltage),
        gamma=gamma(voltage),
        wavelength=wavelength(voltage),
        wavenumber=wavenumber(voltage),
        sigma=interaction_constant(voltage),
        speed=speed(voltage),
    )
