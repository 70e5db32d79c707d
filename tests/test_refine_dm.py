"""Gatan DigitalMicrograph .dm3/.dm4 experiments (lacbed.refine.experiment, through RosettaSciIO).

The files under tests/data/gatan/ are genuine DigitalMicrograph files from the HyperSpy 1.6.5
test suite, unchanged (tests/data/PROVENANCE.md). The expected values come from outside the
reader: the 2×2 test images hold [[1, 2], [3, 4]] as written by the DigitalMicrograph script that
made them, the diffraction pattern's beam energy and camera length are those HyperSpy's own tests
assert, and its pixels and scale are found byte for byte in the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lacbed.crystal.examples import example_path
from lacbed.errors import LacbedError
from lacbed.refine import load_experiment
from lacbed.refine.experiment import _read, calibration_from_axes

GATAN = Path(__file__).resolve().parent / "data" / "gatan"
DIFFRACTION = GATAN / "dm3_2D_data" / "test_diffraction_pattern.dm3"
STEM = GATAN / "dm3_2D_data" / "test_STEM_image.dm3"
#: The diffraction pattern's axis scale as DigitalMicrograph stores it (float32) [1/nm per px].
DP_SCALE_NM = 0.17443285882472992


def test_diffraction_pattern_and_its_calibration():
    raw = DIFFRACTION.read_bytes()
    exp = load_experiment(DIFFRACTION)
    assert exp.image.shape == (87, 87) and exp.image.dtype == np.float64
    # the pixels are the file's little-endian int32 data in row-major order, unchanged
    assert np.array_equal(exp.image, np.round(exp.image))
    assert raw.find(exp.image.astype("<i4").tobytes()) > 0
    # the calibration is the file's scale, 1/nm → 1/Å exactly
    assert np.float32(DP_SCALE_NM).tobytes() in raw
    assert exp.calibration_source == "metadata"
    assert exp.calibration == pytest.approx(DP_SCALE_NM / 10, rel=1e-12)
    axes = exp.metadata["axes"]
    assert [(ax["name"], ax["units"], ax["size"]) for ax in axes] == [
        ("y", "1/nm", 87),
        ("x", "1/nm", 87),
    ]
    assert all(ax["scale"] == pytest.approx(DP_SCALE_NM, rel=1e-12) for ax in axes)
    inst = exp.metadata["instrument"]
    assert inst["beam_energy_kv"] == pytest.approx(200.0)
    assert inst["camera_length_mm"] == pytest.approx(320.0)  # TEM diffraction mode
    assert inst["microscope"] == "FEI Tecnai" and inst["imaging_mode"] == "DIFFRACTION"
    assert "voltage_kv_used" not in exp.metadata  # 200 kV agrees: no warning (warnings are errors)
    # --calibration overrides the file's
    given = load_experiment(DIFFRACTION, calibration=0.02, calibration_unit="1/A")
    assert given.calibration == 0.02 and given.calibration_source == "option"


def test_a_different_beam_energy_is_warned_about_and_recorded():
    with pytest.warns(UserWarning, match="recorded at 200 kV but the refine uses 300 kV"):
        exp = load_experiment(DIFFRACTION, voltage_kv=300.0)
    assert exp.metadata["instrument"]["beam_energy_kv"] == pytest.approx(200.0)
    assert exp.metadata["voltage_kv_used"] == 300.0
    assert exp.calibration == pytest.approx(DP_SCALE_NM / 10, rel=1e-12)  # 1/nm: λ plays no part


def test_dm4_image_values_and_type():
    # NewImage("test", 1, 2, 2) (int16) with im[0,0]=1, im[0,1]=2, im[1,0]=3, im[1,1]=4 in DM's
    # [top, left, bottom, right] = [row, column] order
    img, axes, _ = _read(GATAN / "dm4_2D_data" / "test-1.dm4")
    assert img.dtype == np.int16
    assert np.array_equal(img, [[1, 2], [3, 4]])
    assert [ax["units"] for ax in axes] == ["", ""]
    with pytest.raises(LacbedError, match="too small"):  # 2 × 2 pixels
        load_experiment(GATAN / "dm4_2D_data" / "test-1.dm4", calibration=0.01)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("dm4_2D_data/test-3.dm4", r"test-3.dm4 holds complex data \(complex64"),
        ("dm4_2D_data/test-23.dm4", "test-23.dm4 holds an RGB image"),
        ("dm3_1D_data/test-1.dm3", r"holds a 1-D signal of shape \(2,\) \(a spectrum"),
        (
            "dm_stackbuilder_plugin/test_stackbuilder_imagestack.dm3",
            r"holds a 3-D signal of shape \(3, 2, 16\) \(a stack",
        ),
    ],
)
def test_not_one_real_image_is_refused_in_one_line(name, match):
    with pytest.raises(LacbedError, match=match) as err:
        load_experiment(GATAN / name, calibration=0.01)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("keep", [0, 100, 96_354])  # empty, the header only, half of it
def test_truncated_file_is_one_line(tmp_path, keep):
    cut = tmp_path / "cut.dm3"
    cut.write_bytes(DIFFRACTION.read_bytes()[:keep])
    with pytest.raises(LacbedError, match=r"cannot read the Gatan file cut.dm3 \(truncated") as err:
        load_experiment(cut)
    assert "\n" not in str(err.value)


def test_several_signals_are_refused(monkeypatch):
    # a genuine multi-signal file (HyperSpy's multi_signal.dm3) is 690 kB: the reader's answer
    # for it, a list of two signals, is built from the diffraction pattern read twice
    import rsciio.digitalmicrograph as dm

    signals = dm.file_reader(str(DIFFRACTION))
    monkeypatch.setattr(dm, "file_reader", lambda *a, **k: signals * 2)
    with pytest.raises(LacbedError, match="holds 2 images or signals; export the LACBED pattern"):
        load_experiment(DIFFRACTION)


def test_real_space_units_need_the_calibration_option():
    with pytest.raises(LacbedError, match=r"its axes are in nm, not 1/nm.*--calibration"):
        load_experiment(STEM)
    exp = load_experiment(STEM, calibration=0.5, calibration_unit="1/nm")
    assert exp.image.shape == (68, 68) and exp.calibration == pytest.approx(0.05)
    assert exp.calibration_source == "option"
    assert exp.metadata["axes"][0]["units"] == "nm"
    assert exp.metadata["instrument"]["camera_length_mm"] == pytest.approx(135.0)  # STEM
    assert exp.metadata["instrument"]["microscope"] == "FEI Titan"


@pytest.mark.parametrize(
    ("unit", "per_a"),
    [("1/nm", 0.05), ("nm^-1", 0.05), ("nm-1", 0.05), ("1/Å", 0.5), ("1/\u212b", 0.5),
     ("Å^-1", 0.5), ("µm", None), ("nm", None), ("", None)],
)  # fmt: skip
def test_axis_unit_spellings(unit, per_a):
    cal = calibration_from_axes([{"scale": 0.5, "units": unit}] * 2, 0.02508)
    assert cal == (None if per_a is None else pytest.approx(per_a))


def test_cli_reads_a_gatan_file_and_refuses_cleanly(tmp_path, capsys):
    from lacbed.cli import main

    with pytest.raises(SystemExit) as ex:
        main(["refine", str(STEM), str(example_path("Si")), "-o", str(tmp_path)])
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "axes are in nm" in err and "--calibration" in err
    # the diffraction pattern loads (calibrated, 300 kV warned about); the output check refuses
    run = tmp_path / "RUN"
    run.write_text("not a folder")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SystemExit) as ex:
            main(["refine", str(DIFFRACTION), str(example_path("Si")), "-o", str(run),
                  "--voltage", "300"])  # fmt: skip
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == (
        "warning: test_diffraction_pattern.dm3 was recorded at 200 kV but the refine uses 300 kV "
        "(--voltage)"
    )
    assert len(err) == 2 and "not a folder" in err[1]
