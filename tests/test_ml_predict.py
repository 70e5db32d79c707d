"""``lacbed predict`` at several thicknesses, with the engine where the ensemble's error is large.

Untrained 32-pixel models (random weights, saved as model files) stand in for trained ones: what
is tested is the machinery (thicknesses, sources, the engine fallback and its oracle), not the
accuracy. The engine runs at 32 px (~0.3 s per call).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from lacbed.cli import main  # noqa: E402
from lacbed.crystal import read_cif  # noqa: E402
from lacbed.errors import SettingsError  # noqa: E402
from lacbed.ml.config import ModelConfig, Normalisation  # noqa: E402
from lacbed.ml.model import save_surrogate  # noqa: E402
from lacbed.ml.training import make_surrogate  # noqa: E402

CIF_DIR = Path(__file__).parent / "data" / "cif"
CIFS = [CIF_DIR / "si_origin2_icsd.cif", CIF_DIR / "cu_no_adp.cif"]
SIZE = 32
THICK = (50.0, 100.0)  # the models' "training" thicknesses (conditioned: anything in between)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # two torch threads spin-wait on a busy 2-core machine
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Three model files (seeds 0, 1, 2), a calibrated and an uncalibrated ensemble of them."""
    from lacbed.ml.uncertainty import Ensemble

    d = tmp_path_factory.mktemp("predict")
    cfg = ModelConfig("cvae", size=SIZE, latent=8, width=4, conditioned=True, symmetrize=True)
    data = {"thicknesses_nm": list(THICK), "engine_settings": {"fake": True}}
    paths = []
    for seed in (0, 1, 2):
        m = make_surrogate(cfg, Normalisation(), seed=seed)
        paths.append(save_surrogate(m, d / f"m{seed}.pt", data=data))
    ens = Ensemble(paths, {"slope": 2.0, "spearman": 0.5, "n": 6, "split": "val"})
    raw = Ensemble(paths, {})
    return {
        "single": paths[0],
        "ensemble": ens.save(d / "ens.json"),
        "uncalibrated": raw.save(d / "raw.json"),
    }


def _cli(argv, capsys) -> tuple[int, str, str]:
    try:
        main([str(a) for a in [*argv, "--threads", 1]])
        code = 0
    except SystemExit as exc:
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _oracle(cif: Path, thicknesses) -> np.ndarray:
    """The engine called directly with the build defaults, clipped to [0, 1], standardised."""
    from lacbed.simulate import simulate_lacbed

    pat = simulate_lacbed(
        read_cif(cif),
        list(thicknesses),
        size=SIZE,
        voltage_kv=200.0,
        scattering="kirkland",
        absorption="bird-king",
        kappa=0.078,
        solver="fast",
        n_jobs=1,
    )
    p = np.clip(np.asarray(pat.intensities, dtype=np.float64), 0.0, 1.0)
    p = p.reshape(len(thicknesses), SIZE, SIZE)
    p = p - p.mean(axis=(-2, -1), keepdims=True)
    return p / np.sqrt((p**2).mean(axis=(-2, -1), keepdims=True))


