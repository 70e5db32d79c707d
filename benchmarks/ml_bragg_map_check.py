"""How close the physics channel's Bragg-line map is to the converged pattern, on val.

Usage::

    python benchmarks/ml_bragg_map_check.py data/lacbed-cubic \
        [-o benchmarks/results/ml_release2_variants/bragg_map_check.json]

For every val structure and thickness: Z = 1 − ZNCC between the two-beam Bragg-line map
(:func:`lacbed.ml.physics.bragg_line_map`, the ``--physics-channel`` input) and the released
converged pattern; and Z of the training pattern whose map correlates best with the structure's
map (the map used as a lookup key). Maps come from the physics-map cache (computed when absent).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """(n, S, S) maps → (n, S·S) rows of zero mean and unit standard deviation."""
    from lacbed.ml.data import standardize_pattern

    return standardize_pattern(x).reshape(len(x), -1).astype(np.float64)


def main(argv=None) -> dict:
    from lacbed.dataset.store import open_dataset
    from lacbed.metrics import z_score
    from lacbed.ml.data import load_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("benchmarks/results/ml_release2_variants/bragg_map_check.json"),
    )
    args = ap.parse_args(argv)
    ds = open_dataset(args.data)
    ti = np.arange(len(ds.thicknesses_nm))
    val = load_split(ds, "val", thickness_index=ti, physics="bragg")
    train = load_split(ds, "train", thickness_index=ti, physics="bragg")
    out = {"dataset": Path(ds.path).name, "split": "val", "n_structures": len(val.keys),
           "n_train": len(train.keys), "z_units": "1 (multiply by 100 for %)", "per_thickness": {}}  # fmt: skip
    for j, t in enumerate(val.thickness_nm):
        z_map = [z_score(val.physics[i, j], val.pattern[i, j]) for i in range(len(val.keys))]
        nearest = np.argmax(_unit_rows(val.physics[:, j]) @ _unit_rows(train.physics[:, j]).T, 1)
        z_look = [z_score(train.pattern[k, j], val.pattern[i, j]) for i, k in enumerate(nearest)]
        row = {
            "map_vs_pattern": {"mean": float(np.mean(z_map)), "median": float(np.median(z_map))},
            "lookup_by_map": {"mean": float(np.mean(z_look)), "median": float(np.median(z_look))},
        }
        out["per_thickness"][f"{t:g}"] = row
        print(f"{t:g} nm: Z(map, pattern) mean {100 * row['map_vs_pattern']['mean']:.1f} %, "
              f"lookup by map mean {100 * row['lookup_by_map']['mean']:.1f} %")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
