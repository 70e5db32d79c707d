"""Dataset storage: write items, read them back, resume, settings checks, grouped splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lacbed.dataset import DatasetWriter, assign_splits, open_dataset, split_of_group
from lacbed.dataset.store import DatasetError, item_filename
from lacbed.errors import LacbedError, SettingsError

SETTINGS = {"voltage_kv": 200.0, "strong_beams": 10}


def _writer(path, n_slots=6, **kw):
    args = dict(size=8, thicknesses_nm=[50.0, 100.0], settings=SETTINGS, n_slots=n_slots)
    args.update(kw)
    return DatasetWriter(path, **args)


def _arrays(seed):
    rng = np.random.default_rng(seed)
    return rng.random((8, 8)), rng.random((2, 8, 8))


def test_store_reads_back(tmp_path):
    w = _writer(tmp_path / "ds")
    stored = {}
    for i in range(4):
        pot, pat = _arrays(i)
        meta = {"formula": "NaCl", "space_group_number": 225, "a": 5.64, "group": f"g{i % 2}"}
        w.write_item(f"item{i}", i, pot, pat, meta)
        stored[f"item{i}"] = (pot, pat)
    w.write_failure("bad", "non-cubic", {"formula": "X", "group": "g9"})
    assert w.done_keys() == {"item0", "item1", "item2", "item3", "bad"}
    w.finalize()

    ds = open_dataset(tmp_path / "ds")
    assert ds.size == 8
    np.testing.assert_array_equal(ds.thicknesses_nm, [50.0, 100.0])
    assert ds.settings["settings"] == SETTINGS
    assert len(ds.table) == 4 and list(ds.failures["key"]) == ["bad"]
    assert ds.failures["reason"].iloc[0] == "non-cubic"
    assert ds.table["space_group_number"].dtype == np.int64  # not float despite the failed row
    for _, row in ds.table.iterrows():
        pot, pat = stored[row["key"]]
        # stored as float32: exact float32 round trip
        np.testing.assert_array_equal(ds.potentials[row["slot"]], pot.astype(np.float32))
        np.testing.assert_array_equal(ds.patterns[row["slot"]], pat.astype(np.float32))
    slots = np.concatenate([ds.split_slots(n) for n in ("train", "val", "test")])
    assert sorted(slots) == [0, 1, 2, 3]


def test_records_read_without_finalize(tmp_path):
    w = _writer(tmp_path / "ds")
    pot, pat = _arrays(0)
    w.write_item("a", 0, pot, pat, {"group": "a"})
    ds = open_dataset(tmp_path / "ds")  # no metadata.parquet yet: reads items/
    assert list(ds.table["key"]) == ["a"]
    w.finalize()
    w.write_item("b", 1, pot, pat, {"group": "b"})
    ds = open_dataset(tmp_path / "ds")  # parquet older than the newest record: reads items/
    assert sorted(ds.table["key"]) == ["a", "b"]


def test_reopen_resumes_and_grows(tmp_path):
    w = _writer(tmp_path / "ds", n_slots=2)
    pot, pat = _arrays(1)
    w.write_item("a", 0, pot, pat)
    w2 = _writer(tmp_path / "ds", n_slots=5)
    assert w2.n_slots == 5
    assert w2.done_keys() == {"a"}
    np.testing.assert_array_equal(
        open_dataset(tmp_path / "ds").potentials[0], pot.astype(np.float32)
    )


@pytest.mark.parametrize(
    "change", [{"size": 16}, {"thicknesses_nm": [50.0]}, {"settings": {"voltage_kv": 300.0}}]
)
def test_settings_mismatch_is_an_error(tmp_path, change):
    _writer(tmp_path / "ds")
    with pytest.raises(SettingsError, match="existing dataset"):
        _writer(tmp_path / "ds", **change)


def test_wrong_shapes_rejected(tmp_path):
    w = _writer(tmp_path / "ds")
    with pytest.raises(DatasetError, match="expected"):
        w.write_item("a", 0, np.zeros((8, 8)), np.zeros((3, 8, 8)))
    with pytest.raises(DatasetError, match="slot"):
        w.write_item("a", 99, np.zeros((8, 8)), np.zeros((2, 8, 8)))
    assert w.done_keys() == set()


def test_open_non_dataset(tmp_path):
    with pytest.raises(LacbedError, match="not a lacbed dataset"):
        open_dataset(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f.txt").write_text("hi")
    with pytest.raises(LacbedError, match="non-empty directory"):
        _writer(tmp_path / "x")


def test_record_is_valid_json_after_write(tmp_path):
    w = _writer(tmp_path / "ds")
    pot, pat = _arrays(2)
    w.write_item("Ga/As weird key", 3, pot, pat, {"a": np.float64(5.65), "n": np.int64(8)})
    files = list((tmp_path / "ds" / "items").iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".")
    rec = json.loads(files[0].read_text())
    assert rec["key"] == "Ga/As weird key" and rec["slot"] == 3 and rec["a"] == 5.65


def test_splits_grouped_and_proportional():
    groups = [f"parent{i // 3}" for i in range(30000)]  # 10 000 groups of 3 items
    splits = assign_splits(groups)
    by_group: dict[str, set[str]] = {}
    for g, s in zip(groups, splits, strict=True):
        by_group.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in by_group.values())  # no group in two splits
    frac = {n: splits.count(n) / len(splits) for n in ("train", "val", "test")}
    # 10 000 independent groups: binomial std of a fraction ≤ 0.005, so ±0.02 is 4σ
    assert abs(frac["train"] - 0.85) < 0.02
    assert abs(frac["val"] - 0.10) < 0.02
    assert abs(frac["test"] - 0.05) < 0.02
    assert split_of_group("parent7") == split_of_group("parent7")


def test_table_is_parquet_plus_newer_records(tmp_path):
    w = _writer(tmp_path / "ds")
    pot, pat = _arrays(3)
    for i in range(3):
        w.write_item(f"k{i}", i, pot, pat, {"group": f"g{i}"})
    w.finalize()
    w.write_item("k3", 3, pot, pat, {"group": "g3"})  # after the parquet
    (tmp_path / "ds" / "items" / item_filename("k0")).unlink()  # a record removed by hand
    ds = open_dataset(tmp_path / "ds")
    assert list(ds.table["key"]) == ["k1", "k2", "k3"]
    assert set(ds.table["split"]) <= {"train", "val", "test"}
    w.finalize()
    assert list(open_dataset(tmp_path / "ds").table["key"]) == ["k1", "k2", "k3"]
