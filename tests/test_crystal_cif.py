"""Reading and writing CIFs: symmetry expansion, settings, occupancies, ADPs, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lacbed.crystal import Crystal, read_cif, write_cif
from lacbed.crystal.standardise import DEFAULT_B
from lacbed.errors import CrystalError, NonCubicError

DATA = Path(__file__).parent / "data" / "cif"
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "lacbed" / "examples"

# name, a [Å], atoms per conventional cell, space group number, point group, composition
EXAMPLE_TABLE = [
    ("Si", 5.431, 8, 227, "m-3m", {"Si": 8}),
    ("GaAs", 5.6533, 8, 216, "-43m", {"Ga": 4, "As": 4}),
    ("SrTiO3", 3.905, 5, 221, "m-3m", {"Sr": 1, "Ti": 1, "O": 3}),
    ("MgO", 4.2112, 8, 225, "m-3m", {"Mg": 4, "O": 4}),
    ("Cu", 3.6149, 4, 225, "m-3m", {"Cu": 4}),
    ("Al", 4.0495, 4, 225, "m-3m", {"Al": 4}),
    ("NaCl", 5.6402, 8, 225, "m-3m", {"Na": 4, "Cl": 4}),
    ("CaF2", 5.4626, 12, 225, "m-3m", {"Ca": 4, "F": 8}),
    ("FeS2", 5.417, 12, 205, "m-3", {"Fe": 4, "S": 8}),
    ("FeSi", 4.489, 8, 198, "23", {"Fe": 4, "Si": 4}),
]


def _min_distance(c: Crystal) -> float:
    """Shortest interatomic distance [Å] between distinct positions (periodic)."""
    d = c.positions[:, None, :] - c.positions[None, :, :]
    d -= np.round(d)
    r = np.linalg.norm(d * c.a, axis=-1)
    r[r < 1e-6] = np.inf  # same position (mixed site) or self
    return float(r.min())


@pytest.mark.parametrize(("name", "a", "n", "sg", "pg", "comp"), EXAMPLE_TABLE)
def test_examples(name, a, n, sg, pg, comp):
    c = read_cif(EXAMPLES / f"{name}.cif")
    assert c.a == pytest.approx(a, abs=1e-9)  # copied from the CIF text: exact
    assert c.n_sites == n
    assert c.space_group_number == sg
    assert c.point_group == pg
    assert c.composition == pytest.approx(comp)
    assert c.bright_field_symmetry == ("2mm" if pg in ("m-3", "23") else "4mm")
    assert np.all(c.b_iso > 0.1) and np.all(c.b_iso < 2.0)  # realistic room-temperature B [Å²]
    assert np.all(c.occupancies == 1.0)
    # no two atoms closer than a chemical bond: symmetry copies were merged, nothing overlaps
    assert _min_distance(c) > 1.5


def test_example_formulas():
    formulas = {n: read_cif(EXAMPLES / f"{n}.cif").formula for n, *_ in EXAMPLE_TABLE}
    assert formulas["GaAs"] == "GaAs"
    assert formulas["SrTiO3"] == "SrTiO3"
    assert formulas["NaCl"] == "NaCl"
    assert formulas["CaF2"] == "CaF2"
    assert formulas["FeS2"] == "FeS2"


def test_si_positions_and_b():
    c = read_cif(EXAMPLES / "Si.cif")
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    expected = np.vstack([fcc, fcc + 0.25])
    got = {tuple(p) for p in np.round(c.positions, 9)}
    assert got == {tuple(p) for p in expected}
    assert np.allclose(c.b_iso, 0.4632)


def test_positions_sorted_deterministically():
    c = read_cif(EXAMPLES / "SrTiO3.cif")
    rows = [(s, *p) for s, p in zip(c.symbols, c.positions.tolist(), strict=True)]
    assert rows == sorted(rows)
    again = read_cif(EXAMPLES / "SrTiO3.cif")
    assert np.array_equal(again.positions, c.positions)
    assert again.symbols == c.symbols


def test_felix_si_f43m_with_96_symops():
    """Felix's Si CIF: diamond described in F-43m with two Si sites and 96 explicit operations."""
    c = read_cif(DATA / "felix_si_f-43m.cif")
    assert c.n_sites == 8
    assert c.composition == {"Si": 8.0}
    assert c.a == 5.431
    assert c.space_group_number == 227  # the atoms have the full diamond symmetry Fd-3m
    assert c.info["cif_space_group_number"] == 216
    assert np.allclose(c.b_iso, 0.4632)
    assert np.array_equal(c.positions, read_cif(EXAMPLES / "Si.cif").positions)


