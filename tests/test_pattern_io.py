"""Pattern writers/readers: shapes, dtypes, metadata round trip, no file on failure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lacbed.errors import LacbedError, SettingsError
from lacbed.simulate.io import read_pattern_h5, write_pattern
from lacbed.simulate.pattern import LacbedPattern


def make_pattern(n_t: int = 3, size: int = 16, *, bad: bool = False) -> LacbedPattern:
    """A synthetic pattern in Felix's convention: I depends on (kx, ky) so axes are testable."""
    w = 0.75
    k = (np.arange(size) - size / 2 + 0.5) * (w / (size / 2))  # docs/physics.md §6 pixel centres
    t = np.linspace(50.0, 150.0, n_t)
    ky, kx = np.meshgrid(k, k, indexing="ij")  # rows → y, cols → x
    inten = np.stack([0.5 + 0.3 * np.cos(3 * kx + ti / 100) * np.cos(5 * ky) for ti in t])
    if bad:
        inten[0, 0, 0] = np.nan
    return LacbedPattern(
        intensities=inten,
        thickness_nm=t,
        kx=k,
        ky=k,
        wavelength=0.0250793,
        beams=np.array([[0, 0, 0], [2, 2, 0], [-2, 2, 0]]),
        settings={"voltage_kv": 200.0, "crystal": {"name": "Si"}, "strong_beams": 3},
        timings={"eigensolve": 0.1},
        version="0.1.0",
    )


@pytest.mark.parametrize("n_t", [1, 3])
def test_npy_shape_dtype(tmp_path, n_t):
    p = make_pattern(n_t)
    out = write_pattern(p, tmp_path / "x.npy")
    arr = np.load(out)
    assert arr.dtype == np.float32
    assert arr.shape == ((16, 16) if n_t == 1 else (n_t, 16, 16))
    # float32 rounding: relative 6e-8, intensities ≤ 1
    np.testing.assert_allclose(arr.reshape(n_t, 16, 16), p.intensities, atol=1e-7)


def test_h5_round_trip(tmp_path):
    p = make_pattern(3)
    q = read_pattern_h5(write_pattern(p, tmp_path / "x.h5"))
    assert q.intensities.dtype == np.float32 and q.intensities.shape == (3, 16, 16)
    np.testing.assert_allclose(q.intensities, p.intensities, atol=1e-7)  # float32 storage
    np.testing.assert_array_equal(q.thickness_nm, p.thickness_nm)
    np.testing.assert_array_equal(q.kx, p.kx)
    np.testing.assert_array_equal(q.beams, p.beams)
    assert q.settings == p.settings and q.timings == p.timings and q.version == "0.1.0"
    np.testing.assert_allclose(q.tilt_x_mrad, p.tilt_x_mrad)
    import h5py

    with h5py.File(tmp_path / "x.h5") as f:
        np.testing.assert_allclose(f["tilt_y_mrad"][()], 1e3 * p.wavelength * p.ky)
        assert "col" in f.attrs["convention"]
        json.loads(f.attrs["settings"])


def test_png_written(tmp_path):
    out = write_pattern(make_pattern(3), tmp_path / "x.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_orientation():
    """Row 0 (−y) is at the bottom of the panel and column 0 (−x) at the left (origin lower)."""
    from lacbed.plotting.pattern import plot_pattern

    fig = plot_pattern(make_pattern(1), units="1/A")
    im = fig.axes[0].images[0]
    left, right, bottom, top = im.get_extent()
    assert im.origin == "lower" and left < 0 < right and bottom < 0 < top
    assert left == pytest.approx(-0.75) and top == pytest.approx(0.75)  # W = 0.75 1/Å


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".png"])
def test_non_finite_never_written(tmp_path, suffix):
    out = tmp_path / f"x{suffix}"
    with pytest.raises(LacbedError, match="non-finite"):
        write_pattern(make_pattern(2, bad=True), out)
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix(tmp_path):
    with pytest.raises(SettingsError, match=r"\.tif"):
        write_pattern(make_pattern(1), tmp_path / "x.tif")
    assert list(tmp_path.iterdir()) == []
