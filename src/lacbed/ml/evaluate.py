"""Evaluation of a trained surrogate on the splits of a dataset: Z statistics and gallery picks.

Z = 1 − ZNCC is computed with the numpy reference :func:`lacbed.metrics.z_score` between the
target (clipped as in training, :func:`lacbed.ml.data.prepare_target`) and the prediction; statistics are mean, median and 90th percentile (docs/physics.md
§8 asks for median and P90, not only the mean), in units of 1 (multiply by 100 for %).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from lacbed.dataset.splits import SPLIT_NAMES
from lacbed.errors import LacbedError
from lacbed.metrics import z_score
from lacbed.ml.data import SplitArrays, load_split, prepare_target, resolve_thicknesses
from lacbed.ml.model import Surrogate, run_model

__all__ = ["SplitEvaluation", "evaluate_split", "evaluate", "z_stats"]


def z_stats(z: np.ndarray) -> dict:
    """n, mean, median and P90 of a set of Z values."""
    z = np.asarray(z, dtype=np.float64)
    if z.size == 0:
        return {"n": 0, "mean": None, "median": None, "p90": None}
    return {
        "n": int(z.size),
        "mean": float(z.mean()),
        "median": float(np.median(z)),
        "p90": float(np.percentile(z, 90)),
    }


@dataclass(frozen=True, eq=False)
class SplitEvaluation:
    """Predictions and Z of one split.

    Attributes
    ----------
    arrays : SplitArrays
        Inputs and simulated patterns (n structures, T thicknesses).
    predicted : ndarray, shape (n, T, S, S)
        Standardised predictions.
    z : ndarray, shape (n, T)
        Z per structure and thickness.
    """

    arrays: SplitArrays
    predicted: np.ndarray
    z: np.ndarray

    def stats(self) -> dict:
        """Z statistics overall and per thickness."""
        out = z_stats(self.z.ravel())
        out["per_thickness"] = {
            f"{t:g}": z_stats(self.z[:, j]) for j, t in enumerate(self.arrays.thickness_nm)
        }
        return out


def evaluate_split(
    model: Surrogate, arrays: SplitArrays, *, batch_size: int = 32
) -> SplitEvaluation:
    """Run the model on every (structure, thickness) of a split and score it."""
    n, t = arrays.pattern.shape[:2]
    pred = np.empty(arrays.pattern.shape, dtype=np.float32)
    for j, tj in enumerate(arrays.thickness_nm):
        pred[:, j] = run_model(
            model,
            arrays.potential,
            thickness_nm=float(tj),
            a=arrays.a,
            symmetry=arrays.symmetry,
            batch_size=batch_size,
        )
    target = prepare_target(arrays.pattern, model.norm)
    z = z_score(target, pred) if n else np.zeros((0, t))
    return SplitEvaluation(arrays=arrays, predicted=pred, z=np.asarray(z).reshape(n, t))


def evaluate(
    model: Surrogate,
    data: str | os.PathLike,
    *,
    thickness_nm=None,
    splits: tuple[str, ...] = SPLIT_NAMES,
    require: str = "test",
) -> dict[str, SplitEvaluation]:
    """Evaluate on every split of a dataset.

    ``thickness_nm``: thicknesses to evaluate (default: those the model was trained on,
    ``model.trained_thicknesses_nm``; for a model that does not know them, every stored thickness
    if it is conditioned on thickness and the middle one otherwise). The split named by
    ``require`` must be non-empty, otherwise :class:`LacbedError` (e.g. a dataset too small to
    have a test split).
    """
    from lacbed.dataset.store import open_dataset

    ds = open_dataset(data)
    if ds.size != model.config.size:
        raise LacbedError(
            f"the model expects {model.config.size}-pixel images, the dataset has {ds.size}"
        )
    counts = ds.split_counts()
    if counts.get(require, 0) == 0:
        raise LacbedError(
            f"the dataset {ds.path} has no {require!r} split (items per split: {counts}); "
            "evaluate on a larger dataset or choose another --split"
        )
    if thickness_nm is None and model.trained_thicknesses_nm:
        thickness_nm = model.trained_thicknesses_nm
    t_idx = resolve_thicknesses(
        ds.thicknesses_nm, thickness_nm, conditioned=model.config.conditioned
    )
    out = {}
    for name in splits:
        arrays = load_split(ds, name, thickness_index=t_idx, require=False)
        out[name] = evaluate_split(model, arrays)
    return out
