"""Crystals of any system (issue 12, part 1; docs/crystal_systems.md).

Oracles: the general path run on a cubic crystal (declared P1, or tetragonal with c = a) equals
the cubic path; V_g of hcp Mg from the hcp structure factor written out by hand; the bright field
of Mg along [0001] has the 6mm of its diffraction group 6mm1_R (Buxton et al. 1976) and no more;
flux is conserved without absorption in a triclinic cell with a tilted surface normal.
"""

from pathlib import Path

import numpy as np
import pytest

from lacbed.bloch.matrix import normal_components
from lacbed.bloch.pool import beam_pool
from lacbed.bloch.solver import solve_fast
from lacbed.constants import PREFACTOR_V
from lacbed.crystal import Crystal, read_cif, write_cif
from lacbed.crystal.orientation import default_x_direction, orientation
from lacbed.crystal.serialise import crystal_to_record
from lacbed.errors import CrystalError, NonCubicError, SettingsError
from lacbed.scattering import structure_factors
from lacbed.scattering.parametrizations import scattering_factor
from lacbed.scattering.potential import projected_potential
from lacbed.simulate.engine import build_matrices, simulate_lacbed
from lacbed.simulate.geometry import incident_wavevectors
from lacbed.simulate.plan import plan_lacbed

CIFS = Path(__file__).parent / "data" / "cif"
SI = read_cif(Path(__file__).parents[1] / "src" / "lacbed" / "examples" / "Si.cif")
CU = read_cif(Path(__file__).parents[1] / "src" / "lacbed" / "examples" / "Cu.cif")

# hcp Mg, P6_3/mmc, Mg on 2c (1/3, 2/3, 1/4): a = 3.20927, c = 5.21033 Å (25 °C, R. W. G.
# Wyckoff, Crystal Structures vol. 1, 2nd ed., Wiley 1963, p. 11); B = 0.5 Å² (lacbed's default)
MG = Crystal(
    a=3.20927,
    c=5.21033,
    gamma=120.0,
    symbols=("Mg", "Mg"),
    positions=[[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]],
    occupancies=1.0,
    b_iso=0.5,
    space_group_number=194,
    space_group="P6_3/mmc",
    name="Mg",
)


def _as(crystal, number, symbol, **cell):
    """The same atoms declared in another space group (and cell): the general path."""
    return Crystal(
        a=crystal.a,
        symbols=crystal.symbols,
        positions=crystal.positions,
        occupancies=crystal.occupancies,
        b_iso=crystal.b_iso,
        space_group_number=number,
        space_group=symbol,
        name=crystal.name,
        **cell,
    )


def _intensity(plan, kt):
    """I₀₀₀ at arbitrary tangential wave vectors kt (n, 2) [1/Å], every pool beam strong."""
    k = incident_wavevectors(np.asarray(kt, float), plan.wavenumber)
    strong = np.arange(len(plan.pool))
    k_n, _ = normal_components(k, plan.g[strong], plan.normal)
    a = build_matrices(plan, k, strong, np.zeros(0, dtype=np.int64))
    t = 10.0 * np.asarray(plan.options["thickness_nm"])
    return np.abs(solve_fast(a, k_n, t)) ** 2  # (n, t)


# ----------------------------------------------------------------------------------- crystals
def test_non_cubic_cif_is_refused_by_default_and_read_with_any_system():
    with pytest.raises(NonCubicError, match="hexagonal"):
        read_cif(CIFS / "bad_hexagonal_mg.cif")  # the dataset's and the ML code's reader
    mg = read_cif(CIFS / "bad_hexagonal_mg.cif", any_system=True)
    assert not mg.is_cubic and mg.space_group_number == 194 and mg.point_group == "6/mmm"
    np.testing.assert_allclose(mg.lattice_parameters, (3.209, 3.209, 5.211, 90, 90, 120))
    assert mg.n_sites == 2 and mg.info["cell"] == "input" and mg.centrosymmetric
    tio2 = read_cif(CIFS / "bad_tetragonal_tio2.cif", any_system=True)
    assert tio2.space_group_number == 136 and tio2.n_sites == 6
    assert tio2.composition == {"Ti": 2.0, "O": 4.0}
    np.testing.assert_allclose(tio2.volume, 4.594**2 * 2.959, rtol=1e-12)


