"""``lacbed dataset build|info|show`` on small datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lacbed.dataset.build as build_mod
from lacbed.cli import main
from lacbed.dataset import DatasetWriter, open_dataset


def run_cli(args: list[str]) -> None:
    """Run the ``lacbed`` command; a successful command exits with status 0."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code in (0, None)


def _synthetic(path, n=30):
    w = DatasetWriter(
        path, size=8, thicknesses_nm=[50.0, 100.0, 150.0], settings={"x": 1}, n_slots=n
    )
    for i in range(n):
        meta = {
            "formula": f"X{i}",
            "space_group_number": 225,
            "a": 4.0 + i / 10,
            "source": "t",
            "group": f"g{i // 2}",
        }
        w.write_item(f"k{i:02d}", i, np.full((8, 8), i), np.full((3, 8, 8), i / n), meta)
    w.write_failure("bad", "NaN in the pattern", {"group": "gbad"})
    w.finalize()


def test_info_json(tmp_path, capsys):
    _synthetic(tmp_path / "ds")
    run_cli(["dataset", "info", str(tmp_path / "ds"), "--format", "json"])
    d = json.loads(capsys.readouterr().out)
    assert d["complete"] == 30 and d["failed"] == 1
    assert set(d["splits"]) == {"train", "val", "test"} and sum(d["splits"].values()) == 30
    assert all(isinstance(v, int) for v in d["splits"].values())


def test_info_text(tmp_path, capsys):
    _synthetic(tmp_path / "ds")
    run_cli(["dataset", "info", str(tmp_path / "ds")])
    out = capsys.readouterr().out
    assert "complete  30" in out and "NaN in the pattern" in out


def test_info_not_a_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["dataset", "info", str(tmp_path)])
    assert exc.value.code == 2
    assert "not a lacbed dataset" in capsys.readouterr().err


