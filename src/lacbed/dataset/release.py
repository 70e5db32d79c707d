"""Releases: the compact, append-only form of a dataset that lives in git.

A working dataset (:mod:`lacbed.dataset.store`, Zarr plus one JSON record per material) is where a
build writes; a *release* is what a clone carries and what training reads. ``lacbed dataset pack``
moves the finished materials of a working dataset into new release shards. Layout of a release
directory ``REL``::

    REL/release.json             format, release version, size, thicknesses, engine settings,
                                 sources and their attributions
    REL/splits.json              the frozen prototype -> split plan
                                 (:func:`lacbed.dataset.splits.plan_prototype_splits`)
    REL/shards/shard-NNNNN.h5    write-once shards (never rewritten: git keeps every version)
    REL/README.md                the datasheet (:mod:`lacbed.dataset.datasheet`)

A shard (HDF5) holds, for ``n`` materials:

``keys`` (n,) str
    Item keys.
``records`` (bytes,) uint8, gzip
    A UTF-8 JSON array of n records, one per material: the exact crystal (:func:`lacbed.crystal.serialise.
    crystal_to_record`), source, parent, derivation, engine summary (version, beam counts,
    convergence estimate, timings), CPU time, prototype label, status ('ok', 'unconverged' or
    'failed') and reason.
``pattern_<sym>`` (m, T, P) float16, ``row_<sym>`` (m,) int
    The symmetry-unique wedge of each stored pattern (``sym`` = '4mm': P = N(N+1)/2 pixels of
    :func:`lacbed.simulate.symmetry.wedge_pixels`; '2mm': N²; '1': 4N²) and the row in ``keys``
    it belongs to. float16 keeps 11 significant bits (relative error ≤ 2⁻¹¹ ≈ 4.9e-4 per pixel,
    far below the 0.5 % convergence criterion in Z); gzip with byte shuffle.

The projected potential is not stored: it is rebuilt exactly from the crystal record when a
release is opened (:func:`open_release`), which keeps the release at about a tenth of the size.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lacbed._io import atomic_path
from lacbed.dataset.splits import split_of_prototype
from lacbed.dataset.store import (
    Dataset,
    DatasetError,
    _canonical,
    _jsonable,
    _write_json,
    open_dataset,
)
from lacbed.errors import SettingsError

__all__ = [
    "CONVERGENCE_LIMIT",
    "PackReport",
    "Release",
    "is_release",
    "item_status",
    "open_release",
    "pack_release",
    "release_keys",
]

log = logging.getLogger(__name__)

RELEASE_FORMAT = "lacbed-release"
FORMAT_VERSION = 1
#: Materials per shard (about 5.5 MB at 128 px and four thicknesses: 12.8 kB of wedges per
#: material, plus its compressed record).
SHARD_ITEMS: int = 400
#: An item whose convergence estimate exceeds this Z [fraction] is 'unconverged'.
CONVERGENCE_LIMIT: float = 0.005
#: Largest difference between a stored pattern and its symmetric copy from the wedge [-]
#: (the engine fills the pattern by exact copies; float32 storage is exact for copies).
SYMMETRY_TOL: float = 1e-6
_SYMMETRIES = ("4mm", "2mm", "1")
#: Items of engine revisions whose outputs agree to this Z [fraction] belong to one release.
ENGINE_AGREEMENT: float = 0.001
#: Materials re-simulated per side (new items of a revision, released items) by the engine check.
ENGINE_CHECK_ITEMS: int = 2


def is_release(path: str | os.PathLike) -> bool:
    """True when ``path`` is a release directory (has ``release.json``)."""
    return (Path(path) / "release.json").is_file()


def item_status(record: dict, *, max_strong: int | None = None) -> tuple[str, str | None]:
    """Release status of a finished working-dataset record, and the reason when not 'ok'.

    'unconverged' when the engine's convergence estimate (Z against twice the strong beams of
    its final solve) exceeds :data:`CONVERGENCE_LIMIT`, whether or not the beam cap stopped its
    budget; without an estimate, when the engine reports that the cap stopped the budget short
    (``budget_capped``) or — for records of an engine that gives neither — when the largest
    per-tile strong-beam count reached ``max_strong`` (the cap).
    """
    if record.get("status") == "unconverged":  # not solved by the build (no pattern)
        return "unconverged", record.get("reason") or "not converged"
    if record.get("status") != "ok":
        return "failed", record.get("reason") or "failed"
    eng = record.get("engine") or {}
    est = eng.get("convergence_estimate")
    capped = "; the beam cap stopped the budget" if eng.get("budget_capped") else ""
    if est is not None:
        if est > CONVERGENCE_LIMIT:
            return "unconverged", f"convergence estimate Z = {100 * est:.2f} % > 0.5 %{capped}"
        return "ok", None
    if eng.get("budget_capped"):
        return "unconverged", "the beam cap stopped the adaptive budget short"
    if "budget_capped" not in eng and max_strong is not None:
        if (eng.get("n_strong_max") or 0) >= max_strong:
            return "unconverged", f"strong beams reached the cap ({max_strong}) in some tile"
    return "ok", None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} cannot be read as JSON: {exc}") from None


def _shard_paths(path: Path) -> list[Path]:
    d = path / "shards"
    return sorted(d.glob("shard-*.h5")) if d.is_dir() else []


def _read_shard_index(shard: Path) -> tuple[list[str], list[dict], dict[int, tuple[str, int]]]:
    """Keys and records of a shard, and for each stored pattern its (symmetry, wedge row) by
    record index, in one read of the file."""
    import h5py

    try:
        with h5py.File(shard, "r") as f:
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["keys"][()]]
            recs = json.loads(f["records"][()].tobytes().decode("utf-8"))
            rows = {
                int(r): (sym, j)
                for sym in _SYMMETRIES
                if f"row_{sym}" in f
                for j, r in enumerate(f[f"row_{sym}"][()])
            }
    except (OSError, KeyError, ValueError) as exc:  # h5py, a missing dataset, bad JSON
        raise DatasetError(f"{shard} cannot be read as a release shard: {exc}") from None
    if len(recs) != len(keys):
        raise DatasetError(f"{shard}: {len(keys)} keys but {len(recs)} records")
    return keys, recs, rows


def _release_status(path: Path) -> dict[str, str]:
    """Status of the latest record of every material in a release (a later shard wins)."""
    status: dict[str, str] = {}
    for shard in _shard_paths(path):
        keys, recs, _ = _read_shard_index(shard)
        status.update((k, r["status"]) for k, r in zip(keys, recs, strict=True))
    return status


def release_keys(
    path: str | os.PathLike, *, failed: bool = True, unconverged: bool = True
) -> set[str]:
    """Keys of the materials in a release; empty when ``path`` is no release.

    ``failed=False`` leaves out the materials whose latest record is a failure, and
    ``unconverged=False`` those whose latest record is unconverged (to retry them).
    """
    p = Path(path)
    if not is_release(p):
        return set()
    drop = {s for s, keep in (("failed", failed), ("unconverged", unconverged)) if not keep}
    return {k for k, st in _release_status(p).items() if st not in drop}


@dataclass
class PackReport:
    """What :func:`pack_release` added.

    Attributes
    ----------
    n_ok, n_unconverged, n_failed : int
        New materials by status.
    n_already : int
        Finished materials of the working dataset already in the release (skipped).
    shards : list of Path
        New shard files.
    bytes_written : int
        Size of the new shards [bytes].
    engine_checks : list of dict
        Engine revisions checked by this pack (revision, materials, max Z).
    """

    n_ok: int = 0
    n_unconverged: int = 0
    n_failed: int = 0
    n_already: int = 0
    shards: list[Path] = field(default_factory=list)
    bytes_written: int = 0
    engine_checks: list[dict] = field(default_factory=list)


def _release_meta(ds: Dataset, release_version: str) -> dict:
    s = ds.settings
    return {
        "format": RELEASE_FORMAT,
        "format_version": FORMAT_VERSION,
        "release": str(release_version),
        "size": int(s["size"]),
        "thicknesses_nm": [float(t) for t in s["thicknesses_nm"]],
        "settings": s["settings"],
        "sources": s.get("sources", []),
        "attribution": s.get("attribution", []),
    }


def _check_release_meta(old: dict, new: dict, path: Path) -> None:
    if old.get("format") != RELEASE_FORMAT:
        raise DatasetError(f"{path}/release.json does not describe a lacbed release")
    if old.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"{path} has release format {old.get('format_version')}, this lacbed reads "
            f"{FORMAT_VERSION}"
        )
    for key in ("size", "thicknesses_nm", "settings"):
        if _canonical(old.get(key)) != _canonical(new.get(key)):
            raise SettingsError(
                f"the working dataset was built with {key}={_canonical(new.get(key))} but the "
                f"release {path} holds {_canonical(old.get(key))}; a change of settings is a new "
                "release, never a mix"
            )


def _prototype(rec: dict, plan: dict) -> str:
    """Prototype label of a record: its parent family's (from the plan), else its own."""
    from lacbed.crystal.serialise import crystal_from_record, prototype_label

    group = rec.get("group") or rec["key"]
    label = plan.get("groups", {}).get(group)
    if label is None and rec.get("crystal"):
        label = prototype_label(crystal_from_record(rec["crystal"]))
    return label or f"unknown:{group}"


