"""felix.inp reader: parse by label, Felix's flag meanings, unsupported values name the key."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from lacbed.errors import SettingsError
from lacbed.simulate.felix import (
    FelixInput,
    felix_thicknesses,
    parse_felix_inp,
    read_felix_inp,
)

# the Felix Si [001] run's input ships with the tests (tests/data/PROVENANCE.md)
REF = Path(__file__).resolve().parent / "data" / "felix" / "Si_001"
REF_INP = REF / "felix.inp"


def _lines() -> list[str]:
    return REF_INP.read_text().splitlines()


def test_reference_inp_values():
    f = read_felix_inp(REF_INP)
    assert f.pixel_count == 64 and f.size == 128
    assert f.half_width == 0.75  # ROuterConvergenceAngle [1/Å], docs/physics.md §10
    assert f.voltage_kv == 200.0  # label "RAcceleratingVoltage (kV)" with a space
    assert f.strong_beams == 100
    assert f.weak_beams == 0
    assert f.max_g == 3.0
    assert f.absorption == "bird-king"  # IAbsorbFLAG = 2
    assert f.scattering == "kirkland"  # IScatterFactorMethodFLAG = 0
    assert f.kappa == pytest.approx(0.078)  # RAbsorptionPer = 7.8 %
    assert f.debye_waller_constant == 0.0
    # Felix's rule gives 500, 1000, 1500 Å; the reference stack is at exactly these
    np.testing.assert_array_equal(f.thickness_A, np.load(REF / "thickness_A.npy"))
    assert f.thickness_nm == (50.0, 100.0, 150.0)
    kw = f.simulation_kwargs()
    assert kw["size"] == 128 and kw["voltage_kv"] == 200.0 and kw["half_width"] == 0.75
    assert kw["strong_beams"] == 100 and kw["max_g"] == 3.0 and kw["b_iso"] is None
    np.testing.assert_array_equal(kw["thickness_nm"], [50.0, 100.0, 150.0])


def test_reordered_and_extra_keys_parse_the_same(tmp_path, caplog):
    ref = read_felix_inp(REF_INP)
    body = [ln for ln in _lines() if "=" in ln and not ln.lstrip().startswith("#")]
    rng = np.random.default_rng(0)
    shuffled = [body[i] for i in rng.permutation(len(body))]
    p1 = tmp_path / "reordered.inp"
    p1.write_text("\n".join(shuffled) + "\n")
    assert read_felix_inp(p1) == ref

    p2 = tmp_path / "extra.inp"
    extra = ["IMadeUpFLAG = 3   # a key Felix never had", "", "   # just a comment"]
    p2.write_text("\n".join(extra + _lines() + ["RSomethingNew = 1.0"]) + "\n")
    with caplog.at_level(logging.WARNING, logger="lacbed.simulate.felix"):
        f2 = read_felix_inp(p2)
    assert f2 == ref
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "IMadeUpFLAG" in warned and "RSomethingNew" in warned
    # refinement-only keys of the real file are not warned about
    assert "IRefineModeFLAG" not in warned and "RSimplexLengthScale" not in warned


def _with(key: str, value: str) -> str:
    out = []
    for ln in _lines():
        if ln.split("=")[0].split()[:1] == [key]:
            ln = f"{key} = {value}"
        out.append(ln)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        # any zone axis is read now (tests/test_zone_axis.py); impossible directions are refused
        ("IIncidentBeamDirection", "[0,0,0]"),
        ("IXDirection", "[0,0,2]"),
        ("INormalDirection", "[0,0,-1]"),
        ("IAbsorbFLAG", "5"),
        ("IScatterFactorMethodFLAG", "7"),
    ],
)
def test_unsupported_value_names_key(tmp_path, key, value):
    p = tmp_path / "felix.inp"
    p.write_text(_with(key, value))
    with pytest.raises(SettingsError, match=key):
        read_felix_inp(p)


def test_direction_multiple_is_accepted(tmp_path):
    p = tmp_path / "felix.inp"
    p.write_text(_with("IIncidentBeamDirection", "[0, 0, 2]"))
    assert read_felix_inp(p).size == 128


@pytest.mark.parametrize(
    ("flag", "scattering"),
    [("0", "kirkland"), ("1", "peng"), ("2", "doyle-turner"), ("3", "lobato")],
)
def test_scatter_flag_numbering(tmp_path, flag, scattering):
    p = tmp_path / "felix.inp"
    p.write_text(_with("IScatterFactorMethodFLAG", flag))
    assert read_felix_inp(p).scattering == scattering


@pytest.mark.parametrize(
    ("flag", "model"), [("0", "none"), ("1", "proportional"), ("2", "bird-king")]
)
def test_absorb_flag_numbering(tmp_path, flag, model):
    p = tmp_path / "felix.inp"
    p.write_text(_with("IAbsorbFLAG", flag))
    assert read_felix_inp(p).absorption == model


def test_rglimit_zero_means_default_pool(tmp_path):
    p = tmp_path / "felix.inp"
    p.write_text(_with("RgLimit", "0.0"))
    assert read_felix_inp(p).max_g is None


def test_missing_required_key(tmp_path):
    p = tmp_path / "felix.inp"
    p.write_text("\n".join(ln for ln in _lines() if not ln.startswith("IPixelCount")))
    with pytest.raises(SettingsError, match="IPixelCount"):
        read_felix_inp(p)


def test_parse_rejects_duplicates_and_lines_without_value():
    with pytest.raises(SettingsError, match="twice"):
        parse_felix_inp("IPixelCount = 64\nIPixelCount = 32\n")
    with pytest.raises(SettingsError, match="Label = value"):
        parse_felix_inp("IPixelCount 64\n")
    assert parse_felix_inp("RAcceleratingVoltage (kV) = 200.0  # kV\n") == {
        "RAcceleratingVoltage": "200.0"
    }


def test_felix_thickness_rule():
    np.testing.assert_array_equal(felix_thicknesses(500, 1500, 500), [500, 1000, 1500])
    # final not on the grid: Felix's integer count stops below it
    np.testing.assert_array_equal(felix_thicknesses(500, 1400, 500), [500, 1000])
    np.testing.assert_array_equal(felix_thicknesses(800, 800, 100), [800])
    np.testing.assert_array_equal(felix_thicknesses(800, 700, 0), [800])


def test_debye_waller_rule():
    """Felix keeps the CIF's B and replaces only B outside [0, 10] Å² by the constant."""
    from lacbed.crystal import Crystal

    c = Crystal(
        a=5.431,
        symbols=("Si", "Si"),
        positions=np.array([[0, 0, 0], [0.25, 0.25, 0.25]]),
        occupancies=np.ones(2),
        b_iso=np.array([0.4632, 12.0]),
        space_group_number=227,
        space_group="Fd-3m",
    )
    f = FelixInput(
        pixel_count=8,
        half_width=0.5,
        voltage_kv=200,
        thickness_nm=(10.0,),
        debye_waller_constant=0.5,
    )
    np.testing.assert_array_equal(f.apply_debye_waller(c).b_iso, [0.4632, 0.5])
    ok = c.with_b_iso(0.3)
    assert f.apply_debye_waller(ok) is ok


def test_shipped_example_input_runs(tmp_path, capsys):
    """The example felix.inp in the package runs with `lacbed simulate --felix-inp`."""
    from importlib import resources

    from lacbed.cli import main
    from lacbed.crystal import example_path

    inp = resources.files("lacbed").joinpath("examples", "felix", "felix.inp")
    f = parse_felix_inp(inp.read_text(encoding="utf-8"))
    assert f["IPixelCount"] == "32" and f["IIncidentBeamDirection"] == "[0,0,1]"
    with resources.as_file(inp) as path:
        settings = read_felix_inp(path)
        assert settings.size == 64 and settings.thickness_nm == (50.0, 100.0, 150.0)
        out = tmp_path / "si.npy"
        with pytest.raises(SystemExit) as exc:
            main(["simulate", "--felix-inp", str(path), str(example_path("Si")), "-o", str(out)])
    assert exc.value.code in (0, None)
    arr = np.load(out)
    assert arr.shape == (3, 64, 64) and "3×64×64 float32" in capsys.readouterr().out
    # Si [001] is 4mm: the transpose is the same pattern (fast-path rounding in float32)
    np.testing.assert_allclose(arr, np.swapaxes(arr, 1, 2), atol=1e-5)
