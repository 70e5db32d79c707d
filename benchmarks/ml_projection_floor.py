"""How much of the converged pattern the projected potential can determine: zero-layer physics.

Usage::

    python benchmarks/ml_projection_floor.py data/lacbed-cubic [--split val] [--every 1] \
        [-o benchmarks/results/ml_projection_floor.json]

The surrogate's input is the projected potential along [001] (with a and t): its Fourier
coefficients are the zero-layer (ZOLZ, l = 0) V_hk0 and nothing of the higher layers (HOLZ,
l ≠ 0), whose reflections also enter the engine's beam pool (Felix's criterion, docs/physics.md
§11). This script solves each material of a split again with the engine's default adaptive
budget (no escalation) on a beam pool cut to its zero layer (the engine's
``lacbed.simulate.plan.beam_pool`` wrapped to drop l ≠ 0; nothing else changed) and scores it
against the release's converged pattern with Z = 1 − ZNCC, per thickness. That Z is what a
model that knew the zero-layer physics perfectly would still miss from the higher layers: the
part of the pattern the input image cannot carry. It is an upper bound on that part: it also
holds the difference between the default budget solved here and the escalated budget of the
converged pattern. The absorptive U′_hk0 and the Debye–Waller factors are not in the image
either; they follow from the atoms it shows, so a model can infer them but is not given them. It also records the
CPU time of the zero-layer solve and the release's recorded CPU time of the converged pattern
(another engine run, with pilots and escalation, at another load: compare roughly).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import lacbed.simulate.plan as plan_mod
from lacbed.crystal.serialise import crystal_from_record
from lacbed.dataset.build import BuildSettings
from lacbed.dataset.release import open_release
from lacbed.metrics import z_score
from lacbed.simulate import simulate_lacbed

_POOL = plan_mod.beam_pool


def _zero_layer_pool(*args, **kwargs):
    pool = _POOL(*args, **kwargs)
    return pool[pool[:, 2] == 0]  # [001] zone axis: l = 0


def zero_layer_pattern(crystal, bs: BuildSettings) -> tuple[np.ndarray, float]:
    """The pattern (T, S, S) with the zero-layer beams only, and its CPU time [s]."""
    plan_mod.beam_pool = _zero_layer_pool
    try:
        c0 = time.process_time()
        pat = simulate_lacbed(
            crystal, bs.thicknesses_nm, n_jobs=1, convergence_target=None, **bs.simulate_kwargs()
        )
        return np.asarray(pat.intensities), time.process_time() - c0
    finally:
        plan_mod.beam_pool = _POOL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release", type=Path)
    ap.add_argument("--split", default="val")
    ap.add_argument("--every", type=int, default=1, help="every k-th material by recorded CPU")
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/ml_projection_floor.json")
    )
    args = ap.parse_args()
    rel = open_release(args.release)
    t = rel.table
    rows_in = t[(t["status"] == "ok") & (t["split"] == args.split)].sort_values("cpu_s")
    rows_in = rows_in.iloc[:: args.every]
    bs = BuildSettings(
        size=rel.size, thicknesses_nm=tuple(rel.thicknesses_nm), **rel.settings["settings"]
    )
    recs = {r["key"]: r for r in rel.records}
    th = [f"{x:g}" for x in rel.thicknesses_nm]
    rows = []
    with threadpool_limits(1):
        for _, row in rows_in.iterrows():
            crystal = crystal_from_record(recs[row["key"]]["crystal"])
            pat, cpu = zero_layer_pattern(crystal, bs)
            z = z_score(pat, rel.patterns[int(row["slot"])])
            rows.append(
                {
                    "key": row["key"],
                    "formula": row["formula"],
                    "z": dict(zip(th, map(float, z), strict=True)),
                    "cpu_zero_layer_s": cpu,
                    "cpu_recorded_s": float(row["cpu_s"]),
                }
            )
            print(f"{row['formula']:>14}: Z % {np.round(100 * z, 2)}, {cpu:.1f} s", flush=True)
    zs = np.array([[r["z"][k] for k in th] for r in rows])
    out = {
        "release": args.release.name,
        "split": args.split,
        "every": args.every,
        "n": len(rows),
        "z_units": "1 (multiply by 100 for %)",
        "per_thickness": {
            k: {
                "mean": float(zs[:, i].mean()),
                "median": float(np.median(zs[:, i])),
                "p90": float(np.percentile(zs[:, i], 90)),
                "max": float(zs[:, i].max()),
            }
            for i, k in enumerate(th)
        },
        "cpu_zero_layer_total_s": float(sum(r["cpu_zero_layer_s"] for r in rows)),
        "cpu_recorded_total_s": float(sum(r["cpu_recorded_s"] for r in rows)),
        "materials": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for k, v in out["per_thickness"].items():
        print(f"{k} nm: mean {100 * v['mean']:.2f} %, median {100 * v['median']:.2f} %, "
              f"P90 {100 * v['p90']:.2f} %, max {100 * v['max']:.2f} %")  # fmt: skip


if __name__ == "__main__":
    main()