def _wedge(pattern: np.ndarray, sym: str, key: str) -> np.ndarray:
    """The wedge of a (T, S, S) pattern, after checking the pattern has symmetry ``sym``."""
    from lacbed.simulate.symmetry import fill_from_wedge, wedge_pixels

    size = pattern.shape[-1]
    rows, cols = wedge_pixels(size, sym)
    w = pattern[:, rows, cols]
    if sym != "1":
        err = float(np.max(np.abs(fill_from_wedge(w, rows, cols, size, sym) - pattern)))
        if err > SYMMETRY_TOL:
            raise DatasetError(f"{key}: the stored pattern breaks its {sym} symmetry by {err:.2g}")
    return w


def _check_potential(rec: dict, stored: np.ndarray, size: int, scattering: str) -> None:
    """The potential rebuilt from the crystal record equals the one the build stored."""
    from lacbed.crystal.serialise import crystal_from_record
    from lacbed.scattering import projected_potential

    pot = projected_potential(crystal_from_record(rec["crystal"]), size, scattering=scattering)
    err = float(np.max(np.abs(pot.astype(np.float32) - stored)))
    if err > 1e-4 * max(1.0, float(np.max(np.abs(stored)))):
        raise DatasetError(
            f"{rec['key']}: the potential rebuilt from its crystal record differs from the stored "
            f"one by {err:.3g} V·Å; the record does not describe the crystal"
        )


