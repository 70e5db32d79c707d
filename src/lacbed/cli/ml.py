"""``lacbed train | evaluate | predict``: the neural surrogate (needs the ``lacbed[ml]`` extra).

Contract (issue 5)::

    lacbed train DATA -o RUN --model vae|cvae|resae|unet|spectral [--epochs N] [--max-train N] [--thickness T]
                 [--seed S] [--batch-size B] [--lr LR]        (rerun: resumes from RUN)
    lacbed evaluate RUN DATA [--split val|train|test|test-real]
                                          → RUN/metrics.json, RUN/gallery-SPLIT.png
    lacbed predict X.cif [X2.cif ...] [--model RUN|ENS.json | --hybrid] [--thickness T [T ...]]
                   [--max-error Z] -o OUT.npy|OUT.png
    lacbed calibrate RUN --data DATA      → RUN/model.error.json (a hybrid's error estimate)

torch is imported only inside the commands, so ``lacbed --help`` stays fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import click
import typer
from typer.core import TyperCommand

from lacbed.cli.app import app
from lacbed.errors import LacbedError, SettingsError

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
            help="With --physics-channel: bragg (the Bragg-line map), fewbeam (a 16-beam "
            "engine run; 0.3-55 s per crystal) or coarse (96 beams at half the pixels, "
            "upsampled; ~2 s): the multi-fidelity modes, cached."
        ),
    ] = "bragg",
    residual: Annotated[
        bool,
        typer.Option(
            "--residual/--no-residual",
            help="With --physics-kind fewbeam or coarse: predict a correction to the engine run.",
        ),
    ] = False,
    quadrant: Annotated[
        bool,
        typer.Option(
            "--quadrant/--no-quadrant",
            help="resae: decode one quadrant and unfold it by the 2mm mirrors (< half the cost).",
        ),
    ] = False,
    mirror_pad: Annotated[
        bool,
        typer.Option(
            "--mirror-pad/--no-mirror-pad",
            help="With --quadrant: pad the mirror image at the quadrant's inner edges (no seam).",
        ),
    ] = False,
    augment: Annotated[
        str,
        typer.Option(
            help="Exact-physics augmentation of training pairs: none, ops (a random one of the "
            "8 operations of 4mm on input and target), shifts (a random cell origin), all."
        ),
    ] = "none",
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start a new run from this model's weights (model file or run directory; same "
            "model and options, --mirror-pad may differ): continue training as the data grows."
        ),
    ] = None,
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
        init=None if init is None else str(init),
    )
    mcfg = None
    if (physics_kind != "bragg" or residual) and not physics_channel:
        raise SettingsError("--physics-kind and --residual need --physics-channel")
    if symmetrize is not None or physics_channel or quadrant or mirror_pad:
        options = {"quadrant": quadrant, "mirror_pad": mirror_pad}
        if symmetrize is not None:
            options["symmetrize"] = symmetrize
        if physics_channel:
            options.update(physics_channel=True, physics_kind=physics_kind, residual=residual)
        mcfg = _model_config(data, model, options)
    res = run_training(data, out, model=model, config=cfg, model_config=mcfg, progress=progress)
    typer.echo(
        f"{'resumed' if res.resumed else 'trained'} {model}: {res.n_train} training samples, "
        f"{res.n_val} validation samples, best validation Z = {100 * res.best_val_z:.2f} % "
        f"→ {res.model_path}"
    )


def _model_config(data: Path, model: str, options: dict):  # noqa: ANN202
    """The default configuration of ``model`` at DATA's image size, with ``options`` set."""
    import dataclasses

    from lacbed.dataset.store import open_dataset
    from lacbed.ml.config import default_model_config

    return dataclasses.replace(default_model_config(model, size=open_dataset(data).size), **options)


