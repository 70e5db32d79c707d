"""U_g refinement by point-group orbits, with a complex factor for acentric reflections
(refine/structure.py notes; issue 13: "real and, for non-centrosymmetric crystals, imaginary
parts")."""

from __future__ import annotations

import numpy as np
import pytest

from lacbed.crystal import load_crystal
from lacbed.crystal.examples import example_path
from lacbed.errors import SettingsError
from lacbed.refine.structure import (
    PotentialTable,
    equivalents,
    is_centric,
    orbit,
    parse_fit,
    with_phases,
)

B_GAAS = {"Ga": 0.622, "As": 0.483}


@pytest.fixture(scope="module")
def gaas():
    return load_crystal(example_path("GaAs"))


@pytest.fixture(scope="module")
def gaas_table(gaas):
    from lacbed.simulate.plan import plan_lacbed

    return PotentialTable(plan_lacbed(gaas, [100.0], size=16, convergence_sample=0))


def _elastic(table, b, factors=None):
    """The elastic U_{g−h} of the table as an (n, n) array (absorptive part removed)."""
    v = table.table(b, factors or {})
    _, up = table._parts(b)
    return v - 1j * up[table.inv].reshape(table.n, table.n)


def _cells(table, hkls):
    """Mask of the (n, n) table cells whose g − h lies in ``hkls``."""
    keys = {tuple(h) for h in hkls}
    uniq = np.array([tuple(int(i) for i in h) in keys for h in table.uniq])
    return uniq[table.inv].reshape(table.n, table.n)


def test_gaas_orbits_and_centric_classes(gaas_table):
    ops = gaas_table.hkl_ops
    assert is_centric(ops, (2, 0, 0)) and is_centric(ops, (2, 2, 0))
    assert not is_centric(ops, (1, 1, 1)) and not is_centric(ops, (3, 1, 1))
    g, minus = orbit(ops, (1, 1, 1)), orbit(ops, (-1, -1, -1))
    assert len(g) == 4 and len(minus) == 4 and not g & minus
    assert g | minus == {tuple(h) for h in equivalents((1, 1, 1))}
    assert orbit(ops, (2, 0, 0)) == {tuple(h) for h in equivalents((2, 0, 0))}


def test_complex_factor_on_an_acentric_orbit(gaas_table):
    c = 1.03 * np.exp(1j * np.radians(3.0))
    u0 = _elastic(gaas_table, B_GAAS)
    u1 = _elastic(gaas_table, B_GAAS, {(1, 1, 1): c})
    v0, v1 = gaas_table.table(B_GAAS, {}), gaas_table.table(B_GAAS, {(1, 1, 1): c})
    ops = gaas_table.hkl_ops
    in_g = _cells(gaas_table, orbit(ops, (1, 1, 1)))
    in_m = _cells(gaas_table, orbit(ops, (-1, -1, -1)))
    assert in_g.sum() > 0 and in_m.sum() > 0
    # Friedel's law for the elastic part: U_{−g} = U_g*, so U is Hermitian, before and after
    assert np.abs(u0 - u0.conj().T).max() < 1e-15
    assert np.abs(u1 - u1.conj().T).max() < 1e-15
    # only the 111 orbit and its Friedel mates change, and only their elastic part: the
    # absorptive part V − U is the same everywhere
    assert np.all(v1[~(in_g | in_m)] == v0[~(in_g | in_m)])
    assert np.abs((v1 - u1) - (v0 - u0)).max() < 1e-15
    assert np.allclose(u1[in_g], c * u0[in_g], rtol=1e-13, atol=0)
    assert np.allclose(u1[in_m], np.conj(c) * u0[in_m], rtol=1e-13, atol=0)
    # equivalent reflections differ by fixed phases: every member changes by the same factor
    ratio = u1[in_g] / u0[in_g]
    assert np.ptp(ratio.real) < 1e-13 and np.ptp(ratio.imag) < 1e-13


