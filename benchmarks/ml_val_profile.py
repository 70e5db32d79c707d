"""Where the shipped surrogate fails on val: Z by bright-field symmetry, cell size and thickness.

Usage (repository root)::

    python benchmarks/ml_val_profile.py [data/lacbed-cubic] [-o benchmarks/results/ml_val_profile.json]

Scores the shipped ensemble (:func:`lacbed.ml.predict.load_default`) on the release's ``val``
split (:func:`lacbed.ml.evaluate.evaluate`) and reports, per thickness, the mean and median Z
and the fraction with Z > 100 % (anti-correlated) for 4mm and 2mm crystals (point groups m-3m,
432, -43m against m-3, 23: space groups 195–206) and for cells with ≤ 32 and > 32 sites; how
many of the worst ten per thickness are 2mm; the estimate against the truth per thickness; and
the sizes (sites per cell, lattice parameter) of each split, to say which range val covers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _stats(z: np.ndarray) -> dict:
    z = np.asarray(z, dtype=np.float64)
    if z.size == 0:
        return {"n": 0}
    return {"n": int(z.size), "mean": float(z.mean()), "median": float(np.median(z)),
            "frac_over_100pct": float(np.mean(z > 1.0))}  # fmt: skip


def main(argv=None) -> dict:
    import torch

    from lacbed.dataset.release import open_release
    from lacbed.ml.evaluate import evaluate
    from lacbed.ml.predict import load_default

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default="data/lacbed-cubic", type=Path)
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/ml_val_profile.json")
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ens = load_default()
    ev = evaluate([m for m, _ in ens.load_models()], args.data)["val"]
    a = ev.arrays
    est = ens.estimate_for(ev)
    table = open_release(args.data, cache=False).table
    row = table.set_index("key")
    sg = np.array([int(row.loc[k, "space_group_number"]) for k in a.keys])
    sites = np.array([int(row.loc[k, "n_atoms"]) for k in a.keys])
    groups = {"2mm (SG 195-206)": (sg >= 195) & (sg <= 206), "4mm (SG 207-230)": sg >= 207,
              "<= 32 sites": sites <= 32, "> 32 sites": sites > 32}  # fmt: skip
    ts = [f"{t:g}" for t in a.thickness_nm]
    out = {
        "dataset": args.data.name,
        "split": "val",
        "model": "shipped",
        "n_structures": len(a.keys),
        "z_units": "1 (multiply by 100 for %)",
        "by_group": {
            g: {t: _stats(ev.z[mask, j]) for j, t in enumerate(ts)}
            | {"n_structures": int(mask.sum())}
            for g, mask in groups.items()
        },
        "worst10_2mm_per_thickness": {
            t: int(((sg >= 195) & (sg <= 206))[np.argsort(-ev.z[:, j])[:10]].sum())
            for j, t in enumerate(ts)
        },
        "estimate_vs_truth_mean": {
            t: {"estimated": float(est[:, j].mean()), "true": float(ev.z[:, j].mean())}
            for j, t in enumerate(ts)
        },
        "sizes_by_split": {
            s: {
                "n": int((table["split"] == s).sum()),
                "sites_median": float(table.loc[table["split"] == s, "n_atoms"].median()),
                "sites_max": int(table.loc[table["split"] == s, "n_atoms"].max()),
                "a_median_A": float(table.loc[table["split"] == s, "a"].median()),
                "a_max_A": float(table.loc[table["split"] == s, "a"].max()),
            }  # fmt: skip
            for s in ("train", "val", "test")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for g, d in out["by_group"].items():
        cells = "  ".join(
            f"{t}: {100 * d[t]['mean']:.1f} ({100 * d[t]['frac_over_100pct']:.0f} % >100)"
            for t in ts
        )
        print(f"{g:18s} n={d['n_structures']:4d}  {cells}")
    print("2mm among the worst ten:", out["worst10_2mm_per_thickness"])
    print("sizes:", out["sizes_by_split"])
    return out


if __name__ == "__main__":
    main()