def _shard_items(ds: Dataset, recs: list[dict], plan: dict) -> list[dict]:
    """Release records (and wedges) of new working-dataset records."""
    from lacbed.simulate.engine import MAX_STRONG

    scattering = ds.settings["settings"].get("scattering", "kirkland")
    out = []
    for rec in recs:
        status, reason = item_status(rec, max_strong=MAX_STRONG)
        if rec.get("status") == "ok" and not rec.get("crystal"):
            raise DatasetError(
                f"{rec['key']}: the working record has no crystal record (built by a lacbed "
                "before releases); rebuild it"
            )
        new = {k: v for k, v in rec.items() if k not in ("slot", "split")}
        new.update(status=status, reason=reason)
        new["prototype"] = _prototype(rec, plan) if rec.get("crystal") else None
        item = {"record": new, "wedge": None, "symmetry": None}
        if rec.get("status") == "ok":
            slot = int(rec["slot"])
            pat = np.asarray(ds.patterns[slot], dtype=np.float32)
            if not np.all(np.isfinite(pat)):
                raise DatasetError(f"{rec['key']}: non-finite values in the stored pattern")
            _check_potential(rec, np.asarray(ds.potentials[slot]), ds.size, scattering)
            sym = (rec.get("engine") or {}).get("symmetry") or "1"
            item["symmetry"] = sym
            item["wedge"] = _wedge(pat, sym, rec["key"]).astype(np.float16)
        out.append(item)
    return out


