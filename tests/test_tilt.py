"""The pattern centre off the zone axis: ``tilt=(k_x0, k_y0)`` and ``--tilt KX KY`` (issue 12,
item 2; docs/physics.md §6, docs/zone_axes.md).

Oracles: tilt (0, 0) is today's result bit for bit; a tilted pattern is the sub-window of a larger
pattern centred on the zone axis whose pixel grid holds the shifted grid exactly (same pixel
step Δ = W/N, the tilt an integer number of steps); a tilt along a mirror of the crystal keeps
that mirror and breaks the others; the CLI records the tilt and refuses a bad one in one line.

Measured (``double_precision``, tests/conftest.py; Si, 200 kV, 16×16 against 24×24, Δ = W/8,
thicknesses 50 and 150 nm):

- Same beams in both runs (every pool beam strong: ``max_g`` = 1.0 1/Å, 21 beams, no Bethe
  beams; ``solver='exact'``): max |ΔI| = 1.6e-13 (round-off); :data:`SAME_BEAMS` = 5e-13 is ~3×.
  With ``solver='fast'`` one pixel differs by 9e-6 at ``max_g`` = 1.5 1/Å (its first-order
  absorption is ill-conditioned at a near-degenerate pair of Bloch waves, which the 1e-16
  difference of the two grids' k_t moves), so the exact solver is the oracle here.
- Default adaptive budget: each run selects its beams per tile at its own tilts, and the large
  pattern's sets are images of its wedge tiles' (4mm), so the sets differ: max |ΔI| = 1.0e-3,
  Z = 1 − ZNCC ≤ 1.4e-7; :data:`ADAPTIVE_MAX` = 5e-3 and :data:`ADAPTIVE_Z` = 5e-7 are 5× and
  3.6× those.
- Si [001] tilted by 3Δ along x: the y → −y mirror holds to max |ΔI| = 5.3e-9 (the weak-beam
  products in single precision; :data:`MIRROR` = 2.5e-8 is ~5×); x → −x and the diagonal are
  broken by 0.77 and 0.85 (:data:`BROKEN` = 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest

from lacbed.cli import main
from lacbed.crystal.examples import example_path
from lacbed.errors import SettingsError
from lacbed.simulate import simulate_lacbed
from lacbed.simulate.geometry import pixel_axis
from lacbed.simulate.io import read_pattern_h5
from lacbed.simulate.plan import plan_lacbed

#: Sub-window with the same beams, exact solver: ~3× the measured 1.6e-13 (module notes).
SAME_BEAMS = 5e-13
#: Sub-window with the default adaptive beams: 5× the measured max |ΔI| 1.0e-3.
ADAPTIVE_MAX = 5e-3
#: ... and 3.6× the measured Z = 1 − ZNCC 1.4e-7.
ADAPTIVE_Z = 5e-7
#: A mirror the tilt keeps: ~5× the measured 5.3e-9.
MIRROR = 2.5e-8
#: A mirror the tilt breaks is off by far more (measured ≥ 0.77).
BROKEN = 1e-3

SI = example_path("Si")
A_SI = 5.431  # [Å] (example CIF)
W = 4.0 / A_SI  # default half-width [1/Å]
STEP = W / 8  # pixel step of a 16×16 pattern [1/Å]
KW = dict(convergence_target=None, convergence_sample=0, thickness_nm=[50.0, 150.0], n_jobs=1)


def _sub(big, small, shift):
    """The window of ``big`` (N + M per half side) on the grid of ``small`` tilted by
    ``shift`` = (mx, my) pixel steps, M = max |m|."""
    n = small.size // 2
    m = (big.size - small.size) // 2
    r0, c0 = m + shift[1], m + shift[0]
    np.testing.assert_allclose(big.kx[c0 : c0 + 2 * n], small.kx, rtol=0, atol=1e-14)
    np.testing.assert_allclose(big.ky[r0 : r0 + 2 * n], small.ky, rtol=0, atol=1e-14)
    return big.intensities[..., r0 : r0 + 2 * n, c0 : c0 + 2 * n]


def test_zero_tilt_is_bit_identical():
    p0 = simulate_lacbed(SI, size=16, **KW)
    p1 = simulate_lacbed(SI, size=16, tilt=(0.0, 0.0), **KW)
    assert np.array_equal(p0.intensities, p1.intensities)
    assert np.array_equal(p0.kx, p1.kx) and np.array_equal(p0.ky, p1.ky)
    assert p1.settings["tilt"] == [0.0, 0.0] and p1.settings["symmetry"] == p0.settings["symmetry"]


def test_tilt_shifts_axes_and_settings():
    kx0, ky0 = 0.1, -0.05
    p = simulate_lacbed(SI, size=8, max_g=1.0, tilt=(kx0, ky0), **KW)
    assert p.settings["tilt"] == [kx0, ky0] and p.settings["symmetry"] == "1"
    np.testing.assert_allclose(p.kx, pixel_axis(8, W, 0.0) + kx0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.ky, pixel_axis(8, W, 0.0) + ky0, rtol=0, atol=1e-15)
    assert p.tilt_x_mrad.mean() == pytest.approx(1e3 * p.wavelength * kx0)


@pytest.mark.parametrize("shift", [(4, 0), (3, -2)])
def test_tilt_is_a_window_of_a_larger_pattern_same_beams(double_precision, shift):
    """Every pool beam strong in both runs (no Bethe beams): the beams are identical, so the
    two patterns agree to round-off (exact solver, module notes)."""
    m = max(abs(s) for s in shift)
    n_pool = len(plan_lacbed(SI, 50.0, size=16, max_g=1.0, strong_beams=2).pool)
    kw = dict(KW, max_g=1.0, strong_beams=n_pool, solver="exact")
    small = simulate_lacbed(SI, size=16, tilt=(shift[0] * STEP, shift[1] * STEP), **kw)
    big = simulate_lacbed(SI, size=16 + 2 * m, half_width=(8 + m) * STEP, **kw)
    assert small.settings["n_weak_mean"] == 0 and small.settings["n_strong_min"] == n_pool
    assert np.abs(_sub(big, small, shift) - small.intensities).max() < SAME_BEAMS


def test_tilt_is_a_window_of_a_larger_pattern_adaptive(double_precision):
    """The default budget: beam sets chosen per tile at the shifted tilts (module notes)."""
    shift = (4, 0)
    small = simulate_lacbed(SI, size=16, tilt=(4 * STEP, 0.0), **KW)
    big = simulate_lacbed(SI, size=24, half_width=12 * STEP, **KW)
    sub = _sub(big, small, shift)
    assert np.abs(sub - small.intensities).max() < ADAPTIVE_MAX
    for a, b in zip(sub, small.intensities, strict=True):
        assert 1.0 - np.corrcoef(a.ravel(), b.ravel())[0, 1] < ADAPTIVE_Z


def test_tilt_along_a_mirror_keeps_only_that_mirror(double_precision):
    """Si [001] (4mm) tilted along x: k_y → −k_y maps the shifted grid onto itself and stays a
    mirror; k_x → −k_x and the diagonal no longer hold."""
    p = simulate_lacbed(SI, size=16, tilt=(3 * STEP, 0.0), **KW)
    i = p.intensities
    assert p.settings["symmetry"] == "1"
    assert np.abs(i - i[:, ::-1, :]).max() < MIRROR
    assert np.abs(i - i[:, :, ::-1]).max() > BROKEN
    assert np.abs(i - np.swapaxes(i, 1, 2)).max() > BROKEN


def test_tilt_with_the_convergence_estimate_and_discs():
    """The estimate's sample and the dark-field discs run on the shifted tilts (every pixel)."""
    p = simulate_lacbed(
        SI, size=8, max_g=1.5, tilt=(0.1, 0.0), convergence_target=None, thickness_nm=50.0,
        reflections=["000", "2-20"], n_jobs=1,
    )  # fmt: skip
    assert p.settings["symmetry"] == "1" and p.intensities.shape == (2, 1, 8, 8)
    # measured 2.8e-9 (a 21-beam pool, max_g 1.5): the sample ran and found it converged
    assert 0.0 <= p.settings["convergence_estimate"] < 1.5e-8
    assert np.all(np.isfinite(p.intensities))


