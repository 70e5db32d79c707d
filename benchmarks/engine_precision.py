"""The engine's two approximations below round-off, each against its exact form (issue 8).

1. ``eigh``: ``EIGH_PRECISION = "single"`` (float32 LAPACK matrix by matrix) against ``"double"``
   (batched float64 numpy eigh);
2. ``bethe``: the weak-beam corrections interpolated (across each tile from
   ``BETHE_TILE_NODES`` = 5 nodes per axis; a batch whose tile has too few pixels from
   ``BETHE_NODES`` = 3 over the batch) against their exact evaluation at every pixel
   (``BETHE_NODES = 0``), both with the float64 eigensolve and the same beam sets.

For each material, without the convergence estimate and its escalation (the same beam sets):
Z = 1 − ZNCC and max |ΔI| between the two at every thickness, and the CPU time of each (one
process, single-threaded BLAS, ``n_jobs=1``; the stage times from ``pattern.timings``).
Materials: the ten bundled examples at 32×32, four OQMD structures (light and heavy, real and
complex algebra) at 64×64, and two of them (bethe only) at the dataset's 128×128, where a tile
spans 16×16 pixels (four batches).

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
OQMD_128 = ("oqmd:13119-17159-Cu3Pd", "oqmd:286401-675971-Cs3TbF6")
THICKNESS_NM = [50.0, 100.0, 150.0, 200.0]


def compare(crystal, size: int, what: str) -> dict:
    import lacbed.bloch.matrix as bm
    import lacbed.bloch.solver as bs
    from lacbed.metrics import z_score
    from lacbed.simulate import simulate_lacbed

    modes = {
        "eigh": {"exact": ("double", 3), "approx": ("single", 3)},
        "bethe": {"exact": ("double", 0), "approx": ("double", 3)},
    }[what]
    runs = {}
    for name, (prec, nodes) in modes.items():
        bs.EIGH_PRECISION, bm.BETHE_NODES = prec, nodes
        t0 = time.process_time()
        p = simulate_lacbed(crystal, THICKNESS_NM, size=size, n_jobs=1, convergence_sample=0.0)
        runs[name] = (p, time.process_time() - t0)
    bs.EIGH_PRECISION, bm.BETHE_NODES = "single", 3
    a, b = runs["exact"][0].intensities, runs["approx"][0].intensities
    stage = "eigensolve" if what == "eigh" else "matrix_build"
    return {
        "size": size,
        "real_arithmetic": runs["approx"][0].settings["real_arithmetic"],
        "n_strong_mean": runs["approx"][0].settings["n_strong_mean"],
        "n_weak_mean": runs["approx"][0].settings["n_weak_mean"],
        "z": [float(x) for x in z_score(b, a)],
        "max_abs_diff": float(np.abs(a - b).max()),
        "cpu_exact_s": runs["exact"][1],
        "cpu_approx_s": runs["approx"][1],
        "stage": stage,
        "stage_exact_s": runs["exact"][0].timings[stage],
        "stage_approx_s": runs["approx"][0].timings[stage],
    }


def _summary(rows: dict) -> dict:
    return {
        "max_z": max(max(r["z"]) for r in rows.values()),
        "max_abs_diff": max(r["max_abs_diff"] for r in rows.values()),
        "stage_speed_up_total": sum(r["stage_exact_s"] for r in rows.values())
        / sum(r["stage_approx_s"] for r in rows.values()),
        "cpu_speed_up_total": sum(r["cpu_exact_s"] for r in rows.values())
        / sum(r["cpu_approx_s"] for r in rows.values()),
    }


def main() -> None:
    from threadpoolctl import threadpool_limits

    from lacbed.crystal import example_path, read_cif
    from lacbed.structures.sources import load_source

    result = {"machine": f"{platform.platform()}, numpy {np.__version__}"}
    result["thickness_nm"] = THICKNESS_NM
    with threadpool_limits(limits=1, user_api="blas"):
        entries = {e.key: e for e in load_source("oqmd").entries}
        for what in ("eigh", "bethe"):
            rows = {}
            for name in EXAMPLES:
                rows[name] = compare(read_cif(example_path(name)), 32, what)
                print(what, name, json.dumps(rows[name]), flush=True)
            for key in OQMD:
                rows[key] = compare(entries[key].crystal, 64, what)
                print(what, key, json.dumps(rows[key]), flush=True)
            for key in OQMD_128 if what == "bethe" else ():
                rows[f"{key} (128)"] = compare(entries[key].crystal, 128, what)
                print(what, key, json.dumps(rows[f"{key} (128)"]), flush=True)
            result[what] = {"rows": rows, "summary": _summary(rows)}
            print(what, json.dumps(result[what]["summary"]), flush=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
