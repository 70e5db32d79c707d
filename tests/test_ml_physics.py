"""The physics channel (lacbed.ml.physics): two-beam strengths and Bragg lines where the engine
puts them."""

from __future__ import annotations

import numpy as np
import pytest

from lacbed.crystal import example_path, read_cif
from lacbed.metrics import z_score
from lacbed.ml.physics import _pixel_lorentzian, bragg_line_map, two_beam_integrated_intensity


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0, 3.7])
def test_two_beam_integrated_intensity_is_the_integral_of_the_rocking_curve(tau):
    from scipy.integrate import quad

    xi = 500.0  # [Å]
    t = tau * xi

    def rocking(s):  # Hirsch et al. (1965): sin²(πt s_eff) / (ξ s_eff)²
        se2 = s * s + xi**-2
        return np.sin(np.pi * t * np.sqrt(se2)) ** 2 / (xi**2 * se2)

    lim = 400.0 / xi
    num = sum(
        quad(rocking, lo, lo + lim / 50, limit=200)[0] for lo in np.linspace(-lim, lim, 101)[:-1]
    )
    tail = 2 * 0.5 / (xi**2 * lim)  # the rocking curve's mean ½/(ξ s)² beyond ±lim
    got = float(two_beam_integrated_intensity(t, xi))
    assert got == pytest.approx(num + tail, rel=2e-3)  # quadrature of an oscillating tail
    if tau <= 0.05:  # kinematic limit π²t/ξ²
        assert got == pytest.approx(np.pi**2 * t / xi**2, rel=0.02)
    assert float(two_beam_integrated_intensity(t, np.inf)) == 0.0


def test_pixel_average_keeps_the_line_strength():
    s = (np.arange(-400, 400) + 0.5) * 0.01  # pixels of width 0.01 in s
    for gamma in (1e-4, 0.003, 0.05):  # far below, near and above one pixel
        total = float(np.sum(_pixel_lorentzian(s, gamma, 0.01)) * 0.01)
        # unit area up to the tails beyond ±4 (2γ/(π·4) at most 0.8 %)
        assert total == pytest.approx(1.0, abs=0.01)


@pytest.fixture(scope="module")
def si_engine():
    from lacbed.simulate import simulate_lacbed

    si = read_cif(example_path("Si"))
    # the converged default engine (adaptive beams), 64 px: 0.15 s
    return si, simulate_lacbed(si, thickness_nm=[50.0, 100.0], size=64, n_jobs=1).intensities


def test_bragg_lines_where_the_engine_puts_them(si_engine):
    """Si: the map correlates with the engine's pattern; the potential image does not."""
    from lacbed.scattering import projected_potential

    si, eng = si_engine
    pot = projected_potential(si, 64)
    for j, t in enumerate((50.0, 100.0)):
        m = bragg_line_map(si, t, size=64)
        assert m.shape == (64, 64) and m.dtype == np.float32
        assert np.all(m > 0) and np.all(m <= 1)
        z_map, z_pot = z_score(m, eng[j]), z_score(pot, eng[j])
        # measured: map 0.37 (50 nm) and 0.67 (100 nm), i.e. ZNCC 0.63 and 0.33; the potential
        # ~0.94-1.00 (ZNCC ≈ 0, it lives in real space). Margins ~0.1 for other BLAS builds.
        assert z_map < (0.47, 0.77)[j]
        assert z_pot > 0.9
        # the lines must be where they are: moving the map by 4 pixels (0.05 W) loses it
        assert z_score(np.roll(m, 4, axis=1), eng[j]) > z_map + 0.05
    np.testing.assert_array_equal(m, m.T)  # Si is 4mm, and so is its map
    np.testing.assert_array_equal(m, m[:, ::-1])


def test_map_is_cheap():
    import time

    si = read_cif(example_path("Si"))
    bragg_line_map(si, 100.0, size=128)
    t0 = time.process_time()
    bragg_line_map(si, 100.0, size=128)
    # measured 29 ms of CPU on the shared 2-core machine; 1 s would still be 0.3x the engine
    assert time.process_time() - t0 < 1.0