def resimulate(record: dict, size: int, thicknesses_nm, settings: dict) -> np.ndarray:
    """Pattern (T, S, S) of a record's crystal computed now, at the recorded settings (and with
    the engine's second look and escalation steps as recorded; records from before those
    fields: the engine's defaults, which they ran with)."""
    from lacbed.crystal.serialise import crystal_from_record
    from lacbed.dataset.build import BuildSettings
    from lacbed.simulate import simulate_lacbed

    bs = BuildSettings(size=size, thicknesses_nm=tuple(thicknesses_nm), **settings)
    crystal = crystal_from_record(record["crystal"])
    eng = record.get("engine") or {}
    look, steps = bool(eng.get("second_look", True)), eng.get("budget_steps")
    pat = simulate_lacbed(
        crystal, bs.thicknesses_nm, n_jobs=1, second_look=look,
        budget_steps=None if steps is None else tuple(steps), **bs.simulate_kwargs(),
    )  # fmt: skip
    return np.asarray(pat.intensities, dtype=np.float64).reshape(len(bs.thicknesses_nm), size, size)


def _sample(recs: list[dict], k: int, seed: str) -> list[dict]:
    """``k`` of the cheaper half (recorded CPU time) of ``recs``, chosen by a seeded hash."""
    import hashlib

    ok = sorted(recs, key=lambda r: (r.get("cpu_s") or 0.0, r["key"]))
    cheap = ok[: max(k, (len(ok) + 1) // 2)]
    return sorted(cheap, key=lambda r: hashlib.sha256((seed + r["key"]).encode()).hexdigest())[:k]


def _engine_checks(ds: Dataset, new: list[dict], rel: Path, meta: dict, simulate) -> list[dict]:  # noqa: ANN001
    """Check that the engine revisions of ``new`` items agree with the released ones.

    Every revision not yet checked: :data:`ENGINE_CHECK_ITEMS` of its new items and as many
    released materials are re-simulated with the code running now; all must agree with their
    stored patterns to Z ≤ :data:`ENGINE_AGREEMENT` (new ≈ now ≈ released), otherwise the
    physics changed and the items belong to a new release.
    """
    from lacbed.dataset.build import source_revision
    from lacbed.metrics import z_score

    checked = {c["revision"] for c in meta.get("engine_checks", [])}
    by_rev: dict[str, list[dict]] = {}
    for r in new:
        if r.get("status") == "ok":
            by_rev.setdefault(str((r.get("engine") or {}).get("revision")), []).append(r)
    released = open_release(rel) if is_release(rel) and _shard_paths(rel) else None
    out = []
    size, th, settings = ds.size, ds.thicknesses_nm, ds.settings["settings"]
    for rev in sorted(set(by_rev) - checked):
        zs = []
        for r in _sample(by_rev[rev], ENGINE_CHECK_ITEMS, rev):
            stored = np.asarray(ds.patterns[int(r["slot"])], dtype=np.float64)
            zs.append((r["key"], float(np.max(z_score(simulate(r, size, th, settings), stored)))))
        if released is not None:
            ok = [r for r in released.records if r["status"] == "ok"]
            slot = dict(zip(released.table["key"], released.table["slot"], strict=True))
            for r in _sample(ok, ENGINE_CHECK_ITEMS, rev):
                stored = released.patterns[int(slot[r["key"]])]
                z = z_score(simulate(r, size, th, settings), stored)
                zs.append((r["key"], float(np.max(z))))
        worst = max(zs, key=lambda kz: kz[1]) if zs else ("", 0.0)
        if worst[1] > ENGINE_AGREEMENT:
            raise DatasetError(
                f"items of engine revision {rev} are not what this lacbed computes: "
                f"{worst[0]} differs by Z = {100 * worst[1]:.3f} % (> {100 * ENGINE_AGREEMENT:g} %); "
                "a change of physics starts a new release version"
            )
        out.append(
            {
                "revision": rev,
                "checked_with": source_revision(),
                "materials": [k for k, _ in zs],
                "max_z": worst[1],
            }
        )
    return out


def _write_shard(path: Path, items: list[dict]) -> None:
    import h5py

    str_t = h5py.string_dtype("utf-8")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = RELEASE_FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        keys = [it["record"]["key"] for it in items]
        f.create_dataset("keys", data=np.array(keys, dtype=object), dtype=str_t)
        # all records as one UTF-8 JSON array in a gzip-compressed byte array (variable-length
        # strings would bypass HDF5's compression filters)
        blob = json.dumps([_jsonable(it["record"]) for it in items], sort_keys=True)
        f.create_dataset(
            "records",
            data=np.frombuffer(blob.encode("utf-8"), dtype=np.uint8),
            compression="gzip",
            compression_opts=9,
        )
        for sym in _SYMMETRIES:
            rows = [i for i, it in enumerate(items) if it["symmetry"] == sym]
            if not rows:
                continue
            data = np.stack([items[i]["wedge"] for i in rows])
            f.create_dataset(f"row_{sym}", data=np.array(rows, dtype=np.int32))
            f.create_dataset(
                f"pattern_{sym}",
                data=data,
                chunks=(1, *data.shape[1:]),
                compression="gzip",
                compression_opts=9,
                shuffle=True,
            )


def pack_release(
    work: str | os.PathLike,
    release: str | os.PathLike,
    *,
    plan: dict | None = None,
    release_version: str | None = None,
    shard_items: int = SHARD_ITEMS,
    check_engine: bool = True,
    simulate=None,  # noqa: ANN001 (callable)
) -> PackReport:
    """Move the finished materials of a working dataset into new shards of a release.

    Materials already in the release are skipped and no shard is ever rewritten; a released
    failure that a later build computed (``--retry-failed``), or a released unconverged material
    that a later build converged (``--retry-unconverged``), is packed again, and the newer
    record wins when the release is read. Every packed pattern is checked: finite, with the symmetry the engine
    used, and the potential rebuilt from the stored crystal record equal to the one the build
    computed.

    Parameters
    ----------
    work : path-like
        Working dataset (``lacbed dataset build -o WORK``).
    release : path-like
        Release directory (created with ``release.json`` on first use).
    plan : dict, optional
        Prototype split plan (:func:`lacbed.dataset.splits.plan_prototype_splits`); written to
        ``splits.json`` when the release has none. Required for a new release.
    release_version : str, optional
        Version of a new release (ignored when the release exists); default: the engine physics
        version of the records (``settings["physics_version"]``, 1 where none is recorded).
    shard_items : int
        Most materials per shard.
    check_engine : bool
        Re-simulate a few new and released materials of every engine revision not yet checked
        (:data:`ENGINE_CHECK_ITEMS` each) and refuse to pack when they differ from the stored
        patterns by more than Z = :data:`ENGINE_AGREEMENT`; the checks are kept in
        ``release.json`` (``engine_checks``).
    simulate : callable, optional
        ``simulate(record, size, thicknesses_nm, settings) -> (T, S, S)`` used by the check
        (default :func:`resimulate`: the engine as it is now).

    Returns
    -------
    PackReport
    """
    from lacbed.dataset.store import read_records
    from lacbed.simulate.engine import MAX_STRONG

    rel = Path(release)
    ds = open_dataset(work)
    meta = _release_meta(ds, release_version or "1")
    if is_release(rel):
        _check_release_meta(_read_json(rel / "release.json"), meta, rel)
    elif rel.exists() and (not rel.is_dir() or any(p.name != "splits.json" for p in rel.iterdir())):
        raise DatasetError(f"{rel} exists and is not a lacbed release (no release.json)")
    if (rel / "splits.json").is_file():
        plan = _read_json(rel / "splits.json")
    elif plan is None:
        raise DatasetError(
            f"{rel} has no splits.json; give a split plan (plan_release_splits), as "
            "`lacbed dataset pack` does from the sources"
        )
    status = _release_status(rel)
    recs = sorted(read_records(work), key=lambda r: r["key"])
    # new materials, released failures that a retried build has now computed, and released
    # unconverged materials that a retried build has now converged
    new = [
        r
        for r in recs
        if r["key"] not in status
        or (status[r["key"]] == "failed" and r.get("status") == "ok")
        or (status[r["key"]] == "unconverged" and item_status(r, max_strong=MAX_STRONG)[0] == "ok")
    ]
    report = PackReport(n_already=len(recs) - len(new))
    physics = _physics_version(new)
    if is_release(rel):
        meta = _read_json(rel / "release.json")
    if physics is not None and not is_release(rel) and release_version is None:
        meta["release"] = str(physics)
    if physics is not None:
        held = meta.setdefault("physics_version", physics if not is_release(rel) else 1)
        if held != physics:
            raise DatasetError(
                f"the working dataset was computed with engine physics version {physics}, the "
                f"release {rel} holds version {held}: a change of physics starts a new release "
                "version (pack into a new release directory)"
            )
    sim = simulate or resimulate
    checks = _engine_checks(ds, new, rel, meta, sim) if check_engine else []
    report.engine_checks = checks
    rel.mkdir(parents=True, exist_ok=True)
    if checks or not is_release(rel):
        meta["engine_checks"] = [*meta.get("engine_checks", []), *checks]
        _write_json(rel / "release.json", meta)
    if not (rel / "splits.json").is_file():
        _write_json(rel / "splits.json", plan)
    existing = _shard_paths(rel)
    next_id = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=-1)
    for start in range(0, len(new), max(1, int(shard_items))):
        items = _shard_items(ds, new[start : start + shard_items], plan)
        shard = rel / "shards" / f"shard-{next_id:05d}.h5"
        _write_shard(shard, items)
        next_id += 1
        report.shards.append(shard)
        report.bytes_written += shard.stat().st_size
        for it in items:
            st = it["record"]["status"]
            setattr(report, f"n_{st}", getattr(report, f"n_{st}") + 1)
        log.info("wrote %s (%d materials)", shard, len(items))
    return report


def _physics_version(recs: list[dict]) -> int | None:
    """The one engine physics version of the computed records (1 where none is recorded)."""
    found = {
        int((r.get("engine") or {}).get("physics_version", 1))
        for r in recs
        if r.get("status") == "ok"
    }
    if len(found) > 1:
        raise DatasetError(
            f"the working dataset mixes engine physics versions {sorted(found)}; a release "
            "holds one (rebuild the older materials in a new working dataset)"
        )
    return found.pop() if found else None


def _read_shard(shard: Path) -> list[tuple[dict, tuple[Path, str, int] | None, int]]:
    """Records of a shard, each with where its wedge is (shard, symmetry, row) or None, and
    the shard's record count."""
    _, recs, rows = _read_shard_index(shard)
    loc = {i: (shard, sym, j) for i, (sym, j) in rows.items()}
    return [(rec, loc.get(i), len(recs)) for i, rec in enumerate(recs)]


class _Potentials:
    """Projected potentials [V·Å] of a release, rebuilt from the crystal records on access.

    A rebuild costs about 1.5 ms per atom of the cell (60 ms for a typical 40-site cell), so
    rebuilt potentials are kept in a per-shard cache file (``<cache>/release-potentials/``, a
    float32 array per shard, NaN where not yet computed) keyed by the shard's SHA-256: shards
    never change, so the cache can never be stale.
    """

    def __init__(
        self,
        records: list[dict],
        items: list[tuple[Path, int, int]],
        size: int,
        scattering: str,
        cache: Path | None,
    ) -> None:
        self._records, self._items = records, items
        self._size, self._scattering, self._cache = size, scattering, cache
        self._arrays: dict[Path, np.ndarray | None] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self._records), self._size, self._size)

    def __len__(self) -> int:
        return len(self._records)

    def _cache_array(self, shard: Path, n: int) -> np.ndarray | None:
        if self._cache is None:
            return None
        if shard not in self._arrays:
            self._arrays[shard] = _open_cache(shard, n, self._size, self._scattering, self._cache)
        return self._arrays[shard]

    def __getitem__(self, slot: int) -> np.ndarray:
        from lacbed.crystal.serialise import crystal_from_record
        from lacbed.scattering import projected_potential

        shard, i, n = self._items[int(slot)]
        arr = self._cache_array(shard, n)
        if arr is not None and not np.isnan(arr[i, 0, 0]):
            return np.array(arr[i])
        crystal = crystal_from_record(self._records[int(slot)]["crystal"])
        pot = projected_potential(crystal, self._size, scattering=self._scattering)
        pot = pot.astype(np.float32)
        if arr is not None:
            arr[i] = pot
            arr.flush()
        return pot