def test_cubic_cif_with_any_system_is_the_cubic_crystal():
    path = Path(__file__).parents[1] / "src" / "lacbed" / "examples" / "GaAs.cif"
    a, b = read_cif(path), read_cif(path, any_system=True)
    assert b.is_cubic and b.b is None and b.lattice_parameters == (a.a,) * 3 + (90.0,) * 3
    assert a.symbols == b.symbols and np.array_equal(a.positions, b.positions)
    assert np.array_equal(SI.reciprocal_basis, np.eye(3) / SI.a)


def test_cell_errors_are_one_line():
    with pytest.raises(CrystalError, match="cubic but the cell"):
        _as(SI, 227, "Fd-3m", c=6.0)
    with pytest.raises(CrystalError, match="angles"):
        _as(SI, 1, "P1", gamma=180.0)
    with pytest.raises(CrystalError, match="degenerate"):
        _as(SI, 1, "P1", alpha=120.0, beta=120.0, gamma=120.0)
    with pytest.raises(CrystalError, match="outside 1-230"):
        _as(SI, 231, "?")


def test_non_cubic_crystal_is_refused_by_records_and_the_bright_field_table():
    with pytest.raises(NonCubicError, match="cubic"):
        crystal_to_record(MG)  # the dataset's records stay version 1, cubic
    with pytest.raises(NonCubicError, match="cubic"):
        MG.bright_field_symmetry  # noqa: B018 - the ML code's symmetry lookup


def test_write_cif_round_trip_of_a_hexagonal_crystal(tmp_path):
    back = read_cif(write_cif(MG, tmp_path / "mg.cif"), any_system=True)
    np.testing.assert_allclose(back.lattice_parameters, MG.lattice_parameters, rtol=1e-12)
    assert back.space_group_number == 194 and back.n_sites == 2
    np.testing.assert_allclose(np.sort(back.positions, 0), np.sort(MG.positions, 0), atol=1e-9)


def test_scaled_keeps_the_cell_shape():
    big = MG.scaled(2 * MG.a)
    np.testing.assert_allclose(big.lattice_parameters, (2 * MG.a, 2 * MG.a, 2 * MG.c, 90, 90, 120))
    assert SI.scaled(6.0).a == 6.0 and SI.scaled(6.0).b is None


# ------------------------------------------------------------------------ structure factors
def test_structure_factors_of_a_cubic_crystal_through_the_general_path():
    hkl = np.array([[1, 1, 1], [2, 0, 0], [2, 2, 0], [3, 1, 1], [4, 2, 2], [5, 3, 1], [0, 0, 0]])
    cub = structure_factors(SI, hkl)
    gen = structure_factors(_as(SI, 1, "P1"), hkl)  # g = hkl @ (I/a) as a general metric
    np.testing.assert_allclose(gen.g, cub.g, rtol=1e-15, atol=0)
    # measured max |ΔU|/max|U| = 1.6e-16 (round-off of s = |g|/2 and of g); 1e-14
    scale = np.abs(cub.U).max()
    np.testing.assert_allclose(gen.U, cub.U, rtol=0, atol=1e-14 * scale)
    np.testing.assert_allclose(gen.U_abs, cub.U_abs, rtol=0, atol=1e-14 * scale)


def test_structure_factors_of_hcp_mg_by_hand():
    """F = f e^{−Bs²} [e^{−2πi(h/3+2k/3+l/4)} + e^{−2πi(2h/3+k/3+3l/4)}] (two atoms on 2c)."""
    hkl = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 2], [1, 0, 1], [1, 1, 0], [1, -1, 2]])
    sf = structure_factors(MG, hkl, absorption="none")
    a, c = MG.a, MG.c
    # |g|² of a hexagonal cell: 4(h² + hk + k²)/(3a²) + l²/c² (International Tables B, 1.1.2)
    h, k, l_ = hkl.T
    g2 = 4 * (h * h + h * k + k * k) / (3 * a * a) + l_ * l_ / (c * c)
    np.testing.assert_allclose(sf.g_norm, np.sqrt(g2), rtol=1e-14)
    s = np.sqrt(g2) / 2
    phase = np.exp(-2j * np.pi * (h / 3 + 2 * k / 3 + l_ / 4)) + np.exp(
        -2j * np.pi * (2 * h / 3 + k / 3 + 3 * l_ / 4)
    )
    omega = np.sqrt(3) / 2 * a * a * c
    v = PREFACTOR_V / omega * scattering_factor("Mg", s, "kirkland") * np.exp(-0.5 * s**2) * phase
    np.testing.assert_allclose(sf.V, v, rtol=1e-12, atol=1e-12 * np.abs(v).max())
    assert sf.V[1] == 0  # 001: forbidden by the 6_3 screw axis (exactly 0 after cleaning)


