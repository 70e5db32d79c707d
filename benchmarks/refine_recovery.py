"""Recovery of known parameters by ``lacbed.refine`` from degraded synthetic experiments.

Each case: a pattern made by lacbed (:func:`lacbed.refine.synthetic.synthetic_experiment`: every
pixel the mean of 4 × 4 directly solved directions over its area, beam sets from its own plan)
with known thickness, B, U_g factor and alignment, degraded by Poisson noise, a Gaussian blur, a
background, dead and hot pixels, a rotation, a zone axis off the disc centre and a calibration
3–4 % off; then :func:`lacbed.refine.refine` from starting guesses 20 % off, with its defaults
(the adaptive budget; 80 strong beams per tile when U_g is fitted). The GaAs experiments are
made with :data:`EXP_BEAMS` strong beams, a truth more converged than the fit (as a real
specimen is); the Si ones with the adaptive budget.

``--seeds``: the GaAs U_200 case at 64 × 64 pixels and 10⁵ counts, one noise-free image (fitted
as it is: the model's bias at this sampling) and :data:`SEEDS` independent Poisson draws of it
(no bad pixels), to compare the scatter of the fitted U_200 with its reported uncertainty. Its
experiments are made with the adaptive budget (not :data:`EXP_BEAMS`): the study measures the
scatter about the noise-free fit, not the bias.

Writes ``benchmarks/results/refine_recovery.json`` (errors, uncertainties, CPU, engine calls),
quoted by docs/refine.md.

Usage: ``python benchmarks/refine_recovery.py [case ...]`` (default: every case);
``python benchmarks/refine_recovery.py --seeds``; ``python benchmarks/refine_recovery.py
--noise-free CASE`` (the case's image without noise, fitted: the bias at its sampling);
``python benchmarks/refine_recovery.py --table``
prints the Markdown tables of docs/refine.md.
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

OUT = Path(__file__).parent / "results" / "refine_recovery.json"
#: Strong beams of the GaAs experiments: a truth more converged than any fit (U_200 to 0.5 %
#: needs more than the adaptive budget: docs/refine.md, "The model floor").
EXP_BEAMS = 150
#: True complex factor on U_111 of GaAs (acentric) in its case: magnitude 1.03, phase + 3° [-].
UG111_TRUE = complex(1.03 * np.exp(1j * np.radians(3.0)))

CASES = {
    "si_thickness_orientation": dict(
        crystal="Si", thickness=150.0, n=40, dose=3000.0, fit="thickness,orientation",
        b={}, ug={}, start={}, cal_error=1.03, angle=-3.5,
    ),
    "si_b": dict(
        crystal="Si", thickness=120.0, n=40, dose=20000.0, fit="thickness,orientation,B",
        b={"Si": 0.55}, ug={}, start={"B:Si": 0.44}, cal_error=1.03, angle=-3.5,
    ),
    "gaas_b_ug200": dict(
        crystal="GaAs", thickness=120.0, n=40, dose=20000.0, fit="thickness,orientation,B,Ug:200",
        b={"Ga": 0.70, "As": 0.55}, ug={(2, 0, 0): 1.05},
        start={"B:Ga": 0.56, "B:As": 0.44, "Ug:200": 0.84}, cal_error=1.04, angle=4.0,
        exp_beams=EXP_BEAMS,
    ),
    "gaas_ug200_known_b": dict(
        crystal="GaAs", thickness=120.0, n=40, dose=20000.0, fit="thickness,orientation,Ug:200",
        b={"Ga": 0.70, "As": 0.55}, ug={(2, 0, 0): 1.05},
        start={"B:Ga": 0.70, "B:As": 0.55, "Ug:200": 0.84}, cal_error=1.04, angle=4.0,
        exp_beams=EXP_BEAMS,
    ),
    "gaas_ug200_known_b_64px_dose1e5": dict(
        crystal="GaAs", thickness=120.0, n=64, dose=1e5, fit="thickness,orientation,Ug:200",
        b={"Ga": 0.70, "As": 0.55}, ug={(2, 0, 0): 1.05},
        start={"B:Ga": 0.70, "B:As": 0.55, "Ug:200": 0.84}, cal_error=1.04, angle=4.0,
        exp_beams=EXP_BEAMS,
    ),
    "gaas_b_ug200_64px_dose1e5": dict(
        crystal="GaAs", thickness=120.0, n=64, dose=1e5, fit="thickness,orientation,B,Ug:200",
        b={"Ga": 0.70, "As": 0.55}, ug={(2, 0, 0): 1.05},
        start={"B:Ga": 0.56, "B:As": 0.44, "Ug:200": 0.84}, cal_error=1.04, angle=4.0,
        exp_beams=EXP_BEAMS,
    ),
    # acentric U_111 of GaAs: |U_111| × 1.03 and its phase + 3°, a complex factor (α, β)
    "gaas_ug111_complex_64px_dose1e5": dict(
        crystal="GaAs", thickness=120.0, n=64, dose=1e5, fit="thickness,orientation,Ug:111",
        b={"Ga": 0.70, "As": 0.55}, ug={(1, 1, 1): UG111_TRUE},
        start={"B:Ga": 0.70, "B:As": 0.55, "Ug:111": 0.90, "Ug:111:im": 0.0}, cal_error=1.04,
        angle=4.0, exp_beams=EXP_BEAMS,
    ),
}  # fmt: skip
#: Poisson draws of the ``--seeds`` study.
SEEDS = 6


def run_case(name: str, c: dict, img: np.ndarray | None = None) -> dict:
    """Make the experiment (unless given), fit it, compare with the truth."""
    cr, cal, truth, disc = _geometry(c)
    n = c["n"]
    cpu_exp = time.process_time()
    if img is None:
        img = synthetic_experiment(cr, c["thickness"], truth, shape=(n, n), disc=disc,
                                   dose=c["dose"], background=80.0, b=c["b"], ug=c["ug"],
                                   dead_pixels=3, seed=7,
                                   strong_beams=c.get("exp_beams"))  # fmt: skip
    cpu_exp = time.process_time() - cpu_exp
    cpu0, wall0 = time.process_time(), time.perf_counter()
    res = refine(Experiment(img, cal), cr, fit=c["fit"], thickness_range=(50, 300),
                 start=c["start"], strong_beams=c.get("fit_beams"))  # fmt: skip
    out = {
        "case": c | {"ug": {str(k): _json_factor(v) for k, v in c["ug"].items()}},
        "cpu_s": time.process_time() - cpu0,
        "wall_s": time.perf_counter() - wall0,
        "engine_calls": res.engine_calls,
        "experiment_cpu_s": cpu_exp,
        "direct_passes": res.settings["direct_passes"],
        "convergence_estimate": res.settings["convergence_estimate"],
        "sim_size": res.settings["size"],
        "mask_pixels": res.settings["mask_pixels"],
        "z": res.z,
        "history": [
            {k: h[k] for k in ("stage", "z", "evaluations", "engine_calls", "cpu_s")}
            for h in res.history
        ],  # fmt: skip
    }
    p = res.parameters
    t = p["thickness"]
    out["thickness_error_nm"] = t["value"] - c["thickness"]
    out["thickness_sigma_nm"] = t["uncertainty"]
    al = res.alignment
    out["centre_error_px"] = float(np.hypot(al.row - truth.row, al.col - truth.col))
    out["angle_error_deg"] = al.angle - truth.angle
    out["scale_error_rel"] = al.scale / truth.scale - 1
    out["blur_error_px"] = al.blur - truth.blur
    for el, val in c["b"].items():
        if f"B:{el}" in p:
            out[f"B_{el}_error_rel"] = p[f"B:{el}"]["value"] / val - 1
            out[f"B_{el}_sigma_rel"] = p[f"B:{el}"]["uncertainty"] / val
    if any(k.startswith("Ug:") for k in p):
        out |= _ug_errors(cr, c, p)
    return out


def _json_factor(v):
    """A U_g factor for JSON: a real one as it is, a complex one as [re, im]."""
    return [v.real, v.imag] if isinstance(v, complex) else v


def _ug_errors(cr, c: dict, p: dict) -> dict:
    """Errors of the fitted U_g against the truth (U_200: relative to U_200, as before; an
    acentric U_g: Re, Im and |U_g| relative to the true |U_g|, and the phase in degrees)."""
    table = PotentialTable(plan_lacbed(cr, [50.0], size=16, convergence_sample=0.0))
    b_true = {el: float(np.mean(cr.b_iso[[s == el for s in cr.symbols]]))
              for el in dict.fromkeys(cr.symbols)} | c["b"]  # fmt: skip
    out = {}
    for name, v in ((k, v) for k, v in p.items() if k.startswith("Ug:")):
        hkl = tuple(int(i) for i in name[3:])
        key = "U" + name[3:]
        u_true = complex(c["ug"][hkl]) * table.ug(b_true, hkl)
        fit = complex(*v["U_g"])
        if "value_im" not in v:  # centric: the real part (the old fields)
            out[f"{key}_true"] = u_true.real
            out[f"{key}_fit"] = fit.real
            out[f"{key}_error_rel"] = fit.real / u_true.real - 1
            out[f"{key}_sigma_rel"] = abs(v["U_g_uncertainty"] / u_true.real)
            continue
        mag = abs(u_true)
        out[f"{key}_true"] = [u_true.real, u_true.imag]
        out[f"{key}_fit"] = [fit.real, fit.imag]
        out[f"{key}_re_error_rel"] = (fit.real - u_true.real) / mag
        out[f"{key}_re_sigma_rel"] = v["U_g_re_uncertainty"] / mag
        out[f"{key}_im_error_rel"] = (fit.imag - u_true.imag) / mag
        out[f"{key}_im_sigma_rel"] = v["U_g_im_uncertainty"] / mag
        out[f"{key}_abs_error_rel"] = abs(fit) / mag - 1
        out[f"{key}_abs_sigma_rel"] = v["U_g_uncertainty"] / mag
        out[f"{key}_phase_error_deg"] = float(np.degrees(np.angle(fit / u_true)))
        # σ of arg U_g: d arg = (Re dIm − Im dRe) / |U|², with the Re–Im correlation ρ
        sr, si, rho = v["U_g_re_uncertainty"], v["U_g_im_uncertainty"], v["U_g_re_im_correlation"]
        var = (fit.real * si) ** 2 + (fit.imag * sr) ** 2 - 2 * fit.real * fit.imag * rho * sr * si
        out[f"{key}_phase_sigma_deg"] = float(np.degrees(np.sqrt(max(var, 0.0)) / abs(fit) ** 2))
        out[f"{key}_factor_fit"] = [v["value"], v["value_im"]]
        out[f"{key}_factor_sigma"] = [v["uncertainty"], v["uncertainty_im"]]
        out[f"{key}_re_im_correlation"] = v["U_g_re_im_correlation"]
    return out


def _geometry(c: dict):  # noqa: ANN202
    """Crystal, calibration [1/Å per px], true alignment and disc of a case."""
    cr = load_crystal(example_path(c["crystal"]))
    n = c["n"]
    cal = 4.0 / cr.a / (0.4 * n)
    truth = Alignment(n / 2 + 0.3, n / 2 - 1.1, c["angle"], cal * c["cal_error"], 0.9)
    disc = (n / 2 - 0.4, n / 2 - 0.7, 0.44 * n)
    return cr, cal, truth, disc


def _clean_image(c: dict, strong_beams: int | None) -> np.ndarray:
    """The case's experiment without noise, background or bad pixels (relative intensities)."""
    cr, _, truth, disc = _geometry(c)
    n = c["n"]
    return synthetic_experiment(cr, c["thickness"], truth, shape=(n, n), disc=disc, dose=None,
                                background=0.0, b=c["b"], ug=c["ug"],
                                strong_beams=strong_beams)  # fmt: skip


