"""On-disk storage of a lacbed dataset: Zarr arrays plus one JSON record per item.

Layout of a dataset directory ``DATA``::

    DATA/dataset.json        settings: size, thicknesses_nm, engine settings, sources, version
    DATA/arrays.zarr         zarr group: potential (N_slots, S, S) float32,
                             pattern (N_slots, T, S, S) float32, one chunk per item
    DATA/items/<key>.json    per-item record, written atomically after the item's arrays
    DATA/metadata.parquet    table of all items (rebuilt from items/ by ``finalize``)

The per-item JSON record is the completion marker: it is written (temporary file + rename) only
after the item's arrays are in the store, so a build killed at any moment leaves every item either
complete (record present) or absent (no record; its slot may hold stale numbers that nothing
points to). A rerun lists ``done_keys()`` and skips them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lacbed._io import atomic_path
from lacbed.dataset.splits import SPLIT_NAMES, assign_splits
from lacbed.errors import LacbedError, SettingsError

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "item_filename",
    "open_dataset",
    "read_records",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")

#: Columns every item record has (missing values are filled with None).
RECORD_COLUMNS = (
    "key",
    "status",
    "reason",
    "slot",
    "formula",
    "space_group_number",
    "a",
    "n_atoms",
    "source",
    "source_id",
    "parent",
    "group",
    "derivation",
    "time_s",
)


class DatasetError(LacbedError):
    """A directory is not a lacbed dataset, or is inconsistent."""


def item_filename(key: str) -> str:
    """File name of an item record: the key with unsafe characters replaced, plus a hash suffix.

    The hash keeps two keys that differ only in replaced characters apart.
    """
    import hashlib

    safe = _SAFE.sub("_", key)[:120]
    h = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return f"{safe}.{h}.json"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=1, sort_keys=True))


def _canonical(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True)


def read_records(path: str | os.PathLike) -> list[dict]:
    """All per-item records of a dataset directory (unordered)."""
    items = Path(path) / "items"
    out = []
    if not items.is_dir():
        return out
    for p in items.iterdir():
        if p.suffix != ".json" or p.name.startswith("."):
            continue
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError) as exc:  # pragma: no cover - only if tampered with
            log.warning("skipping unreadable item record %s: %s", p, exc)
    return out


def _load_table(path: Path):
    """Table of all records: ``metadata.parquet`` plus any record written after it.

    Rows whose record file no longer exists are dropped, so the record files stay the truth;
    only records newer than the parquet file are parsed, which keeps opening a large dataset
    fast while it is being built.
    """
    import pandas as pd

    items = path / "items"
    names: set[str] = set()
    if items.is_dir():
        with os.scandir(items) as it:
            names = {e.name for e in it if e.name.endswith(".json") and not e.name.startswith(".")}
    base = None
    parquet = path / "metadata.parquet"
    if parquet.is_file():
        try:
            base = pd.read_parquet(parquet)
        except Exception as exc:  # a damaged table is rebuilt from the records
            log.warning("ignoring unreadable %s: %s", parquet, exc)
    known: set[str] = set()
    if base is not None and len(base):
        files = [item_filename(str(k)) for k in base["key"]]
        keep = [f in names for f in files]
        base = base[keep].drop(columns=["split"], errors="ignore")
        known = {f for f, k in zip(files, keep, strict=True) if k}
    records = []
    for name in sorted(names - known):
        try:
            records.append(json.loads((items / name).read_text()))
        except (OSError, json.JSONDecodeError) as exc:  # pragma: no cover - only if tampered with
            log.warning("skipping unreadable item record %s: %s", name, exc)
    new = _records_frame(records)
    if base is not None and len(base):
        df = pd.concat([base, new], ignore_index=True) if len(new) else base
        df = df.sort_values("key", kind="stable").reset_index(drop=True)
    else:
        df = new
    if len(df):
        df["split"] = assign_splits(df["group"].fillna(df["key"]))
    return df


def _records_frame(records: list[dict]):
    import pandas as pd

    rows = []
    for r in records:
        row = {c: r.get(c) for c in RECORD_COLUMNS}
        for k, v in r.items():
            if k not in row and not isinstance(v, (dict, list)):
                row[k] = v
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else list(RECORD_COLUMNS))
    if len(df):
        df = df.sort_values("key", kind="stable").reset_index(drop=True)
    return df


class DatasetWriter:
    """Create or reopen a dataset directory and append items to it.

    Parameters
    ----------
    path : path-like
        Dataset directory (created if missing).
    size : int
        Side length S of potentials and patterns [pixels].
    thicknesses_nm : sequence of float
        Thicknesses T of the stored patterns [nm].
    settings : dict
        Engine settings (JSON-serialisable). Reopening an existing dataset with different
        ``size``, ``thicknesses_nm`` or ``settings`` raises :class:`~lacbed.errors.SettingsError`
        rather than mixing two kinds of item.
    n_slots : int
        Number of item slots to allocate; an existing store grows to this size if smaller.
    info : dict, optional
        Extra descriptive fields for ``dataset.json`` (sources, attribution, ...). They do not take
        part in the settings check; list-valued fields are merged with what is already there.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        size: int,
        thicknesses_nm,
        settings: Mapping[str, Any],
        n_slots: int,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        import zarr

        from lacbed import __version__

        self.path = Path(path)
        self.size = int(size)
        self.thicknesses_nm = np.atleast_1d(np.asarray(thicknesses_nm, dtype=np.float64))
        if self.size < 1:
            raise SettingsError(f"size must be a positive number of pixels, got {size}")
        if self.thicknesses_nm.size == 0 or np.any(self.thicknesses_nm <= 0):
            raise SettingsError(
                f"thicknesses must be positive [nm], got {list(self.thicknesses_nm)}"
            )
        self.settings = _jsonable(dict(settings))
        n_slots = max(int(n_slots), 0)
        if self.path.exists() and not self.path.is_dir():
            raise DatasetError(f"{self.path} exists and is not a directory")
        meta_path = self.path / "dataset.json"
        new_meta = {
            "format": "lacbed-dataset",
            "format_version": FORMAT_VERSION,
            "size": self.size,
            "thicknesses_nm": self.thicknesses_nm.tolist(),
            "settings": self.settings,
            "lacbed_version": __version__,
        }
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            self._check_compatible(old, new_meta)
            meta = old
        else:
            if self.path.is_dir() and any(self.path.iterdir()):
                raise DatasetError(
                    f"{self.path} is a non-empty directory without dataset.json; "
                    "choose a new or empty directory for a dataset"
                )
            meta = dict(new_meta)
        for k, v in (info or {}).items():
            if isinstance(v, (list, tuple)) and isinstance(meta.get(k), list):
                merged = list(meta[k])
                merged += [x for x in _jsonable(v) if x not in merged]
                meta[k] = merged
            else:
                meta[k] = _jsonable(v)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "items").mkdir(exist_ok=True)
        _write_json(meta_path, meta)
        self.meta = meta

        group = zarr.open_group(str(self.path / "arrays.zarr"), mode="a")
        s, t = self.size, len(self.thicknesses_nm)
        if "potential" in group:
            self._pot = group["potential"]
            self._pat = group["pattern"]
            if self._pot.shape[1:] != (s, s) or self._pat.shape[1:] != (t, s, s):
                raise DatasetError(
                    f"{self.path}/arrays.zarr has shapes that do not match dataset.json"
                )
            if self._pot.shape[0] < n_slots:
                self._pot.resize((n_slots, s, s))
                self._pat.resize((n_slots, t, s, s))
        else:
            self._pot = group.create_array(
                "potential",
                shape=(n_slots, s, s),
                chunks=(1, s, s),
                dtype="float32",
                fill_value=np.nan,
            )
            self._pat = group.create_array(
                "pattern",
                shape=(n_slots, t, s, s),
                chunks=(1, t, s, s),
                dtype="float32",
                fill_value=np.nan,
            )

    @staticmethod
    def _check_compatible(old: dict, new: dict) -> None:
        if old.get("format") != "lacbed-dataset":
            raise DatasetError("dataset.json is not a lacbed dataset description")
        for key in ("size", "thicknesses_nm", "settings"):
            if _canonical(old.get(key)) != _canonical(new.get(key)):
                raise SettingsError(
                    f"the existing dataset was built with {key}={_canonical(old.get(key))}, "
                    f"not {_canonical(new.get(key))}; use the same settings to resume it or "
                    "write to a new directory"
                )

    @property
    def n_slots(self) -> int:
        """Number of allocated item slots."""
        return int(self._pot.shape[0])

    def ensure_slots(self, n_slots: int) -> None:
        """Grow the arrays to at least ``n_slots`` item slots."""
        if n_slots > self.n_slots:
            s, t = self.size, len(self.thicknesses_nm)
            self._pot.resize((n_slots, s, s))
            self._pat.resize((n_slots, t, s, s))

    def _record_path(self, key: str) -> Path:
        return self.path / "items" / item_filename(key)

    def records(self) -> list[dict]:
        """All item records written so far."""
        return read_records(self.path)

    def done_keys(self) -> set[str]:
        """Keys of every finished item (succeeded or failed)."""
        return {r["key"] for r in self.records()}

    def used_slots(self) -> dict[str, int]:
        """Slot of every successfully stored item, by key."""
        return {r["key"]: int(r["slot"]) for r in self.records() if r.get("status") == "ok"}

    def write_item(
        self,
        key: str,
        slot: int,
        potential: np.ndarray,
        patterns: np.ndarray,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Store one finished item: its arrays, then (atomically) its record.

        Parameters
        ----------
        key : str
            Unique item key.
        slot : int
            Index into the arrays, ``0 <= slot < n_slots``.
        potential : ndarray, shape (S, S)
            Projected potential [V·Å].
        patterns : ndarray, shape (T, S, S) or (S, S) when T = 1
            I₀₀₀ at each thickness [-].
        meta : dict
            Extra record fields (formula, space_group_number, a, source, source_id, parent,
            group, derivation, time_s, ...).
        """
        s, t = self.size, len(self.thicknesses_nm)
        pot = np.asarray(potential, dtype=np.float32)
        pat = np.asarray(patterns, dtype=np.float32)
        if pat.ndim == 2:
            pat = pat[None]
        if pot.shape != (s, s) or pat.shape != (t, s, s):
            raise DatasetError(
                f"item {key!r}: expected potential ({s}, {s}) and patterns ({t}, {s}, {s}), "
                f"got {pot.shape} and {np.asarray(patterns).shape}"
            )
        if not 0 <= int(slot) < self.n_slots:
            raise DatasetError(f"slot {slot} out of range 0..{self.n_slots - 1}")
        self._pot[int(slot)] = pot
        self._pat[int(slot)] = pat
        rec = {c: None for c in RECORD_COLUMNS}
        rec.update(_jsonable(dict(meta or {})))
        rec.update(key=key, status="ok", reason=None, slot=int(slot))
        _write_json(self._record_path(key), rec)

    def write_failure(
        self,
        key: str,
        reason: str,
        meta: Mapping[str, Any] | None = None,
        *,
        status: str = "failed",
    ) -> None:
        """Record that an item failed, or (``status='unconverged'``) was not solved because the
        engine cannot converge it, with a one-line reason; it holds no slot."""
        if status not in ("failed", "unconverged"):
            raise ValueError(f"status must be 'failed' or 'unconverged', got {status!r}")
        rec = {c: None for c in RECORD_COLUMNS}
        rec.update(_jsonable(dict(meta or {})))
        rec.update(key=key, status=status, reason=str(reason), slot=-1)
        _write_json(self._record_path(key), rec)

    def finalize(self) -> Path:
        """Rebuild ``metadata.parquet`` from the item records; returns its path."""
        df = _load_table(self.path)
        out = self.path / "metadata.parquet"
        with atomic_path(out) as tmp:
            df.to_parquet(tmp, index=False)
        return out


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset opened for reading (see :func:`open_dataset`).

    Attributes
    ----------
    path : Path
        Dataset directory.
    settings : dict
        Contents of ``dataset.json`` (size, thicknesses, engine settings, sources, ...).
    table : pandas.DataFrame
        One row per stored item (status "ok"), sorted by key, with a ``split`` column.
    failures : pandas.DataFrame
        One row per failed item with its ``reason``.
    potentials : zarr.Array, shape (N_slots, S, S)
        Projected potentials [V·Å], indexed by ``table.slot``.
    patterns : zarr.Array, shape (N_slots, T, S, S)
        I₀₀₀ patterns [-], indexed by ``table.slot``.
    """

    path: Path
    settings: dict
    table: Any
    failures: Any
    potentials: Any
    patterns: Any
    _extra: dict = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        """Side length of potentials and patterns [pixels]."""
        return int(self.settings["size"])

    @property
    def thicknesses_nm(self) -> np.ndarray:
        """Thicknesses of the stored patterns [nm], shape (T,)."""
        return np.asarray(self.settings["thicknesses_nm"], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.table)

    def split_slots(self, name: str) -> np.ndarray:
        """Slots of the items in split ``name`` ('train', 'val' or 'test'), sorted by key."""
        if name not in SPLIT_NAMES:
            raise LacbedError(f"unknown split {name!r}; choose one of {', '.join(SPLIT_NAMES)}")
        if not len(self.table):
            return np.zeros(0, dtype=np.int64)
        sel = self.table["split"] == name
        return self.table.loc[sel, "slot"].to_numpy(dtype=np.int64)

    def split_counts(self) -> dict[str, int]:
        """Number of stored items in each split."""
        return {n: int(len(self.split_slots(n))) for n in SPLIT_NAMES}

    def item(self, key: str) -> tuple[np.ndarray, np.ndarray, dict]:
        """Potential (S, S), patterns (T, S, S) and record of one stored item."""
        rows = self.table[self.table["key"] == key]
        if not len(rows):
            raise LacbedError(f"no stored item with key {key!r}")
        row = rows.iloc[0].to_dict()
        slot = int(row["slot"])
        return np.asarray(self.potentials[slot]), np.asarray(self.patterns[slot]), row


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open a dataset directory, or a release (:func:`lacbed.dataset.release.open_release`).

    The item table is ``metadata.parquet`` plus every record written since (so a dataset can be
    read while a build runs, and only the new records are parsed).

    Raises
    ------
    DatasetError
        If ``path`` is not a lacbed dataset directory.
    """
    import pandas as pd
    import zarr

    p = Path(path)
    if (p / "release.json").is_file():
        from lacbed.dataset.release import open_release

        return open_release(p)
    meta_path = p / "dataset.json"
    if not p.is_dir() or not meta_path.is_file():
        raise DatasetError(
            f"{p} is not a lacbed dataset (no dataset.json); build one with `lacbed dataset build`"
        )
    try:
        settings = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{meta_path} is not valid JSON: {exc}") from None
    if settings.get("format") != "lacbed-dataset":
        raise DatasetError(f"{meta_path} does not describe a lacbed dataset")
    df = _load_table(p)
    if not len(df):
        df = pd.DataFrame(columns=[*RECORD_COLUMNS, "split"])
    ok = df[df["status"] == "ok"].reset_index(drop=True)
    if len(ok):
        # failed rows may lack these fields, which turns the shared column into float
        for col in ("slot", "space_group_number", "n_atoms"):
            if col in ok and ok[col].notna().all():
                ok[col] = ok[col].astype(np.int64)
    failed = df[df["status"] != "ok"].reset_index(drop=True)
    try:
        group = zarr.open_group(str(p / "arrays.zarr"), mode="r")
        pot, pat = group["potential"], group["pattern"]
    except Exception as exc:  # zarr raises several types for a missing or broken store
        raise DatasetError(f"{p}/arrays.zarr cannot be opened: {exc}") from None
    return Dataset(
        path=p, settings=settings, table=ok, failures=failed, potentials=pot, patterns=pat
    )
