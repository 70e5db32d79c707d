"""Structure factors V_g, U_g, U′_g against references and exact symmetry properties."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from lacbed.constants import PREFACTOR_V, U_PER_V, gamma, wavelength
from lacbed.crystal import Crystal
from lacbed.errors import LacbedError, SettingsError
from lacbed.scattering import reflections_within, scattering_factor, structure_factors

# reference values ship with the tests (tests/data/PROVENANCE.md); a missing file fails
REFERENCE = Path(__file__).resolve().parent / "data"

FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def fcc_basis(*sites: tuple[str, tuple[float, float, float]]):
    symbols, positions = [], []
    for sym, shift in sites:
        for p in FCC:
            symbols.append(sym)
            positions.append(p + np.asarray(shift))
    return tuple(symbols), np.array(positions)


def make_crystal(material: str, a: float, b: float = 0.0) -> Crystal:
    """Standard settings (origin on the first atom) of the reference materials."""
    if material == "Si":
        sym, pos = fcc_basis(("Si", (0, 0, 0)), ("Si", (0.25, 0.25, 0.25)))
        sg = (227, "Fd-3m")
    elif material == "GaAs":
        sym, pos = fcc_basis(("Ga", (0, 0, 0)), ("As", (0.25, 0.25, 0.25)))
        sg = (216, "F-43m")
    elif material == "MgO":
        sym, pos = fcc_basis(("Mg", (0, 0, 0)), ("O", (0.5, 0.5, 0.5)))
        sg = (225, "Fm-3m")
    elif material == "SrTiO3":
        sym = ("Sr", "Ti", "O", "O", "O")
        pos = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
        sg = (221, "Pm-3m")
    elif material == "Cu":
        sym, pos = fcc_basis(("Cu", (0, 0, 0)))
        sg = (225, "Fm-3m")
    elif material == "Al":
        sym, pos = fcc_basis(("Al", (0, 0, 0)))
        sg = (225, "Fm-3m")
    else:
        raise KeyError(material)
    return Crystal(
        a=a,
        symbols=sym,
        positions=pos,
        occupancies=1.0,
        b_iso=b,
        space_group_number=sg[0],
        space_group=sg[1],
        name=material,
    )


def _reference_rows():
    data = json.loads((REFERENCE / "structure_factors.json").read_text())
    return data["lattice_A"], data["rows"]


TABLE_KEYS = {"kirkland": "kirkland", "lobato": "lobato", "peng": "peng", "doyle-turner": "DT"}


@pytest.mark.parametrize("parametrization", list(TABLE_KEYS))
def test_reference_magnitudes(parametrization):
    lattice, rows = _reference_rows()
    worst = 0.0
    for row in rows:
        crystal = make_crystal(row["material"], lattice[row["material"]])
        hkl = [int(c) for c in row["hkl"]]
        sf = structure_factors(
            crystal, hkl, voltage=row["kV"] * 1e3, scattering=parametrization, absorption="none"
        )
        ref = row[TABLE_KEYS[parametrization]]
        assert sf.g_norm[0] == pytest.approx(row["g_invA"], abs=1e-4)  # 4 decimals in the file
        if ref["abs_Vg_V"] == 0.0:
            assert sf.V[0] == 0.0 and sf.U[0] == 0.0 and np.isinf(sf.xi_nm[0])
            continue
        # Tolerances 3-5x the worst differences measured over all 36 rows of each table
        # (benchmarks/results/tolerances.json, "structure_factor_table"): |dV| 5.6e-5 V (the file
        # rounds V to 1e-4 V), |dU| 6.6e-7 1/A^2 (rounded to 1e-6), xi 2.0e-4 relative.
        assert abs(abs(sf.V[0]) - ref["abs_Vg_V"]) <= 2e-4, row
        assert abs(abs(sf.U[0]) - ref["abs_Ug_invA2"]) <= 2.5e-6, row
        assert sf.xi_nm[0] == pytest.approx(ref["xi_nm"], rel=8e-4), row
        worst = max(worst, abs(abs(sf.V[0]) - ref["abs_Vg_V"]))
    assert worst > 0  # the rows were compared (a file of zeros would compare nothing)


def _felix():
    path = REFERENCE / "felix" / "Si_001" / "StructureFactors.txt"
    data = np.loadtxt(path)
    return data[:, :3].astype(int), data[:, 3:5], data[:, 5], data[:, 6]


def test_bird_king_matches_felix():
    """Felix's columns 6-7 are Re and Im of its complex potential U_g + iU′_g."""
    hkl, g2pi, re_u, im_u = _felix()
    si = make_crystal("Si", 5.431, b=0.4632)
    sf = structure_factors(si, hkl, voltage=200e3, scattering="kirkland", absorption="bird-king")
    # Felix's g columns are the in-plane (microscope-frame) components in 2π/Å
    g_plane = np.hypot(sf.g[:, 0], sf.g[:, 1])
    assert np.allclose(np.hypot(*g2pi.T) / (2 * np.pi), g_plane, atol=1e-6)
    total = sf.U + 1j * sf.U_abs
    felix = re_u + 1j * im_u
    origin = np.all(hkl == 0, axis=1)
    # Non-negligible beams: |Im| > 1e-6 Å⁻² (Felix's forbidden beams are ~1e-17, the weakest
    # allowed ones ~1e-5).
    strong = np.abs(im_u) > 1e-6
    assert strong.sum() > 150
    rel_im = np.abs(total.imag[strong] - im_u[strong]) / np.abs(im_u[strong])
    # Tolerances 3-5x the measured worst (benchmarks/results/tolerances.json,
    # "bird_king_vs_felix"): Im 9.0e-5, complex 5.0e-5, U'_0 8.7e-5 relative; Felix prints
    # 6 significant figures and integrates the Bird-King integral its own way.
    assert rel_im.max() < 3e-4
    # Felix drops Re U_0 (writes 0); every other complex value agrees, as does U′_0.
    rel = np.abs(total[strong & ~origin] - felix[strong & ~origin]) / np.abs(
        felix[strong & ~origin]
    )
    assert rel.max() < 2e-4
    assert sf.U_abs[origin][0].real == pytest.approx(im_u[origin][0], rel=3e-4)
    # The kinematically forbidden beams of the pool are zero here (Felix: round-off ~1e-17).
    assert np.all(total[~strong] == 0.0)


