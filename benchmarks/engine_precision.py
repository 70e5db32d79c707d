"""Single- against double-precision eigensolve of the fast path (issue 8).

For each material, the default engine with ``EIGH_PRECISION = "single"`` (float32 LAPACK matrix
by matrix) and ``"double"`` (batched float64 numpy eigh), without the convergence estimate and
its escalation (the same beam sets): Z = 1 − ZNCC and max |ΔI| between the two at every thickness,
and the CPU time of each (one process, single-threaded BLAS, ``n_jobs=1``; the eigensolve stage
time from ``pattern.timings``). Materials: the ten bundled examples at 32×32 and four OQMD
structures (light and heavy, real and complex algebra) at 64×64.

Usage (repository root)::

    nice -n 5 python benchmarks/engine_precision.py

Writes ``benchmarks/results/engine_precision.json``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "engine_precision.json"
EXAMPLES = ("Al", "CaF2", "Cu", "FeS2", "FeSi", "GaAs", "MgO", "NaCl", "Si", "SrTiO3")
OQMD = (
    "oqmd:13119-17159-Cu3Pd",
    "oqmd:286401-675971-Cs3TbF6",
    "oqmd:283977-646156-LiMgP",
    "oqmd:24089-28942-UC2",
)
THICKNESS_NM = [50.0, 100.0, 150.0, 200.0]


def compare(crystal, size: int) -> dict:
    import lacbed.bloch.solver as bs
    from lacbed.metrics import z_score
    from lacbed.simulate import simulate_lacbed

    runs = {}
    for prec in ("double", "single"):
        bs.EIGH_PRECISION = prec
        t0 = time.process_time()
        p = simulate_lacbed(crystal, THICKNESS_NM, size=size, n_jobs=1, convergence_sample=0.0)
        runs[prec] = (p, time.process_time() - t0)
    bs.EIGH_PRECISION = "single"
    a, b = runs["double"][0].intensities, runs["single"][0].intensities
    return {
        "size": size,
        "real_arithmetic": runs["single"][0].settings["real_arithmetic"],
        "n_strong_mean": runs["single"][0].settings["n_strong_mean"],
        "z": [float(x) for x in z_score(b, a)],
        "max_abs_diff": float(np.abs(a - b).max()),
        "cpu_double_s": runs["double"][1],
        "cpu_single_s": runs["single"][1],
        "eigensolve_double_s": runs["double"][0].timings["eigensolve"],
        "eigensolve_single_s": runs["single"][0].timings["eigensolve"],
    }


def main() -> None:
    from threadpoolctl import threadpool_limits

    from lacbed.crystal import example_path, read_cif
    from lacbed.structures.sources import load_source

    rows = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for name in EXAMPLES:
            rows[name] = compare(read_cif(example_path(name)), 32)
            print(name, json.dumps(rows[name]), flush=True)
        entries = {e.key: e for e in load_source("oqmd").entries}
        for key in OQMD:
            rows[key] = compare(entries[key].crystal, 64)
            print(key, json.dumps(rows[key]), flush=True)
    z = [max(r["z"]) for r in rows.values()]
    eig = sum(r["eigensolve_double_s"] for r in rows.values()) / sum(
        r["eigensolve_single_s"] for r in rows.values()
    )
    result = {
        "machine": f"{platform.platform()}, numpy {np.__version__}",
        "thickness_nm": THICKNESS_NM,
        "rows": rows,
        "summary": {
            "max_z": max(z),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows.values()),
            "eigensolve_speed_up_total": eig,
            "cpu_speed_up_total": sum(r["cpu_double_s"] for r in rows.values())
            / sum(r["cpu_single_s"] for r in rows.values()),
        },
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
