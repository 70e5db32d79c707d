"""Which cheap engine run is the best input for the multi-fidelity mode? Pixels against beams.

For evenly spaced materials of the release's ``val`` split, solves each at a few (pixels,
strong beams) settings with no convergence estimate (``convergence_sample=0``; one solve for all
of the release's thicknesses), upsamples bilinearly to the release's size
(:func:`lacbed.ml.physics.upsample_pattern`) and records Z = 1 − ZNCC against the released
converged pattern and the CPU time of the call (after a tiny warm-up solve of the same crystal,
so the first setting does not pay for the structure factors). A fixed budget larger than a
small cell's beam pool takes the whole pool (``strong_beams`` per row, as the ``coarse`` input
does; results written before 2026-12-08 fell back to the adaptive default instead,
``fallback``).

Usage (repository root; ~5 min of CPU for 20 materials and 4 settings)::

    nice -n 5 python benchmarks/engine_coarse_configs.py [--n 20] \\
        [--configs 64x32 64x64 64x96 96x64] [-o benchmarks/results/engine_coarse_configs.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> dict:
    from lacbed.crystal.serialise import crystal_from_record
    from lacbed.dataset.release import open_release
    from lacbed.metrics import z_score
    from lacbed.ml.physics import upsample_pattern
    from lacbed.simulate import simulate_lacbed
    from lacbed.simulate.plan import beam_pool_size

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", default=Path("data/lacbed-cubic"))
    ap.add_argument("--n", type=int, default=20, help="val materials, evenly spaced by key")
    ap.add_argument("--configs", nargs="+", default=["64x32", "64x64", "64x96", "96x64"])
    ap.add_argument("-o", "--out", type=Path,
                    default=Path("benchmarks/results/engine_coarse_configs.json"))  # fmt: skip
    args = ap.parse_args(argv)
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs]
    rel = open_release(args.data, cache=False)
    val = rel.split_slots("val")
    slots = val[:: max(1, len(val) // args.n)][: args.n]
    ts = [float(t) for t in rel.thicknesses_nm]
    records = {r["key"]: r for r in rel.records}
    table = rel.table.set_index("slot", drop=False)
    rows = []
    for s in slots:
        row = table.loc[int(s)]
        crystal = crystal_from_record(records[row["key"]]["crystal"])
        target = np.asarray(rel.patterns[int(s)], dtype=np.float64)
        simulate_lacbed(crystal, ts, size=16, strong_beams=8, convergence_sample=0.0, n_jobs=1)
        out = {"key": str(row["key"]), "a": float(row["a"]), "n_atoms": int(row["n_atoms"]),
               "released_cpu_s": float(row["cpu_s"]), "configs": {}}  # fmt: skip
        for size, strong in configs:
            t0 = time.process_time()
            kw = {"size": size, "convergence_sample": 0.0, "n_jobs": 1}
            n = min(strong, beam_pool_size(crystal))  # a small cell: its whole pool
            p = simulate_lacbed(crystal, ts, strong_beams=n, **kw).intensities
            cpu = time.process_time() - t0
            up = upsample_pattern(p, target.shape[-1])
            out["configs"][f"{size}x{strong}"] = {
                "cpu_s": cpu,
                "strong_beams": n,
                "z": [float(z_score(up[j], target[j])) for j in range(len(ts))],
            }
        rows.append(out)
        print(out["key"], {c: round(100 * float(np.mean(v["z"])), 1) for c, v in out["configs"].items()},
              flush=True)  # fmt: skip
    summary = {}
    for c in args.configs:
        z = np.array([r["configs"][c]["z"] for r in rows])
        summary[c] = {
            "cpu_s_mean": float(np.mean([r["configs"][c]["cpu_s"] for r in rows])),
            "z_median_per_thickness": [float(v) for v in np.median(z, axis=0)],
            "z_median": float(np.median(z)),
            "z_mean": float(z.mean()),
            "z_p90": float(np.percentile(z, 90)),
            "clamped_to_pool": int(
                sum(r["configs"][c]["strong_beams"] < int(c.split("x")[1]) for r in rows)
            ),  # fmt: skip
        }
    result = {
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "dataset": args.data.name,
        "split": "val",
        "thicknesses_nm": ts,
        "z_units": "1 (multiply by 100 for %)",
        "summary": summary,
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for c, v in summary.items():
        med = " / ".join(f"{100 * x:.1f}" for x in v["z_median_per_thickness"])
        print(f"{c:7s} CPU {v['cpu_s_mean']:.2f} s  median Z {med} %  all {100 * v['z_median']:.1f} % "
              f"mean {100 * v['z_mean']:.1f} %  P90 {100 * v['z_p90']:.1f} %")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
