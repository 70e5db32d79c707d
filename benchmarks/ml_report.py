"""Collect surrogate runs into the tables and figures of docs/ml.md.

Each run directory must have been trained (``lacbed train``) and evaluated (``lacbed evaluate``).

Usage::

    python benchmarks/ml_report.py compare RUN [RUN ...] --fig docs/figures/ml_val_curves.png
    python benchmarks/ml_report.py curve NAME=RUN[,RUN...] [...] --fig docs/figures/ml_learning_curve.png

    python benchmarks/ml_report.py paired DATA RUN [RUN ...] [--thickness 100]

``paired`` scores every run on the same val + test structures and gives the mean difference to
the first run with a bootstrap interval (paired over structures). ``compare`` prints a markdown table (test Z mean/median/P90, overall and at each thickness) and
plots validation Z per epoch. ``curve`` plots test Z against the number of training structures,
one line per NAME (its runs differ only in ``--max-train``).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _test(run: Path) -> dict:
    """Test statistics of a run: its 'test-real' entry (a release), else its 'test' entry."""
    splits = _metrics(run)["splits"]
    for name in ("test-real", "test"):
        if name in splits:
            return splits[name]
    raise SystemExit(
        f"{run}: no test evaluation; run `lacbed evaluate {run} DATA --split test-real`"
    )


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


def _val_curve(run: Path) -> tuple[list[float], list[float]]:
    """Validation Z per epoch from the TensorBoard events (every training segment), else CSV."""
    by_epoch: dict[int, float] = {}
    events = sorted((run / "logs").glob("version_*/events.out.tfevents.*"))
    if events:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        for ev in events:
            acc = EventAccumulator(str(ev))
            acc.Reload()
            if "val_z" not in acc.Tags().get("scalars", []):
                continue
            steps = {e.step: e.value for e in acc.Scalars("epoch")}
            for e in acc.Scalars("val_z"):
                by_epoch[int(steps.get(e.step, len(by_epoch)))] = e.value
    else:
        for f in sorted((run / "logs").glob("version_*/metrics.csv")):
            with open(f) as fh:
                for row in csv.DictReader(fh):
                    if row.get("val_z"):
                        by_epoch[int(float(row["epoch"]))] = float(row["val_z"])
    ep = sorted(by_epoch)
    return [float(e) for e in ep], [by_epoch[e] for e in ep]


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def compare(runs: list[Path], fig: Path | None) -> None:
    print("| run | model | params | train structures | epochs | test Z mean | median | P90 |")
    print("|---|---|---|---|---|---|---|---|")
    curves = {}
    for run in runs:
        c = _config(run)
        t = _test(run)
        ep, z = _val_curve(run)
        curves[run.name] = (ep, z)
        import torch

        blob = torch.load(run / "model.pt", weights_only=True)
        n_par = sum(v.numel() for v in blob["state_dict"].values())
        print(
            f"| {run.name} | {c['model']['name']} | {n_par / 1e6:.2f} M | "
            f"{c['data']['n_train_structures']} | {int(max(ep)) + 1 if ep else 0} | "
            f"{_pct(t['mean'])} | {_pct(t['median'])} | {_pct(t['p90'])} |"
        )
    print()
    print("Per thickness (test Z mean / median / P90, %):")
    print()
    for run in runs:
        per = _test(run)["per_thickness"]
        cells = ", ".join(
            f"{k} nm: {_pct(v['mean'])}/{_pct(v['median'])}/{_pct(v['p90'])}"
            for k, v in per.items()
        )
        print(f"- {run.name}: {cells}")
    if fig is not None:
        from lacbed.plotting.ml import plot_training_curves

        plot_training_curves(curves).savefig(fig, dpi=120)
        print(f"\nwrote {fig}")


def curve(specs: list[str], fig: Path | None) -> None:
    data, spread = {}, {}
    for spec in specs:
        name, _, runs = spec.partition("=")
        rows = []
        for r in runs.split(","):
            run = Path(r)
            t = _test(run)
            rows.append(
                (_config(run)["data"]["n_train_structures"], t["mean"], t["median"], t["p90"])
            )
        rows.sort()
        data[name] = ([r[0] for r in rows], [r[1] for r in rows])
        spread[name] = ([r[2] for r in rows], [r[3] for r in rows])
        print(
            f"{name}: "
            + "; ".join(
                f"n={n}: mean {_pct(a)} median {_pct(b)} P90 {_pct(c)}" for n, a, b, c in rows
            )
        )
    if fig is not None:
        from lacbed.plotting.ml import plot_learning_curve

        plot_learning_curve(data, spread=spread).savefig(fig, dpi=120)
        print(f"wrote {fig}")


def paired(runs: list[Path], data: Path, thickness: float, n_boot: int = 2000) -> None:
    """Per-structure Z of every run on val + test at one thickness; Δ against the first run."""
    import numpy as np

    from lacbed.dataset.store import open_dataset
    from lacbed.ml.data import load_split, resolve_thicknesses
    from lacbed.ml.evaluate import evaluate_split
    from lacbed.ml.predict import load_model

    ds = open_dataset(data)
    t_idx = resolve_thicknesses(ds.thicknesses_nm, [thickness], conditioned=True)
    zs = {}
    for run in runs:
        model, _ = load_model(run)
        z = []
        for split in ("val", "test"):
            arr = load_split(
                ds, split, thickness_index=t_idx, physics=model.config.physics_input or False
            )
            z.append(evaluate_split(model, arr).z[:, 0])
        zs[run.name] = np.concatenate(z)
    from ml_paired_val import bootstrap_mean_diff  # benchmarks/ is the script's directory

    base = runs[0].name
    n = len(zs[base])
    print(
        f"val + test, {n} structures, {thickness:g} nm; Δ = run − {base}, 90 % bootstrap interval"
    )
    print()
    print("| run | Z mean | median | P90 | Δ mean | 90 % interval of Δ mean |")
    print("|---|---|---|---|---|---|")
    for name, z in zs.items():
        d = z - zs[base]
        lo, hi = bootstrap_mean_diff(d[:, None], n_boot=n_boot)
        print(
            f"| {name} | {_pct(z.mean())} | {_pct(np.median(z))} | {_pct(np.percentile(z, 90))} | "
            f"{100 * d.mean():+.1f} | [{100 * lo:+.1f}, {100 * hi:+.1f}] |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("compare")
    a.add_argument("runs", nargs="+", type=Path)
    a.add_argument("--fig", type=Path)
    b = sub.add_parser("curve")
    b.add_argument("specs", nargs="+")
    b.add_argument("--fig", type=Path)
    c = sub.add_parser("paired")
    c.add_argument("data", type=Path)
    c.add_argument("runs", nargs="+", type=Path)
    c.add_argument("--thickness", type=float, default=100.0)
    args = ap.parse_args()
    if args.cmd == "compare":
        compare(args.runs, args.fig)
    elif args.cmd == "paired":
        paired(args.runs, args.data, args.thickness)
    else:
        curve(args.specs, args.fig)


if __name__ == "__main__":
    main()
