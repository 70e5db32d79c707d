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

``--augment``, ``--physics-channel``, ``--quadrant`` and ``--mirror-pad`` pass through to every run (as ``lacbed train``).
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
    quadrant: bool = False,
    mirror_pad: bool = False,
    progress: bool = False,
) -> dict:
    """Train and score every (size, seed); return (and write) the learning-curve summary."""
    from lacbed.dataset.store import open_dataset
    from lacbed.ml.config import TrainConfig, default_model_config
    from lacbed.ml.evaluate import evaluate
    from lacbed.ml.model import load_surrogate
    from lacbed.ml.training import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(data)
    n_avail = int(ds.split_counts()["train"])
    wanted = sorted({int(s) for s in sizes})
    used = sorted({min(s, n_avail) for s in wanted})
    if used != wanted:
        logging.warning("sizes clipped to the %d training structures: %s", n_avail, used)
    mcfg = None
    if physics_channel or quadrant or mirror_pad:
        mcfg = dataclasses.replace(
            default_model_config(model, size=ds.size),
            physics_channel=physics_channel,
            quadrant=quadrant,
            mirror_pad=mirror_pad,
        )
    rows = []
    for n in used:
        per_seed = []
        for seed in seeds:
            cfg = TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                seed=int(seed),
                max_train=n,
                patience=patience,
                thickness_nm=tuple(thickness) if thickness else None,
                augment=augment,
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
            stats = ev.stats(worst=3)
            per_seed.append(
                {
                    "seed": int(seed),
                    "run": run.name,
                    "n_train_structures": int(info.data["n_train_structures"]),
                    "epochs_run": res.epochs_run,
                    "best_val_z": res.best_val_z,
                    "train_wall_s": train_s,
                    "val": stats,
                }
            )
        means = np.array([r["val"]["mean"] for r in per_seed])
        rows.append(
            {
                "n_train_structures": n,
                "val_mean": float(means.mean()),
                "val_mean_min": float(means.min()),
                "val_mean_max": float(means.max()),
                "val_median": float(np.mean([r["val"]["median"] for r in per_seed])),
                "val_p90": float(np.mean([r["val"]["p90"] for r in per_seed])),
                "seeds": per_seed,
            }
        )
    summary = {
        "dataset": Path(ds.path).name,  # no absolute path in committed results
        "model": model,
        "split_scored": "val",
        "seeds": [int(s) for s in seeds],
        "epochs": epochs,
        "patience": patience,
        "thickness_nm": list(thickness) if thickness else None,
        "augment": augment,
        "physics_channel": physics_channel,
        "quadrant": quadrant,
        "mirror_pad": mirror_pad,
        "z_units": "1 (multiply by 100 for %)",
        "sizes": rows,
        "fit": power_law([r["n_train_structures"] for r in rows], [r["val_mean"] for r in rows]),
    }
    (out / "learning_curve.json").write_text(json.dumps(summary, indent=1))
    plot_curve(summary).savefig(out / "learning_curve.png", dpi=110)
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
    ap.add_argument("--quadrant", action="store_true", help="resae: decode one quadrant")
    ap.add_argument("--mirror-pad", action="store_true", help="with --quadrant: no seam")
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
        quadrant=args.quadrant,
        mirror_pad=args.mirror_pad,
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
    print(f"wrote {args.out / 'learning_curve.json'} and {args.out / 'learning_curve.png'}")
    return summary


if __name__ == "__main__":
    main()
