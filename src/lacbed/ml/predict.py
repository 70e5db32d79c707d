"""Predict 000 patterns for crystals with a trained surrogate (or the one shipped with lacbed)."""

from __future__ import annotations

import logging
import os
from importlib import resources
from importlib.resources.abc import Traversable

import numpy as np

from lacbed.errors import SettingsError
from lacbed.ml.model import ModelFileError, ModelInfo, Surrogate, load_surrogate, run_model

__all__ = [
    "default_model_resource",
    "load_model",
    "model_inputs",
    "model_thickness",
    "predict_crystals",
]

log = logging.getLogger(__name__)


def default_model_resource() -> Traversable:
    """The model shipped in the package (``lacbed/ml/weights/default.pt``) as a resource.

    A resource, not a path: in a zipped installation it has no file of its own; open it with
    ``importlib.resources.as_file`` (as :func:`load_model` does).
    """
    return resources.files("lacbed.ml").joinpath("weights").joinpath("default.pt")


def load_model(path: str | os.PathLike | None = None) -> tuple[Surrogate, ModelInfo]:
    """Load a model file or run directory; ``None`` loads the shipped default model."""
    if path is None:
        res = default_model_resource()
        if not res.is_file():
            raise ModelFileError(
                "no default model is shipped with this installation; pass --model RUN"
            )
        with resources.as_file(res) as p:  # a temporary copy when the package is zipped
            return load_surrogate(p)
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
    size = model.config.size
    pots = np.stack([projected_potential(c, size) for c in xs]) if xs else np.zeros((0, size, size))
    maps = None
    if model.config.physics_channel:
        from lacbed.ml.physics import map_settings, physics_maps

        settings = map_settings(info.data.get("engine_settings") or {})
        kind = model.config.physics_kind
        maps = physics_maps(xs, [thickness_nm], size=size, kind=kind, **settings)[:, 0]
    return {
        "potentials": pots,
        "physics": maps,
        "thickness_nm": thickness_nm,
        "a": np.array([c.a for c in xs]),
        "symmetry": [c.bright_field_symmetry for c in xs],
    }
