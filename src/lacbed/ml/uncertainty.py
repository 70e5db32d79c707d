"""A prediction that estimates its own error: a small ensemble, calibrated on validation.

Several surrogates trained the same way with different seeds (``lacbed train --seed``) disagree
most where they have learned least. For one input the ensemble returns the mean of the members'
standardised predictions and their **spread**

    d = mean over members m of Z(pred_m, mean),   Z = 1 − ZNCC,

in the units of Z. The spread is not yet an error: :func:`calibrate` scores the ensemble on a
split that was not used for training (``val``), fits the true Z of the ensemble mean as an
affine function of d (and of the inputs below) and reports the Spearman rank correlation
between the estimate and the true Z, which says how far the estimate can be trusted to *rank* predictions (issue 10
§3 asks for the rank correlation on test, once the final models are chosen), and the 90th
percentile of the residuals, which turns the estimate into an upper bound that held for 90 % of
the calibration samples. A fit through the origin, used before, left 82 % of the true Z above
the estimate on release 2's val split (``benchmarks/ml_error_estimates.py``): the ensemble's
error has a floor that the spread does not see. Ensemble files without an ``intercept`` are
read with 0.

The spread sees only where the members disagree, not where all of them are far from anything
they were trained on. :func:`calibrate` therefore also fits (by default) the distance of the
input to the training set, :func:`reference_distance`: the mean Euclidean distance from the
potential's low-order Fourier amplitudes (:func:`potential_features`) to those of its
``K_NEAREST`` nearest training structures, each feature scaled by its standard deviation over
the training set, the thickness and ln(a / 1 Å) (larger cells have more and finer lines). The
estimate is affine in these, with non-negative coefficients; how well each input and each
combination ranks the true Z out of fold is measured by ``benchmarks/ml_error_estimates.py``
(docs/model_card.md gives the numbers of the shipped ensemble). The training features are
stored beside the ensemble file (``<name>.reference.npz``).
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
    "ERROR_FEATURES",
    "Ensemble",
    "EnsemblePrediction",
    "K_NEAREST",
    "calibrate",
    "check_members",
    "ensemble_run",
    "ensemble_stats",
    "feature_matrix",
    "potential_features",
    "predict_crystals_ensemble",
    "reference_distance",
    "spearman",
    "training_features",
]

#: Inputs of the error estimate fitted by :func:`calibrate` (an affine function of them).
ERROR_FEATURES: tuple[str, ...] = ("spread", "reference_distance", "thickness_nm", "log_a")
#: Training structures averaged over in :func:`reference_distance`.
K_NEAREST = 5
#: Fourier orders |h|, |k| ≤ FFT_ORDER of :func:`potential_features`.
FFT_ORDER = 8
#: Images (or query rows) per chunk of the feature and distance computations.
_CHUNK = 256


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
        The calibrated estimate of Z (:meth:`Ensemble.estimate`), when there is one [1].
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


def potential_features(potentials: np.ndarray, order: int = FFT_ORDER) -> np.ndarray:
    """Low-order Fourier amplitudes of each potential image: log(1 + |F_hk| / 1 V·Å), F the
    discrete Fourier transform divided by the pixel count (F_00 is the mean), |h|, |k| ≤ ``order``.

    Parameters
    ----------
    potentials : ndarray, shape (n, S, S) or (S, S)
        Projected potentials [V·Å], S ≥ 2·order + 1.

    Returns
    -------
    ndarray, shape (n, (2·order + 1)²) float32
        Origin-independent (amplitudes only) features of the zero-layer structure factors.
    """
    p = np.asarray(potentials)
    p = p[None] if p.ndim == 2 else p
    size = p.shape[-1]
    if p.ndim != 3 or p.shape[-2] != size or size < 2 * order + 1:
        raise LacbedError(
            f"potential images must be (n, S, S) with S >= {2 * order + 1}, got {p.shape}"
        )
    idx = np.r_[0 : order + 1, size - order : size]
    out = np.empty((len(p), idx.size * idx.size), dtype=np.float32)
    for i in range(0, len(p), _CHUNK):  # chunks: a release's train split is GBs as complex128
        f = np.fft.fft2(np.asarray(p[i : i + _CHUNK], dtype=np.float64)) / (size * size)
        out[i : i + _CHUNK] = np.log1p(np.abs(f[:, idx][:, :, idx])).reshape(len(f), -1)
    return out


def reference_distance(
    features: np.ndarray, reference: np.ndarray, k: int = K_NEAREST
) -> np.ndarray:
    """Mean Euclidean distance of each row of ``features`` to its ``k`` nearest rows of
    ``reference`` (the training structures), every column scaled by its standard deviation
    over ``reference`` [1]."""
    ref = np.asarray(reference, dtype=np.float64)
    q = np.asarray(features, dtype=np.float64)
    if ref.ndim != 2 or q.ndim != 2 or q.shape[1] != ref.shape[1] or len(ref) == 0:
        raise LacbedError(f"features {q.shape} do not match the reference {ref.shape}")
    sd = ref.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    r = ref / sd
    r2 = (r**2).sum(1)
    k = min(k, len(r))
    out = np.empty(len(q))
    for i in range(0, len(q), _CHUNK):  # chunks keep the distance matrix small
        b = q[i : i + _CHUNK] / sd
        d2 = (b**2).sum(1)[:, None] + r2[None, :] - 2.0 * b @ r.T
        near = np.partition(np.clip(d2, 0.0, None), k - 1, axis=1)[:, :k]
        out[i : i + _CHUNK] = np.sqrt(near).mean(axis=1)
    return out


def feature_matrix(
    features, spread, *, potentials=None, thickness_nm=None, a=None, reference=None,
    k: int = K_NEAREST, order: int = FFT_ORDER,
) -> np.ndarray:  # fmt: skip
    """The inputs of the error estimate, one column per name in ``features``.

    Parameters
    ----------
    features : sequence of str
        From :data:`ERROR_FEATURES`.
    spread : array_like, shape (n,) or (n, T)
        Member spreads of n structures (at T thicknesses) [1].
    potentials : ndarray, shape (n, S, S), optional
        Their projected potentials [V·Å] (for ``reference_distance``).
    thickness_nm : float or array_like of shape (T,), optional
        Thickness of each column of ``spread`` [nm] (for ``thickness_nm``).
    a : array_like, shape (n,), optional
        Lattice parameters [Å] (for ``log_a`` = ln(a / 1 Å): larger cells have more, finer
        lines).
    reference : ndarray, shape (n_train, F), optional
        Training structures' :func:`potential_features` (for ``reference_distance``).

    Returns
    -------
    ndarray, shape (spread.size, len(features)) float64
    """
    d = np.asarray(spread, dtype=np.float64)
    cols = []
    for name in features:
        if name == "spread":
            cols.append(d)
        elif name == "thickness_nm":
            t = None if thickness_nm is None else np.asarray(thickness_nm, dtype=np.float64)
            if t is None or t.size not in (1, int(np.prod(d.shape[1:]))):
                raise LacbedError(
                    f"the error estimate needs one thickness per column of the spreads "
                    f"{d.shape}, got {None if t is None else t.shape}"
                )
            cols.append(np.broadcast_to(t.reshape(d.shape[1:]) if t.size > 1 else t, d.shape))
        elif name == "log_a":
            aa = None if a is None else np.asarray(a, dtype=np.float64).reshape(-1)
            if aa is None or len(aa) != len(d) or not np.all(aa > 0):
                raise LacbedError(f"the error estimate needs {len(d)} lattice parameters > 0 Å")
            cols.append(np.broadcast_to(np.log(aa).reshape((-1,) + (1,) * (d.ndim - 1)), d.shape))
        elif name == "reference_distance":
            if potentials is None or reference is None:
                raise LacbedError(
                    "this ensemble's error estimate needs the potentials and its training "
                    "features (the .reference.npz beside the ensemble file)"
                )
            if len(potentials) != len(d):
                raise LacbedError(f"{len(potentials)} potentials for {len(d)} spreads")
            dist = reference_distance(potential_features(potentials, order), reference, k)
            cols.append(np.broadcast_to(dist.reshape((-1,) + (1,) * (d.ndim - 1)), d.shape))
        else:
            raise LacbedError(f"unknown error-estimate feature {name!r}")
    return np.stack([np.ravel(c) for c in cols], axis=1)


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties); NaN with fewer than 3 points."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.size < 3:
        return float("nan")
    return float(spearmanr(x, y).statistic)


@dataclass
class Ensemble:
    """Members (model files) and the calibration of their error estimate.

    ``calibration`` holds ``intercept`` [1] and either ``slope`` (Z ≈ intercept + slope ·
    spread) or ``features`` and ``coef`` (Z ≈ intercept + Σ coef_i · feature_i, features from
    :data:`ERROR_FEATURES`; coefficients in 1 per unit of the feature: 1/nm for the
    thickness), ``k`` and ``fft_order`` (of the distance), ``q90_residual`` (90th percentile of
    Z minus the estimate), ``spearman`` (of the estimate with the true Z), ``spearman_spread``
    (of the spread alone), ``n`` (samples), ``split`` and ``dataset`` of the calibration, and
    ``reference`` (file name of the training features, beside the ensemble file, which must
    travel with it). Saved as JSON (:meth:`save`, :meth:`load`), member paths relative to the
    file.
    """

    members: list[Path]
    calibration: dict = field(default_factory=dict)
    #: the members already loaded, as (Surrogate, ModelInfo) pairs (the shipped ensemble)
    models: list | None = field(default=None, repr=False)
    #: training structures' :func:`potential_features`, shape (n_train, F) (the calibration's
    #: ``reference_distance``)
    reference: np.ndarray | None = field(default=None, repr=False)

    @property
    def calibrated(self) -> bool:
        """Whether the calibration gives an estimate (finite intercept and coefficients)."""
        c = self.calibration
        coef = c.get("coef") if c.get("features") else c.get("slope")
        try:
            values = np.asarray([c.get("intercept", 0.0), *np.atleast_1d(coef)], dtype=float)
        except (TypeError, ValueError):
            return False
        return coef is not None and bool(np.all(np.isfinite(values)))

    def estimate(self, spread, potentials=None, thickness_nm=None, a=None) -> np.ndarray | None:
        """Estimated Z [1], at least 0, shaped like ``spread``; None for an uncalibrated
        ensemble. Arguments as :func:`feature_matrix`."""
        if not self.calibrated:
            return None
        c = self.calibration
        d = np.asarray(spread, dtype=np.float64)
        feats, coef = c.get("features") or ["spread"], c.get("coef") or [c.get("slope")]
        x = feature_matrix(
            feats, d, potentials=potentials, thickness_nm=thickness_nm, a=a,
            reference=self.reference, k=int(c.get("k", K_NEAREST)),
            order=int(c.get("fft_order", FFT_ORDER)),
        )  # fmt: skip
        est = float(c.get("intercept", 0.0)) + x @ np.asarray(coef, dtype=np.float64)
        return np.maximum(est, 0.0).reshape(d.shape)

    def estimate_for(self, evaluation) -> np.ndarray | None:
        """Estimated Z [1] for every (structure, thickness) of an ensemble's evaluation
        (:class:`lacbed.ml.evaluate.SplitEvaluation` with its ``spread``); None when
        uncalibrated."""
        a = evaluation.arrays
        return self.estimate(evaluation.spread, a.potential, a.thickness_nm, a.a)

    def load_models(self):
        """The members as (Surrogate, ModelInfo) pairs."""
        from lacbed.ml.model import load_surrogate

        if self.models is not None:
            return list(self.models)
        return [load_surrogate(p) for p in self.members]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ensemble file and, with training features, ``<stem>.reference.npz``
        (atomically; a stale one from an earlier calibration is removed)."""
        from lacbed._io import atomic_path

        path = Path(path)
        base = path.resolve().parent
        members = [os.path.relpath(Path(m).resolve(), base) for m in self.members]
        calibration = dict(self.calibration)
        ref = path.with_name(path.stem + ".reference.npz")
        calibration.pop("reference", None)
        if self.reference is not None:
            with atomic_path(ref) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, features=np.asarray(self.reference, dtype=np.float16))
            calibration["reference"] = ref.name
        elif ref.is_file():
            ref.unlink()
        blob = {"format": "lacbed-ensemble", "members": members, "calibration": calibration}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(blob, indent=1))
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

    @staticmethod
    def read_reference(source, calibration: dict) -> np.ndarray:
        """Training features from a ``.reference.npz`` (path), checked against the
        calibration's Fourier order."""
        import zipfile

        order = int(calibration.get("fft_order", FFT_ORDER))
        try:
            with open(source, "rb") as fh, np.load(fh) as z:  # the file closes on a bad zip
                ref = np.asarray(z["features"], dtype=np.float32)
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise LacbedError(
                f"cannot read the ensemble's training features {source}: {exc}"
            ) from None
        if ref.ndim != 2 or ref.shape[1] != (2 * order + 1) ** 2 or len(ref) == 0:
            raise LacbedError(
                f"the ensemble's training features {source} have shape {ref.shape}, not "
                f"(n, {(2 * order + 1) ** 2})"
            )
        return ref

    @classmethod
    def load(cls, path: str | os.PathLike) -> Ensemble:
        from lacbed._io import read_text

        path = Path(path)
        blob = cls.parse(read_text(path, "an ensemble file"), str(path))
        base = path.resolve().parent
        calibration = dict(blob.get("calibration") or {})
        ref = calibration.get("reference")
        reference = None if not ref else cls.read_reference(base / ref, calibration)
        return cls([base / m for m in blob["members"]], calibration, reference=reference)