@app.command("evaluate")
def evaluate(
    run: Annotated[
        Path, typer.Argument(help="Run directory, model file or ensemble file (ENS.json).")
    ],
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
    RUN/gallery-SPLIT.png (the worst cases: input | target | prediction | difference); for an
    ensemble file ENS.json, ENS.metrics.json and ENS.gallery-SPLIT.png beside it, with how well
    its error estimate ranks (Spearman) and bounds the true Z on that split.
    """
    from lacbed.ml.evaluate import EVAL_SPLITS

    if split not in EVAL_SPLITS:
        raise SettingsError(f"unknown split {split!r}; choose one of {', '.join(EVAL_SPLITS)}")
    if worst < 1:
        raise SettingsError(f"--worst must be >= 1, got {worst}")
    _threads(threads)
    from lacbed import __version__
    from lacbed.dataset.store import open_dataset
    from lacbed.ml.evaluate import evaluate as run_eval
    from lacbed.ml.evaluate import resolve_split
    from lacbed.ml.predict import load_predictor

    pred = load_predictor(run)
    pairs = [pred] if isinstance(pred, tuple) else pred.load_models()  # model or ensemble
    surrogate, info = pairs[0]
    thick = info.data.get("thicknesses_nm") or None
    ds = open_dataset(data)
    used, note = resolve_split(ds, split)
    if note:
        typer.echo(f"note: {note}", err=True)
    # the note is said here once; score the resolved split (no second warning from the library)
    ev = run_eval([m for m, _ in pairs], ds, splits=(used,), thickness_nm=thick)[used]
    if run.suffix.lower() == ".json":
        metrics_path = run.with_name(run.stem + ".metrics.json")
        gallery = run.with_name(f"{run.stem}.gallery-{split}.png")
    else:
        run_dir = run if run.is_dir() else run.parent
        metrics_path, gallery = run_dir / "metrics.json", run_dir / f"gallery-{split}.png"
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
    if len(pairs) > 1:
        stats["error_estimate"] = _estimate_quality(pred, ev)
    metrics.update(
        model=surrogate.config.to_dict(),
        members=len(pairs),
        z_units="1 (multiply by 100 for %)",
        lacbed_version=__version__,
    )
    metrics.setdefault("splits", {})[split] = stats
    _write_evaluation(metrics_path, metrics, gallery, ev, surrogate.norm, worst)
    label = split if used == split else f"{split} (scored: {used})"
    typer.echo(f"{label}: {len(ev.arrays)} structures")
    rows = [("all", stats)] + [(f"{t} nm", s) for t, s in stats["per_thickness"].items()]
    for name, s in rows:
        typer.echo(
            f"  {name:8s} n={s['n']:5d}  Z mean {100 * s['mean']:6.2f} %  "
            f"median {100 * s['median']:6.2f} %  P90 {100 * s['p90']:6.2f} %"
        )
    for t, rows_ in stats["worst"].items():
        cells = ", ".join(f"{w['formula']} ({w['key']}) {100 * w['z']:.1f}" for w in rows_)
        typer.echo(f"  worst at {t} nm [Z %]: {cells}")
    e = stats.get("error_estimate")
    if e and e.get("spearman") is not None:
        q90 = e["coverage_q90"]
        typer.echo(
            f"  error estimate{' (in-sample)' if e['in_sample'] else ''}: Spearman "
            f"{e['spearman']:.2f} with the true Z (spread alone {e['spearman_spread']:.2f}); "
            f"true Z below the estimate {100 * e['coverage']:.0f} %"
            + ("" if q90 is None else f", below the 90 % bound {100 * q90:.0f} %")
        )
    typer.echo(f"wrote {metrics_path} and {gallery}")


def _estimate_quality(ensemble, ev) -> dict:
    """How an ensemble's error estimate ranks and bounds the true Z of one evaluation."""
    import numpy as np

    from lacbed.ml.uncertainty import spearman

    z = ev.z
    out = {"spearman_spread": spearman(ev.spread, z)}
    est = ensemble.estimate_for(ev)
    if est is None:
        return {**out, "spearman": None}
    q90 = float(ensemble.calibration.get("q90_residual", np.nan))
    return {
        **out,
        "spearman": spearman(est, z),
        "mean_estimated_z": float(est.mean()),
        "coverage": float(np.mean(z <= est)),
        "coverage_q90": float(np.mean(z <= est + q90)) if np.isfinite(q90) else None,
        "mean_abs_error": float(np.abs(est - z).mean()),
        # on the calibration split the numbers are in-sample; on train the distance finds
        # each structure itself
        "in_sample": ev.split in (ensemble.calibration.get("split"), "train"),
    }


def _write_evaluation(metrics_path, metrics, gallery, ev, norm, worst) -> None:  # noqa: ANN001
    """metrics.json and the gallery of the worst cases over all thicknesses, worst first."""
    import numpy as np

    from lacbed._io import atomic_path
    from lacbed.ml.data import prepare_target
    from lacbed.plotting.ml import plot_gallery

    a = ev.arrays
    flat = np.argsort(-ev.z.ravel(), kind="stable")[: min(worst, ev.z.size)]
    picks = [(int(k) // ev.z.shape[1], int(k) % ev.z.shape[1]) for k in flat]
    fig = plot_gallery(
        a.potential[[i for i, _ in picks]],
        prepare_target(np.stack([a.pattern[i, j] for i, j in picks]), norm),
        [ev.predicted[i, j] for i, j in picks],
        [ev.z[i, j] for i, j in picks],
        labels=[f"{a.keys[i]}\n{a.formulas[i]} {a.thickness_nm[j]:g} nm" for i, j in picks],
    )
    with atomic_path(metrics_path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    with atomic_path(gallery) as tmp:
        fig.savefig(tmp, dpi=90)


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
    spread_only: Annotated[
        bool,
        typer.Option(
            "--spread-only",
            help="Calibrate on the spread alone (default: spread, distance of the potential to "
            "the training structures, thickness, ln a).",
        ),
    ] = False,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
) -> None:
    """Group models (trained with different --seed) into an ensemble that estimates its error.

    With --data, the error estimate is calibrated on SPLIT: Z ≈ intercept + a · spread (mean Z
    between each member and the mean) + b · distance of the potential to the training
    structures + c · thickness + d · ln a (--spread-only: the spread alone), and the Spearman rank
    correlation of estimate and true Z is reported. The training features are written to
    ENS.reference.npz beside ENS.json.
    Use the file as `lacbed predict X.cif --model ENS.json`.
    """
    if len(runs) < 2:
        raise SettingsError(f"an ensemble needs at least two models, got {len(runs)}")
    if out.suffix.lower() != ".json":
        raise SettingsError(f"the ensemble file must end in .json, got {out.name!r}")
    _threads(threads)
    from lacbed.ml.model import _resolve
    from lacbed.ml.uncertainty import ERROR_FEATURES, Ensemble, calibrate

    if spread_only and data is None:
        raise SettingsError("--spread-only chooses how to calibrate: it needs --data DATA")
    ens = Ensemble([_resolve(r) for r in runs])
    models = [m for m, _ in ens.load_models()]
    if data is not None:
        feats = ("spread",) if spread_only else ERROR_FEATURES
        ens.calibration, ens.reference = calibrate(models, data, split=split, features=feats)
        c = ens.calibration
        if not ens.calibrated:
            raise LacbedError(
                f"the calibration on {c['split']} failed (spread constant over its {c['n']} "
                "samples?): no ensemble file written"
            )
        terms = " + ".join(
            f"{v:.3g} × {f}" for f, v in zip(c.get("features", ["spread"]),
                                             c.get("coef", [c.get("slope")]), strict=True)
        )  # fmt: skip
        typer.echo(
            f"calibrated on {c['split']} ({c['n']} samples): Z ≈ {c['intercept']:.3g} + "
            f"{terms} (90 % below + {c['q90_residual']:.3g}), Spearman {c['spearman']:.2f} "
            f"(spread alone {c['spearman_spread']:.2f}), true Z below the estimate for "
            f"{100 * c['coverage']:.0f} %"
        )
    ens.save(out)
    typer.echo(f"wrote {out} ({len(runs)} members)")


@app.command("calibrate")
def calibrate_hybrid_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory or model file of a hybrid model.")],
    data: Annotated[Path, typer.Option(help="Dataset or release it was trained on.")],
    split: Annotated[
        str, typer.Option(help="Calibration split (val keeps the test split untouched).")
    ] = "val",
    folds: Annotated[
        int, typer.Option(help="Folds of the out-of-fold check (needs 2 structures per fold).")
    ] = 10,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
) -> None:
    """Give a hybrid model (--physics-kind coarse or fewbeam) an error estimate.

    Scores it on SPLIT and fits ln Z against the log of how far the network moved its engine
    input, the thickness and ln a (lacbed.ml.hybrid_error; out of fold with each structure
    prototype whole in one fold), then writes the calibration beside the model file (RUN/model.pt
    → RUN/model.error.json), where `lacbed predict --model RUN` finds it and takes --max-error.
    """
    _threads(threads)
    from lacbed.ml.hybrid_error import calibrate_model, error_file

    err, _, _ = calibrate_model(run, data, split=split, folds=folds, n_jobs=threads)
    c = err.calibration
    oof = c["out_of_fold"]
    out = error_file(run)
    err.save(out)
    typer.echo(
        f"calibrated on {c['split']} ({c['n_structures']} structures, {c['n']} patterns): out of "
        f"fold Spearman {oof['spearman']:.2f}, 90 % bound holds for "
        f"{100 * oof['coverage_upper90']:.0f} % ("
        + " / ".join(f"{100 * v:.0f}" for v in oof["coverage_upper90_per_thickness"])
        + f" % at {' / '.join(f'{t:g}' for t in c['thicknesses_nm'])} nm)"
    )
    typer.echo(f"wrote {out}")


class _PredictCommand(TyperCommand):
    """``predict``, whose ``--thickness`` takes several values (``--thickness 50 100 150``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from lacbed.cli.simulate import expand_multi_value_options

        return super().parse_args(ctx, expand_multi_value_options(list(args), ("--thickness",)))


@app.command("predict", cls=_PredictCommand)
def predict(
    cifs: Annotated[list[Path], typer.Argument(help="CIF files of cubic crystals.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="OUT.npy (float32) or OUT.png.")],
    model: Annotated[
        Path | None,
        typer.Option(
            help="Run directory, model file, or ensemble file (lacbed ensemble; then the "
            "prediction is the ensemble mean and each pattern gets an error estimate, written to "
            "OUT's stem + .errors.json); default: the shipped model."
        ),
    ] = None,
    thickness: Annotated[
        list[float] | None,
        typer.Option(
            help="Thickness(es) in nm: --thickness 50 100 150 (or repeated); each must be one "
            "the model serves. Default: the model's middle training thickness."
        ),
    ] = None,
    max_error: Annotated[
        float | None,
        typer.Option(
            help="Largest accepted estimated Z = 1 - ZNCC (a fraction, e.g. 0.05; needs a "
            "calibrated ensemble as --model, or --hybrid): every pattern whose estimate (or, "
            "by default with --hybrid, its 90 % bound: --max-error-on) exceeds it is "
            "computed by the Bloch-wave engine instead (the training data's settings, the "
            "converged default budget; seconds to minutes per CIF at 128 px)."
        ),
    ] = None,
    max_error_on: Annotated[
        str | None,
        typer.Option(
            help="What --max-error is compared with: estimate (the estimated Z) or upper90 (its "
            "90 % upper bound, which 9 in 10 calibration patterns stayed below). Default: "
            "upper90 with --hybrid (its estimate is a median), estimate otherwise."
        ),
    ] = None,
    hybrid: Annotated[
        bool,
        typer.Option(
            "--hybrid",
            help="Use the shipped hybrid model instead: a coarse Bloch-wave run (96 strong "
            "beams at 64 px, about 2 s of CPU per CIF for four thicknesses) corrected by a "
            "network; far closer to the converged pattern, with an error estimate from its "
            "correction (written to OUT's stem + .errors.json; model card).",
        ),
    ] = False,
    threads: Annotated[int, typer.Option(help="torch CPU threads and engine workers.")] = 2,
) -> None:
    """Predict the [001] 000 LACBED pattern of each CIF at each thickness (batched).

    The .npy holds, in argument order, (128, 128) for one CIF and (n_cif, 128, 128) for several
    at one thickness, and (n_cif, n_thickness, 128, 128) whenever several thicknesses are
    asked for; float32, standardised per image (zero mean, unit variance: the model is trained
    with Z = 1 − ZNCC, which ignores scale and offset). The .png is one row of CIFs at one
    thickness, or a grid (rows = CIFs, columns = thicknesses); each title says "surrogate",
    "hybrid" (a model that corrects an engine run, --hybrid) or "engine". With an ensemble or
    --hybrid, OUT's stem + .errors.json has one entry per (CIF, thickness): estimated Z and its
    90 % bound, the ensemble spread, the source and, where the engine ran, its own convergence
    estimate and CPU time.
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
    from lacbed.crystal import read_cif
    from lacbed.ml.predict import load_predictor, predict_series

    crystals = [read_cif(c) for c in cifs]  # NonCubicError etc. before anything is written
    predictor = load_predictor(model, hybrid=hybrid)
    res = predict_series(
        crystals, thickness, model=predictor, max_error=max_error, max_error_on=max_error_on,
        n_jobs=threads,
    )  # fmt: skip
    _write_prediction(out, res, crystals)
    if res.estimated_z is not None or res.spread is not None:
        hyb = getattr(predictor, "error", None)
        calibration = hyb.calibration if hyb is not None else predictor.calibration
        _report_errors(out, res, cifs, crystals, model, calibration, hybrid=hyb)
    n = res.patterns.shape[0] * res.patterns.shape[1]
    typer.echo(f"wrote {out} ({n} pattern{'s' if n > 1 else ''})")


def _write_prediction(out: Path, res, crystals) -> None:
    """OUT.npy or OUT.png of a :class:`lacbed.ml.predict.SeriesPrediction`."""
    import numpy as np

    from lacbed._io import atomic_path

    pred = res.patterns  # (n, T, S, S)
    one_t = pred.shape[1] == 1
    if out.suffix.lower() == ".npy":
        arr = pred[:, 0] if one_t else pred
        arr = arr[0] if one_t and len(crystals) == 1 else arr
        with atomic_path(out) as tmp:
            np.save(tmp, arr.astype(np.float32))
        return
    from lacbed.plotting.ml import plot_predictions

    engine = res.data_settings  # the training data's settings (figure axes)
    fig = plot_predictions(
        pred[:, 0] if one_t else pred,
        [c.name or c.formula for c in crystals],
        [c.a for c in crystals],
        thickness_nm=res.thicknesses_nm[0] if one_t else res.thicknesses_nm,
        voltage_kv=float(engine.get("voltage_kv") or 200.0),
        half_width=engine.get("half_width"),
        sources=res.source[:, 0] if one_t else res.source,
    )
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)


def _finite(x) -> float | None:  # noqa: ANN001
    """A float for errors.json, None (JSON null) where it is not finite (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _report_errors(
    out: Path, res, cifs, crystals, model: Path | None, calibration: dict, *, hybrid=None
) -> None:  # fmt: skip
    """Write OUT.errors.json and print the estimates and the engine replacements (``hybrid``:
    the hybrid model's :class:`lacbed.ml.hybrid_error.HybridError`, None for an ensemble)."""
    from rich.console import Console

    from lacbed._io import atomic_path

    items = []
    for i, c in enumerate(cifs):
        for j, t in enumerate(res.thicknesses_nm):
            est = None if res.estimated_z is None else _finite(res.estimated_z[i, j])
            row = {
                "cif": str(c),
                "thickness_nm": float(t),
                "spread": None if res.spread is None else _finite(res.spread[i, j]),
                "estimated_z": est,
                "source": str(res.source[i, j]),
            }
            if res.upper90 is not None:
                row["estimated_z_upper90"] = _finite(res.upper90[i, j])  # 9 in 10 below it
            rec = res.engine[i] if res.engine else None
            if row["source"] == "engine":
                k = rec["thicknesses_nm"].index(float(t))
                row["engine_convergence_estimate"] = rec["convergence_estimate"][k]
                row["engine_cpu_s"] = rec["cpu_s"]  # the one call for this CIF's thicknesses
                row["engine_wall_s"] = rec["wall_s"]
                row["engine_thicknesses_nm"] = rec["thicknesses_nm"]
                row["engine_budget_capped"] = rec["budget_capped"]
            if hybrid is not None and crystals[i].a >= hybrid.large_cell_a:
                row["caveat"] = _large_cell_caveat(hybrid)
            items.append(row)
            typer.echo(f"{c} at {t:g} nm: {_estimate_text(row, hybrid)}")
    if hybrid is not None and model is None:
        what = "shipped hybrid (lacbed/ml/weights/hybrid.pt, hybrid.error.json)"
    elif model is None:
        what = "shipped (lacbed/ml/weights/default.json)"
    else:
        what = str(model.resolve())
    errors = {
        "model" if hybrid is not None else "ensemble": what,
        "calibration": calibration,
        "estimate_from": (
            "the hybrid's correction of its coarse run"
            + (
                " and, for large cells, the coarse run's convergence estimate"
                if hybrid.needs_convergence
                else ""
            )  # fmt: skip
        )
        if hybrid is not None
        else "mean Z between each member and the ensemble mean (the spread)",
        "thicknesses_nm": [float(t) for t in res.thicknesses_nm],
        "max_error": res.max_error,
        "max_error_on": res.max_error_on if res.max_error is not None else None,
        "engine_settings": res.engine_settings,
        "items": items,
    }
    err_path = out.with_name(out.stem + ".errors.json")
    with atomic_path(err_path) as tmp:
        tmp.write_text(json.dumps(errors, indent=1, allow_nan=False))
    if res.max_error is not None:
        _print_engine_runs(Console(highlight=False, soft_wrap=True), res, cifs, crystals)
    typer.echo(f"wrote {err_path}")


def _large_cell_caveat(err) -> str:
    """Why a large cell's hybrid estimate deserves a second look (model card, "Hybrid mode")."""
    head = f"large cell (a >= {err.large_cell_a:g} A): the coarse run is far from converged"
    if err.needs_convergence:
        return head + " and the estimate less reliable; check with lacbed simulate"
    return head + " and this estimate misses most large errors; check with lacbed simulate"


def _estimate_text(row: dict, hybrid) -> str:
    """'ensemble spread 3.1 % (estimated Z 20.0 %, 90 % calibration bound 47.0 %)' and the
    like; for a pattern the engine replaced, the estimate is that of the prediction replaced."""
    est, upper = row["estimated_z"], row.get("estimated_z_upper90")
    cell = "no estimate" if est is None else f"estimated Z {100 * est:.1f} %"
    if est is not None and upper is not None:
        cell += f", 90 % calibration bound {100 * upper:.1f} %"
    if hybrid is not None:
        text = f"hybrid ({cell})"
    else:
        spread = "nan" if row["spread"] is None else f"{100 * row['spread']:.1f} %"
        text = f"ensemble spread {spread} ({cell})"
    if row["source"] == "engine":
        text = "engine, replacing the " + (text if hybrid else f"network with {text}")
    return text + ("; " + row["caveat"] if "caveat" in row else "")


def _print_engine_runs(console, res, cifs, crystals) -> None:
    """One line per structure the engine computed, with the estimates that sent it there."""
    z = res.max_error
    n_engine = 0
    for i, rec in enumerate(res.engine or []):
        if rec is None:
            continue
        js = [j for j in range(len(res.thicknesses_nm)) if res.source[i, j] == "engine"]
        n_engine += len(js)
        what = "estimated Z" if res.max_error_on == "estimate" else "90 % bound on Z"
        value = res.estimated_z if res.max_error_on == "estimate" else res.upper90
        cells = ", ".join(
            f"{res.thicknesses_nm[j]:g} nm ({what} {100 * value[i, j]:.1f} %)" for j in js
        )
        conv = [v for v in rec["convergence_estimate"] if v is not None]
        conv_txt = f", engine convergence {100 * max(conv):.2g} %" if conv else ""
        name = crystals[i].formula
        console.print(
            f"engine instead of the network for {name} ({cifs[i]}) at {cells} > "
            f"{100 * z:g} %: {rec['cpu_s']:.1f} s CPU{conv_txt}"
        )
    total = res.source.size
    console.print(
        f"{total - n_engine} of {total} patterns from the network, {n_engine} from the engine "
        f"(--max-error {z:g}"
        + ("" if res.max_error_on == "estimate" else f" on the {res.max_error_on} bound")
        + ")"
    )
