"""lacbed.refine (issue 13): synthetic experiments made by lacbed with known parameters, degraded
(Poisson noise, blur, background, rotation, shifted zone axis, another pixel scale, dead and hot
pixels), must give those parameters back; bad input gives one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from lacbed.crystal import load_crystal
from lacbed.crystal.examples import example_path
from lacbed.errors import LacbedError, SettingsError
from lacbed.refine import Alignment, Experiment, load_experiment, refine
from lacbed.refine.experiment import (
    bad_pixel_mask,
    calibration_from_axes,
    calibration_to_inv_angstrom,
    find_disc,
    symmetry_centre,
)
from lacbed.refine.geometry import interpolation_matrix, pixel_tilts, render
from lacbed.refine.structure import PotentialTable, equivalents, parse_fit
from lacbed.refine.synthetic import synthetic_experiment

SHAPE = (40, 40)
SI_DISC = (19.6, 19.2, 17.5)
SI_T = 150.0
#: calibration given to the fit: 3 % off the true sampling (the "different pixel scale")
SI_CAL = 0.045


@pytest.fixture(scope="module")
def si():
    return load_crystal(example_path("Si"))


@pytest.fixture(scope="module")
def si_truth():
    # zone axis 0.7 px / −0.3 px off the disc centre (a pattern-centre tilt), rotated −3.5°
    return Alignment(20.3, 18.9, -3.5, SI_CAL * 1.03, 0.8)


@pytest.fixture(scope="module")
def si_image(si, si_truth):
    return synthetic_experiment(
        si, SI_T, si_truth, shape=SHAPE, disc=SI_DISC, dose=3000.0, background=80.0,
        dead_pixels=2, seed=1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def si_fit(si, si_image):
    return refine(Experiment(si_image, SI_CAL), si, fit="thickness,orientation",
                  thickness_range=(50, 300))  # fmt: skip


# ----------------------------------------------------------------------------- potential table
@pytest.mark.parametrize("name", ["GaAs", "Si"])
def test_potential_table_reproduces_the_plan(name):
    from lacbed.simulate.plan import plan_lacbed

    cr = load_crystal(example_path(name))
    plan = plan_lacbed(cr, [50.0], size=16, convergence_sample=0.0)
    table = PotentialTable(plan)
    b = {el: float(cr.b_iso[[s == el for s in cr.symbols]][0]) for el in set(cr.symbols)}
    assert np.array_equal(table.table(b, {}), plan.v_table)


def test_ug_factor_changes_one_family_and_keeps_hermiticity():
    from lacbed.simulate.plan import plan_lacbed

    cr = load_crystal(example_path("GaAs"))
    plan = plan_lacbed(cr, [50.0], size=16, convergence_sample=0.0)
    table = PotentialTable(plan)
    b = {"Ga": 0.622, "As": 0.483}
    v0, v1 = table.table(b, {}), table.table(b, {(2, 0, 0): 1.2})
    diff = v1 - v0
    d = plan.pool[:, None, :] - plan.pool[None, :, :]
    in_family = np.isin(np.abs(d), [0, 2]).all(axis=-1) & (np.abs(d).sum(axis=-1) == 2)
    assert np.all(diff[~in_family] == 0)
    assert np.abs(diff[in_family]).min() > 0
    # the elastic change is 0.2 U_200 for all six members, Hermitian (Friedel: U_−g = U_g*)
    assert np.allclose(diff, diff.conj().T, atol=1e-15)
    u200 = table.ug(b, (2, 0, 0))
    assert np.allclose(diff[in_family], 0.2 * u200, rtol=1e-12)


def test_fit_items_and_reflection_families():
    spec = parse_fit("thickness,orientation,B,Ug:200", ["As", "Ga"])
    assert spec.thickness and spec.orientation
    assert spec.b_elements == ("As", "Ga") and spec.ug == ((2, 0, 0),)
    assert parse_fit("Ug:2,0,0,B:Ga", ["As", "Ga"]).ug == ((2, 0, 0),)
    assert parse_fit("B:Ga", ["As", "Ga"]).b_elements == ("Ga",)
    for bad in ("thickness,colour", "B:Xx", "Ug:000", "Ug:2x0"):
        with pytest.raises(SettingsError):
            parse_fit(bad, ["As", "Ga"])
    assert len(equivalents((2, 0, 0))) == 6 and len(equivalents((1, 1, 1))) == 8
    assert len(equivalents((2, 2, 0))) == 12


# -------------------------------------------------------------------------------- geometry
def test_interpolation_reproduces_the_simulation_grid():
    rng = np.random.default_rng(0)
    sim = rng.random((16, 16))
    n, w = 8, 0.8
    rows, cols = np.mgrid[2:14, 2:14]
    k = (np.stack([cols.ravel(), rows.ravel()], -1) - n + 0.5) * (w / n)
    mat, inside = interpolation_matrix(k, 16, w)
    assert inside.all()
    assert np.allclose(mat @ sim.ravel(), sim[2:14, 2:14].ravel(), atol=1e-12)
    # φ = 90° about the grid centre: k_x = −s(r − 7.5), k_y = s(c − 7.5), so img[r, c] =
    # sim[c, 15 − r] = np.rot90(sim)[r, c]
    al = Alignment(7.5, 7.5, 90.0, w / n, 0.0)
    img, covered = render(sim, w, (16, 16), al)
    assert covered.sum() >= 12 * 12
    assert np.allclose(img[covered], np.rot90(sim)[covered], atol=1e-12)
    assert np.allclose(pixel_tilts(np.array([7.5]), np.array([7.5]), al), 0.0)


def test_disc_centre_and_bad_pixels(si_image, si_truth):
    bad = bad_pixel_mask(si_image)
    assert bad.sum() >= 4
    row, col, radius = find_disc(si_image, bad)
    assert abs(row - SI_DISC[0]) < 0.5 and abs(col - SI_DISC[1]) < 0.5
    assert abs(radius - SI_DISC[2]) < 1.0
    rr, cc = np.indices(SHAPE)
    mask = (np.hypot(rr - row, cc - col) < radius - 3) & ~bad
    r0, c0 = symmetry_centre(si_image, mask)
    assert abs(r0 - si_truth.row) < 0.3 and abs(c0 - si_truth.col) < 0.3


# ------------------------------------------------------------------------------ recovery
def test_thickness_and_orientation_recovered(si_fit, si_truth):
    """Si, 150 nm: 1 % in thickness, 0.1 px in the zone-axis position, from one eigensolve of the
    thickness stack, one direct solve of the detector's pixels per correction pass and one solve
    for the final model's convergence estimate."""
    res = si_fit
    t = res.parameters["thickness"]
    assert abs(t["value"] - SI_T) <= 0.01 * SI_T
    assert 0 < t["uncertainty"] < 1.0
    al = res.alignment
    assert np.hypot(al.row - si_truth.row, al.col - si_truth.col) < 0.1
    assert abs(al.angle - si_truth.angle) < 0.2
    assert abs(al.scale / si_truth.scale - 1) < 0.01  # measured 0.3–0.5 % (a model bias)
    assert abs(al.blur - si_truth.blur) < 0.2
    assert 1 <= res.settings["direct_passes"] <= 3
    assert res.engine_calls == 2 + res.settings["direct_passes"]
    assert res.z < 0.03
    # the pattern-centre tilt: the disc centre seen from the zone axis
    k = pixel_tilts(np.array([SI_DISC[0]]), np.array([SI_DISC[1]]), si_truth)[0]
    # (its accuracy is that of the disc centre, ~0.2 px, not of the zone axis)
    assert abs(res.tilt["k_x"] - k[0]) < 0.3 * si_truth.scale
    assert abs(res.tilt["k_y"] - k[1]) < 0.3 * si_truth.scale
    z_t = res.z_thickness[1]
    assert z_t.min() < 0.05 and np.median(z_t) > 0.1