def _open_cache(shard: Path, n: int, size: int, scattering: str, cache: Path) -> np.ndarray | None:
    """Memory-mapped cache of a shard's potentials (created NaN-filled), None if impossible."""
    import hashlib

    digest = hashlib.sha256(shard.read_bytes()).hexdigest()[:20]
    path = cache / "release-potentials" / f"{digest}-{size}-{scattering}.npy"
    try:
        if not path.is_file():
            with atomic_path(path) as tmp:
                arr = np.lib.format.open_memmap(
                    tmp, mode="w+", dtype=np.float32, shape=(n, size, size)
                )
                arr[:] = np.nan
                arr.flush()
                del arr
        arr = np.load(path, mmap_mode="r+")
    except (OSError, ValueError) as exc:
        log.warning(
            "no potential cache for %s (%s); potentials are rebuilt on every access", shard, exc
        )
        return None
    return arr if arr.shape == (n, size, size) else None


class _Patterns:
    """I₀₀₀ patterns (T, S, S) of a release, expanded from their wedges on access."""

    def __init__(self, where: list[tuple[Path, str, int]], size: int, n_t: int) -> None:
        self._where, self._size, self._n_t = where, size, n_t
        self._cache: dict[tuple[Path, str], np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self._where), self._n_t, self._size, self._size)

    def __len__(self) -> int:
        return len(self._where)

    def wedge(self, slot: int) -> tuple[np.ndarray, str]:
        """Stored wedge values (T, P) float16 of one item and its symmetry."""
        import h5py

        shard, sym, row = self._where[int(slot)]
        if (shard, sym) not in self._cache:
            with h5py.File(shard, "r") as f:
                self._cache[(shard, sym)] = f[f"pattern_{sym}"][()]
        return self._cache[(shard, sym)][row], sym

    def __getitem__(self, slot: int) -> np.ndarray:
        from lacbed.simulate.symmetry import fill_from_wedge, wedge_pixels

        w, sym = self.wedge(slot)
        rows, cols = wedge_pixels(self._size, sym)
        w = w.astype(np.float32)
        if sym == "1":
            return w.reshape(self._n_t, self._size, self._size)
        return fill_from_wedge(w, rows, cols, self._size, sym).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Release(Dataset):
    """A release opened for reading; a :class:`~lacbed.dataset.store.Dataset` for training code.

    ``table`` has one row per stored pattern (status 'ok' or 'unconverged') with its ``slot``,
    ``prototype``, ``split`` (None for unconverged materials, which stay out of every split) and
    ``test_real`` (real, non-derived materials of the test split); ``failures`` lists the
    materials without a pattern with their reason: failed ones, and unconverged ones the build
    did not solve (the engine's pilot estimate was beyond reach, ``skip_unconverged``). ``potentials`` and ``patterns`` are indexed by slot and built on
    access (potential from the crystal record, pattern from its wedge). ``records`` holds the
    full JSON record of every material, and ``plan`` the frozen split plan.
    """

    @property
    def records(self) -> list[dict]:
        """Full records of all materials (any status), in shard order."""
        return self._extra["records"]

    @property
    def plan(self) -> dict:
        """The frozen prototype split plan (``splits.json``)."""
        return self._extra["plan"]

    def split_slots(self, name: str) -> np.ndarray:
        """Slots of split ``name`` ('train', 'val', 'test' or 'test-real'), sorted by key."""
        if name == "test-real":
            sel = self.table["test_real"].astype(bool)
            return self.table.loc[sel, "slot"].to_numpy(dtype=np.int64)
        return super().split_slots(name)

    def split_counts(self) -> dict[str, int]:
        """Number of materials in each split, and in 'test-real'."""
        out = super().split_counts()
        out["test-real"] = int(len(self.split_slots("test-real")))
        return out