@pytest.mark.parametrize(
    ("tilt", "kw", "word"),
    [
        ((np.nan, 0.0), {}, "finite"),
        ((0.0, np.inf), {}, "finite"),
        ((25.0, 0.0), {}, "K/2"),
        ((0.1,), {}, "two numbers"),
        ("ab", {}, "two numbers"),
        ((0.1, 0.0), {"symmetry": "4mm"}, "tilt"),
    ],
)
def test_bad_tilt_one_line_error(tilt, kw, word):
    with pytest.raises(SettingsError, match=word) as exc:
        plan_lacbed(SI, 50.0, size=8, tilt=tilt, **kw)
    assert "\n" not in str(exc.value)


def _run(argv) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *argv])
    return int(exc.value.code or 0)


def test_cli_tilt_writes_settings(tmp_path):
    out = tmp_path / "x.h5"
    base = [str(SI), "-o", str(out), "-t", "50", "--size", "8", "--max-g", "1.0", "-q"]
    assert _run([*base, "--convergence-target", "0", "--tilt", "-0.1", "0.05"]) == 0
    p = read_pattern_h5(out)
    assert p.settings["tilt"] == [-0.1, 0.05] and p.settings["symmetry"] == "1"
    np.testing.assert_allclose(p.kx, pixel_axis(8, W, -0.1), rtol=0, atol=1e-15)
    assert _run([*base, "--tilt", "5", "0", "--tilt-unit", "mrad"]) == 0
    p = read_pattern_h5(out)
    assert p.settings["tilt"][0] == pytest.approx(5e-3 / p.wavelength, rel=1e-12)
    assert p.tilt_x_mrad.mean() == pytest.approx(5.0, rel=1e-12)


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--tilt", "nan", "0"], "--tilt"),
        (["--tilt", "30", "0"], "K/2"),
        (["--tilt", "1", "0", "--tilt-unit", "deg"], "--tilt-unit"),
    ],
)
def test_cli_bad_tilt_one_line_nothing_written(tmp_path, capsys, extra, word):
    out = tmp_path / "x.h5"
    assert _run([str(SI), "-o", str(out), "-t", "50", "--size", "8", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
