"""Does the network add anything to the coarse engine run? A refine model against its own input.

For a model trained with ``--physics-channel --physics-kind coarse --residual`` (the
multi-fidelity mode), scores on the **val** split of a dataset, per structure and thickness:
the coarse engine run alone (its physics channel, standardised) and the model's prediction, both
against the training target (:func:`lacbed.ml.data.prepare_target` of the converged pattern),
and the paired difference Z(model) − Z(coarse) with a 90 % bootstrap interval resampling
structures (``benchmarks/ml_paired_val.py``); and the correction, Z between the prediction and
its own input, with its Spearman rank correlation to the model's true Z (can the size of the
correction serve as an error estimate?).

Usage (repository root)::

    nice -n 5 python benchmarks/ml_coarse_refine.py data/lacbed-cubic RUN \\
        -o benchmarks/results/ml_coarse_refine.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml_paired_val import bootstrap_mean_diff  # noqa: E402


def stats(z: np.ndarray, ts) -> dict:
    """n, mean, median and P90 [1] of Z (structures × thicknesses), overall and per thickness."""
    from lacbed.ml.evaluate import z_stats

    return {**z_stats(z), "per_thickness": {f"{t:g}": z_stats(z[:, j]) for j, t in enumerate(ts)}}


def _spearman(x: np.ndarray, y: np.ndarray, ts) -> dict:
    """Spearman rank correlation of x and y (structures × thicknesses), all and per thickness."""
    from lacbed.ml.uncertainty import spearman

    per = {f"{t:g}": spearman(x[:, j], y[:, j]) for j, t in enumerate(ts)}
    return {"all": spearman(x, y), "per_thickness": per}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("run", type=Path)
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/ml_coarse_refine.json")
    )
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from lacbed.metrics import z_score
    from lacbed.ml.data import prepare_target, standardize_pattern
    from lacbed.ml.evaluate import evaluate
    from lacbed.ml.model import load_surrogate

    model, info = load_surrogate(args.run)
    if model.config.physics_input != "coarse":
        raise SystemExit(f"{args.run} does not read the coarse engine run (--physics-kind coarse)")
    ev = evaluate(model, args.data, splits=("val",))["val"]
    a = ev.arrays
    target = prepare_target(a.pattern, model.norm)
    z_coarse = np.asarray(z_score(standardize_pattern(a.physics), target))
    z_model = ev.z
    # how far the network moved its input: a candidate error estimate that needs no ensemble
    correction = np.asarray(z_score(ev.predicted, standardize_pattern(a.physics)))
    ts = [float(t) for t in a.thickness_nm]
    d = z_model - z_coarse
    out = {
        "dataset": args.data.name,
        "run": args.run.name,
        "split": "val",
        "n_structures": int(z_model.shape[0]),
        "n_train_structures": info.data.get("n_train_structures"),
        "z_units": "1 (multiply by 100 for %)",
        "coarse_input": stats(z_coarse, ts),
        "model": stats(z_model, ts),
        "delta_mean": float(d.mean()),
        "delta_interval_90": bootstrap_mean_diff(d),
        "delta_per_thickness": {f"{t:g}": float(d[:, j].mean()) for j, t in enumerate(ts)},
        "model_better_fraction": float(np.mean(d < 0)),
        "correction": stats(correction, ts),
        "spearman_correction_vs_model_z": _spearman(correction, z_model, ts),
        "spearman_coarse_z_vs_model_z": _spearman(z_coarse, z_model, ts),
    }
    from lacbed._io import atomic_path

    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(out, indent=1) + "\n")
    for name in ("coarse_input", "model"):
        s = out[name]
        per = " / ".join(f"{100 * v['mean']:.2f}" for v in s["per_thickness"].values())
        print(f"{name:13s} mean {100 * s['mean']:.2f} % ({per}), median {100 * s['median']:.2f} %, "
              f"P90 {100 * s['p90']:.1f} %")  # fmt: skip
    lo, hi = out["delta_interval_90"]
    print(f"Δ mean {100 * out['delta_mean']:+.2f} points [{100 * lo:+.2f}, {100 * hi:+.2f}]")
    print(f"Spearman(correction, Z) {out['spearman_correction_vs_model_z']['all']:.2f}")
    return out


if __name__ == "__main__":
    main()