def noise_free(name: str) -> dict:
    """Fit the noise-free image of a case (its experiment's beams, its dose as scale): the bias."""
    c = CASES[name]
    clean = _clean_image(c, c.get("exp_beams"))
    r = run_case(name, c, c["dose"] * clean + 80.0)
    return {k: v for k, v in r.items() if k != "history"}


def seeds() -> dict:
    """The ``--seeds`` study (module notes)."""
    name = "gaas_ug200_known_b_64px_dose1e5"
    c = CASES[name]
    clean = _clean_image(c, None)  # the adaptive budget (module notes)
    keys = ("U200_error_rel", "U200_sigma_rel", "thickness_error_nm", "thickness_sigma_nm",
            "centre_error_px", "engine_calls", "cpu_s", "z")  # fmt: skip
    r = run_case(name, c, c["dose"] * clean + 80.0)
    noise_free = {k: r[k] for k in keys}
    print("noise-free", json.dumps(noise_free), flush=True)
    runs = []
    for seed in range(SEEDS):
        rng = np.random.default_rng(100 + seed)
        img = rng.poisson(c["dose"] * clean + 80.0).astype(np.float64)
        r = run_case(name, c, img)
        runs.append({k: r[k] for k in keys})
        print(json.dumps(runs[-1]), flush=True)
    err = np.array([r["U200_error_rel"] for r in runs])
    sig = np.array([r["U200_sigma_rel"] for r in runs])
    return {
        "case": name,
        "seeds": SEEDS,
        "noise_free": noise_free,
        "runs": runs,
        "U200_error_mean": float(err.mean()),
        "U200_error_std": float(err.std(ddof=1)),
        "U200_error_max_abs": float(np.abs(err).max()),
        "U200_sigma_mean": float(sig.mean()),
        "cpu_s_mean": float(np.mean([r["cpu_s"] for r in runs])),
        "engine_calls_mean": float(np.mean([r["engine_calls"] for r in runs])),
    }


