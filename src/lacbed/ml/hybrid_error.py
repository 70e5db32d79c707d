"""The hybrid model's estimate of its own error, from its correction of the coarse run.

The hybrid model (``lacbed predict --hybrid``) turns a coarse Bloch-wave run (the 'coarse'
physics map, :func:`lacbed.ml.physics.physics_maps`) into a prediction of the converged
pattern. How far it had to move the coarse run, the **correction**

    c = Z(prediction, coarse run),   Z = 1 − ZNCC,

says how far the coarse run was from converged, and so roughly how large the remaining error
is. The estimate is a least-squares fit of the log of the true Z on the log of c, the thickness
and ln(a / 1 Å), made on a split the model was not trained on (``val``):

    ln(Z + ε) ≈ b₀ + b₁ ln(c + ε) + b₂ t + b₃ ln(a / 1 Å),   ε = EPS,

and its residuals r give two numbers per pattern: the **estimate**, exp(fit + median r) − ε
(half the calibration patterns lay above it), and the **90 % bound**, exp(fit + q₉₀(r)) − ε (9
in 10 lay below it; the residuals' quantiles are taken separately for small and large cells;
fewer lie below at 50 nm, see the model card). Errors span four decades (0.001 % to 90 %), so the fit is in logs; an
affine fit in Z itself, tried first, ranked about as well but flagged only 52 of the 110 val
patterns above 5 % (``benchmarks/ml_refine_estimate.py``). :func:`calibrate_hybrid` also
reports, out of fold (the calibration structures in ``folds`` folds, each predicted by a fit to
the others, each group of related structures, e.g. a prototype, whole in one fold), the
Spearman rank correlation of the estimate with the true Z, how often the bound holds per
thickness and cell size, and what ``--max-error`` would do at a few thresholds. ``benchmarks/ml_hybrid_error.py`` makes the shipped calibration and
measures, beside it, signals that ranked no better than c: the high-frequency power of the
coarse run and the converged run's beam count.

**Large cells** (a ≥ :data:`LARGE_CELL_A`, pools of ~1 100 beams against the coarse run's 96)
are where the correction fails: the network leaves a coarse run that is far from converged
almost as it is (c ≈ 0.1 %) and the true Z can be tens of per cent. There the coarse run's own
convergence estimate e (the engine re-solves a sample of pixels with twice the beams,
:func:`lacbed.ml.physics.coarse_maps`; at 96 beams and 64 px it costs little) sees what the
network cannot, and the fit takes two more columns, L·ln(e + ε) and L (L = 1 for a large cell,
0 otherwise, so small cells' estimates do not depend on e). The gain is measured by
``benchmarks/ml_hybrid_error.py`` and given in docs/model_card.md, "Hybrid mode".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lacbed.errors import LacbedError
from lacbed.metrics import z_score

log = logging.getLogger(__name__)

__all__ = [
    "EPS",
    "HYBRID_ERROR_FEATURES",
    "HybridError",
    "ESCALATION_THRESHOLDS",
    "LARGE_CELL_A",
    "Z_MAX",
    "calibrate_hybrid",
    "calibrate_model",
    "correction",
    "error_file",
    "load_error",
    "record_groups_costs",
    "fold_of_groups",
    "file_sha256",
    "hybrid_design",
]

#: Added to Z and to the correction before the logarithm [1] (Z = 0.001 %).
EPS = 1e-5
#: Columns of :func:`hybrid_design` after the intercept; the last two only with the coarse
#: runs' convergence estimates (``large_cell`` is 1 for a ≥ :data:`LARGE_CELL_A`, else 0).
HYBRID_ERROR_FEATURES: tuple[str, ...] = (
    "log_correction", "thickness_nm", "log_a", "large_cell_log_convergence", "large_cell",
)  # fmt: skip
#: Thresholds on Z at which :func:`calibrate_hybrid` reports what ``--max-error`` would do [1].
ESCALATION_THRESHOLDS: tuple[float, ...] = (0.02, 0.05, 0.10)
#: Lattice parameter from which a cell counts as large [Å]: there the coarse run's 96 beams are
#: a small part of a ~1 100-beam pool, and the estimate misses most large errors (model card).
LARGE_CELL_A = 8.0
#: Largest Z there is (anticorrelated patterns) [1]; estimates are clipped to it.
Z_MAX = 2.0


def correction(predicted: np.ndarray, physics: np.ndarray) -> np.ndarray:
    """Z between each prediction and the coarse run it corrected, shape (...) [1]; NaN where
    either image is constant or not finite (then the estimate is NaN: ``--max-error`` sends
    such a pattern to the engine).

    Parameters
    ----------
    predicted, physics : ndarray, shape (..., S, S)
        The hybrid model's predictions and its physics input (any scale: Z ignores scale and
        offset).
    """
    p, q = np.asarray(predicted, dtype=np.float64), np.asarray(physics, dtype=np.float64)
    if p.shape != q.shape or p.ndim < 2:
        raise LacbedError(f"predictions {p.shape} and coarse runs {q.shape} must match")
    with np.errstate(invalid="ignore"):
        c = np.asarray(z_score(p, q), dtype=np.float64).reshape(p.shape[:-2])
        # Z of a constant or non-finite image is undefined (z_score calls it 1): no estimate
        bad = ~(np.all(np.isfinite(p), axis=(-1, -2)) & np.all(np.isfinite(q), axis=(-1, -2)))
        bad |= (np.ptp(p, axis=(-1, -2)) == 0) | (np.ptp(q, axis=(-1, -2)) == 0)
    return np.where(bad, np.nan, c)


def hybrid_design(
    corr, thickness_nm, a, eps: float = EPS, convergence=None, large_a: float = LARGE_CELL_A
) -> np.ndarray:
    """The design matrix of the fit, one row per (structure, thickness).

    Parameters
    ----------
    corr : array_like, shape (n, T)
        Corrections (:func:`correction`) [1].
    thickness_nm : array_like, shape (T,)
        Thicknesses [nm].
    a : array_like, shape (n,)
        Lattice parameters [Å].
    eps : float
        ε of ln(c + ε) [1].
    convergence : array_like, shape (n, T), optional
        The engine's convergence estimate of each coarse run [1]
        (:func:`lacbed.ml.physics.coarse_maps`); used for large cells only.
    large_a : float
        Lattice parameter from which a cell is large [Å].

    Returns
    -------
    ndarray, shape (n·T, 4) or, with ``convergence``, (n·T, 6)
        Columns 1, ln(c + ε), t [nm], ln(a / 1 Å) [, L·ln(e + ε), L] with e the convergence
        estimate and L = 1 for a ≥ :data:`LARGE_CELL_A`, else 0 (so small cells' rows do not
        depend on e).
    """
    c = np.asarray(corr, dtype=np.float64)
    t = np.asarray(thickness_nm, dtype=np.float64).reshape(-1)
    aa = np.asarray(a, dtype=np.float64).reshape(-1)
    if c.ndim != 2 or c.shape != (len(aa), len(t)):
        raise LacbedError(
            f"corrections must be (structures, thicknesses) = ({len(aa)}, {len(t)}), got {c.shape}"
        )
    if not np.all(aa > 0):
        raise LacbedError("the error estimate needs lattice parameters > 0 Å")
    cols = [
        np.ones(c.shape),
        np.log(np.maximum(c, 0.0) + eps),
        np.broadcast_to(t, c.shape),
        np.broadcast_to(np.log(aa)[:, None], c.shape),
    ]
    if convergence is not None:
        e = np.asarray(convergence, dtype=np.float64)
        if e.shape != c.shape:
            raise LacbedError(f"convergence estimates {e.shape} must match corrections {c.shape}")
        large = np.broadcast_to((aa >= large_a)[:, None], c.shape)
        with np.errstate(invalid="ignore"):
            log_e = np.log(np.maximum(e, 0.0) + eps)
        cols += [np.where(large, log_e, 0.0), large.astype(np.float64)]
    return np.stack([x.ravel() for x in cols], axis=1)


def fold_of_groups(groups, folds: int, seed: int) -> np.ndarray:
    """Fold (0 … folds − 1) of each structure such that every group is in one fold.

    Parameters
    ----------
    groups : array_like, shape (n,)
        A label per structure (e.g. its structure prototype, so that no structure type is on
        both sides of a fold).
    folds : int
    seed : int
        Seed of the shuffle of the distinct labels (dealt to folds in turn).
    """
    labels, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    if len(labels) < folds:
        raise LacbedError(f"{len(labels)} groups cannot fill {folds} folds")
    order = np.random.default_rng(seed).permutation(len(labels))
    fold_of_label = np.empty(len(labels), dtype=np.int64)
    fold_of_label[order] = np.arange(len(labels)) % folds
    return fold_of_label[inverse.reshape(-1)]


def _fit(x: np.ndarray, y: np.ndarray, large: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of y on x; the median and 90th percentile of the residuals, per class
    (row 0: small cells, row 1: large; a class with fewer than 10 rows takes all rows')."""
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    r = y - x @ coef
    q = np.empty((2, 2))
    for k, rows in enumerate((~large, large)):
        rk = r[rows] if rows.sum() >= 10 else r
        q[k] = np.median(rk), np.quantile(rk, 0.9)
    return coef, q


