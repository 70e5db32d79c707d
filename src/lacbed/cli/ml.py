"""``lacbed train | evaluate | predict``: the neural surrogate (needs the ``lacbed[ml]`` extra).

Contract (issue 5)::

    lacbed train DATA -o RUN --model vae|cvae|resae|unet|spectral [--epochs N] [--max-train N] [--thickness T]
                 [--seed S] [--batch-size B] [--lr LR]        (rerun: resumes from RUN)
    lacbed evaluate RUN DATA [--split val|train|test|test-real]
                                          → RUN/metrics.json, RUN/gallery-SPLIT.png
    lacbed predict X.cif [X2.cif ...] [--model RUN] [--thickness T] -o OUT.npy|OUT.png

torch is imported only inside the commands, so ``lacbed --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lacbed.cli.app import app
from lacbed.errors import SettingsError

__all__ = ["train", "evaluate", "ensemble", "predict"]

_MODELS = ("vae", "cvae", "resae", "unet", "spectral")
_PREDICT_SUFFIXES = (".npy", ".png")


def _threads(n: int) -> None:
    import torch

    if n < 1:
        raise SettingsError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def _quiet_lightning() -> None:
    import logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


@app.command("train")
def train(
    data: Annotated[Path, typer.Argument(help="Dataset directory (lacbed dataset build).")],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Run directory (created; rerun resumes).")
    ],
    model: Annotated[
        str, typer.Option(help="Model: vae (the study's baseline), cvae, resae, unet, spectral.")
    ] = "vae",
    epochs: Annotated[
        int, typer.Option(help="Maximum epochs (in total, also when resuming).")
    ] = 30,
    max_train: Annotated[
        int | None, typer.Option(help="Use at most N training structures (learning curves).")
    ] = None,
    thickness: Annotated[
        list[float] | None,
        typer.Option(
            help="Thickness in nm to train on (repeatable); default: all for a "
            "conditioned model, the middle one for vae."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, data order and sampling.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Samples per batch.")] = 16,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-3,
    patience: Annotated[int, typer.Option(help="Early-stopping patience in epochs.")] = 8,
    symmetrize: Annotated[
        bool | None,
        typer.Option(
            "--symmetrize/--no-symmetrize",
            help="Average outputs over each crystal's 4mm/2mm bright-field group "
            "(default: off for vae, on for the others).",
        ),
    ] = None,
    physics_channel: Annotated[
        bool,
        typer.Option(
            "--physics-channel/--no-physics-channel",
            help="Second input channel: a two-beam map of the Bragg lines at the sample's "
            "thickness, computed from each crystal (~30-90 ms per map, cached).",
        ),
    ] = False,
    physics_kind: Annotated[
        str,
        typer.Option(
            help="With --physics-channel: bragg (the Bragg-line map) or fewbeam (a 16-beam "
            "engine run, the multi-fidelity mode; ~0.3-0.7 s per crystal, cached)."
        ),
    ] = "bragg",
    residual: Annotated[
        bool,
        typer.Option(
            "--residual/--no-residual",
            help="With --physics-kind fewbeam: predict a correction to the few-beam run.",
        ),
    ] = False,
    augment: Annotated[
        str,
        typer.Option(
            help="Exact-physics augmentation of training pairs: none, ops (a random one of the "
            "8 operations of 4mm on input and target), shifts (a random cell origin), all."
        ),
    ] = "none",
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a surrogate on DATA's train split (validation on its val split)."""
    if model not in _MODELS:
        raise SettingsError(f"unknown model {model!r}; choose one of {', '.join(_MODELS)}")
    _threads(threads)
    from lacbed.ml.config import TrainConfig
    from lacbed.ml.training import train as run_training

    _quiet_lightning()  # after the import: lightning sets its loggers' levels when imported

    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        max_train=max_train,
        thickness_nm=tuple(thickness) if thickness else None,
        patience=patience,
        augment=augment,
    )
    mcfg = None
    if (physics_kind != "bragg" or residual) and not physics_channel:
        raise SettingsError("--physics-kind and --residual need --physics-channel")
    if symmetrize is not None or physics_channel:
        import dataclasses

        from lacbed.dataset.store import open_dataset
        from lacbed.ml.config import default_model_config

        size = open_dataset(data).size
        mcfg = default_model_config(model, size=size)
        if symmetrize is not None:
            mcfg = dataclasses.replace(mcfg, symmetrize=symmetrize)
        if physics_channel:
            mcfg = dataclasses.replace(
                mcfg, physics_channel=True, physics_kind=physics_kind, residual=residual
            )
    res = run_training(data, out, model=model, config=cfg, model_config=mcfg, progress=progress)
    typer.echo(
        f"{'resumed' if res.resumed else 'trained'} {model}: {res.n_train} training samples, "
        f"{res.n_val} validation samples, best validation Z = {100 * res.best_val_z:.2f} % "
        f"→ {res.model_path}"
    )