def test_final_model_reports_its_convergence_estimate(si, si_image, si_fit, monkeypatch, caplog):
    """The fitted model's engine estimate (Z against twice the strong beams) is reported, and a
    warning line is logged when it exceeds the limit (forced here by a lower limit)."""
    import lacbed.refine.fit as fit_mod

    est = si_fit.settings["convergence_estimate"]
    # Si at 200 kV with the adaptive budget: measured 1.3e-5 (well converged); the limit 0.5 %
    assert est is not None and 0 < est < si_fit.settings["convergence_warning"] == 0.005
    assert json.loads(json.dumps(si_fit.as_dict()))["settings"]["convergence_estimate"] == est
    assert not [r for r in caplog.records if "convergence estimate" in r.getMessage()]
    monkeypatch.setattr(fit_mod, "CONVERGENCE_WARNING", est / 2)
    with caplog.at_level("WARNING", logger="lacbed.refine.fit"):
        res = refine(Experiment(si_image, SI_CAL), si, fit="thickness", thickness_range=(50, 300),
                     direct_passes=0)  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if "convergence estimate" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "not converged" in lines[0]
    assert res.settings["convergence_estimate"] > est / 2


def test_report_records_where_the_experiment_came_from(si_fit, tmp_path):
    """report.json carries the experiment's source, calibration [1/Å per px] and its origin."""
    from lacbed.refine.report import write_outputs

    rep = json.loads(write_outputs(si_fit, tmp_path, figure=False)["report"].read_text())
    exp = rep["settings"]["experiment"]
    assert exp["calibration_inv_angstrom_per_px"] == SI_CAL
    assert exp["calibration_source"] == "option" and exp["source"] == ""