@pytest.mark.parametrize("hkl", [(2, 0, 0), (1, 1, 1), (2, 2, 0), (3, 1, 1)])
def test_real_factor_reproduces_the_permutation_family(gaas_table, hkl):
    """-43m: the orbits of g and −g are every ±permutation, so a real factor changes exactly
    what lacbed ≤ 0.2 changed (U × f on :func:`equivalents`)."""
    u, up = gaas_table._parts(B_GAAS)
    fam = np.array([tuple(h) in {tuple(e) for e in equivalents(hkl)} for h in gaas_table.uniq])
    old = (np.where(fam, u * 1.05, u) + 1j * up)[gaas_table.inv].reshape(gaas_table.n, -1)
    assert np.array_equal(gaas_table.table(B_GAAS, {hkl: 1.05}), old)


def test_pyrite_swapped_indices_are_not_equivalent():
    """Pa-3 (point group m-3): cyclic permutations only, so (1, 2, 3) and (2, 1, 3) lie in
    different orbits; the pool (|l| ≤ 1 at [001]) holds (2, 3, 1) and (3, 2, 1), whose U_g
    differ, and refining U_231 leaves U_321 unchanged (lacbed ≤ 0.2 scaled both)."""
    from lacbed.simulate.plan import plan_lacbed

    cr = load_crystal(example_path("FeS2"))
    table = PotentialTable(plan_lacbed(cr, [100.0], size=16, convergence_sample=0))
    ops = table.hkl_ops
    assert (2, 1, 3) not in orbit(ops, (1, 2, 3)) and (3, 1, 2) in orbit(ops, (1, 2, 3))
    assert (3, 2, 1) not in orbit(ops, (2, 3, 1))
    assert is_centric(ops, (1, 2, 3))  # m-3 holds the inversion
    b = {el: float(np.mean(cr.b_iso[[s == el for s in cr.symbols]])) for el in set(cr.symbols)}
    v0, v1 = table.table(b, {}), table.table(b, {(2, 3, 1): 1.1})
    c231, c321 = _cells(table, [(2, 3, 1)]), _cells(table, [(3, 2, 1)])
    assert c231.any() and c321.any()
    assert abs(v0[c231][0].real - v0[c321][0].real) > 0.01  # not equivalent: different U_g
    assert np.all(v1[c321] == v0[c321])
    assert np.allclose(v1[c231].real, 1.1 * v0[c231].real, rtol=1e-13)
    assert np.all(v1[c231].imag == v0[c231].imag)  # absorptive part unchanged
    with pytest.raises(SettingsError, match="centric"):
        table.table(b, {(2, 3, 1): 1.0 + 0.1j})


def test_parameters_per_reflection(gaas):
    spec = with_phases(parse_fit("thickness,Ug:200,Ug:111", ["Ga", "As"]), gaas)
    assert spec.acentric == ((1, 1, 1),)
    assert spec.names == ["thickness", "Ug:200", "Ug:111", "Ug:111:im"]
    si = load_crystal(example_path("Si"))
    assert with_phases(parse_fit("Ug:111", ["Si"]), si).names == ["Ug:111"]


def test_starting_values_for_the_imaginary_part(gaas):
    from lacbed.refine.fit import _starts

    spec = with_phases(parse_fit("Ug:200,Ug:111", ["Ga", "As"]), gaas)
    _, f0 = _starts(gaas, spec, {"Ug:111": 0.9, "Ug:111:im": 0.02, "Ug:200": 1.1})
    assert f0[(1, 1, 1)] == complex(0.9, 0.02) and f0[(2, 0, 0)] == 1.1
    assert _starts(gaas, spec, None)[1][(1, 1, 1)] == complex(1.0, 0.0)
    with pytest.raises(SettingsError, match="centric") as err:
        _starts(gaas, spec, {"Ug:200:im": 0.1})
    assert "\n" not in str(err.value)
    with pytest.raises(SettingsError, match="unknown starting values"):
        _starts(gaas, spec, {"Ug:220:im": 0.1})


