"""Training with Lightning: the LightningModule, the Trainer set-up, resuming and export.

A run directory ``RUN`` holds::

    RUN/config.json            resolved configuration (model, normalisation, training, data)
    RUN/checkpoints/last.ckpt  Lightning checkpoint of the last epoch (training resumes from it)
    RUN/checkpoints/best.ckpt  lowest validation Z
    RUN/logs/version_N/        CSVLogger metrics.csv, one N per training segment (a resume adds
                               one); TensorBoard events in version_0 when tensorboard is installed
    RUN/model.pt               exported best model (see :mod:`lacbed.ml.model`)
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import torch

from lacbed._io import atomic_path
from lacbed.errors import LacbedError, SettingsError
from lacbed.ml.config import ModelConfig, Normalisation, TrainConfig, default_model_config
from lacbed.ml.data import PatternSamples, load_split, resolve_thicknesses
from lacbed.ml.losses import kl_divergence, z_loss
from lacbed.ml.model import Surrogate, save_surrogate
from lacbed.ml.physics import physics_beams, recorded_beams

__all__ = ["LitSurrogate", "TrainResult", "train", "make_surrogate"]

log = logging.getLogger(__name__)


def make_surrogate(config: ModelConfig, norm: Normalisation, *, seed: int) -> Surrogate:
    """A freshly initialised surrogate; the weights depend only on ``seed`` (no global RNG use)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Surrogate(config, norm)