def test_large_image_is_binned_and_reported_in_its_own_pixels(si):
    """A 120 × 120 image (3× the sampling) is binned 3× for the fit; the alignment comes back in
    the original pixels."""
    truth = Alignment(61.4, 57.2, 3.0, SI_CAL * 1.03 / 3, 2.4)
    # one direction per pixel: the 3× binning integrates over the fit's pixels
    img = synthetic_experiment(si, 150.0, truth, shape=(120, 120), disc=(59.3, 58.1, 52.5),
                               dose=400.0, background=10.0, seed=4, supersample=1)  # fmt: skip
    res = refine(Experiment(img, SI_CAL / 3), si, thickness_range=(50, 300), max_size=40)
    assert res.settings["binning"] == 3
    assert res.images["experiment"].shape == (40, 40)
    al = res.alignment
    assert np.hypot(al.row - truth.row, al.col - truth.col) < 0.3  # 0.1 binned pixel
    assert abs(al.scale / truth.scale - 1) < 0.01 and abs(al.angle - 3.0) < 0.2
    assert abs(res.parameters["thickness"]["value"] - 150.0) < 1.5
    assert abs(res.disc[2] - 52.5) < 3


def test_debye_waller_recovered_from_20_percent_off(si, si_truth):
    """Si with B = 0.55 Å² (the CIF has 0.46): start 20 % low, recover within 5 %."""
    img = synthetic_experiment(
        si, 120.0, si_truth, shape=SHAPE, disc=SI_DISC, dose=20000.0, background=80.0,
        b={"Si": 0.55}, seed=2,
    )  # fmt: skip
    res = refine(Experiment(img, SI_CAL), si, fit="thickness,B", thickness_range=(50, 300),
                 start={"B:Si": 0.8 * 0.55})  # fmt: skip
    b = res.parameters["B:Si"]
    assert abs(b["value"] / 0.55 - 1) < 0.05
    assert b["start"] == pytest.approx(0.44)
    assert abs(res.parameters["thickness"]["value"] - 120.0) < 1.2
    assert res.engine_calls > 2 and res.history[-1]["stage"].startswith("structure")
    assert res.crystal.b_iso == pytest.approx(np.full(8, b["value"]))


