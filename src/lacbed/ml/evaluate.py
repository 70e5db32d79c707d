"""Evaluation of a trained surrogate on one split of a dataset: Z statistics and the worst cases.

Z = 1 − ZNCC is computed with the numpy reference :func:`lacbed.metrics.z_score` between the
target (clipped as in training, :func:`lacbed.ml.data.prepare_target`) and the prediction;
statistics are mean, median and 90th percentile per thickness (docs/physics.md §8 asks for median
and P90, not only the mean), in units of 1 (multiply by 100 for %), plus the worst cases.

Protocol (issue 10 §2): model selection uses ``val`` only, so :func:`evaluate` scores ``val``
unless another split is named. Headline numbers are on ``test-real`` (the real, non-derived
materials of a release's test split); a working dataset store has no ``test-real``, and
:func:`resolve_split` falls back to its ``test`` split and says so in the returned note.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lacbed.dataset.splits import SPLIT_NAMES
from lacbed.errors import LacbedError, SettingsError
from lacbed.metrics import z_score
from lacbed.ml.data import SplitArrays, load_split, prepare_target, resolve_thicknesses
from lacbed.ml.model import Surrogate, run_model_series

__all__ = [
    "EVAL_SPLITS",
    "SplitEvaluation",
    "evaluate",
    "evaluate_split",
    "resolve_split",
    "z_stats",
]

log = logging.getLogger(__name__)

#: Splits :func:`evaluate` accepts ('test-real' only exists in a release).
EVAL_SPLITS: tuple[str, ...] = (*SPLIT_NAMES, "test-real")


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
    split : str
        The split that was scored ('' when not from a dataset split).
    spread : ndarray, shape (n, T), or None
        A seed ensemble's spread (mean Z of its members against their mean) [1].
    """

    arrays: SplitArrays
    predicted: np.ndarray
    z: np.ndarray
    split: str = ""
    spread: np.ndarray | None = None

    def worst(self, n: int = 10) -> dict[str, list[dict]]:
        """The ``n`` largest Z at each thickness, worst first.

        Returns
        -------
        dict
            ``{"<t>": [{"index", "key", "formula", "z"}, ...]}`` keyed by thickness [nm]
            (formatted with ``:g``); ``index`` is the structure's row in :attr:`arrays`.
        """
        a = self.arrays
        out = {}
        for j, t in enumerate(a.thickness_nm):
            order = np.argsort(-self.z[:, j], kind="stable")[:n]
            out[f"{t:g}"] = [
                {
                    "index": int(i),
                    "key": a.keys[i],
                    "formula": a.formulas[i],
                    "z": float(self.z[i, j]),
                }
                for i in order
            ]
        return out

    def stats(self, *, worst: int = 10) -> dict:
        """Z statistics overall and per thickness, with the ``worst`` largest Z per thickness."""
        out = z_stats(self.z.ravel())
        out["per_thickness"] = {
            f"{t:g}": z_stats(self.z[:, j]) for j, t in enumerate(self.arrays.thickness_nm)
        }
        out["worst"] = {
            t: [{k: v for k, v in w.items() if k != "index"} for w in rows]
            for t, rows in self.worst(worst).items()
        }
        return out


def evaluate_split(
    model, arrays: SplitArrays, *, batch_size: int = 32, split: str = ""
) -> SplitEvaluation:
    """Run the model on every (structure, thickness) of a split and score it.

    ``model`` is a :class:`~lacbed.ml.model.Surrogate` or a sequence of them (a seed ensemble:
    its mean prediction is scored, :func:`lacbed.ml.uncertainty.ensemble_stats`, and its
    spread kept in ``SplitEvaluation.spread``).
    """
    from lacbed.ml.uncertainty import ensemble_stats

    models = _members(model)
    n, t = arrays.pattern.shape[:2]
    spread = None
    if n == 0:
        pred = np.empty(arrays.pattern.shape, dtype=np.float32)
    else:
        kw = {"thicknesses_nm": arrays.thickness_nm, "a": arrays.a, "symmetry": arrays.symmetry}
        preds = np.stack(
            [
                run_model_series(
                    m, arrays.potential, batch_size=batch_size, physics=arrays.physics, **kw
                )
                for m in models
            ]
        )
        pred, spread = (preds[0], None) if len(models) == 1 else ensemble_stats(preds)
    target = prepare_target(arrays.pattern, models[0].norm)
    z = z_score(target, pred) if n else np.zeros((0, t))
    return SplitEvaluation(
        arrays=arrays, predicted=pred, z=np.asarray(z).reshape(n, t), split=split, spread=spread
    )


