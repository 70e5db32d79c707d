"""Measure the quantities that the physics tests bound, so each tolerance can cite a number.

Every test tolerance on these checks is set at 3–5× the value measured here and its comment
names the entry of ``benchmarks/results/tolerances.json``. Rerun after a change to the engine,
the structure factors or the reference data, and update the tolerances if a value moves.

Usage (from the repository root)::

    python benchmarks/tolerances.py [--out benchmarks/results/tolerances.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
EXAMPLES = ROOT / "src" / "lacbed" / "examples"


def felix_agreement() -> dict:
    """Z against Felix Si [001] (the settings of tests/test_felix_agreement.py)."""
    from lacbed.crystal import read_cif
    from lacbed.metrics import z_score
    from lacbed.simulate import simulate_lacbed
    from lacbed.simulate.felix import read_felix_inp

    felix = DATA / "felix" / "Si_001"
    inp = read_felix_inp(felix / "felix.inp")
    crystal = inp.apply_debye_waller(read_cif(felix / "felix.cif"))
    ref = np.load(felix / "I_p0p0p0_stack.npy")
    t_nm = np.load(felix / "thickness_A.npy") / 10.0
    out = {}
    for budget in ("felix", "adaptive"):
        kw = inp.simulation_kwargs()
        if budget == "adaptive":
            kw["strong_beams"] = None
        p = simulate_lacbed(crystal, **kw)
        z = 100 * z_score(p.intensities, ref)
        u0p = p.settings["U0_abs"][0]
        factor = np.exp(-2 * np.pi * 10 * t_nm * u0p / p.settings["wavenumber"])
        ratio = p.intensities.mean(axis=(1, 2)) / ref.mean(axis=(1, 2))
        out[budget] = {
            "z_percent": z.tolist(),
            "mean_ratio_over_exp_factor_minus_1": (ratio / factor - 1).tolist(),
        }
    return out


def bird_king_vs_felix() -> dict:
    """Relative difference of U_g + iU'_g to Felix's StructureFactors.txt (Si, 200 kV)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from lacbed.scattering import structure_factors
    from test_structure_factors import make_crystal

    data = np.loadtxt(DATA / "felix" / "Si_001" / "StructureFactors.txt")
    hkl = data[:, :3].astype(int)
    re_u, im_u = data[:, 5], data[:, 6]
    si = make_crystal("Si", 5.431, b=0.4632)
    sf = structure_factors(si, hkl, voltage=200e3, scattering="kirkland", absorption="bird-king")
    total = sf.U + 1j * sf.U_abs
    felix = re_u + 1j * im_u
    origin = np.all(hkl == 0, axis=1)
    strong = np.abs(im_u) > 1e-6
    rel_im = np.abs(total.imag[strong] - im_u[strong]) / np.abs(im_u[strong])
    sel = strong & ~origin
    rel = np.abs(total[sel] - felix[sel]) / np.abs(felix[sel])
    return {
        "n_strong": int(strong.sum()),
        "max_rel_im": float(rel_im.max()),
        "max_rel_complex": float(rel.max()),
        "rel_U0_abs": float(abs(sf.U_abs[origin][0].real / im_u[origin][0] - 1)),
    }


def scattering_oracles() -> dict:
    """Deviation of each table from the exact H factor, the He Hartree-Fock f(0), Rutherford."""
    from lacbed.scattering import PARAMETRIZATIONS, scattering_factor

    a0 = 0.529177210544
    s = np.linspace(0.0, 0.5, 51)
    x = 2 * np.pi * a0 * s
    h = a0 * (2 + x**2) / (2 * (1 + x**2) ** 2)
    he0 = 2.3697 * a0 / 3
    out = {}
    for name in PARAMETRIZATIONS:
        out[name] = {
            "H_max_rel_s_le_0.5": float(np.abs(scattering_factor("H", s, name) / h - 1).max()),
            "He_f0_rel": float(abs(scattering_factor("He", 0.0, name) / he0 - 1)),
        }
    big = np.array([6.0, 12.0])
    for el, z in (("Si", 14), ("Cu", 29)):
        ratio = scattering_factor(el, big, "lobato") / (z / (8 * np.pi**2 * a0 * big**2))
        out[f"lobato_{el}_over_rutherford_s6_s12"] = ratio.tolist()
    return out


