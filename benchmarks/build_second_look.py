"""What the engine's second look costs and gains in the dataset build (from the release's records).

Usage::

    python benchmarks/build_second_look.py data/lacbed-cubic \
        [-o benchmarks/results/build_second_look.json]

Every released record keeps the engine's escalation history: one entry per budget step piloted
or solved, with its stage ('escalation' = the first pass, 'rescue' = the second look,
:func:`lacbed.simulate.engine._rescue`) and its CPU time. For the records of each engine
revision that ran a second look this reports: the materials, their CPU (the record's engine CPU,
or the sum of its steps' for a material not solved), the CPU of the second-look steps, the
materials it converged (release status 'ok' with a second-look step as the solved result) and
the CPU per converged material with and without it (without: the second-look steps' CPU
removed and its conversions counted as unconverged, which is what the first pass alone gives,
since the second look never changes a result the first pass converges). Revisions 347f178 and
b42256b ran a withdrawn form of the second look (it looked before the first pass's final
solve); f528c9a is the rule of the engine today.

It also counts, over every record with pilot estimates, the first pass's solves by the pilot
estimate of the step solved (in units of the 0.5 % target) and how many of them converged: a
step whose pilot missed the target (1–2×) is solved only by the escalation's final solve, and
whether that pays decides the build's ``skip_margin``; and what the first pass's 2× step buys
(materials converged by it, with their CPU) and costs (its CPU on materials it did not
converge), which decides the build's ``budget_steps``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from lacbed.dataset.release import open_release

TARGET = 0.005


def material(rec: dict) -> dict | None:
    """CPU, second-look CPU and outcome of one record; None without an escalation history."""
    eng = rec.get("engine") or {}
    hist = eng.get("escalation") or []
    if not hist:
        return None
    steps_cpu = sum(float(h.get("cpu") or 0.0) for h in hist)
    cpu = (eng.get("timings_s") or {}).get("cpu") or steps_cpu
    rescue_cpu = sum(float(h.get("cpu") or 0.0) for h in hist if h.get("stage") == "rescue")
    solved = [h for h in hist if h.get("solved")]
    by_rescue = bool(solved) and solved[-1].get("stage") == "rescue"
    est = solved[-1].get("convergence_estimate") if solved else None
    converted = rec["status"] == "ok" and by_rescue and est is not None and est <= TARGET
    return {
        "formula": rec["formula"],
        "revision": str(eng.get("revision", "")).removesuffix("-dirty"),
        "status": rec["status"],
        "cpu_s": float(cpu),
        "second_look_cpu_s": rescue_cpu,
        "second_look_ran": any(h.get("stage") == "rescue" for h in hist),
        "converted": converted,
    }


def summarise(rows: list[dict]) -> dict:
    cpu = sum(r["cpu_s"] for r in rows)
    extra = sum(r["second_look_cpu_s"] for r in rows)
    ok = sum(r["status"] == "ok" for r in rows)
    conv = sum(r["converted"] for r in rows)
    return {
        "materials": len(rows),
        "second_look_ran": sum(r["second_look_ran"] for r in rows),
        "converged": ok,
        "converted_by_second_look": conv,
        "cpu_s": round(cpu, 1),
        "second_look_cpu_s": round(extra, 1),
        "second_look_cpu_share": round(extra / cpu, 3) if cpu else None,
        "cpu_per_converged_s": round(cpu / ok, 1) if ok else None,
        "cpu_per_converged_without_s": round((cpu - extra) / (ok - conv), 1) if ok > conv else None,
        "second_look_cpu_per_conversion_s": round(extra / conv, 1) if conv else None,
        "costliest_second_looks": sorted(
            (
                {k: r[k] for k in ("formula", "status", "cpu_s", "second_look_cpu_s", "converted")}
                for r in rows
                if r["second_look_cpu_s"] > 0
            ),
            key=lambda r: -r["second_look_cpu_s"],
        )[:8],
    }


def missed_pilot_solves(records: list[dict]) -> list[dict]:
    """First-pass solves whose pilot missed the target (the escalation's final solve of its
    last step, made while the pilot is within 2× the target), by pilot estimate: how many such
    solves converged (their solved estimate ≤ the target) and their CPU."""
    rows = []
    for rec in records:
        for h in (rec.get("engine") or {}).get("escalation") or []:
            pe = h.get("pilot_estimate")
            if h.get("solved") and pe is not None and h.get("stage", "escalation") == "escalation":
                rows.append((pe, h.get("convergence_estimate"), float(h.get("cpu") or 0.0)))
    bins = [(0.0, 1.0), (1.0, 1.2), (1.2, 1.5), (1.5, 2.0)]  # in units of the target
    out = []
    for lo, hi in bins:
        sel = [r for r in rows if lo * TARGET < r[0] <= hi * TARGET]
        conv = sum(r[1] is not None and r[1] <= TARGET for r in sel)
        out.append(
            {
                "pilot_over_target": [lo, hi],
                "solves": len(sel),
                "converged": conv,
                "cpu_s": round(sum(r[2] for r in sel), 1),
                "cpu_per_converged_s": round(sum(r[2] for r in sel) / conv, 1) if conv else None,
            }
        )
    return out


def first_pass_steps(records: list[dict]) -> dict:
    """What the first pass's 2× step would buy and cost under today's first-pass rule.

    Over every record with pilot estimates: the converged materials by the first-pass step whose
    solve converged them (count, their whole CPU), then a replay of the 2× step with skip
    margin 1 (the build's first pass today): the step solves only if its pilot is within the
    target, so a material counts as converted by it only if its 2× pilot ≤ target and the solve
    converged (charged the step's CPU: pilot and solve); a 2× step whose pilot missed the target
    is charged its pilot's CPU only. Records solved under the former margin 2 keep no pilot CPU
    of their own for a solved step, so for a missed pilot that was solved the charge is bounded:
    at least the 1.5× step's pilot CPU (a bigger budget costs more), at most the whole step.
    Records of revisions whose first pass stopped at 1.5× never ran the step and are not in it.
    """
    conv: dict = {}
    total = 0.0
    two = {"reached": 0, "converted": 0, "converted_cpu_s": 0.0, "missed_cpu_s": [0.0, 0.0]}
    for rec in records:
        eng = rec.get("engine") or {}
        hist = [
            h for h in eng.get("escalation") or [] if h.get("stage", "escalation") == "escalation"
        ]
        if not hist or hist[0].get("pilot_estimate") is None:
            continue
        cpu = (eng.get("timings_s") or {}).get("cpu") or sum(
            float(h.get("cpu") or 0.0) for h in eng.get("escalation")
        )
        total += cpu
        solved = [h for h in hist if h.get("solved")]
        if rec["status"] == "ok" and solved:
            key = f"{float(solved[-1]['budget_factor']):g}"
            n, c = conv.get(key, (0, 0.0))
            conv[key] = (n + 1, c + cpu)
        _replay_2x(hist, two)
    lo, hi = two.pop("missed_cpu_s")
    n_conv = two["converted"]
    per = [(two["converted_cpu_s"] + x) / n_conv for x in (lo, hi)] if n_conv else None
    return {
        "cpu_total_s": round(total, 1),
        "converged_by_step": {
            k: {"materials": n, "cpu_s": round(c, 1)} for k, (n, c) in conv.items()
        },
        "step_2x_replayed_with_margin_1": {
            **{k: round(v, 1) if isinstance(v, float) else v for k, v in two.items()},
            "missed_pilot_cpu_s": [round(lo, 1), round(hi, 1)],
            "cpu_per_conversion_s": [round(x, 1) for x in per] if per else None,
        },
    }


def _replay_2x(hist: list[dict], acc: dict) -> None:
    """Add one record's 2× step, replayed with skip margin 1, to the running totals ``acc``."""
    by_f = {float(h["budget_factor"]): h for h in hist}
    step = by_f.get(2.0)
    if step is None:
        return
    acc["reached"] += 1
    cpu = float(step.get("cpu") or 0.0)
    pilot_ok = step.get("pilot_estimate") is not None and step["pilot_estimate"] <= TARGET
    if pilot_ok and step.get("solved"):
        est = step.get("convergence_estimate")
        if est is not None and est <= TARGET:
            acc["converted"] += 1
            acc["converted_cpu_s"] += cpu
        else:  # solved and missed: the whole step is spent
            acc["missed_cpu_s"][0] += cpu
            acc["missed_cpu_s"][1] += cpu
    elif pilot_ok:  # a pilot within the target is always solved: a record of another rule
        raise ValueError(f"2x step with pilot {step['pilot_estimate']} <= target not solved")
    elif not step.get("solved"):
        acc["missed_cpu_s"][0] += cpu
        acc["missed_cpu_s"][1] += cpu
    else:  # a margin-2 final solve: its pilot alone is not recorded
        prev = by_f.get(1.5)
        # the 1.5x pilot's CPU bounds the 2x pilot's from below only if that step was not solved
        low = float(prev.get("cpu") or 0.0) if prev and not prev.get("solved") else 0.0
        acc["missed_cpu_s"][0] += min(cpu, low)
        acc["missed_cpu_s"][1] += cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release", type=Path)
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/build_second_look.json")
    )
    args = ap.parse_args()
    rel = open_release(args.release)
    by_rev: dict[str, list[dict]] = defaultdict(list)
    for rec in rel.records:
        row = material(rec)
        if row is not None:
            by_rev[row["revision"]].append(row)
    # the revisions whose engine had a second look: those where it ran at least once
    by_rev = {k: v for k, v in by_rev.items() if any(r["second_look_ran"] for r in v)}
    out = {
        "release": args.release.name,
        "target": TARGET,
        "note": "CPU of one niced build worker on the shared 2-core machine; f528c9a = today's rule",
        "by_revision": {rev: summarise(rows) for rev, rows in sorted(by_rev.items())},
    }
    out["by_revision"]["all"] = summarise([r for rows in by_rev.values() for r in rows])
    out["first_pass_solves_by_pilot"] = missed_pilot_solves(rel.records)
    out["first_pass_steps"] = first_pass_steps(rel.records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for rev, s in out["by_revision"].items():
        print(
            f"{rev}: {s['materials']} materials, second look ran on {s['second_look_ran']}, "
            f"converted {s['converted_by_second_look']}; its CPU {s['second_look_cpu_s']:.0f} s of "
            f"{s['cpu_s']:.0f} s ({100 * (s['second_look_cpu_share'] or 0):.0f} %); CPU per converged "
            f"material {s['cpu_per_converged_s']} s, without it {s['cpu_per_converged_without_s']} s"
        )

    for b in out["first_pass_solves_by_pilot"]:
        print(
            f"first-pass solves with pilot in {b['pilot_over_target']} x target: {b['solves']}, "
            f"converged {b['converged']}, CPU {b['cpu_s']:.0f} s"
        )

    fp = out["first_pass_steps"]
    two = fp["step_2x_replayed_with_margin_1"]
    print(f"converged by first-pass step: {fp['converged_by_step']}")
    print(
        f"2x step replayed with margin 1: reached by {two['reached']}, converted "
        f"{two['converted']} ({two['converted_cpu_s']:.0f} s), missed pilots "
        f"{two['missed_pilot_cpu_s']} s; CPU per conversion {two['cpu_per_conversion_s']} s"
    )


if __name__ == "__main__":
    main()
