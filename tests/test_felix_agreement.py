"""Agreement with Felix v1.3 for the Si [001] and SrTiO3 [001] reference runs (docs/physics.md §10).

The run is read through the Felix input reader (``felix.inp`` + ``felix.cif``), i.e. the same
path as ``lacbed simulate --felix-inp``. Felix omits the mean absorption U′₀, a uniform factor to
which Z is blind, and picks its beams per pixel; Si is converged at this beam count (Z between 100
and 300 Felix beams < 0.01 %), so agreement does not hinge on the beam choice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lacbed.crystal import read_cif
from lacbed.metrics import z_score
from lacbed.simulate import simulate_lacbed

# the Felix run ships with the tests (tests/data/PROVENANCE.md); a missing file fails, never skips
FELIX = Path(__file__).resolve().parent / "data" / "felix" / "Si_001"


@pytest.fixture(scope="module")
def felix_case():
    from lacbed.simulate.felix import read_felix_inp

    inp = read_felix_inp(FELIX / "felix.inp")
    crystal = inp.apply_debye_waller(read_cif(FELIX / "felix.cif"))
    ref = np.load(FELIX / "I_p0p0p0_stack.npy")
    thick_nm = np.load(FELIX / "thickness_A.npy") / 10.0
    return inp, crystal, ref, thick_nm


def test_felix_input_settings(felix_case):
    inp, _, ref, thick_nm = felix_case
    kw = inp.simulation_kwargs()
    assert kw["size"] == ref.shape[-1] == 128
    np.testing.assert_allclose(kw["thickness_nm"], thick_nm)


# Z [%] at 50, 100, 150 nm, about 4x the values measured (benchmarks/results/tolerances.json,
# "felix_agreement"): Felix's budget 0.0028, 0.0107, 0.0119 %; adaptive 0.0037, 0.0147, 0.0163 %
# (engine physics 2: weak-beam elimination of order 4, float32 eigensolve; it was 0.0025, 0.0084,
# 0.0095 % at order 2). The remaining difference is Felix's pool edge, U0 handling and per-pixel
# beam sets.
Z_MAX_PERCENT = {"felix": [0.011, 0.043, 0.048], "adaptive": [0.015, 0.059, 0.065]}


@pytest.mark.parametrize("budget", ["felix", "adaptive"])
def test_agrees_with_felix_si_001(felix_case, budget):
    inp, crystal, ref, thick_nm = felix_case
    kw = inp.simulation_kwargs()
    if budget == "adaptive":
        kw["strong_beams"] = None  # lacbed's converged default instead of IMinStrongBeams
    p = simulate_lacbed(crystal, **kw)
    assert p.intensities.shape == ref.shape
    z = 100 * z_score(p.intensities, ref)
    assert np.all(z <= Z_MAX_PERCENT[budget]), z
    # the mean absorption that Felix drops: lacbed's mean intensity is lower by about
    # exp(-2 pi t U'0 / K); measured ratio/factor - 1 = -0.34, -0.42, -0.53 % (Felix's budget)
    # and -0.21, -0.27, -0.33 % (adaptive): 2 % is ~4x the worst
    u0p = p.settings["U0_abs"][0]
    factor = np.exp(-2 * np.pi * 10 * thick_nm * u0p / p.settings["wavenumber"])
    assert np.all(factor < 0.95)  # the factor is large enough for the check to mean something
    ratio = p.intensities.mean(axis=(1, 2)) / ref.mean(axis=(1, 2))
    np.testing.assert_allclose(ratio, factor, rtol=0.02)


SRTIO3 = FELIX.parent / "SrTiO3_001_b200"
# Z [%] at 50, 100, 150 nm, 4x the values measured with the adaptive default (engine physics 2):
# 0.051, 0.099, 0.153 %. Felix's own budget (200 strong beams per pixel) is not run here: it costs
# minutes; the adaptive budget took 5.3 s of CPU.
Z_MAX_SRTIO3_PERCENT = [0.20, 0.40, 0.61]


def test_agrees_with_felix_srtio3_001():
    from lacbed.simulate.felix import read_felix_inp

    inp = read_felix_inp(SRTIO3 / "felix.inp")
    crystal = inp.apply_debye_waller(read_cif(SRTIO3 / "felix.cif"))
    ref = np.load(SRTIO3 / "I_p0p0p0_stack.npy")
    kw = inp.simulation_kwargs()
    np.testing.assert_allclose(kw["thickness_nm"], np.load(SRTIO3 / "thickness_A.npy") / 10.0)
    assert kw["half_width"] == 0.75 and kw["strong_beams"] == 200
    kw["strong_beams"] = None  # lacbed's converged default
    p = simulate_lacbed(crystal, **kw)
    assert p.intensities.shape == ref.shape == (3, 128, 128)
    z = 100 * z_score(p.intensities, ref)
    assert np.all(z <= Z_MAX_SRTIO3_PERCENT), z
