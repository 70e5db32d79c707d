"""Paired comparison of surrogate runs on the val split only (the test split stays untouched).

Usage::

    python benchmarks/ml_paired_val.py data/lacbed-cubic NAME=RUN [NAME=RUN ...] \
        [-o benchmarks/results/ml_paired_val.json]

``NAME=RUN0,RUN1,RUN2`` scores a seed ensemble's mean prediction instead of one run.

Every run is scored on the same val structures at every thickness it serves
(:func:`lacbed.ml.evaluate.evaluate`); for each run after the first it reports the mean of
Z(run) − Z(first) over (structure, thickness) with a 90 % bootstrap interval that resamples
structures (the thicknesses of one structure are not independent). ``benchmarks/ml_report.py
paired`` does the same on val + test; this one is for choosing between models, before the test
is looked at.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def bootstrap_mean_diff(d: np.ndarray, n_boot: int = 4000, seed: int = 0) -> list[float]:
    """90 % interval of the mean of ``d`` (structures × thicknesses), resampling structures."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    means = d[idx].mean(axis=(1, 2))
    return [float(np.percentile(means, 5)), float(np.percentile(means, 95))]


def main(argv=None) -> dict:
    import torch

    from lacbed.dataset.store import open_dataset
    from lacbed.ml.evaluate import evaluate
    from lacbed.ml.model import load_surrogate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument(
        "runs",
        nargs="+",
        help="NAME=RUN (run directory or model file), or NAME=RUN0,RUN1,... for a seed "
        "ensemble (its mean prediction is scored)",
    )
    ap.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/ml_paired_val.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = open_dataset(args.data)
    z, keys, thick = {}, None, None
    for spec in args.runs:
        name, _, run = spec.partition("=")
        paths = [Path(r) for r in run.split(",")]
        models = [load_surrogate(p / "model.pt" if p.is_dir() else p)[0] for p in paths]
        ev = evaluate(models, ds, splits=("val",))["val"]  # two or more: the ensemble's mean
        kk, tt, zz = list(ev.arrays.keys), [float(t) for t in ev.arrays.thickness_nm], ev.z
        if keys is not None and (kk != keys or tt != thick):
            raise SystemExit(
                f"{name}: scored on other structures or thicknesses than the first run"
            )
        keys, thick = kk, tt
        z[name] = np.asarray(zz, dtype=np.float64)
    first = next(iter(z))
    rows = []
    for name, zz in z.items():
        row = {
            "run": name,
            "mean": float(zz.mean()),
            "median": float(np.median(zz)),
            "p90": float(np.percentile(zz, 90)),
            "mean_per_thickness": {f"{t:g}": float(zz[:, j].mean()) for j, t in enumerate(thick)},
        }
        if name != first:
            d = zz - z[first]
            row["delta_mean"] = float(d.mean())
            row["delta_interval_90"] = bootstrap_mean_diff(d)
        rows.append(row)
        extra = (
            f"  Δ {100 * row['delta_mean']:+.1f} [{100 * row['delta_interval_90'][0]:+.1f}, "
            f"{100 * row['delta_interval_90'][1]:+.1f}]"
            if name != first
            else ""
        )
        per = " / ".join(f"{100 * v:.1f}" for v in row["mean_per_thickness"].values())
        print(f"{name:20s} mean {100 * row['mean']:.1f} % ({per}) median "
              f"{100 * row['median']:.1f} P90 {100 * row['p90']:.1f}{extra}")  # fmt: skip
    out = {
        "dataset": Path(ds.path).name,
        "split": "val",
        "n_structures": len(keys),
        "thicknesses_nm": thick,
        "baseline": first,
        "z_units": "1 (multiply by 100 for %)",
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
