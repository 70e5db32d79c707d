"""Can the hybrid model's own correction serve as its error estimate? (val, out of fold)

For a ``--physics-kind coarse --residual`` model (default: the shipped ``hybrid.pt``), scores
every val structure and thickness, takes the correction c = Z(prediction, its own coarse input)
and fits the true Z as an affine function of (1, c, t / 100 nm) by least squares, out of fold
(5 folds of structures, seeded), as :func:`lacbed.ml.uncertainty.calibrate` does for the
ensemble. Reports the Spearman rank correlation of c and of the out-of-fold estimate with the
true Z, the 90 % quantile of the residual, and for thresholds of 2, 5 and 10 % how many patterns
above the threshold the estimate flags (what ``--max-error`` would send to the engine).

Usage (repository root)::

    nice -n 5 python benchmarks/ml_refine_estimate.py data/lacbed-cubic \\
        [--model src/lacbed/ml/weights/hybrid.pt] -o benchmarks/results/ml_refine_estimate.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def out_of_fold(z: np.ndarray, c: np.ndarray, ts: np.ndarray, folds: int, seed: int):
    """Affine least-squares estimate of z from (1, c, t/100) per structure fold; (n, T)."""
    n, nt = z.shape
    fold = np.random.default_rng(seed).integers(0, folds, n)
    tt = np.tile(np.asarray(ts, dtype=np.float64) / 100.0, (n, 1))
    est = np.zeros_like(z)
    for f in range(folds):
        tr = fold != f

        def design(sel):  # noqa: ANN001, ANN202
            return np.stack([np.ones(sel.sum() * nt), c[sel].ravel(), tt[sel].ravel()], 1)

        coef, *_ = np.linalg.lstsq(design(tr), z[tr].ravel(), rcond=None)
        est[~tr] = (design(~tr) @ coef).reshape(-1, nt)
    return est


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped hybrid model")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args(argv)
    import torch

    from lacbed._io import atomic_path
    from lacbed.metrics import z_score
    from lacbed.ml.data import standardize_pattern
    from lacbed.ml.evaluate import evaluate
    from lacbed.ml.model import load_surrogate
    from lacbed.ml.predict import load_hybrid
    from lacbed.ml.uncertainty import spearman

    torch.set_num_threads(1)
    model = load_hybrid().model if args.model is None else load_surrogate(args.model)[0]
    ev = evaluate(model, args.data, splits=("val",))["val"]
    ts = np.asarray(ev.arrays.thickness_nm, dtype=np.float64)
    z = np.asarray(ev.z)
    c = np.asarray(z_score(ev.predicted, standardize_pattern(ev.arrays.physics)))
    est = out_of_fold(z, c, ts, args.folds, args.seed)
    flags = {}
    for thr in (0.02, 0.05, 0.10):
        bad, flag = z > thr, est > thr
        flags[f"{thr:g}"] = {
            "above": int(bad.sum()),
            "flagged": int(flag.sum()),
            "above_and_flagged": int((bad & flag).sum()),
            "largest_z_not_flagged": float(z[~flag].max()) if (~flag).any() else None,
        }
    out = {
        "dataset": args.data.name,
        "model": "shipped hybrid.pt" if args.model is None else args.model.name,
        "split": "val",
        "n_structures": int(z.shape[0]),
        "thicknesses_nm": ts.tolist(),
        "z_units": "1 (multiply by 100 for %)",
        "spearman_correction": spearman(c, z),
        "spearman_estimate_out_of_fold": spearman(est, z),
        "q90_residual_out_of_fold": float(np.quantile(z - est, 0.9)),
        "thresholds": flags,
    }
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "thicknesses_nm"}, indent=1))
    return out


if __name__ == "__main__":
    main()