def test_friedel_pairs_are_conjugate():
    gaas = make_crystal("GaAs", 5.6533, b=0.6)
    rng = np.random.default_rng(1)
    hkl = rng.integers(-6, 7, size=(40, 3))
    for absorption in ("none", "proportional", "bird-king"):
        p = structure_factors(gaas, hkl, absorption=absorption)
        m = structure_factors(gaas, -hkl, absorption=absorption)
        # exact up to round-off of e^{-2πi h·x} (1e-15 relative)
        np.testing.assert_allclose(m.U, np.conj(p.U), rtol=0, atol=1e-15)
        np.testing.assert_allclose(m.U_abs, np.conj(p.U_abs), rtol=0, atol=1e-15)


def test_systematic_absence_is_exactly_zero():
    si = make_crystal("Si", 5.431)
    sf = structure_factors(si, [[2, 0, 0], [2, 2, 2], [1, 0, 0], [4, 2, 0]], absorption="bird-king")
    assert np.all(sf.V == 0) and np.all(sf.U_abs == 0) and np.all(np.isinf(sf.xi_nm))


def test_normalisation_and_units():
    """V_0 of a one-atom cell is h²/(2πm₀eΩ) f(0); U_g = γ·2m₀e/h²·V_g."""
    cu = make_crystal("Cu", 3.6149)
    sf = structure_factors(cu, [0, 0, 0], voltage=300e3, absorption="none")
    f0 = scattering_factor("Cu", 0.0)
    assert sf.V[0].real == pytest.approx(4 * PREFACTOR_V * f0 / 3.6149**3, rel=1e-14)
    assert sf.U[0].real == pytest.approx(gamma(300e3) * U_PER_V * sf.V[0].real, rel=1e-14)
    assert sf.xi_nm[0] == pytest.approx(0.1 / (wavelength(300e3) * abs(sf.U[0])), rel=1e-14)


