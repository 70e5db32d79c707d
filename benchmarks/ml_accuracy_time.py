"""Accuracy against time per pattern: surrogates against the engine at fixed budgets (issue 10 §4).

Puts on one plot, for the materials of one split of the release ``data/lacbed-cubic``:

- the engine at fixed ``strong_beams`` budgets (``benchmarks/results/engine_budget_curve.json``,
  which holds per material and budget the Z against the released converged pattern at every
  thickness and the CPU time of the call); time per pattern = the call's CPU time divided by the
  number of thicknesses it returned (one eigensolve serves them all);
- the converged default engine (the release itself): time = the recorded CPU time per material
  over the thicknesses, Z = its own convergence estimate (it is the reference of the others);
- each surrogate given as ``--model LABEL=RUN[+RUN...],TIMING`` (or kept from the previous
  results file with ``--reuse LABEL`` when its run is gone and the materials are the same): one run, a seed ensemble
  (its mean prediction; ``RUN0+RUN1+RUN2``) or ``shipped`` (the packaged ensemble), scored here
  on the same materials as the engine rows (and on the whole split, ``whole_split``); time per
  pattern = 1 / the batched throughput from a potential image in ``TIMING``, a JSON file
  (``benchmarks/ml_inference.py`` output, key ``batched_patterns_per_s``) or
  ``FILE.json#dotted.key`` (e.g. ``ml_shipped_speed.json#threads.2.ensemble_potential_4t.patterns_per_s``).

Each method is drawn at its time per pattern with its median Z over the split at every
thickness it serves (a vertical strip: one marker per thickness) and the median over all of
them. The split must be the same for every source: ``val`` while models are chosen,
``test-real`` for the headline figure once they are (the engine rows are filtered to it).

Usage (repository root)::

    python benchmarks/ml_accuracy_time.py --split val \\
        --model "shipped=shipped,benchmarks/results/ml_shipped_speed.json#threads.2.ensemble_potential_4t.patterns_per_s" \\
        --model "vae=runs/rel2/vae,benchmarks/ml_inference_vae_t1.json" \\
        -o docs/figures/ml_accuracy_time_val.png

Writes the figure and ``benchmarks/results/ml_accuracy_time_<split>.json`` (every plotted number).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lacbed.dataset.release import open_release
from lacbed.ml.physics import COARSE_STRONG

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "data" / "lacbed-cubic"
RESULTS = Path(__file__).parent / "results"


def split_keys(rel, split: str) -> set[str]:  # noqa: ANN001 (Release)
    """Keys of the release's materials in ``split`` ('train', 'val', 'test', 'test-real')."""
    t = rel.table
    if split == "test-real":
        return set(t.loc[t["test_real"].astype(bool), "key"])
    return set(t.loc[t["split"] == split, "key"])


def engine_points(curve: dict, keys: set[str]) -> list[dict]:
    """Median Z per thickness and time per pattern of each fixed budget, on ``keys`` only."""
    rows = [r for r in curve["rows"] if r["key"] in keys]
    ts = curve["thicknesses_nm"]
    out = []
    for nb in curve["budgets"]:
        z = np.array([r["budgets"][str(nb)]["z"] for r in rows])  # (materials, t)
        cpu = np.array([r["budgets"][str(nb)]["cpu_s"] for r in rows]) / len(ts)
        out.append(
            {
                "label": f"engine {nb}",
                "kind": "engine",
                "n": len(rows),
                "seconds_per_pattern": float(np.mean(cpu)),
                "median_z": dict(zip(map(str, ts), np.median(z, axis=0).tolist(), strict=True)),
                "median_z_all": float(np.median(z)),
            }
        )
    return out


def converged_point(rel, keys: set[str]) -> dict:  # noqa: ANN001
    """The release's own engine (the reference): its CPU time and its convergence estimate."""
    recs = [r for r in rel.records if r["key"] in keys and r["status"] == "ok"]
    n_t = len(rel.thicknesses_nm)
    est = [r["engine"]["convergence_estimate"] for r in recs]
    return {
        "label": "engine converged (ref.)",  # Z: its own convergence estimate
        "kind": "reference",
        "n": len(recs),
        "seconds_per_pattern": float(np.mean([r["cpu_s"] for r in recs]) / n_t),
        "median_z": {},
        "median_z_all": float(np.median(est)),
    }