@pytest.mark.slow
def test_gaas_ug200_and_b_recovered():
    """GaAs, the issue's case: U_200 × 1.05, B 0.70/0.55 Å², starts 20 % off; 64 × 64 pixels,
    10⁵ counts per pixel for the incident beam, blur, background, bad pixels, rotation, shifted
    zone axis, calibration 4 % off; the experiment with 150 strong beams (a converged truth), the
    fit with its default budget for U_g (80 strong beams per tile, ``UG_STRONG_BEAMS``).

    Measured: benchmarks/refine_recovery.py, gaas_b_ug200_64px_dose1e5 (the same case with
    another noise seed): U_200 +0.05 % (σ 0.20 %), B_Ga +1.2 %, B_As −0.6 % (σ 0.3 %); the
    scatter of U_200 over six noise draws is 0.23 % (``--seeds``); this test's own seed gave
    U_200 +0.07 % (σ 0.19 %), B_Ga +1.8 %, B_As −0.6 %, thickness +0.008 nm, 46 engine calls,
    305 s CPU (shared 2-core machine). Tolerances: U_200 the issue's 0.5 % (7× the measured
    error, 2.2× the scatter of one noise draw), its uncertainty below 0.4 % (2× the measured),
    B 5 % (the issue; 2.8× the measured 1.8 %), thickness 1 nm (the issue).
    """
    from lacbed.simulate.plan import plan_lacbed

    cr = load_crystal(example_path("GaAs"))
    n = 64
    cal = 4 / cr.a / (0.4 * n)
    truth = Alignment(n / 2 + 0.3, n / 2 - 1.1, 4.0, cal * 1.04, 0.9)
    tb, tf = {"Ga": 0.70, "As": 0.55}, 1.05
    img = synthetic_experiment(
        cr, 120.0, truth, shape=(n, n), disc=(n / 2 - 0.4, n / 2 - 0.7, 0.44 * n), b=tb,
        ug={(2, 0, 0): tf}, dose=1e5, background=80.0, dead_pixels=3, seed=11, strong_beams=150,
    )  # fmt: skip
    res = refine(
        Experiment(img, cal), cr, fit="thickness,orientation,B,Ug:200", thickness_range=(50, 300),
        start={"B:Ga": 0.8 * 0.70, "B:As": 0.8 * 0.55, "Ug:200": 0.8 * tf},
    )  # fmt: skip
    table = PotentialTable(plan_lacbed(cr, [50.0], size=16, convergence_sample=0))
    u_true = tf * table.ug(tb, (2, 0, 0)).real
    ug = res.parameters["Ug:200"]
    err = ug["U_g"][0] / u_true - 1
    assert abs(err) < 0.005
    assert ug["U_g_uncertainty"] / abs(u_true) < 0.004
    for el in ("Ga", "As"):
        assert abs(res.parameters[f"B:{el}"]["value"] / tb[el] - 1) < 0.05
    assert abs(res.parameters["thickness"]["value"] - 120.0) < 1.0
    assert np.hypot(res.alignment.row - truth.row, res.alignment.col - truth.col) < 0.1
    assert res.settings["convergence_estimate"] < 0.005


# ---------------------------------------------------------------------------- bad inputs
def test_thickness_range_missing_the_specimen(si, si_image):
    with pytest.raises(LacbedError, match="edge of the thickness range"):
        refine(Experiment(si_image, SI_CAL), si, thickness_range=(40, 100))


def test_bad_experiment_objects(si):
    with pytest.raises(LacbedError, match="2-D image"):
        refine(Experiment(np.ones((3, 40, 40)), SI_CAL), si)
    img = np.ones(SHAPE)
    img[3, 3] = np.nan
    with pytest.raises(LacbedError, match="NaN"):
        refine(Experiment(img, SI_CAL), si)
    with pytest.raises(SettingsError, match="calibration"):
        refine(Experiment(np.ones(SHAPE), 0.0), si)


def test_not_a_disc(si):
    rng = np.random.default_rng(3)
    with pytest.raises(LacbedError, match="LACBED disc"):
        refine(Experiment(np.full(SHAPE, 5.0), SI_CAL), si)
    noise = rng.poisson(1000, SHAPE).astype(float)
    with pytest.raises(LacbedError, match="LACBED disc"):
        refine(Experiment(noise, SI_CAL), si, thickness_range=(50, 300))
    # a round disc of smooth random texture: found as a disc, but no simulation matches it
    rr, cc = np.indices(SHAPE)
    from scipy.ndimage import gaussian_filter

    texture = 1000 + 300 * gaussian_filter(rng.standard_normal(SHAPE), 1.5)
    disc = np.where(np.hypot(rr - 19.5, cc - 19.5) < 17, texture, 50.0)
    with pytest.raises(LacbedError, match="is not a LACBED disc of Si"):
        refine(Experiment(disc, SI_CAL), si, thickness_range=(50, 300))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"thickness_range": (300, 50)}, "thickness range"),
        ({"fit": "orientation"}, "give a thickness"),
        ({"fit": "orientation", "thickness": 10.0}, "inside the thickness range"),
        ({"start": {"B:Xx": 1.0}}, "unknown starting values"),
        ({"precision": "half"}, "precision"),
    ],
)
def test_bad_settings(si, si_image, kwargs, match):
    with pytest.raises(SettingsError, match=match):
        refine(Experiment(si_image, SI_CAL), si, **kwargs)