def _members(model) -> list[Surrogate]:
    """One surrogate or a seed ensemble's members (checked to agree), as a list."""
    from lacbed.ml.uncertainty import check_members

    return [model] if isinstance(model, Surrogate) else check_members(model)


def resolve_split(dataset, name: str) -> tuple[str, str | None]:
    """The split of ``dataset`` to score for the requested ``name``, and a note if it differs.

    'test-real' exists only in a release; for a working dataset store it falls back to 'test'
    (which may hold derived as well as real materials), with a note saying so.

    Raises
    ------
    SettingsError
        If ``name`` is not one of :data:`EVAL_SPLITS`.
    """
    if name not in EVAL_SPLITS:
        raise SettingsError(f"unknown split {name!r}; choose one of {', '.join(EVAL_SPLITS)}")
    if name == "test-real" and "test-real" not in dataset.split_counts():
        return "test", (
            f"{dataset.path} is a working dataset store, not a release: it has no 'test-real' "
            "split, so the whole 'test' split (real and derived materials) was scored instead"
        )
    return name, None


def evaluate(
    model,
    data,
    *,
    splits: tuple[str, ...] = ("val",),
    thickness_nm=None,
) -> dict[str, SplitEvaluation]:
    """Evaluate a model on the named splits of a dataset (default: ``val`` only).

    Parameters
    ----------
    model : Surrogate or sequence of Surrogate
        One model, or the members of a seed ensemble (its mean prediction is scored; the
        members must share thicknesses, inputs and normalisation).
    data : path-like or lacbed.dataset.store.Dataset
        Working dataset store or release (:func:`lacbed.dataset.open_dataset`).
    splits : tuple of str
        Splits to score, from :data:`EVAL_SPLITS`. The test splits are scored only when named
        here (the protocol keeps them untouched until the final models are chosen); 'test-real'
        on a working store scores its 'test' split (:func:`resolve_split`).
    thickness_nm : sequence of float, optional
        Thicknesses to evaluate [nm]. Default: those the model was trained on
        (``model.trained_thicknesses_nm``); for a model that does not know them, every stored
        thickness if it is conditioned on thickness and the middle one otherwise.

    Returns
    -------
    dict
        ``{requested split name: SplitEvaluation}``; ``SplitEvaluation.split`` is the split
        actually scored.

    Raises
    ------
    LacbedError
        If a named split is empty (e.g. a dataset too small to have a test split) or the image
        sizes differ.
    """
    from lacbed.dataset.store import Dataset, open_dataset

    ens = model
    model = _members(ens)[0]
    ds = data if isinstance(data, Dataset) else open_dataset(data)
    if ds.size != model.config.size:
        raise LacbedError(
            f"the model expects {model.config.size}-pixel images, the dataset has {ds.size}"
        )
    resolved = {}
    counts = ds.split_counts()
    for name in splits:
        used, note = resolve_split(ds, name)
        if note:
            log.warning(note)
        if counts.get(used, 0) == 0:
            raise LacbedError(
                f"the dataset {ds.path} has no {used!r} split (items per split: {counts}); "
                "evaluate on a larger dataset or choose another --split"
            )
        resolved[name] = used
    if thickness_nm is None and model.trained_thicknesses_nm:
        thickness_nm = model.trained_thicknesses_nm
    t_idx = resolve_thicknesses(
        ds.thicknesses_nm, thickness_nm, conditioned=model.config.conditioned
    )
    out = {}
    for name, used in resolved.items():
        arrays = load_split(
            ds,
            used,
            thickness_index=t_idx,
            require=False,
            physics=model.config.physics_input or False,
        )
        out[name] = evaluate_split(ens, arrays, split=used)
    return out