@pytest.mark.parametrize(
    "fname",
    [
        "si_origin1_hm.cif",  # origin choice 1, H-M symbol only
        "si_origin2_ambiguous.cif",  # origin choice 2, H-M symbol without the choice
        "si_origin2_icsd.cif",  # origin choice 2 marked 'Z', U_iso, a with s.u.
        "si_primitive.cif",  # primitive rhombohedral cell, alpha = 60 deg
        "si_shifted.cif",  # P 1 conventional cell with a shifted origin
    ],
)
def test_same_structure_in_other_settings(fname):
    ref = read_cif(EXAMPLES / "Si.cif")
    c = read_cif(DATA / fname)
    assert c.space_group_number == 227
    assert c.composition == pytest.approx({"Si": 8.0})
    # 1e-6 Å: the primitive cell's a = 3.840297 Å is 5.431/sqrt(2) rounded to 1e-6 Å
    assert c.a == pytest.approx(ref.a, abs=1e-6)
    assert np.allclose(c.b_iso, 0.4632, atol=1e-4)  # U_iso 0.005866 printed to 4 significant digits
    # the standardised cells coincide atom by atom (canonical origin)
    assert c.symbols == ref.symbols
    assert np.allclose(c.positions, ref.positions, atol=1e-6)


def test_origin_choice_recorded():
    c = read_cif(DATA / "si_origin2_ambiguous.cif")
    assert "origin choice 2" in c.info["cif_symmetry"]


def test_mixed_site_and_occupancy():
    c = read_cif(DATA / "ingaas_mixed.cif")
    assert c.n_sites == 12  # 4 Ga + 4 In sharing the 4 cation positions, 4 As
    assert c.composition == pytest.approx({"Ga": 2.4, "In": 1.6, "As": 4.0})
    ga = c.positions[np.array(c.symbols) == "Ga"]
    inn = c.positions[np.array(c.symbols) == "In"]
    assert {tuple(p) for p in ga.round(9)} == {tuple(p) for p in inn.round(9)}
    b = {s: set(c.b_iso[np.array(c.symbols) == s]) for s in ("Ga", "In", "As")}
    assert b == {"Ga": {0.6}, "In": {0.8}, "As": {0.5}}
    assert c.formula == "In0.4Ga0.6As"
    assert c.space_group_number == 216


def test_vacancies_charges_and_u_iso():
    c = read_cif(DATA / "fe1-xo_vacancy.cif")
    assert c.composition == pytest.approx({"Fe": 3.6, "O": 4.0})
    assert c.formula == "Fe0.9O"
    fe = np.array(c.symbols) == "Fe"
    assert np.allclose(c.occupancies[fe], 0.9)
    # B = 8 pi^2 U, kept to the 1e-4 Å² used to compare sites
    assert np.allclose(c.b_iso[fe], 8 * math.pi**2 * 0.0076, atol=1e-4)
    assert np.allclose(c.b_iso[~fe], 8 * math.pi**2 * 0.0089, atol=1e-4)


def test_u_aniso_to_b():
    c = read_cif(DATA / "fes2_uaniso.cif")
    s = np.array(c.symbols) == "S"
    # cubic cell: U_eq = (U11 + U22 + U33)/3 = 0.005 Å² (off-diagonal terms do not enter)
    assert np.allclose(c.b_iso[s], 8 * math.pi**2 * 0.005, atol=1e-4)
    assert np.allclose(c.b_iso[~s], 8 * math.pi**2 * 0.003, atol=1e-4)
    assert c.info["adp_source"]["S1"].startswith("U_aniso")