def calibrate_hybrid(
    z, corr, thickness_nm, a, *, folds: int = 10, seed: int = 0, groups=None, cost_s=None,
    convergence=None,
) -> dict:  # fmt: skip
    """Fit the hybrid's error estimate and measure it out of fold.

    Parameters
    ----------
    z : array_like, shape (n, T)
        True Z of the hybrid's predictions on a split it was not trained on [1].
    corr : array_like, shape (n, T)
        Their corrections (:func:`correction`) [1].
    thickness_nm : array_like, shape (T,)
        Thicknesses [nm] (≥ 2 distinct).
    a : array_like, shape (n,)
        Lattice parameters [Å].
    folds : int
        Folds of the out-of-fold measurement: each is predicted by a fit to the others.
    seed : int
        Seed of the assignment of groups to folds (:func:`fold_of_groups`).
    groups : array_like, shape (n,), optional
        Label of each structure kept whole within a fold (e.g. the structure prototype, so that
        related structures never inform each other's estimate); default: each structure alone.
    cost_s : array_like, shape (n,), optional
        CPU time of the converged engine for each structure, all thicknesses in one call [s]
        (the release records it): adds the mean engine time per structure that each
        threshold would cost, an upper bound (a structure sent at one thickness is charged its
        four-thickness run).
    convergence : array_like, shape (n, T), optional
        The engine's convergence estimates of the coarse runs (:func:`hybrid_design`): the fit
        then has the two large-cell columns.

    Returns
    -------
    dict
        ``features``, ``coef`` (intercept first; per unit of the feature: 1/nm for the
        thickness), ``median_residual`` and ``q90_residual`` (of ln(Z + ε), small cells) and
        ``large_cell_residuals`` (the same for a ≥ :data:`LARGE_CELL_A`: each class gets its
        own 90 % bound), ``eps``, ``n`` (patterns) and ``out_of_fold``
        (:func:`_out_of_fold_report`). With fewer large-cell groups than ``folds`` the
        convergence columns are left out.
    """
    zz = np.asarray(z, dtype=np.float64)
    x = hybrid_design(corr, thickness_nm, a, convergence=convergence)
    n, nt = zz.shape
    if len(np.unique(thickness_nm)) < 2 or n < 2 * folds or folds < 2:
        raise LacbedError(
            f"calibrating the hybrid's error needs >= 2 thicknesses and >= {2 * max(folds, 2)} "
            f"structures, got {nt} and {n}"
        )
    if not np.all(np.isfinite(zz)) or not np.all(np.isfinite(x)):
        raise LacbedError("the hybrid's calibration data hold non-finite values")
    cost = None if cost_s is None else np.asarray(cost_s, dtype=np.float64).reshape(-1)
    if cost is not None and cost.shape != (n,):
        raise LacbedError(f"cost_s must hold one time per structure ({n}), got {cost.shape}")
    labels = np.arange(n) if groups is None else np.asarray(groups).reshape(-1)
    if len(labels) != n:
        raise LacbedError(f"groups must hold one label per structure ({n}), got {len(labels)}")
    y = np.log(np.maximum(zz, 0.0) + EPS).ravel()
    aa = np.asarray(a, dtype=np.float64).reshape(-1)
    large = np.repeat(aa >= LARGE_CELL_A, nt)
    if x.shape[1] > 4 and len(np.unique(labels[aa >= LARGE_CELL_A].astype(str))) < folds:
        log.warning("fewer than %d large-cell groups: the fit leaves out the convergence "
                    "estimate", folds)  # fmt: skip
        x = x[:, :4]  # too few to fit the two large-cell columns (collinear, or none)
    coef, q = _fit(x, y, large)
    fold = np.repeat(fold_of_groups(labels, folds, seed), nt)
    fit_oof, med_oof, q90_oof = np.empty_like(y), np.empty_like(y), np.empty_like(y)
    for g in range(folds):
        out = fold == g
        c, qg = _fit(x[~out], y[~out], large[~out])
        fit_oof[out] = x[out] @ c
        k = large[out].astype(int)
        med_oof[out], q90_oof[out] = qg[k, 0], qg[k, 1]
    est = np.minimum(np.exp(fit_oof + med_oof) - EPS, Z_MAX).reshape(n, nt)
    upper = np.minimum(np.exp(fit_oof + q90_oof) - EPS, Z_MAX).reshape(n, nt)
    report = _out_of_fold_report(zz, est, upper, aa, cost)
    return {
        "features": list(HYBRID_ERROR_FEATURES[: x.shape[1] - 1]),
        "large_cell_a": LARGE_CELL_A,
        "coef": [float(v) for v in coef],
        "median_residual": float(q[0, 0]),  # small cells (a < large_cell_a)
        "q90_residual": float(q[0, 1]),
        "large_cell_residuals": {"median": float(q[1, 0]), "q90": float(q[1, 1])},
        "eps": EPS,
        "n": int(zz.size),
        "n_structures": int(n),
        "n_groups": int(len(np.unique(labels.astype(str)))),
        "thicknesses_nm": [float(t) for t in np.asarray(thickness_nm).reshape(-1)],
        "out_of_fold": {"folds": int(folds), "seed": int(seed), **report},
    }