# ------------------------------------------------------------------------- pool, orientation
def test_general_pool_of_a_cubic_metric_is_the_cubic_pool():
    K = 39.87
    for centring in ("P", "F"):
        a = beam_pool(SI.a, 2.0, K, centring=centring)
        b = beam_pool(SI.a, 2.0, K, centring=centring, reciprocal=np.eye(3) / SI.a)
        assert np.array_equal(a, b)


def test_hexagonal_pool_is_closed_under_the_six_fold_axis():
    pool = beam_pool(MG.a, 2.5, 39.87, reciprocal=MG.reciprocal_basis)
    g = pool @ MG.reciprocal_basis
    c6 = np.array([[0.5, -np.sqrt(3) / 2, 0], [np.sqrt(3) / 2, 0.5, 0], [0, 0, 1]])
    key = {tuple(np.round(x, 6)) for x in g}
    assert {tuple(np.round(x, 6)) for x in g @ c6.T} == key
    assert np.linalg.norm(g, axis=1).max() <= 2.5 * (1 + 1e-12)


def test_orientation_uses_direct_and_reciprocal_bases():
    # [0001] of a hexagonal crystal: x = a* (the shortest g ⊥ c), y ∥ b
    assert default_x_direction((0, 0, 1), MG.reciprocal_basis) == (1, 0, 0)
    o = orientation((0, 0, 1), lattice=MG.lattice)
    np.testing.assert_allclose(o.rotation[2], [0, 0, 1], atol=1e-15)
    a_star = MG.reciprocal_basis[0] / np.linalg.norm(MG.reciprocal_basis[0])
    np.testing.assert_allclose(o.rotation[0], a_star, atol=1e-15)
    assert not o.standard  # a non-cubic crystal never takes the cubic [001] shortcuts
    # [2-10] ⊥ (001) in a hexagonal cell: an x-direction (0 0 1) is allowed there, not ∥ to it
    o = orientation((2, -1, 0), (0, 0, 1), lattice=MG.lattice)
    np.testing.assert_allclose(o.rotation[0], [0, 0, 1], atol=1e-12)
    z = np.array([2, -1, 0]) @ MG.lattice  # a direct-lattice vector: its Cartesian direction
    np.testing.assert_allclose(o.rotation @ z / np.linalg.norm(z), [0, 0, 1], atol=1e-12)
    with pytest.raises(SettingsError, match="parallel"):
        orientation((0, 0, 1), (0, 0, 2), lattice=MG.lattice)


def test_default_half_width():
    assert plan_lacbed(SI, 50, size=8, max_g=1.0).options["half_width"] == 4.0 / SI.a
    p = plan_lacbed(MG, 50, size=8, max_g=1.0, convergence_sample=0)
    # 4 × the shortest reciprocal axis: |c*| = 1/c for Mg (|a*| = 2/(√3 a) is longer)
    assert p.options["half_width"] == pytest.approx(4.0 / MG.c, rel=1e-14)


