"""Learning curve of a surrogate: validation Z against the number of training structures.

Trains one run per (training-set size, seed) with ``TrainConfig.max_train`` (for one seed the
subsets are nested: the first N of one seeded shuffle of the training split), scores each run on
the **validation** split only (issue 10 §2: the test split stays untouched while models are
chosen) and writes::

    OUT/<model>_n<N>_s<seed>/     the run directories (a rerun resumes or reuses them)
    OUT/learning_curve.json       per size: every seed's mean/median/P90 (overall and per
                                  thickness), the mean over seeds with its min-max range, and a
                                  least-squares power law  log Z_mean = log c + b log N
    OUT/learning_curve.png        mean over seeds (bars: min-max over seeds), median and P90

Usage (on the release, once it holds >= 2 000 materials; nice it on a shared machine)::

    nice -n 10 python benchmarks/ml_learning_curve.py data/lacbed-cubic -o runs/lc \\
        --model resae --sizes 100 200 400 800 1600 --seeds 0 1 2 --epochs 100 --patience 10

``--augment``, ``--physics-channel``, ``--physics-kind``, ``--residual``, ``--quadrant`` and
``--mirror-pad`` pass through to every run (as ``lacbed train``).
Sizes larger than the training split are clipped to it (and said so). Defaults train for a
few epochs only; pass the budget of the real runs. Each run uses one torch thread by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np


def power_law(sizes, z) -> dict | None:
    """Least-squares fit log z = log c + b log N; None with fewer than two distinct sizes."""
    n = np.asarray(sizes, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    ok = (n > 0) & (z > 0) & np.isfinite(z)
    if len(np.unique(n[ok])) < 2:
        return None
    b, logc = np.polyfit(np.log(n[ok]), np.log(z[ok]), 1)
    return {"c": float(np.exp(logc)), "b": float(b), "form": "Z_mean = c * N**b"}


def split_fingerprint(ds) -> dict:
    """Sizes of the train and val splits and a SHA-256 of their sorted keys.

    Results measured on one dataset are only merged with results measured on the same split
    (a release grows between sessions; a curve must not mix two of its states).
    """
    import hashlib

    out = {}
    h = hashlib.sha256()
    for name in ("train", "val"):
        slots = ds.split_slots(name)
        keys = sorted(ds.table.loc[ds.table["slot"].isin(slots), "key"].astype(str))
        out[f"n_{name}"] = len(keys)
        h.update(("\n".join(keys) + "|").encode())
    out["sha256"] = h.hexdigest()
    return out


def _load_previous(path: Path, identity: dict) -> dict:
    """Per-(size, seed) results already in ``path`` when measured on the same data and settings."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    mismatch = [k for k, v in identity.items() if old.get(k) != v]
    if mismatch:
        raise SystemExit(
            f"{path} holds results of another dataset or other settings ({', '.join(mismatch)} "
            "differ); give another --results file"
        )
    return {(r["n_train_structures"], s["seed"]): s for r in old["sizes"] for s in r["seeds"]}