def _table(rows: list[dict]):
    import pandas as pd

    from lacbed.dataset.store import RECORD_COLUMNS

    cols = [*RECORD_COLUMNS, "prototype", "cpu_s", "split", "test_real"]
    flat = []
    for r in rows:
        d = {c: r.get(c) for c in cols}
        eng = r.get("engine") or {}
        for k in ("n_strong_max", "n_strong_mean", "n_weak_mean", "convergence_estimate"):
            d[k] = eng.get(k)
        d["engine_version"] = eng.get("version")
        flat.append(d)
    df = pd.DataFrame(flat, columns=None if flat else cols)
    for col in ("slot", "space_group_number", "n_atoms"):
        if len(df) and col in df and df[col].notna().all():
            df[col] = df[col].astype(np.int64)
    return df


def _cache_root(cache: bool | str | os.PathLike) -> Path | None:
    if cache is False or cache is None:
        return None
    if cache is True:
        from lacbed.structures.sources import cache_dir

        return cache_dir()
    return Path(cache)


def open_release(path: str | os.PathLike, *, cache: bool | str | os.PathLike = True) -> Release:
    """Open a release directory for reading (see the module notes for its layout).

    Parameters
    ----------
    path : path-like
        Release directory.
    cache : bool or path-like
        Where rebuilt potentials are cached: True for lacbed's user cache directory
        (``$LACBED_CACHE_DIR``, else ``$XDG_CACHE_HOME/lacbed`` or ``~/.cache/lacbed``), a
        folder, or False for none.

    Raises
    ------
    DatasetError
        If ``path`` is not a release or a shard cannot be read.
    """
    p = Path(path)
    if not is_release(p):
        raise DatasetError(f"{p} is not a lacbed release (no release.json)")
    meta = _read_json(p / "release.json")
    if meta.get("format") != RELEASE_FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{p}/release.json is not a release of format {FORMAT_VERSION}")
    plan = _read_json(p / "splits.json") if (p / "splits.json").is_file() else {}
    latest: dict[str, tuple] = {}
    for shard in _shard_paths(p):
        for i, (rec, loc, n) in enumerate(_read_shard(shard)):
            # a later shard's record wins (a retried failure)
            latest[rec["key"]] = (rec, loc, (shard, i, n))
    records, stored, failed, where, items = [], [], [], [], []
    for rec, loc, item in latest.values():
        records.append(rec)
        if loc is None:
            failed.append(rec)
            continue
        split = split_of_prototype(rec["prototype"], plan) if rec["status"] == "ok" else None
        row = dict(rec, slot=len(stored), split=split)
        row["test_real"] = split == "test" and not rec.get("parent")
        stored.append(row)
        where.append(loc)
        items.append(item)
    table = _table(stored)
    if len(table):
        table = table.sort_values("key", kind="stable").reset_index(drop=True)
    settings = dict(meta, format="lacbed-release")
    size, n_t = int(meta["size"]), len(meta["thicknesses_nm"])
    scattering = meta["settings"].get("scattering", "kirkland")
    return Release(
        path=p,
        settings=settings,
        table=table,
        failures=_table(failed),
        potentials=_Potentials(stored, items, size, scattering, _cache_root(cache)),
        patterns=_Patterns(where, size, n_t),
        _extra={"records": records, "plan": plan},
    )


def plan_release_splits(entries, *, progress=None) -> dict:  # noqa: ANN001 (list of Entry)
    """Plan the prototype splits of a release from its structure entries.

    Only real structures (no parent) take part: a derived structure follows its parent's
    prototype. Takes about 30 ms per structure (spglib on the conventional cell).

    Parameters
    ----------
    entries : sequence of lacbed.structures.Entry
    progress : callable, optional
        ``progress(done, total)``.
    """
    from lacbed.crystal.serialise import prototype_label
    from lacbed.dataset.splits import plan_prototype_splits

    real = [e for e in entries if not e.parent]
    labels = {}
    for i, e in enumerate(real):
        labels[e.key] = prototype_label(e.crystal)
        if progress:
            progress(i + 1, len(real))
    return plan_prototype_splits(labels)