class LitSurrogate(L.LightningModule):
    """Lightning wrapper: loss = mean Z (+ β·KL for the VAE), AdamW, LR reduced on plateau.

    The constructor takes plain dicts, saved as hyper-parameters in every checkpoint together
    with the lacbed version.
    """

    def __init__(self, model: dict, normalisation: dict, train: dict, lacbed_version: str) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.train_cfg = TrainConfig.from_dict(train)
        self.surrogate = make_surrogate(
            ModelConfig.from_dict(model),
            Normalisation.from_dict(normalisation),
            seed=self.train_cfg.seed,
        )
        self._gen = torch.Generator().manual_seed(self.train_cfg.seed + 1)

    def forward(self, x, cond=None, sym=None):
        return self.surrogate(x, cond, sym)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        gen = self._gen if stage == "train" else None
        out = self.surrogate(batch["x"], batch["cond"], batch["sym"], generator=gen)
        z = z_loss(out["pred"], batch["y"])
        loss = z
        n = batch["x"].shape[0]
        if "mu" in out and self.surrogate.config.beta > 0:
            kl = kl_divergence(out["mu"], out["logvar"])
            loss = z + self.surrogate.config.beta * kl
            self.log(f"{stage}_kl", kl, on_step=False, on_epoch=True, batch_size=n)
        self.log(f"{stage}_z", z, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.train_cfg.lr, weight_decay=self.train_cfg.weight_decay
        )
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_z"}}


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`."""

    run_dir: Path
    model_path: Path
    best_val_z: float
    epochs_run: int
    n_train: int
    n_val: int
    resumed: bool


def _write_json(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))


def _check_same_data(run: Path, saved: dict, n_train: int, n_val: int) -> None:
    """Refuse to resume a run whose dataset's splits changed (a grown release): the rest of
    the run would train on other structures than its start, and its scores would mix both.
    ``saved`` is the run's stored config.json."""
    data = saved.get("data", {})
    was = (data.get("n_train_structures"), data.get("n_val_structures"))
    if was != (n_train, n_val):
        raise SettingsError(
            f"{run} began with {was[0]} training and {was[1]} validation structures, the "
            f"dataset now gives {n_train} and {n_val}; start a new run directory"
        )
    kind = (
        saved.get("model", {}).get("physics_kind")
        if saved.get("model", {}).get("physics_channel")
        else None
    )
    beams = recorded_beams(kind, data)
    if beams != physics_beams(kind):
        raise SettingsError(
            f"{run} was trained on {kind} inputs of {beams} strong beams, "
            f"this version computes {physics_beams(kind)}; start a new run directory"
        )


def _resolve_configs(run: Path, model: str, cfg, model_config, norm, size: int):  # noqa: ANN001, ANN202
    """Model, normalisation and training configs: a resumed run's saved ones, else the given;
    with the resumed run's stored config.json (None for a new run)."""
    last = run / "checkpoints" / "last.ckpt"
    saved = None
    if last.is_file() and (run / "config.json").is_file():
        saved = json.loads((run / "config.json").read_text())
        if saved["model"]["name"] != model:
            raise SettingsError(
                f"{run} holds a {saved['model']['name']!r} run, not {model!r}; "
                "use another output directory for a different model"
            )
        mcfg = ModelConfig.from_dict(saved["model"])
        norm = Normalisation.from_dict(saved["normalisation"])
        cfg = replace(TrainConfig.from_dict(saved["train"]), epochs=cfg.epochs)
        log.info("resuming %s from %s", run, last)
    else:
        mcfg = model_config or default_model_config(model, size=size)
        norm = norm or Normalisation()
    if mcfg.size != size:
        raise SettingsError(f"the model expects {mcfg.size}-pixel images, the dataset has {size}")
    return mcfg, norm, cfg, last, saved


def _warm_start(path: str, mcfg: ModelConfig, norm: Normalisation | None) -> Surrogate:
    """The model at ``path`` whose weights start a new run: the same network and options as
    ``mcfg`` (``mirror_pad`` may differ) and, if one is given, the same normalisation."""
    from dataclasses import asdict

    from lacbed.ml.model import load_surrogate

    model, _ = load_surrogate(path)
    have = asdict(replace(model.config, mirror_pad=mcfg.mirror_pad))
    differ = [f"{k}={have[k]!r} (asked: {v!r})" for k, v in asdict(mcfg).items() if have[k] != v]
    if differ:
        raise SettingsError(
            f"--init {path}: its model differs from the one asked for: {', '.join(differ)}; "
            "give the same model and options (only --mirror-pad may differ)"
        )
    if norm is not None and norm != model.norm:
        raise SettingsError(f"--init {path}: its normalisation differs from the one given")
    return model


def _trainer(run: Path, cfg, *, progress: bool, tensorboard: bool, n_batches: int):  # noqa: ANN001, ANN202
    """Lightning trainer with best/last checkpoints, early stopping and CSV (+TensorBoard) logs."""
    ckpt_best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=run / "checkpoints",
        filename="best",
        monitor="val_z",
        mode="min",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    early = L.pytorch.callbacks.EarlyStopping(monitor="val_z", mode="min", patience=cfg.patience)
    # CSVLogger rewrites metrics.csv when a run resumes: each training segment gets its own
    # version folder (TensorBoard appends event files to version_0 and keeps every segment).
    csv_version = 0
    while (run / "logs" / f"version_{csv_version}" / "metrics.csv").exists():
        csv_version += 1
    loggers: list = [L.pytorch.loggers.CSVLogger(run, name="logs", version=csv_version)]
    if tensorboard:
        try:
            import tensorboard as _tb  # noqa: F401

            loggers.append(L.pytorch.loggers.TensorBoardLogger(run, name="logs", version=0))
        except ImportError:
            pass
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[ckpt_best, early],
        logger=loggers,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=max(1, min(50, n_batches)),
        num_sanity_val_steps=0,
        default_root_dir=run,
    )
    return trainer, ckpt_best


def dataset_version(settings: dict) -> str | None:
    """What a model file records as its data's version: 'release N' for a release (its
    ``release.json``), the lacbed version that built a working dataset otherwise."""
    if settings.get("format") == "lacbed-release":
        return f"release {settings.get('release')}"
    return settings.get("lacbed_version")


def train(
    data: str | os.PathLike,
    run_dir: str | os.PathLike,
    *,
    model: str = "vae",
    config: TrainConfig | None = None,
    model_config: ModelConfig | None = None,
    norm: Normalisation | None = None,
    progress: bool = False,
    tensorboard: bool = True,
) -> TrainResult:
    """Train a surrogate on a dataset store, or resume the run in ``run_dir``.

    Parameters
    ----------
    data : path-like
        Dataset directory (``lacbed dataset build``).
    run_dir : path-like
        Run directory. If it holds ``checkpoints/last.ckpt`` and ``config.json``, training
        resumes from there with the stored configuration (only ``epochs`` may change).
    model : str
        Model name (see :data:`lacbed.ml.config.MODEL_NAMES`).
    config : TrainConfig
        Training settings.
    model_config : ModelConfig, optional
        Overrides :func:`~lacbed.ml.config.default_model_config`.
    progress : bool
        Show Lightning's progress bar (the CLI does).
    """
    from lacbed import __version__
    from lacbed.dataset.store import open_dataset

    run = Path(run_dir)
    ds = open_dataset(data)
    given_norm = norm
    mcfg, norm, cfg, last, saved = _resolve_configs(
        run, model, config or TrainConfig(), model_config, norm, ds.size
    )
    resumed = saved is not None
    if resumed and config is not None and config.init not in (None, cfg.init):
        raise SettingsError(
            f"{run} is an existing run (started from {cfg.init}); --init starts new runs only"
        )
    start = None if resumed or cfg.init is None else _warm_start(cfg.init, mcfg, given_norm)
    if start is not None:
        norm = start.norm  # the weights expect the inputs scaled as they were trained
    t_idx = resolve_thicknesses(ds.thicknesses_nm, cfg.thickness_nm, conditioned=mcfg.conditioned)
    phys = mcfg.physics_input or False
    tr = load_split(
        ds, "train", thickness_index=t_idx, max_items=cfg.max_train, seed=cfg.seed, physics=phys
    )
    va = load_split(ds, "val", thickness_index=t_idx, physics=phys)
    if resumed:
        _check_same_data(run, saved, len(tr), len(va))
    train_set = PatternSamples(tr, norm, augment=cfg.augment, seed=cfg.seed + 2)
    val_set = PatternSamples(va, norm)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=False
    )
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=max(cfg.batch_size, 32))
    data_info = {
        "dataset": str(data),  # as given: no machine-specific absolute path in the model file
        "dataset_version": dataset_version(ds.settings),
        "dataset_items": len(ds),
        "engine_settings": ds.settings.get("settings", {}),
        "thicknesses_nm": [float(v) for v in tr.thickness_nm],
        "n_train_structures": len(tr),
        "n_val_structures": len(va),
        "n_train_samples": len(train_set),
        "split": "grouped 85:10:5 (lacbed.dataset.splits)",
        "augment": cfg.augment,
        # strong beams of an engine-run physics input (the default may change between versions)
        "physics_beams": physics_beams(mcfg.physics_input),
    }
    resolved = {
        "model": mcfg.to_dict(),
        "normalisation": norm.to_dict(),
        "train": cfg.to_dict(),
        "data": data_info,
        "lacbed_version": __version__,
    }
    run.mkdir(parents=True, exist_ok=True)
    _write_json(run / "config.json", resolved)

    lit = LitSurrogate(mcfg.to_dict(), norm.to_dict(), cfg.to_dict(), __version__)
    if start is not None:
        lit.surrogate.net.load_state_dict(start.net.state_dict())
    trainer, ckpt_best = _trainer(
        run, cfg, progress=progress, tensorboard=tensorboard, n_batches=len(train_loader)
    )
    with warnings.catch_warnings():
        # Lightning's advice for GPU/multi-worker set-ups does not apply on a 2-core CPU box.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*GPU available.*")
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*isinstance.*treespec.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
        trainer.fit(lit, train_loader, val_loader, ckpt_path=str(last) if resumed else None)
    best_path = ckpt_best.best_model_path or str(last)
    if not Path(best_path).is_file():
        raise LacbedError(f"training in {run} produced no checkpoint")
    state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
    lit.load_state_dict(state)
    best = ckpt_best.best_model_score
    best_val = float(best) if best is not None else float("nan")
    model_path = save_surrogate(
        lit.surrogate, run / "model.pt", train=cfg, data=data_info, metrics={"best_val_z": best_val}
    )
    return TrainResult(
        run_dir=run,
        model_path=model_path,
        best_val_z=best_val,
        epochs_run=int(trainer.current_epoch),
        n_train=len(train_set),
        n_val=len(val_set),
        resumed=resumed,
    )
