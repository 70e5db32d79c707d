"""Relativistic constants against the values tabulated in docs/physics.md §1 (Kirkland 2010)."""

import pytest

from lacbed import constants as C
from lacbed.errors import SettingsError


@pytest.mark.parametrize(
    ("kv", "gamma", "lam"),
    [(200, 1.391390, 0.0250793), (300, 1.587085, 0.0196875)],
)
def test_gamma_and_wavelength(kv, gamma, lam):
    # tabulated to 7 significant figures: compare to the last tabulated digit
    assert C.gamma(kv * 1e3) == pytest.approx(gamma, abs=1e-6)
    assert C.wavelength(kv * 1e3) == pytest.approx(lam, abs=1e-7)


def test_wavenumber_and_sigma_200kv():
    assert C.wavenumber(200e3) == pytest.approx(39.8735, abs=1e-4)
    assert C.interaction_constant(200e3) == pytest.approx(7.2884e-4, rel=1e-4)


def test_prefactors():
    # h^2/(2 pi m0 e) = 47.87765 V Å^2 and 2 m0 e / h^2 = 0.0066484 Å^-2 V^-1 (docs/physics.md §2)
    assert C.PREFACTOR_V == pytest.approx(47.87765, rel=1e-6)
    assert C.U_PER_V == pytest.approx(0.0066484, rel=1e-4)
    # consistency: U_g = gamma F/(pi Omega)  <=>  U_PER_V * PREFACTOR_V = 1/pi
    assert C.U_PER_V * C.PREFACTOR_V == pytest.approx(1 / 3.141592653589793, rel=1e-12)


@pytest.mark.parametrize("bad", [0, -200e3, float("nan")])
def test_bad_voltage(bad):
    with pytest.raises(SettingsError, match="voltage"):
        C.electron_constants(bad)