# ------------------------------------------------------------------------------------ I/O
def test_reading_formats(tmp_path, si_image):
    import tifffile
    from matplotlib.image import imsave

    np.save(tmp_path / "e.npy", si_image)
    tifffile.imwrite(tmp_path / "e.tif", si_image.astype(np.float32))
    imsave(tmp_path / "e.png", si_image, cmap="gray")
    for name in ("e.npy", "e.tif"):
        exp = load_experiment(tmp_path / name, calibration=0.45, calibration_unit="1/nm")
        assert np.allclose(exp.image, si_image, rtol=1e-6)
        assert exp.calibration == pytest.approx(0.045)
        assert exp.calibration_source == "option"
    # an ImageJ TIFF carries its calibration (pixels per unit, and the unit)
    tifffile.imwrite(
        tmp_path / "cal.tif", si_image.astype(np.float32), imagej=True,
        resolution=(1 / 0.45, 1 / 0.45), metadata={"unit": "1/nm"},
    )  # fmt: skip
    cal = load_experiment(tmp_path / "cal.tif")
    assert cal.calibration == pytest.approx(0.045, rel=1e-6)
    assert cal.calibration_source == "metadata"
    with pytest.raises(LacbedError, match="no reciprocal-space calibration"):
        load_experiment(tmp_path / "e.tif")
    png = load_experiment(tmp_path / "e.png", calibration=0.045).image
    assert png.shape == SHAPE and np.corrcoef(png.ravel(), si_image.ravel())[0, 1] > 0.99


def test_calibration_units_and_metadata():
    lam = 0.02508  # 200 kV [Å]
    assert calibration_to_inv_angstrom(0.1, "mrad", lam) == pytest.approx(1e-4 / lam)
    assert calibration_to_inv_angstrom(0.5, "1/nm", lam) == pytest.approx(0.05)
    axes = [
        {"name": "y", "scale": 0.5, "units": "1/nm"},
        {"name": "x", "scale": 0.5, "units": "1/nm"},
    ]
    assert calibration_from_axes(axes, lam) == pytest.approx(0.05)
    assert calibration_from_axes([{"scale": 2.0, "units": "nm"}] * 2, lam) is None
    assert calibration_from_axes([{"scale": 1.0, "units": ""}] * 2, lam) is None
    with pytest.raises(LacbedError, match="unit"):
        calibration_to_inv_angstrom(1.0, "furlong", lam)
    with pytest.raises(LacbedError, match="> 0"):
        calibration_to_inv_angstrom(-1.0, "1/A", lam)


def test_reading_errors(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((3, 20, 20)))
    np.save(tmp_path / "flat.npy", np.zeros((20, 20)))
    (tmp_path / "e.txt").write_text("1 2 3")
    (tmp_path / "e.dm3").write_bytes(b"\0" * 16)
    with pytest.raises(LacbedError, match="cannot read the Gatan file e.dm3"):
        load_experiment(tmp_path / "e.dm3")
    with pytest.raises(LacbedError, match="2-D"):
        load_experiment(tmp_path / "cube.npy", calibration=0.05)
    with pytest.raises(LacbedError, match="no reciprocal-space calibration"):
        load_experiment(tmp_path / "flat.npy")
    with pytest.raises(LacbedError, match="must be one of"):
        load_experiment(tmp_path / "e.txt", calibration=0.05)
    with pytest.raises(FileNotFoundError):
        load_experiment(tmp_path / "missing.npy", calibration=0.05)


# ------------------------------------------------------------------------------ CLI, outputs
def test_cli_writes_report_cif_and_figure(tmp_path, si_image, capsys):
    from lacbed.cli import main
    from lacbed.crystal.cif import read_cif

    np.save(tmp_path / "exp.npy", si_image)
    run = tmp_path / "RUN"
    with pytest.raises(SystemExit) as ex:
        main(["refine", str(tmp_path / "exp.npy"), str(example_path("Si")), "-o", str(run),
              "--calibration", str(SI_CAL), "--thickness-range", "50", "300",
              "--strong-beams", "30"])  # fmt: skip
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"thickness = 1[45]\d\.\d+ ± ", out)
    assert re.search(r"convergence estimate of the fitted model: Z = \d\.\d+ %", out)
    report = json.loads((run / "report.json").read_text())
    assert report["settings"]["strong_beams"] == 30
    assert 0 < report["settings"]["convergence_estimate"] < 0.005
    assert abs(report["parameters"]["thickness"]["value"] - SI_T) < 1.5
    assert {"alignment", "alignment_uncertainty", "z", "history", "engine_calls"} <= set(report)
    assert (run / "refine.png").stat().st_size > 10_000
    cif_text = (run / "refined.cif").read_text()
    assert "_lacbed_refine_thickness_nm" in cif_text
    assert read_cif(run / "refined.cif").formula == "Si"