def test_debye_waller_and_proportional_absorption():
    mgo = make_crystal("MgO", 4.2112, b=0.0)
    hkl = np.array([[2, 0, 0], [2, 2, 0], [4, 2, 2]])
    static = structure_factors(mgo, hkl, absorption="none")
    warm = structure_factors(mgo, hkl, absorption="proportional", kappa=0.1, b_iso=0.5)
    s2 = (static.g_norm / 2) ** 2
    np.testing.assert_allclose(warm.U, static.U * np.exp(-0.5 * s2), rtol=1e-13)
    np.testing.assert_allclose(warm.U_abs, 0.1 * warm.U, rtol=1e-15)
    # the crystal's B is used when b_iso is None
    np.testing.assert_allclose(
        structure_factors(mgo.with_b_iso(0.5), hkl, absorption="none").U, warm.U, rtol=1e-15
    )


def test_two_settings_same_magnitudes():
    """GaAs with the origin on As, and with an arbitrary origin, has the same |U_g|."""
    gaas = make_crystal("GaAs", 5.6533, b=0.5)
    other = gaas.shifted([0.25, 0.25, 0.25]).shifted([0.1, -0.3, 0.05])
    r = range(-3, 4)
    hkl = np.array([[h, k, m] for h in r for k in r for m in range(0, 4)])
    a = structure_factors(gaas, hkl)
    b = structure_factors(other, hkl)
    np.testing.assert_allclose(np.abs(b.U), np.abs(a.U), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(np.abs(b.U_abs), np.abs(a.U_abs), rtol=1e-12, atol=1e-16)


def test_empty_and_single_hkl():
    si = make_crystal("Si", 5.431, b=0.5)
    assert len(structure_factors(si, np.zeros((0, 3), dtype=int))) == 0
    one = structure_factors(si, [1, 1, 1])
    assert one.hkl.shape == (1, 3) and one.U.shape == (1,)


def test_reflections_within():
    hkl = reflections_within(5.431, 0.6)
    n2 = np.sum(hkl**2, axis=1)
    assert tuple(hkl[0]) == (0, 0, 0) and np.all(np.diff(n2) >= 0)
    assert np.all(n2 <= (0.6 * 5.431) ** 2) and len(hkl) == len(np.unique(hkl, axis=0))
    # shells N = h²+k²+l² ≤ (0.6a)² = 10.6: N = 0,1,2,3,4,5,6,8,9,10 (7 is not a sum of three
    # squares) with their multiplicities
    assert len(hkl) == 1 + 6 + 12 + 8 + 6 + 24 + 24 + 12 + 30 + 24


def test_bad_input():
    si = make_crystal("Si", 5.431)
    with pytest.raises(SettingsError, match="allowed"):
        structure_factors(si, [0, 0, 0], scattering="foo")
    with pytest.raises(SettingsError, match="allowed"):
        structure_factors(si, [0, 0, 0], absorption="foo")
    with pytest.raises(SettingsError, match="integers"):
        structure_factors(si, [0.5, 0, 0])
    with pytest.raises(SettingsError, match="B must be"):
        structure_factors(si, [0, 0, 0], b_iso=-1.0)
    with pytest.raises(LacbedError, match="not covered"):
        scattering_factor("Og", 0.1, "peng")


def _pool(a: float, g_max: float) -> np.ndarray:
    n = int(g_max * a) + 1
    r = np.arange(-n, n + 1)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    return hkl[np.linalg.norm(hkl, axis=1) / a <= g_max]


def test_bird_king_speed_for_a_beam_pool():
    """All U′_g of a 500-beam pool and of all its pairwise differences, warm cache."""
    crystal = make_crystal("SrTiO3", 3.905, b=0.5)
    pool = _pool(3.905, 2.0)
    pool = pool[np.argsort(np.linalg.norm(pool, axis=1))][:500]
    diff = np.unique((pool[:, None, :] - pool[None, :, :]).reshape(-1, 3), axis=0)
    structure_factors(crystal, pool)  # fills the per-(element, B) tables
    t0 = time.perf_counter()
    structure_factors(crystal, pool)
    structure_factors(crystal, diff)
    elapsed = time.perf_counter() - t0
    assert diff.shape[0] > 3000
    # issue: "well under 2 s on 2 cores"; measured ~0.1 s, so 2 s leaves room for a busy machine
    assert elapsed < 2.0