def calibrate_model(
    path: str | os.PathLike, data, *, split: str = "val", folds: int = 10, seed: int = 0,
    n_jobs: int | None = 1,
) -> tuple[HybridError, object, np.ndarray | None]:  # fmt: skip
    """Calibrate a hybrid model file on one split of a dataset or release.

    Scores the model (:func:`lacbed.ml.evaluate.evaluate`), fits :func:`calibrate_hybrid` with
    the structures' prototypes as fold groups and their recorded engine CPU times (when the
    records have them), and ties the result to the model file by its SHA-256.

    Parameters
    ----------
    path : path-like
        Model file or run directory of a hybrid model (physics input 'coarse' or 'fewbeam').
    data : path-like or Dataset
        Dataset or release; ``split`` must not have been used to train the model.
    split : str
        'val' (the default) keeps the test split untouched.
    folds, seed : int
        As :func:`calibrate_hybrid`.
    n_jobs : int, optional
        Engine worker threads for the coarse runs that are solved again.

    Returns
    -------
    error : HybridError
    evaluation : lacbed.ml.evaluate.SplitEvaluation
        The scored split (predictions, true Z, inputs), for reports.
    convergence : ndarray, shape (n, T), or None
        The coarse runs' convergence estimates (a 'coarse' model), for reports.
    """
    from lacbed.dataset.store import Dataset, open_dataset
    from lacbed.ml.evaluate import evaluate
    from lacbed.ml.model import _resolve, load_surrogate
    from lacbed.ml.physics import map_settings, physics_beams

    file = _resolve(path)
    model, info = load_surrogate(file)
    if physics_beams(model.config.physics_input) is None:
        raise LacbedError(f"{path} is not a hybrid model (its input is not an engine run)")
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    mine = map_settings(info.data.get("engine_settings") or {})
    theirs = map_settings(ds.settings.get("settings", {}))
    if mine != theirs:  # predict builds the maps from the model's settings
        raise LacbedError(
            f"{Path(ds.path).name} was built with other engine settings than {file.name} was "
            f"trained on ({theirs} against {mine}): calibrate on its own dataset"
        )
    ev = evaluate(model, ds, splits=(split,))[split]
    arr = ev.arrays
    groups, cost = record_groups_costs(ds, arr.keys)
    conv = cpu = None
    if model.config.physics_input == "coarse":  # the coarse runs again, with their estimates
        conv, cpu = _coarse_convergence(ds, info, arr, n_jobs)
    cal = calibrate_hybrid(
        ev.z, correction(ev.predicted, arr.physics), arr.thickness_nm, arr.a, folds=folds,
        seed=seed, groups=groups, cost_s=cost, convergence=conv,
    )  # fmt: skip
    cal.update(model_sha256=file_sha256(file), split=ev.split, dataset=Path(ds.path).name,
               dataset_items=len(ds), coarse_cpu_s_per_large_cell=cpu)  # fmt: skip
    return HybridError(calibration=cal), ev, conv


