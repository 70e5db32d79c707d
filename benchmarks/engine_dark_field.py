"""Cost of dark-field discs against the bright field, side by side, and a reciprocity check.

For each material the default engine (adaptive budget, convergence estimate and escalation) is
run twice in one process, alternately: the bright field (000, the irreducible wedge of its 4mm or
2mm symmetry), the discs 000, ±2±20, ±400 as by default (the half plane of the 2-fold axis along
[001], every Bloch wave) and the same discs with ``symmetry="1"`` (every pixel). CPU time is
process time with ``n_jobs=1`` (single-threaded BLAS, robust on a shared machine); each number is
the smaller of two repeats. The ratios are dark-field CPU / bright-field CPU of the same crystal.

Reciprocity (Pogany & Turner, Acta Cryst. A24 (1968) 103) with the inversion centre of a
centrosymmetric crystal gives I_g(k_t) = I_{−g}(k_t + g): the g disc is the −g disc shifted by g.
lacbed's beam sets are chosen per tile around 000 and are not shifted with the disc, so this holds
only to the accuracy of the beam selection; the script measures it (max |ΔI| and Z over the
overlap) for Si 2-20 / -220 and 400 / -400.

Also draws the montage ``docs/figures/dark_field_si_montage.png`` (Si, 128 × 128, W = 4/a).

Usage (repository root)::

    nice -n 5 python benchmarks/engine_dark_field.py

Writes ``benchmarks/results/engine_dark_field.json``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "engine_dark_field.json"
FIG = ROOT / "docs" / "figures" / "dark_field_si_montage.png"
THICKNESS_NM = [50.0, 100.0, 150.0]
DISCS = [(0, 0, 0), (2, -2, 0), (-2, 2, 0), (2, 2, 0), (-2, -2, 0), (4, 0, 0), (-4, 0, 0)]
CASES = [("Si", 64), ("MgO", 64), ("GaAs", 64), ("Si", 128)]


def _run(cif, size, reflections, symmetry="auto"):
    from lacbed.simulate import simulate_lacbed

    t0 = time.process_time()
    p = simulate_lacbed(
        cif, THICKNESS_NM, size=size, n_jobs=1, reflections=reflections, symmetry=symmetry
    )
    return p, time.process_time() - t0


def cost(name: str, size: int) -> tuple[dict, object]:
    """Bright field and discs of one material, alternately, twice; the faster of each."""
    from lacbed.crystal.examples import example_path

    cif = example_path(name)
    bf_t, df_t, full_t = [], [], []
    for _ in range(2):
        bf, t = _run(cif, size, None)
        bf_t.append(t)
        df, t = _run(cif, size, DISCS)
        df_t.append(t)
        full, t = _run(cif, size, DISCS, "1")
        full_t.append(t)
    diff000 = float(np.abs(df.intensities[0] - bf.intensities).max())
    row = {
        "material": name,
        "size": size,
        "real_arithmetic": bf.settings["real_arithmetic"],
        "bright_field_symmetry": bf.settings["symmetry"],
        "pixels_solved_bf": bf.settings["n_unique_pixels"],
        "pixels_solved_df": df.settings["n_unique_pixels"],
        "n_strong_mean_bf": bf.settings["n_strong_mean"],
        "n_strong_mean_df": df.settings["n_strong_mean"],
        "budget_factor_bf": bf.settings["budget_factor"],
        "budget_factor_df": df.settings["budget_factor"],
        "estimate_bf": bf.settings["convergence_estimate"],
        "estimate_df": df.settings["convergence_estimate"],
        "cpu_bf_s": min(bf_t),
        "cpu_df_s": min(df_t),
        "cpu_ratio": min(df_t) / min(bf_t),
        "cpu_df_every_pixel_s": min(full_t),
        "cpu_ratio_every_pixel": min(full_t) / min(bf_t),
        "max_abs_diff_000": diff000,
        "max_abs_diff_half_full": float(np.abs(df.intensities - full.intensities).max()),
    }
    return row, df


def reciprocity(p, g: tuple[int, int, int]) -> dict:
    """I_g(k) against I_{−g}(k + g) over the pixels where both lie in the pattern."""
    from lacbed.metrics import z_score

    a = float(p.settings["crystal"]["a"])
    step = 2.0 * p.settings["half_width"] / p.size  # Δ [1/Å]
    sx, sy = (round(g[0] / a / step), round(g[1] / a / step))  # g in pixels (exact for W = 4/a)
    n = p.size
    i_g = p.disc(g)
    i_mg = p.disc(tuple(-x for x in g))
    rows = np.arange(max(0, -sy), min(n, n - sy))
    cols = np.arange(max(0, -sx), min(n, n - sx))
    x = i_g[:, rows[:, None], cols[None, :]]
    y = i_mg[:, rows[:, None] + sy, cols[None, :] + sx]
    return {
        "g": list(g),
        "shift_pixels": [sx, sy],
        "overlap_pixels": int(len(rows) * len(cols)),
        "max_abs_diff": float(np.abs(x - y).max()),
        "max_intensity": float(x.max()),
        "z_percent": [100 * float(z) for z in z_score(x, y)],
    }


def main() -> None:
    from lacbed.plotting.pattern import plot_discs

    rows, recip = [], []
    for name, size in CASES:
        row, df = cost(name, size)
        rows.append(row)
        print(json.dumps(row))
        if name == "Si" and size == 128:
            recip = [reciprocity(df, (2, -2, 0)), reciprocity(df, (4, 0, 0))]
            print(json.dumps(recip))
            sel = [0, 1, 2, 5, 6]  # 000, 2-20, -220, 400, -400 at 100 nm
            from dataclasses import replace

            fig_p = replace(
                df,
                intensities=df.intensities[sel][:, 1:2],
                thickness_nm=df.thickness_nm[1:2],
                reflections=df.reflections[sel],
            )
            fig = plot_discs(fig_p, title="Si [001], 200 kV, 100 nm: LACBED discs")
            fig.savefig(FIG, dpi=110)
    result = {
        "thickness_nm": THICKNESS_NM,
        "discs": [list(h) for h in DISCS],
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "cost": rows,
        "reciprocity_si_128": recip,
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
