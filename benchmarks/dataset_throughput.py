"""Dataset-build throughput: materials per hour on 1 and 2 local Dask workers.

Builds the same fixed sample of materials (the first N of the hash-ordered work list of a source)
into fresh temporary datasets with 1 and then 2 worker processes at the given engine settings
(default: the engine's defaults, 128×128, 100 nm), and reports

* materials/hour for each worker count and the 1 → 2 scaling efficiency,
* the per-material compute time (mean, median, max) measured on the workers,
* the projected wall time for 12 000 materials on 2, 16 and 64 cores, assuming one worker per
  core and the measured 2-worker efficiency.

Since 2026-12-07 the build's default task (``compute_item``) runs the engine's first pass only
(no second look, skip margin 1; docs/dataset.md): results committed before that date measured
the engine with its second look.

Run with ``nice`` on a shared machine::

    nice -n 10 python benchmarks/dataset_throughput.py --source augmented -n 24 \
        --json benchmarks/results/dataset_throughput.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def run(source: str, n: int, workers_list: list[int], settings_kw: dict) -> dict:
    from lacbed.dataset import open_dataset
    from lacbed.dataset.build import BuildSettings, build_dataset, select_work
    from lacbed.structures import load_sources

    t0 = time.perf_counter()
    entries = load_sources([source]).entries
    t_load = time.perf_counter() - t0
    sample = select_work(entries, n)
    settings = BuildSettings(**settings_kw)
    out: dict = {
        "source": source,
        "n_materials": len(sample),
        "load_s": t_load,
        "settings": {"size": settings.size, "thicknesses_nm": list(settings.thicknesses_nm)}
        | settings.engine_settings(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "n_atoms": [int(e.n_atoms) for e in sample],
        "runs": {},
    }
    for w in workers_list:
        with tempfile.TemporaryDirectory(prefix="lacbed-bench-") as tmp:
            t = time.perf_counter()
            rep = build_dataset(Path(tmp) / "ds", sample, settings, workers=w)
            wall = time.perf_counter() - t
            ds = open_dataset(Path(tmp) / "ds")
            times = np.asarray(
                list(ds.table["time_s"].dropna()) + list(ds.failures["time_s"].dropna()), float
            )
            cpu = np.asarray(
                list(ds.table["cpu_s"].dropna()) + list(ds.failures["cpu_s"].dropna()), float
            )
            out["runs"][str(w)] = {
                "workers": w,
                "wall_s": wall,
                "compute_wall_s": rep.elapsed_s,
                "ok": rep.n_ok,
                "failed": rep.n_failed,
                "materials_per_hour": 3600.0 * len(sample) / rep.elapsed_s,
                "item_time_s": {
                    "mean": float(times.mean()),
                    "median": float(np.median(times)),
                    "max": float(times.max()),
                },
                "item_cpu_s": {
                    "mean": float(cpu.mean()),
                    "median": float(np.median(cpu)),
                    "max": float(cpu.max()),
                },
                "failures": rep.failures,
            }
        r = out["runs"][str(w)]
        print(
            f"{w} worker(s): {r['materials_per_hour']:.0f} materials/h "
            f"({len(sample)} in {rep.elapsed_s:.1f} s; item mean {r['item_time_s']['mean']:.2f} s, "
            f"max {r['item_time_s']['max']:.1f} s; CPU mean {r['item_cpu_s']['mean']:.2f} s; "
            f"{rep.n_failed} failed)",
            flush=True,
        )
    if "1" in out["runs"] and "2" in out["runs"]:
        r1, r2 = out["runs"]["1"], out["runs"]["2"]
        eff = r2["materials_per_hour"] / (2 * r1["materials_per_hour"])
        out["scaling_1_to_2"] = {"speedup": 2 * eff, "efficiency": eff}
        per_core_h = r1["materials_per_hour"]
        out["projected_hours_12000"] = {
            str(c): 12000 / (per_core_h * c * (eff if c > 1 else 1.0)) for c in (1, 2, 16, 64)
        }
        cpu_mean = r1["item_cpu_s"]["mean"]
        out["dedicated_core_materials_per_hour"] = 3600.0 / cpu_mean
        out["projected_hours_12000_dedicated"] = {
            str(c): 12000 * cpu_mean / 3600.0 / c for c in (1, 2, 16, 64)
        }
        print(f"1 -> 2 workers: speed-up {2 * eff:.2f} (efficiency {eff:.0%})")
        print(
            f"CPU time per material {cpu_mean:.2f} s -> {3600 / cpu_mean:.0f}/h per dedicated core"
        )
        for c, h in out["projected_hours_12000"].items():
            print(f"12 000 materials on {c:>2} cores: {h:.1f} h")
    return out


def instant_compute(crystal, settings) -> dict:  # noqa: ANN001
    """Stand-in engine that returns random arrays at once: measures the pipeline alone."""
    rng = np.random.default_rng(abs(hash(crystal.formula)) % 2**32)
    s, t = settings.size, len(settings.thicknesses_nm)
    return {
        "status": "ok",
        "potential": rng.random((s, s), dtype=np.float32),
        "patterns": rng.random((t, s, s), dtype=np.float32),
        "time_s": 0.0,
        "cpu_s": 0.0,
    }


def pipeline(source: str, n: int, workers: int, settings_kw: dict) -> dict:
    """Items per second the client can schedule, receive and write (engine cost zero)."""
    from lacbed.dataset.build import BuildSettings, build_dataset, select_work
    from lacbed.structures import load_sources

    sample = select_work(load_sources([source]).entries, n)
    settings = BuildSettings(**settings_kw)
    with tempfile.TemporaryDirectory(prefix="lacbed-bench-") as tmp:
        rep = build_dataset(
            Path(tmp) / "ds", sample, settings, workers=workers, compute=instant_compute
        )
    rate = len(sample) / rep.elapsed_s
    print(
        f"pipeline alone: {rate:.0f} materials/s ({len(sample)} in {rep.elapsed_s:.1f} s, "
        f"{workers} workers, {settings.size} px, {len(settings.thicknesses_nm)} thickness(es))"
    )
    return {
        "n": len(sample),
        "workers": workers,
        "elapsed_s": rep.elapsed_s,
        "materials_per_s": rate,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="augmented")
    p.add_argument("-n", type=int, default=24, help="materials in the sample")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--thickness", type=float, nargs="+", default=[100.0])
    p.add_argument("--strong-beams", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument(
        "--pipeline", action="store_true", help="time the pipeline with a zero-cost engine"
    )
    a = p.parse_args()
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.basicConfig(level=logging.WARNING)
    kw = {"size": a.size, "thicknesses_nm": tuple(a.thickness), "strong_beams": a.strong_beams}
    if a.pipeline:
        res = pipeline(a.source, a.n, max(a.workers), kw)
    else:
        res = run(a.source, a.n, a.workers, kw)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