def test_felix_inp_settings_and_their_precedence(tmp_path):
    """--felix-inp: lacbed defaults < felix.inp < explicit options; [001] only; one-line errors."""
    from lacbed.cli.refine import _settings

    inp = Path(__file__).parents[1] / "src" / "lacbed" / "examples" / "felix" / "felix.inp"
    s = _settings(None, voltage=None, thickness_range=None, strong_beams=None)
    assert s == {"voltage_kv": 200.0, "thickness_range": (20.0, 400.0), "strong_beams": None,
                 "voltage_source": "the default 200 kV"}  # fmt: skip
    s = _settings(inp, voltage=None, thickness_range=None, strong_beams=None)
    assert s["voltage_source"] == "felix.inp" and "felix_beams_raised" not in s
    # the bundled felix.inp: 200 kV, IMinStrongBeams 60, RgLimit 2.5, Kirkland (method 0),
    # IAbsorbFLAG 2 (Bird-King) with RAbsorptionPer 7.8, thicknesses 500-1500 Å
    assert s["voltage_kv"] == 200.0 and s["strong_beams"] == 60 and s["max_g"] == 2.5
    assert (s["scattering"], s["absorption"], s["kappa"]) == ("kirkland", "bird-king", 0.078)
    assert s["thickness_range"] == (50.0, 150.0) and s["felix"].source.endswith("felix.inp")
    s = _settings(inp, voltage=300.0, thickness_range=(40.0, 90.0), strong_beams=25)
    assert (s["voltage_kv"], s["thickness_range"], s["strong_beams"]) == (300.0, (40.0, 90.0), 25)
    assert s["voltage_source"] == "--voltage"
    # a U_g fit takes at least UG_STRONG_BEAMS (80) from a felix.inp, unless given explicitly
    s = _settings(inp, voltage=None, thickness_range=None, strong_beams=None, fit="Ug:200")
    assert s["strong_beams"] == 80 and s["felix_beams_raised"]
    s = _settings(inp, voltage=None, thickness_range=None, strong_beams=25, fit="Ug:200")
    assert s["strong_beams"] == 25 and "felix_beams_raised" not in s
    other = tmp_path / "felix.inp"
    text = inp.read_text().replace("IIncidentBeamDirection    = [0,0,1]",
                                   "IIncidentBeamDirection    = [1,1,0]")  # fmt: skip
    other.write_text(text.replace("INormalDirection          = [0,0,1]",
                                  "INormalDirection          = [1,1,0]"))  # fmt: skip
    with pytest.raises(SettingsError, match=r"\[001\] patterns only.*\[1, 1, 0\]"):
        _settings(other, voltage=None, thickness_range=None, strong_beams=None)
    with pytest.raises(FileNotFoundError):
        _settings(tmp_path / "missing.inp", voltage=None, thickness_range=None, strong_beams=None)


def test_cli_felix_inp_reaches_the_fit_and_the_report(tmp_path, si_image):
    """The felix.inp's physics settings are those of the fit and are recorded in report.json."""
    from lacbed.cli import main

    text = (Path(__file__).parents[1] / "src/lacbed/examples/felix/felix.inp").read_text()
    for key, value in (("IScatterFactorMethodFLAG", "2"), ("IAbsorbFLAG", "1"),
                       ("RAbsorptionPer", "5.0"), ("RgLimit", "2.0"),
                       ("RInitialThickness", "500.0"), ("RFinalThickness", "3000.0"),
                       ("IMinStrongBeams", "30")):  # fmt: skip
        text = re.sub(rf"^{key}\s*=.*$", f"{key} = {value}", text, flags=re.M)
    inp = tmp_path / "felix.inp"
    inp.write_text(text)
    np.save(tmp_path / "exp.npy", si_image)
    run = tmp_path / "RUN"
    with pytest.raises(SystemExit) as ex:
        main(["refine", str(tmp_path / "exp.npy"), str(example_path("Si")), "-o", str(run),
              "--calibration", str(SI_CAL), "--felix-inp", str(inp), "--fit", "thickness",
              "--no-figure"])  # fmt: skip
    assert ex.value.code == 0
    rep = json.loads((run / "report.json").read_text())["settings"]
    # every one of these differs from lacbed's own default (Kirkland, Bird-King, adaptive, ...)
    assert (rep["scattering"], rep["absorption"], rep["kappa"]) == (
        "doyle-turner",
        "proportional",
        0.05,
    )
    # the pool's largest |g| [1/Å]: within RgLimit 2.0 (Si's default pool reaches 2.97)
    assert 1.9 < rep["max_g_pool"] <= 2.0 and rep["strong_beams"] == 30
    assert rep["thickness_range"] == [50.0, 300.0]
    assert rep["felix_inp"]["values"]["IAbsorbFLAG"] == "1"