def test_show_writes_png(tmp_path):
    _synthetic(tmp_path / "ds")
    out = tmp_path / "m.png"
    run_cli(["dataset", "show", str(tmp_path / "ds"), "-o", str(out), "-n", "3"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_cli_options_and_resume(tmp_path, monkeypatch, capsys):
    """The CLI passes its options through (several thicknesses after one flag) and resumes."""
    from test_dataset_build import fake_compute

    real = build_mod.build_dataset
    seen = {}

    def threaded(path, entries, settings, **kw):
        seen["settings"] = settings
        seen["compute"] = kw["compute"]
        kw.update(processes=False, compute=fake_compute)
        return real(path, entries, settings, **kw)

    monkeypatch.setattr(build_mod, "build_dataset", threaded)
    args = [
        "dataset",
        "build",
        "-o",
        str(tmp_path / "ds"),
        "--source",
        "examples",
        "--limit",
        "4",
        "--thickness",
        "50",
        "100",
        "150",
        "--size",
        "8",
        "--strong-beams",
        "9",
        "--voltage",
        "300",
        "--workers",
        "2",
        "-q",
    ]
    run_cli(args)
    s = seen["settings"]
    assert (
        s.thicknesses_nm == (50.0, 100.0, 150.0) and s.strong_beams == 9 and s.voltage_kv == 300.0
    )
    ds = open_dataset(tmp_path / "ds")
    assert len(ds.table) == 4 and ds.patterns.shape[1:] == (3, 8, 8)
    assert ds.settings["sources"] == ["examples"]
    # the engine's second look is deferred by default (a retry of the unconverged turns it on)
    assert seen["compute"].func is build_mod.compute_item
    assert seen["compute"].keywords == {"second_look": False}
    run_cli([*args, "--second-look"])  # rerun: nothing new; the flag reaches the workers
    assert seen["compute"].keywords == {"second_look": True}
    run_cli(args)  # rerun: nothing new
    assert len(open_dataset(tmp_path / "ds").table) == 4
    with pytest.raises(SystemExit) as exc:
        main([*args[:-3], "--voltage", "200", "-q"])  # same folder, other settings
    assert exc.value.code == 2
    assert "existing dataset" in capsys.readouterr().err


@pytest.mark.slow  # real engine on a 1-process local cluster: ~20 s
def test_build_cli_real_engine(tmp_path):
    out = tmp_path / "ds"
    run_cli(
        [
            "dataset",
            "build",
            "-o",
            str(out),
            "--source",
            "examples",
            "--limit",
            "2",
            "--size",
            "16",
            "--strong-beams",
            "8",
            "--thickness",
            "50",
            "100",
            "--workers",
            "1",
            "-q",
        ]
    )
    ds = open_dataset(out)
    assert len(ds.table) == 2
    pats = np.asarray(ds.patterns[ds.table["slot"].to_numpy()])
    assert (
        np.all(np.isfinite(pats)) and np.all(pats >= 0) and np.all(pats <= 1.0 + 1e-6)
    )  # |ψ₀|² ≤ 1


def test_pack_info_and_build_against_a_release(tmp_path, monkeypatch, capsys):
    """build → pack (plans the prototype splits from the sources) → info → build --release."""
    import lacbed.dataset.release as release_mod
    from test_release import fake_compute, fake_simulate

    monkeypatch.setattr(release_mod, "resimulate", fake_simulate)
    real = build_mod.build_dataset
    computed = []

    def threaded(path, entries, settings, **kw):
        kw.update(processes=False, compute=fake_compute)
        rep = real(path, entries, settings, **kw)
        computed.append(rep.n_ok)
        return rep

    monkeypatch.setattr(build_mod, "build_dataset", threaded)
    work, rel = tmp_path / "work", tmp_path / "rel"
    build = ["dataset", "build", "-o", str(work), "--source", "examples", "--size", "16", "-q"]
    run_cli(build)
    run_cli(["dataset", "pack", str(work), "--release", str(rel), "-q"])
    out = capsys.readouterr().out
    assert "10 ok" in out and "1 new shard" in out
    assert (rel / "README.md").read_text().startswith("# lacbed cubic LACBED dataset, release 1")
    plan = json.loads((rel / "splits.json").read_text())
    assert len(plan["groups"]) == 10  # the ten examples, each a real structure
    run_cli(["dataset", "info", str(rel), "--format", "json"])
    d = json.loads(capsys.readouterr().out)
    assert d["converged"] == 10 and d["shards"] == 1 and d["real_structures_planned"] == 10
    assert sum(d["splits"][s] for s in ("train", "val", "test")) == 10
    run_cli(["dataset", "info", str(rel)])
    assert "10 ok (10 of 10 real structures)" in capsys.readouterr().out
    # a new working store against the release computes nothing
    run_cli([*build[:3], str(tmp_path / "work2"), *build[4:], "--release", str(rel)])
    assert computed[-1] == 0
    with pytest.raises(SystemExit) as exc:
        main([*build, "--release", str(tmp_path)])
    assert exc.value.code == 2 and "not a lacbed release" in capsys.readouterr().err


def test_retry_unconverged_from_a_release(tmp_path, monkeypatch, capsys):
    """A released unconverged material is computed again only when asked, in a new folder,
    and packed again once converged (the newer record wins)."""
    import lacbed.dataset.release as release_mod
    from test_release import fake_compute, fake_simulate

    monkeypatch.setattr(release_mod, "resimulate", fake_simulate)
    real = build_mod.build_dataset
    state = {"si_estimate": 0.02, "computed": []}

    def compute(crystal, settings):
        out = fake_compute(crystal, settings)
        if crystal.symbols == ("Si",) * len(crystal.symbols):
            out["engine"]["convergence_estimate"] = state["si_estimate"]
        return out

    def threaded(path, entries, settings, **kw):
        state["second_look"] = kw["compute"].keywords["second_look"]
        kw.update(processes=False, compute=compute)
        rep = real(path, entries, settings, **kw)
        state["computed"].append(rep.n_ok)
        return rep

    monkeypatch.setattr(build_mod, "build_dataset", threaded)
    work, rel = tmp_path / "work", tmp_path / "rel"
    build = ["dataset", "build", "--source", "examples", "--size", "16", "-q"]
    run_cli([*build, "-o", str(work)])
    run_cli(["dataset", "pack", str(work), "--release", str(rel), "-q"])
    assert "9 ok, 1 unconverged" in capsys.readouterr().out
    # not retried unless asked
    run_cli([*build, "-o", str(tmp_path / "w2"), "--release", str(rel)])
    assert state["computed"][-1] == 0 and state["second_look"] is False
    # asked in the folder that holds its earlier record, or without a release: one-line errors
    for bad, msg in (
        (
            [*build, "-o", str(work), "--release", str(rel), "--retry-unconverged"],
            "already holds",
        ),
        ([*build, "-o", str(tmp_path / "w3"), "--retry-unconverged"], "needs --release"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(bad)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and msg in err and len(err.strip().splitlines()) == 1
    # still unconverged: computed, but nothing new to pack; a rerun resumes the retry folder
    retry = [*build, "-o", str(tmp_path / "w4"), "--release", str(rel), "--retry-unconverged"]
    run_cli(retry)
    assert state["computed"][-1] == 1 and state["second_look"] is True
    run_cli(retry)
    assert state["computed"][-1] == 0
    run_cli(["dataset", "pack", str(tmp_path / "w4"), "--release", str(rel), "-q"])
    assert "0 ok, 0 unconverged, 0 failed materials packed into 0 new" in capsys.readouterr().out
    # converged now: packed again, and the release counts it
    state["si_estimate"] = 0.001
    run_cli([*build, "-o", str(tmp_path / "w5"), "--release", str(rel), "--retry-unconverged"])
    assert state["computed"][-1] == 1
    run_cli(["dataset", "pack", str(tmp_path / "w5"), "--release", str(rel), "-q"])
    assert "1 ok, 0 unconverged, 0 failed materials packed into 1 new" in capsys.readouterr().out
    run_cli(["dataset", "pack", str(tmp_path / "w5"), "--release", str(rel), "-q"])
    assert "0 ok, 0 unconverged, 0 failed materials packed into 0 new" in capsys.readouterr().out
    run_cli(["dataset", "info", str(rel), "--format", "json"])
    d = json.loads(capsys.readouterr().out)
    assert d["converged"] == 10 and d["unconverged"] == 0 and d["shards"] == 2