def record_groups_costs(ds, keys) -> tuple[list, list | None]:
    """Fold groups (each structure's prototype, else its key) and converged-engine CPU times
    [s] (None unless every record has one) of the items ``keys`` of a dataset or release."""
    recs = {r["key"]: r for r in getattr(ds, "records", [])}
    groups = [recs.get(k, {}).get("prototype", k) for k in keys]
    cost = [recs.get(k, {}).get("cpu_s") for k in keys]  # the converged run, all thicknesses
    return groups, cost if all(c is not None for c in cost) else None


def _coarse_convergence(ds, info, arr, n_jobs) -> tuple[np.ndarray, float]:
    """The engine's convergence estimate (n, T) of each large cell's coarse run of a scored
    split (NaN for the others, as ``predict`` computes it), the runs checked to reproduce the
    maps the model was scored on, and the CPU time per large cell [s]."""
    import time

    from lacbed.ml.data import _crystals_of
    from lacbed.ml.physics import coarse_maps, map_settings, recorded_beams

    large = np.asarray(arr.a, dtype=np.float64) >= LARGE_CELL_A
    conv = np.full((len(large), len(arr.thickness_nm)), np.nan)
    keys = [str(k) for k, big in zip(arr.keys, large, strict=True) if big]
    if not keys:
        return conv, None
    crystals = _crystals_of(ds, keys)
    t0 = time.process_time()
    maps, conv[large] = coarse_maps(
        crystals, arr.thickness_nm, size=ds.size, strong_beams=recorded_beams("coarse", info.data),
        n_jobs=n_jobs, **map_settings(ds.settings.get("settings", {})),
    )  # fmt: skip
    cpu = (time.process_time() - t0) / len(crystals)
    log.info("large cells' coarse runs with their estimates: %.2f s CPU each", cpu)
    if not np.allclose(maps, np.asarray(arr.physics)[large], rtol=0, atol=1e-5):
        raise LacbedError("the coarse runs do not reproduce the maps the model was scored on")
    return conv, cpu