def _ug_cell(r: dict) -> str:
    """The U_g column: a centric U_g's relative error; an acentric one's Re and Im errors
    relative to the true |U_g|, and its phase error [deg] (σ in brackets)."""
    cells = []
    for k in sorted(k for k in r if k.startswith("U") and k.endswith("_error_rel")):
        key = k.split("_")[0]
        if k == f"{key}_error_rel":
            cells.append(f"{key[1:]}: {100 * r[k]:+.2f} % ({100 * r[f'{key}_sigma_rel']:.2f})")
        elif k == f"{key}_re_error_rel":
            cells.append(
                f"{key[1:]}: Re {100 * r[k]:+.2f} % ({100 * r[f'{key}_re_sigma_rel']:.2f}), "
                f"Im {100 * r[f'{key}_im_error_rel']:+.2f} % ({100 * r[f'{key}_im_sigma_rel']:.2f})"
                f" of abs(U_g); phase {r[f'{key}_phase_error_deg']:+.2f}° "
                f"({r[f'{key}_phase_sigma_deg']:.2f})"
            )
    return "; ".join(cells) or "–"


def table() -> str:
    """The Markdown table of docs/refine.md from the results file."""
    results = json.loads(OUT.read_text())
    rows = [
        "| case | pixels (sim) | dose | thickness error (σ) | zone axis error | rotation error "
        "| scale error | B error (σ) | U_g error (σ) | engine calls | CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if name.startswith("_"):
            continue
        c = r["case"]
        b = ", ".join(
            f"{k[2:-10]} {100 * v:+.1f} % ({100 * r[k.replace('error', 'sigma')]:.1f})"
            for k, v in r.items()
            if k.startswith("B_") and k.endswith("_error_rel")
        )
        u = _ug_cell(r)
        rows.append(
            f"| {name} (`{c['fit']}`) | {c['n']}² ({r['sim_size']}²) | {c['dose']:g} "
            f"| {r['thickness_error_nm']:+.2f} nm ({r['thickness_sigma_nm']:.2f}) "
            f"| {r['centre_error_px']:.3f} px | {r['angle_error_deg']:+.3f}° "
            f"| {100 * r['scale_error_rel']:+.2f} % | {b or '–'} | {u} | {r['engine_calls']} "
            f"| {r['cpu_s']:.0f} s |"
        )
    return "\n".join(rows)


def main(names: list[str]) -> None:
    if names == ["--table"]:
        print(table())
        return
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results = {k: v for k, v in results.items() if k.startswith("_") or k in CASES}
    results["_machine"] = (
        f"{platform.platform()}, {len(__import__('os').sched_getaffinity(0))} CPUs visible, "
        f"numpy {np.__version__}; 2 cores shared with other jobs (CPU time is the measure)"
    )
    todo = names or list(CASES)
    if len(names) == 2 and names[0] == "--noise-free":
        results[f"_noise_free_{names[1]}"] = noise_free(names[1])
        print(json.dumps(results[f"_noise_free_{names[1]}"], indent=1, default=float))
        todo = []
    if names == ["--seeds"]:
        results["_seeds"] = seeds()
        print(json.dumps({k: v for k, v in results["_seeds"].items() if k != "runs"}, indent=1))
        todo = []
    for name in todo:
        print(f"{name} ...", flush=True)
        results[name] = run_case(name, CASES[name])
        print(json.dumps({k: v for k, v in results[name].items() if k != "history"}, indent=1))
        OUT.write_text(json.dumps(results, indent=1, default=float) + "\n")
    OUT.write_text(json.dumps(results, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
