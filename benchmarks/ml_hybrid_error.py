"""Calibrate the hybrid model's error estimate on val and measure it out of fold.

Scores the hybrid model (default: the shipped ``hybrid.pt``) on every val structure and
thickness of a release, fits :func:`lacbed.ml.hybrid_error.calibrate_model` (ln Z against the
log of the model's correction of its coarse input, the thickness and ln a, and for cells of
a ≥ 8 Å the log of the coarse run's own convergence estimate, for which the coarse runs are
solved again, ~2 s of CPU per structure) and reports, out of
fold (10 folds, each structure prototype whole in one fold), its Spearman rank correlation with the true Z, its coverage, and what ``--max-error``
would do at 2, 5 and 10 % when compared with the estimate or with its 90 % bound (with the
engine time that costs: the release's recorded CPU time of each structure sent). For
comparison it also ranks the true Z by signals that were tried and not used: the correction
alone, the fraction of the coarse run's power above 0.18 cycles per pixel (fine fringes the
64-px run cannot hold), and the converged run's mean strong-beam count (from the release
record; not known at prediction time). With ``--write``, saves the calibration (tied to the
model file by its SHA-256) where ``lacbed predict --hybrid`` reads it.

Usage (repository root; the val coarse runs come from the physics-map cache, ~2 s of CPU per
structure otherwise)::

    nice -n 5 python benchmarks/ml_hybrid_error.py data/lacbed-cubic \\
        -o benchmarks/results/ml_hybrid_error.json \\
        [--write src/lacbed/ml/weights/hybrid.error.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HF_CUTOFF = 0.18  # cycles per pixel of the 128-px map


def high_frequency(maps: np.ndarray, cutoff: float = HF_CUTOFF) -> np.ndarray:
    """Fraction of each map's (mean-removed) power above ``cutoff`` cycles per pixel."""
    p = np.asarray(maps, dtype=np.float64)
    p = p - p.mean(axis=(-1, -2), keepdims=True)
    power = np.abs(np.fft.fft2(p)) ** 2
    k = np.fft.fftfreq(p.shape[-1])
    high = np.hypot(k[:, None], k[None, :]) > cutoff
    return power[..., high].sum(-1) / np.maximum(power.sum(axis=(-1, -2)), 1e-300)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped hybrid model")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--write", type=Path, default=None, help="save the calibration here")
    args = ap.parse_args(argv)
    import torch

    from lacbed._io import atomic_path
    from lacbed.dataset.store import open_dataset
    from lacbed.ml.hybrid_error import (
        LARGE_CELL_A,
        calibrate_hybrid,
        calibrate_model,
        correction,
        record_groups_costs,
    )
    from lacbed.ml.predict import HYBRID_FILE, _shipped_resource
    from lacbed.ml.uncertainty import spearman

    torch.set_num_threads(1)
    path = args.model or Path(str(_shipped_resource(HYBRID_FILE)))
    ds = open_dataset(args.data)
    err, ev, conv = calibrate_model(path, ds, folds=args.folds, seed=args.seed)
    cal = err.calibration
    arr = ev.arrays
    ts = np.asarray(arr.thickness_nm, dtype=np.float64)
    z, a = np.asarray(ev.z), np.asarray(arr.a, dtype=np.float64)
    corr = correction(ev.predicted, arr.physics)
    recs = {r["key"]: r for r in getattr(ds, "records", [])}
    beams = [recs.get(k, {}).get("engine", {}).get("n_strong_mean") for k in arr.keys]
    signals = {
        "correction": spearman(corr, z),
        f"high_frequency_{HF_CUTOFF:g}": spearman(high_frequency(arr.physics), z),
    }
    if all(b is not None for b in beams):
        signals["converged_n_strong_mean"] = spearman(np.repeat(beams, len(ts)), z.ravel())
    large = a >= LARGE_CELL_A
    without = intercept_only = None
    if conv is not None:  # what the coarse runs' own estimate adds (large cells)
        signals["coarse_convergence_estimate_large_cells"] = spearman(conv[large], z[large])
        signals["correction_large_cells"] = spearman(corr[large], z[large])
        groups, cost = record_groups_costs(ds, arr.keys)  # as calibrate_model takes them
        kw = dict(folds=args.folds, seed=args.seed, groups=groups, cost_s=cost)
        without = calibrate_hybrid(z, corr, ts, a, **kw)["out_of_fold"]
        # ablation: the large-cell columns with a constant in place of the estimate (so only
        # the large cells' own intercept and residuals): what the estimate itself adds
        intercept_only = calibrate_hybrid(z, corr, ts, a, convergence=np.ones_like(z), **kw)[
            "out_of_fold"
        ]
    worst = np.argsort(-z.max(axis=1))[:10]
    _, upper = err.estimate(ev.predicted, arr.physics, ts, a, conv)
    out = {
        "dataset": args.data.name,
        "model": "shipped hybrid.pt" if args.model is None else args.model.name,
        "split": "val",
        "n_structures": int(len(z)),
        "thicknesses_nm": ts.tolist(),
        "true_z": {
            "median": np.median(z, axis=0).tolist(),
            "p90": np.quantile(z, 0.9, axis=0).tolist(),
        },
        "signals_spearman": signals,
        # the same calibration without the coarse runs' convergence estimates (out of fold)
        "out_of_fold_without_convergence": without,
        "out_of_fold_large_cell_intercept_only": intercept_only if conv is not None else None,
        "calibration": cal,
        "worst10": [
            {
                "key": str(arr.keys[i]),
                "a": float(a[i]),
                "z": z[i].tolist(),
                "correction": corr[i].tolist(),
                "upper90_shipped": upper[i].tolist(),
            }
            for i in worst
        ],
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    if args.write is not None:
        err.save(args.write)
    oof = cal["out_of_fold"]
    print(f"spearman (out of fold) {oof['spearman']:.3f}; signals {signals}; engine for all: "
          f"{oof['engine_cpu_s_per_structure_all']} s/structure; coverage "
          f"{oof['coverage_upper90_per_thickness']} {oof['coverage_upper90_cells']}")  # fmt: skip
    for thr, row in oof["escalation"].items():
        for how, r in row.items():
            print(f"  {how:8s} > {thr}: escalated {100 * r['escalated']:.1f} % "
                  f"({100 * r['structures_escalated']:.1f} % of structures), "
                  f"{r.get('engine_cpu_s_per_structure', float('nan')):.1f} s/structure, caught "
                  f"{r['caught']}/{r['above_threshold']} (large cells "
                  f"{r['caught_large_cells']}/{r['above_threshold_large_cells']}), P90 after "
                  f"{np.round(np.asarray(r['p90_after']) * 100, 1)} %")  # fmt: skip
    return out


if __name__ == "__main__":
    main()
