"""Predict 000 patterns for crystals with a trained surrogate (or the one shipped with lacbed).

:func:`predict_series` is the API of ``lacbed predict``: every requested thickness, from a single
model or a calibrated ensemble, and with ``max_error`` the Bloch-wave engine in place of every
prediction whose estimated error exceeds it (:func:`engine_kwargs` gives the engine settings).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lacbed.errors import SettingsError

if TYPE_CHECKING:  # annotations only: lacbed.ml.hybrid_error is imported where it is used
    from lacbed.ml.hybrid_error import HybridError
from lacbed.ml.model import (
    ModelFileError,
    ModelInfo,
    Surrogate,
    load_surrogate,
    run_model,
    run_model_series,
)

__all__ = [
    "SeriesPrediction",
    "default_model_resource",
    "engine_kwargs",
    "load_default",
    "load_model",
    "load_predictor",
    "model_inputs",
    "model_thickness",
    "predict_crystals",
    "predict_series",
    "load_hybrid",
    "Hybrid",
    "HYBRID_FILE",
    "HYBRID_ERROR_FILE",
    "series_inputs",
]

log = logging.getLogger(__name__)


def default_model_resource() -> Traversable:
    """The ensemble file shipped in the package (``lacbed/ml/weights/default.json``).

    A resource, not a path: in a zipped installation it has no file of its own; its members
    (``default-*.pt`` beside it) are read through ``importlib.resources.as_file``, as
    :func:`load_default` does.
    """
    return _shipped_resource("default.json")


def _shipped_resource(name: str) -> Traversable:
    """A file of the shipped model (``lacbed/ml/weights/NAME``), as a package resource."""
    return resources.files("lacbed.ml").joinpath("weights").joinpath(name)


def load_default():
    """The shipped model: a calibrated seed ensemble, members loaded (model card:
    ``docs/model_card.md``).

    Returns
    -------
    lacbed.ml.uncertainty.Ensemble
    """
    from lacbed.ml.uncertainty import Ensemble

    blob = _shipped_blob()
    models = [_shipped_member(name) for name in blob["members"]]
    members = [Path(name) for name in blob["members"]]
    calibration = dict(blob.get("calibration") or {})
    reference = None
    if calibration.get("reference"):
        with resources.as_file(
            _shipped_resource(calibration["reference"])
        ) as p:  # a temporary copy when the package is zipped
            reference = Ensemble.read_reference(p, calibration)
    return Ensemble(members, calibration, models=models, reference=reference)


def _shipped_blob() -> dict:
    """The shipped ensemble file's JSON (members, calibration)."""
    from lacbed.ml.uncertainty import Ensemble

    res = default_model_resource()
    if not res.is_file():
        raise ModelFileError("no default model is shipped with this installation; pass --model RUN")
    return Ensemble.parse(res.read_text(), "the shipped ensemble file")


def _shipped_member(name: str) -> tuple[Surrogate, ModelInfo]:
    """One member of the shipped ensemble, by its file name beside ``default.json``."""
    with resources.as_file(_shipped_resource(name)) as p:  # a copy when the package is zipped
        return load_surrogate(p)


def load_model(path: str | os.PathLike | None = None) -> tuple[Surrogate, ModelInfo]:
    """Load a model file or run directory; ``None``: the first member of the shipped ensemble
    (one model, no error estimate; :func:`load_predictor` gives the whole ensemble)."""
    if path is None:
        return _shipped_member(_shipped_blob()["members"][0])
    return load_surrogate(path)


