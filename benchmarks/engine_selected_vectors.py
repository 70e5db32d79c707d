"""Eigenvectors only for the Bloch waves that carry the 000 amplitude: is it cheaper? (issue 8)

The engine's eigensolve is LAPACK ``ssyevd``/``cheevd`` (float32, matrix by matrix): a
Householder tridiagonalisation, the divide-and-conquer eigen-decomposition of the tridiagonal
matrix T and the back-transformation of all n eigenvectors. With the lower reduction the first
basis vector is untouched (Q e₀ = e₀), so C₀ⱼ is the first component of T's eigenvector j and the
Bloch waves that carry the 000 beam can be chosen from T alone; only those m need the
back-transformation (2n²m flops instead of 2n³). This script times that alternative on the
matrices the engine builds for four panel materials (64×64 plans, about 60 matrices each, taken
across the tiles), real-symmetric case:

    ssytrd (reduction) + sstevd (T, all vectors) + sormqr (back-transform of the m chosen)

against ``scipy.linalg.eigh(driver='evd')``, one thread, and reports m/n, the fraction of Bloch
waves the engine keeps per pixel (largest |C₀ⱼ|² until the excluded sum is ≤
:data:`lacbed.bloch.solver.EXCITATION_TAIL`). For complex (non-centrosymmetric) matrices only m/n
is reported: the cost structure (``chetrd``, real T, ``cunmqr``) is the same.

Usage (repository root)::

    nice -n 5 python benchmarks/engine_selected_vectors.py

Writes ``benchmarks/results/engine_selected_vectors.json``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import scipy.linalg
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from lacbed.bloch.solver import EXCITATION_TAIL
from lacbed.simulate.engine import build_matrices
from lacbed.simulate.geometry import incident_wavevectors, tilts
from lacbed.simulate.plan import plan_lacbed
from lacbed.structures.sources import load_source

OUT = Path(__file__).parent / "results" / "engine_selected_vectors.json"
KEYS = (
    "oqmd:19974-24700-Ca3GeO",
    "oqmd:13882-18001-Sn2Pt",
    "oqmd:13119-17159-Cu3Pd",
    "oqmd:7155-10791-TbPbAu",
)
THICKNESS_NM = np.array([50.0, 100.0, 150.0, 200.0])


def sample_matrices(crystal, per_job: int = 8, n_jobs: int = 8) -> list[np.ndarray]:
    """Hermitian parts of the structure matrices of a 64×64 plan, a few per job across tiles."""
    plan = plan_lacbed(crystal, THICKNESS_NM, size=64)
    o = plan.options
    out = []
    for job in plan.jobs[:: max(1, len(plan.jobs) // n_jobs)]:
        k = incident_wavevectors(
            tilts(job.rows, job.cols, o["size"], o["half_width"]), plan.wavenumber
        )
        a = build_matrices(plan, k, job.strong, job.weak)
        h = a[0] if isinstance(a, tuple) else 0.5 * (a + np.conj(np.swapaxes(a, 1, 2)))
        out.extend(list(h[:per_job]))
    return out


def kept_fraction(v: np.ndarray) -> float:
    """m/n: Bloch waves kept for the 000 beam (the engine's rule)."""
    weight = np.sort(np.abs(v[0]) ** 2)[::-1]
    tail = 1.0 - np.cumsum(weight)
    return (1 + int(np.sum(tail > EXCITATION_TAIL))) / v.shape[0]


def selected(x: np.ndarray, m: int) -> np.ndarray:
    """The m eigenvectors with the largest first component, via T (real symmetric x)."""
    n = x.shape[0]
    c, d, e, tau, _ = lapack.ssytrd(x, lower=1)
    _, z, _ = lapack.sstevd(d, e, compute_v=1)
    zs = np.asfortranarray(z[:, np.argsort(-(z[0] ** 2))[:m]])
    back, _, _ = lapack.sormqr("L", "N", c[1:, : n - 1], tau, zs[1:], max(1, 64 * m))
    return np.vstack([zs[:1], back])


def measure(key: str) -> dict:
    crystal = {e.key: e for e in load_source("oqmd").entries}[key].crystal
    mats = sample_matrices(crystal)
    real = not np.iscomplexobj(mats[0])
    t_evd = t_sel = t_trd = 0.0
    fractions, residual = [], 0.0
    with threadpool_limits(limits=1):
        for h in mats:
            x = h.astype(np.float32 if real else np.complex64)
            t0 = time.process_time()
            w, v = scipy.linalg.eigh(x, driver="evd", check_finite=False)
            t_evd += time.process_time() - t0
            fractions.append(kept_fraction(v))
            if not real:
                continue
            m = int(np.ceil(fractions[-1] * x.shape[0]))
            t0 = time.process_time()
            vec = selected(x, m)
            t_sel += time.process_time() - t0
            t0 = time.process_time()
            lapack.ssytrd(x, lower=1)
            t_trd += time.process_time() - t0
            lam = np.einsum("ij,ik,kj->j", vec, x.astype(np.float64), vec)
            res = np.abs(x @ vec - vec * lam[None, :]).max() / np.abs(w).max()
            residual = max(residual, float(res))
    sizes = [h.shape[0] for h in mats]
    return {
        "key": key,
        "real": real,
        "matrices": len(mats),
        "n_mean": float(np.mean(sizes)),
        "n_max": int(np.max(sizes)),
        "kept_fraction_mean": float(np.mean(fractions)),
        "kept_fraction_min": float(np.min(fractions)),
        "evd_cpu_s": t_evd,
        "selected_cpu_s": t_sel if real else None,
        "selected_over_evd": t_sel / t_evd if real else None,
        "reduction_over_evd": t_trd / t_evd if real else None,
        "selected_max_relative_residual": residual if real else None,
    }


def main() -> None:
    rows = []
    for key in KEYS:
        rows.append(measure(key))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "machine": f"{platform.platform()}, numpy {np.__version__}, scipy {scipy.__version__}; "
        "one BLAS thread; a shared machine (ratios within one run are the measure)",
        "excitation_tail": EXCITATION_TAIL,
        "rows": rows,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
