"""Projected potential: exact mean, real-space oracle, plane-group symmetry, origin shifts."""

from __future__ import annotations

import numpy as np
import pytest

from lacbed.constants import PREFACTOR_V
from lacbed.crystal import Crystal
from lacbed.errors import SettingsError
from lacbed.scattering import projected_potential, structure_factors
from lacbed.scattering.parametrizations import get_table
from test_structure_factors import make_crystal


def test_mean_is_c_times_v0():
    for material, a in (("Si", 5.431), ("SrTiO3", 3.905), ("GaAs", 5.6533)):
        crystal = make_crystal(material, a, b=0.5)
        img = projected_potential(crystal, 64)
        v0 = structure_factors(crystal, [0, 0, 0], absorption="none").V[0].real
        assert img.shape == (64, 64) and img.dtype == np.float64
        # exact up to FFT round-off
        assert img.mean() == pytest.approx(a * v0, rel=1e-12)


def _real_space_peng(crystal: Crystal, size: int) -> np.ndarray:
    """Σ over atoms and lattice translations of the projected Gaussians of Peng's f_e.

    A term a·e^{−b s²} with Debye–Waller e^{−B s²} projects to
    (h²/2πm₀e)·a·4π/(b+B)·exp(−4π² r²/(b+B)) [V·Å] (2D Fourier transform of a Gaussian).
    """
    a = crystal.a
    coords = np.arange(size) * a / size
    x, y = np.meshgrid(coords, coords, indexing="xy")  # (row=y, col=x)
    out = np.zeros_like(x)
    table = get_table("peng").coefficients
    for sym, pos, occ, b in zip(
        crystal.symbols, crystal.positions, crystal.occupancies, crystal.b_iso, strict=True
    ):
        coef = table[sym]
        for i in range(-3, 4):
            for j in range(-3, 4):
                r2 = (x - (pos[0] + i) * a) ** 2 + (y - (pos[1] + j) * a) ** 2
                for ai, bi in zip(coef[:5], coef[5:], strict=True):
                    w = bi + b
                    out += occ * PREFACTOR_V * ai * 4 * np.pi / w * np.exp(-4 * np.pi**2 * r2 / w)
    return out


def test_matches_real_space_sum_for_gaussian_factors():
    """Fourier synthesis = direct real-space sum of projected atoms (Peng's Gaussian form).

    A low-symmetry set of sites checks the orientation (row ↔ y, column ↔ x) as well.
    """
    crystal = Crystal(
        a=4.2,
        symbols=("Sr", "O", "Ti"),
        positions=[[0.1, 0.3, 0.2], [0.62, 0.15, 0.7], [0.4, 0.8, 0.0]],
        occupancies=[1.0, 1.0, 0.7],
        b_iso=[0.6, 0.9, 0.4],
        space_group_number=195,
        space_group="P23",
    )
    img = projected_potential(crystal, 96, scattering="peng")
    ref = _real_space_peng(crystal, 96)
    # The omitted Fourier terms (|g| > 48/a ≈ 11 1/Å) are < e^{-(b_min+B)g²/4} ≈ 1e-10 of the
    # largest; images beyond ±3 cells (r > 2.5a ≈ 10.5 Å) of the widest Gaussian (Sr,
    # b + B ≈ 149 Å²) are < e^{-4π²·110/149} ≈ 2e-13. So 1e-9 of the maximum is round-off room.
    np.testing.assert_allclose(img, ref, rtol=0, atol=1e-9 * ref.max())


def test_p4mm_symmetry_of_si_001():
    si = make_crystal("Si", 5.431, b=0.4632)
    img = projected_potential(si, 128)
    scale = np.abs(img).max()
    mirror_x = np.roll(img[:, ::-1], 1, axis=1)  # x → −x about the origin column
    mirror_y = np.roll(img[::-1, :], 1, axis=0)
    # 1e-10 relative: the tolerance; FFT round-off is ~1e-14
    assert np.max(np.abs(mirror_x - img)) < 1e-10 * scale
    assert np.max(np.abs(mirror_y - img)) < 1e-10 * scale
    assert np.max(np.abs(img.T - img)) < 1e-10 * scale  # diagonal mirror
    rot = np.roll(np.rot90(img), 1, axis=0)  # 4-fold axis through the origin
    assert np.max(np.abs(rot - img)) < 1e-10 * scale
    # the projected cell of diamond has period a/2 along x and y
    assert np.max(np.abs(np.roll(img, 64, axis=1) - img)) < 1e-10 * scale


def test_origin_shift_translates_the_image():
    crystal = make_crystal("SrTiO3", 3.905, b=0.5)
    size = 64
    img = projected_potential(crystal, size)
    m, n = 5, 19  # shift by m pixels along x, n along y, and any amount along z
    moved = projected_potential(crystal.shifted([m / size, n / size, 0.37]), size)
    np.testing.assert_allclose(moved, np.roll(img, (-n, -m), axis=(0, 1)), rtol=0, atol=1e-10)


def test_image_is_real_for_noncentrosymmetric_crystal():
    gaas = make_crystal("GaAs", 5.6533, b=0.6)
    img = projected_potential(gaas, 32)
    assert np.all(np.isfinite(img))
    # Ga and As columns differ: the projection is not that of Si-like equal atoms
    assert img[0, 0] != pytest.approx(img[8, 8], rel=1e-3)


def test_bad_size():
    si = make_crystal("Si", 5.431, b=0.5)
    for size in (4, 7, 0, -3, 12.5):
        with pytest.raises(SettingsError, match="size"):
            projected_potential(si, size)
