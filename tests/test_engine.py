"""simulate_lacbed: geometry, symmetry reduction, solver paths, settings and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lacbed.crystal import Crystal, read_cif
from lacbed.errors import SettingsError
from lacbed.metrics import z_score
from lacbed.simulate import LacbedPattern, simulate_lacbed
from lacbed.simulate.geometry import pixel_axis
from lacbed.simulate.symmetry import (
    fill_from_wedge,
    find_inversion_centre,
    lattice_centring,
    resolve_symmetry,
    wedge_pixels,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "lacbed" / "examples"


def _crystal(name: str) -> Crystal:
    return read_cif(EXAMPLES / f"{name}.cif")


# small, fast settings: 16x16 pixels, few beams (symmetry is exact at any beam count)
SMALL = dict(size=16, strong_beams=20, max_g=2.0, n_jobs=1)


def test_pixel_axis_is_felix_convention():
    ax = pixel_axis(128, 0.75)
    delta = 0.75 / 64
    assert np.isclose(ax[0], (-64 + 0.5) * delta)
    assert np.isclose(ax[64], 0.5 * delta)  # zone axis between columns 63 and 64
    assert np.allclose(ax, -ax[::-1])


@pytest.mark.parametrize(("symmetry", "count"), [("4mm", 8 * 9 // 2), ("2mm", 64), ("1", 256)])
def test_wedge_sizes_and_fill(symmetry, count):
    rows, cols = wedge_pixels(16, symmetry)
    assert len(rows) == count
    ax = pixel_axis(16, 1.0)
    kx, ky = ax[cols], ax[rows]
    # a function with the symmetry is reproduced exactly by the fill-in
    if symmetry == "4mm":
        f = lambda x, y: np.cos(3 * x) * np.cos(3 * y) + (x * y) ** 2 + x**4 + y**4  # noqa: E731
    else:
        f = lambda x, y: np.cos(3 * x) + 2 * y**2 + x**2 * y**2  # noqa: E731
    full = fill_from_wedge(f(kx, ky), rows, cols, 16, symmetry)
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    np.testing.assert_allclose(full, f(xx, yy), rtol=1e-15, atol=1e-15)  # x·y vs y·x rounding


def test_centring_and_inversion_centre():
    si = _crystal("Si")
    assert lattice_centring(si) == "F"
    c = find_inversion_centre(si)
    assert c is not None
    # the inversion centre of diamond lies midway between the two atoms of the basis
    assert np.allclose(np.mod(2 * c, 0.25), 0.0) or np.allclose(np.mod(2 * c, 0.25), 0.25)
    assert find_inversion_centre(_crystal("GaAs")) is None
    assert lattice_centring(_crystal("SrTiO3")) == "P"


@pytest.mark.usefixtures("double_precision")
@pytest.mark.parametrize("name", ["Si", "GaAs", "SrTiO3"])
def test_full_solve_is_4mm_and_equals_reduced(name):
    cr = _crystal(name)
    assert cr.bright_field_symmetry == "4mm"
    full = simulate_lacbed(cr, [50.0, 150.0], symmetry="1", **SMALL).intensities
    red = simulate_lacbed(cr, [50.0, 150.0], **SMALL).intensities
    # 4mm: mirrors x, y and the diagonal; 1e-10 is far above round-off (~1e-14), far below any
    # physical asymmetry (~1e-2); for GaAs (-43m) two of the operations hold by reciprocity only
    np.testing.assert_allclose(full, full[:, :, ::-1], atol=1e-10)
    np.testing.assert_allclose(full, full[:, ::-1, :], atol=1e-10)
    np.testing.assert_allclose(full, np.swapaxes(full, 1, 2), atol=1e-10)
    np.testing.assert_allclose(red, full, atol=1e-10)


def test_gaas_exact_solver_is_4mm_by_reciprocity():
    cr = _crystal("GaAs")
    full = simulate_lacbed(cr, [120.0], symmetry="1", solver="exact", **SMALL).intensities
    np.testing.assert_allclose(full, full[:, ::-1, :], atol=1e-10)  # reciprocity, round-off
    np.testing.assert_allclose(full, np.swapaxes(full, 1, 2), atol=1e-10)


@pytest.mark.usefixtures("double_precision")
def test_origin_shift_does_not_change_intensities(monkeypatch):
    # GaAs has no inversion centre: the complex path runs with the phases of each origin;
    # float64 Bethe sums, so that 1e-10 tests the phases (float32 sums differ by ~1e-7)
    import lacbed.bloch.matrix as bm

    monkeypatch.setattr(bm, "BETHE_PRECISION", "double")
    cr = _crystal("GaAs")
    a = simulate_lacbed(cr, [80.0], **SMALL).intensities
    b = simulate_lacbed(cr.shifted([0.1, 0.37, 0.23]), [80.0], **SMALL).intensities
    np.testing.assert_allclose(a, b, atol=1e-10)  # U_g phases change; |ψ|² must not


@pytest.mark.parametrize(
    ("name", "size", "z_max_percent"),
    [
        # bounds ~4x the Z measured at 50, 100, 150 nm (benchmarks/results/tolerances.json,
        # "fast_vs_exact"): Si 4.1e-5, 1.9e-4, 2.5e-4 %; GaAs 0.0049, 0.023, 0.064 %. GaAs has
        # no inversion centre: complex U_g, where the first-order absorption term matters more.
        ("Si", 32, [2e-4, 8e-4, 1e-3]),
        ("GaAs", 64, [0.02, 0.09, 0.25]),
    ],
)
def test_fast_path_agrees_with_exact_path(name, size, z_max_percent):
    cr = _crystal(name)
    kw = dict(size=size, n_jobs=1, half_width=0.75)
    t = [50.0, 100.0, 150.0]
    fast = simulate_lacbed(cr, t, **kw)
    exact = simulate_lacbed(cr, t, solver="exact", **kw)
    assert fast.settings["solver"] == "fast" and exact.settings["solver"] == "exact"
    z = 100 * z_score(fast.intensities, exact.intensities)
    assert np.all(z <= z_max_percent), z
    # the two paths are different computations: the fast path's first-order absorption error
    # (measured max |dI| 2.2e-3 for Si, 4.0e-2 for GaAs) is far above round-off (~1e-12)
    assert np.abs(fast.intensities - exact.intensities).max() > 5e-4


@pytest.mark.usefixtures("double_precision")
@pytest.mark.parametrize("name", ["FeS2", "FeSi"])
def test_full_solve_of_2mm_crystal_is_2mm_not_4mm(name):
    """Pa-3 (m-3) and P2_13 (23): the [001] bright field has the two mirrors but no diagonal one."""
    cr = _crystal(name)
    assert cr.bright_field_symmetry == "2mm"
    full = simulate_lacbed(cr, [50.0, 150.0], symmetry="1", **SMALL).intensities
    # mirrors x and y: measured ≤ 1.1e-14 (round-off), except FeSi's x mirror, 1.6e-10: for 23
    # it holds by reciprocity, which the float32 weak-beam products of order 4 keep only to their
    # round-off (benchmarks/results/tolerances.json, "two_mm_full_solve"); bound 8e-10
    np.testing.assert_allclose(full, full[:, :, ::-1], rtol=0, atol=8e-10)
    np.testing.assert_allclose(full, full[:, ::-1, :], rtol=0, atol=8e-10)
    # no diagonal mirror: Z between the pattern and its transpose measured 47-99 %
    # (benchmarks/results/tolerances.json, "two_mm_full_solve"); 10 % is ~5x below the smallest
    z_transpose = 100 * z_score(full, np.swapaxes(full, 1, 2))
    assert np.all(z_transpose > 10.0), z_transpose
    # the reduced (2mm wedge) solve reproduces the full one
    red = simulate_lacbed(cr, [50.0, 150.0], **SMALL)
    assert red.settings["symmetry"] == "2mm"
    np.testing.assert_allclose(red.intensities, full, atol=1e-10)


def test_pattern_contents():
    cr = _crystal("Si")
    p = simulate_lacbed(cr, [50.0, 100.0], size=16, n_jobs=1)
    assert isinstance(p, LacbedPattern)
    assert p.intensities.shape == (2, 16, 16)
    assert np.all(np.isfinite(p.intensities))
    assert np.all(p.intensities >= 0) and np.all(p.intensities <= 1.0)  # U'0 kept: absorbing
    assert set(p.timings) >= {
        "beam_selection",
        "structure_factors",
        "matrix_build",
        "eigensolve",
        "assembly",
        "total",
    }
    for key in ("n_unique_pixels", "n_pool", "n_strong_max", "n_strong_mean", "matrix_size_max"):
        assert key in p.settings
    assert p.settings["n_unique_pixels"] == 36
    assert np.isclose(p.settings["half_width"], 4 / cr.a)  # default W = |g_400|
    assert p.beams.shape[1] == 3 and (p.beams == 0).all(axis=1).any()
    assert np.isclose(p.wavelength, 0.0250793, rtol=1e-5)  # docs/physics.md §1 at 200 kV


@pytest.mark.usefixtures("double_precision")
def test_torch_backend_matches_numpy(monkeypatch):
    torch = pytest.importorskip("torch")
    calls = []
    eigh = torch.linalg.eigh

    def spy(x, *args, **kwargs):  # proves the torch path ran (not numpy twice)
        calls.append(tuple(x.shape))
        return eigh(x, *args, **kwargs)

    cr = _crystal("GaAs")
    a = simulate_lacbed(cr, [100.0], **SMALL).intensities
    monkeypatch.setattr(torch.linalg, "eigh", spy)
    b = simulate_lacbed(cr, [100.0], backend="torch", **SMALL).intensities
    assert calls, "backend='torch' did not call torch.linalg.eigh"
    np.testing.assert_allclose(a, b, atol=1e-10)  # same LAPACK-level algorithm, round-off


def test_progress_callback_reaches_total():
    calls = []
    simulate_lacbed(
        _crystal("Cu"), 50.0, size=16, n_jobs=1, progress=lambda d, t: calls.append((d, t))
    )
    assert calls and calls[-1][0] == calls[-1][1] == 36


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(thickness_nm=0.0),
        dict(thickness_nm=[50.0, -1.0]),
        dict(thickness_nm=float("nan")),
        dict(voltage_kv=0.0),
        dict(voltage_kv=-200.0),
        dict(size=6),
        dict(size=17),
        dict(half_width=0.0),
        dict(half_width=-0.5),
        dict(strong_beams=100000),
        dict(solver="magic"),
        dict(backend="jax"),
        dict(max_g=0.0),
    ],
)
def test_bad_input_raises_settings_error(kwargs):
    args = dict(thickness_nm=50.0, size=16, n_jobs=1)
    args.update(kwargs)
    t = args.pop("thickness_nm")
    with pytest.raises(SettingsError):
        simulate_lacbed(_crystal("Cu"), t, **args)


@pytest.mark.parametrize("name", ["FeS2", "FeSi"])  # m-3 and 23: 2mm bright fields
def test_symmetry_higher_than_the_crystals_is_rejected(name):
    with pytest.raises(SettingsError, match="higher than the crystal's") as exc:
        simulate_lacbed(_crystal(name), 50.0, symmetry="4mm", **SMALL)
    assert len(str(exc.value).splitlines()) == 1
    assert resolve_symmetry("2mm", "2mm") == resolve_symmetry("auto", "2mm") == "2mm"
    with pytest.raises(SettingsError, match="must be"):
        resolve_symmetry("3m", "4mm")


def test_lower_symmetry_than_the_crystals_is_accepted():
    cr = _crystal("Si")  # 4mm; reducing by 2mm only solves more pixels
    kw = dict(size=16, n_jobs=1)
    a = simulate_lacbed(cr, [80.0], **kw)
    b = simulate_lacbed(cr, [80.0], symmetry="2mm", **kw)
    assert b.settings["symmetry"] == "2mm" and b.settings["n_unique_pixels"] == 64
    # the tiles (and so the beam sets) differ between the two reductions: measured Z 9.6e-5 %
    # (max |dI| 1.8e-3) with the default budget; 4e-4 % is ~4x that
    assert 100 * z_score(a.intensities, b.intensities)[0] < 4e-4