def test_cli_start_values():
    from lacbed.cli.refine import parse_start

    assert parse_start(["B:Ga=0.6", "Ug:200=1.1;B:As=0.5"]) == {
        "B:Ga": 0.6, "Ug:200": 1.1, "B:As": 0.5,
    }  # fmt: skip
    with pytest.raises(SettingsError, match="NAME=VALUE"):
        parse_start(["B:Ga"])
    with pytest.raises(SettingsError, match="NAME=VALUE"):
        parse_start(["B:Ga=x"])


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    from lacbed.cli import main

    np.save(tmp_path / "exp.npy", np.zeros((32, 32)))
    with pytest.raises(SystemExit) as ex:
        main(["refine", str(tmp_path / "exp.npy"), str(example_path("Si")), "-o", str(tmp_path)])
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "calibration" in err
    with pytest.raises(SystemExit) as ex:
        main(["refine", str(tmp_path / "exp.npy"), str(example_path("Si")), "-o", str(tmp_path),
              "--calibration", "0.05", "--fit", "thickness,colour"])  # fmt: skip
    assert ex.value.code == 2
    assert "unknown --fit item" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- docs
def test_docs_worked_example_runs(tmp_path, monkeypatch):
    """The python blocks of docs/refine.md run in order and their assertions hold."""
    text = (Path(__file__).parents[1] / "docs" / "refine.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for code in blocks:
        exec(compile(code, "docs/refine.md", "exec"), scope)  # noqa: S102


def test_cli_refuses_an_output_that_is_a_file_before_fitting(tmp_path, si_image, capsys):
    import time

    from lacbed.cli import main

    np.save(tmp_path / "exp.npy", si_image)
    run = tmp_path / "RUN"
    run.write_text("not a folder")
    t0 = time.process_time()
    with pytest.raises(SystemExit) as ex:
        main(["refine", str(tmp_path / "exp.npy"), str(example_path("Si")), "-o", str(run),
              "--calibration", str(SI_CAL)])  # fmt: skip
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a folder" in err
    assert time.process_time() - t0 < 5  # no fit was run (a fit takes tens of seconds)
    assert run.read_text() == "not a folder"


def test_report_json_is_strict_json_with_nan_as_null(tmp_path):
    from lacbed.refine.report import _finite

    rec = {"a": float("nan"), "b": [1.0, float("inf")], "c": np.array([np.nan, 2.0]), "d": "x"}
    text = json.dumps(_finite(rec), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": [None, 2.0], "d": "x"}


@pytest.mark.parametrize(
    ("fit", "strong_beams", "used"),
    [("thickness,Ug:200", None, 80), ("thickness,B", None, None), ("thickness,Ug:200", 90, 90)],
)
def test_ug_fits_plan_more_beams(monkeypatch, fit, strong_beams, used):
    # the plans of a U_g fit use UG_STRONG_BEAMS unless the caller fixes the budget
    import lacbed.simulate.plan as plan_mod

    seen = []

    class Planned(Exception):
        pass

    def spy(crystal, thickness_nm, **kw):
        seen.append((kw.get("budget_factor", 1.0), kw.get("strong_beams")))
        raise Planned

    monkeypatch.setattr(plan_mod, "plan_lacbed", spy)
    cr = load_crystal(example_path("GaAs"))
    yy, xx = np.indices((40, 40))
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 < 15**2
    img = np.where(disc, 2.0 + np.cos(0.7 * xx), 1.0)
    with pytest.raises(Planned):
        refine(Experiment(img, 0.01), cr, fit=fit, thickness_range=(50, 300),
               strong_beams=strong_beams)  # fmt: skip
    assert seen == [(1.0, used)]