def coarse_point(coarse: dict, keys: set[str]) -> tuple[dict, float]:
    """The coarse engine run (``benchmarks/ml_coarse_physics.py``) on ``keys``: its point, and
    its CPU time per pattern [s] (the physics cost of a model that reads it)."""
    rows = [r for r in coarse["rows"] if r["key"] in keys]
    if not rows:
        raise SystemExit("the coarse-physics results hold none of the plotted materials")
    timed = [r["cpu_s"] for r in rows if r.get("cpu_s") is not None]
    z = np.array([r["z"] for r in rows])
    per_pattern = float(np.mean(timed)) / len(coarse["thicknesses_nm"])
    point = {
        "label": f"engine coarse ({coarse['strong_beams']} beams, half the pixels)",
        "kind": "engine",
        "n": len(rows),
        "seconds_per_pattern": per_pattern,
        "median_z": {
            f"{t:g}": float(np.median(z[:, j])) for j, t in enumerate(coarse["thicknesses_nm"])
        },
        "median_z_all": float(np.median(z)),
    }
    return point, per_pattern


def reused_points(path: Path, labels: list[str], keys: set[str]) -> list[dict]:
    """The points ``labels`` of an earlier results file, marked ``reused``; refused unless that
    file scored exactly the materials ``keys``."""
    if not labels:
        return []
    old = json.loads(path.read_text()) if path.exists() else {"points": [], "materials": []}
    if set(old["materials"]) != keys:
        raise SystemExit(f"{path} was scored on other materials: --reuse needs the same ones")
    found = {p["label"]: p for p in old["points"]}
    missing = [label for label in labels if label not in found]
    if missing:
        raise SystemExit(f"{path} has no point {missing[0]!r} (it has {sorted(found)})")
    return [dict(found[label], reused=True) for label in labels]


def load_members(spec: str) -> list:
    """Surrogates of ``RUN[+RUN...]`` (run directories or model files), or ``shipped``."""
    from lacbed.ml.model import load_surrogate
    from lacbed.ml.predict import load_default

    if spec == "shipped":
        return [m for m, _ in load_default().load_models()]
    return [load_surrogate(Path(r))[0] for r in spec.split("+")]


def patterns_per_s(timing: str) -> float:
    """``FILE.json`` (key ``batched_patterns_per_s``) or ``FILE.json#dotted.key``."""
    path, _, key = timing.partition("#")
    value = json.loads(Path(path).read_text())
    for part in (key or "batched_patterns_per_s").split("."):
        value = value[part]
    return float(value)


def model_point(
    label: str, spec: str, timing: str, split: str, keys: set[str], physics_s: float | None = None
) -> dict:
    """A surrogate's (or seed ensemble's mean) Z on the materials ``keys`` of ``split``, scored
    here (:func:`lacbed.ml.evaluate.evaluate`), and its time per pattern (batched), plus the
    coarse engine run's time per pattern ``physics_s`` for a model that reads one."""
    from lacbed.ml.evaluate import evaluate, z_stats

    members = load_members(spec)
    extra = 0.0
    if any(m.config.physics_input == "coarse" for m in members):
        if physics_s is None:
            raise SystemExit(
                f"{label} reads the coarse engine run: give a --coarse file of {COARSE_STRONG} "
                "beams to time it"
            )
        extra = physics_s
    ev = evaluate(members, RELEASE, splits=(split,))[split]
    rows = [i for i, k in enumerate(ev.arrays.keys) if k in keys]
    if not rows:
        raise SystemExit(f"{label}: none of the engine's materials is in the '{split}' split")
    z = ev.z[rows]
    return {
        "label": label,
        "kind": "surrogate",
        "model": spec,
        "n": len(rows),
        "seconds_per_pattern": 1.0 / patterns_per_s(timing) + extra,
        "timing": timing,
        "physics_seconds_per_pattern": extra,
        "median_z": {
            f"{t:g}": float(np.median(z[:, j])) for j, t in enumerate(ev.arrays.thickness_nm)
        },
        "median_z_all": float(np.median(z)),
        "whole_split": z_stats(ev.z),  # every material of the split, not only the engine's
    }


