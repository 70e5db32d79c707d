"""The model floor of ``lacbed refine`` on U_g(200) of GaAs: noise-free fits (issue 13).

A noise-free synthetic GaAs experiment (40 × 40 pixels, 120 nm, U_200 × 1.05, B_Ga 0.70 Å²,
B_As 0.55 Å², rotation 4°, zone axis off the disc centre, calibration 4 % off, blur σ 0.9 px,
background 80) is fitted for thickness, orientation and U_200 (B known) from U_200 20 % off,
with several forward models; what is left of the U_200 error is the model's bias.

Experiments (``--exp``):
  * ``grid160``: the experiments of lacbed ≤ 0.1, a 160-pixel simulation grid sampled at the
    pixel centres by cubic convolution (``supersample=None``);
  * ``int8``: every pixel the mean of 8 × 8 directly solved directions over its area (a
    detector integrating over its pixels; :func:`lacbed.refine.synthetic.synthetic_experiment`).

Models (refine's ``supersample`` s and ``direct_passes`` p): p = 0 is the grid model alone
(s = 1: lacbed ≤ 0.1); p > 0 adds the direct correction (:mod:`lacbed.refine.fit`).

Also measured: Z between the experiments' noise-free images integrated with 1, 2, 4 and 8 points
per pixel side (no blur), i.e. how far a pixel's centre is from its mean.

Writes ``benchmarks/results/refine_model_floor.json`` (quoted by docs/refine.md).
Usage: ``python benchmarks/refine_model_floor.py [EXP:S:P[:B] ...]`` (default: the list below;
B: the fit's fixed strong-beam budget, default adaptive).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from lacbed.crystal import load_crystal
from lacbed.crystal.examples import example_path
from lacbed.refine import Alignment, Experiment, refine
from lacbed.refine.structure import PotentialTable
from lacbed.refine.synthetic import synthetic_experiment
from lacbed.simulate.plan import plan_lacbed

OUT = Path(__file__).parent / "results" / "refine_model_floor.json"
DEFAULT = ["grid160:1:0", "int8:1:0", "int8:2:0", "int8:1:3", "int8:2:3", "grid160:1:3"]
B_TRUE = {"Ga": 0.70, "As": 0.55}
F_TRUE = 1.05
N = 40
DISC = (19.6, 19.3, 17.6)


def setting(n: int = N):
    """Crystal, calibration [1/Å per px], true alignment and disc of an n × n experiment (the
    same field of view in k for every n; n = 64 as the 64-pixel cases of refine_recovery.py)."""
    cr = load_crystal(example_path("GaAs"))
    cal = 4 / cr.a / (0.4 * n)
    if n == N:
        return cr, cal, Alignment(20.3, 18.9, 4.0, cal * 1.04, 0.9), DISC
    truth = Alignment(n / 2 + 0.3, n / 2 - 1.1, 4.0, cal * 1.04, 0.9)
    return cr, cal, truth, (n / 2 - 0.4, n / 2 - 0.7, 0.44 * n)


def experiment(kind: str, blur: bool = True) -> tuple[np.ndarray, float]:
    """Noise-free image and its CPU time [s]; kind "int4_64": 64 × 64 pixels; "int2_64_sb80":
    and a fixed budget of 80 strong beams (the adaptive budget gives ~50)."""
    kind, _, size = kind.partition("_")
    size, _, budget = size.partition("_sb")
    n = int(size or N)
    cr, _, truth, disc = setting(n)
    if not blur:
        truth = Alignment(truth.row, truth.col, truth.angle, truth.scale, 0.0)
    ss = None if kind == "grid160" else int(kind[3:])
    cpu0 = time.process_time()
    img = synthetic_experiment(cr, 120.0, truth, shape=(n, n), disc=disc, b=B_TRUE,
                               ug={(2, 0, 0): F_TRUE}, dose=None, background=80.0,
                               supersample=ss, strong_beams=int(budget) if budget else None)  # fmt: skip
    return img, time.process_time() - cpu0


def fit(img: np.ndarray, ss: int, passes: int, strong_beams: int | None = None) -> dict:
    cr, cal, truth, _ = setting(img.shape[0])
    cpu0 = time.process_time()
    res = refine(Experiment(img, cal), cr, fit="thickness,orientation,Ug:200",
                 thickness_range=(50, 300), start={**{f"B:{k}": v for k, v in B_TRUE.items()},
                                                   "Ug:200": 0.8 * F_TRUE},
                 supersample=ss, direct_passes=passes, strong_beams=strong_beams)  # fmt: skip
    table = PotentialTable(plan_lacbed(cr, [50.0], size=16, convergence_sample=0.0))
    u_true = F_TRUE * table.ug(B_TRUE, (2, 0, 0)).real
    p = res.parameters
    al = res.alignment
    return {
        "U200_error_rel": p["Ug:200"]["U_g"][0] / u_true - 1,
        "U200_sigma_rel": abs(p["Ug:200"]["U_g_uncertainty"] / u_true),
        "thickness_error_nm": p["thickness"]["value"] - 120.0,
        "centre_error_px": float(np.hypot(al.row - truth.row, al.col - truth.col)),
        "scale_error_rel": al.scale / truth.scale - 1,
        "blur_px": al.blur,
        "z": res.z,
        "engine_calls": res.engine_calls,
        "cpu_s": time.process_time() - cpu0,
        "sim_size": res.settings["size"],
        "convergence_estimate": res.settings["convergence_estimate"],
        "history": [
            {k: h[k] for k in ("stage", "z", "engine_calls", "cpu_s", "parameters")}
            for h in res.history
        ],  # fmt: skip
    }


def integration_z() -> dict:
    """Z between pixel means with n and 8 points per side (no blur) over the fit's disc."""
    imgs = {n: experiment(f"int{n}", blur=False)[0] for n in (1, 2, 4, 8)}
    rr, cc = np.indices((N, N))
    m = np.hypot(rr - DISC[0], cc - DISC[1]) <= DISC[2] - 3

    def z(a, b):
        a, b = a[m] - a[m].mean(), b[m] - b[m].mean()
        return float(1 - a @ b / np.sqrt((a @ a) * (b @ b)))

    return {f"Z_int{n}_vs_int8": z(imgs[n], imgs[8]) for n in (1, 2, 4)}


def main(configs: list[str]) -> None:
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    if configs == ["--integration"]:
        results["_integration_no_blur"] = integration_z()
        print(results["_integration_no_blur"])
    cache: dict = {}
    for cfg in [] if configs == ["--integration"] else (configs or DEFAULT):
        kind, ss, passes, *budget = cfg.split(":")
        if kind not in cache:
            cache[kind] = experiment(kind)
            print(f"experiment {kind}: {cache[kind][1]:.1f} s CPU", flush=True)
        out = fit(cache[kind][0], int(ss), int(passes), int(budget[0]) if budget else None)
        out["experiment_cpu_s"] = cache[kind][1]
        results[cfg] = out
        print(cfg, json.dumps({k: v for k, v in out.items() if k != "history"}), flush=True)
        results["_machine"] = (
            f"{platform.platform()}, numpy {np.__version__}; 2 cores shared with other jobs "
            "(CPU time is the measure)"
        )
        OUT.write_text(json.dumps(results, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
