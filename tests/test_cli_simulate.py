"""`lacbed simulate` CLI contract, tested with a stand-in engine (fast, engine-independent).

The engine itself is tested in the bloch/simulate tests; here the checks are the CLI's: option
parsing (``--thickness 50 100 150``), Felix-file settings and overrides, output shapes/dtypes by
suffix, and that bad input gives a one-line error, exit status 2 and no output file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lacbed.cli.simulate as cli_sim
from lacbed.cli import main
from lacbed.cli.simulate import expand_multi_value_options
from lacbed.simulate.pattern import LacbedPattern

# the Felix Si [001] run's inputs ship with the tests (tests/data/PROVENANCE.md)
REF = Path(__file__).resolve().parent / "data" / "felix" / "Si_001"
CIF = REF / "felix.cif"
INP = REF / "felix.inp"


class FakeEngine:
    """Records its keyword arguments and returns a smooth synthetic pattern."""

    def __init__(self, bad: bool = False, settings: dict | None = None):
        self.calls: list[dict] = []
        self.bad = bad
        self.settings = settings or {}

    def __call__(self, crystal, *, thickness_nm, size=128, half_width=None, progress=None, **kw):
        self.calls.append(dict(kw, thickness_nm=thickness_nm, size=size, half_width=half_width))
        w = half_width or 4 / crystal.a
        k = (np.arange(size) - size / 2 + 0.5) * (w / (size / 2))
        t = np.asarray(thickness_nm, float)
        inten = 0.5 + 0.1 * np.cos(t[:, None, None] / 30 + k[None, :, None] + 2 * k[None, None, :])
        if self.bad:
            inten[0, 1, 1] = np.inf
        if progress is not None:
            progress(1, 1)
        return LacbedPattern(
            intensities=inten,
            thickness_nm=t,
            kx=k,
            ky=k,
            wavelength=0.0250793,
            beams=np.zeros((5, 3), int),
            settings={"size": size, **self.settings},
            timings={"total": 0.0},
            version="test",
        )


@pytest.fixture
def engine(monkeypatch):
    fake = FakeEngine()
    monkeypatch.setattr(cli_sim, "_engine", lambda: fake)
    return fake


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *argv])
    return int(exc.value.code or 0)


def test_expand_thickness_values():
    f = expand_multi_value_options
    assert f(["a.cif", "--thickness", "50", "100", "150", "-o", "x.npy"]) == [
        "a.cif", "--thickness", "50", "--thickness", "100", "--thickness", "150", "-o", "x.npy"
    ]  # fmt: skip
    assert f(["--thickness", "50,100", "a.cif"]) == [
        "--thickness",
        "50",
        "--thickness",
        "100",
        "a.cif",
    ]
    assert f(["--thickness=7", "a.cif"]) == ["--thickness", "7", "a.cif"]
    assert f(["-t", "-5", "a.cif"]) == ["-t", "-5", "a.cif"]  # negative kept → clear error later


@pytest.mark.parametrize("n_t", [1, 3])
def test_npy_contract(tmp_path, engine, n_t):
    out = tmp_path / "si.npy"
    ts = ["50", "100", "150"][:n_t]
    assert run([str(CIF), "-o", str(out), "--thickness", *ts, "--size", "16", "-q"]) == 0
    arr = np.load(out)
    assert arr.dtype == np.float32
    assert arr.shape == ((16, 16) if n_t == 1 else (n_t, 16, 16))
    kw = engine.calls[-1]
    np.testing.assert_array_equal(kw["thickness_nm"], [float(t) for t in ts])
    assert kw["voltage_kv"] == 200.0 and kw["half_width"] is None and kw["solver"] == "fast"


def test_thickness_before_cif_and_all_options(tmp_path, engine):
    out = tmp_path / "si.npy"
    argv = ["--thickness", "20", "40", str(CIF), "-o", str(out), "--size", "16",
            "--voltage", "300", "--half-width", "0.5", "--scattering", "lobato",
            "--absorption", "proportional", "--kappa", "0.1", "--debye-waller", "0.3",
            "--strong-beams", "20", "--max-g", "2.5", "--solver", "exact", "--backend", "numpy",
            "-q"]  # fmt: skip
    assert run(argv) == 0
    kw = engine.calls[-1]
    np.testing.assert_array_equal(kw["thickness_nm"], [20.0, 40.0])
    assert (kw["voltage_kv"], kw["half_width"], kw["scattering"]) == (300.0, 0.5, "lobato")
    assert (kw["absorption"], kw["kappa"], kw["b_iso"]) == ("proportional", 0.1, 0.3)
    assert (kw["strong_beams"], kw["max_g"], kw["solver"]) == (20, 2.5, "exact")


def test_no_estimate_passes_no_convergence_sample(tmp_path, engine):
    out = tmp_path / "si.npy"
    base = [str(CIF), "-o", str(out), "--thickness", "50", "--size", "16", "-q"]
    assert run([*base, "--strong-beams", "96", "--no-estimate"]) == 0
    assert engine.calls[-1]["convergence_sample"] == 0.0
    assert run(base) == 0
    assert "convergence_sample" not in engine.calls[-1]  # the engine's default sample


def test_no_estimate_gives_the_same_pattern_without_an_estimate(tmp_path):
    """The real engine: --no-estimate changes the cost, not the pattern."""
    from lacbed.simulate import simulate_lacbed

    out = tmp_path / "si.npy"
    argv = [str(CIF), "-o", str(out), "-t", "50", "100", "--size", "16", "--strong-beams", "12"]
    assert run([*argv, "--no-estimate", "-q"]) == 0
    want = simulate_lacbed(cli_sim._load_crystal(CIF), [50.0, 100.0], size=16, strong_beams=12)
    assert want.settings["convergence_estimate"] is not None
    np.testing.assert_array_equal(np.load(out), want.intensities.astype(np.float32))


def test_h5_contract(tmp_path, engine):
    import h5py

    out = tmp_path / "si.h5"
    assert run([str(CIF), "-o", str(out), "--thickness", "50", "100", "--size", "16", "-q"]) == 0
    with h5py.File(out) as f:
        assert f["intensities"].shape == (2, 16, 16) and f["intensities"].dtype == np.float32
        np.testing.assert_array_equal(f["thickness_nm"][()], [50.0, 100.0])
        for name in ("kx", "ky", "tilt_x_mrad", "tilt_y_mrad", "beams"):
            assert name in f
        for attr in ("settings", "timings", "version", "wavelength"):
            assert attr in f.attrs


def test_png_contract(tmp_path, engine):
    out = tmp_path / "si.png"
    assert run([str(CIF), "-o", str(out), "--thickness", "50", "100", "--size", "16", "-q"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_felix_inp_settings_and_override(tmp_path, engine):
    out = tmp_path / "f.h5"
    assert run(["--felix-inp", str(INP), str(CIF), "-o", str(out), "-q"]) == 0
    kw = engine.calls[-1]
    np.testing.assert_array_equal(kw["thickness_nm"], [50.0, 100.0, 150.0])
    assert (kw["size"], kw["half_width"], kw["voltage_kv"]) == (128, 0.75, 200.0)
    assert (kw["strong_beams"], kw["max_g"], kw["absorption"]) == (100, 3.0, "bird-king")
    assert kw["scattering"] == "kirkland"
    # explicit options override the file
    out2 = tmp_path / "f.npy"
    argv = ["--felix-inp", str(INP), str(CIF), "-o", str(out2), "--thickness", "100", "--size",
            "16", "--solver", "exact", "-q"]  # fmt: skip
    assert run(argv) == 0
    kw = engine.calls[-1]
    np.testing.assert_array_equal(kw["thickness_nm"], [100.0])
    assert (kw["size"], kw["solver"], kw["strong_beams"]) == (16, "exact", 100)
    assert np.load(out2).shape == (16, 16)


BAD = [
    (["--thickness", "0"], "thickness"),
    (["--thickness", "-5", "10"], "thickness"),
    (["--thickness", "50", "--voltage", "0"], "voltage"),
    (["--thickness", "50", "--size", "4"], "size"),
    (["--thickness", "50", "--half-width", "0"], "half-width"),
    (["--thickness", "50", "--absorption", "strong"], "absorption"),
    (["--thickness", "50", "--solver", "slow"], "solver"),
    (["--thickness", "50", "--debye-waller", "hot"], "debye-waller"),
    (["--thickness", "50", "--strong-beams", "0"], "strong-beams"),
    ([], "thickness"),
]


@pytest.mark.parametrize(("extra", "word"), BAD)
def test_bad_settings_leave_no_file(tmp_path, engine, capsys, extra, word):
    out = tmp_path / "x.npy"
    assert run([str(CIF), "-o", str(out), "--size", "16", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    assert engine.calls == []  # rejected before any simulation


def test_missing_cif(tmp_path, engine, capsys):
    out = tmp_path / "x.npy"
    assert run([str(tmp_path / "nope.cif"), "-o", str(out), "--thickness", "50"]) == 2
    assert "nope.cif" in capsys.readouterr().err
    assert not out.exists()


def test_bad_cif(tmp_path, engine, capsys):
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a banana\n")
    out = tmp_path / "x.npy"
    assert run([str(bad), "-o", str(out), "--thickness", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lacbed: error:") and len(err.splitlines()) == 1
    assert not out.exists()


def test_unknown_suffix(tmp_path, engine, capsys):
    out = tmp_path / "x.tif"
    assert run([str(CIF), "-o", str(out), "--thickness", "50"]) == 2
    assert ".tif" in capsys.readouterr().err
    assert not out.exists() and engine.calls == []


def test_non_finite_pattern_not_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_sim, "_engine", lambda: FakeEngine(bad=True))
    out = tmp_path / "x.npy"
    assert run([str(CIF), "-o", str(out), "--thickness", "50", "--size", "16"]) == 2
    assert "non-finite" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unsupported_felix_value(tmp_path, engine, capsys):
    text = INP.read_text().replace(
        "IIncidentBeamDirection    = [0,0,1]", "IIncidentBeamDirection = [1,1,0]"
    )
    inp = tmp_path / "felix.inp"
    inp.write_text(text)
    out = tmp_path / "x.npy"
    assert run(["--felix-inp", str(inp), str(CIF), "-o", str(out)]) == 2
    assert "IIncidentBeamDirection" in capsys.readouterr().err
    assert not out.exists()


def test_progress_callback_drives_a_bar(tmp_path, monkeypatch):
    """The CLI passes progress(done, total); with the delay set to 0 the rich bar starts/stops."""
    seen = []

    class Slow(FakeEngine):
        def __call__(self, crystal, *, progress=None, **kw):
            assert callable(progress)
            for d in range(3):
                progress(d, 2)
                seen.append(progress._bar is not None)
            return super().__call__(crystal, **kw)

    monkeypatch.setattr(cli_sim, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(cli_sim, "_engine", lambda: Slow())
    out = tmp_path / "x.npy"
    assert run([str(CIF), "-o", str(out), "--thickness", "50", "--size", "16"]) == 0
    assert seen == [True, True, True] and out.exists()


def test_version_flag(capsys):
    from lacbed import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code in (0, None)
    assert capsys.readouterr().out.strip() == __version__


@pytest.mark.parametrize("where", ["under_a_file", "a_directory"])
def test_unwritable_output_fails_before_any_work(tmp_path, engine, capsys, where):
    blocker = tmp_path / "not_a_folder.txt"
    blocker.write_text("x")
    out = blocker / "si.npy" if where == "under_a_file" else tmp_path / "folder.npy"
    if where == "a_directory":
        out.mkdir()
    assert run([str(CIF), "-o", str(out), "--thickness", "50", "--size", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lacbed: error: cannot write") and len(err.splitlines()) == 1
    assert str(out) in err and ".part" not in err  # names the user's path, not a temporary file
    assert engine.calls == []  # nothing was simulated
    assert {p.name for p in tmp_path.iterdir()} <= {"folder.npy", "not_a_folder.txt"}
    assert not out.is_file()


@pytest.mark.parametrize(
    ("suffix", "thicknesses", "said"),
    [
        (".npy", ["50"], "(16×16 float32,"),
        (".npy", ["50", "100"], "(2×16×16 float32,"),
        (".h5", ["50"], "(1×16×16 float32,"),
        (".png", ["50", "100"], "(2 panels of 16×16,"),
    ],
)
def test_summary_states_the_shape_written(tmp_path, engine, capsys, suffix, thicknesses, said):
    out = tmp_path / f"si{suffix}"
    assert run([str(CIF), "-o", str(out), "--thickness", *thicknesses, "--size", "16"]) == 0
    assert said in capsys.readouterr().out
    if suffix == ".npy":
        shape = said.strip("(,").split()[0]
        assert "×".join(map(str, np.load(out).shape)) == shape


def test_help_states_the_npy_shapes(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "(size, size) for one thickness" in text and "(n_thickness, size, size)" in text


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        ({"convergence_estimate": 0.004, "budget_capped": False}, None),
        ({"convergence_estimate": 0.012, "budget_capped": False}, "1.20 %"),
        ({"convergence_estimate": 0.001, "budget_capped": True}, "cap"),
    ],
)
def test_unconverged_result_warns_one_line(tmp_path, monkeypatch, capsys, settings, warned):
    monkeypatch.setattr(cli_sim, "_engine", lambda: FakeEngine(settings=settings))
    out = tmp_path / "x.npy"
    assert run([str(CIF), "-o", str(out), "--thickness", "50", "-q"]) == 0
    err = capsys.readouterr().err
    if warned is None:
        assert "warning" not in err
    else:
        lines = [ln for ln in err.splitlines() if "warning" in ln]
        assert len(lines) == 1 and warned in lines[0] and "converged" in lines[0]
    assert out.exists()  # a warning, not an error


def test_plan_prints_and_solves_nothing(tmp_path, engine, capsys):
    assert run([str(CIF), "--thickness", "50", "--size", "16", "--plan"]) == 0
    text = capsys.readouterr().out
    assert "pool" in text and "predicted CPU" in text and "strong" in text
    assert engine.calls == [] and not any(tmp_path.iterdir())  # nothing solved, nothing written


def test_output_required_without_plan(tmp_path, engine, capsys):
    assert run([str(CIF), "--thickness", "50"]) == 2
    assert "-o OUT" in capsys.readouterr().err and engine.calls == []
