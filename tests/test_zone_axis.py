"""Any zone axis [UVW] of a cubic crystal (issue 12, part 2; docs/zone_axes.md).

Oracles: the [001] frame through the general path; symmetry-equivalent orientations; the
bright-field symmetry of Buxton et al. (1976) at Si [111], Si [110] and GaAs [110], and no more;
the whole-pattern mirror of GaAs [110] that Si has and GaAs lacks; flux conservation without
absorption (also with a tilted surface normal); felix.inp and CLI settings; one-line errors.

Tolerances (measured with ``double_precision``, tests/conftest.py, 200 kV, size 16–32):
symmetry-equivalent pixels differ by max |ΔI| ≤ 8.1e-9 (the single-precision weak-beam
products); :data:`EXACT` = 4e-8 is 5× that. Symmetries the pattern lacks give max |ΔI| ≥ 0.05.
Flux: |Σ_g I_g (1 + g_n/k_n) − 1| ≤ 4.4e-15 (:data:`FLUX` = 2e-14); without the metric factor
it is off by 1.8e-4 (normal ∥ [111]) and 2.6e-3 (normal [223]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lacbed.cli import main
from lacbed.crystal import load_crystal
from lacbed.crystal.examples import example_path
from lacbed.crystal.orientation import default_x_direction, orientation
from lacbed.errors import SettingsError
from lacbed.simulate import simulate_lacbed
from lacbed.simulate.felix import read_felix_inp
from lacbed.simulate.geometry import incident_wavevectors, tilts
from lacbed.simulate.plan import plan_lacbed

#: Max |ΔI| between symmetry-equivalent pixels: 5× the measured 8.1e-9 (module notes).
EXACT = 4e-8
#: A symmetry the pattern lacks breaks it by far more than this (measured ≥ 0.05).
BROKEN = 1e-3
#: Flux conservation: 4.5× the measured 4.4e-15.
FLUX = 2e-14

KW = dict(convergence_target=None, convergence_sample=0, thickness_nm=[50.0, 150.0])
SI = example_path("Si")
GAAS = example_path("GaAs")
#: The Felix Si [001] run's input (tests/data/PROVENANCE.md).
FELIX_INP = Path(__file__).resolve().parent / "data" / "felix" / "Si_001" / "felix.inp"


def _maxdiff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# ------------------------------------------------------------------------------- orientation
@pytest.mark.parametrize(
    ("zone", "x"),
    [((0, 0, 1), (1, 0, 0)), ((1, 0, 0), (0, 1, 0)), ((1, 1, 0), (0, 0, 1)),
     ((1, 1, 1), (1, 0, -1)), ((1, 1, 2), (1, -1, 0)), ((0, 0, 3), (1, 0, 0))],
)  # fmt: skip
def test_default_x_direction(zone, x):
    assert default_x_direction(zone) == x
    assert np.dot(zone, x) == 0


def test_frame_is_right_handed_and_standard_is_identity():
    assert orientation().rotation is None and orientation().standard
    assert orientation((0, 0, 2), (3, 0, 0)).standard  # index multiples: the same frame
    o = orientation((1, 1, 1), (1, -1, 0))
    r = o.rotation
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    assert np.allclose(r[2], np.ones(3) / np.sqrt(3)) and np.allclose(r[0], [1, -1, 0] / np.sqrt(2))
    assert o.normal_frame is None  # the default normal is the zone axis
    assert np.allclose(
        orientation((0, 0, 1), (1, 0, 0), (0, 1, 1)).normal_frame, [0, 0.5**0.5, 0.5**0.5]
    )


@pytest.mark.parametrize(
    ("args", "word"),
    [(((0, 0, 0),), "zone axis"), (((1, 1, 0), (2, 2, 0)), "parallel"),
     (((0, 0, 1), None, (0, 0, -1)), "90°"), (((0, 0, 1), None, (1, 0, 0)), "90°"),
     (((0.5, 0, 1),), "integers")],
)  # fmt: skip
def test_bad_orientation_is_one_line(args, word):
    with pytest.raises(SettingsError, match=word) as exc:
        orientation(*args)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("group", "expected"),
    [("m-3m", ["4mm", "4mm", "2mm", "1", "1", "1"]),
     ("m-3", ["2mm", "2mm", "1", "1", "1", "1"]),
     ("-43m", ["1"] * 6), ("432", ["1"] * 6), ("23", ["1"] * 6)],
)  # fmt: skip
def test_frame_symmetry_uses_direct_operations_only(group, expected):
    """Operations that keep the zone axis and map the pixel grid onto itself: at <100> the
    mirrors of m-3m (4mm) and m-3 (2mm), at <110> the two mirrors of m-3m; the -4, the 2-folds
    ⊥ the axis and the 4 of 432 hold only by reciprocity (or not on the grid) and are not used;
    a tilted normal removes them all."""
    from lacbed.crystal.orientation import frame_symmetry, point_group_operations

    assert len(point_group_operations(group)) == {"m-3m": 48, "23": 12}.get(group, 24)
    cases = [((1, 0, 0), None, None), ((0, 0, 1), (0, 1, 0), None), ((1, 1, 0), None, None),
             ((1, 1, 1), None, None), ((1, 1, 2), None, None), ((1, 1, 0), None, (1, 1, 1))]  # fmt: skip
    got = [frame_symmetry(orientation(*c), group)[0] for c in cases]
    assert got == expected


@pytest.mark.parametrize(
    ("name", "zone", "x", "sym"),
    [("Si", (1, 1, 0), None, "2mm"), ("Si", (1, 0, 0), None, "4mm"),
     ("Si", (0, 0, 1), (0, 1, 0), "4mm"), ("FeS2", (0, 1, 0), None, "2mm")],
)  # fmt: skip
def test_reduced_rotated_frame_equals_the_full_solve(double_precision, name, zone, x, sym):
    """The wedge of a rotated frame (its direct mirrors, the diagonal one mapped by the crystal
    operation) gives the full solve to round-off (measured ≤ 4.9e-9)."""
    cif = example_path(name)
    kw = dict(KW, size=32, zone_axis=zone, x_direction=x)
    red = simulate_lacbed(cif, **kw)
    full = simulate_lacbed(cif, symmetry="1", **kw)
    assert red.settings["symmetry"] == sym and full.settings["symmetry"] == "1"
    assert red.settings["n_unique_pixels"] < full.settings["n_unique_pixels"] / 3
    assert _maxdiff(red.intensities, full.intensities) <= EXACT


# ------------------------------------------------------------------------- [001] and equivalence
def test_explicit_001_is_todays_engine(double_precision):
    """[001] with x = [100] through the general arguments equals the default run (to 1e-10)."""
    kw = dict(KW, size=16)
    a = simulate_lacbed(SI, **kw)
    b = simulate_lacbed(SI, zone_axis=(0, 0, 1), x_direction=(1, 0, 0), normal=(0, 0, 1), **kw)
    assert _maxdiff(a.intensities, b.intensities) <= 1e-10
    assert b.settings["symmetry"] == "4mm" and b.settings["zone_axis"] == [0, 0, 1]


def test_equivalent_axis_100_equals_001(double_precision):
    """[100] with x = [010] is [001] with x = [100] after the 3-fold axis along [111], which
    every cubic point group has: the same pattern, to round-off (measured 4.0e-9), both solved
    on every pixel."""
    kw = dict(KW, size=32, symmetry="1")
    a = simulate_lacbed(SI, **kw)
    b = simulate_lacbed(SI, zone_axis=(1, 0, 0), x_direction=(0, 1, 0), **kw)
    assert b.settings["symmetry"] == "1" and b.settings["n_unique_pixels"] == 32 * 32
    assert _maxdiff(a.intensities, b.intensities) <= EXACT


def test_normal_parallel_to_zone_axis_is_the_default():
    a = plan_lacbed(SI, 50.0, size=16, zone_axis=(1, 1, 0), convergence_sample=0)
    b = plan_lacbed(SI, 50.0, size=16, zone_axis=(1, 1, 0), normal=(2, 2, 0), convergence_sample=0)
    assert a.normal is None and b.normal is None
    assert np.array_equal(a.g, b.g)


def test_pool_follows_the_zone_axis():
    """The zero layer is the whole plane ⊥ [UVW] within |g| ≤ g_max; the HOLZ beams lie mostly
    on the side g·[UVW] < 0 that the Ewald sphere bends towards (beam along +[UVW]; Felix's
    relative criterion also admits long g of the first layer above); the table V_{g−h}
    depends on hkl only."""
    p = plan_lacbed(SI, 50.0, size=16, zone_axis=(1, 1, 1), convergence_sample=0)
    layer = p.pool @ np.array([1, 1, 1])
    assert np.count_nonzero(layer) == p.info["n_holz_pool"] > 0
    assert np.count_nonzero(layer < 0) > 2 * np.count_nonzero(layer > 0)
    big_k = p.wavenumber  # Felix's criterion in the frame (docs/physics.md §11, §12)
    dist = np.abs(big_k - np.linalg.norm(p.g + [0.0, 0.0, big_k], axis=1))
    assert np.all(dist[1:] <= 0.08 * np.linalg.norm(p.g[1:], axis=1) * (1 + 1e-12))
    r = np.arange(-16, 17)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    par = hkl % 2
    zolz = hkl[(hkl @ [1, 1, 1] == 0) & np.all(par == par[:, :1], axis=1)]  # F centring
    zolz = zolz[np.linalg.norm(zolz, axis=1) / load_crystal(SI).a <= p.info["max_g"] + 1e-9]
    assert sorted(map(tuple, zolz)) == sorted(map(tuple, p.pool[layer == 0]))
    assert np.allclose(p.g[:, 2], layer / (np.sqrt(3) * load_crystal(SI).a), atol=1e-12)
    q = plan_lacbed(SI, 50.0, size=16, convergence_sample=0)
    lookup = {tuple(h): i for i, h in enumerate(q.pool)}
    common = [(i, lookup[tuple(h)]) for i, h in enumerate(p.pool) if tuple(h) in lookup]
    i, j = np.array(common).T
    assert len(common) > 20
    assert np.allclose(p.v_table[np.ix_(i, i)], q.v_table[np.ix_(j, j)], rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------- Buxton symmetries
def _flips(i):
    """Pattern operations on (t, row, col): kx → −kx, ky → −ky, k → −k, kx ↔ ky."""
    return {
        "mx": i[:, :, ::-1],
        "my": i[:, ::-1, :],
        "2": i[:, ::-1, ::-1],
        "diag": np.swapaxes(i, 1, 2),
    }


def test_si_111_bright_field_is_3m(double_precision):
    """m-3m along <111>: diffraction group 6RmmR (Buxton et al. 1976, Table 3), bright field 3m
    (Table 2). x = [10-1] is the normal of a (10-1) mirror (kx → −kx, exact) and x = [-110] is
    x = [10-1] turned by 120° about [111] (the 3-fold, exact). The 2-fold (and the mirror
    ky → −ky) of the ZOLZ projection (6mm) is broken by the HOLZ: measured max |ΔI| 0.05,
    Z = 1e-4 at 50 nm, 1.8e-3 at 150 nm."""
    kw = dict(KW, size=32, symmetry="1")
    i = simulate_lacbed(SI, zone_axis=(1, 1, 1), **kw).intensities
    ops = _flips(i)
    assert _maxdiff(i, ops["mx"]) <= EXACT
    turned = simulate_lacbed(SI, zone_axis=(1, 1, 1), x_direction=(-1, 1, 0), **kw).intensities
    assert _maxdiff(i, turned) <= EXACT
    for name in ("my", "2", "diag"):
        assert _maxdiff(i, ops[name]) > BROKEN, name


def test_si_110_bright_field_is_2mm(double_precision):
    """m-3m along <110>: 2mm1R, bright field 2mm (Buxton Tables 2–3); x = [001]: both mirrors
    ((001) and (1-10)) are crystal mirrors. No 4-fold (kx ↔ ky) at [110]."""
    i = simulate_lacbed(SI, zone_axis=(1, 1, 0), size=32, symmetry="1", **KW).intensities
    ops = _flips(i)
    for name in ("mx", "my", "2"):
        assert _maxdiff(i, ops[name]) <= EXACT, name
    assert _maxdiff(i, ops["diag"]) > BROKEN


def test_gaas_110_bright_field_2mm_whole_pattern_m(double_precision):
    """-43m along <110>: diffraction group m1R (Buxton Table 3), bright field 2mm and whole
    pattern m (Table 2). The (1-10) mirror (ky → −ky) is a crystal mirror; kx → −kx and the
    2-fold of the bright field come from reciprocity (the 1R and mR operations), which the
    Bloch-wave solution keeps to round-off (measured 6e-9). The non-centrosymmetric crystal
    shows in the discs: (001) is no mirror of GaAs, so I_{1-11}(kx, ky) ≠ I_{1-1-1}(−kx, ky)
    (measured max |ΔI| 0.12), whereas for Si they are equal; the (1-10) mirror maps the
    1-11 disc onto the -111 disc in both."""
    discs = ["000", "1-11", "1-1-1", "-111"]
    kw = dict(KW, size=16, zone_axis=(1, 1, 0), reflections=discs, symmetry="1")
    ga = simulate_lacbed(GAAS, **kw).intensities
    si = simulate_lacbed(SI, **kw).intensities
    bf = _flips(ga[0])
    for name in ("mx", "my", "2"):
        assert _maxdiff(ga[0], bf[name]) <= EXACT, name
    assert _maxdiff(ga[0], bf["diag"]) > BROKEN
    for d in (ga, si):
        assert _maxdiff(d[1], d[3][:, ::-1, :]) <= EXACT  # (1-10) mirror, both crystals
    assert _maxdiff(si[1], si[2][:, :, ::-1]) <= EXACT  # (001) mirror of Si
    assert _maxdiff(ga[1], ga[2][:, :, ::-1]) > 10 * BROKEN  # GaAs has none


def test_tilted_normal_follows_the_crystal_mirrors(double_precision):
    """[001] with the normal tilted to [012]: the (010) mirror of m-3m maps it onto the normal
    [0-12] with ky → −ky, and the (100) mirror keeps it (kx → −kx); both hold to round-off
    (measured 2.1e-9), while the tilt itself changes the pattern (measured max ΔI 0.25)."""
    kw = dict(KW, size=16)
    a = simulate_lacbed(SI, normal=(0, 1, 2), **kw).intensities
    b = simulate_lacbed(SI, normal=(0, -1, 2), **kw).intensities
    assert _maxdiff(a[:, ::-1, :], b) <= EXACT
    assert _maxdiff(a[:, :, ::-1], a) <= EXACT
    assert _maxdiff(a, simulate_lacbed(SI, **kw).intensities) > 10 * BROKEN


# --------------------------------------------------------------------------------------- flux
@pytest.mark.parametrize("normal", [None, (2, 2, 3)])
def test_flux_conserved_at_111(double_precision, normal):
    """No absorption, every pool beam strong and returned: Σ_g I_g (1 + g_n/k_n) = 1 at every
    pixel (docs/physics.md §4, §12), the normal along [111] or tilted to [223]."""
    kw = dict(size=8, zone_axis=(1, 1, 1), normal=normal, absorption="none", max_g=2.6)
    pool = plan_lacbed(SI, 50.0, convergence_sample=0, **kw).pool
    refl = [tuple(int(x) for x in h) for h in pool]
    beams = dict(kw, strong_beams=len(pool), reflections=refl)
    p = simulate_lacbed(SI, **beams, **KW)
    plan = plan_lacbed(SI, 50.0, convergence_sample=0, **beams)
    assert p.settings["n_weak_mean"] == 0 and plan.info["n_holz_pool"] > 50
    r, c = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    k = incident_wavevectors(
        tilts(r.ravel(), c.ravel(), 8, plan.options["half_width"]), plan.wavenumber
    )
    n = np.array([0.0, 0.0, 1.0]) if plan.normal is None else plan.normal
    factor = 1.0 + np.outer(plan.g[plan.reflection_index] @ n, 1.0 / (k @ n))  # (n_g, pixels)
    inten = p.intensities.reshape(len(refl), 2, -1)
    flux = np.einsum("gtp,gp->tp", inten, factor)
    assert np.abs(flux - 1.0).max() <= FLUX
    assert np.abs(inten.sum(axis=0) - 1.0).max() > 1e-4  # the metric factor matters here


# ------------------------------------------------------------------------------- felix and CLI
def _felix_text(**directions) -> str:
    text = FELIX_INP.read_text()
    out = []
    for line in text.splitlines():
        key = line.split("=")[0].split()[:1]
        if key and key[0] in ("IIncidentBeamDirection", "IXDirection", "INormalDirection"):
            continue
        out.append(line)
    out += [f"{k} = {v}" for k, v in directions.items()]
    return "\n".join(out) + "\n"


def test_felix_inp_reads_the_directions(tmp_path):
    p = tmp_path / "felix.inp"
    p.write_text(
        _felix_text(
            IIncidentBeamDirection="[1,1,0]", IXDirection="[0,0,1]", INormalDirection="[1,1,1]"
        )
    )
    f = read_felix_inp(p)
    assert (f.zone_axis, f.x_direction, f.normal) == ((1, 1, 0), (0, 0, 1), (1, 1, 1))
    kw = f.simulation_kwargs()
    assert (kw["zone_axis"], kw["x_direction"], kw["normal"]) == ((1, 1, 0), (0, 0, 1), (1, 1, 1))
    p.write_text(_felix_text(IIncidentBeamDirection="[1, 1, 1]"))
    f = read_felix_inp(p)
    assert (f.zone_axis, f.x_direction, f.normal) == ((1, 1, 1), None, None)


@pytest.mark.parametrize(
    ("directions", "key"),
    [({"IIncidentBeamDirection": "[0,0,0]"}, "IIncidentBeamDirection"),
     ({"IIncidentBeamDirection": "[1,1,0]", "IXDirection": "[2,2,0]"}, "IXDirection"),
     ({"INormalDirection": "[0,0,-1]"}, "INormalDirection")],
)  # fmt: skip
def test_felix_inp_bad_directions_name_the_key(tmp_path, directions, key):
    p = tmp_path / "felix.inp"
    p.write_text(_felix_text(**directions))
    with pytest.raises(SettingsError, match=key) as exc:
        read_felix_inp(p)
    assert "\n" not in str(exc.value)


def _run(argv) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *argv])
    return int(exc.value.code or 0)


class _Recorder:
    def __init__(self):
        self.kw = None

    def __call__(self, crystal, **kw):
        self.kw = kw
        return simulate_lacbed(crystal, **dict(kw, convergence_target=None, convergence_sample=0))


def test_cli_zone_axis_options(tmp_path, monkeypatch):
    import lacbed.cli.simulate as cli_sim

    rec = _Recorder()
    monkeypatch.setattr(cli_sim, "_engine", lambda: rec)
    out = tmp_path / "x.npy"
    argv = [str(SI), "-o", str(out), "-t", "40", "--size", "8", "--max-g", "1.5", "-q"]
    argv += ["--strong-beams", "24"]  # the Felix file asks for 100, more than this small pool
    assert _run([*argv, "--zone-axis", "1", "-1", "0", "--x-direction", "0", "0", "1"]) == 0
    assert rec.kw["zone_axis"] == (1, -1, 0) and rec.kw["x_direction"] == (0, 0, 1)
    assert np.load(out).shape == (8, 8)
    # felix.inp directions, and an explicit --zone-axis replacing them
    inp = tmp_path / "felix.inp"
    inp.write_text(_felix_text(IIncidentBeamDirection="[1,1,0]", IXDirection="[0,0,1]"))
    assert _run([*argv, "--felix-inp", str(inp), "--size", "8"]) == 0
    assert (rec.kw["zone_axis"], rec.kw["x_direction"], rec.kw["normal"]) == (
        (1, 1, 0),
        (0, 0, 1),
        None,
    )
    assert _run([*argv, "--felix-inp", str(inp), "--zone-axis", "1", "1", "1"]) == 0
    assert (rec.kw["zone_axis"], rec.kw["x_direction"]) == ((1, 1, 1), None)


@pytest.mark.parametrize(
    ("extra", "word"),
    [(["--zone-axis", "0", "0", "0"], "--zone-axis"),
     (["--zone-axis", "1", "1", "1", "--x-direction", "2", "2", "2"], "--x-direction"),
     (["--normal", "0", "0", "-1"], "--normal")],
)  # fmt: skip
def test_cli_bad_orientation_one_line_nothing_written(tmp_path, capsys, extra, word):
    out = tmp_path / "x.npy"
    assert _run([str(SI), "-o", str(out), "-t", "50", "--size", "8", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_symmetry_beyond_the_direct_ones_is_refused():
    """GaAs [110] has only the (1-10) mirror among its direct symmetries (the rest of its 2mm
    bright field is reciprocity): no wedge is imposed; Si [110] is 2mm, not 4mm."""
    with pytest.raises(SettingsError, match="not available for this orientation"):
        plan_lacbed(GAAS, 50.0, size=16, zone_axis=(1, 1, 0), symmetry="2mm")
    with pytest.raises(SettingsError, match="'2mm'"):
        plan_lacbed(SI, 50.0, size=16, zone_axis=(1, 1, 0), symmetry="4mm")
    assert plan_lacbed(GAAS, 50.0, size=16, zone_axis=(1, 1, 0)).symmetry == "1"


def test_default_run_estimates_convergence_at_110():
    """The convergence estimate (sample pixels with twice the strong beams) works on a full solve
    away from [001]: a default Si [110] run reports a small Z (measured 4.6e-4 at 64 px)."""
    p = simulate_lacbed(SI, 50.0, size=16, zone_axis=(1, 1, 0))
    z = p.settings["convergence_estimate"]
    assert z is not None and 0.0 <= z < 5e-3 and p.settings["convergence_sample_pixels"] >= 16
    # converged at once (estimate 6.9e-5 at 16 px): one solve, no escalation
    assert len(p.settings["escalation"]) == 1 and p.settings["budget_factor"] == 1.0
    assert p.settings["zone_axis"] == [1, 1, 0]


def test_plot_labels_follow_the_orientation():
    from lacbed.plotting.pattern import orientation_labels

    assert orientation_labels({}) == ("[001]", "[100]", "[010]")
    settings = {"zone_axis": [1, 1, 1], "x_direction": [1, 0, -1]}
    assert orientation_labels(settings) == ("[111]", "[10-1]", "[-12-1]")


# ----------------------------------------------------------------------- projected potential
def test_projection_cell_is_a_dual_basis_of_the_zero_layer():
    from lacbed.scattering.potential import projection_cell

    for zone in [(0, 0, 1), (1, 1, 0), (1, 1, 1), (1, 1, 2), (2, 2, 0), (3, 1, 0)]:
        b, cell, length = projection_cell(zone)
        z = np.asarray(zone) // np.gcd.reduce(np.abs(zone))
        assert np.array_equal(np.cross(b[0], b[1]), z)  # a basis of {h: h·z = 0}
        assert np.allclose(cell @ b.T, np.eye(2), atol=1e-14)
        assert np.allclose(cell @ z, 0.0, atol=1e-14) and np.isclose(length, np.linalg.norm(z))
    b, _, _ = projection_cell((0, 0, 1))
    assert b.tolist() == [[1, 0, 0], [0, 1, 0]]


def test_projected_potential_along_other_axes():
    """[001] unchanged; [100] equals [001] (a 3-fold about [111] through the origin maps one onto
    the other); along [110] the mean is a√2·V₀₀₀ and the maxima sit on the projected atoms
    u = r·b₁, v = r·b₂ (the Si dumbbells)."""
    from lacbed.scattering import projected_potential, structure_factors
    from lacbed.scattering.potential import projection_cell

    si = load_crystal(SI)
    ref = projected_potential(si, 32)
    assert np.array_equal(projected_potential(si, 32, zone_axis=(0, 0, 1)), ref)
    assert _maxdiff(projected_potential(si, 32, zone_axis=(1, 0, 0)), ref) <= 1e-9 * ref.max()
    img = projected_potential(si, 32, zone_axis=(1, 1, 0))
    v0 = structure_factors(si, np.zeros((1, 3), int), absorption="none").V[0].real
    assert np.isclose(img.mean(), si.a * np.sqrt(2) * v0, rtol=1e-12)
    b, _, _ = projection_cell((1, 1, 0))
    uv = np.mod(np.asarray(si.positions) @ b.T, 1.0)  # (u, v) of every atom
    peaks = img > 0.5 * img.max()
    r, c = np.nonzero(peaks)
    du = np.abs((c / 32.0)[:, None] - uv[None, :, 0])
    dv = np.abs((r / 32.0)[:, None] - uv[None, :, 1])
    near = (np.minimum(du, 1 - du) <= 1.5 / 32) & (np.minimum(dv, 1 - dv) <= 1.5 / 32)
    assert near.any(axis=1).all()  # every bright pixel is next to a projected atom
    for u, v in uv:
        assert img[int(round(v * 32)) % 32, int(round(u * 32)) % 32] > 0.5 * img.max()


def test_cli_potential_zone_axis(tmp_path, capsys):
    out = tmp_path / "p.npy"
    with pytest.raises(SystemExit) as exc:
        main(["potential", str(SI), "-o", str(out), "--size", "16", "--zone-axis", "1", "1", "1"])
    assert int(exc.value.code or 0) == 0 and np.load(out).shape == (16, 16)
    png = tmp_path / "p.png"
    with pytest.raises(SystemExit) as exc:
        main(["potential", str(SI), "-o", str(png), "--size", "16", "--zone-axis", "1", "1", "0"])
    assert int(exc.value.code or 0) == 0 and png.stat().st_size > 0
    bad = tmp_path / "bad.npy"
    with pytest.raises(SystemExit) as exc:
        main(["potential", str(SI), "-o", str(bad), "--zone-axis", "0", "0", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert int(exc.value.code) == 2 and "--zone-axis" in err[-1] and not bad.exists()


def test_non_numeric_orientation_is_a_settings_error():
    with pytest.raises(SettingsError, match="three integers"):
        orientation((1, 1, "a"))