# ------------------------------------------------------------------------------------ engine
@pytest.mark.usefixtures("double_precision")
def test_cubic_001_through_the_general_path_equals_the_cubic_engine():
    """Si declared P1 (general metric, complex algebra, no origin shift) vs the cubic path (real
    algebra on the inversion centre): every pool beam strong, so the beam sets are identical."""
    kw = dict(size=16, max_g=1.6, convergence_sample=0, symmetry="1", absorption="bird-king")
    n = len(plan_lacbed(SI, 50, **kw).pool)
    cub = simulate_lacbed(SI, [50, 120], strong_beams=n, **kw)
    gen = simulate_lacbed(_as(SI, 1, "P1"), [50, 120], strong_beams=n, **kw)
    assert not gen.settings["real_arithmetic"] and cub.settings["real_arithmetic"]
    assert gen.settings["n_pool"] == n and gen.settings["centring"] == "F"
    # measured max |ΔI| = 1.8e-14 (61 beams); the bound 1e-10
    np.testing.assert_allclose(gen.intensities, cub.intensities, rtol=0, atol=1e-10)


@pytest.mark.usefixtures("double_precision")
def test_tetragonal_with_c_equal_a_reproduces_the_cubic_result():
    """Cu (Fm-3m) declared I4/mmm in its F-centred cubic cell with c = a: 4/mmm, inversion
    centre, F centring detected; same pattern as the cubic engine."""
    kw = dict(size=16, max_g=2.0, convergence_sample=0, symmetry="1")
    n = len(plan_lacbed(CU, 60, **kw).pool)
    cub = simulate_lacbed(CU, [60], strong_beams=n, **kw)
    tet = simulate_lacbed(_as(CU, 139, "I4/mmm", c=CU.a), [60], strong_beams=n, **kw)
    assert tet.settings["real_arithmetic"] and tet.settings["crystal"]["cell"][2] == CU.a
    # measured max |ΔI| = 1.6e-14 (45 beams); the bound 1e-10
    np.testing.assert_allclose(tet.intensities, cub.intensities, rtol=0, atol=1e-10)


def test_tetragonal_with_c_equal_a_default_engine_agrees_within_convergence():
    """Default (adaptive) settings, both reduced to their 4mm wedge (the general path by the
    operations spglib finds on the atoms, the cubic one by its table): they agree to the
    convergence estimate."""
    cub = simulate_lacbed(CU, [60], size=16)
    tet = simulate_lacbed(_as(CU, 139, "I4/mmm"), [60], size=16)
    assert tet.settings["symmetry"] == "4mm" == cub.settings["symmetry"]
    z = 1 - np.corrcoef(tet.intensities.ravel(), cub.intensities.ravel())[0, 1]
    # measured Z = 0 (the same beam sets and numbers: the frame R = I of the general path
    # leaves g unchanged) against an estimate of 8.1e-5; the bound is the estimate's meaning
    est = max(cub.settings["convergence_estimate"], tet.settings["convergence_estimate"])
    assert z <= 5 * max(est, 1e-6), (z, est)


@pytest.mark.usefixtures("double_precision")
def test_hcp_mg_0001_bright_field_is_6mm_and_no_more():
    """Mg (6/mmm) along [0001]: diffraction group 6mm1_R, bright field 6mm (Buxton, Eades,
    Steeds & Rackham, Phil. Trans. R. Soc. A281 (1976) 171, Tables 2 and 3). Checked at random
    tilts (the 60° rotations do not map the square pixel grid onto itself) and on a full solve.
    """
    plan = plan_lacbed(MG, [40, 110], size=16, max_g=2.2, convergence_sample=0,
                       strong_beams=2)  # fmt: skip
    assert len(plan.pool) > 60 and plan.info["n_holz_pool"] > 0
    rng = np.random.default_rng(5)
    w = plan.options["half_width"]
    kt = rng.uniform(-w, w, size=(12, 2))
    base = _intensity(plan, kt)

    def rot(deg):
        t = np.radians(deg)
        return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])

    mirror_x = np.diag([-1.0, 1.0])  # x ∥ a*: the mirror ⊥ a* (⊥ [210])
    for op in [rot(60 * n) for n in range(1, 6)] + [mirror_x @ rot(60 * n) for n in range(6)]:
        # measured max |ΔI| = 6.0e-14 (round-off, 187 beams); 5×
        np.testing.assert_allclose(_intensity(plan, kt @ op.T), base, rtol=0, atol=3e-13)
    # no more: neither a 12-fold axis nor the 4mm of a square grid (measured max |ΔI| = 0.49)
    for op in (rot(30), rot(90), np.array([[0.0, 1.0], [1.0, 0.0]])):
        assert np.abs(_intensity(plan, kt @ op.T) - base).max() > 1e-2

    # the full solve on the pixel grid: the mirrors x → −x and y → −y, but not x ↔ y
    n = len(plan.pool)
    p = simulate_lacbed(MG, [40, 110], size=16, max_g=2.2, convergence_sample=0,
                        strong_beams=n, symmetry="1")  # fmt: skip
    i = p.intensities
    assert p.settings["symmetry"] == "1"
    # measured max |ΔI| = 8.6e-14 and 7.4e-14; x ↔ y differs by 0.64
    np.testing.assert_allclose(i, i[:, :, ::-1], rtol=0, atol=4e-13)
    np.testing.assert_allclose(i, i[:, ::-1, :], rtol=0, atol=4e-13)
    assert np.abs(i - np.swapaxes(i, 1, 2)).max() > 1e-2


