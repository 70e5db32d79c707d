"""A prediction that estimates its own error: a small ensemble, calibrated on validation.

Several surrogates trained the same way with different seeds (``lacbed train --seed``) disagree
most where they have learned least. For one input the ensemble returns the mean of the members'
standardised predictions and their **spread**

    d = mean over members m of Z(pred_m, mean),   Z = 1 − ZNCC,

in the units of Z. The spread is not yet an error: :func:`calibrate` scores the ensemble on a
split that was not used for training (``val``), fits the true Z of the ensemble mean as
Z ≈ intercept + slope · d (least squares) and reports the Spearman rank correlation between d
and the true Z, which says how far the estimate can be trusted to *rank* predictions (issue 10
§3 asks for the rank correlation on test, once the final models are chosen), and the 90th
percentile of the residuals, which turns the estimate into an upper bound that held for 90 % of
the calibration samples. A fit through the origin, used before, left 82 % of the true Z above
the estimate on release 2's val split (``benchmarks/ml_error_estimates.py``): the ensemble's
error has a floor that the spread does not see. Ensemble files without an ``intercept`` are
read with 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lacbed.errors import LacbedError
from lacbed.metrics import z_score

__all__ = [
    "Ensemble",
    "EnsemblePrediction",
    "calibrate",
    "ensemble_run",
    "ensemble_stats",
    "predict_crystals_ensemble",
    "spearman",
]


@dataclass(frozen=True, eq=False)
class EnsemblePrediction:
    """Mean prediction and member spread.

    Attributes
    ----------
    mean : ndarray, shape (n, S, S) float32
        Standardised mean of the members' standardised predictions.
    spread : ndarray, shape (n,)
        Mean Z between each member and the mean [1].
    estimated_z : ndarray, shape (n,) or None
        intercept + slope · spread, when the ensemble is calibrated [1].
    """

    mean: np.ndarray
    spread: np.ndarray
    estimated_z: np.ndarray | None = None


def ensemble_run(models, potentials: np.ndarray, **kwargs) -> EnsemblePrediction:
    """Run every member (:func:`lacbed.ml.model.run_model` with ``kwargs``); mean and spread."""
    from lacbed.ml.model import run_model

    if len(models) < 2:
        raise LacbedError(f"an ensemble needs at least two models, got {len(models)}")
    mean, spread = ensemble_stats(np.stack([run_model(m, potentials, **kwargs) for m in models]))
    return EnsemblePrediction(mean=mean, spread=spread)


def ensemble_stats(preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Members' standardised predictions (M, ..., S, S) → standardised mean (..., S, S) and
    spread (...): mean over members of Z(member, mean) [1]."""
    from lacbed.ml.data import standardize_pattern

    mean = standardize_pattern(preds.mean(axis=0))
    spread = np.mean([z_score(mean, p) for p in preds], axis=0).reshape(mean.shape[:-2])
    return mean, spread


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties); NaN with fewer than 3 points."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.size < 3:
        return float("nan")
    return float(spearmanr(x, y).statistic)


@dataclass
class Ensemble:
    """Members (model files) and the calibration of their spread.

    ``calibration`` holds ``intercept`` and ``slope`` (Z ≈ intercept + slope · spread),
    ``q90_residual`` (90th percentile of Z minus that), ``spearman`` (rank correlation of the
    spread with the true Z), ``n`` (samples), ``split`` and ``dataset`` of the calibration.
    Saved as JSON (:meth:`save`, :meth:`load`), member paths relative to the file.
    """

    members: list[Path]
    calibration: dict = field(default_factory=dict)
    #: the members already loaded, as (Surrogate, ModelInfo) pairs (the shipped ensemble)
    models: list | None = field(default=None, repr=False)

    @property
    def calibrated(self) -> bool:
        """Whether the calibration gives an estimate (a finite slope)."""
        slope = self.calibration.get("slope")
        return slope is not None and bool(np.isfinite(slope))

    def estimate(self, spread) -> np.ndarray | None:
        """Estimated Z [1] for member spreads: intercept + slope · spread, at least 0; None for
        an uncalibrated ensemble."""
        if not self.calibrated:
            return None
        c = self.calibration
        d = np.asarray(spread, dtype=np.float64)
        return np.maximum(float(c.get("intercept", 0.0)) + float(c["slope"]) * d, 0.0)

    def load_models(self):
        """The members as (Surrogate, ModelInfo) pairs."""
        from lacbed.ml.model import load_surrogate

        if self.models is not None:
            return list(self.models)
        return [load_surrogate(p) for p in self.members]

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        base = path.resolve().parent
        members = [os.path.relpath(Path(m).resolve(), base) for m in self.members]
        blob = {"format": "lacbed-ensemble", "members": members, "calibration": self.calibration}
        path.write_text(json.dumps(blob, indent=1))
        return path

    @staticmethod
    def parse(text: str, name: str) -> dict:
        """The JSON of an ensemble file (``name`` for the error message), header checked."""
        try:
            blob = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LacbedError(f"{name} is not an ensemble file: {exc}") from None
        if not isinstance(blob, dict) or blob.get("format") != "lacbed-ensemble":
            raise LacbedError(f"{name} is not an ensemble file (no 'lacbed-ensemble' header)")
        return blob

    @classmethod
    def load(cls, path: str | os.PathLike) -> Ensemble:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise LacbedError(f"{path} is not an ensemble file: {exc}") from None
        blob = cls.parse(text, str(path))
        base = path.resolve().parent
        return cls([base / m for m in blob["members"]], dict(blob.get("calibration") or {}))