@app.command("evaluate")
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory (or model file).")],
    data: Annotated[Path, typer.Argument(help="Dataset directory or release.")],
    split: Annotated[
        str,
        typer.Option(
            help="Split to score: val (default; model selection uses only val), train, or a test "
            "split, which must be named: test-real (a release's real test materials, the "
            "headline numbers; a working store falls back to test and says so) or test."
        ),
    ] = "val",
    worst: Annotated[int, typer.Option(help="Worst cases listed per thickness and drawn.")] = 10,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
) -> None:
    """Z (mean, median, P90, worst cases) per thickness on one split.

    Writes RUN/metrics.json (one entry per evaluated split, earlier entries kept) and
    RUN/gallery-SPLIT.png (the worst cases: input | target | prediction | difference).
    """
    from lacbed.ml.evaluate import EVAL_SPLITS

    if split not in EVAL_SPLITS:
        raise SettingsError(f"unknown split {split!r}; choose one of {', '.join(EVAL_SPLITS)}")
    if worst < 1:
        raise SettingsError(f"--worst must be >= 1, got {worst}")
    _threads(threads)
    import numpy as np

    from lacbed import __version__
    from lacbed._io import atomic_path
    from lacbed.dataset.store import open_dataset
    from lacbed.ml.data import prepare_target
    from lacbed.ml.evaluate import evaluate as run_eval
    from lacbed.ml.evaluate import resolve_split
    from lacbed.ml.predict import load_model
    from lacbed.plotting.ml import plot_gallery

    surrogate, info = load_model(run)
    thick = info.data.get("thicknesses_nm") or None
    ds = open_dataset(data)
    used, note = resolve_split(ds, split)
    if note:
        typer.echo(f"note: {note}", err=True)
    # the note is said here once; score the resolved split (no second warning from the library)
    ev = run_eval(surrogate, ds, splits=(used,), thickness_nm=thick)[used]
    run_dir = run if run.is_dir() else run.parent
    metrics_path = run_dir / "metrics.json"
    metrics = {}
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError:
            metrics = {}
    stats = ev.stats(worst=worst)
    stats.update(
        split_scored=used,
        note=note,
        dataset=str(Path(data).resolve()),
        release=bool("test-real" in ds.split_counts()),
        thicknesses_nm=[float(t) for t in ev.arrays.thickness_nm],
    )
    metrics.update(
        model=surrogate.config.to_dict(),
        z_units="1 (multiply by 100 for %)",
        lacbed_version=__version__,
    )
    metrics.setdefault("splits", {})[split] = stats
    # the gallery: the worst cases over all thicknesses, worst first
    a = ev.arrays
    flat = np.argsort(-ev.z.ravel(), kind="stable")[: min(worst, ev.z.size)]
    picks = [(int(k) // ev.z.shape[1], int(k) % ev.z.shape[1]) for k in flat]
    fig = plot_gallery(
        a.potential[[i for i, _ in picks]],
        prepare_target(np.stack([a.pattern[i, j] for i, j in picks]), surrogate.norm),
        [ev.predicted[i, j] for i, j in picks],
        [ev.z[i, j] for i, j in picks],
        labels=[f"{a.keys[i]}\n{a.formulas[i]} {a.thickness_nm[j]:g} nm" for i, j in picks],
    )
    gallery = run_dir / f"gallery-{split}.png"
    with atomic_path(metrics_path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    with atomic_path(gallery) as tmp:
        fig.savefig(tmp, dpi=90)
    label = split if used == split else f"{split} (scored: {used})"
    typer.echo(f"{label}: {len(a)} structures")
    rows = [("all", stats)] + [(f"{t} nm", s) for t, s in stats["per_thickness"].items()]
    for name, s in rows:
        typer.echo(
            f"  {name:8s} n={s['n']:5d}  Z mean {100 * s['mean']:6.2f} %  "
            f"median {100 * s['median']:6.2f} %  P90 {100 * s['p90']:6.2f} %"
        )
    for t, rows_ in stats["worst"].items():
        cells = ", ".join(f"{w['formula']} ({w['key']}) {100 * w['z']:.1f}" for w in rows_)
        typer.echo(f"  worst at {t} nm [Z %]: {cells}")
    typer.echo(f"wrote {metrics_path} and {gallery}")


@app.command("ensemble")
def ensemble(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run directories or model files.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Ensemble file ENS.json.")],
    data: Annotated[
        Path | None, typer.Option(help="Dataset or release to calibrate the spread on.")
    ] = None,
    split: Annotated[
        str, typer.Option(help="Calibration split (val keeps the test split untouched).")
    ] = "val",
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
) -> None:
    """Group models (trained with different --seed) into an ensemble that estimates its error.

    With --data, the spread (mean Z between each member and the mean) is calibrated on SPLIT:
    Z ≈ slope · spread, and the Spearman rank correlation of spread and true Z is reported.
    Use the file as `lacbed predict X.cif --model ENS.json`.
    """
    if len(runs) < 2:
        raise SettingsError(f"an ensemble needs at least two models, got {len(runs)}")
    if out.suffix.lower() != ".json":
        raise SettingsError(f"the ensemble file must end in .json, got {out.name!r}")
    _threads(threads)
    from lacbed.ml.model import _resolve
    from lacbed.ml.uncertainty import Ensemble, calibrate

    ens = Ensemble([_resolve(r) for r in runs])
    models = [m for m, _ in ens.load_models()]
    if data is not None:
        ens.calibration = calibrate(models, data, split=split)
        c = ens.calibration
        typer.echo(
            f"calibrated on {c['split']} ({c['n']} samples): Z ≈ {c['slope']:.3g} × spread, "
            f"Spearman {c['spearman']:.2f}, true Z below the estimate for "
            f"{100 * c['coverage']:.0f} %"
        )
    ens.save(out)
    typer.echo(f"wrote {out} ({len(runs)} members)")


@app.command("predict")
def predict(
    cifs: Annotated[list[Path], typer.Argument(help="CIF files of cubic crystals.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="OUT.npy (float32) or OUT.png.")],
    model: Annotated[
        Path | None,
        typer.Option(
            help="Run directory, model file, or ensemble file (lacbed ensemble; then the "
            "prediction is the ensemble mean and each CIF gets an error estimate, written to "
            "OUT's stem + .errors.json); default: the shipped model."
        ),
    ] = None,
    thickness: Annotated[
        float | None, typer.Option(help="Thickness in nm; default: the model's middle thickness.")
    ] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
) -> None:
    """Predict the [001] 000 LACBED pattern of each CIF with a surrogate (batched).

    The .npy holds (128, 128) for one CIF and (n, 128, 128) for several, in argument order,
    standardised per image (zero mean, unit variance: the model is trained with Z = 1 − ZNCC,
    which ignores scale and offset).
    """
    suffix = out.suffix.lower()
    if suffix not in _PREDICT_SUFFIXES:
        raise SettingsError(f"output must end in .npy or .png, got {out.name!r}")
    from lacbed._io import check_writable

    check_writable(out)
    for c in cifs:
        if not c.is_file():
            raise FileNotFoundError(2, "no such file", str(c))
    _threads(threads)
    import numpy as np

    from lacbed._io import atomic_path
    from lacbed.crystal import read_cif
    from lacbed.ml.predict import load_model, predict_crystals

    crystals = [read_cif(c) for c in cifs]  # NonCubicError etc. before anything is written
    errors = None
    if model is not None and model.suffix.lower() == ".json":
        from lacbed.ml.uncertainty import Ensemble, predict_crystals_ensemble

        ens = Ensemble.load(model)
        surrogate, info = ens.load_models()[0]
        res = predict_crystals_ensemble(crystals, ens, thickness_nm=thickness)
        pred = res.mean
        errors = {
            "ensemble": str(model.resolve()),
            "calibration": ens.calibration,
            "spread_definition": "mean Z between each member and the ensemble mean",
            "items": [
                {
                    "cif": str(c),
                    "spread": float(res.spread[i]),
                    "estimated_z": None if res.estimated_z is None else float(res.estimated_z[i]),
                }
                for i, c in enumerate(cifs)
            ],
        }
    else:
        surrogate, info = load_model(model)
        pred = predict_crystals(crystals, model=surrogate, info=info, thickness_nm=thickness)
    if suffix == ".npy":
        arr = pred[0] if len(cifs) == 1 else pred
        with atomic_path(out) as tmp:
            np.save(tmp, arr.astype(np.float32))
    else:
        from lacbed.ml.predict import model_thickness
        from lacbed.plotting.ml import plot_predictions

        engine = info.data.get("engine_settings") or {}
        fig = plot_predictions(
            pred,
            [c.name or c.formula for c in crystals],
            [c.a for c in crystals],
            thickness_nm=model_thickness(info, surrogate, thickness),
            voltage_kv=float(engine.get("voltage_kv") or 200.0),
            half_width=engine.get("half_width"),
        )
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=110)
    if errors is not None:
        err_path = out.with_name(out.stem + ".errors.json")
        with atomic_path(err_path) as tmp:
            tmp.write_text(json.dumps(errors, indent=1))
        for row in errors["items"]:
            est = row["estimated_z"]
            cell = "uncalibrated" if est is None else f"estimated Z {100 * est:.1f} %"
            typer.echo(f"{row['cif']}: ensemble spread {100 * row['spread']:.1f} % ({cell})")
        typer.echo(f"wrote {err_path}")
    typer.echo(f"wrote {out} ({len(cifs)} pattern{'s' if len(cifs) > 1 else ''})")