def error_file(path: str | os.PathLike) -> Path:
    """Where a model's calibration lives: ``X.error.json`` beside model file ``X.pt`` (a run
    directory's ``model.pt`` → ``model.error.json``), as the shipped ``hybrid.error.json``."""
    p = Path(path)
    p = p / "model.pt" if p.is_dir() else p
    return p.with_name(p.stem + ".error.json")


def load_error(path: str | os.PathLike, physics_input: str | None) -> HybridError | None:
    """The calibration beside a model file (:func:`error_file`), checked to belong to it
    (:meth:`HybridError.check_model`); None when there is none.

    Parameters
    ----------
    path : path-like
        Model file or run directory.
    physics_input : str or None
        The loaded model's physics input ('coarse', 'fewbeam', ...).

    Raises
    ------
    LacbedError
        The file is unreadable, malformed, or was made for another model file.
    """
    from lacbed.ml.model import _resolve

    model_file = _resolve(path)
    f = error_file(model_file)
    if not f.is_file():
        return None
    err = HybridError.load(f)
    err.check_model(model_file, physics_input, f.name, "rerun lacbed calibrate")
    return err


def _out_of_fold_report(z, est, upper, a, cost) -> dict:
    """How the out-of-fold estimate and bound (n, T) do against the true Z.

    ``spearman`` (overall, per thickness), ``coverage`` and ``coverage_upper90`` (fractions of
    true Z at or below the estimate and the bound; the latter also per thickness and for cells
    below and from :data:`LARGE_CELL_A`) and ``escalation``: per threshold and comparison
    ('estimate', 'upper90'), the fractions of patterns and of structures sent to the engine,
    how many patterns above the threshold were sent (all cells, large cells) and the smallest
    lattice parameter among those missed [Å], with ``cost`` the
    engine time per structure [s], and the median, P90 (per thickness) and maximum Z after.
    """
    from lacbed.ml.uncertainty import spearman

    nt = z.shape[1]
    large = a >= LARGE_CELL_A
    covered = z <= upper
    escalation = {}
    for thr in ESCALATION_THRESHOLDS:
        row = {}
        for name, e in (("estimate", est), ("upper90", upper)):
            flagged, above = e > thr, z > thr
            any_t = flagged.any(axis=1)
            row[name] = {
                "escalated": float(flagged.mean()),
                "structures_escalated": float(any_t.mean()),
                "caught": int((flagged & above).sum()),
                "above_threshold": int(above.sum()),
                "caught_large_cells": int((flagged & above)[large].sum()),
                # the smallest cell among the patterns above the threshold left unsent [Å]
                "missed_min_a": float(np.broadcast_to(a[:, None], z.shape)[above & ~flagged].min())
                if (above & ~flagged).any()
                else None,
                "above_threshold_large_cells": int(above[large].sum()),
                **_after(z, flagged),
            }
            if cost is not None:
                row[name]["engine_cpu_s_per_structure"] = float(np.mean(np.where(any_t, cost, 0)))
        escalation[f"{thr:g}"] = row
    return {
        "spearman": spearman(est, z),
        "spearman_per_thickness": [spearman(est[:, j], z[:, j]) for j in range(nt)],
        "coverage": float(np.mean(z <= est)),
        "coverage_upper90": float(covered.mean()),
        "coverage_upper90_per_thickness": [float(v) for v in covered.mean(axis=0)],
        "coverage_upper90_cells": {
            f"a < {LARGE_CELL_A:g}": float(covered[~large].mean()) if (~large).any() else None,
            f"a >= {LARGE_CELL_A:g}": float(covered[large].mean()) if large.any() else None,
        },
        "n_large_cells": int(large.sum()),
        "engine_cpu_s_per_structure_all": None if cost is None else float(np.mean(cost)),
        "escalation": escalation,
    }


