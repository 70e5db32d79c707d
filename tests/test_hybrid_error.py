"""The hybrid model's error estimate (lacbed.ml.hybrid_error): the fit recovers a known law, the
estimate is the formula it states, bad calibration files fail with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from lacbed.errors import LacbedError  # noqa: E402
from lacbed.ml.hybrid_error import (  # noqa: E402
    EPS,
    HybridError,
    calibrate_hybrid,
    correction,
    hybrid_design,
)

TS = np.array([50.0, 100.0, 150.0, 200.0])
TRUE = np.array([-2.0, 0.9, 0.004, 1.0])  # intercept, ln c, t [1/nm], ln a
SIGMA = 0.5  # noise of ln Z


def _synthetic(n=300, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.uniform(3.0, 12.0, n)
    corr = np.exp(rng.normal(np.log(0.01), 1.0, (n, len(TS))))
    y = hybrid_design(corr, TS, a) @ TRUE + rng.normal(0.0, SIGMA, corr.size)
    return np.exp(y).reshape(corr.shape) - EPS, corr, a


def test_calibration_recovers_a_known_law_and_its_quantiles():
    """ln(Z + ε) = TRUE · (1, ln(c + ε), t, ln a) + N(0, 0.5²) on 1 200 patterns: the slopes
    come back within ~5 standard errors (0.014, 0.00026/nm, 0.04; measured off by 0.023,
    0.00028/nm, 0.007), the median residual near 0 (-0.005) and the 90th percentile near
    1.2816 · 0.5 (off by 0.006); out of fold the bound covers 89.6 %, the estimate 50.1 %."""
    z, corr, a = _synthetic()
    cal = calibrate_hybrid(z, corr, TS, a, folds=10)
    coef = np.asarray(cal["coef"])
    assert abs(coef[1] - TRUE[1]) < 0.08 and abs(coef[2] - TRUE[2]) < 0.0016
    assert abs(coef[3] - TRUE[3]) < 0.2
    assert abs(cal["median_residual"]) < 0.05
    assert cal["q90_residual"] == pytest.approx(1.2816 * SIGMA, abs=0.05)
    oof = cal["out_of_fold"]
    assert 0.86 <= oof["coverage_upper90"] <= 0.94 and 0.45 <= oof["coverage"] <= 0.55
    assert oof["spearman"] > 0.8 and cal["n"] == z.size and cal["n_structures"] == len(z)
    assert all(0.84 <= v <= 0.96 for v in oof["coverage_upper90_per_thickness"])
    # the bound sends a pattern when exp(m + q90) − ε > thr, m the true law's mean of ln(Z + ε):
    # the fraction sent is that of the law's own 90 % quantile above thr (to sampling error)
    m = (hybrid_design(corr, TS, a) @ TRUE).reshape(z.shape)
    for thr, row in oof["escalation"].items():
        up = row["upper90"]
        assert up["above_threshold"] == int(np.sum(z > float(thr)))
        expected = np.mean(np.exp(m + 1.2816 * SIGMA) - EPS > float(thr))
        assert abs(up["escalated"] - expected) < 0.03, thr


def test_estimate_is_the_stated_formula_and_grows_with_the_correction():
    cal = {"coef": [-2.0, 0.9, 0.004, 1.0], "median_residual": 0.1, "q90_residual": 0.7}
    err = HybridError(calibration=cal)
    rng = np.random.default_rng(0)
    phys = rng.random((2, 3, 16, 16))
    pred = phys + np.array([0.0, 0.05, 0.5])[None, :, None, None] * rng.random((2, 3, 16, 16))
    ts, a = [50.0, 100.0, 150.0], [4.0, 9.0]
    est, upper = err.estimate(pred, phys, ts, a)
    c = correction(pred, phys)
    assert np.all(c[:, 0] == 0) and np.all(np.diff(c, axis=1) > 0)
    fit = -2.0 + 0.9 * np.log(c + EPS) + 0.004 * np.asarray(ts) + np.log(np.asarray(a))[:, None]
    np.testing.assert_allclose(est, np.exp(fit + 0.1) - EPS, rtol=1e-12)
    np.testing.assert_allclose(upper, np.exp(fit + 0.7) - EPS, rtol=1e-12)
    assert np.all(upper > est)


def test_correction_is_z_between_prediction_and_coarse_run():
    rng = np.random.default_rng(2)
    p = rng.random((3, 8, 8))
    np.testing.assert_allclose(correction(p, 5.0 * p + 1.0), 0.0, atol=1e-12)  # scale, offset
    np.testing.assert_allclose(correction(p, -p), 2.0, atol=1e-12)
    with pytest.raises(LacbedError, match="must match"):
        correction(p, p[:, :4])
    q = p.copy()
    q[0] = 1.0  # constant: Z undefined
    q[1, 2, 3] = np.nan
    c = correction(p, q)
    assert np.isnan(c[0]) and np.isnan(c[1]) and np.isfinite(c[2])
    err = HybridError(calibration={"coef": [-2, 1, 0, 0], "median_residual": 0, "q90_residual": 1})
    est, upper = err.estimate(p[:, None], q[:, None], [100.0], [4.0, 4.0, 4.0])
    assert np.isnan(est[:2]).all() and np.isnan(upper[:2]).all() and np.isfinite(est[2]).all()


def test_save_load_round_trip(tmp_path):
    z, corr, a = _synthetic(n=40)
    err = HybridError(calibration=calibrate_hybrid(z, corr, TS, a, folds=4))
    back = HybridError.load(err.save(tmp_path / "e.json"))
    assert back.calibration == err.calibration


@pytest.mark.parametrize(
    "text, words",
    [
        ("{", "not a hybrid error file"),
        ('{"format": "lacbed-ensemble", "calibration": {}}', "lacbed-hybrid-error"),
        ('{"format": "lacbed-hybrid-error", "calibration": {"coef": [1, 2, 3, 4]}}', "lacks"),
        (
            '{"format": "lacbed-hybrid-error", "calibration": {"coef": [1, 2], '
            '"median_residual": 0, "q90_residual": 1}}',
            "not usable",
        ),  # fmt: skip
        (
            '{"format": "lacbed-hybrid-error", "calibration": {"coef": [1, 2, 3, NaN], '
            '"median_residual": 0, "q90_residual": 1}}',
            "not usable",
        ),  # fmt: skip
        ("[1, 2]", "not a hybrid error file"),
        (
            '{"format": "lacbed-hybrid-error", "calibration": {"coef": [1, 2, 3, 4, 5], '
            '"median_residual": 0, "q90_residual": 1}}',
            "not usable",
        ),  # fmt: skip
        ('"lacbed-hybrid-error"', "not a hybrid error file"),
    ],
)
def test_bad_calibration_files_fail_with_one_line(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(LacbedError, match=words) as exc:
        HybridError.load(path)
    assert "\n" not in str(exc.value)
    with pytest.raises(LacbedError, match="not a hybrid error file"):
        HybridError.load(tmp_path / "missing.json")


def test_calibration_refuses_data_it_cannot_fit():
    z, corr, a = _synthetic(n=40)
    with pytest.raises(LacbedError, match="2 thicknesses"):
        calibrate_hybrid(z[:, :1], corr[:, :1], TS[:1], a, folds=4)
    with pytest.raises(LacbedError, match="structures"):
        calibrate_hybrid(z[:5], corr[:5], TS, a[:5], folds=4)
    bad = z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(LacbedError, match="non-finite"):
        calibrate_hybrid(bad, corr, TS, a, folds=4)
    with pytest.raises(LacbedError, match="lattice parameters"):
        hybrid_design(corr, TS, -a)
    with pytest.raises(LacbedError, match="structures, thicknesses"):
        hybrid_design(corr, TS[:2], a)


def test_shipped_calibration_belongs_to_the_shipped_model(tmp_path, monkeypatch):
    """load_hybrid refuses a calibration made for another model file (one line)."""
    import lacbed.ml.predict as predict
    from lacbed.ml.model import ModelFileError

    hyb = predict.load_hybrid()
    assert hyb.error is not None and hyb.error.calibration["split"] == "val"
    real = predict._shipped_resource
    blob = {"format": "lacbed-hybrid-error",
            "calibration": {**hyb.error.calibration, "model_sha256": "0" * 64}}  # fmt: skip
    (tmp_path / predict.HYBRID_ERROR_FILE).write_text(json.dumps(blob))

    def fake(name):
        return tmp_path / name if name == predict.HYBRID_ERROR_FILE else real(name)

    monkeypatch.setattr(predict, "_shipped_resource", fake)
    with pytest.raises(ModelFileError, match="another hybrid.pt") as exc:
        predict.load_hybrid()
    assert "\n" not in str(exc.value)


def test_folds_keep_every_group_whole():
    """Structures of one prototype share a fold (no structure type informs its own estimate);
    every fold is used; the same seed gives the same folds."""
    from lacbed.ml.hybrid_error import fold_of_groups

    rng = np.random.default_rng(3)
    groups = rng.choice([f"proto{i}" for i in range(23)], size=200)
    fold = fold_of_groups(groups, 10, seed=0)
    for g in set(groups):
        assert len(set(fold[groups == g])) == 1
    assert set(fold) == set(range(10))
    np.testing.assert_array_equal(fold, fold_of_groups(groups, 10, seed=0))
    assert not np.array_equal(fold, fold_of_groups(groups, 10, seed=1))
    with pytest.raises(LacbedError, match="cannot fill"):
        fold_of_groups(groups[:5], 10, seed=0)
    z, corr, a = _synthetic(n=200)
    cal = calibrate_hybrid(z, corr, TS, a, groups=groups)
    assert cal["n_groups"] == len(set(groups))


def test_estimates_are_clipped_to_the_largest_z():
    err = HybridError(calibration={"coef": [5.0, 0, 0, 0], "median_residual": 0, "q90_residual": 1})
    p = np.random.default_rng(0).random((1, 2, 8, 8))
    est, upper = err.estimate(p, p[:, ::-1], [50.0, 100.0], [4.0])
    assert np.all(est == 2.0) and np.all(upper == 2.0)


def test_large_cells_get_the_engines_convergence_estimate_as_a_feature():
    """With convergence estimates the design has L·ln(e + ε) and L (L = 1 for a ≥ 8 Å): small
    cells' rows do not depend on e; a law with a convergence slope is recovered (~5 standard
    errors), and such a calibration refuses to estimate without the convergence estimates."""
    rng = np.random.default_rng(5)
    n = 300
    a = np.where(np.arange(n) % 2 == 0, rng.uniform(3.0, 7.0, n), rng.uniform(8.0, 14.0, n))
    corr = np.exp(rng.normal(np.log(0.01), 1.0, (n, len(TS))))
    conv = np.exp(rng.normal(np.log(0.005), 1.5, (n, len(TS))))
    x = hybrid_design(corr, TS, a, convergence=conv)
    large = np.repeat(a >= 8.0, len(TS))
    assert x.shape == (n * len(TS), 6)
    np.testing.assert_array_equal(x[~large, 4:], 0.0)
    np.testing.assert_allclose(x[large, 4], np.log(conv.ravel()[large] + EPS))
    np.testing.assert_array_equal(x[large, 5], 1.0)
    x_other = hybrid_design(corr, TS, a, convergence=conv * 10)
    np.testing.assert_array_equal(x_other[~large], x[~large])
    true = np.array([-2.0, 0.9, 0.004, 1.0, 0.6, 1.5])
    z = np.exp(x @ true + rng.normal(0.0, SIGMA, x.shape[0])).reshape(n, len(TS)) - EPS
    cal = calibrate_hybrid(z, corr, TS, a, convergence=conv)
    assert cal["features"][-2:] == ["large_cell_log_convergence", "large_cell"]
    assert abs(cal["coef"][4] - 0.6) < 0.1  # standard error ~0.02 (150 large cells)
    err = HybridError.parse(json.dumps({"format": "lacbed-hybrid-error", "calibration": cal}), "c")
    assert err.needs_convergence
    p = rng.random((2, 4, 8, 8))
    with pytest.raises(LacbedError, match="convergence"):
        err.estimate(p, p[:, :, ::-1], TS, [4.0, 9.0])
    est, _ = err.estimate(p, p[:, :, ::-1], TS, [4.0, 9.0], np.full((2, 4), 0.01))
    est2, _ = err.estimate(p, p[:, :, ::-1], TS, [4.0, 9.0], np.full((2, 4), 0.1))
    np.testing.assert_array_equal(est[0], est2[0])  # the small cell ignores it
    assert np.all(est2[1] > est[1])  # the large one's estimate grows with it
