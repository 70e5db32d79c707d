"""`lacbed potential` and `lacbed factors`: the CLI contract and bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from lacbed.cli import main
from lacbed.crystal import read_cif, write_cif
from lacbed.scattering import projected_potential, structure_factors

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "lacbed" / "examples"
CIFS = Path(__file__).resolve().parent / "data" / "cif"
SI = EXAMPLES / "Si.cif"
KEYS = ["h", "k", "l", "g", "V_re", "V_im", "U_re", "U_im", "Uabs_re", "Uabs_im", "xi_nm"]


def run(args, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_potential_npy(tmp_path, capsys):
    out = tmp_path / "pot.npy"
    code, _, _ = run(["potential", SI, "-o", out], capsys)
    assert code == 0
    arr = np.load(out)
    assert arr.shape == (128, 128) and arr.dtype == np.float32
    ref = projected_potential(read_cif(SI), 128)
    np.testing.assert_allclose(arr, ref.astype(np.float32), rtol=0, atol=0)


def test_potential_size_and_png(tmp_path, capsys):
    code, _, _ = run(["potential", SI, "-o", tmp_path / "p.npy", "--size", "48"], capsys)
    assert code == 0 and np.load(tmp_path / "p.npy").shape == (48, 48)
    png = tmp_path / "pot.png"
    code, _, _ = run(["potential", SI, "-o", png, "--size", "32"], capsys)
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*part*"))  # no temporary files left


def test_potential_debye_waller_option(tmp_path, capsys):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert run(["potential", SI, "-o", a, "--size", "16", "--debye-waller", "1.5"], capsys)[0] == 0
    assert run(["potential", SI, "-o", b, "--size", "16"], capsys)[0] == 0
    # same mean (c·V₀ does not depend on B), sharper atoms for the smaller CIF B
    assert np.load(a).mean() == pytest.approx(np.load(b).mean(), rel=1e-6)
    assert np.load(a).max() < np.load(b).max()


def _csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_factors_csv_stdout(capsys):
    code, out, _ = run(["factors", SI, "--max-g", "0.6", "--sort", "g"], capsys)
    assert code == 0
    rows = _csv_rows(out)
    assert list(rows[0]) == KEYS
    assert (rows[0]["h"], rows[0]["k"], rows[0]["l"]) == ("0", "0", "0")
    g = np.array([float(r["g"]) for r in rows])
    assert np.all(np.diff(g) >= 0) and g.max() <= 0.6
    # every hkl within the limit is listed, the zero ones (Si 200) included, with ξ = inf
    limit = (0.6 * read_cif(SI).a) ** 2
    r = range(-4, 5)
    n_expected = sum(1 for h in r for k in r for m in r if h * h + k * k + m * m <= limit)
    assert len(rows) == n_expected
    r200 = next(r for r in rows if (r["h"], r["k"], r["l"]) == ("2", "0", "0"))
    assert float(r200["V_re"]) == 0.0 and r200["xi_nm"] == "inf"
    r220 = next(r for r in rows if (r["h"], r["k"], r["l"]) == ("2", "2", "0"))
    sf = structure_factors(read_cif(SI), [2, 2, 0])
    assert float(r220["U_re"]) == pytest.approx(sf.U[0].real, rel=1e-9)  # 10 figures printed
    assert float(r220["Uabs_re"]) == pytest.approx(sf.U_abs[0].real, rel=1e-9)


def test_factors_json_file_and_options(tmp_path, capsys):
    out = tmp_path / "f.json"
    args = ["factors", SI, "--voltage", "300", "--scattering", "lobato", "--absorption"]
    args += ["proportional", "--kappa", "0.1", "--max-g", "0.7", "--debye-waller", "0.3"]
    args += ["--format", "json", "-o", out, "--nonzero"]
    code, stdout, _ = run(args, capsys)
    assert code == 0 and stdout == ""
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and set(rows[0]) == set(KEYS)
    hkl = np.array([[r["h"], r["k"], r["l"]] for r in rows])
    sf = structure_factors(
        read_cif(SI),
        hkl,
        voltage=300e3,
        scattering="lobato",
        absorption="proportional",
        kappa=0.1,
        b_iso=0.3,
    )
    np.testing.assert_allclose([r["U_re"] for r in rows], sf.U.real, rtol=1e-15, atol=0)
    np.testing.assert_allclose([r["Uabs_re"] for r in rows], 0.1 * sf.U.real, rtol=1e-15)
    np.testing.assert_allclose([r["xi_nm"] for r in rows], sf.xi_nm, rtol=1e-15)
    assert all(r["U_re"] != 0 or r["U_im"] != 0 for r in rows)  # --nonzero


def test_factors_format_from_suffix(tmp_path, capsys):
    out = tmp_path / "f.json"
    assert run(["factors", SI, "--max-g", "0.4", "-o", out], capsys)[0] == 0
    assert json.loads(out.read_text())[0]["h"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["potential", "missing.cif", "-o", "{out}.npy"], "no such file"),
        (["potential", CIFS / "bad_malformed.cif", "-o", "{out}.npy"], ""),
        (["potential", CIFS / "bad_no_atoms.cif", "-o", "{out}.npy"], ""),
        (["potential", CIFS / "bad_unknown_element.cif", "-o", "{out}.npy"], ""),
        # a non-cubic crystal is projected since issue 12 (tests/test_crystal_systems.py)
        (
            [
                "potential",
                CIFS / "bad_hexagonal_mg.cif",
                "-o",
                "{out}.png",
                "--zone-axis",
                "0",
                "0",
                "0",
            ],
            "--zone-axis",
        ),
        (["potential", SI, "-o", "{out}.npy", "--size", "4"], "--size"),
        (["potential", SI, "-o", "{out}.txt"], ".npy or .png"),
        (["potential", SI, "-o", "{out}.npy", "--debye-waller", "-1"], "--debye-waller"),
        (["factors", "missing.cif", "-o", "{out}.csv"], "no such file"),
        (["factors", SI, "--max-g", "0", "-o", "{out}.csv"], "--max-g"),
        (["factors", SI, "--max-g", "-2", "-o", "{out}.csv"], "--max-g"),
        (["factors", SI, "--max-g", "50", "-o", "{out}.csv"], "allowed"),
        (["factors", SI, "--scattering", "foo", "-o", "{out}.csv"], "--scattering"),
        (["factors", SI, "--absorption", "foo", "-o", "{out}.csv"], "--absorption"),
        (["factors", SI, "--format", "xml", "-o", "{out}.csv"], "--format"),
        (["factors", SI, "--voltage", "0", "-o", "{out}.csv"], "--voltage"),
    ],
)
def test_bad_input_one_line_error_no_file(tmp_path, capsys, args, message):
    args = [str(a).replace("{out}", str(tmp_path / "out")) for a in args]
    code, out, err = run(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lacbed: error:"), err
    assert "Traceback" not in err and out == ""
    assert message.lower() in lines[0].lower()
    assert list(tmp_path.iterdir()) == []  # no output file, not even a partial one


def test_two_settings_same_magnitudes(tmp_path):
    """The same structure read from CIFs in different settings gives the same |U_g|."""
    hkl = np.array([[h, k, m] for h in range(-4, 5) for k in range(-4, 5) for m in range(0, 5)])
    ref = structure_factors(read_cif(CIFS / "felix_si_f-43m.cif"), hkl)
    for name in ("si_origin1_hm.cif", "si_origin2_icsd.cif", "si_shifted.cif", "si_primitive.cif"):
        crystal = read_cif(CIFS / name).with_b_iso(0.4632)
        sf = structure_factors(crystal, hkl)
        # 1e-6: the files print a and the coordinates to 5-8 figures (the primitive cell's
        # a/√2 = 3.84030 Å gives a ~3e-8 relative change of the volume); measured 6e-8
        np.testing.assert_allclose(np.abs(sf.U), np.abs(ref.U), rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(np.abs(sf.U_abs), np.abs(ref.U_abs), rtol=1e-6, atol=1e-12)


def test_origin_shift_in_cif_translates_image(tmp_path):
    """A CIF written with another origin gives the same image up to a translation."""
    crystal = read_cif(EXAMPLES / "GaAs.cif")
    size = 64
    write_cif(crystal.shifted([5 / size, 12 / size, 0.3]), tmp_path / "moved.cif")
    img = projected_potential(crystal, size)
    moved = projected_potential(read_cif(tmp_path / "moved.cif"), size)
    # the reader may move the origin back (canonical origin): accept any whole-pixel roll
    best = min(
        np.max(np.abs(np.roll(moved, (i, j), axis=(0, 1)) - img))
        for i in range(size)
        for j in range(size)
    )
    # 1e-4 V·Å: the CIF stores coordinates to a finite number of digits
    assert best < 1e-4


def test_factors_strongest_first_zeros_last(tmp_path, capsys):
    out = tmp_path / "f.json"
    assert run(["factors", SI, "--max-g", "1.2", "-o", out], capsys)[0] == 0
    rows = json.loads(out.read_text())
    strength = np.array([abs(complex(r["U_re"], r["U_im"])) for r in rows])
    # non-increasing (10-figure ties of symmetry-equivalent reflections aside)
    assert np.all(np.diff(strength) <= 1e-10 * strength[0])
    first = [(r["h"], r["k"], r["l"]) for r in rows[:9]]
    assert first[0] == (0, 0, 0) and {tuple(sorted(map(abs, h))) for h in first[1:]} == {(1, 1, 1)}
    n_zero = int(np.sum(strength == 0))
    assert n_zero > 0 and np.all(strength[-n_zero:] == 0)  # forbidden reflections at the end
    # --sort g: the |g| order, 000 first
    assert run(["factors", SI, "--max-g", "1.2", "--sort", "g", "-o", out], capsys)[0] == 0
    g = np.array([r["g"] for r in json.loads(out.read_text())])
    assert np.all(np.diff(g) >= -1e-12) and len(g) == len(rows)  # |g| to round-off


def test_factors_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = run(["factors", SI, "-o", blocker / "f.csv"], capsys)
    assert code == 2 and "cannot write" in err and len(err.strip().splitlines()) == 1