def _after(z: np.ndarray, flagged: np.ndarray) -> dict:
    """Z per thickness once the flagged patterns come from the converged engine (Z ≈ 0)."""
    after = np.where(flagged, 0.0, z)
    return {
        "median_after": [float(v) for v in np.median(after, axis=0)],
        "p90_after": [float(v) for v in np.quantile(after, 0.9, axis=0)],
        "max_after": float(after.max()),
    }


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (ties a calibration to the model file it was made for)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class HybridError:
    """A calibrated error estimate of one hybrid model (:func:`calibrate_hybrid`'s dict, plus
    ``model_sha256`` of the model file it belongs to, ``split`` and ``dataset``)."""

    calibration: dict

    @property
    def large_cell_a(self) -> float:
        """Lattice parameter from which this calibration treats a cell as large [Å]."""
        return float(self.calibration.get("large_cell_a", LARGE_CELL_A))

    def check_model(
        self, model_file: str | os.PathLike, physics_input: str | None, name: str, hint: str
    ) -> None:  # fmt: skip
        """Raise :class:`lacbed.ml.model.ModelFileError` (one line, naming the calibration
        ``name`` and ending in ``hint``) unless this calibration was made for ``model_file``
        (its SHA-256) and, if it uses convergence estimates, the model takes coarse runs."""
        from lacbed.ml.model import ModelFileError

        model_file = Path(model_file)
        if self.needs_convergence and physics_input != "coarse":
            raise ModelFileError(f"{name} needs coarse runs, which {model_file.name} does not take")
        if self.calibration.get("model_sha256") != file_sha256(model_file):
            raise ModelFileError(f"{name} was calibrated for another {model_file.name}: {hint}")

    @property
    def needs_convergence(self) -> bool:
        """Whether the estimate uses the coarse runs' convergence estimates (large cells)."""
        return len(self.calibration["coef"]) == len(HYBRID_ERROR_FEATURES) + 1

    def estimate(
        self, predicted, physics, thickness_nm, a, convergence=None
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Estimated Z and its 90 % bound [1], each shape (n, T), in [0, :data:`Z_MAX`]; NaN
        where the correction is (:func:`correction`) or a large cell's convergence estimate.

        Parameters
        ----------
        predicted, physics : ndarray, shape (n, T, S, S)
            The hybrid's predictions and its coarse-run inputs.
        thickness_nm : array_like, shape (T,)
            Thicknesses [nm].
        a : array_like, shape (n,)
            Lattice parameters [Å].
        convergence : array_like, shape (n, T), optional
            The coarse runs' convergence estimates [1] (:func:`lacbed.ml.physics.coarse_maps`);
            needed when :attr:`needs_convergence`.
        """
        c = self.calibration
        eps = float(c.get("eps", EPS))
        corr = correction(predicted, physics)
        if self.needs_convergence and convergence is None:
            raise LacbedError(
                "this hybrid error estimate needs the coarse runs' convergence estimates"
            )
        x = hybrid_design(
            corr, thickness_nm, a, eps, convergence if self.needs_convergence else None,
            self.large_cell_a,
        )  # fmt: skip
        fit = (x @ np.asarray(c["coef"], dtype=np.float64)).reshape(corr.shape)
        out = []
        large = (np.asarray(a, dtype=np.float64).reshape(-1) >= self.large_cell_a)[:, None]
        big = c.get("large_cell_residuals") or {}
        for key, big_key in (("median_residual", "median"), ("q90_residual", "q90")):
            r = np.where(large, float(big.get(big_key, c[key])), float(c[key]))
            out.append(np.clip(np.exp(fit + r) - eps, 0.0, Z_MAX))  # NaN stays NaN
        return out[0], out[1]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the calibration as JSON (atomically).

        Parameters
        ----------
        path : path-like
            The file (conventionally ``<model stem>.error.json``).
        """
        from lacbed._io import atomic_path

        path = Path(path)
        blob = {"format": "lacbed-hybrid-error", "calibration": self.calibration}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(blob, indent=1, allow_nan=False))
        return path

    @classmethod
    def parse(cls, text: str, name: str) -> HybridError:
        """A calibration from its JSON text, checked.

        Parameters
        ----------
        text : str
            The file's text.
        name : str
            What to call it in the one-line error.

        Raises
        ------
        LacbedError
            Not JSON, not a 'lacbed-hybrid-error' object, or no usable coefficients.
        """
        try:
            blob = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LacbedError(f"{name} is not a hybrid error file: {exc}") from None
        if not isinstance(blob, dict) or blob.get("format") != "lacbed-hybrid-error":
            raise LacbedError(f"{name} is not a hybrid error file (no 'lacbed-hybrid-error')")
        cal = blob.get("calibration")
        try:
            coef = np.asarray(cal["coef"], dtype=float)
            values = [float(cal["median_residual"]), float(cal["q90_residual"])]
        except (KeyError, TypeError, ValueError):
            raise LacbedError(f"{name}: the calibration lacks coef or its residuals") from None
        if (
            coef.ndim != 1
            or len(coef) not in (4, len(HYBRID_ERROR_FEATURES) + 1)
            or not np.all(np.isfinite([*coef, *values]))
        ):
            raise LacbedError(f"{name}: the calibration's coefficients are not usable")
        return cls(calibration=cal)

    @classmethod
    def load(cls, path: str | os.PathLike) -> HybridError:
        """Read and check a calibration file (:meth:`parse`); one-line error if unreadable."""
        from lacbed._io import read_text

        return cls.parse(read_text(path, "a hybrid error file"), str(path))