@pytest.mark.usefixtures("double_precision")
def test_flux_is_conserved_without_absorption_in_a_triclinic_cell():
    """Σ_g |ψ_g|² (1 + g_n/k_n) = 1 (docs/physics.md §8), every beam strong, a triclinic cell
    (P1, two atoms) along [011] with the surface normal [112]."""
    tri = Crystal(a=4.1, b=5.3, c=6.2, alpha=79.0, beta=97.0, gamma=105.0,
                  symbols=("Fe", "O"), positions=[[0.1, 0.2, 0.3], [0.55, 0.4, 0.85]],
                  occupancies=1.0, b_iso=[0.4, 0.6], space_group_number=1,
                  space_group="P1")  # fmt: skip
    kw = dict(size=8, max_g=1.6, absorption="none", convergence_sample=0,
              zone_axis=(0, 1, 1), normal=(1, 1, 2))  # fmt: skip
    plan = plan_lacbed(tri, 50, **kw)
    n = len(plan.pool)
    assert plan.normal is not None and plan.info["n_holz_pool"] > 0
    p = simulate_lacbed(tri, [40, 150], strong_beams=n, reflections=plan.pool, **kw)
    assert p.settings["n_weak_mean"] == 0 and p.settings["symmetry"] == "1"
    kt = np.stack(np.meshgrid(p.kx, p.ky, indexing="xy"), -1).reshape(-1, 2)
    k = incident_wavevectors(kt, plan.wavenumber)
    k_n, g_n = normal_components(k, plan.g, plan.normal)
    metric = 1.0 + g_n / k_n[:, None]  # (pixels, beams)
    inten = p.intensities.reshape(n, 2, -1)  # (beams, t, pixels)
    flux = np.einsum("gtp,pg->tp", inten, metric)
    # measured max |flux − 1| = 5.1e-15 (float64 round-off over 169 beams, 54 HOLZ); 5×
    np.testing.assert_allclose(flux, 1.0, rtol=0, atol=2.6e-14)


def test_symmetry_and_errors_for_non_cubic_crystals():
    with pytest.raises(SettingsError, match="'4mm' is not available for this orientation"):
        plan_lacbed(MG, 50, size=8, symmetry="4mm")
    assert plan_lacbed(MG, 50, size=8, max_g=1.5).symmetry == "2mm"  # the grid's part of 6mm
    assert plan_lacbed(MG, 50, size=8, max_g=1.5, tilt=(0.01, 0)).symmetry == "1"
    tri = _as(SI, 1, "P1", alpha=80.0)  # no symmetry but the identity: every pixel
    assert plan_lacbed(tri, 50, size=8, max_g=1.5).symmetry == "1"
    p = plan_lacbed(MG, 50, size=8, reflections=["000", "100"], max_g=1.5)
    assert p.symmetry == "1" and list(p.reflection_index) != [-1, -1]
    with pytest.raises(SettingsError, match="not in the beam pool"):
        plan_lacbed(MG, 50, size=8, reflections=["009"], max_g=1.5)