def test_u_equivalent_oblique_cell():
    """An isotropic U written as U^ij in an oblique (rhombohedral) cell has U_eq = U."""
    import gemmi

    from lacbed.crystal.cif import _u_equivalent

    cell = gemmi.UnitCell(3.84, 3.84, 3.84, 60, 60, 60)
    rc = cell.reciprocal()
    rec = np.array([rc.a, rc.b, rc.c])
    # reciprocal metric G*_ij = a*_i . a*_j; isotropic U: U^ij = U G*_ij / (a*_i a*_j)
    m = np.array(rc.orth.mat.tolist())
    gstar = m.T @ m
    u = 0.0123
    uij = u * gstar / np.outer(rec, rec)
    assert _u_equivalent(uij, cell) == pytest.approx(u, rel=1e-6)  # float rounding only


def test_missing_adp_gets_default_b():
    c = read_cif(DATA / "cu_no_adp.cif")
    assert np.all(c.b_iso == DEFAULT_B)
    assert c.info["default_b_sites"] == ["Cu1"]
    assert c.info["default_b_A2"] == DEFAULT_B
    assert c.composition == {"Cu": 4.0}  # element taken from the label 'Cu1'


@pytest.mark.parametrize(
    ("fname", "exc", "words"),
    [
        ("bad_malformed.cif", CrystalError, "not a readable CIF"),
        ("bad_no_atoms.cif", CrystalError, "no atoms"),
        ("bad_unknown_element.cif", CrystalError, "unknown element 'Xx'"),
        ("bad_hexagonal_mg.cif", NonCubicError, "hexagonal"),
        ("bad_tetragonal_tio2.cif", NonCubicError, "tetragonal"),
        ("bad_cubic_metric_low_symmetry.cif", NonCubicError, "P4/mmm"),
        ("bad_overfull_site.cif", CrystalError, "total occupancy"),
    ],
)
def test_bad_cifs(fname, exc, words):
    with pytest.raises(exc) as info:
        read_cif(DATA / fname)
    msg = str(info.value)
    assert words in msg
    assert "\n" not in msg  # one line for the CLI


def test_missing_file():
    with pytest.raises(FileNotFoundError) as info:
        read_cif(DATA / "does_not_exist.cif")
    assert info.value.filename.endswith("does_not_exist.cif")


def test_not_a_cif(tmp_path):
    p = tmp_path / "x.cif"
    p.write_bytes(b"\x00\x01 this is not a CIF\n")
    with pytest.raises(CrystalError):
        read_cif(p)


def test_block_selection(tmp_path):
    text = (DATA / "cu_no_adp.cif").read_text() + "\n" + (EXAMPLES / "Si.cif").read_text()
    p = tmp_path / "two.cif"
    p.write_text(text)
    assert read_cif(p).formula == "Cu"
    assert read_cif(p, block="Si").formula == "Si"
    assert read_cif(p, block=1).formula == "Si"
    with pytest.raises(CrystalError, match="no data block 'nope'"):
        read_cif(p, block="nope")


@pytest.mark.parametrize("name", [row[0] for row in EXAMPLE_TABLE])
def test_write_read_round_trip(tmp_path, name):
    c = read_cif(EXAMPLES / f"{name}.cif")
    out = write_cif(c, tmp_path / f"{name}.cif")
    back = read_cif(out)
    assert back.symbols == c.symbols
    assert np.allclose(back.positions, c.positions, atol=1e-9)  # written with 10 decimals
    assert np.allclose(back.b_iso, c.b_iso) and np.allclose(back.occupancies, c.occupancies)
    assert back.a == pytest.approx(c.a, abs=1e-8)
    assert back.space_group_number == c.space_group_number
    assert not list(tmp_path.glob(".*part*"))  # no temporary file left behind