def plot(points: list[dict], split: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    colours = {"engine": "tab:blue", "reference": "black", "surrogate": "tab:red"}
    placed: list[tuple[float, float]] = []  # label anchors (log10 x, log10 y) already used
    for p in points:
        x = p["seconds_per_pattern"]
        ys = [100 * v for v in p["median_z"].values()]
        if ys:
            ax.plot([x] * len(ys), ys, "_", color=colours[p["kind"]], ms=10)
            ax.vlines(x, min(ys), max(ys), color=colours[p["kind"]], lw=1)
        ax.plot(x, 100 * p["median_z_all"], "o", color=colours[p["kind"]])
        anchor = (np.log10(x), np.log10(100 * p["median_z_all"]))
        near = sum(abs(anchor[0] - u) < 0.6 and abs(anchor[1] - v) < 0.2 for u, v in placed)
        placed.append(anchor)
        ax.annotate(f"{p['label']} (n={p['n']})", (x, 100 * p["median_z_all"]), fontsize=7,
                    xytext=(4, 3 - 11 * near), textcoords="offset points")  # fmt: skip
    xs = [p["seconds_per_pattern"] for p in points]
    ax.set_xlim(min(xs) / 2, max(xs) * 20)
    ax.axhline(5.0, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(
        "CPU time per pattern [s] (engine N: N strong beams, one core; surrogate: batched)"
    )
    ax.set_ylabel("median Z = 1 − ZNCC [%] (dash: each thickness; dot: all)")
    ax.set_title(f"Accuracy against time on the release's '{split}' materials")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="val", choices=["val", "test-real"])
    ap.add_argument("--engine", default=str(RESULTS / "engine_budget_curve.json"))
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        help="LABEL=RUN[+RUN...],TIMING_JSON[#key.path] (RUN 'shipped': the packaged ensemble)",
    )
    ap.add_argument(
        "--coarse",
        action="append",
        default=[],
        help="benchmarks/ml_coarse_physics.py output (repeatable): adds each coarse engine run; "
        "the one with today's COARSE_STRONG beams times the models that read it",
    )
    ap.add_argument(
        "--reuse",
        action="append",
        default=[],
        help="LABEL: keep that point from the existing results file (a model whose run is no "
        "longer at hand), only if it was scored on exactly the same materials",
    )
    ap.add_argument("-o", "--out", required=True, help="figure (.png)")
    args = ap.parse_args()
    rel = open_release(RELEASE, cache=False)
    keys = split_keys(rel, args.split)
    curve = json.loads(Path(args.engine).read_text())
    measured = {r["key"] for r in curve["rows"]}
    if not keys & measured:
        raise SystemExit(f"{args.engine} has no material of the '{args.split}' split")
    keys &= measured  # the materials both the engine and the release cover
    points = [*engine_points(curve, keys), converged_point(rel, keys)]
    physics_s = None
    for path in args.coarse:
        coarse = json.loads(Path(path).read_text())
        point, seconds = coarse_point(coarse, keys)
        points.append(point)
        if coarse["strong_beams"] == COARSE_STRONG:
            physics_s = seconds
    for spec in args.model:
        label, _, paths = spec.partition("=")
        run, _, timing = paths.partition(",")
        points.append(model_point(label, run, timing, args.split, keys, physics_s))
    out = RESULTS / f"ml_accuracy_time_{args.split}.json"
    points += reused_points(out, args.reuse, keys)
    plot(points, args.split, Path(args.out))
    result = {"split": args.split, "materials": sorted(keys), "points": points}
    from lacbed._io import atomic_path

    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    for p in points:
        print(
            f"{p['label']:55s} {p['seconds_per_pattern']:9.4f} s  {100 * p['median_z_all']:6.2f} %"
        )


if __name__ == "__main__":
    main()