def test_rhombohedral_and_c_centring_are_detected():
    from lacbed.bloch.pool import centring_allowed
    from lacbed.simulate.symmetry import lattice_centring

    # two atoms related by the obverse R translation (2/3, 1/3, 1/3) of hexagonal axes
    r = [[0, 0, 0], [2 / 3, 1 / 3, 1 / 3], [1 / 3, 2 / 3, 2 / 3]]
    rho = Crystal(a=4.0, c=11.0, gamma=120.0, symbols=("Bi",) * 3, positions=r,
                  occupancies=1.0, b_iso=0.5, space_group_number=166,
                  space_group="R-3m")  # fmt: skip
    assert lattice_centring(rho) == "R"
    hkl = np.array([[0, 0, 3], [0, 0, 1], [1, 0, 1], [0, 1, 2], [1, 1, 0]])
    assert centring_allowed(hkl, "R").tolist() == [True, False, True, True, True]
    # the forbidden ones are exactly 0 in V_g: the detection agrees with the structure factors
    sf = structure_factors(rho, hkl, absorption="none")
    assert np.all((sf.V != 0) == centring_allowed(hkl, "R"))
    cc = Crystal(a=4.0, b=5.0, c=3.0, symbols=("Cu", "Cu"), positions=[[0, 0, 0], [0.5, 0.5, 0]],
                 occupancies=1.0, b_iso=0.5, space_group_number=65,
                 space_group="Cmmm")  # fmt: skip
    assert lattice_centring(cc) == "C"


# --------------------------------------------------------------------------------- potential
def test_projected_potential_general_path():
    # the cubic projection through the general metric (P1) is the cubic one: measured max
    # |ΔV_p| = 1.7e-13 V·Å of a 466 V·Å maximum (round-off)
    np.testing.assert_allclose(
        projected_potential(_as(SI, 1, "P1"), 32), projected_potential(SI, 32), atol=1e-9
    )
    # hcp Mg along [0001]: mean c·V₀₀₀, and the 3-fold axis through the atoms' column maps the
    # oblique 2D cell's pixel grid onto itself (u, v) → (−v, u − v)
    img = projected_potential(MG, 48)
    v0 = structure_factors(MG, [0, 0, 0], absorption="none").V[0].real
    assert img.mean() == pytest.approx(MG.c * v0, rel=1e-12)
    from lacbed.scattering.potential import cell_in_units_of_a, projection_cell

    _, cell, length = projection_cell((0, 0, 1), cell_in_units_of_a(MG))
    assert length == pytest.approx(MG.c / MG.a)
    np.testing.assert_allclose(np.linalg.norm(cell, axis=1), [1, 1], rtol=1e-12)
    assert np.degrees(np.arccos(cell[0] @ cell[1])) == pytest.approx(120.0)
    # the 3-fold axis of the projection through the origin: u a₁ + v a₂ → −v a₁ + (u − v) a₂
    # for a₁, a₂ at 120°; image[row, col] = V_p(u = col/size, v = row/size)
    r, c = np.meshgrid(np.arange(48), np.arange(48), indexing="ij")
    rotated = img[(c - r) % 48, (-r) % 48]
    # measured max |Δ|/max = 1.6e-5: the band limit |m|, |n| < size/2 is a box of the 2D index
    # lattice that the 3-fold does not map onto itself (omitted terms); 5×
    np.testing.assert_allclose(rotated, img, rtol=0, atol=8e-5 * np.abs(img).max())
    # the mirror a₁ ↔ a₂ (of p6mm) maps the box onto itself: exact (measured 2.7e-16)
    np.testing.assert_allclose(img.T, img, rtol=0, atol=1e-13 * np.abs(img).max())


def test_the_surrogate_refuses_a_non_cubic_crystal():
    pytest.importorskip("torch")
    from lacbed.ml.predict import load_model, predict_crystals

    model, info = load_model()
    with pytest.raises(NonCubicError, match="trained on cubic crystals only"):
        predict_crystals([SI, MG], model=model, info=info)