def training_features(dataset) -> np.ndarray:
    """:func:`potential_features` of every ``train`` structure of a dataset, rounded to float16
    as an ensemble file stores them; read in chunks, potentials only (no patterns)."""
    slots = [int(s) for s in dataset.split_slots("train")]
    if not slots:
        raise LacbedError(f"{dataset.path} has no training structures to measure distances to")
    chunks = [
        potential_features(
            np.stack([np.asarray(dataset.potentials[s]) for s in slots[i : i + _CHUNK]])
        )
        for i in range(0, len(slots), _CHUNK)
    ]
    return np.concatenate(chunks).astype(np.float16).astype(np.float32)


def check_members(models) -> list:
    """The members of an ensemble as a list, checked to agree on what they take and give
    (image size, normalisation, thickness conditioning, physics input)."""
    from lacbed.ml.model import Surrogate

    models = list(models)
    if not models or not all(isinstance(m, Surrogate) for m in models):
        raise LacbedError("an ensemble is a sequence of Surrogate models")
    m0 = models[0]
    for m in models[1:]:
        a, b = m0.config, m.config
        same = (a.size, a.conditioned, a.physics_input) == (b.size, b.conditioned, b.physics_input)
        if not same or m.norm != m0.norm:
            raise LacbedError(
                "the ensemble's members differ in image size, normalisation, thickness "
                "conditioning or physics input"
            )
    return models


