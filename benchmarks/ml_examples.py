"""Z of the shipped surrogate on the bundled example crystals, and its own error estimate.

Each example CIF is predicted at every thickness the model serves
(:func:`lacbed.ml.predict.predict_series`, the shipped ensemble unless ``--model``), simulated
with the engine at the settings of the model's training data and the converged default budget
(:func:`lacbed.ml.predict.engine_kwargs`, as ``--max-error`` would), turned into the training
target (clipped and standardised, :func:`lacbed.ml.data.prepare_target`), and Z = 1 − ZNCC [%]
between the two is recorded beside the ensemble's estimated Z. Each example is also looked up in
the release by formula and space group (a match in ``train`` means the model saw it). Needs no
dataset beyond the repository.

Usage (from the repository root)::

    nice -n 10 python benchmarks/ml_examples.py [--model RUN|FILE|ENS.json | --hybrid]
        [--threads 1] [--out benchmarks/results/ml_examples.json]

``--hybrid``: the shipped hybrid model (``lacbed predict --hybrid``) with its own estimate; the
90 % bound is recorded beside the estimate (``upper90_percent``) with how many patterns each
covers.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "lacbed" / "examples"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="run directory or model file (default: shipped)")
    ap.add_argument("--hybrid", action="store_true", help="the shipped hybrid model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ml_examples.json"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    import lacbed
    from lacbed.crystal import read_cif
    from lacbed.dataset.release import open_release
    from lacbed.metrics import z_score
    from lacbed.ml.data import prepare_target
    from lacbed.ml.predict import engine_kwargs, load_predictor, predict_series
    from lacbed.ml.uncertainty import Ensemble, spearman
    from lacbed.simulate import simulate_lacbed

    pred = load_predictor(args.model, hybrid=args.hybrid)
    if isinstance(pred, Ensemble):
        model, info = pred.load_models()[0]
    else:
        model, info = (pred.model, pred.info) if args.hybrid else pred
    thick = list(model.trained_thicknesses_nm)
    kw = engine_kwargs(info, model.config.size)
    names = sorted(p.stem for p in EXAMPLES.glob("*.cif"))
    crystals = [read_cif(EXAMPLES / f"{n}.cif") for n in names]
    res = predict_series(crystals, thick, model=pred)
    table = open_release(ROOT / "data" / "lacbed-cubic").table
    rows, z_all, est_all, up_all = {}, [], [], []
    for i, (name, cr) in enumerate(zip(names, crystals, strict=True)):
        sim = simulate_lacbed(cr, thick, **kw).intensities  # (T, S, S)
        z = z_score(prepare_target(sim, model.norm), res.patterns[i]).reshape(-1)
        same = table[(table["formula"] == cr.formula)
                     & (table["space_group_number"] == cr.space_group_number)]  # fmt: skip
        rows[name] = {
            "z_percent": {
                f"{t:g}": round(100 * float(v), 2) for t, v in zip(thick, z, strict=True)
            },
            "release_splits": sorted(set(same["split"].astype(str))),
        }
        if res.estimated_z is not None:
            est = res.estimated_z[i]
            rows[name]["estimated_z_percent"] = {
                f"{t:g}": round(100 * float(v), 2) for t, v in zip(thick, est, strict=True)
            }
            est_all.extend(est)
        if res.upper90 is not None:
            rows[name]["upper90_percent"] = {
                f"{t:g}": round(100 * float(v), 2)
                for t, v in zip(thick, res.upper90[i], strict=True)
            }
            up_all.extend(res.upper90[i])
        z_all.extend(z)
        print(name, rows[name], flush=True)
    out = {
        "lacbed_version": lacbed.__version__,
        "model": "shipped hybrid (src/lacbed/ml/weights/hybrid.pt, hybrid.error.json)"
        if args.hybrid
        else args.model or "shipped (src/lacbed/ml/weights/default.json)",
        "machine": platform.platform(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "thickness_nm": thick,
        "engine_settings": kw,
        "examples": rows,
        "z_percent_mean": round(100 * float(np.mean(z_all)), 2),
        "z_percent_median": round(100 * float(np.median(z_all)), 2),
        "spearman_estimate_vs_z": spearman(est_all, z_all) if est_all else None,
    }
    if est_all:
        z_arr = np.asarray(z_all)
        out["estimate_covers"] = f"{int(np.sum(np.asarray(est_all) >= z_arr))} of {z_arr.size}"
    if up_all:
        out["upper90_covers"] = f"{int(np.sum(np.asarray(up_all) >= z_arr))} of {z_arr.size}"
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