# --------------------------------------------------------------------------------------- CLI
def _cli(args, capsys):
    from lacbed.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_simulates_potentials_and_tabulates_a_hexagonal_cif(tmp_path, capsys):
    mg = CIFS / "mg_hcp.cif"
    out = tmp_path / "mg.npy"
    code, _, err = _cli(["simulate", mg, "-o", out, "-t", "50", "--size", "8"], capsys)
    assert code == 0, err
    i = np.load(out)
    assert i.shape == (8, 8) and np.all((i > 0) & (i < 1))
    args = ["simulate", mg, "-o", tmp_path / "z.npy", "-t", "50", "--size", "8"]
    code, _, err = _cli([*args, "--zone-axis", "2", "1", "0", "--x-direction", "0", "0", "1"],
                        capsys)  # fmt: skip
    assert code == 0, err
    code, _, err = _cli(["potential", mg, "-o", tmp_path / "p.npy", "--size", "16"], capsys)
    assert code == 0, err
    np.testing.assert_allclose(
        np.load(tmp_path / "p.npy"),
        projected_potential(read_cif(mg, any_system=True), 16),
        rtol=1e-6,  # float32 file
    )
    csv = tmp_path / "f.csv"
    code, _, err = _cli(["factors", mg, "-o", csv, "--max-g", "0.5"], capsys)
    assert code == 0, err
    # |g| ≤ 0.5 1/Å, |g|² = 4(h² + hk + k²)/(3a²) + l²/c²: 000, 2 {001} (0.192), 6 {100}
    # (0.360), 2 {002} (0.384), 12 {101} (0.408); {102} (0.526) and {110} (0.623) are beyond
    assert len(csv.read_text().splitlines()) == 1 + 23


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--zone-axis", "0", "0", "1", "--x-direction", "0", "0", "3"], "parallel"),
        (["--zone-axis", "0", "0", "1", "--normal", "1", "0", "0"], "90°"),
        (["--reflections", "009"], "not in the beam pool"),
    ],
)
def test_cli_bad_input_for_a_hexagonal_cif_is_one_line(tmp_path, capsys, extra, message):
    args = ["simulate", CIFS / "mg_hcp.cif", "-o", tmp_path / "x.npy", "-t", "50", "--size", "8"]
    code, out, err = _cli([*args, *extra], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lacbed: error:") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("double_precision")
@pytest.mark.parametrize(
    ("crystal", "zone", "wedge"),
    [
        (MG, (0, 0, 1), "2mm"),  # the mirrors ⊥ a* and ⊥ b of 6mm
        (MG, (2, 1, 0), "2mm"),  # [10-10] ∥ a*: the mirrors ⊥ c and ⊥ b of 6/mmm
        (_as(CU, 139, "I4/mmm", c=1.1 * CU.a), (0, 0, 1), "4mm"),  # a real tetragonal cell
    ],
)
def test_reduced_solve_of_a_non_cubic_crystal_equals_the_full_solve(crystal, zone, wedge):
    """The wedge symmetry found from the crystal's operations (frame_symmetry) reproduces the
    full solve: every pool beam strong, float64."""
    kw = dict(size=16, max_g=1.8, convergence_sample=0, zone_axis=zone)
    n = len(plan_lacbed(crystal, 60, **kw).pool)
    red = simulate_lacbed(crystal, [60, 140], strong_beams=n, **kw)
    full = simulate_lacbed(crystal, [60, 140], strong_beams=n, symmetry="1", **kw)
    assert red.settings["symmetry"] == wedge
    # measured max |ΔI| = 5.1e-14, 1.2e-13, 3.9e-14 (round-off, 91, 83, 37 beams)
    np.testing.assert_allclose(red.intensities, full.intensities, rtol=0, atol=5e-13)


def test_pattern_labels_of_a_hexagonal_crystal():
    from lacbed.plotting.pattern import orientation_labels

    cell = {"crystal": {"cell": list(MG.lattice_parameters)}}
    # [0001] with x = a*: y = ẑ × x̂ ∥ b, the direct vector [010]
    assert orientation_labels({"zone_axis": [0, 0, 1], "x_direction": [1, 0, 0], **cell}) == (
        "[001]", "(100)", "[010]",
    )  # fmt: skip
    # [10-10] = [210] with x = c*: y ∥ −b
    assert orientation_labels({"zone_axis": [2, 1, 0], "x_direction": [0, 0, 1], **cell})[2] == (
        "[0-10]"
    )
