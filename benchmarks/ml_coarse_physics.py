"""The coarse physics input of the multi-fidelity mode: its cost and its distance to the truth.

For each material of the given splits of a release, computes the ``coarse`` physics channel
(:func:`lacbed.ml.physics.physics_maps`, kind 'coarse': the engine with
:data:`~lacbed.ml.physics.COARSE_STRONG` strong beams at half the pattern's pixels, no
convergence estimate, upsampled bilinearly to the pattern's size; all of the release's
thicknesses in one solve) and records its CPU time and Z = 1 − ZNCC against the released
converged pattern at every thickness. The maps go to the same cache that ``lacbed train
--physics-channel --physics-kind coarse`` reads, so running this first over ``train`` and
``val`` precomputes a training run's inputs (and ``Ctrl-C`` loses nothing: a rerun skips the
materials already in the output and reads the cached maps).

Usage (repository root; nice it beside a build)::

    nice -n 5 python benchmarks/ml_coarse_physics.py data/lacbed-cubic --splits val train \\
        [--max-train 600 --seed 0] -o benchmarks/results/ml_coarse_physics.json

Writes per material (key, split, a, n_atoms, cpu_s, z per thickness, released_cpu_s) and a
summary per split and thickness (mean, median, P90 of Z; mean and median CPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def summarise(rows: list[dict], ts: list[float]) -> dict:
    """Z statistics per split and thickness [1] and CPU per material [s]."""
    from lacbed.ml.evaluate import z_stats

    out = {}
    for split in sorted({r["split"] for r in rows}):
        sel = [r for r in rows if r["split"] == split]
        timed = [r for r in sel if r.get("cpu_s") is not None]
        z = np.array([r["z"] for r in sel])
        cpu = np.array([r["cpu_s"] for r in timed]) if timed else np.array([np.nan])
        out[split] = {
            "n": len(sel),
            "n_timed": len(timed),
            "cpu_s_mean": float(cpu.mean()),
            "cpu_s_median": float(np.median(cpu)),
            "released_cpu_s_mean_timed": float(
                np.mean([r["released_cpu_s"] for r in timed]) if timed else np.nan
            ),
            "z": {f"{t:g}": z_stats(z[:, j]) for j, t in enumerate(ts)},
        }
    return out


def main(argv=None) -> dict:
    from lacbed.crystal.serialise import crystal_from_record
    from lacbed.dataset.release import open_release
    from lacbed.metrics import z_score
    from lacbed.ml.data import subset
    from lacbed.ml.physics import COARSE_STRONG, map_settings, physics_maps
    from lacbed.structures.sources import cache_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", default=Path("data/lacbed-cubic"))
    ap.add_argument("--splits", nargs="+", default=["val"])
    ap.add_argument("--limit", type=int, default=None, help="at most this many per split")
    ap.add_argument(
        "--max-train",
        type=int,
        default=None,
        help="of the train split only the materials `lacbed train --max-train N --seed SEED` uses",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/ml_coarse_physics.json")
    )
    args = ap.parse_args(argv)
    rel = open_release(args.data, cache=False)
    ts = [float(t) for t in rel.thicknesses_nm]
    settings = map_settings(rel.settings.get("settings", {}))
    cache = cache_dir() / "physics-maps"
    records = {r["key"]: r for r in rel.records}
    table = rel.table.set_index("slot", drop=False)
    old = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    if old["rows"] and (old.get("strong_beams"), old.get("dataset")) != (
        COARSE_STRONG,
        args.data.name,
    ):
        raise SystemExit(
            f"{args.out} holds coarse runs of {old.get('strong_beams')} beams on "
            f"{old.get('dataset')}; give another -o for {COARSE_STRONG} beams on {args.data.name}"
        )
    rows = {r["key"]: r for r in old["rows"]}
    todo = []
    for split in args.splits:
        slots = rel.split_slots(split)
        if split == "train":
            slots = subset(slots, args.max_train, args.seed)
        slots = slots[: args.limit]
        todo += [(split, int(s)) for s in slots if table.loc[int(s), "key"] not in rows]
    for i, (split, slot) in enumerate(todo):
        row = table.loc[slot]
        crystal = crystal_from_record(records[row["key"]]["crystal"])
        t0 = time.process_time()
        (m,) = physics_maps([crystal], ts, size=rel.size, cache=cache, kind="coarse", **settings)
        cpu = time.process_time() - t0
        target = np.asarray(rel.patterns[slot], dtype=np.float64)
        rows[row["key"]] = {
            "key": str(row["key"]),
            "split": split,
            "a": float(row["a"]),
            "n_atoms": int(row["n_atoms"]),
            "cpu_s": cpu if cpu > 0.05 else None,  # None: read from the cache, not timed
            "released_cpu_s": float(row["cpu_s"]),
            "z": [float(z_score(m[j], target[j])) for j in range(len(ts))],
        }
        if (i + 1) % 20 == 0 or i + 1 == len(todo):
            _write(args.out, rows, ts, COARSE_STRONG, args.data.name)
            print(f"{i + 1}/{len(todo)} materials", flush=True)
    out = _write(args.out, rows, ts, COARSE_STRONG, args.data.name)
    for split, s in out["summary"].items():
        med = " / ".join(f"{100 * v['median']:.1f}" for v in s["z"].values())
        print(f"{split}: n = {s['n']}, median Z {med} % at {ts} nm, CPU {s['cpu_s_mean']:.2f} s")
    return out


def _write(path: Path, rows: dict, ts: list[float], strong: int, dataset: str) -> dict:
    out = {
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "dataset": dataset,
        "strong_beams": strong,
        "solve_size_factor": 0.5,
        "thicknesses_nm": ts,
        "z_units": "1 (multiply by 100 for %)",
        "summary": summarise(list(rows.values()), ts),
        "rows": list(rows.values()),
    }
    from lacbed._io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
