"""Accuracy against cost of a fixed small beam budget on real released materials (issues 8, 10).

The surrogate must beat cheap physics (issue 10): a Bloch-wave run with a few strong beams costs
tenths of a second, and on the simple crystals of the bundled examples 16 beams are within a few
per cent of Felix. This script measures that baseline where it matters, on real materials of
the release ``data/lacbed-cubic`` against their converged patterns: for each material of the
``val`` and ``test`` splits, the engine with a fixed budget ``strong_beams`` = 16, 32, 64, 128 (the
strongest beams of each tile, a minimum; the
rest of the dataset's settings unchanged: 200 kV, W = 4/a, Kirkland, Bird–King, 128×128, the
release's four thicknesses) is compared with the released pattern (float16 wedge, expanded):
Z = 1 − ZNCC per thickness, the CPU time of the call (one process, ``n_jobs=1``) and the
engine's own convergence estimate at that budget (against twice the beams), next to the
released material's recorded CPU time.

Usage (repository root)::

    nice -n 5 python benchmarks/engine_budget_curve.py [--budgets 16 32 64 128] [--splits val test]
    nice -n 5 python benchmarks/engine_budget_curve.py --budgets 8 24 --add   # more budgets
    nice -n 19 python benchmarks/engine_budget_curve.py --extend --splits test val \
        -o benchmarks/results/engine_budget_curve_extended.json         # more materials

Writes ``benchmarks/results/engine_budget_curve.json`` (every material and a summary per budget
and thickness: mean, median, P90 of Z, mean CPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from lacbed.crystal.serialise import crystal_from_record
from lacbed.dataset.store import open_dataset
from lacbed.metrics import z_score
from lacbed.simulate import simulate_lacbed

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "data" / "lacbed-cubic"
OUT = Path(__file__).parent / "results" / "engine_budget_curve.json"


def measure(rel, slot: int, budgets: list[int]) -> dict:
    """Z of each fixed budget against the released pattern of one material, per thickness."""
    row = rel.table.loc[rel.table["slot"] == slot].iloc[0]
    rec = next(r for r in rel.records if r["key"] == row["key"])
    crystal = crystal_from_record(rec["crystal"])
    target = rel.patterns[slot]  # (t, size, size)
    ts = [float(t) for t in rel.thicknesses_nm]
    out = {
        "key": row["key"],
        "split": row["split"],
        "a": float(row["a"]),
        "n_atoms": int(row["n_atoms"]),
        "released_cpu_s": float(row["cpu_s"]),
        "released_n_strong_max": int(row["n_strong_max"]),
        "budgets": {},
    }
    for nb in budgets:
        t0 = time.process_time()
        pat = simulate_lacbed(crystal, ts, size=target.shape[-1], strong_beams=nb, n_jobs=1)
        cpu = time.process_time() - t0
        z = [float(z_score(pat.intensities[i], target[i])) for i in range(len(ts))]
        out["budgets"][str(nb)] = {
            "z": z,
            "cpu_s": cpu,
            "convergence_estimate": pat.settings.get("convergence_estimate"),
        }
    return out


def summarise(rows: list[dict], budgets: list[int], ts: list[float]) -> dict:
    summary = {}
    for nb in budgets:
        z = np.array([r["budgets"][str(nb)]["z"] for r in rows])  # (materials, t)
        est = np.array([r["budgets"][str(nb)]["convergence_estimate"] or np.nan for r in rows])
        summary[str(nb)] = {
            "cpu_s_mean": float(np.mean([r["budgets"][str(nb)]["cpu_s"] for r in rows])),
            "z_mean": dict(zip(map(str, ts), z.mean(axis=0).tolist(), strict=True)),
            "z_median": dict(zip(map(str, ts), np.median(z, axis=0).tolist(), strict=True)),
            "z_p90": dict(zip(map(str, ts), np.percentile(z, 90, axis=0).tolist(), strict=True)),
            "fraction_within_5pct_all_t": float(np.mean(np.all(z <= 0.05, axis=1))),
            "estimate_over_worst_z_median": float(np.nanmedian(est / z.max(axis=1))),
        }
    summary["released_cpu_s_mean"] = float(np.mean([r["released_cpu_s"] for r in rows]))
    return summary


def extend(rel, slots: list[int], out: Path) -> None:  # noqa: ANN001 (Dataset)
    """Add the materials of ``slots`` missing from ``out`` (started from the default results
    file), one at a time, rewriting ``out`` (atomically) after each: a long background run that
    loses nothing when stopped, and leaves the committed default file as its docs quote it."""
    from lacbed._io import atomic_path

    result = json.loads((out if out.is_file() else OUT).read_text())
    budgets = [int(b) for b in result["budgets"]]
    done = {r["key"] for r in result["rows"]}
    key_of = dict(zip(rel.table["slot"], rel.table["key"], strict=True))
    todo = [s for s in slots if key_of[s] not in done]
    for i, slot in enumerate(todo):
        result["rows"].append(measure(rel, slot, budgets))
        result["summary"] = summarise(result["rows"], budgets, result["thicknesses_nm"])
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
        print(f"{i + 1}/{len(todo)} {result['rows'][-1]['key']}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--splits", nargs="+", default=["val", "test"])
    ap.add_argument(
        "--add",
        action="store_true",
        help="Add these budgets to the materials of the existing results file (same splits).",
    )
    ap.add_argument(
        "--extend",
        action="store_true",
        help="Measure the materials of the splits that the results file lacks, with its "
        "budgets, saving after each one to --out (interrupt and rerun to go on).",
    )
    ap.add_argument(
        "-o", "--out", type=Path, default=OUT,
        help="With --extend: the file to grow (started from the default results file).",
    )  # fmt: skip
    args = ap.parse_args(argv)
    rel = open_dataset(RELEASE)
    slots = [int(s) for name in args.splits for s in rel.split_slots(name)]
    if args.extend:
        extend(rel, slots, args.out)
        return
    old = json.loads(OUT.read_text()) if args.add else None
    if old is not None:  # the same materials as the existing results (the release grows)
        if old["splits"] != args.splits:
            raise SystemExit(f"--add: {OUT} holds splits {old['splits']}, not {args.splits}")
        keys = {r["key"] for r in old["rows"]}
        key_of = dict(zip(rel.table["slot"], rel.table["key"], strict=True))
        slots = [s for s in slots if key_of[s] in keys]
    rows = []
    for i, slot in enumerate(slots):
        rows.append(measure(rel, slot, args.budgets))
        if old is not None:
            (prev,) = [r for r in old["rows"] if r["key"] == rows[-1]["key"]]
            rows[-1]["budgets"] = {**prev["budgets"], **rows[-1]["budgets"]}
        worst = {nb: max(v["z"]) for nb, v in rows[-1]["budgets"].items()}
        print(f"{i + 1}/{len(slots)} {rows[-1]['key']} worst Z {worst}", flush=True)
    ts = [float(t) for t in rel.thicknesses_nm]
    if old is not None:
        args.budgets = sorted({*old["budgets"], *args.budgets})
    result = {
        "machine": f"{platform.platform()}, numpy {np.__version__}; a shared 2-core machine "
        "(a niced dataset build on one core): CPU times are the measure",
        "release": str(RELEASE.relative_to(ROOT)),
        "release_version": rel.settings.get("release"),
        "splits": args.splits,
        "budgets": args.budgets,
        "thicknesses_nm": ts,
        "summary": summarise(rows, args.budgets, ts),
        "rows": rows,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
