"""Speed and identity of the fast solver's assembly rewrite (2026-12-07).

Usage::

    python benchmarks/engine_assembly_speed.py data/lacbed-cubic [--n 5] [--repeats 2] \
        [-o benchmarks/results/engine_assembly_speed.json]

The fast path's first-order absorption coupling (:func:`lacbed.bloch.solver._propagate`) was
rewritten with fewer (p, n, n) temporaries and, for real Q (centrosymmetric crystals), real
instead of complex products; the single-precision eigensolve calls the LAPACK driver that
``scipy.linalg.eigh(driver="evd")`` calls directly (:func:`lacbed.bloch.solver._eigh_single`).
This script keeps the previous implementations (``_propagate_before`` and ``_eigh_before``
below, verbatim from revision 1693d6f) and solves the same plans with both, alternating
(ABAB...) on one thread, so the machine's load falls on both alike. It reports per material
the CPU time of the pattern solve with each and their ratio, and the largest |ΔI| and Z between
the two patterns (the rewrite is the same arithmetic in another order: rounding only).

Materials: ``--n`` converged release materials of the val split spread over its recorded CPU
(the 30th to 95th percentile, evenly), at the release's settings and each one's recorded budget
factor, without the convergence sample (the pattern's jobs only). The build's CPU is dominated
by its costly materials, so the summary's ``speedup_cpu_weighted`` (total before / total now) is
the number that matters for it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from lacbed.bloch import solver
from lacbed.crystal.serialise import crystal_from_record
from lacbed.dataset.build import BuildSettings
from lacbed.dataset.release import open_release
from lacbed.metrics import z_score
from lacbed.simulate.engine import solve_plan
from lacbed.simulate.plan import plan_lacbed


def _propagate_before(w, q, qm, c0, k_n, thickness):
    """lacbed.bloch.solver._propagate as of revision 1693d6f (reference for this benchmark)."""
    n = w.shape[1]
    tau = (np.pi / k_n)[:, None, None] * thickness[None, None, :]
    beta = np.conj(c0)
    lam = w + 1j * q
    ex = np.exp(1j * tau * lam[:, :, None])
    y = ex * beta[:, :, None]
    if n < 2:
        return y
    dr = w[:, :, None] - w[:, None, :]
    di = q[:, :, None] - q[:, None, :]
    den = dr * dr + di * di
    tmax = tau.max(axis=2)[:, :, None]
    tiny = den * (tmax * tmax) < 1e-8
    inv = np.where(tiny, 0.0, 1.0 / np.where(tiny, 1.0, den))
    if np.iscomplexobj(qm):
        f = np.empty(qm.shape, dtype=np.complex128)
        np.multiply(di, inv, out=f.real)
        np.multiply(dr, inv, out=f.imag)
        r = np.multiply(qm, f, out=f)
    else:
        qi = qm * inv
        r = (qi * di) + 1j * (qi * dr)
    diag = tiny.reshape(len(w), n * n)[:, :: n + 1]
    diag[:] = False
    y += ex * (r @ beta[:, :, None]) - r @ (beta[:, :, None] * ex)
    if tiny.any():
        pi, ji, ki = np.nonzero(tiny)
        add = (
            (1j * qm[pi, ji, ki] * beta[pi, ki])[:, None]
            * 0.5j
            * tau[pi, 0, :]
            * (ex[pi, ji, :] + ex[pi, ki, :])
        )
        np.add.at(y, (pi, ji), add)
    return y


def _eigh_before(h):
    """lacbed.bloch.solver._eigh_single as of revision 1693d6f (scipy.linalg.eigh per matrix)."""
    import scipy.linalg

    x = h.astype(np.complex64 if np.iscomplexobj(h) else np.float32)
    w = np.empty(x.shape[:-1], dtype=np.float32)
    v = np.empty_like(x)
    for i in range(len(x)):
        w[i], v[i] = scipy.linalg.eigh(x[i], driver="evd", check_finite=False)
    return w, v


NOW = (solver._propagate, solver._eigh_single)
BEFORE = (_propagate_before, _eigh_before)


def solve(plan, impl) -> tuple[np.ndarray, float]:
    solver._propagate, solver._eigh_single = impl
    try:
        c0 = time.process_time()
        pat = solve_plan(plan, n_jobs=1, warn=False)
        return np.asarray(pat.intensities), time.process_time() - c0
    finally:
        solver._propagate, solver._eigh_single = NOW


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release", type=Path)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/engine_assembly_speed.json")
    )
    args = ap.parse_args()
    rel = open_release(args.release)
    t = rel.table
    pick = t[(t["status"] == "ok") & (t["split"] == "val")].sort_values("cpu_s")
    at = np.round(np.linspace(0.3, 0.95, args.n) * (len(pick) - 1)).astype(int)
    pick = pick.iloc[np.unique(at)]
    bs = BuildSettings(
        size=rel.size, thicknesses_nm=tuple(rel.thicknesses_nm), **rel.settings["settings"]
    )
    recs = {r["key"]: r for r in rel.records}
    rows = []
    with threadpool_limits(1):
        for key in pick["key"]:
            crystal = crystal_from_record(recs[key]["crystal"])
            budget = float((recs[key].get("engine") or {}).get("budget_factor") or 1.0)
            plan = plan_lacbed(
                crystal, bs.thicknesses_nm, convergence_sample=0, budget_factor=budget,
                **bs.simulate_kwargs(),
            )  # fmt: skip
            cpu = {"before": [], "now": []}
            for _ in range(args.repeats):
                a, ca = solve(plan, BEFORE)
                b, cb = solve(plan, NOW)
                cpu["before"].append(ca)
                cpu["now"].append(cb)
            row = {
                "key": key,
                "formula": recs[key]["formula"],
                "n_atoms": int(crystal.n_sites),
                "n_strong_mean": float(np.mean(plan.n_strong)),
                "cpu_before_s": min(cpu["before"]),
                "cpu_now_s": min(cpu["now"]),
                "speedup": min(cpu["before"]) / min(cpu["now"]),
                "max_abs_dI": float(np.abs(a - b).max()),
                "z_max": float(np.max(z_score(a, b))),
            }
            rows.append(row)
            print(
                f"{row['formula']:>12}: {row['cpu_before_s']:.1f} s -> {row['cpu_now_s']:.1f} s "
                f"({row['speedup']:.2f}x), max |dI| {row['max_abs_dI']:.1e}, Z {row['z_max']:.1e}"
            )
    out = {
        "release": args.release.name,
        "n": args.n,
        "repeats": args.repeats,
        "timing": "process CPU, minimum over repeats, one BLAS thread, alternating before/now",
        "machine": platform.machine(),
        "materials": rows,
        "speedup_mean": float(np.mean([r["speedup"] for r in rows])),
        "speedup_cpu_weighted": sum(r["cpu_before_s"] for r in rows)
        / sum(r["cpu_now_s"] for r in rows),
        "max_abs_dI": max(r["max_abs_dI"] for r in rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(
        f"mean speedup {out['speedup_mean']:.2f}x, CPU-weighted {out['speedup_cpu_weighted']:.2f}x; "
        f"largest |dI| {out['max_abs_dI']:.1e}"
    )


if __name__ == "__main__":
    main()