def test_report_of_a_complex_factor():
    """Re and Im uncertainties are the linear transform of the (α, β) covariance."""
    from lacbed.refine.fit import _report_ug

    u0 = complex(0.0427, 0.0478)
    names = ["thickness", "Ug:111", "Ug:111:im"]
    cov = np.array([[0.01, 0.0, 0.0], [0.0, 4e-4, 1e-4], [0.0, 1e-4, 9e-4]])
    c = complex(1.02, 0.05)
    e = _report_ug(u0, names, cov, (1, 1, 1), c, complex(0.9, 0.0))
    assert e["U_g"] == pytest.approx([(u0 * c).real, (u0 * c).imag], rel=1e-14)
    assert (e["value"], e["value_im"], e["start"], e["start_im"]) == (1.02, 0.05, 0.9, 0.0)
    assert e["uncertainty"] == pytest.approx(0.02) and e["uncertainty_im"] == pytest.approx(0.03)
    var_re = u0.real**2 * 4e-4 + u0.imag**2 * 9e-4 - 2 * u0.real * u0.imag * 1e-4
    var_im = u0.imag**2 * 4e-4 + u0.real**2 * 9e-4 + 2 * u0.real * u0.imag * 1e-4
    assert e["U_g_re_uncertainty"] == pytest.approx(np.sqrt(var_re), rel=1e-12)
    assert e["U_g_im_uncertainty"] == pytest.approx(np.sqrt(var_im), rel=1e-12)
    g = np.array([c.real, c.imag]) / abs(c) * abs(u0)
    assert e["U_g_uncertainty"] == pytest.approx(np.sqrt(g @ cov[1:, 1:] @ g), rel=1e-12)
    # a centric reflection: one real factor, |U_g| uncertainty as before (σ_f |U_g⁰|)
    e = _report_ug(complex(0.03, 0.0), ["Ug:200"], np.array([[1e-4]]), (2, 0, 0), 1.05, 0.84)
    assert "value_im" not in e and e["U_g"] == pytest.approx([0.0315, 0.0])
    assert e["U_g_uncertainty"] == pytest.approx(0.03 * 0.01)
    assert e["U_g_re_uncertainty"] == pytest.approx(0.03 * 0.01) and e["U_g_im_uncertainty"] == 0


def test_cif_record_carries_both_parts():
    from types import SimpleNamespace

    from lacbed.refine.report import cif_record

    p = {"Ug:111": {"value": 1.02, "value_im": 0.05, "U_g": [0.04, 0.05],
                    "U_g_uncertainty": 1e-4, "U_g_re_uncertainty": 2e-4,
                    "U_g_im_uncertainty": 3e-4}}  # fmt: skip
    lines = cif_record(SimpleNamespace(z=0.01, parameters=p))
    row = lines[-1].split()
    assert row[0] == "111" and len(row) == 8
    assert [float(x) for x in row[1:]] == [0.04, 0.05, 1e-4, 1.02, 2e-4, 3e-4, 0.05]
    assert "_lacbed_refine_Ug_imag_uncertainty_invA2" in lines


def test_cli_start_for_the_imaginary_part():
    from lacbed.cli.refine import parse_start

    assert parse_start(["Ug:111=0.9;Ug:111:im=-0.02"]) == {"Ug:111": 0.9, "Ug:111:im": -0.02}


def test_refine_refuses_an_imaginary_start_for_a_centric_reflection(gaas):
    """The check runs before any simulation (one line, a SettingsError)."""
    from lacbed.refine import Experiment, refine

    yy, xx = np.indices((40, 40))
    img = np.where((yy - 20) ** 2 + (xx - 20) ** 2 < 15**2, 2.0 + np.cos(0.7 * xx), 1.0)
    with pytest.raises(SettingsError, match=r"Ug:200:im: 200 is centric") as err:
        refine(Experiment(img, 0.01), gaas, fit="thickness,Ug:200,Ug:111",
               thickness_range=(50, 300), start={"Ug:200:im": 0.1})  # fmt: skip
    assert "\n" not in str(err.value)