def structure_factor_table() -> dict:
    """Worst relative difference to tests/data/structure_factors.json per parametrisation."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from lacbed.scattering import structure_factors
    from test_structure_factors import TABLE_KEYS, make_crystal

    data = json.loads((DATA / "structure_factors.json").read_text())
    out = {}
    for name, key in TABLE_KEYS.items():
        worst = {"V_rel": 0.0, "V_abs_V": 0.0, "U_abs_invA2": 0.0, "xi_rel": 0.0}
        for row in data["rows"]:
            ref = row[key]
            if ref["abs_Vg_V"] == 0.0:
                continue
            cr = make_crystal(row["material"], data["lattice_A"][row["material"]])
            hkl = [int(c) for c in row["hkl"]]
            sf = structure_factors(
                cr, hkl, voltage=row["kV"] * 1e3, scattering=name, absorption="none"
            )
            dv = abs(abs(sf.V[0]) - ref["abs_Vg_V"])
            worst["V_rel"] = max(worst["V_rel"], dv / ref["abs_Vg_V"])
            worst["V_abs_V"] = max(worst["V_abs_V"], dv)
            du = abs(abs(sf.U[0]) - ref["abs_Ug_invA2"])
            worst["U_abs_invA2"] = max(worst["U_abs_invA2"], du)
            worst["xi_rel"] = max(worst["xi_rel"], abs(sf.xi_nm[0] / ref["xi_nm"] - 1))
        out[name] = worst
    return out


def fast_vs_exact() -> dict:
    """Z between the fast (first-order absorption) and exact solvers."""
    from lacbed.crystal import read_cif
    from lacbed.metrics import z_score
    from lacbed.simulate import simulate_lacbed

    out = {}
    for name, size in (("Si", 32), ("GaAs", 64)):
        cr = read_cif(EXAMPLES / f"{name}.cif")
        kw = dict(size=size, n_jobs=1, half_width=0.75)
        t = [50.0, 100.0, 150.0]
        t0 = time.perf_counter()
        fast = simulate_lacbed(cr, t, **kw).intensities
        t1 = time.perf_counter()
        exact = simulate_lacbed(cr, t, solver="exact", **kw).intensities
        t2 = time.perf_counter()
        out[f"{name}_{size}px"] = {
            "thickness_nm": t,
            "z_percent": (100 * z_score(fast, exact)).tolist(),
            "max_abs_diff": float(np.abs(fast - exact).max()),
            "seconds_fast": t1 - t0,
            "seconds_exact": t2 - t1,
        }
    return out


def two_mm_full_solve() -> dict:
    """A full (symmetry '1') solve of the 2mm crystals: mirror errors and the 4mm violation.

    In float64 throughout, as the test runs it (its ``double_precision`` fixture).
    """
    import lacbed.bloch.solver as bs
    from lacbed.crystal import read_cif
    from lacbed.metrics import z_score
    from lacbed.simulate import simulate_lacbed

    out, keep = {}, bs.EIGH_PRECISION
    bs.EIGH_PRECISION = "double"
    try:
        for name in ("FeS2", "FeSi"):
            out[name] = _two_mm_one(name, read_cif, z_score, simulate_lacbed)
    finally:
        bs.EIGH_PRECISION = keep
    return out


def _two_mm_one(name, read_cif, z_score, simulate_lacbed) -> dict:  # noqa: ANN001
    cr = read_cif(EXAMPLES / f"{name}.cif")
    t0 = time.perf_counter()
    p = simulate_lacbed(cr, [50.0, 150.0], symmetry="1", size=16, strong_beams=20, max_g=2.0)
    full = p.intensities
    return {
        "point_group": cr.point_group,
        "max_mirror_x": float(np.abs(full - full[:, :, ::-1]).max()),
        "max_mirror_y": float(np.abs(full - full[:, ::-1, :]).max()),
        "max_transpose": float(np.abs(full - np.swapaxes(full, 1, 2)).max()),
        "z_transpose_percent": (100 * z_score(full, np.swapaxes(full, 1, 2))).tolist(),
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tolerances.json"))
    ap.add_argument("--only", nargs="*", help="measure only these entries (others kept from --out)")
    args = ap.parse_args(argv)
    import lacbed

    out = Path(args.out)
    result = json.loads(out.read_text()) if args.only and out.is_file() else {}
    result |= {
        "lacbed_version": lacbed.__version__,
        "machine": platform.platform(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for fn in (
        scattering_oracles,
        structure_factor_table,
        bird_king_vs_felix,
        felix_agreement,
        fast_vs_exact,
        two_mm_full_solve,
    ):
        if args.only and fn.__name__ not in args.only:
            continue
        result[fn.__name__] = fn()
        print(fn.__name__, json.dumps(result[fn.__name__]), flush=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
