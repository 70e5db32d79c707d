"""The beam budget of a U_g fit: noise-free GaAs U_200 at 64 × 64 pixels (issue 13).

The 64-pixel noise-free experiment of ``benchmarks/refine_model_floor.py`` (4 × 4 directly
solved directions per pixel, 150 strong beams: a converged truth) is fitted for thickness,
orientation and U_200 (B known) from U_200 20 % off, with the fit's beam budget as refine's
default for U_g fits (a fixed minimum of ``UG_STRONG_BEAMS`` strong beams per tile) and as the
alternative tried, twice the adaptive budget (``budget_factor`` 2). Reports the U_200 error, its
uncertainty, engine calls and CPU.

Usage: ``python benchmarks/refine_ug_budget.py [default] [twice_adaptive]``.
Writes ``benchmarks/results/refine_ug_budget.json`` (quoted by docs/refine.md).
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import refine_model_floor as floor  # noqa: E402

OUT = Path(__file__).parent / "results" / "refine_ug_budget.json"


def main(which: list[str]) -> None:
    import lacbed.refine.fit as fit_mod

    result = json.loads(OUT.read_text()) if OUT.is_file() else {}
    result["machine"] = f"{platform.platform()}, numpy {np.__version__}"
    img, _ = floor.experiment("int4_64_sb150")
    for name in which:
        if name == "default":
            row = floor.fit(img, 2, 3)  # refine's default for a U_g fit
            row["strong_beams"] = fit_mod.UG_STRONG_BEAMS
        elif name == "twice_adaptive":
            saved = fit_mod.UG_STRONG_BEAMS
            fit_mod.UG_STRONG_BEAMS = None  # the adaptive budget ...
            fit_mod.UG_BUDGET_FACTOR = 2.0  # ... twice over
            try:
                row = floor.fit(img, 2, 3)
            finally:
                fit_mod.UG_STRONG_BEAMS = saved
            row["budget_factor"] = 2.0
        else:
            raise SystemExit(f"unknown case {name!r}")
        row.pop("history")
        result[name] = row
        print(name, json.dumps(row), flush=True)
        OUT.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or ["default", "twice_adaptive"])