def calibrate(
    models, data, *, split: str = "val", thickness_nm=None, features=ERROR_FEATURES
) -> tuple[dict, np.ndarray | None]:
    """Fit an ensemble's error estimate, affine in ``features``, on one split of a dataset.

    The coefficients of the features are constrained to be ≥ 0 (a larger spread, a structure
    farther from the training set or a thicker crystal never lowers the estimate), the
    intercept is free; a feature that is constant on the split (one thickness) is dropped.
    The distance's reference is the whole ``train`` split of ``data`` (the members should have
    been trained on it, without ``--max-train``).

    Parameters
    ----------
    models : sequence of Surrogate
        The members (≥ 2; same thicknesses and inputs).
    data : path-like or Dataset
    split : str
        Split to calibrate on; ``val`` (the default) keeps the test split untouched.
    thickness_nm : sequence of float, optional
        Thicknesses to calibrate at [nm]; default: those the members were trained on.
    features : sequence of str
        From :data:`ERROR_FEATURES`, starting with 'spread'; ``("spread",)`` gives Z ≈
        intercept + slope · spread.

    Returns
    -------
    calibration : dict
        As :attr:`Ensemble.calibration` (without ``reference``), plus ``mean_spread``,
        ``mean_z`` and the fractions of samples whose true Z lies below the estimate
        (``coverage``) and below estimate + q90_residual (``coverage_q90``, 0.9 by construction
        on this split).
    reference : ndarray or None
        The training structures' :func:`potential_features` (float16-rounded, as saved), when
        ``reference_distance`` is used; set it as :attr:`Ensemble.reference`.
    """
    from scipy.optimize import lsq_linear

    from lacbed.dataset.store import Dataset, open_dataset
    from lacbed.ml.evaluate import evaluate

    models = check_members(models)
    if len(models) < 2:
        raise LacbedError(f"an ensemble needs at least two models, got {len(models)}")
    features = tuple(features)
    if not features or features[0] != "spread" or set(features) - set(ERROR_FEATURES):
        raise LacbedError(
            f"error-estimate features must start with 'spread', from {ERROR_FEATURES}"
        )
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    ev = evaluate(models, ds, splits=(split,), thickness_nm=thickness_nm)[split]
    arr, used = ev.arrays, ev.split
    if len(arr.thickness_nm) < 2:  # a constant column cannot be fitted
        features = tuple(f for f in features if f != "thickness_nm")
    reference = None
    if "reference_distance" in features:
        reference = training_features(ds)
    x = feature_matrix(
        features, ev.spread, potentials=arr.potential, thickness_nm=arr.thickness_nm, a=arr.a,
        reference=reference,
    )  # fmt: skip
    d, z = ev.spread.ravel(), ev.z.ravel()
    coef = np.full(len(features) + 1, np.nan)
    if d.size > len(features) and np.ptp(d) > 0:
        design = np.column_stack([np.ones(d.size), x])
        lower = [-np.inf] + [0.0] * len(features)
        coef = lsq_linear(design, z, bounds=(lower, np.inf)).x
    est = coef[0] + x @ coef[1:]
    fitted = bool(np.all(np.isfinite(coef)))
    q90 = float(np.percentile(z - est, 90)) if fitted else float("nan")
    out: dict = {"intercept": float(coef[0])}
    if features == ("spread",):
        out["slope"] = float(coef[1])
    else:
        out.update(features=list(features), coef=[float(v) for v in coef[1:]], k=K_NEAREST,
                   fft_order=FFT_ORDER)  # fmt: skip
    out.update(
        q90_residual=q90,
        spearman=spearman(est, z) if fitted else float("nan"),
        spearman_spread=spearman(d, z),
        n=int(d.size),
        split=used,
        dataset=Path(ds.path).name,  # a name, no absolute path in a file that may be shipped
        mean_spread=float(d.mean()),
        mean_z=float(z.mean()),
        coverage=float(np.mean(z <= est)),
        coverage_q90=float(np.mean(z <= est + q90)),
    )
    return out, reference


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
    est = ensemble.estimate(ens.spread, kw["potentials"], t, kw["a"])
    return EnsemblePrediction(mean=ens.mean, spread=ens.spread, estimated_z=est)