def calibrate(models, data, *, split: str = "val", thickness_nm=None) -> dict:
    """Fit Z ≈ intercept + slope · spread of an ensemble on one split of a dataset.

    Parameters
    ----------
    models : sequence of Surrogate
        The members (same thicknesses and inputs).
    data : path-like or Dataset
    split : str
        Split to calibrate on; ``val`` (the default) keeps the test split untouched.

    Returns
    -------
    dict
        ``intercept``, ``slope``, ``q90_residual`` (the 90th percentile of Z − estimate),
        ``spearman``, ``n``, ``split``, ``mean_spread``, ``mean_z``, the fraction of samples
        whose true Z lies below the estimate (``coverage``) and below estimate + q90_residual
        (``coverage_q90``, 0.9 by construction on this split).
    """
    from lacbed.dataset.store import Dataset, open_dataset
    from lacbed.ml.data import load_split, prepare_target, resolve_thicknesses
    from lacbed.ml.evaluate import resolve_split

    ds = data if isinstance(data, Dataset) else open_dataset(data)
    used, _ = resolve_split(ds, split)
    m0 = models[0]
    if thickness_nm is None and m0.trained_thicknesses_nm:
        thickness_nm = m0.trained_thicknesses_nm
    t_idx = resolve_thicknesses(ds.thicknesses_nm, thickness_nm, conditioned=m0.config.conditioned)
    arr = load_split(ds, used, thickness_index=t_idx, physics=m0.config.physics_input or False)
    spreads, zs = [], []
    for j, t in enumerate(arr.thickness_nm):
        ens = ensemble_run(
            models,
            arr.potential,
            thickness_nm=float(t),
            a=arr.a,
            symmetry=arr.symmetry,
            physics=None if arr.physics is None else arr.physics[:, j],
        )
        spreads.append(ens.spread)
        zs.append(z_score(prepare_target(arr.pattern[:, j], m0.norm), ens.mean).reshape(-1))
    d, z = np.concatenate(spreads), np.concatenate(zs)
    intercept, slope, q90 = float("nan"), float("nan"), float("nan")
    if d.size >= 2 and np.ptp(d) > 0:
        slope, intercept = (float(v) for v in np.polyfit(d, z, 1))
        q90 = float(np.percentile(z - (intercept + slope * d), 90))
    est = intercept + slope * d
    return {
        "intercept": intercept,
        "slope": slope,
        "q90_residual": q90,
        "spearman": spearman(d, z),
        "n": int(d.size),
        "split": used,
        "dataset": Path(ds.path).name,  # a name, no absolute path in a file that may be shipped
        "mean_spread": float(d.mean()),
        "mean_z": float(z.mean()),
        "coverage": float(np.mean(z <= est)),
        "coverage_q90": float(np.mean(z <= est + q90)),
    }


def predict_crystals_ensemble(
    crystals, ensemble: Ensemble, *, thickness_nm: float | None = None
) -> EnsemblePrediction:
    """Ensemble mean, spread and (when calibrated) estimated Z for crystals.

    Every member must serve the thickness (:func:`lacbed.ml.predict.model_thickness`); the
    physics maps, if any, are computed once per member's settings.
    """
    from lacbed.ml.predict import model_inputs, model_thickness

    pairs = ensemble.load_models()
    model0, info0 = pairs[0]
    t = model_thickness(info0, model0, thickness_nm)
    for m, info in pairs[1:]:
        model_thickness(info, m, t)
    kw = model_inputs(crystals, model0, info0, t)
    if any(m.config.physics_channel for m, _ in pairs) and kw["physics"] is None:
        kw = model_inputs(crystals, next(m for m, _ in pairs if m.config.physics_channel), info0, t)
    ens = ensemble_run([m for m, _ in pairs], **kw)
    return EnsemblePrediction(
        mean=ens.mean, spread=ens.spread, estimated_z=ensemble.estimate(ens.spread)
    )
