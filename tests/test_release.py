"""Releases: pack a working dataset into write-once shards, read it back, splits by prototype.

The working datasets here are built with a fake engine (patterns with an exact 4mm or 2mm
symmetry, the real projected potential), so these tests exercise the format in seconds. The
committed release itself is checked in tests/test_release_data.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import lacbed.dataset.release as release_mod
from lacbed.crystal import Crystal
from lacbed.crystal.serialise import crystal_to_record, prototype_label
from lacbed.dataset import open_dataset
from lacbed.dataset.build import BuildSettings, build_dataset
from lacbed.dataset.release import (
    Release,
    item_status,
    open_release,
    pack_release,
    plan_release_splits,
    release_keys,
)
from lacbed.dataset.release import resimulate as real_resimulate
from lacbed.dataset.splits import plan_prototype_splits, split_of_prototype
from lacbed.dataset.store import DatasetError
from lacbed.errors import SettingsError
from lacbed.scattering import projected_potential
from lacbed.structures.entry import Entry

SETTINGS = BuildSettings(size=16, thicknesses_nm=(50.0, 100.0))


def rock_salt(cation: str, a: float) -> Crystal:
    f = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    pos = np.array(f + [[x + 0.5, y, z] for x, y, z in f]) % 1.0
    return Crystal(
        a=a,
        symbols=(cation,) * 4 + ("O",) * 4,
        positions=pos,
        occupancies=np.ones(8),
        b_iso=np.full(8, 0.5),
        space_group_number=225,
        space_group="Fm-3m",
    )


def cscl(cation: str, a: float) -> Crystal:
    return Crystal(
        a=a,
        symbols=(cation, "Cl"),
        positions=np.array([[0, 0, 0], [0.5, 0.5, 0.5]]),
        occupancies=np.ones(2),
        b_iso=np.full(2, 0.6),
        space_group_number=221,
        space_group="Pm-3m",
    )


def pyrite(a: float) -> Crystal:
    """FeS2 (Pa-3, m-3: a 2mm bright field), u = 0.385."""
    u = 0.385
    fe = [[0, 0, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 0]]
    s0 = [[u, u, u], [-u + 0.5, -u, u + 0.5], [-u, u + 0.5, -u + 0.5], [u + 0.5, -u + 0.5, -u]]
    s = s0 + [[-x, -y, -z] for x, y, z in s0]
    pos = np.array(fe + s) % 1.0
    return Crystal(
        a=a,
        symbols=("Fe",) * 4 + ("S",) * 8,
        positions=pos,
        occupancies=np.ones(12),
        b_iso=np.full(12, 0.4),
        space_group_number=205,
        space_group="Pa-3",
    )


def make_entries() -> list[Entry]:
    out = []
    for i, cat in enumerate(("Mg", "Ca", "Sr", "Ba", "Ni", "Co")):
        out.append(Entry(f"t:rs-{cat}", rock_salt(cat, 4.2 + 0.2 * i), "test", str(i)))
    for i, cat in enumerate(("Cs", "Tl", "Rb")):
        out.append(Entry(f"t:cscl-{cat}", cscl(cat, 4.0 + 0.1 * i), "test", str(i)))
    out.append(Entry("t:pyrite", pyrite(5.42), "test", "p"))
    # a derived structure: follows its parent's prototype whatever its own label
    out.append(
        Entry("aug:t:rs-Mg|Mg->Zn", rock_salt("Zn", 4.3), "augmented", "d", parent="t:rs-Mg")
    )
    return out


def fake_pattern(sym: str, size: int, n_t: int, seed: float) -> np.ndarray:
    u = np.arange(size) - size / 2 + 0.5
    y, x = np.meshgrid(u, u, indexing="ij")
    if sym == "4mm":
        base = np.cos(0.3 * seed * (x**2 + y**2) ** 0.5) + 0.3 * np.cos(0.2 * x) * np.cos(0.2 * y)
    else:  # mirrors x and y, not the diagonal
        base = np.cos(0.25 * seed * x) + 0.5 * np.cos(0.6 * y)
    base = (base - base.min()) / (base.max() - base.min())
    return np.stack([base * (0.9 - 0.1 * k) for k in range(n_t)]).astype(np.float32)


def fake_compute(crystal, settings):
    sym = crystal.bright_field_symmetry
    pot = projected_potential(crystal, settings.size, scattering=settings.scattering)
    pats = fake_pattern(sym, settings.size, len(settings.thicknesses_nm), crystal.a)
    engine = {"symmetry": sym, "version": "test", "n_strong_max": 30, "budget_capped": False}
    engine["convergence_estimate"] = 0.02 if "Ba" in crystal.symbols else 0.001
    return {
        "status": "ok",
        "potential": pot.astype(np.float32),
        "patterns": pats,
        "engine": engine,
        "cpu_s": 1.0,
    }


def fake_simulate(record, size, thicknesses_nm, settings):
    """The fake engine as the release's engine check sees it (agrees with fake_compute)."""
    from lacbed.crystal.serialise import crystal_from_record

    crystal = crystal_from_record(record["crystal"])
    return fake_pattern(crystal.bright_field_symmetry, size, len(thicknesses_nm), crystal.a)