def model_thickness(info: ModelInfo, model: Surrogate, thickness_nm: float | None) -> float:
    """Thickness [nm] to predict at: checked against what the model was trained on.

    An unconditioned model serves only its training thickness; a conditioned one any thickness
    within its training range (no extrapolation). ``None`` gives the (middle) training thickness.
    """
    trained = np.asarray(info.data.get("thicknesses_nm") or [], dtype=np.float64)
    if thickness_nm is None:
        if trained.size == 0:
            raise SettingsError("the model file does not say its thickness; pass --thickness")
        return float(trained[len(trained) // 2])
    t = float(thickness_nm)
    if not t > 0:
        raise SettingsError(f"thickness must be > 0 nm, got {t:g}")
    if trained.size == 0:
        return t
    if not model.config.conditioned or trained.size == 1:
        if np.min(np.abs(trained - t)) > 0.5:  # 0.5 nm: far below any thickness step
            raise SettingsError(
                f"this model was trained at {trained[0]:g} nm only (it is not a thickness-"
                f"series model); use --thickness {trained[0]:g} or a model trained on several "
                "thicknesses"
            )
        return t
    lo, hi = float(trained.min()), float(trained.max())
    if not lo - 0.5 <= t <= hi + 0.5:
        raise SettingsError(
            f"thickness {t:g} nm is outside the model's training range {lo:g}-{hi:g} nm"
        )
    return t


def predict_crystals(
    crystals,
    *,
    model: Surrogate,
    info: ModelInfo,
    thickness_nm: float | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Predicted 000 patterns of crystals, standardised per image.

    Parameters
    ----------
    crystals : sequence of lacbed.crystal.Crystal (or anything :func:`load_crystal` accepts)
    model, info : from :func:`load_model`
    thickness_nm : float, optional
        Thickness [nm]; see :func:`model_thickness`.

    Returns
    -------
    ndarray, shape (n, S, S) float32
        Patterns in the order given (zero mean, unit variance per image: the surrogate is
        trained with Z, which ignores scale and offset). Never contains NaN.
    """
    t = model_thickness(info, model, thickness_nm)
    return run_model(model, batch_size=batch_size, **model_inputs(crystals, model, info, t))


def model_inputs(crystals, model: Surrogate, info: ModelInfo, thickness_nm: float) -> dict:
    """Keyword arguments of :func:`lacbed.ml.model.run_model` for crystals at one thickness [nm].

    The projected potentials, the lattice parameters, the bright-field symmetries and, for a
    model with a physics channel, the Bragg-line maps (at the model's training settings).
    """
    return series_inputs(crystals, model, info, [thickness_nm])[0]


def series_inputs(
    crystals, model: Surrogate, info: ModelInfo, thicknesses_nm, n_jobs: int | None = 1,
    convergence=False,
) -> list[dict]:  # fmt: skip
    """:func:`model_inputs` at several thicknesses [nm]: one dict per thickness, in order.

    The potentials are computed once; only the physics maps (if the model has a physics
    channel; an engine run uses ``n_jobs`` worker threads) and ``thickness_nm`` differ between
    the dicts. With ``convergence`` (a 'coarse' model only; True, or a bool per crystal) each
    dict also holds ``convergence``: the engine's convergence estimate of each coarse run (n,)
    [1], NaN for crystals not asked for (:func:`lacbed.ml.physics.coarse_maps`, the same maps).
    """
    from lacbed.crystal import load_crystal
    from lacbed.scattering import projected_potential

    xs = [load_crystal(c) for c in crystals]
    for c in xs:  # the models are trained on cubic crystals at [001] only
        if not c.is_cubic:
            from lacbed.errors import NonCubicError

            raise NonCubicError(
                f"{c.name or c.formula} is {c.space_group} (#{c.space_group_number}), not cubic: "
                "the surrogate models are trained on cubic crystals only"
            )
    ts = [float(t) for t in thicknesses_nm]
    size = model.config.size
    # the potential as the training data computed it (its scattering factors; Kirkland default)
    scattering = (info.data.get("engine_settings") or {}).get("scattering") or "kirkland"
    pots = [projected_potential(c, size, scattering=scattering) for c in xs]
    pots = np.stack(pots) if xs else np.zeros((0, size, size))
    maps = conv = None
    if model.config.physics_channel:
        from lacbed.ml.physics import coarse_maps, map_settings, physics_maps, recorded_beams

        settings = map_settings(info.data.get("engine_settings") or {})
        kind = model.config.physics_kind
        beams = recorded_beams(kind, info.data)  # what the model was trained on
        kw = dict(size=size, strong_beams=beams, n_jobs=n_jobs, **settings)
        if np.any(convergence) and kind == "coarse":
            maps, conv = coarse_maps(xs, ts, estimate=convergence, **kw)
        else:
            maps = physics_maps(xs, ts, kind=kind, **kw)
    base = {
        "potentials": pots,
        "a": np.array([c.a for c in xs]),
        "symmetry": [c.bright_field_symmetry for c in xs],
    }
    out = [
        dict(base, physics=None if maps is None else maps[:, j], thickness_nm=t)
        for j, t in enumerate(ts)
    ]
    if conv is not None:
        for j, d in enumerate(out):
            d["convergence"] = conv[:, j]
    return out


#: Fields of the training data's engine settings that the engine fallback takes over; the beam
#: budget (``strong_beams``, ``max_g``) is not taken: the fallback runs the converged default.
ENGINE_FIELDS = ("voltage_kv", "half_width", "scattering", "absorption", "kappa", "solver")


def engine_kwargs(info: ModelInfo, size: int) -> dict:
    """Keyword arguments of :func:`lacbed.simulate.simulate_lacbed` for a model's fallback.

    The settings the model's training data was built with (``info.data["engine_settings"]``, as
    :class:`lacbed.dataset.build.BuildSettings` records them: voltage [kV], half-width [1/Å],
    scattering factors, absorption model, κ, solver), at the model's image side ``size``
    [pixels], and the engine's converged default beam budget (adaptive ``strong_beams`` and
    ``max_g``, whatever budget the training data used). A field the model file does not record
    takes the build's default (200 kV, W = 4/a, Kirkland, Bird–King, fast solver).
    """
    import dataclasses

    from lacbed.dataset.build import BuildSettings

    recorded = info.data.get("engine_settings") or {}
    known = {f.name for f in dataclasses.fields(BuildSettings)} & set(ENGINE_FIELDS)
    fields = {k: v for k, v in recorded.items() if k in known}
    bs = BuildSettings(size=int(size), strong_beams=None, max_g=None, **fields)
    return bs.simulate_kwargs()


#: File of the shipped hybrid model beside the ensemble (``lacbed/ml/weights/``).
HYBRID_FILE = "hybrid.pt"
#: Its error calibration (:class:`lacbed.ml.hybrid_error.HybridError`), beside it.
HYBRID_ERROR_FILE = "hybrid.error.json"


@dataclass(frozen=True, eq=False)
class Hybrid:
    """A hybrid model (its physics input is an engine run) and its error estimate.

    Attributes
    ----------
    model : Surrogate
    info : ModelInfo
    error : lacbed.ml.hybrid_error.HybridError or None
        Calibrated estimate of Z from the model's correction of its coarse input; None: none.
    """

    model: Surrogate
    info: ModelInfo
    error: HybridError | None = None


def load_hybrid() -> Hybrid:
    """The shipped hybrid model: a network that corrects the coarse Bloch-wave run
    (:func:`lacbed.ml.physics.physics_maps`, kind 'coarse') towards the converged pattern, with
    its error estimate (model card: ``docs/model_card.md``, "Hybrid mode").

    Raises
    ------
    ModelFileError
        No hybrid model shipped, or its calibration was made for another model file.
    """
    from lacbed.ml.hybrid_error import HybridError

    res = _shipped_resource(HYBRID_FILE)
    if not res.is_file():
        raise ModelFileError("no hybrid model is shipped with this installation; pass --model RUN")
    err_res = _shipped_resource(HYBRID_ERROR_FILE)
    error = None
    with resources.as_file(res) as p:  # a copy when the package is zipped
        model, info = load_surrogate(p)
        if err_res.is_file():
            name = f"the shipped {HYBRID_ERROR_FILE}"
            error = HybridError.parse(err_res.read_text(), name)
            hint = "rerun benchmarks/ml_hybrid_error.py --write"
            error.check_model(p, model.config.physics_input, name, hint)
    return Hybrid(model, info, error)


def load_predictor(path: str | os.PathLike | None = None, *, hybrid: bool = False):
    """A model or an ensemble, by file: ``.json`` is an ensemble file (``lacbed ensemble``).

    Returns
    -------
    Ensemble, Hybrid or tuple of (Surrogate, ModelInfo)
        ``None`` gives the shipped model, a calibrated ensemble (:func:`load_default`), or with
        ``hybrid`` the shipped hybrid model and its error estimate (:func:`load_hybrid`). A
        hybrid model file with a calibration beside it (``lacbed calibrate``,
        :func:`lacbed.ml.hybrid_error.error_file`) gives a :class:`Hybrid` too.
    """
    if hybrid:
        if path is not None:
            raise SettingsError("--hybrid is the shipped hybrid model: give --hybrid or --model")
        return load_hybrid()
    if path is None:
        return load_default()
    if str(path).lower().endswith(".json"):
        from lacbed.ml.uncertainty import Ensemble

        return Ensemble.load(path)
    model, info = load_model(path)
    from lacbed.ml.physics import physics_beams

    if physics_beams(model.config.physics_input) is not None:  # a hybrid: its calibration?
        from lacbed.ml.hybrid_error import load_error

        error = load_error(path, model.config.physics_input)
        if error is not None:
            return Hybrid(model, info, error)
    return model, info


@dataclass(frozen=True, eq=False)
class SeriesPrediction:
    """Patterns of several crystals at several thicknesses, and where each came from.

    Attributes
    ----------
    patterns : ndarray, shape (n, T, S, S) float32
        Standardised patterns (zero mean, unit variance per image), crystals × thicknesses in
        the order given.
    thicknesses_nm : ndarray, shape (T,)
        Thicknesses [nm].
    source : ndarray, shape (n, T) of str
        ``"surrogate"``, ``"hybrid"`` (a model that corrects an engine run: its physics channel
        is 'coarse' or 'fewbeam') or ``"engine"`` (the Bloch-wave engine ran instead).
    spread : ndarray, shape (n, T), or None
        Ensemble spread [1] (None unless an ensemble).
    estimated_z, upper90 : ndarray, shape (n, T), or None
        Calibrated estimate of Z = 1 − ZNCC [1] and its 90 % bound (9 in 10 calibration
        patterns lay below it), from a calibrated ensemble or a hybrid model with its error
        estimate; None otherwise (``upper90`` also for an ensemble file without
        ``q90_residual``).
    engine : list of (dict or None)
        Per crystal, what the engine did when it ran: ``thicknesses_nm`` (those it solved),
        ``convergence_estimate`` (the engine's own Z estimate [1] per solved thickness),
        ``cpu_s`` and ``wall_s`` (the one call for all of them [s]), ``budget_capped``.
    engine_settings : dict or None
        The :func:`lacbed.simulate.simulate_lacbed` keywords used (None if it never ran).
    max_error : float or None
        The threshold on the estimated Z [1].
    max_error_on : str
        What was compared with it: 'estimate' or 'upper90'.
    data_settings : dict
        The engine settings of the model's training data (``engine_settings`` of its file:
        voltage [kV], half-width [1/Å], ...), e.g. for the axes of a figure.
    """

    patterns: np.ndarray
    thicknesses_nm: np.ndarray
    source: np.ndarray
    spread: np.ndarray | None = None
    estimated_z: np.ndarray | None = None
    engine: list | None = None
    engine_settings: dict | None = None
    max_error: float | None = None
    data_settings: dict = field(default_factory=dict)
    max_error_on: str = "estimate"
    upper90: np.ndarray | None = None


def _check_max_error(max_error, ensemble, hybrid) -> float | None:
    if max_error is None:
        return None
    z = float(max_error)
    if math.isnan(z) or z < 0 or z > 2:
        raise SettingsError(
            f"--max-error must be a fraction of Z = 1 - ZNCC between 0 and 2 (0.05 is 5 %), "
            f"got {z:g}"
        )
    if hybrid is not None and hybrid.error is None:
        raise SettingsError("--max-error needs an error estimate, which this hybrid model lacks")
    if ensemble is None and hybrid is None:
        raise SettingsError(
            "--max-error needs an error estimate, which a single model does not give: pass an "
            "ensemble file as --model (lacbed ensemble RUN1 RUN2 ... --data DATA -o ENS.json) "
            "or use --hybrid"
        )
    if ensemble is not None and not ensemble.calibrated:
        raise SettingsError(
            "--max-error needs a calibrated ensemble; this one has no usable calibration "
            "(made without --data, or its fit failed: see the ensemble file): rerun lacbed "
            "ensemble with --data DATA"
        )
    return z


def _max_error_on(max_error_on: str | None, ensemble, hybrid, used: bool) -> str:
    """The comparison for ``max_error`` (None: 'upper90' for a hybrid model, 'estimate'
    otherwise), checked either way; 'upper90' of an ensemble needs its ``q90_residual``."""
    how = max_error_on or ("upper90" if hybrid is not None else "estimate")
    if how not in ("estimate", "upper90"):
        raise SettingsError(f"--max-error-on must be estimate or upper90, got {how!r}")
    if used and how == "upper90" and ensemble is not None:
        q90 = float(ensemble.calibration.get("q90_residual", math.nan))
        if not math.isfinite(q90):
            raise SettingsError(
                "--max-error-on upper90 needs the calibration's 90 % bound (q90_residual), "
                "which this ensemble file does not have: rerun lacbed ensemble with --data DATA"
            )
    return how


def _estimates(ensemble, hybrid, spread, out, maps, kws, ts):
    """Estimated Z and its 90 % bound, each (n, T) or None."""
    if hybrid is not None and hybrid.error is not None:
        conv = None
        if "convergence" in kws[0]:
            conv = np.stack([k["convergence"] for k in kws], axis=1)
        elif hybrid.error.needs_convergence:  # no large cell: no estimate was asked for
            conv = np.full(out.shape[:2], np.nan)
        return hybrid.error.estimate(out, maps, ts, kws[0]["a"], conv)
    if ensemble is None:
        return None, None
    est = ensemble.estimate(spread, kws[0]["potentials"], ts, kws[0]["a"])
    q90 = float(ensemble.calibration.get("q90_residual", math.nan))
    upper = est + max(q90, 0.0) if est is not None and math.isfinite(q90) else None
    return est, upper


def _served_thicknesses(pairs, thicknesses_nm) -> list[float]:
    """The requested thicknesses [nm] (None: the first model's default), each checked to be
    served by every model and distinct."""
    model0, info0 = pairs[0]
    if thicknesses_nm is None:
        thicknesses_nm = [model_thickness(info0, model0, None)]
    ts = [model_thickness(info0, model0, t) for t in np.atleast_1d(thicknesses_nm)]
    if len(set(ts)) != len(ts):
        raise SettingsError(f"thicknesses must be distinct, got {ts}")
    for m, info in pairs[1:]:
        for t in ts:
            model_thickness(info, m, t)
    return ts


def predict_series(
    crystals,
    thicknesses_nm=None,
    *,
    model=None,
    max_error: float | None = None,
    max_error_on: str | None = None,
    batch_size: int = 32,
    n_jobs: int | None = None,
) -> SeriesPrediction:
    """Predict every crystal at every thickness; optionally the engine where the error is large.

    Parameters
    ----------
    crystals : sequence of lacbed.crystal.Crystal (or anything :func:`load_crystal` accepts)
        Cubic crystals.
    thicknesses_nm : sequence of float, optional
        Distinct thicknesses [nm], each one the model serves (:func:`model_thickness`; every
        member of an ensemble). None: the model's (middle) training thickness.
    model : path-like, Ensemble, Hybrid, (Surrogate, ModelInfo) or None
        Model file, run directory, ensemble file (``.json``) or object (:func:`load_predictor`);
        None: the shipped model.
    max_error : float, optional
        Z = 1 − ZNCC [1] (e.g. 0.05). Needs an error estimate (a calibrated ensemble or a
        :class:`Hybrid` with one): each (crystal, thickness)
        whose estimated Z exceeds it (or is not a number) comes from
        :func:`lacbed.simulate.simulate_lacbed` with :func:`engine_kwargs` (one call per
        crystal for all its thicknesses that need it), standardised like the training targets
        (:func:`lacbed.ml.data.prepare_target`). None: the surrogate only.
    max_error_on : {'estimate', 'upper90'}, optional
        What is compared with ``max_error``: the estimated Z, or its 90 % upper bound (for an
        ensemble the estimate + the calibration's ``q90_residual``, which held for 90 % of the
        calibration split: the shipped ensemble keeps no pattern for a threshold below 0.265).
        None: 'upper90' for a hybrid model (its estimate is a median: half the errors lie
        above it), 'estimate' otherwise.
    batch_size : int
        Network batch size.
    n_jobs : int, optional
        Engine worker threads, for the engine fallback and a hybrid model's coarse run (None:
        the CPUs available).

    Returns
    -------
    SeriesPrediction

    Raises
    ------
    SettingsError
        A thickness the model cannot serve, repeated thicknesses, a negative or NaN
        ``max_error``, ``max_error`` without an error estimate, an unknown ``max_error_on`` or
        'upper90' without a 90 % bound; all before any work.
    """
    from lacbed.crystal import load_crystal
    from lacbed.ml.uncertainty import Ensemble

    pred = model if isinstance(model, Ensemble | Hybrid | tuple) else load_predictor(model)
    ens = pred if isinstance(pred, Ensemble) else None
    hyb = pred if isinstance(pred, Hybrid) else None
    z_max = _check_max_error(max_error, ens, hyb)
    how = _max_error_on(max_error_on, ens, hyb, used=z_max is not None)
    if ens is not None:
        pairs = ens.load_models()
    else:
        pairs = [(hyb.model, hyb.info)] if hyb is not None else [pred]
    model0, info0 = pairs[0]
    ts = _served_thicknesses(pairs, thicknesses_nm)
    xs = [load_crystal(c) for c in crystals]
    src = next((p for p in pairs if p[0].config.physics_channel), pairs[0])[0]
    wants = False
    if hyb is not None and hyb.error is not None and hyb.error.needs_convergence:
        wants = [c.a >= hyb.error.large_cell_a for c in xs]  # only large cells use it
    kws = series_inputs(xs, src, info0, ts, n_jobs=n_jobs, convergence=wants)
    n, nt, size = len(xs), len(ts), model0.config.size
    maps = None if kws[0]["physics"] is None else np.stack([kw["physics"] for kw in kws], 1)
    preds = np.stack(
        [
            run_model_series(
                m,
                kws[0]["potentials"],
                thicknesses_nm=ts,
                a=kws[0]["a"],
                symmetry=kws[0]["symmetry"],
                batch_size=batch_size,
                physics=maps,
            )
            for m, _ in pairs
        ]
    )  # (members, n, T, S, S)
    spread = None
    if ens is None:
        out = preds[0]
    else:
        from lacbed.ml.uncertainty import ensemble_stats

        out, spread = ensemble_stats(preds)
    est, upper = _estimates(ens, hyb, spread, out, maps, kws, ts)
    from lacbed.ml.physics import physics_beams

    hybrid = physics_beams(model0.config.physics_input) is not None  # reads an engine run
    source = np.full((n, nt), "hybrid" if hybrid else "surrogate", dtype=object)
    engine: list = [None] * n
    settings = None
    if z_max is not None:
        need = ~((est if how == "estimate" else upper) <= z_max)  # NaN goes to the engine too
        if need.any():
            settings = engine_kwargs(info0, size)
            engine = _engine_fallback(xs, ts, need, out, settings, model0.norm, n_jobs)
            source[need] = "engine"
    return SeriesPrediction(
        patterns=out,
        thicknesses_nm=np.asarray(ts, dtype=np.float64),
        source=source,
        spread=spread,
        estimated_z=est,
        engine=engine,
        engine_settings=settings,
        max_error=z_max,
        max_error_on=how,
        upper90=upper,
        data_settings=dict(info0.data.get("engine_settings") or {}),
    )


def _engine_fallback(xs, ts, need, out, settings, norm, n_jobs) -> list:
    """Run the engine for each crystal's flagged thicknesses, in place into ``out``."""
    from lacbed.ml.data import prepare_target
    from lacbed.simulate import simulate_lacbed

    size = out.shape[-1]
    records: list = []
    for i, c in enumerate(xs):
        idx = np.flatnonzero(need[i])
        if idx.size == 0:
            records.append(None)
            continue
        tt = [ts[j] for j in idx]
        pat = simulate_lacbed(c, tt, n_jobs=n_jobs, **settings)
        raw = np.asarray(pat.intensities, dtype=np.float64).reshape(len(tt), size, size)
        out[i, idx] = prepare_target(raw, norm)
        st = pat.settings
        per_t = st.get("convergence_estimate_per_thickness")
        if per_t is None:  # no estimate (a fixed budget or no sample): the worst, if any
            per_t = [st.get("convergence_estimate")] * len(tt)
        conv = [None if v is None else float(v) for v in list(per_t)]
        records.append(
            {
                "thicknesses_nm": tt,
                "convergence_estimate": conv,
                "cpu_s": float(pat.timings.get("cpu", float("nan"))),
                "wall_s": float(pat.timings.get("total", float("nan"))),
                "budget_capped": bool(st.get("budget_capped", False)),
            }
        )
        log.info("engine for %s at %s nm: %.2f s CPU", c.formula, tt, records[-1]["cpu_s"])
    return records
