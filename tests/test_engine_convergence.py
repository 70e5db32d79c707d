"""Beam convergence of the adaptive default (slow): Z between the default and twice the beams.

Issue 3: the default beam budget must give Z ≤ 0.5 % against a run with twice the strong beams,
over materials of different cell sizes and compositions. The figures of this panel (and of the
same check at 64×64) are in docs/engine_validation.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lacbed.crystal import read_cif
from lacbed.metrics import z_score
from lacbed.simulate import simulate_lacbed

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "lacbed" / "examples"
THICK = [50.0, 100.0, 150.0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Si", "GaAs", "SrTiO3", "MgO", "Cu", "CaF2", "FeS2"])
def test_default_budget_is_converged(name):
    cr = read_cif(EXAMPLES / f"{name}.cif")
    kw = dict(size=32, n_jobs=2)
    p = simulate_lacbed(cr, THICK, **kw)
    n_ref = min(2 * p.settings["n_strong_max"], p.settings["n_pool"])
    ref = simulate_lacbed(cr, THICK, strong_beams=n_ref, **kw)
    z = 100 * z_score(p.intensities, ref.intensities)
    # 0.5 %: the project's convergence target. Measured at 64x64 on every example crystal:
    # <= 0.103 % (SrTiO3, 150 nm; benchmarks/results/engine_convergence.json, "beams")
    assert np.all(z <= 0.5), z


@pytest.mark.slow
def test_fixed_budget_converges_with_beams():
    # Z(N, 2N) falls as N grows: the engine converges to one answer (SrTiO3 needs the most beams)
    cr = read_cif(EXAMPLES / "SrTiO3.cif")
    runs = {
        n: simulate_lacbed(cr, [150.0], size=16, strong_beams=n, n_jobs=2).intensities
        for n in (50, 100, 200)
    }
    z1 = float(z_score(runs[50], runs[100])[0])
    z2 = float(z_score(runs[100], runs[200])[0])
    assert z2 < z1