def _epochs_for(n: int, epochs: int, sample_budget: int | None) -> int:
    """The run's epoch cap: ``epochs``, or fewer so that n * epochs <= sample_budget."""
    if sample_budget is None:
        return epochs
    return max(1, min(epochs, sample_budget // n))


def summarise(identity: dict, done: dict) -> dict:
    """Learning-curve summary from the finished runs ``{(n, seed): result}``."""
    rows = []
    for n in sorted({n for n, _ in done}):
        per_seed = [done[k] for k in sorted(done) if k[0] == n]
        means = np.array([r["val"]["mean"] for r in per_seed])
        rows.append(
            {
                "n_train_structures": n,
                "n_seeds": len(per_seed),
                "val_mean": float(means.mean()),
                "val_mean_min": float(means.min()),
                "val_mean_max": float(means.max()),
                "val_median": float(np.mean([r["val"]["median"] for r in per_seed])),
                "val_p90": float(np.mean([r["val"]["p90"] for r in per_seed])),
                "seeds": per_seed,
            }
        )
    # fit only the sizes with every seed (a resumed curve has fewer seeds at its last sizes)
    full = [r for r in rows if r["n_seeds"] == max((q["n_seeds"] for q in rows), default=0)]
    fit = power_law([r["n_train_structures"] for r in full], [r["val_mean"] for r in full])
    if fit is not None:
        fit["sizes"] = [r["n_train_structures"] for r in full]
    return {
        **identity,
        "seeds": sorted({s for _, s in done}),
        "z_units": "1 (multiply by 100 for %)",
        "sizes": rows,
        "fit": fit,
    }


def _write(summary: dict, path: Path) -> None:
    """Write the summary (atomically) and its figure beside it."""
    from lacbed._io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    plot_curve(summary).savefig(path.with_suffix(".png"), dpi=110)


def run_curve(
    data,
    out: Path,
    *,
    model: str = "resae",
    sizes=(10, 20, 40, 80, 160),
    seeds=(0,),
    epochs: int = 5,
    patience: int = 10,
    thickness=None,
    batch_size: int = 16,
    augment: str = "none",
    physics_channel: bool = False,
    physics_kind: str = "bragg",
    residual: bool = False,
    lr: float | None = None,
    quadrant: bool = False,
    mirror_pad: bool = False,
    sample_budget: int | None = None,
    results: Path | None = None,
    progress: bool = False,
) -> dict:
    """Train and score every (size, seed); return (and write) the learning-curve summary.

    Runs go seed by seed, each over all sizes (so an interrupted curve has whole curves for
    its first seeds); after each run the summary is rewritten, and a rerun with the same
    ``results`` file skips the runs already in it (it may be a committed file: the curve then
    resumes in a later session, as long as the dataset's train and val splits are the same).
    """
    from lacbed.dataset.store import open_dataset
    from lacbed.ml.config import TrainConfig, default_model_config
    from lacbed.ml.evaluate import evaluate
    from lacbed.ml.model import load_surrogate
    from lacbed.ml.training import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = Path(results) if results else out / "learning_curve.json"
    ds = open_dataset(data)
    n_avail = int(ds.split_counts()["train"])
    wanted = sorted({int(s) for s in sizes})
    used = sorted({min(s, n_avail) for s in wanted})
    if used != wanted:
        logging.warning("sizes clipped to the %d training structures: %s", n_avail, used)
    identity = {
        "dataset": Path(ds.path).name,  # no absolute path in committed results
        "splits": split_fingerprint(ds),
        "model": model,
        "split_scored": "val",
        "epochs": epochs,
        "patience": patience,
        "sample_budget": sample_budget,
        "batch_size": batch_size,
        "thickness_nm": list(thickness) if thickness else None,
        "augment": augment,
        "physics_channel": physics_channel,
        "quadrant": quadrant,
        "mirror_pad": mirror_pad,
    }
    if lr is not None:  # (only when given: curves at the default keep their identity)
        identity["lr"] = lr
    if physics_channel:  # (keys only here: curves without a channel keep their identity)
        from lacbed.ml.physics import physics_beams

        identity.update(
            physics_kind=physics_kind, residual=residual, physics_beams=physics_beams(physics_kind)
        )
    done = _load_previous(results, identity)
    mcfg = None
    if physics_channel or quadrant or mirror_pad:
        mcfg = dataclasses.replace(
            default_model_config(model, size=ds.size),
            physics_channel=physics_channel,
            physics_kind=physics_kind if physics_channel else "bragg",
            residual=residual,
            quadrant=quadrant,
            mirror_pad=mirror_pad,
        )
    for n in used:  # every seed of a size before the next size: intervals from the start
        for seed in seeds:
            if (n, int(seed)) in done:
                continue
            cfg = TrainConfig(
                epochs=_epochs_for(n, epochs, sample_budget),
                batch_size=batch_size,
                seed=int(seed),
                max_train=n,
                patience=patience,
                thickness_nm=tuple(thickness) if thickness else None,
                augment=augment,
                **({} if lr is None else {"lr": lr}),
            )
            run = out / f"{model}_n{n}_s{seed}"
            t0 = time.perf_counter()
            res = train(
                ds.path,
                run,
                model=model,
                config=cfg,
                model_config=mcfg,
                progress=progress,
                tensorboard=False,
            )
            train_s = time.perf_counter() - t0
            surrogate, info = load_surrogate(res.model_path)
            ev = evaluate(surrogate, ds, splits=("val",))["val"]
            done[(n, int(seed))] = {
                "seed": int(seed),
                "run": run.name,
                "n_train_structures": int(info.data["n_train_structures"]),
                "epoch_cap": cfg.epochs,
                "epochs_run": res.epochs_run,
                "best_val_z": res.best_val_z,
                "train_wall_s": train_s,
                "val": ev.stats(worst=3),
            }
            _write(summarise(identity, done), results)
            logging.warning(
                "N = %d seed %d: val Z %.2f %% (%.0f s)", n, seed, 100 * ev.stats()["mean"], train_s
            )
    summary = summarise(identity, done)
    _write(summary, results)
    return summary


def plot_curve(summary: dict):
    """Validation Z [%] against training structures: mean (min-max over seeds), median, P90."""
    from matplotlib.figure import Figure

    rows = summary["sizes"]
    n = np.array([r["n_train_structures"] for r in rows], dtype=float)
    mean = 100 * np.array([r["val_mean"] for r in rows])
    lo = 100 * np.array([r["val_mean_min"] for r in rows])
    hi = 100 * np.array([r["val_mean_max"] for r in rows])
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    ax.errorbar(n, mean, yerr=[mean - lo, hi - mean], fmt="o-", capsize=3, label="mean (seeds)")
    ax.plot(n, 100 * np.array([r["val_median"] for r in rows]), "s--", label="median")
    ax.plot(n, 100 * np.array([r["val_p90"] for r in rows]), "^:", label="P90")
    fit = summary.get("fit")
    if fit:
        nn = np.geomspace(n.min(), max(n.max(), 12000), 50)
        ax.plot(nn, 100 * fit["c"] * nn ** fit["b"], "k-", lw=0.7, label=f"fit N^{fit['b']:.2f}")
    ax.axhline(5.0, color="k", ls="--", lw=0.8, label="Z = 5 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training structures")
    ax.set_ylabel("validation Z [%]")
    ax.set_title(f"{summary['model']}, {len(summary['seeds'])} seed(s)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return fig


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="dataset store or release")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--model", default="resae")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 40, 80, 160])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--thickness", type=float, nargs="+", default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--augment", default="none", choices=["none", "ops", "shifts", "all"])
    ap.add_argument("--physics-channel", action="store_true")
    ap.add_argument("--physics-kind", default="bragg", choices=["bragg", "fewbeam", "coarse"])
    ap.add_argument("--residual", action="store_true", help="with an engine-run channel")
    ap.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default: train's)")
    ap.add_argument("--quadrant", action="store_true", help="resae: decode one quadrant")
    ap.add_argument("--mirror-pad", action="store_true", help="with --quadrant: no seam")
    ap.add_argument(
        "--sample-budget",
        type=int,
        default=None,
        help="cap each run's epochs at SAMPLE_BUDGET // N (structure-epochs)",
    )
    ap.add_argument(
        "--results",
        type=Path,
        default=None,
        help="summary JSON (default OUT/learning_curve.json); runs in it are skipped",
    )
    args = ap.parse_args(argv)
    if len(set(args.sizes)) < 5:
        ap.error("a learning curve needs at least 5 distinct --sizes")
    import torch

    torch.set_num_threads(args.threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    summary = run_curve(
        args.data,
        args.out,
        model=args.model,
        sizes=args.sizes,
        seeds=args.seeds,
        epochs=args.epochs,
        patience=args.patience,
        thickness=args.thickness,
        batch_size=args.batch_size,
        augment=args.augment,
        physics_channel=args.physics_channel,
        physics_kind=args.physics_kind,
        residual=args.residual,
        lr=args.lr,
        quadrant=args.quadrant,
        mirror_pad=args.mirror_pad,
        sample_budget=args.sample_budget,
        results=args.results,
    )
    for r in summary["sizes"]:
        print(
            f"N = {r['n_train_structures']:6d}  val Z mean {100 * r['val_mean']:6.2f} % "
            f"[{100 * r['val_mean_min']:.2f}, {100 * r['val_mean_max']:.2f}]  "
            f"median {100 * r['val_median']:6.2f} %  P90 {100 * r['val_p90']:6.2f} %"
        )
    if summary["fit"]:
        f = summary["fit"]
        print(f"fit: Z_mean = {f['c']:.3g} N^{f['b']:.3f}")
    path = args.results or args.out / "learning_curve.json"
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return summary


if __name__ == "__main__":
    main()
