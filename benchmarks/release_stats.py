"""Size, precision and read speed of the release (the numbers in docs/dataset.md).

Usage::

    python benchmarks/release_stats.py data/lacbed-cubic [--work scratch/release-work] \
        [-o benchmarks/results/release_stats.json]

Reports the build cost (CPU per computed material, by how the engine chose its budget: solving
the pattern at every escalation step, or from pilot estimates with the hopeless materials not
solved; statuses), the bytes per material (pattern wedges and records, from HDF5's storage sizes), the
float16 storage error against the working store's float32 patterns when ``--work`` is given
(largest relative pixel error and Z), the projection to 12 000 materials, and the time to open the
release and to read one material (potential rebuilt from its record, pattern expanded from its
wedge). Times are wall-clock on a shared machine: read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import numpy as np

from lacbed.dataset import open_dataset
from lacbed.dataset.release import open_release
from lacbed.metrics import z_score


def storage(rel_path: Path) -> dict:
    """Bytes on disk of the shards, split into pattern wedges and records."""
    pat = rec = n_stored = 0
    files = sorted((rel_path / "shards").glob("shard-*.h5"))
    for shard in files:
        with h5py.File(shard, "r") as f:
            for name in f:
                size = f[name].id.get_storage_size()
                if name.startswith("pattern_"):
                    pat += size
                    n_stored += f[name].shape[0]
                elif name == "records":
                    rec += size
    total = sum(p.stat().st_size for p in files)
    return {
        "shards": len(files),
        "bytes_total": total,
        "bytes_patterns": pat,
        "bytes_records": rec,
        "stored_patterns": n_stored,
    }


def precision(rel, work) -> dict:  # noqa: ANN001
    """float16 storage against the working store's float32 patterns (the released items that
    store holds: a later working store holds only the materials built since)."""
    rel_err, zs = [], []
    held = set(work.table["key"]) if len(work.table) else set()
    for _, row in rel.table.iterrows():
        if row["key"] not in held:
            continue
        _, ref, _ = work.item(row["key"])
        got = rel.patterns[int(row["slot"])]
        big = ref > 1e-3
        rel_err.append(float(np.max(np.abs(got - ref)[big] / ref[big])))
        zs.append(float(np.max(z_score(got, ref))))
    return {"max_relative_error": max(rel_err), "max_z": max(zs), "n": len(zs)}


def build_cost(records: list[dict]) -> dict:
    """CPU per computed material, split by the engine's escalation: 'solve_every_step' (records
    before 2026-12-06), 'pilot' (the step chosen from pilot estimates, skip_unconverged) and
    'pilot_and_second_look' (since 2026-12-07: history entries carry a 'stage') and
    'first_pass_only' (the build's default since later that day: ``engine.second_look`` false;
    skip margin 1 since revision 1693d6f, escalation to 1.5× only since b28f932)."""
    groups: dict[str, list[dict]] = {
        "solve_every_step": [],
        "pilot": [],
        "pilot_and_second_look": [],
        "first_pass_only": [],
    }
    for r in records:
        esc = (r.get("engine") or {}).get("escalation")
        if r.get("status") == "failed" or not esc or r.get("cpu_s") is None:
            continue
        if (r.get("engine") or {}).get("second_look") is False:
            groups["first_pass_only"].append(r)
        elif "stage" in esc[0]:
            groups["pilot_and_second_look"].append(r)
        else:
            groups["pilot" if "pilot_estimate" in esc[0] else "solve_every_step"].append(r)
    out = {}
    for name, rs in groups.items():
        cpu = np.array([float(r["cpu_s"]) for r in rs])
        unconv = [r for r in rs if r["status"] == "unconverged"]
        out[name] = {
            "n": len(rs),
            "n_unconverged": len(unconv),
            "n_escalated": sum(len(r["engine"]["escalation"]) > 1 for r in rs),
            "cpu_mean_s": float(cpu.mean()) if len(rs) else None,
            "cpu_median_s": float(np.median(cpu)) if len(rs) else None,
            "cpu_max_s": float(cpu.max()) if len(rs) else None,
            "cpu_share_unconverged": float(sum(r["cpu_s"] for r in unconv) / cpu.sum())
            if len(rs)
            else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release", type=Path)
    ap.add_argument("--work", type=Path, help="working store the release was packed from")
    ap.add_argument(
        "-o", "--output", type=Path, default=Path("benchmarks/results/release_stats.json")
    )
    args = ap.parse_args()

    t0 = time.perf_counter()
    rel = open_release(args.release)
    t_open = time.perf_counter() - t0
    st = storage(args.release)
    n = max(st["stored_patterns"], 1)
    n_all = max(len(rel.records), 1)
    out = {
        "release": str(args.release),
        "materials": len(rel.records),
        "stored_patterns": st["stored_patterns"],
        **st,
        "bytes_per_pattern": st["bytes_patterns"] / n,
        "bytes_per_record": st["bytes_records"] / n_all,
        "projected_mb_12000": 12000
        * (st["bytes_patterns"] / n + st["bytes_records"] / n_all)
        / 1e6,
        "open_s": t_open,
        "build_cost": build_cost(rel.records),
    }
    slots = rel.table["slot"].to_numpy()[:20]
    t0 = time.perf_counter()
    for s in slots:
        rel.potentials[int(s)]
    out["potential_rebuild_s"] = (time.perf_counter() - t0) / max(len(slots), 1)
    t0 = time.perf_counter()
    for s in slots:
        rel.patterns[int(s)]
    out["pattern_read_s"] = (time.perf_counter() - t0) / max(len(slots), 1)
    if args.work is not None:
        out["float16"] = precision(rel, open_dataset(args.work))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
