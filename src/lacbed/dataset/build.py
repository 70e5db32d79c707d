"""Build a dataset of (projected potential, LACBED pattern) pairs on a Dask cluster.

One task per material computes the projected potential and the 000 patterns at every requested
thickness (:func:`compute_item`, run on a worker). The client process — and only it — writes the
results into the dataset as the futures complete (:class:`~lacbed.dataset.store.DatasetWriter`),
each material atomically, so a build killed at any moment loses no finished material and a rerun
of the same command skips everything already done (succeeded or failed) and never duplicates an
item. A material that fails (engine error, too many atoms, NaN in the result) is recorded with
its reason and the build goes on.

The same code runs on a :class:`distributed.LocalCluster` (default: processes with one thread
each) or on an existing cluster given by its scheduler address.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lacbed.dataset.store import DatasetWriter
from lacbed.errors import LacbedError, SettingsError, UnconvergedError
from lacbed.structures.entry import Entry, Rejected

__all__ = ["BuildReport", "BuildSettings", "build_dataset", "compute_item", "select_work"]

log = logging.getLogger(__name__)


#: Largest accepted I₀₀₀. With absorption the transmitted intensity cannot exceed the incident
#: one, |ψ₀|² ≤ 1; 1 % slack for the first-order absorption of the fast solver, far below the
#: blow-ups (I ≫ 1) that an ill-conditioned pixel produces.
MAX_INTENSITY = 1.01
#: Most negative accepted I₀₀₀ (round-off of a float32 intensity that should be ≥ 0).
MIN_INTENSITY_SLACK = 1e-6


@dataclass(frozen=True)
class BuildSettings:
    """Engine settings of a dataset build (identical for every item).

    Attributes
    ----------
    size : int
        Side of the potential and pattern images [pixels].
    thicknesses_nm : tuple of float
        Specimen thicknesses of the stored patterns [nm].
    voltage_kv : float
        Accelerating voltage [kV].
    half_width : float or None
        Half-width of the pattern in tangential wave vector [1/Å] (None: the engine's 4/a).
    scattering, absorption : str
        Scattering-factor parametrisation and absorption model (see ``lacbed simulate``).
    kappa : float
        U′/U of the proportional absorption model [-].
    solver : str
        'fast' or 'exact' eigen-solver.
    strong_beams : int or None
        Beam budget (None: the engine's adaptive default).
    max_g : float or None
        Largest |g| of the beam pool [1/Å] (None: the engine's default).
    max_atoms : int or None
        Materials with more sites in the conventional cell fail with that reason (None: no limit).
    seed : int
        Seed of the structure augmentation (part of the settings so that a resumed build uses the
        same derived structures).
    """

    size: int = 128
    thicknesses_nm: tuple[float, ...] = (100.0,)
    voltage_kv: float = 200.0
    half_width: float | None = None
    scattering: str = "kirkland"
    absorption: str = "bird-king"
    kappa: float = 0.078
    solver: str = "fast"
    strong_beams: int | None = None
    max_g: float | None = None
    max_atoms: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        t = tuple(float(x) for x in np.atleast_1d(self.thicknesses_nm))
        object.__setattr__(self, "thicknesses_nm", t)
        if not t or any(not (math.isfinite(x) and x > 0) for x in t):
            raise SettingsError(f"thicknesses must be positive numbers of nm, got {list(t)}")
        if len(set(t)) != len(t):
            raise SettingsError(f"thicknesses must be distinct, got {list(t)}")
        if int(self.size) < 4:
            raise SettingsError(f"size must be at least 4 pixels, got {self.size}")
        if not self.voltage_kv > 0:
            raise SettingsError(f"voltage must be positive [kV], got {self.voltage_kv}")

    def engine_settings(self) -> dict:
        """Settings stored in ``dataset.json`` and compared when a build is resumed."""
        d = asdict(self)
        d.pop("size")
        d.pop("thicknesses_nm")
        return d

    def simulate_kwargs(self) -> dict:
        """Keyword arguments of :func:`lacbed.simulate.simulate_lacbed`."""
        kw: dict[str, Any] = {
            "voltage_kv": self.voltage_kv,
            "size": self.size,
            "scattering": self.scattering,
            "absorption": self.absorption,
            "kappa": self.kappa,
            "solver": self.solver,
        }
        for k in ("half_width", "strong_beams", "max_g"):
            if getattr(self, k) is not None:
                kw[k] = getattr(self, k)
        return kw


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


def compute_item(crystal, settings: BuildSettings, *, second_look: bool = False) -> dict:  # noqa: ANN001
    """Compute one material on a worker: potential, patterns and timing.

    Never raises for a bad material: failures come back as ``{"status": "failed", "reason": ...}``,
    and a material the engine's adaptive budget cannot converge as ``{"status": "unconverged",
    "reason": ..., "engine": ...}`` without a pattern (``skip_unconverged``: its best pilot
    estimate exceeds the skip margin × the 0.5 % target, so the pattern would most likely stay
    out of every split anyway).

    ``second_look`` gives a material the first pass leaves unconverged the engine's second look
    (``simulate_lacbed(second_look=True)``). Off by default: in release 2's build it took 28 % of
    the CPU of the 128 materials built with it and converted 5 of them (~265 s per conversion
    against ~32 s per converged material without it; today's rule alone: 35 % of 38 materials' CPU,
    1 conversion; ``benchmarks/build_second_look.py``), so while new materials remain it is deferred
    to ``lacbed dataset build --retry-unconverged``, which turns it on. Without it the build also
    solves only what a pilot calls converged (``skip_margin`` 1 instead of 2): the final solves
    after a pilot between 1× and 2× the target converged 4 of 18 materials for ~715 s of CPU each
    (same script; 14 of those 18 solves are from engine revisions before the second look), and it
    escalates to 1.5× the strong beams only, not 2× (``budget_steps=(1.5,)``): replayed over release
    2's records with margin 1, the 2× step converted 5 of the 13 materials that reached it at
    104-388 s of CPU per conversion (same script). A material that converges gets the same pattern
    either way, or none (listed unconverged, for the retry). The gain is in the rate while new
    materials remain: the retry recomputes each material from scratch (its pilots again, the solves
    margin 2 allows, then the second look), so "defer, then retry all" costs more CPU in total than
    one pass with the look; it spends it last.

    Returns
    -------
    dict
        ``status`` ('ok' | 'unconverged' | 'failed'), ``reason``, ``potential`` (S, S) float32 [V·Å],
        ``patterns`` (T, S, S) float32, ``time_s`` (wall) and ``cpu_s`` (CPU) [s], ``n_beams``,
        ``worker_pid``.
    """
    t0 = time.perf_counter()
    c0 = time.process_time()
    out: dict[str, Any] = {"worker_pid": os.getpid()}
    try:
        if settings.max_atoms is not None and crystal.n_sites > settings.max_atoms:
            raise SettingsError(
                f"too many atoms: {crystal.n_sites} sites > max_atoms={settings.max_atoms}"
            )
        from lacbed.scattering import projected_potential
        from lacbed.simulate import simulate_lacbed
        from lacbed.simulate.engine import BUDGET_STEPS, SKIP_MARGIN

        pot = projected_potential(crystal, size=settings.size, scattering=settings.scattering)
        pot = np.asarray(pot, dtype=np.float32)
        # one thread per task: the cluster runs one task per core (the engine's advice for builds)
        pattern = simulate_lacbed(
            crystal,
            settings.thicknesses_nm,
            n_jobs=1,
            skip_unconverged=True,
            # first pass only: solve only what a pilot calls converged (the rest waits for the
            # second look, which judges the ambiguous ones with 8x the pixels)
            skip_margin=SKIP_MARGIN if second_look else 1.0,
            budget_steps=None if second_look else BUDGET_STEPS[:1],
            second_look=second_look,
            **settings.simulate_kwargs(),
        )
        pats = np.asarray(pattern.intensities, dtype=np.float32).reshape(
            len(settings.thicknesses_nm), settings.size, settings.size
        )
        if not (np.all(np.isfinite(pot)) and np.all(np.isfinite(pats))):
            raise FloatingPointError("NaN or inf in the potential or the pattern")
        if pats.max() > MAX_INTENSITY or pats.min() < -MIN_INTENSITY_SLACK:
            raise FloatingPointError(
                f"unphysical pattern: I000 spans {pats.min():.3g}..{pats.max():.3g}, outside [0, 1]"
            )
        out.update(status="ok", reason=None, potential=pot, patterns=pats)
        out["n_beams"] = int(len(getattr(pattern, "beams", ())))
        out["engine"] = engine_summary(pattern)
    except UnconvergedError as exc:  # not solved: listed as unconverged, without a pattern
        out.update(status="unconverged", reason=str(exc).splitlines()[0][:300])
        out["engine"] = {k: exc.settings[k] for k in ENGINE_FIELDS if k in exc.settings}
        out["engine"]["pilot_estimate"] = exc.settings.get("pilot_estimate")
    except Exception as exc:  # every failure is a record, not a crash
        out.update(status="failed", reason=_one_line(exc))
    out["time_s"] = time.perf_counter() - t0
    # CPU time of this process: the cost on a dedicated core, whatever else the machine runs
    out["cpu_s"] = time.process_time() - c0
    return out


#: Fields of ``LacbedPattern.settings`` kept in each item record (beam counts, pool, budget and
#: the engine's own convergence estimate where it gives one).
ENGINE_FIELDS = (
    "n_pool",
    "n_holz_pool",
    "n_strong_min",
    "n_strong_max",
    "n_strong_mean",
    "n_weak_mean",
    "n_strong_union",
    "max_g",
    "half_width",
    "symmetry",
    "tile",
    "n_tiles",
    "real_arithmetic",
    "beam_budget",
    "convergence_estimate",
    "budget_capped",
    "budget_factor",
    "escalation",
    "second_look",
    "skip_margin",
    "budget_steps",
    "physics_version",
    "bethe_order",
    "eigh_precision",
)


def engine_summary(pattern) -> dict:  # noqa: ANN001 (LacbedPattern)
    """What the engine did for one material: beam counts, budget, convergence, version, timings."""
    st = pattern.settings
    out = {k: st[k] for k in ENGINE_FIELDS if k in st}
    out["version"] = str(pattern.version)
    out["timings_s"] = {k: float(v) for k, v in pattern.timings.items()}
    return out


def source_revision() -> str | None:
    """``git describe --always --dirty`` of the lacbed source tree, None outside a checkout."""
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    return res.stdout.strip() or None


def _order_key(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


#: Cell-size classes of the work-list strata [Å]: a < 6, 6–9, 9–12, ≥ 12.
SIZE_EDGES: tuple[float, ...] = (6.0, 9.0, 12.0)
#: Classes of the heaviest element of the work-list strata (atomic number): ≤ 18, 19–54, ≥ 55.
HEAVIEST_EDGES: tuple[int, ...] = (18, 54)


def _stratum(e) -> tuple:  # noqa: ANN001 (Entry or Rejected)
    """Work-list stratum: real or derived, space group, cell-size and heaviest-element class."""
    if not isinstance(e, Entry):
        return (0, 0, 0, 0)
    size_class = int(np.searchsorted(SIZE_EDGES, e.a, side="right"))
    z_max = int(np.max(e.crystal.atomic_numbers))
    heavy_class = int(np.searchsorted(HEAVIEST_EDGES, z_max, side="left"))
    return (int(bool(e.parent)), int(e.space_group_number), size_class, heavy_class)


def select_work(entries: Sequence, limit: int | None = None) -> list:
    """The work list: real structures first, strata interleaved in proportion; first ``limit``.

    Entries are grouped into strata (real or derived, space group, cell-size class
    :data:`SIZE_EDGES`, heaviest-element class :data:`HEAVIEST_EDGES`); inside a stratum they are in a fixed pseudo-random order (hash of the
    key), and the i-th of a stratum of n gets the position (i + φ)/n, with a phase φ ∈ [0, 1)
    hashed from the stratum. Sorting by (derived, position) interleaves the strata so that every
    prefix of the list holds each stratum in proportion to its size (to within one item), and all
    real structures come before any derived one: a build stopped at any point is a balanced sample.
    Works for anything with a ``key`` (:class:`Entry`, :class:`Rejected`, which form one stratum);
    the first of equal keys is kept. The order depends only on the set of entries.
    """
    if limit is not None and limit < 0:
        raise SettingsError(f"limit must be >= 0, got {limit}")
    seen: set[str] = set()
    strata: dict[tuple, list] = {}
    for e in entries:
        if e.key not in seen:
            seen.add(e.key)
            strata.setdefault(_stratum(e), []).append(e)
    keyed = []
    for st, members in strata.items():
        members.sort(key=lambda e: _order_key(e.key))
        phase = int(_order_key(repr(st))[:12], 16) / 16.0**12
        n = len(members)
        keyed += [(st[0], (i + phase) / n, _order_key(e.key), e) for i, e in enumerate(members)]
    keyed.sort(key=lambda k: k[:3])
    ordered = [k[3] for k in keyed]
    return ordered if limit is None else ordered[:limit]


@dataclass
class BuildReport:
    """What a build did."""

    n_work: int = 0
    n_skipped_done: int = 0
    n_ok: int = 0
    n_unconverged: int = 0
    n_failed: int = 0
    n_rejected: int = 0
    n_released: int = 0
    elapsed_s: float = 0.0
    n_workers: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def rate_per_hour(self) -> float:
        """Materials computed (stored, unconverged or failed) per hour in this run."""
        n = self.n_ok + self.n_unconverged + self.n_failed
        return 3600.0 * n / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressFn = Callable[[int, int, str, str], None]


def _store_locked(fn):  # noqa: ANN001, ANN202
    """Run ``fn(path, ...)`` holding an exclusive lock on the store ``path`` (one build at a time).

    Two builds writing one working store would give the same free slot to different materials.
    The lock is ``fcntl.flock`` on ``<path>.lock`` beside the store (released when the build ends
    or its process dies); a second build fails at once with a one-line error.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(path, *args, **kwargs):  # noqa: ANN001, ANN202
        import fcntl

        lock_path = Path(f"{os.fspath(path).rstrip(os.sep)}.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                pid = fh.read().strip() or "?"
                raise SettingsError(
                    f"another lacbed build is writing to {path} (pid {pid}); wait for it to end "
                    "or stop it (Ctrl-C / SIGTERM), then rerun to resume"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            try:
                return fn(path, *args, **kwargs)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    return wrapper


@_store_locked
def build_dataset(
    path: str | os.PathLike,
    entries: Sequence[Entry],
    settings: BuildSettings,
    *,
    limit: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    processes: bool = True,
    client=None,  # noqa: ANN001 (distributed.Client)
    compute: Callable[..., dict] = compute_item,
    progress: ProgressFn | None = None,
    info: dict | None = None,
    max_in_flight: int | None = None,
    rejected: Sequence[Rejected] = (),
    finalize_every: int = 500,
    connect_timeout_s: float = 30.0,
    skip_keys: frozenset[str] | set[str] = frozenset(),
    retry_failed: bool = False,
) -> BuildReport:
    """Build (or resume) a dataset.

    Parameters
    ----------
    path : path-like
        Dataset directory.
    entries : sequence of Entry
        Materials (see :func:`lacbed.structures.load_sources`).
    settings : BuildSettings
        Engine settings; must match those of an existing dataset at ``path``.
    limit : int, optional
        Use only the first ``limit`` materials of the work list (:func:`select_work`).
    workers : int, optional
        Worker processes of the local cluster (default: the number of CPUs).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); no local cluster is started.
    processes : bool
        Local cluster of processes (True) or of threads in this process (False, for tests).
    client : distributed.Client, optional
        Use this client (overrides ``workers``/``scheduler``).
    compute : callable
        ``compute(crystal, settings) -> dict`` run on the workers (default :func:`compute_item`).
    progress : callable, optional
        ``progress(n_done, n_total, key, status)`` after each material (and once at the start
        with key ``''``).
    info : dict, optional
        Extra fields for ``dataset.json`` (sources, attribution, ...).
    max_in_flight : int, optional
        Most materials submitted but not yet written (default: 4 per worker).
    rejected : sequence of Rejected
        Source entries the readers could not use (non-cubic, invalid, ...); those that fall in the
        work list are recorded as failed items with their reason, without running a task.
    finalize_every : int
        Refresh ``metadata.parquet`` after this many materials (and at the end), so readers of a
        running build parse few records.
    connect_timeout_s : float
        How long to try to reach ``scheduler`` [s].
    skip_keys : set of str
        Keys never to compute (the materials of a release, :func:`lacbed.dataset.release.
        release_keys`); they count as done in the progress and the report (``n_released``).
    retry_failed : bool
        Compute again the materials recorded as failed (their record is replaced); by default a
        failure is final.

    Returns
    -------
    BuildReport
    """

    revision = source_revision()
    work_all, n_released = _work_list(entries, rejected, limit, skip_keys)
    work = [e for e in work_all if isinstance(e, Entry)]
    writer = DatasetWriter(
        path,
        size=settings.size,
        thicknesses_nm=settings.thicknesses_nm,
        settings=settings.engine_settings(),
        n_slots=0,
        info=info,
    )
    records = writer.records()
    done = {r["key"] for r in records if r.get("status") == "ok" or not retry_failed}
    used = {r["key"]: int(r["slot"]) for r in records if r.get("status") == "ok"}
    todo = sorted((e for e in work if e.key not in done), key=lambda e: e.key)
    report = BuildReport(
        n_work=len(work_all) + n_released,
        n_skipped_done=len(work_all) - len(todo),
        n_released=n_released,
    )
    _record_rejected(writer, report, [r for r in work_all if isinstance(r, Rejected)], done)
    writer.ensure_slots(len(used) + len(todo))
    taken = set(used.values())
    free = [s for s in range(writer.n_slots) if s not in taken]
    slot_of = {e.key: free[i] for i, e in enumerate(todo)}
    n_total = len(work_all)
    n_done = report.n_skipped_done + report.n_rejected
    if progress:
        progress(n_done, n_total, "", "start")
    t0 = time.perf_counter()
    if not todo:
        writer.finalize()
        return report

    own_client, own_cluster = None, None
    if client is None:
        client, own_client, own_cluster = _connect(scheduler, workers, processes, connect_timeout_s)
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        report.n_workers = n_workers
        worker_pids = _worker_pids(client) if own_cluster is not None and processes else []
        # submit in work-list order, so a build stopped early holds a balanced sample
        rank = {e.key: i for i, e in enumerate(work)}
        run = _TaskRun(client, compute, settings, writer, report, slot_of, revision, progress,
                       n_done=n_done, n_total=n_total, finalize_every=finalize_every)  # fmt: skip
        run.go(sorted(todo, key=lambda e: rank[e.key]), int(max_in_flight or 4 * n_workers))
    except BaseException:  # Ctrl-C, SIGTERM (raised as KeyboardInterrupt by the CLI), errors
        if own_cluster is not None:
            _kill(worker_pids)  # don't wait for materials in flight: they are simply not written
            with contextlib.suppress(Exception):
                own_client.close(timeout=2)
            with contextlib.suppress(Exception):
                own_cluster.close(timeout=3)
            own_client = own_cluster = None
        raise
    finally:
        report.elapsed_s = time.perf_counter() - t0
        try:
            writer.finalize()
        finally:
            if own_client is not None:
                own_client.close()
            if own_cluster is not None:
                own_cluster.close()
    return report


def _work_list(entries, rejected, limit, skip_keys) -> tuple[list, int]:  # noqa: ANN001
    """The work list (entries and rejected sources, :func:`select_work` order) without the keys
    of ``skip_keys``, and how many of its materials those removed (the released ones)."""
    work_all = select_work([*entries, *rejected], limit)
    if not skip_keys:
        return work_all, 0
    kept = [e for e in work_all if e.key not in skip_keys]
    return kept, len(work_all) - len(kept)


def _record_rejected(writer, report: BuildReport, pre_failed: list, done: set) -> None:  # noqa: ANN001
    """Record the rejected source entries of the work list as failed, without a task."""
    for r in pre_failed:
        if r.key in done:
            continue
        meta = {"source": r.source, "source_id": r.source_id, "group": r.key}
        writer.write_failure(r.key, r.reason, meta)
        report.n_rejected += 1
        report.n_skipped_done -= 1
        report.failures[r.key] = r.reason


class _TaskRun:
    """The Dask part of a build: at most ``cap`` materials in flight, each written as it ends."""

    def __init__(self, client, compute, settings, writer, report, slot_of, revision, progress,
                 *, n_done: int = 0, n_total: int = 0, finalize_every: int = 0):  # fmt: skip # noqa: ANN001
        self.client, self.compute, self.settings = client, compute, settings
        self.writer, self.report, self.slot_of = writer, report, slot_of
        self.revision, self.progress = revision, progress
        self.key_of: dict = {}
        self.n_done, self.n_total, self.finalize_every = n_done, n_total, finalize_every

    def _submit(self, e, ac=None):  # noqa: ANN001, ANN202
        fut = self.client.submit(
            self.compute, e.crystal, self.settings, pure=False, key=f"lacbed-{_order_key(e.key)}"
        )
        self.key_of[fut.key] = e
        if ac is not None:
            ac.add(fut)
        return fut

    def go(self, ordered: list, cap: int) -> None:
        """Compute ``ordered`` (work-list order). Ctrl-C or SIGTERM: the materials in flight
        are abandoned (the caller kills the local workers at once); every finished one is
        already written."""
        from distributed import as_completed

        queue = deque(ordered)
        first = [self._submit(queue.popleft()) for _ in range(min(cap, len(queue)))]
        ac = as_completed(first, with_results=True, raise_errors=False)
        for fut, result in ac:
            self._finish(fut, result)
            if queue:
                self._submit(queue.popleft(), ac)

    def _finish(self, fut, result) -> None:  # noqa: ANN001
        e = self.key_of.pop(fut.key)
        if fut.status == "cancelled":
            # the cluster went away: not the material's fault, so nothing is recorded
            raise LacbedError(
                "the Dask cluster cancelled the remaining tasks (scheduler or workers lost); "
                "rerun the same command to resume"
            )
        if fut.status == "error":
            res = {"status": "failed", "reason": f"task error: {_one_line(fut.exception())}"}
        else:
            res = result
        report = self.report
        _record(self.writer, report, e, res, e.meta(), self.slot_of.get(e.key), self.revision)
        fut.release()
        self.n_done += 1
        n_written = report.n_ok + report.n_unconverged + report.n_failed
        if self.finalize_every and n_written % self.finalize_every == 0:
            self.writer.finalize()
        if self.progress:
            self.progress(self.n_done, self.n_total, e.key, res["status"])


def _connect(scheduler, workers, processes, connect_timeout_s):  # noqa: ANN001, ANN202
    """A Dask client: to ``scheduler`` when given, else to a new local cluster (also returned)."""
    from distributed import Client, LocalCluster

    if scheduler:
        import dask

        failure = None
        try:
            with dask.config.set({"distributed.comm.timeouts.connect": connect_timeout_s}):
                client = Client(scheduler, timeout=connect_timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            failure = str(exc)  # raised below, outside the handler, so no frame keeps
            # the half-made client alive through the exception context
        if failure is not None:
            raise SettingsError(
                f"cannot connect to the Dask scheduler {scheduler!r} ({failure}); start one "
                "with `dask scheduler` and workers with `dask worker ADDRESS --nthreads 1`"
            )
        return client, client, None
    n = int(workers or os.cpu_count() or 1)
    if n < 1:
        raise SettingsError(f"workers must be >= 1, got {workers}")
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=":0",  # any free port: never clash with another cluster
    )
    client = Client(cluster)
    return client, client, cluster


def _record(writer, report, e, res: dict, meta: dict, slot, revision) -> None:  # noqa: ANN001
    """Write one finished material (pattern or failure) and count it in the report."""
    from lacbed.crystal.serialise import crystal_to_record

    meta["time_s"] = res.get("time_s")
    meta["cpu_s"] = res.get("cpu_s")
    if res.get("n_beams") is not None:
        meta["n_beams"] = res["n_beams"]
    if res.get("engine") is not None:
        meta["engine"] = {**res["engine"], "revision": revision}
    meta["crystal"] = crystal_to_record(e.crystal)
    if res["status"] == "ok":
        writer.write_item(e.key, slot, res["potential"], res["patterns"], meta)
        report.n_ok += 1
    elif res["status"] == "unconverged":
        writer.write_failure(e.key, res["reason"], meta, status="unconverged")
        report.n_unconverged += 1
        log.info("unconverged %s: %s", e.key, res["reason"])
    else:
        writer.write_failure(e.key, res["reason"], meta)
        report.n_failed += 1
        report.failures[e.key] = res["reason"]
        log.info("failed %s: %s", e.key, res["reason"])


def _worker_pids(client) -> list[int]:  # noqa: ANN001 (distributed.Client)
    """Process ids of the workers of a local cluster (empty when they cannot be asked)."""
    try:
        return [int(p) for p in client.run(os.getpid).values()]
    except Exception:  # a worker that cannot answer is simply not killed early
        log.debug("could not list the worker processes", exc_info=True)
        return []


def _kill(pids: list[int]) -> None:
    """SIGKILL local worker processes (a stop must not wait for a material in flight)."""
    import signal

    for pid in pids:
        if pid != os.getpid():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def describe_sources(specs: Sequence[str]) -> dict:
    """Source specifications and their attributions, for ``dataset.json``."""
    from lacbed.structures.sources import ATTRIBUTIONS, parse_source

    names = [parse_source(s)[0] for s in specs]
    attributions = []
    for n in names:
        parts = ["oqmd", "cod", "aflow"] if n == "augmented" else [n]
        attributions += [ATTRIBUTIONS[p] for p in parts if p in ATTRIBUTIONS]
    return {"sources": list(specs), "attribution": sorted(set(attributions))}
