"""The physics channel (lacbed.ml.physics): two-beam strengths and Bragg lines where the engine
puts them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lacbed.crystal import example_path, read_cif
from lacbed.metrics import z_score
from lacbed.ml.physics import _pixel_lorentzian, bragg_line_map, two_beam_integrated_intensity

# Si at 64 px: Z of the coarse input (32 px, upsampled) against the converged engine, measured
# 0.61 % at 50 nm and 13.0 % at 100 nm (the 100 nm fringes are finer than 32 px resolve), the same
# with 32 and with 96 strong beams (2026-12-07); 3x.
COARSE_Z_SI_64PX = (0.018, 0.39)


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


@pytest.fixture(scope="module")
def crystal_data(tmp_path_factory):
    """A 32-px working dataset of the bundled examples with their crystal records (fake
    patterns: the engine is not needed to test the plumbing)."""
    from lacbed.crystal import example_names
    from lacbed.crystal.serialise import crystal_to_record
    from lacbed.dataset.splits import split_of_group
    from lacbed.dataset.store import DatasetWriter
    from lacbed.scattering import projected_potential

    names = example_names()
    want = {"train": len(names) - 4, "val": 2, "test": 2}
    groups, i = [], 0
    while sum(want.values()):
        g = f"fam-{i}"
        if want[split_of_group(g)] > 0:
            want[split_of_group(g)] -= 1
            groups.append(g)
        i += 1
    path = tmp_path_factory.mktemp("phys") / "data"
    settings = {"settings": {"voltage_kv": 200.0, "half_width": None, "scattering": "kirkland"}}
    w = DatasetWriter(
        path, size=32, thicknesses_nm=(50.0, 100.0), settings=settings, n_slots=len(names)
    )
    rng = np.random.default_rng(0)
    for slot, (name, g) in enumerate(zip(names, groups, strict=True)):
        c = read_cif(example_path(name))
        meta = {
            "formula": c.formula,
            "space_group_number": c.space_group_number,
            "a": c.a,
            "group": g,
            "crystal": crystal_to_record(c),
        }
        pats = rng.random((2, 32, 32)).astype(np.float32)
        w.write_item(name, slot, projected_potential(c, 32), pats, meta)
    w.finalize()
    return path


def test_physics_channel_end_to_end(crystal_data, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("lightning")
    import lacbed.ml.physics as physics
    from lacbed.dataset.store import open_dataset
    from lacbed.errors import LacbedError
    from lacbed.ml.config import ModelConfig, Normalisation, TrainConfig
    from lacbed.ml.data import PatternSamples, load_split
    from lacbed.ml.evaluate import evaluate
    from lacbed.ml.model import load_surrogate, run_model
    from lacbed.ml.predict import predict_crystals
    from lacbed.ml.training import train

    torch.set_num_threads(1)
    monkeypatch.setenv("LACBED_CACHE_DIR", str(tmp_path / "cache"))
    ds = open_dataset(crystal_data)
    arr = load_split(ds, "val", thickness_index=np.array([0, 1]), physics=True)
    assert arr.physics.shape == (len(arr), 2, 32, 32)
    c = read_cif(example_path(arr.keys[0]))
    np.testing.assert_array_equal(arr.physics[0, 1], bragg_line_map(c, 100.0, size=32))
    # second load: every map from the cache, none recomputed
    monkeypatch.setattr(physics, "bragg_line_map", lambda *a, **k: 1 / 0)
    again = load_split(ds, "val", thickness_index=np.array([0, 1]), physics=True)
    np.testing.assert_array_equal(again.physics, arr.physics)
    monkeypatch.undo()
    monkeypatch.setenv("LACBED_CACHE_DIR", str(tmp_path / "cache"))
    item = PatternSamples(arr, Normalisation(), augment="all")[1]  # structure 0, 100 nm
    assert item["x"].shape == (2, 32, 32)
    # the map channel moves with the target (4mm op on the pattern grid), never shifted
    from lacbed.ml.augment import N_OPS, op_on_pattern

    m = torch.from_numpy(arr.physics[0, 1])
    assert any(torch.equal(item["x"][1], op_on_pattern(m, k)) for k in range(N_OPS))

    mcfg = ModelConfig(
        "unet",
        size=32,
        latent=16,
        width=4,
        depth=2,
        conditioned=True,
        symmetrize=True,
        physics_channel=True,
    )
    res = train(
        crystal_data,
        tmp_path / "run",
        model="unet",
        model_config=mcfg,
        config=TrainConfig(epochs=1, batch_size=4),
        tensorboard=False,
    )
    model, info = load_surrogate(res.model_path)
    assert model.config.physics_channel and model.config.in_channels == 2
    ev = evaluate(model, ds)["val"]
    assert ev.arrays.physics is not None and np.all(np.isfinite(ev.z))
    pred = predict_crystals([c], model=model, info=info, thickness_nm=100.0)
    assert pred.shape == (1, 32, 32) and np.all(np.isfinite(pred))
    with pytest.raises(LacbedError, match="physics map"):
        run_model(model, arr.potential[:1], thickness_nm=100.0, a=[c.a])
    with pytest.raises(Exception, match="spectral"):
        ModelConfig("spectral", size=32, physics_channel=True)


def test_fewbeam_input_is_the_engine_at_16_beams(tmp_path):
    from lacbed.ml.physics import FEWBEAM_STRONG, physics_maps
    from lacbed.simulate import simulate_lacbed

    si = read_cif(example_path("Si"))
    got = physics_maps([si], [50.0, 100.0], size=16, kind="fewbeam", cache=tmp_path)
    want = simulate_lacbed(si, [50.0, 100.0], size=16, strong_beams=FEWBEAM_STRONG, n_jobs=1)
    # the map skips the convergence estimate; the intensities are the same to the last bit
    assert want.settings["convergence_estimate"] is not None
    np.testing.assert_array_equal(got[0], want.intensities.astype(np.float32))
    again = physics_maps([si], [50.0, 100.0], size=16, kind="fewbeam", cache=tmp_path)
    np.testing.assert_array_equal(again, got)  # from the cache
    bragg = physics_maps([si], [50.0, 100.0], size=16, kind="bragg", cache=tmp_path)
    assert not np.array_equal(bragg, got)  # kinds never share a cache entry
    with pytest.raises(ValueError, match="kind"):
        physics_maps([si], [50.0], size=16, kind="felix")


def test_upsample_pattern_keeps_the_field():
    """Bilinear resampling on pixel centres: a linear ramp is exact inside the outermost fine
    pixels (which are extended), a constant stays constant, a same-size call is a copy."""
    from lacbed.ml.physics import upsample_pattern

    n = 8
    xc = (np.arange(n) + 0.5) / n  # coarse pixel centres over a unit field
    xf = (np.arange(2 * n) + 0.5) / (2 * n)
    ramp = np.broadcast_to(3 * xc[None, :] + 1, (n, n))
    up = upsample_pattern(np.stack([ramp, ramp.T]), 2 * n)
    assert up.shape == (2, 2 * n, 2 * n)
    np.testing.assert_allclose(
        up[0, :, 1:-1], np.broadcast_to(3 * xf[1:-1] + 1, (2 * n, 2 * n - 2))
    )
    np.testing.assert_allclose(up[1], up[0].T)
    np.testing.assert_allclose(up[0, :, 0], 3 * xc[0] + 1)  # edge: the coarse edge value
    np.testing.assert_allclose(upsample_pattern(np.full((4, 4), 2.5), 12), 2.5)
    np.testing.assert_array_equal(upsample_pattern(ramp, n), ramp)


def test_coarse_input_is_the_engine_at_half_the_pixels(tmp_path):
    from lacbed.metrics import z_score
    from lacbed.ml.physics import COARSE_STRONG, physics_maps, upsample_pattern
    from lacbed.simulate import simulate_lacbed

    si = read_cif(example_path("Si"))
    ts = [50.0, 100.0]
    got = physics_maps([si], ts, size=64, kind="coarse", cache=tmp_path)
    run = simulate_lacbed(
        si, ts, size=32, strong_beams=COARSE_STRONG, convergence_sample=0.0, n_jobs=1
    )
    assert run.settings.get("convergence_estimate") is None  # no estimate is paid for
    want = upsample_pattern(run.intensities, 64).astype(np.float32)
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(
        physics_maps([si], ts, size=64, kind="coarse", cache=tmp_path), got
    )
    threaded = physics_maps([si], ts, size=64, kind="coarse", n_jobs=2)  # no cache: solved
    np.testing.assert_array_equal(threaded, got)  # worker threads do not change the pattern
    fewbeam = physics_maps([si], ts, size=64, kind="fewbeam", cache=tmp_path)
    assert not np.array_equal(fewbeam, got)  # kinds never share a cache entry
    full = simulate_lacbed(si, ts, size=64, n_jobs=1).intensities  # the converged default
    z = [float(z_score(got[0, j], full[j])) for j in range(2)]
    assert z[0] < COARSE_Z_SI_64PX[0] and z[1] < COARSE_Z_SI_64PX[1], z


def test_coarse_maps_are_the_coarse_input_with_the_engines_estimate():
    """coarse_maps gives the same pixels as physics_maps(kind='coarse') (the estimate re-solves
    a sample of pixels with twice the beams and leaves the intensities alone) and the engine's
    own estimate per thickness, as simulate_lacbed reports it."""
    from lacbed.ml.physics import COARSE_STRONG, coarse_maps, physics_maps
    from lacbed.simulate import simulate_lacbed

    cu = read_cif(example_path("Cu"))
    ts = [50.0, 150.0]
    maps, conv = coarse_maps([cu], ts, size=32, strong_beams=16)
    np.testing.assert_array_equal(
        maps, physics_maps([cu], ts, size=32, kind="coarse", strong_beams=16)
    )
    run = simulate_lacbed(cu, ts, size=16, strong_beams=16, n_jobs=1)
    np.testing.assert_array_equal(conv[0], run.settings["convergence_estimate_per_thickness"])
    assert conv.shape == (1, 2) and np.all(conv > 0)  # 16 beams: not converged
    assert coarse_maps([cu], ts, size=32)[1][0, 0] < conv[0, 0]  # 96 beams: closer
    assert COARSE_STRONG == 96


SMALL_FCC_CIF = """data_small
_cell_length_a 2.2
_cell_length_b 2.2
_cell_length_c 2.2
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Al1 Al 0 0 0
"""


def test_coarse_input_of_a_small_cell_takes_its_whole_pool(tmp_path):
    """A cell whose [001] pool holds fewer beams than COARSE_STRONG is solved with all of them
    (a fixed budget above the pool is an error for the engine itself)."""
    from lacbed.errors import SettingsError
    from lacbed.ml.physics import COARSE_STRONG, physics_maps, upsample_pattern
    from lacbed.simulate import simulate_lacbed
    from lacbed.simulate.plan import beam_pool_size

    path = tmp_path / "small.cif"
    path.write_text(SMALL_FCC_CIF)
    c = read_cif(path)
    n = beam_pool_size(c)
    assert 2 <= n < COARSE_STRONG, n  # 37 beams for this F-centred 2.2 Å cell
    with pytest.raises(SettingsError, match="exceeds the beam pool"):
        simulate_lacbed(c, [50.0], size=16, strong_beams=COARSE_STRONG, n_jobs=1)
    got = physics_maps([c], [50.0, 100.0], size=32, kind="coarse")
    run = simulate_lacbed(c, [50.0, 100.0], size=16, strong_beams=n, convergence_sample=0.0,
                          n_jobs=1)  # fmt: skip
    np.testing.assert_array_equal(got[0], upsample_pattern(run.intensities, 32).astype(np.float32))


def test_residual_model_starts_from_the_physics_run():
    torch = pytest.importorskip("torch")
    from lacbed.errors import SettingsError
    from lacbed.ml.config import ModelConfig, Normalisation
    from lacbed.ml.data import standardize_pattern
    from lacbed.ml.model import run_model
    from lacbed.ml.training import make_surrogate

    cfg = ModelConfig(
        "unet",
        size=32,
        latent=8,
        width=4,
        depth=2,
        conditioned=True,
        physics_channel=True,
        physics_kind="fewbeam",
        residual=True,
    )
    model = make_surrogate(cfg, Normalisation(), seed=0)  # its output layer starts at zero,
    assert not torch.any(model.net.head[-1].weight)  # so the prediction is the physics run
    rng = np.random.default_rng(0)
    fewbeam = rng.random((2, 32, 32))
    pred = run_model(
        model, rng.uniform(30, 900, (2, 32, 32)), thickness_nm=100.0, a=[4.0, 5.0], physics=fewbeam
    )
    np.testing.assert_allclose(pred, standardize_pattern(fewbeam), atol=1e-5)  # float32
    with pytest.raises(SettingsError, match="residual"):
        ModelConfig("unet", size=32, physics_channel=True, residual=True)  # bragg: no residual
    with pytest.raises(SettingsError, match="physics channel"):
        ModelConfig("unet", size=32, physics_channel=True, physics_kind="felix")


def test_multi_fidelity_training_end_to_end(crystal_data, tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("lightning")
    from lacbed.cli import main
    from lacbed.ml.model import load_surrogate

    monkeypatch.setenv("LACBED_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "mf"
    argv = [
        "train",
        str(crystal_data),
        "-o",
        str(run),
        "--model",
        "unet",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--physics-channel",
        "--physics-kind",
        "fewbeam",
        "--residual",
        "--threads",
        "1",
        "--no-progress",
    ]
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 0, capsys.readouterr().err
    model, _ = load_surrogate(run)
    assert model.config.physics_input == "fewbeam" and model.config.residual
    out = tmp_path / "p.npy"
    try:
        main(
            [
                "predict",
                str(example_path("Cu")),
                "--model",
                str(run),
                "--thickness",
                "75",
                "-o",
                str(out),
                "--threads",
                "1",
            ]
        )
    except SystemExit as exc:
        assert exc.code == 0, capsys.readouterr().err
    assert np.load(out).shape == (32, 32)
    assert not (tmp_path / "p.errors.json").exists()  # no calibration yet: no estimate
    # `lacbed calibrate` gives it an error estimate that predict finds beside the model file
    # (train split and 2 folds: the toy dataset has 2 val structures)
    cal = ["calibrate", str(run), "--data", str(crystal_data), "--split", "train", "--folds", "2"]
    try:
        main([*cal, "--threads", "1"])
    except SystemExit as exc:
        assert exc.code == 0, capsys.readouterr().err
    assert "Spearman" in capsys.readouterr().out and (run / "model.error.json").is_file()
    args = ["predict", str(example_path("Cu")), "--model", str(run), "--thickness", "75",
            "-o", str(out), "--threads", "1"]  # fmt: skip
    try:
        main([*args, "--max-error", "2"])
    except SystemExit as exc:
        assert exc.code == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "p.errors.json").read_text())["items"]
    assert rows[0]["source"] == "hybrid" and rows[0]["estimated_z"] is not None
    blob = json.loads((run / "model.error.json").read_text())
    blob["calibration"]["model_sha256"] = "0" * 64  # made for another model file
    (run / "model.error.json").write_text(json.dumps(blob))
    out.unlink()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code != 0 and "calibrated for another" in err and not out.exists()
    try:
        main(
            ["train", str(crystal_data), "-o", str(tmp_path / "x"), "--residual", "--threads", "1"]
        )
        code = 0
    except SystemExit as exc:
        code = exc.code
    assert code == 2 and "need --physics-channel" in capsys.readouterr().err


def test_models_keep_the_beams_of_the_input_they_were_trained_on(tmp_path):
    """A model file records its engine input's strong beams; one from before that was recorded
    is given the old defaults (coarse 32, fewbeam 16), and a run of other beams is not resumed."""
    from lacbed.errors import SettingsError
    from lacbed.ml.physics import LEGACY_COARSE_STRONG, physics_beams, physics_maps, recorded_beams
    from lacbed.ml.training import _check_same_data

    assert physics_beams("coarse") == 96 and physics_beams("bragg") is None
    assert recorded_beams("coarse", {}) == LEGACY_COARSE_STRONG == 32
    assert recorded_beams("fewbeam", {}) == 16 and recorded_beams(None, {}) is None
    assert recorded_beams("coarse", {"physics_beams": 96}) == 96
    si = read_cif(example_path("Si"))
    m32 = physics_maps([si], [100.0], size=32, kind="coarse", strong_beams=32, cache=tmp_path)
    m96 = physics_maps([si], [100.0], size=32, kind="coarse", cache=tmp_path)
    assert not np.array_equal(m32, m96)  # other beams, other cache entry
    saved = {"model": {"physics_channel": True, "physics_kind": "coarse"},
             "data": {"n_train_structures": 5, "n_val_structures": 2}}  # fmt: skip
    with pytest.raises(SettingsError, match="32 strong beams"):
        _check_same_data(tmp_path, saved, 5, 2)
    saved["data"]["physics_beams"] = 96
    _check_same_data(tmp_path, saved, 5, 2)  # the same beams: resumes