@pytest.fixture(autouse=True)
def _fake_engine_check(monkeypatch, tmp_path):
    monkeypatch.setattr(release_mod, "resimulate", fake_simulate)
    monkeypatch.setenv("LACBED_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def entries():
    return make_entries()


@pytest.fixture(scope="module")
def plan(entries):
    return plan_release_splits(entries)


@pytest.fixture()
def work(tmp_path, entries):
    path = tmp_path / "work"
    build_dataset(path, entries, SETTINGS, workers=1, processes=False, compute=fake_compute)
    return path


def test_pack_round_trip(tmp_path, work, plan, entries):
    rel_path = tmp_path / "rel"
    rep = pack_release(work, rel_path, plan=plan)
    assert (rep.n_ok, rep.n_unconverged, rep.n_failed) == (len(entries) - 1, 1, 0)
    rel = open_dataset(rel_path)  # the one entry point for both kinds
    assert isinstance(rel, Release)
    ws = open_dataset(work)
    assert len(rel) == len(entries)
    for _, row in rel.table.iterrows():
        pot, pat, _ = ws.item(row["key"])
        got = rel.patterns[int(row["slot"])]
        assert got.shape == pat.shape and got.dtype == np.float32
        # float16 storage: relative error <= 2**-11 per pixel
        np.testing.assert_allclose(got, pat, rtol=2.0**-11, atol=1e-7)
        np.testing.assert_array_equal(rel.potentials[int(row["slot"])], pot)


def test_wedge_and_symmetry_of_stored_patterns(tmp_path, work, plan, entries):
    pack_release(work, tmp_path / "rel", plan=plan)
    rel = open_release(tmp_path / "rel")
    sym_of = {e.key: e.crystal.bright_field_symmetry for e in entries}
    assert sym_of["t:pyrite"] == "2mm" and sym_of["t:rs-Mg"] == "4mm"
    for _, row in rel.table.iterrows():
        w, sym = rel.patterns.wedge(int(row["slot"]))
        assert w.dtype == np.float16
        assert sym == sym_of[row["key"]]
        p = rel.patterns[int(row["slot"])]
        np.testing.assert_array_equal(p, p[:, :, ::-1])  # mirror x
        np.testing.assert_array_equal(p, p[:, ::-1, :])  # mirror y
        if sym == "4mm":
            np.testing.assert_array_equal(p, np.swapaxes(p, 1, 2))
        else:
            assert np.max(np.abs(p - np.swapaxes(p, 1, 2))) > 0.05  # no diagonal mirror
        assert w.shape[-1] == {"4mm": 8 * 9 // 2, "2mm": 64}[sym]


def test_unconverged_kept_out_of_splits(tmp_path, work, plan):
    pack_release(work, tmp_path / "rel", plan=plan)
    rel = open_release(tmp_path / "rel")
    row = rel.table.set_index("key").loc["t:rs-Ba"]
    assert row["status"] == "unconverged" and pd.isna(row["split"])
    assert "0.5 %" in next(r["reason"] for r in rel.records if r["key"] == "t:rs-Ba")
    n_split = sum(len(rel.split_slots(s)) for s in ("train", "val", "test"))
    assert n_split == len(rel) - 1


def test_item_status_rules():
    ok = {"status": "ok", "engine": {"convergence_estimate": 0.004, "budget_capped": False}}
    assert item_status(ok) == ("ok", None)
    assert item_status({"status": "ok", "engine": {"budget_capped": True}})[0] == "unconverged"
    # with an estimate, the estimate decides: a capped budget that converged is ok
    capped_ok = {"status": "ok", "engine": {"budget_capped": True, "convergence_estimate": 0.004}}
    assert item_status(capped_ok) == ("ok", None)
    capped_bad = {"status": "ok", "engine": {"budget_capped": True, "convergence_estimate": 0.02}}
    st, why = item_status(capped_bad)
    assert st == "unconverged" and "2.00 %" in why and "cap" in why
    assert item_status({"status": "ok", "engine": {"convergence_estimate": 0.006}})[0] == (
        "unconverged"
    )
    legacy = {"status": "ok", "engine": {"n_strong_max": 400}}  # engine without an estimate
    assert item_status(legacy, max_strong=400)[0] == "unconverged"
    assert item_status(legacy, max_strong=500) == ("ok", None)
    assert item_status({"status": "failed", "reason": "boom"}) == ("failed", "boom")


def test_splits_disjoint_by_prototype_and_derived_follow_parent(tmp_path, work, plan):
    pack_release(work, tmp_path / "rel", plan=plan)
    rel = open_release(tmp_path / "rel")
    t = rel.table[rel.table["split"].notna()]
    per_proto = t.groupby("prototype")["split"].nunique()
    assert (per_proto == 1).all()
    by_key = t.set_index("key")
    assert by_key.loc["aug:t:rs-Mg|Mg->Zn", "prototype"] == by_key.loc["t:rs-Mg", "prototype"]
    assert by_key.loc["aug:t:rs-Mg|Mg->Zn", "split"] == by_key.loc["t:rs-Mg", "split"]
    real_test = t[(t["split"] == "test") & t["parent"].isna()]
    slots = rel.split_slots("test-real")  # pattern slots, not table rows
    assert sorted(rel.table.loc[rel.table["slot"].isin(slots), "key"]) == sorted(real_test["key"])
    assert by_key.loc["t:rs-Mg", "prototype"] == "AB_225_a_b"
    assert by_key.loc["t:cscl-Cs", "prototype"] == "AB_221_a_b"


def test_pack_is_append_only(tmp_path, work, plan, entries):
    rel_path = tmp_path / "rel"
    first = pack_release(work, rel_path, plan=plan, shard_items=4)
    assert len(first.shards) == 3  # 11 materials, 4 per shard
    before = {p.name: p.read_bytes() for p in first.shards}
    again = pack_release(work, rel_path)
    assert again.shards == [] and again.n_already == len(entries)
    # more materials built later go into a new shard; the old ones are untouched
    extra = [Entry("t:rs-Mn", rock_salt("Mn", 4.44), "test", "9")]
    build_dataset(work, entries + extra, SETTINGS, workers=1, processes=False, compute=fake_compute)
    more = pack_release(work, rel_path, plan=plan, shard_items=4)
    assert [p.name for p in more.shards] == ["shard-00003.h5"] and more.n_ok == 1
    for name, data in before.items():
        assert (rel_path / "shards" / name).read_bytes() == data
    assert release_keys(rel_path) == {e.key for e in entries + extra}


def test_build_skips_released_materials(tmp_path, work, plan, entries):
    pack_release(work, tmp_path / "rel", plan=plan)
    keys = release_keys(tmp_path / "rel")
    computed = []

    def progress(done, total, key, status):
        if key:
            computed.append(key)

    extra = [Entry("t:rs-Mn", rock_salt("Mn", 4.44), "test", "9")]
    rep = build_dataset(
        tmp_path / "work2",
        entries + extra,
        SETTINGS,
        workers=1,
        processes=False,
        compute=fake_compute,
        progress=progress,
        skip_keys=keys,
    )
    assert computed == ["t:rs-Mn"] and rep.n_released == len(entries) and rep.n_ok == 1


def test_settings_mismatch_refused(tmp_path, work, plan, entries):
    pack_release(work, tmp_path / "rel", plan=plan)
    other = tmp_path / "work-other"
    settings = BuildSettings(size=16, thicknesses_nm=(50.0, 100.0), voltage_kv=300.0)
    build_dataset(other, entries[:2], settings, workers=1, processes=False, compute=fake_compute)
    with pytest.raises(SettingsError, match="new release"):
        pack_release(other, tmp_path / "rel")


def test_broken_inputs_refused(tmp_path, work, plan):
    with pytest.raises(DatasetError, match="splits"):
        pack_release(work, tmp_path / "no-plan")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a lacbed release"):
        pack_release(work, tmp_path / "junk", plan=plan)
    with pytest.raises(DatasetError, match="not a lacbed release"):
        open_release(tmp_path / "junk")
    assert not (tmp_path / "no-plan").exists()  # nothing half-made


def test_pack_refuses_a_record_that_does_not_rebuild_its_potential(tmp_path, work, plan):
    items = sorted((work / "items").glob("t_rs-Mg*.json"))
    rec = json.loads(items[0].read_text())
    rec["crystal"]["a"] = rec["crystal"]["a"] * 1.01
    items[0].write_text(json.dumps(rec))
    with pytest.raises(DatasetError, match="potential rebuilt"):
        pack_release(work, tmp_path / "rel", plan=plan)


def test_pack_refuses_a_pattern_without_its_symmetry(tmp_path, entries, plan):
    def broken(crystal, settings):
        out = fake_compute(crystal, settings)
        out["patterns"][:, 0, 1] += 0.01  # breaks 4mm and 2mm
        return out

    build_dataset(tmp_path / "w", entries[:1], SETTINGS, workers=1, processes=False, compute=broken)
    with pytest.raises(DatasetError, match="breaks its 4mm symmetry"):
        pack_release(tmp_path / "w", tmp_path / "rel", plan=plan)


def test_plan_holds_fractions_by_count_and_big_prototypes_train():
    rng = np.random.default_rng(0)
    labels = {}
    sizes = [300, 200, 120] + list(rng.integers(1, 12, size=400))
    for p, n in enumerate(sizes):
        for i in range(n):
            labels[f"k{p}-{i}"] = f"P{p}"
    plan = plan_prototype_splits(labels)
    total = len(labels)
    for name, f in zip(("train", "val", "test"), (0.85, 0.10, 0.05), strict=True):
        assert abs(plan["counts"][name] / total - f) < 0.005
    assert all(plan["prototypes"][f"P{p}"] == "train" for p in range(3))
    assert plan == plan_prototype_splits(dict(reversed(list(labels.items()))))  # order-free
    # a prototype the plan never saw falls back to a stable hash
    assert split_of_prototype("NEW_1_a", plan) == split_of_prototype("NEW_1_a", plan)


def test_prototype_labels_of_known_structures():
    assert prototype_label(rock_salt("Mg", 4.2)) == "AB_225_a_b"
    assert prototype_label(cscl("Cs", 4.1)) == "AB_221_a_b"
    assert prototype_label(pyrite(5.42)) == "AB2_205_a_c"
    rec = crystal_to_record(pyrite(5.42))
    assert json.loads(json.dumps(rec)) == rec


def test_failed_material_final_unless_retried(tmp_path, entries, plan):
    def flaky(crystal, settings):
        if "Co" in crystal.symbols:
            return {"status": "failed", "reason": "LinAlgError: did not converge"}
        return fake_compute(crystal, settings)

    work, rel_path = tmp_path / "w", tmp_path / "rel"
    build_dataset(work, entries, SETTINGS, workers=1, processes=False, compute=flaky)
    assert pack_release(work, rel_path, plan=plan).n_failed == 1
    rel = open_release(rel_path)
    assert "t:rs-Co" in set(rel.failures["key"]) and "t:rs-Co" not in set(rel.table["key"])
    # a plain rerun does not retry it ...
    rep = build_dataset(work, entries, SETTINGS, workers=1, processes=False, compute=fake_compute)
    assert rep.n_ok == 0 and pack_release(work, rel_path).shards == []
    # ... asking does; the new record wins over the released failure
    rep = build_dataset(
        work,
        entries,
        SETTINGS,
        workers=1,
        processes=False,
        compute=fake_compute,
        retry_failed=True,
    )
    assert rep.n_ok == 1
    again = pack_release(work, rel_path)
    assert again.n_ok == 1 and len(again.shards) == 1
    rel = open_release(rel_path)
    assert "t:rs-Co" in set(rel.table["key"]) and "t:rs-Co" not in set(rel.failures["key"])
    assert len(rel.records) == len(entries)
    assert release_keys(rel_path, failed=False) == {e.key for e in entries}


def test_engine_check_recorded_and_refuses_changed_physics(tmp_path, work, plan, entries):
    rel_path = tmp_path / "rel"
    rep = pack_release(work, rel_path, plan=plan)
    (check,) = rep.engine_checks  # one engine revision in the working store
    assert len(check["materials"]) == 2 and check["max_z"] < 1e-6
    meta = json.loads((rel_path / "release.json").read_text())
    assert meta["engine_checks"] == [check]

    # a later build by an engine whose physics changed: its items are refused
    def changed(crystal, settings):
        out = fake_compute(crystal, settings)
        out["patterns"] = out["patterns"] ** 1.5
        out["engine"]["revision"] = "new-physics"
        return out

    extra = [Entry("t:rs-Mn", rock_salt("Mn", 4.44), "test", "9")]
    build_dataset(work, entries + extra, SETTINGS, workers=1, processes=False, compute=changed)
    items = sorted((work / "items").glob("t_rs-Mn*.json"))
    rec = json.loads(items[0].read_text())
    rec["engine"]["revision"] = "new-physics"  # the build stamps its own revision
    items[0].write_text(json.dumps(rec))
    with pytest.raises(DatasetError, match="new release version"):
        pack_release(work, rel_path)
    assert release_keys(rel_path) == {e.key for e in entries}  # nothing packed


def test_potential_cache_is_exact_and_reused(tmp_path, work, plan, monkeypatch):
    pack_release(work, tmp_path / "rel", plan=plan)
    fresh = open_release(tmp_path / "rel", cache=False)
    rel = open_release(tmp_path / "rel", cache=tmp_path / "c")
    first = rel.potentials[3]
    np.testing.assert_array_equal(first, fresh.potentials[3])
    (cached,) = (tmp_path / "c" / "release-potentials").glob("*.npy")

    def no_rebuild(*a, **k):
        raise AssertionError("rebuilt although cached")

    import lacbed.scattering

    monkeypatch.setattr(lacbed.scattering, "projected_potential", no_rebuild)
    again = open_release(tmp_path / "rel", cache=tmp_path / "c")
    np.testing.assert_array_equal(again.potentials[3], first)
    with pytest.raises(AssertionError, match="rebuilt"):
        again.potentials[4]  # not cached yet
    # an unusable cache folder falls back to rebuilding, it does not fail
    monkeypatch.undo()
    (tmp_path / "file").write_text("x")
    blocked = open_release(tmp_path / "rel", cache=tmp_path / "file")
    np.testing.assert_array_equal(blocked.potentials[3], first)
    assert cached.is_file()


def test_damaged_shard_is_a_clear_error(tmp_path, work, plan):
    rep = pack_release(work, tmp_path / "rel", plan=plan)
    rep.shards[0].write_bytes(rep.shards[0].read_bytes()[:1000])  # truncated
    with pytest.raises(DatasetError, match="cannot be read"):
        open_release(tmp_path / "rel")
    with pytest.raises(DatasetError, match="cannot be read"):
        release_keys(tmp_path / "rel")


def test_unsolved_unconverged_material_is_listed_without_a_pattern(tmp_path, entries, plan):
    # a build whose engine gives up on the Ba compound before solving it (skip_unconverged)
    def compute(crystal, settings):
        if "Ba" not in crystal.symbols:
            return fake_compute(crystal, settings)
        engine = {"pilot_estimate": 0.04, "budget_capped": True, "convergence_estimate": None}
        reason = "Ba: not solved, the adaptive budget cannot converge it (pilot estimate 4 %)"
        return {"status": "unconverged", "reason": reason, "engine": engine, "cpu_s": 0.5}

    work = tmp_path / "work"
    rep = build_dataset(work, entries, SETTINGS, workers=1, processes=False, compute=compute)
    assert (rep.n_ok, rep.n_unconverged, rep.n_failed) == (len(entries) - 1, 1, 0)
    # a resumed build does not solve it again
    again = build_dataset(work, entries, SETTINGS, workers=1, processes=False, compute=compute)
    assert again.n_unconverged == 0 and again.n_skipped_done == len(entries)
    packed = pack_release(work, tmp_path / "rel", plan=plan)
    assert (packed.n_ok, packed.n_unconverged, packed.n_failed) == (len(entries) - 1, 1, 0)
    rel = open_release(tmp_path / "rel")
    assert "t:rs-Ba" not in set(rel.table["key"]) and len(rel) == len(entries) - 1
    row = rel.failures.set_index("key").loc["t:rs-Ba"]
    assert row["status"] == "unconverged" and "cannot converge" in row["reason"]
    assert "t:rs-Ba" in release_keys(tmp_path / "rel", failed=False)  # not retried as a failure
    from lacbed.dataset.datasheet import write_datasheet

    write_datasheet(tmp_path / "rel")
    sheet = (tmp_path / "rel" / "README.md").read_text()
    assert "1 unconverged (outside the splits; 1 of them without a pattern" in sheet


def test_resimulate_takes_the_recorded_second_look(monkeypatch):
    """The engine check re-simulates with the second look and the escalation steps as recorded
    (a build defers both), and with the engine's defaults for records from before the fields."""
    import lacbed.simulate as sim

    seen = []

    class _Pattern:
        intensities = np.zeros((1, 8, 8))

    def fake(crystal, thickness, **kw):
        seen.append((kw["second_look"], kw["budget_steps"]))
        return _Pattern()

    monkeypatch.setattr(sim, "simulate_lacbed", fake)
    rec = {"crystal": crystal_to_record(cscl("Cs", 4.1))}
    cases = (
        ({"second_look": False, "budget_steps": [1.5]}, (False, (1.5,))),
        ({"second_look": True, "budget_steps": [1.5, 2.0]}, (True, (1.5, 2.0))),
        ({}, (True, None)),
    )
    for engine, want in cases:
        real_resimulate({**rec, "engine": engine}, 8, [100.0], {})  # (the fixture fakes it)
        assert seen[-1] == want


def test_a_built_item_resimulates_to_its_own_pattern(monkeypatch):
    """Round trip of the engine fields: what compute_item records (first pass only, 1.5× step)
    is what the pack's engine check re-simulates with, and it gives the stored pattern back.
    The pilots are made to miss the target at 1× and meet it at 1.5×, so both runs escalate."""
    from lacbed.dataset.build import compute_item
    from lacbed.simulate import engine

    real_pilot = engine.pilot

    def pilot(plan, **kw):
        est, ref = real_pilot(plan, **kw)
        return {1.0: 0.009}.get(plan.options["budget_factor"], min(est, 0.004)), ref

    monkeypatch.setattr(engine, "pilot", pilot)
    crystal = cscl("Cs", 4.1)
    res = compute_item(crystal, BuildSettings(size=16, thicknesses_nm=(100.0,)))
    assert res["status"] == "ok", res["reason"]
    assert res["engine"]["second_look"] is False and res["engine"]["budget_steps"] == [1.5]
    assert res["engine"]["skip_margin"] == 1.0 and res["engine"]["budget_factor"] == 1.5
    rec = {"crystal": crystal_to_record(crystal), "engine": res["engine"]}
    again = real_resimulate(rec, 16, [100.0], {})
    np.testing.assert_allclose(again, res["patterns"], rtol=0, atol=1e-7)  # float32 storage