def test_every_thickness_equals_a_single_thickness_predict(models, tmp_path, capsys):
    from lacbed.ml.predict import load_model, predict_crystals, predict_series
    from lacbed.ml.uncertainty import Ensemble, predict_crystals_ensemble

    crystals = [read_cif(c) for c in CIFS]
    ts = [50.0, 75.0, 100.0]
    res = predict_series(crystals, ts, model=models["single"])
    assert res.patterns.shape == (2, 3, SIZE, SIZE) and res.patterns.dtype == np.float32
    assert res.spread is None and set(res.source.ravel()) == {"surrogate"}
    model, info = load_model(models["single"])
    for j, t in enumerate(ts):
        one = predict_crystals(crystals, model=model, info=info, thickness_nm=t)
        np.testing.assert_allclose(res.patterns[:, j], one, rtol=0, atol=1e-6)

    ens = Ensemble.load(models["ensemble"])
    er = predict_series(crystals, ts, model=ens)
    for j, t in enumerate(ts):
        one = predict_crystals_ensemble(crystals, ens, thickness_nm=t)
        np.testing.assert_allclose(er.patterns[:, j], one.mean, rtol=0, atol=1e-6)
        np.testing.assert_allclose(er.spread[:, j], one.spread, rtol=1e-6)
        np.testing.assert_allclose(er.estimated_z[:, j], one.estimated_z, rtol=1e-6)

    # the CLI: `--thickness 50 75 100` after one flag; (n_cif, n_thickness, S, S)
    code, _, err = _cli(
        ["predict", *CIFS, "--model", models["single"], "--thickness", 50, 75, 100,
         "-o", tmp_path / "p.npy"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), res.patterns, rtol=0, atol=1e-6)
    # one CIF at several thicknesses stays 4-D; one thickness keeps the old shapes
    code, _, err = _cli(
        ["predict", CIFS[0], "--model", models["single"], "--thickness", "50,100",
         "-o", tmp_path / "one.npy"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert np.load(tmp_path / "one.npy").shape == (1, 2, SIZE, SIZE)
    code, _, err = _cli(
        ["predict", CIFS[0], "--model", models["single"], "--thickness", 75,
         "-o", tmp_path / "flat.npy"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    flat = np.load(tmp_path / "flat.npy")  # another batch: float32 convolutions differ ~3e-6
    np.testing.assert_allclose(flat, res.patterns[0, 1], rtol=0, atol=1e-5)
    # a thickness outside the model's range, or twice the same: one line, nothing written
    for bad, words in (([50, 200], "outside the model's training range"), ([50, 50], "distinct")):
        out = tmp_path / "bad.npy"
        code, _, err = _cli(
            ["predict", *CIFS, "--model", models["single"], "--thickness", *bad, "-o", out],
            capsys,
        )
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1
        assert not out.exists()


def test_png_is_a_grid_of_cifs_by_thicknesses(models, tmp_path, capsys):
    from lacbed.plotting.ml import plot_predictions

    pred = np.random.default_rng(0).normal(size=(2, 3, 16, 16))
    src = np.array([["surrogate", "engine", "surrogate"], ["engine"] * 3], dtype=object)
    fig = plot_predictions(
        pred, ["Si", "Cu"], [5.431, 3.615], thickness_nm=[50, 75, 100], sources=src
    )
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 6 and len(fig.axes) == 12  # 2 rows x 3 columns, each with a colour bar
    titles = [ax.get_title() for ax in panels]
    assert titles[0] == "Si: t = 50 nm (surrogate)" and titles[1] == "Si: t = 75 nm (engine)"
    assert titles[5] == "Cu: t = 100 nm (engine)"
    np.testing.assert_array_equal(panels[4].get_images()[0].get_array(), pred[1, 1])
    out = tmp_path / "p.png"
    code, _, err = _cli(
        ["predict", *CIFS, "--model", models["single"], "--thickness", 50, 100, "-o", out],
        capsys,
    )
    assert code == 0, err
    from matplotlib.image import imread

    img = imread(out)
    assert img.shape[0] > 400 and img.shape[1] > 400  # two rows, two columns


def test_max_error_zero_runs_the_engine_for_every_pattern(models, tmp_path, capsys):
    out = tmp_path / "e.npy"
    code, text, err = _cli(
        ["predict", *CIFS, "--model", models["ensemble"], "--thickness", 50, 100,
         "--max-error", 0, "-o", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    got = np.load(out)
    assert got.shape == (2, 2, SIZE, SIZE)
    for i, cif in enumerate(CIFS):  # the exact oracle: the engine called directly
        np.testing.assert_allclose(got[i], _oracle(cif, THICK), rtol=0, atol=1e-6)  # float32
    errors = json.loads((tmp_path / "e.errors.json").read_text())
    assert errors["max_error"] == 0 and errors["thicknesses_nm"] == [50.0, 100.0]
    assert errors["engine_settings"]["size"] == SIZE
    assert "strong_beams" not in errors["engine_settings"]  # the converged default budget
    rows = errors["items"]
    assert [(r["cif"], r["thickness_nm"]) for r in rows] == [
        (str(c), t) for c in CIFS for t in THICK
    ]
    for r in rows:
        assert r["source"] == "engine" and r["estimated_z"] > 0
        assert r["estimated_z"] == pytest.approx(2.0 * r["spread"])
        assert 0 <= r["engine_convergence_estimate"] < 0.005 and r["engine_cpu_s"] > 0
        assert r["engine_thicknesses_nm"] == list(THICK)  # one call per CIF for both
    lines = [ln for ln in text.splitlines() if ln.startswith("engine instead")]
    assert len(lines) == 2 and "Si" in lines[0] and "estimated Z" in lines[0]
    assert "0 of 4 patterns from the network, 4 from the engine" in text


def test_max_error_between_the_estimates_replaces_only_those_above(models):
    from lacbed.ml.predict import predict_series

    crystals = [read_cif(c) for c in CIFS]
    plain = predict_series(crystals, THICK, model=models["ensemble"])
    est = plain.estimated_z
    z = float(np.median(est))
    res = predict_series(crystals, THICK, model=models["ensemble"], max_error=z, n_jobs=1)
    need = est > z
    assert need.any() and not need.all()
    np.testing.assert_array_equal(res.source == "engine", need)
    np.testing.assert_array_equal(res.patterns[~need], plain.patterns[~need])
    for i, cif in enumerate(CIFS):
        ts = [t for j, t in enumerate(THICK) if need[i, j]]
        if not ts:
            assert res.engine[i] is None
            continue
        assert res.engine[i]["thicknesses_nm"] == ts  # only the thicknesses that need it
        np.testing.assert_allclose(res.patterns[i, need[i]], _oracle(cif, ts), rtol=0, atol=1e-6)


def test_max_error_on_the_upper_bound_is_conservative(models, tmp_path, capsys):
    """--max-error-on upper90 compares estimate + q90 with the threshold: a threshold just above
    every estimate keeps them all, and the bound sends exactly those within q90 of it away."""
    from lacbed.ml.predict import predict_series
    from lacbed.ml.uncertainty import Ensemble

    crystals = [read_cif(c) for c in CIFS]
    base = Ensemble.load(models["ensemble"])  # spread-only: no 90 % bound
    est = predict_series(crystals, THICK, model=base).estimated_z
    q90 = float(est.max() - est.min()) / 2  # the bound moves half of the range over the line
    ens = Ensemble(base.members, {**base.calibration, "q90_residual": q90}).save(
        tmp_path / "ens90.json"
    )
    plain = predict_series(crystals, THICK, model=ens)
    z = float(plain.estimated_z.max()) + 1e-6
    kw = {"model": ens, "max_error": z, "n_jobs": 1}
    assert not np.any(predict_series(crystals, THICK, **kw).source == "engine")
    res = predict_series(crystals, THICK, max_error_on="upper90", **kw)
    need = plain.estimated_z + q90 > z
    assert q90 > 0 and need.any() and not need.all()
    np.testing.assert_array_equal(res.source == "engine", need)
    assert res.max_error_on == "upper90"
    np.testing.assert_allclose(res.upper90, plain.estimated_z + q90)
    out = tmp_path / "x.npy"
    code, text, err = _cli(["predict", *CIFS, "--model", ens, "--thickness", *THICK,
                            "--max-error", z, "--max-error-on", "upper90", "-o", out], capsys)  # fmt: skip
    assert code == 0, err
    assert "90 % bound on Z" in text and "on the upper90 bound" in text
    assert json.loads(out.with_suffix(".errors.json").read_text())["max_error_on"] == "upper90"
    out.unlink()
    out.with_suffix(".errors.json").unlink()
    args = ["predict", CIFS[0], "--model", ens, "--max-error", "0.1", "-o", out]
    code, _, err = _cli([*args, "--max-error-on", "median"], capsys)
    assert code == 2 and "estimate or upper90" in err and len(err.strip().splitlines()) == 1
    args[3] = models["ensemble"]  # no q90_residual in its calibration
    code, _, err = _cli([*args, "--max-error-on", "upper90"], capsys)
    assert code == 2 and "90 % bound" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_huge_max_error_runs_no_engine(models, tmp_path, capsys):
    args = ["predict", *CIFS, "--model", models["ensemble"], "--thickness", 50, 100]
    code, _, err = _cli([*args, "-o", tmp_path / "plain.npy"], capsys)
    assert code == 0, err
    code, text, err = _cli([*args, "--max-error", 2, "-o", tmp_path / "big.npy"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "big.npy"), np.load(tmp_path / "plain.npy"))
    rows = json.loads((tmp_path / "big.errors.json").read_text())["items"]
    assert len(rows) == 4 and {r["source"] for r in rows} == {"surrogate"}
    assert "engine instead" not in text and "4 of 4 patterns from the network" in text
    plain = json.loads((tmp_path / "plain.errors.json").read_text())
    assert plain["max_error"] is None and plain["engine_settings"] is None


@pytest.mark.parametrize(
    ("which", "z", "words"),
    [
        ("single", "0.05", "single model does not give"),
        (None, "5", "0.05 is 5 %"),  # the shipped model (an ensemble)
        ("uncalibrated", "0.05", "calibrated ensemble"),
        ("ensemble", "-0.01", "between 0 and 2"),
        ("ensemble", "nan", "between 0 and 2"),
        ("ensemble", "5", "0.05 is 5 %"),  # a user thinking in per cent
    ],
)
def test_max_error_bad_input_is_one_line(models, tmp_path, capsys, which, z, words):
    out = tmp_path / "x.npy"
    model = [] if which is None else ["--model", models[which]]
    code, _, err = _cli(["predict", CIFS[0], *model, "--max-error", z, "-o", out], capsys)
    assert code == 2 and words in err
    assert err.startswith("lacbed: error:") and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_engine_kwargs_take_the_training_settings_and_the_converged_budget():
    from lacbed.ml.model import ModelInfo
    from lacbed.ml.predict import engine_kwargs, load_model

    _, info = load_model(None)  # the shipped model: trained on the release (converged budget)
    assert info.data["engine_settings"]["strong_beams"] is None
    kw = engine_kwargs(info, 128)
    assert kw == {
        "voltage_kv": 200.0,
        "size": 128,
        "scattering": "kirkland",
        "absorption": "bird-king",
        "kappa": 0.078,
        "solver": "fast",
    }
    other = ModelInfo("x", data={"engine_settings": {"voltage_kv": 300.0, "half_width": 1.5}})
    kw = engine_kwargs(other, 64)
    assert kw["voltage_kv"] == 300.0 and kw["half_width"] == 1.5 and kw["size"] == 64
    with pytest.raises(SettingsError, match="single model"):
        from lacbed.ml.predict import predict_series

        predict_series([read_cif(CIFS[0])], model=load_model(None), max_error=0.1)


def test_inputs_use_the_training_data_scattering_factors():
    """A model trained on data built with other scattering factors gets its potentials from
    those factors, as its training inputs were computed."""
    from lacbed.ml.model import ModelInfo
    from lacbed.ml.predict import load_model, series_inputs
    from lacbed.scattering import projected_potential

    model, info = load_model(None)
    si = read_cif(CIFS[0])
    other = ModelInfo("x", data={"engine_settings": {"scattering": "lobato"}})
    got = series_inputs([si], model, other, [100.0])[0]["potentials"][0]
    np.testing.assert_array_equal(got, projected_potential(si, 128, scattering="lobato"))
    shipped = series_inputs([si], model, info, [100.0])[0]["potentials"][0]
    np.testing.assert_array_equal(shipped, projected_potential(si, 128, scattering="kirkland"))
    assert np.abs(got - shipped).max() > 0.1  # V·Å: Lobato and Kirkland differ (0.38 for Si)


def _hybrid(tmp_path, error_coef=None):
    """A fresh residual U-Net on the coarse run (its prediction IS the coarse run, so its
    correction is 0) and, with ``error_coef``, an error estimate of known form."""
    from lacbed.ml.hybrid_error import HybridError
    from lacbed.ml.model import load_surrogate
    from lacbed.ml.predict import Hybrid

    cfg = ModelConfig("unet", size=SIZE, latent=8, width=4, depth=2, conditioned=True,
                      physics_channel=True, physics_kind="coarse", residual=True)  # fmt: skip
    data = {"thicknesses_nm": list(THICK), "engine_settings": {"fake": True}, "physics_beams": 8}
    path = save_surrogate(
        make_surrogate(cfg, Normalisation(), seed=0), tmp_path / "h.pt", data=data
    )
    model, info = load_surrogate(path)
    err = None
    if error_coef is not None:
        cal = {"coef": list(error_coef), "median_residual": 0.0, "q90_residual": 0.5}
        err = HybridError.parse(
            json.dumps({"format": "lacbed-hybrid-error", "calibration": cal}), "t"
        )
    return Hybrid(model, info, err)


def test_hybrid_max_error_escalates_on_the_90_percent_bound(tmp_path):
    """With a correction of exactly 0 the estimate is exp(b0 + b1 ln ε + b2 t + b3 ln a) − ε
    and the bound e^0.5 times that (+ the ε's): a threshold between the two thicknesses' bounds
    sends exactly the thicker patterns to the engine, the default comparison for a hybrid
    being the bound; the engine's patterns are the exact oracle."""
    from lacbed.ml.hybrid_error import EPS
    from lacbed.ml.predict import predict_series

    crystals = [read_cif(c) for c in CIFS]
    b0, b2 = np.log(0.01), 0.01  # 1 % at t = 0 for a = 1 Å, e^0.5 per 50 nm
    hyb = _hybrid(tmp_path, [b0, 0.0, b2, 0.0])
    plain = predict_series(crystals, THICK, model=hyb)
    fit = b0 + b2 * np.asarray(THICK)
    np.testing.assert_allclose(plain.estimated_z, np.tile(np.exp(fit) - EPS, (2, 1)), rtol=1e-12)
    np.testing.assert_allclose(plain.upper90, np.tile(np.exp(fit + 0.5) - EPS, (2, 1)), rtol=1e-12)
    assert set(plain.source.ravel()) == {"hybrid"} and plain.spread is None
    z = float(np.exp(b0 + b2 * 75.0 + 0.5))  # between the bounds at 50 and 100 nm
    assert z > plain.estimated_z.max()  # on the estimate itself nothing would go
    res = predict_series(crystals, THICK, model=hyb, max_error=z, n_jobs=1)
    assert res.max_error_on == "upper90"
    np.testing.assert_array_equal(res.source[:, 0], ["hybrid", "hybrid"])
    np.testing.assert_array_equal(res.source[:, 1], ["engine", "engine"])
    np.testing.assert_array_equal(res.patterns[:, 0], plain.patterns[:, 0])
    for i, cif in enumerate(CIFS):
        np.testing.assert_allclose(res.patterns[i, 1], _oracle(cif, [100.0])[0], atol=1e-6)
    on_est = predict_series(crystals, THICK, model=hyb, max_error=z, max_error_on="estimate")
    assert set(on_est.source.ravel()) == {"hybrid"}


def test_hybrid_without_an_error_estimate_refuses_max_error(tmp_path):
    from lacbed.ml.predict import predict_series

    hyb = _hybrid(tmp_path)
    res = predict_series([read_cif(CIFS[0])], THICK, model=hyb)
    assert res.estimated_z is None and res.upper90 is None
    with pytest.raises(SettingsError, match="lacks"):
        predict_series([read_cif(CIFS[0])], THICK, model=hyb, max_error=0.05)


def _perturb_head(hyb, value=None, seed=0) -> None:
    """Give the hybrid's zero-initialised output layer weights (random, or all ``value``), so
    that its prediction differs from the coarse run."""
    head = hyb.model.net.head[-1].weight
    with torch.no_grad():
        if value is None:
            g = torch.Generator().manual_seed(seed)
            head.copy_(0.3 * torch.randn(head.shape, generator=g))
        else:
            head.fill_(value)


def test_hybrid_estimate_is_the_calibrated_law_of_its_own_correction(tmp_path):
    """A hybrid whose prediction differs from its coarse run: the estimate and bound are
    exp(b · (1, ln(c + ε), t, ln a) + r) − ε with c = Z(prediction, coarse run) computed here
    from the returned patterns and the coarse maps (every coefficient non-zero)."""
    from lacbed.metrics import z_score
    from lacbed.ml.hybrid_error import EPS
    from lacbed.ml.predict import predict_series, series_inputs

    crystals = [read_cif(c) for c in CIFS]
    coef = [-2.0, 0.8, 0.003, 0.7]
    hyb = _hybrid(tmp_path, coef)
    _perturb_head(hyb)
    res = predict_series(crystals, THICK, model=hyb)
    kws = series_inputs(crystals, hyb.model, hyb.info, list(THICK), n_jobs=1)
    maps = np.stack([kw["physics"] for kw in kws], 1)  # (n, T, S, S)
    c = np.asarray(z_score(res.patterns, maps)).reshape(len(crystals), len(THICK))
    assert np.all(c > 1e-3)  # the network moved its input
    a = np.array([x.a for x in crystals])
    fit = (
        coef[0]
        + coef[1] * np.log(c + EPS)
        + coef[2] * np.asarray(THICK)
        + coef[3] * np.log(a)[:, None]
    )
    np.testing.assert_allclose(res.estimated_z, np.exp(fit) - EPS, rtol=1e-5)
    np.testing.assert_allclose(res.upper90, np.exp(fit + 0.5) - EPS, rtol=1e-5)


def test_hybrid_non_finite_prediction_is_an_error_not_an_estimate(tmp_path):
    """A network that outputs NaN never gets an estimate: the prediction is refused."""
    from lacbed.errors import LacbedError
    from lacbed.ml.predict import predict_series

    hyb = _hybrid(tmp_path, [np.log(0.01), 0.5, 0.0, 0.0])
    _perturb_head(hyb, value=float("nan"))
    with pytest.raises(LacbedError, match="non-finite prediction"):
        predict_series([read_cif(CIFS[0])], THICK, model=hyb)


BIG_CIF = (
    "data_big\n_symmetry_space_group_name_H-M 'P m -3 m'\n_cell_length_a 8.5\n"
    "_cell_length_b 8.5\n_cell_length_c 8.5\n_cell_angle_alpha 90\n_cell_angle_beta 90\n"
    "_cell_angle_gamma 90\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
    "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nCu1 Cu 0 0 0\n"
)


def test_hybrid_estimate_of_a_large_cell_uses_the_coarse_runs_own_estimate(tmp_path):
    """A calibration with the large-cell columns: predict runs the coarse engine with its
    convergence estimate e and the estimate is exp(b · (1, ln(c + ε), t, ln a, L·ln(e + ε), L))
    − ε, L = 1 only for the a = 8.5 Å cell; c and e computed here independently."""
    from lacbed.crystal import read_cif as read
    from lacbed.metrics import z_score
    from lacbed.ml.hybrid_error import EPS
    from lacbed.ml.predict import predict_series, series_inputs

    big = tmp_path / "big.cif"
    big.write_text(BIG_CIF)
    crystals = [read_cif(CIFS[0]), read(big)]
    coef = [-2.0, 0.8, 0.003, 0.7, 0.5, 1.2]
    hyb = _hybrid(tmp_path, coef)
    _perturb_head(hyb)
    res = predict_series(crystals, THICK, model=hyb, n_jobs=1)
    kws = series_inputs(crystals, hyb.model, hyb.info, list(THICK), n_jobs=1, convergence=True)
    maps = np.stack([kw["physics"] for kw in kws], 1)
    e = np.stack([kw["convergence"] for kw in kws], 1)
    assert np.all(np.isfinite(e[1])) and np.all(e[1] >= 0) and e[1].max() > 0.01
    c = np.asarray(z_score(res.patterns, maps)).reshape(2, len(THICK))
    a = np.array([x.a for x in crystals])
    fit = (coef[0] + coef[1] * np.log(c + EPS) + coef[2] * np.asarray(THICK)
           + coef[3] * np.log(a)[:, None])  # fmt: skip
    fit[1] += coef[4] * np.log(e[1] + EPS) + coef[5]
    np.testing.assert_allclose(res.estimated_z, np.exp(fit) - EPS, rtol=1e-5)


def test_hybrid_pays_for_the_convergence_estimate_only_for_large_cells(tmp_path, monkeypatch):
    """The coarse runs skip the estimate's sample (convergence_sample=0) except for a cell of
    a ≥ 8 Å under a calibration that uses it; an old 4-coefficient calibration asks for none."""
    import lacbed.simulate as simulate
    from lacbed.ml.predict import predict_series

    big = tmp_path / "big.cif"
    big.write_text(BIG_CIF)
    crystals = [read_cif(CIFS[0]), read_cif(big)]
    calls = []
    real = simulate.simulate_lacbed

    def spy(crystal, *args, **kwargs):
        calls.append((crystal.a, kwargs.get("convergence_sample", "default")))
        return real(crystal, *args, **kwargs)

    monkeypatch.setattr(simulate, "simulate_lacbed", spy)
    new = _hybrid(tmp_path, [-2.0, 0.8, 0.003, 0.7, 0.5, 1.2])
    predict_series(crystals, THICK, model=new, n_jobs=1)
    assert calls == [(crystals[0].a, 0.0), (8.5, "default")]
    calls.clear()
    old = _hybrid(tmp_path, [-2.0, 0.8, 0.003, 0.7])
    predict_series(crystals, THICK, model=old, n_jobs=1)
    assert calls == [(crystals[0].a, 0.0), (8.5, 0.0)]
