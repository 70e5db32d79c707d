"""A surrogate = network + configuration + normalisation; saving and loading model files.

A model file (``RUN/model.pt``, or a member ``lacbed/ml/weights/default-<i>.pt`` of the shipped
ensemble) is a
``torch.save`` dict holding only tensors and plain Python values, so it loads with
``weights_only=True`` (no code runs on load)::

    format="lacbed-surrogate", format_version, lacbed_version, model (ModelConfig dict),
    normalisation (Normalisation dict), train (TrainConfig dict), data (dict: dataset, split,
    thicknesses, counts), metrics (dict, may be empty), state_dict
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lacbed._io import atomic_path
from lacbed.errors import LacbedError
from lacbed.ml.config import ModelConfig, Normalisation, TrainConfig
from lacbed.ml.losses import standardize
from lacbed.ml.networks import build_network
from lacbed.ml.symmetry import symmetrize

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFileError",
    "ModelInfo",
    "Surrogate",
    "load_surrogate",
    "run_model",
    "run_model_series",
    "save_surrogate",
]

log = logging.getLogger(__name__)

FORMAT = "lacbed-surrogate"
#: Bumped whenever a saved model can no longer be rebuilt by this code.
FORMAT_VERSION = 1


class ModelFileError(LacbedError):
    """A model file is missing, foreign, corrupt or from an incompatible lacbed version."""


def _zero_output_layer(net: nn.Module) -> None:
    """Zero the last layer of a network's ``head`` (its output), so that a fresh residual model
    returns the physics run itself and training starts from it; a network without a ``head``
    is left as it is."""
    head = getattr(net, "head", None)
    layers = [m for m in head.modules() if isinstance(m, nn.Conv2d | nn.Linear)] if head else []
    if layers:
        nn.init.zeros_(layers[-1].weight)
        if layers[-1].bias is not None:
            nn.init.zeros_(layers[-1].bias)


class Surrogate(nn.Module):
    """Network plus the settings needed to use it.

    ``forward(x, cond, sym)`` returns the network's dict with ``"pred"`` replaced by the
    (optionally symmetrised) prediction in standardised units (zero mean, unit variance).
    ``trained_thicknesses_nm`` holds the thicknesses [nm] the model was trained on (set by
    :func:`load_surrogate` from the model file; empty when unknown).
    """

    def __init__(self, config: ModelConfig, norm: Normalisation | None = None) -> None:
        super().__init__()
        self.config = config
        self.norm = norm or Normalisation()
        self.net = build_network(config)
        self.trained_thicknesses_nm: tuple[float, ...] = ()
        if config.residual:
            _zero_output_layer(self.net)

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        sym: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        out = self.net(x, cond if self.config.conditioned else None, generator=generator)
        out["pred"] = self.finish(out["pred"], x, sym)
        return out

    def finish(self, pred: torch.Tensor, x: torch.Tensor, sym: torch.Tensor | None) -> torch.Tensor:
        """The network's raw (batch, S, S) output → the model's prediction: plus the physics
        run (``residual``), averaged over the bright-field group (``symmetrize``), standardised."""
        if self.config.residual:  # a correction to the cheap physics run in channel 1
            pred = pred + standardize(x[:, 1])
        if self.config.symmetrize and sym is not None:
            pred = symmetrize(pred, sym)
        return standardize(pred)


@dataclass(frozen=True)
class ModelInfo:
    """Everything stored in a model file besides the weights."""

    lacbed_version: str
    train: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


def save_surrogate(
    model: Surrogate,
    path: str | os.PathLike,
    *,
    train: TrainConfig | None = None,
    data: dict | None = None,
    metrics: dict | None = None,
    half: bool = False,
) -> Path:
    """Write a model file atomically.

    ``half=True`` stores floating-point weights as float16 (halves the file; used for the
    weights shipped in the package). Loading always returns float32 weights.
    """
    from lacbed import __version__

    sd = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).clone()
        for k, v in model.state_dict().items()
    }
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lacbed_version": __version__,
        "model": model.config.to_dict(),
        "normalisation": model.norm.to_dict(),
        "train": train.to_dict() if train is not None else {},
        "data": dict(data or {}),
        "metrics": dict(metrics or {}),
        "state_dict": sd,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def _resolve(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        if (p / "model.pt").is_file():
            return p / "model.pt"
        raise ModelFileError(
            f"{p} holds no model.pt; train one with `lacbed train DATA -o {p}` "
            "(a run directory is usable once training has finished)"
        )
    if not p.is_file():
        raise ModelFileError(f"no such model file or run directory: {p}")
    return p


def load_surrogate(path: str | os.PathLike) -> tuple[Surrogate, ModelInfo]:
    """Load a model file (or the ``model.pt`` of a run directory), in eval mode.

    Raises
    ------
    ModelFileError
        If the file is not a lacbed model, is corrupt, or was written by an incompatible
        version (its format version differs from :data:`FORMAT_VERSION`).
    """
    p = _resolve(path)
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise ModelFileError(
            f"{p} is not a lacbed model file (cannot be read by torch: {type(exc).__name__})"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"{p} is not a lacbed model file (no '{FORMAT}' header)")
    fv = blob.get("format_version")
    if fv != FORMAT_VERSION:
        raise ModelFileError(
            f"{p} is a model file of format version {fv} written by lacbed "
            f"{blob.get('lacbed_version', '?')}; this lacbed reads format version "
            f"{FORMAT_VERSION} only: retrain the model with `lacbed train`"
        )
    try:
        config = ModelConfig.from_dict(blob["model"])
        norm = Normalisation.from_dict(blob["normalisation"])
        model = Surrogate(config, norm)
        sd = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
        model.load_state_dict(sd)
    except (KeyError, TypeError, RuntimeError, LacbedError) as exc:
        raise ModelFileError(
            f"{p} cannot be rebuilt by lacbed: {str(exc).splitlines()[0]}"
        ) from None
    model.eval()
    info = ModelInfo(
        lacbed_version=str(blob.get("lacbed_version", "?")),
        train=dict(blob.get("train") or {}),
        data=dict(blob.get("data") or {}),
        metrics=dict(blob.get("metrics") or {}),
    )
    model.trained_thicknesses_nm = tuple(float(t) for t in info.data.get("thicknesses_nm") or ())
    return model, info


@torch.no_grad()
def run_model(
    model: Surrogate,
    potentials: np.ndarray,
    *,
    thickness_nm: float | np.ndarray,
    a: np.ndarray,
    symmetry: list[str] | tuple[str, ...] | None = None,
    batch_size: int = 32,
    physics: np.ndarray | None = None,
) -> np.ndarray:
    """Predict standardised 000 patterns from projected potentials.

    Parameters
    ----------
    model : Surrogate
    potentials : ndarray, shape (n, S, S)
        Projected potentials [V·Å].
    thickness_nm : float or ndarray, shape (n,)
        Thickness of each prediction [nm] (ignored by an unconditioned model).
    a : ndarray, shape (n,)
        Lattice parameters [Å].
    symmetry : sequence of str, optional
        Bright-field symmetry per structure ('4mm', '2mm', 'none').
    physics : ndarray, shape (n, S, S), optional
        Bragg-line maps at each prediction's thickness (:func:`lacbed.ml.physics.bragg_line_map`);
        required by a model with ``physics_channel``, ignored otherwise.

    Returns
    -------
    ndarray, shape (n, S, S) float32
        Predicted patterns, standardised per image (zero mean, unit variance).

    Raises
    ------
    LacbedError
        If an input or a prediction is not finite (a prediction is never returned with NaN).
    """
    x, symt = _network_inputs(model, potentials, symmetry, physics)
    n = x.shape[0]
    t = np.broadcast_to(np.asarray(thickness_nm, dtype=np.float64), (n,))
    cond = _condition(model, t, a)
    model.eval()
    out = []
    for i in range(0, n, batch_size):
        sl = slice(i, i + batch_size)
        out.append(model(x[sl], cond[sl], symt[sl])["pred"].numpy())
    pred = np.concatenate(out) if out else np.zeros((0, *x.shape[2:]), np.float32)
    return _checked(pred)


def _network_inputs(model: Surrogate, potentials, symmetry, physics):  # noqa: ANN202
    """Checked, normalised network input (n, C, S, S) and symmetry codes (n,)."""
    from lacbed.ml.data import normalize_potential
    from lacbed.ml.symmetry import symmetry_code

    pots = np.asarray(potentials)
    if pots.ndim != 3 or pots.shape[1:] != (model.config.size, model.config.size):
        raise LacbedError(
            f"potentials must have shape (n, {model.config.size}, {model.config.size}), "
            f"got {pots.shape}"
        )
    if not np.all(np.isfinite(pots)):
        raise LacbedError("a projected potential contains NaN or inf")
    n = pots.shape[0]
    sym = [symmetry_code(s) for s in (symmetry or ["none"] * n)]
    x = torch.from_numpy(normalize_potential(pots, model.norm))[:, None]  # (n, 1, S, S)
    if model.config.physics_channel:
        if physics is None or np.shape(physics) != pots.shape:
            raise LacbedError(
                f"this model takes a physics map per input, shape {pots.shape}; got "
                f"{None if physics is None else np.shape(physics)}"
            )
        maps = torch.as_tensor(np.asarray(physics, dtype=np.float32))[:, None]
        x = torch.cat([x, maps], dim=1)  # (n, 2, S, S)
    return x, torch.as_tensor(sym, dtype=torch.long)


def _condition(model: Surrogate, t: np.ndarray, a) -> torch.Tensor:
    """(n, 2) conditioning (t / thickness_scale, a / a_scale) from thicknesses [nm] and a [Å]."""
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), t.shape)
    return torch.as_tensor(
        np.stack([t / model.norm.thickness_scale, a / model.norm.a_scale], axis=1),
        dtype=torch.float32,
    )


def _checked(pred: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(pred)):
        raise LacbedError("the model produced a non-finite prediction; the model file is broken")
    return pred.astype(np.float32)


def run_model_series(
    model: Surrogate,
    potentials: np.ndarray,
    *,
    thicknesses_nm,
    a: np.ndarray,
    symmetry: list[str] | tuple[str, ...] | None = None,
    batch_size: int = 32,
    physics: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`run_model` at every thickness of a series.

    A network whose encoder sees the potential only (``shared_encoding``: ``resae``) encodes
    each potential once and decodes it at every thickness; others run once per thickness.
    The result equals :func:`run_model` per thickness (to float32 rounding; tested).

    Parameters
    ----------
    thicknesses_nm : sequence of float
        Thicknesses [nm], T of them.
    physics : ndarray, shape (n, T, S, S), optional
        Physics maps per thickness (models with a physics channel).
    Other parameters as :func:`run_model`.

    Returns
    -------
    ndarray, shape (n, T, S, S) float32
    """
    ts = np.asarray(thicknesses_nm, dtype=np.float64).reshape(-1)
    if model.config.physics_channel or not getattr(model.net, "shared_encoding", False):
        return np.stack(
            [
                run_model(
                    model,
                    potentials,
                    thickness_nm=t,
                    a=a,
                    symmetry=symmetry,
                    batch_size=batch_size,
                    physics=None if physics is None else physics[:, j],
                )
                for j, t in enumerate(ts)
            ],
            axis=1,
        )
    x, symt = _network_inputs(model, potentials, symmetry, None)
    n = x.shape[0]
    conds = [_condition(model, np.full(n, t), a) for t in ts]
    model.eval()
    pred = np.zeros((n, len(ts), *x.shape[2:]), np.float32)
    with torch.no_grad():
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            z = model.net.encode(x[sl])
            for j, cond in enumerate(conds):
                c = cond[sl] if model.config.conditioned else None
                pred[sl, j] = model.finish(model.net.decode(z, c), x[sl], symt[sl]).numpy()
    return _checked(pred)