def test_round_trip_mixed_and_shifted(tmp_path):
    c = read_cif(DATA / "ingaas_mixed.cif")
    back = read_cif(write_cif(c, tmp_path / "m.cif"))
    assert back.symbols == c.symbols and np.allclose(back.occupancies, c.occupancies)
    # a crystal with a user-chosen origin comes back standardised: same crystal, canonical origin
    shifted = c.shifted([0.1, 0.3, 0.05])
    back = read_cif(write_cif(shifted, tmp_path / "s.cif"))
    assert np.allclose(back.positions, c.positions, atol=1e-9)
    assert back.symbols == c.symbols


def test_declared_cubic_with_slightly_unequal_cell():
    """A CIF that declares Fm-3m with c 0.5 % off is read at the looser tolerance (0.1 Å)."""
    c = read_cif(DATA / "cu_rounded_cell.cif")
    assert c.space_group_number == 225
    assert c.info["symprec_A"] == 0.1
    # spglib's idealised cube keeps the volume: a = (a b c)^(1/3) to 1e-4 Å
    assert c.a == pytest.approx((3.6149 * 3.6149 * 3.633) ** (1 / 3), abs=1e-4)


def test_example_helpers():
    from lacbed.crystal import example_names, example_path

    names = example_names()
    assert {row[0] for row in EXAMPLE_TABLE} <= set(names)
    assert example_path("si") == example_path("Si.cif")
    assert read_cif(example_path("GaAs")).formula == "GaAs"
    with pytest.raises(CrystalError, match="available"):
        example_path("unobtainium")


def test_hall_symbol_only(tmp_path):
    text = (DATA / "cu_no_adp.cif").read_text()
    text = text.replace(
        "_symmetry_space_group_name_H-M 'F m -3 m'", "_space_group_name_Hall '-F 4 2 3'"
    )
    p = tmp_path / "hall.cif"
    p.write_text(text)
    c = read_cif(p)
    assert c.n_sites == 4 and c.space_group_number == 225
    assert c.info["cif_symmetry"].startswith("Hall")


def test_write_cif_symmetry_forms(tmp_path):
    c = read_cif(EXAMPLES / "GaAs.cif")
    text = write_cif(c, tmp_path / "std.cif").read_text()
    assert "_space_group_IT_number 216" in text
    assert text.count("\nGa") == 1 and text.count("\nAs") == 1  # asymmetric unit only
    # P 1: every atom listed
    text = write_cif(c, tmp_path / "p1.cif", symmetry=False).read_text()
    assert "'P 1'" in text and text.count("\nGa") == 4
    # an origin shifted by 1/8: the operations are written, but no (wrong) standard H-M symbol
    shifted = c.shifted([0.125, 0.0, 0.0])
    text = write_cif(shifted, tmp_path / "nonstd.cif").read_text()
    assert "_space_group_name_H-M_alt" not in text and "_space_group_symop_operation_xyz" in text
    for f in ("std.cif", "p1.cif", "nonstd.cif"):
        back = read_cif(tmp_path / f)
        assert back.symbols == c.symbols and np.allclose(back.positions, c.positions, atol=1e-9)


def test_write_cif_reports_a_symmetry_failure(tmp_path, monkeypatch, caplog):
    """If spglib fails, write_cif says so and writes every atom in P 1 (still exact)."""
    import logging

    import spglib

    si = read_cif(Path(__file__).parents[1] / "src" / "lacbed" / "examples" / "Si.cif")

    def fail(*args, **kwargs):
        raise RuntimeError("spglib exploded")

    with monkeypatch.context() as m:
        m.setattr(spglib, "get_symmetry_dataset", fail)
        with caplog.at_level(logging.WARNING, logger="lacbed.crystal.cif"):
            out = write_cif(si, tmp_path / "si.cif")
    assert "spglib exploded" in caplog.text and "P 1" in caplog.text
    assert "_space_group_IT_number 1" in out.read_text()
    assert read_cif(out).space_group_number == 227
