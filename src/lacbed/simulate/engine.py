"""The LACBED engine: :func:`simulate_lacbed` = :func:`~lacbed.simulate.plan.plan_lacbed` then
:func:`solve_plan`.

Pipeline (docs/physics.md §4–7)
--------------------------
1. Plan (:mod:`lacbed.simulate.plan`): lattice centring; for a centrosymmetric point group the
   origin on an inversion centre (every U_g, U′_g real: a real symmetric eigenproblem); the beam
   pool and one structure-factor call for the table V_{g−h}; the irreducible wedge of the
   bright-field symmetry in square tiles, each with one strong and one weak (Bethe) beam set;
   batched jobs; a stratified sample of pixels with twice the strong beams.
2. Solve (:func:`solve_plan`): per job, batched structure matrices with Bethe corrections and the
   surface-normal metric, one batched eigensolve, all thicknesses at once; worker threads with
   single-threaded BLAS. Knows nothing about crystals.
3. Result: the pattern filled from the wedge, with its settings, timings and a convergence
   estimate (:func:`convergence_estimate`): Z = 1 − ZNCC against twice the strong beams,
   estimated from the sample pixels.

Any zone axis [UVW] of a cubic crystal (``zone_axis=``, ``x_direction=``, ``normal=``;
docs/zone_axes.md, docs/physics.md §12): the pool vectors are rotated into a frame whose z is the
zone axis, the surface normal enters through g_n and k_n, and the pixels are reduced only by the
direct symmetries of that frame (:func:`lacbed.crystal.orientation.frame_symmetry`).

Dark-field discs (``reflections=``, docs/dark_field.md): half the pixels are solved (the 2-fold
axis along [001], symmetry '2'), the requested beams are strong in every tile, the solve returns ψ_g of those beams from every Bloch wave, and
the result is ``intensities[g, t, row, col]``; the estimate is that of the 000 beam.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from lacbed.bloch import matrix as bloch_matrix
from lacbed.bloch import solver as bloch_solver
from lacbed.bloch.matrix import (
    beam_importance,
    bethe_node_parts,
    interpolate_parts,
    normal_components,
    structure_matrix_parts_interpolated,
)
from lacbed.bloch.solver import solve_exact, solve_fast
from lacbed.errors import LacbedError, SettingsError, UnconvergedError
from lacbed.simulate.geometry import incident_wavevectors, pixel_axis, tilts
from lacbed.simulate.pattern import LacbedPattern
from lacbed.simulate.plan import (
    DEFAULT_G_MAX,
    MAX_POOL,
    MAX_STRONG,
    MIN_STRONG,
    SAMPLE_FRACTION,
    STRONG_THRESHOLD,
    WEAK_THRESHOLD,
    EnginePlan,
    Job,
    cell_label,
    plan_lacbed,
    pool_for,
    potential_table,
    select_beams,
)
from lacbed.simulate.symmetry import fill_from_wedge

__all__ = [
    "simulate_lacbed",
    "solve_plan",
    "solve_jobs",
    "solve_directions",
    "convergence_estimate",
    "plan_lacbed",
    "EnginePlan",
    "STRONG_THRESHOLD",
    "WEAK_THRESHOLD",
    "MIN_STRONG",
    "MAX_STRONG",
    "DEFAULT_G_MAX",
    "MAX_POOL",
    "CONVERGENCE_WARNING",
]

log = logging.getLogger(__name__)

#: A result whose convergence estimate exceeds this Z [-] is flagged (issue 8: 0.5 %).
CONVERGENCE_WARNING: float = 0.005
#: Version of the engine's physics, recorded in every result (``settings["physics_version"]``).
#: Results of one version agree to Z ≤ 0.1 %; a change of physics bumps it (a dataset release
#: holds one version). 1: Bethe potentials of order 2, one solve per pattern (release 1);
#: 2: weak-beam elimination of order 4 and the escalated adaptive budget (:data:`BUDGET_STEPS`).
PHYSICS_VERSION: int = 2
#: Escalation of the adaptive budget (:func:`simulate_lacbed`): when the estimate exceeds the
#: convergence target, the pattern is solved again with these multiples of every tile's adaptive
#: strong count, in turn, until the estimate meets the target or the beam cap stops it.
BUDGET_STEPS: tuple[float, ...] = (1.5, 2.0)
#: Escalation stops early when a step did not divide the estimate by at least this factor: the
#: budget is not converging there (on the panel of benchmarks/engine_panel.py a 1.5× step
#: divided it by 3–10 where it worked; Gd4MgRh, at the beam cap, went from 0.54 to 0.82 %).
ESCALATION_MIN_GAIN: float = 1.5
#: No escalation from an estimate above this multiple of the target: where it worked, a step
#: divided the estimate by 1.8–10, but no material with a first estimate above 2 % (4× the
#: 0.5 % target) was brought under 0.5 % by 1.5× and 2× the beams (panel: U3Sn4Au3 4.3 → 2.3 %,
#: CeCd11 15.8 → 12.5 %; release 2's records: Sc11Os4 4.0 → 1.75 %, U3Cu3Sn4 3.7 → 3.2 %,
#: Ba2EuSbO6 2.7 → 0.67 %), and those steps cost 2–8× the first solve each.
ESCALATION_REACH: float = 4.0
#: With ``skip_unconverged``, a pattern whose best pilot estimate exceeds this multiple of the
#: target is not solved (:class:`lacbed.errors.UnconvergedError`): the pilot estimate differs
#: from the solved pattern's by up to ~1.7× (it takes the pattern's variance from the sample;
#: 0.6–1.7× on four panel materials, 64 × 64), so a pattern it puts below 2× the target is
#: solved and judged by its own estimate.
SKIP_MARGIN: float = 2.0
#: Second look at a pattern the escalation leaves unconverged (:func:`_rescue`): the budget
#: steps it tries, in turn, and the larger pixel sample of its estimates. The estimate from
#: the default sample (1/64 of the wedge: ~32 pixels at 128 × 128) is a statistic of a few
#: pixels of a pattern whose differences lie on thin lines; against the exact Z over the whole
#: pattern (every pixel solved with both beam sets; ten release-2 materials near the target) its
#: P10–P90 ratio is 0.47–1.41, and 0.75–1.16 with the 1/8 sample
#: (benchmarks/engine_estimate_reliability.py), so a material near the target can be refused
#: for a pattern that meets it, and the first pass stops escalating from a noisy rise.
RESCUE_STEPS: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
RESCUE_SAMPLE: float = 1.0 / 8.0
#: No second look when the first pass's lowest pilot estimate exceeds this multiple of the
#: target (materials far from convergence: CeCd11, La3Sn13Rh4 at 16–20 %).
RESCUE_REACH: float = 10.0

# names kept for callers of the former single-function engine (tests, scripts)
_pool_for = pool_for
_potential_table = potential_table
_ = beam_importance


def _select(w, absu, min_abs_d, strong_beams, mirror):
    """Strong and weak sets of one tile (:func:`lacbed.simulate.plan.select_beams`)."""
    strong, weak, _ = select_beams(w, absu, min_abs_d, strong_beams, mirror)
    return strong, weak


def _resolve_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)
    if int(n_jobs) != n_jobs or n_jobs < 1:
        raise SettingsError(f"n_jobs must be a positive integer or None, got {n_jobs!r}")
    return int(n_jobs)


@contextlib.contextmanager
def _single_threaded_blas(enable: bool) -> Iterator[None]:
    """Limit BLAS/LAPACK to one thread for the duration of the solve (restored afterwards)."""
    if not enable:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def describe(plan: EnginePlan) -> str:
    """One line naming the crystal and the settings (for error messages)."""
    cr, o = plan.crystal, plan.options
    name = cr.name or cr.formula
    return (
        f"crystal {name} ({cr.formula}, {cell_label(cr)}, source {cr.source or 'unknown'}) at "
        f"{o['voltage_kv']:g} kV, size {o['size']}, thickness {o['thickness_nm']} nm, "
        f"solver={o['solver']!r}, backend={o['backend']!r}, strong_beams={o['strong_beams']}, "
        f"absorption={o['absorption']!r}, zone axis {o.get('zone_axis', [0, 0, 1])}, "
        f"x-direction {o.get('x_direction', [1, 0, 0])}, normal {o.get('normal', [0, 0, 1])}, "
        f"tilt {o.get('tilt', [0.0, 0.0])} 1/Å"
    )


class _JobRunner:
    """Solves jobs of one plan (matrix build + eigensolve), thread-safe, with a Bethe cache."""

    def __init__(
        self, plan: EnginePlan, out: np.ndarray, n_workers: int, timings, progress, outputs=None
    ):
        self.plan = plan
        self.out = out
        self.outputs = outputs
        self.n_workers = n_workers
        self.timings = timings
        self.progress = progress
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.tiles: dict = {}  # interpolation nodes of the tiles being solved

    def expect(self, jobs: list[Job]) -> None:
        """Count the jobs to come (progress) and those of each tile (its nodes are freed after
        the last)."""
        self.total = sum(len(j.out) for j in jobs)
        for job in jobs:
            if job.box is not None:
                entry = self.tiles.setdefault(_tile_key(job), {"left": 0, "parts": None})
                entry["left"] += 1
                entry.setdefault("lock", threading.Lock())

    def _matrices(self, job: Job, k: np.ndarray):
        """Structure matrices of a job; the weak-beam corrections interpolated from its tile's
        nodes, computed once per tile (:func:`lacbed.bloch.matrix.bethe_node_parts`)."""
        plan = self.plan
        entry = self.tiles.get(_tile_key(job)) if job.box is not None else None
        if entry is None or min(bloch_matrix.BETHE_NODES, bloch_matrix.BETHE_TILE_NODES) < 1:
            return build_matrices(plan, k, job.strong, job.weak)
        with entry["lock"]:
            if "done" not in entry:
                entry["parts"] = bethe_node_parts(
                    plan.v_table, job.box, plan.g, plan.wavenumber, job.strong, job.weak,
                    bloch_matrix.BETHE_TILE_NODES,
                )  # fmt: skip
                entry["done"] = True
            parts = entry["parts"]
        with self.lock:
            entry["left"] -= 1
            if entry["left"] == 0:
                entry["parts"] = None  # the tile is done: free its nodes
        if parts is None:  # rough over the tile: over the batch, or exact
            return build_matrices(plan, k, job.strong, job.weak)
        h, ap = interpolate_parts(parts, k, plan.g, plan.wavenumber, job.strong, normal=plan.normal)
        return (h, ap) if plan.options["solver"] == "fast" else h + 1j * ap

    def __call__(self, job: Job) -> None:
        try:
            self._solve(job)
        except LacbedError:
            raise
        except Exception as exc:
            raise LacbedError(
                f"the Bloch-wave solve failed for {describe(self.plan)} "
                f"({len(job.out)} pixels, {len(job.strong)} strong and {len(job.weak)} weak "
                f"beams): {type(exc).__name__}: {exc}"
            ) from exc

    def _solve(self, job: Job) -> None:
        plan, o = self.plan, self.plan.options
        local = dict.fromkeys(("matrix_build", "eigensolve", "assembly"), 0.0)
        if job.kt is None:
            kt = tilts(job.rows, job.cols, o["size"], o["half_width"], o.get("tilt", (0.0, 0.0)))
        else:  # arbitrary directions (:func:`lacbed.simulate.plan.direction_jobs`)
            kt = job.kt
        k = incident_wavevectors(kt, plan.wavenumber)
        k_n, g_n = normal_components(k, plan.g[job.strong], plan.normal)  # §12
        tb = time.perf_counter()
        a = self._matrices(job, k)
        local["matrix_build"] += time.perf_counter() - tb
        solve = solve_fast if o["solver"] == "fast" else solve_exact
        thickness_a = 10.0 * np.asarray(o["thickness_nm"])
        if self.outputs is None:
            self.out[job.out] = solve(a, k_n, thickness_a, backend=o["backend"], timings=local)
        else:
            # every Bloch wave and every beam (no excitation tail), metric undone (§4)
            psi = solve(
                a,
                k_n,
                thickness_a,
                all_beams=True,
                g_n=g_n,
                backend=o["backend"],
                timings=local,
            )  # (p, t, n_strong)
            self.out[job.out] = psi[:, :, np.searchsorted(job.strong, self.outputs)]
        with self.lock:
            for key, val in local.items():
                self.timings[key] = self.timings.get(key, 0.0) + val / self.n_workers
            self.done += len(job.out)
            if self.progress is not None:
                self.progress(self.done, self.total)


def _tile_key(job: Job) -> tuple:
    """Jobs of one tile share their box and their beam-set arrays."""
    return (job.box, id(job.strong), id(job.weak))


def build_matrices(plan: EnginePlan, k: np.ndarray, strong: np.ndarray, weak: np.ndarray):
    """Structure matrices of one job: (H, Â′) for the fast path, complex Â for the exact one.

    Parameters
    ----------
    plan : EnginePlan
    k : ndarray, shape (p, 3)
        Incident wave vectors [1/Å].
    strong, weak : ndarray of int
        Pool indices of the beam sets.

    The weak-beam corrections are interpolated across the job's tilts
    (:func:`lacbed.bloch.matrix.structure_matrix_parts_interpolated`, ``BETHE_NODES``).
    """
    h, ap = structure_matrix_parts_interpolated(
        plan.v_table, k, plan.g, plan.wavenumber, strong, weak, normal=plan.normal
    )
    return (h, ap) if plan.options["solver"] == "fast" else h + 1j * ap


def solve_jobs(
    plan: EnginePlan,
    jobs: list[Job],
    n_out: int,
    *,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    timings: dict | None = None,
    outputs: np.ndarray | None = None,
) -> np.ndarray:
    """Solve a list of jobs of ``plan``; returns ψ₀, shape (n_out, n_thickness), complex.

    Parameters
    ----------
    plan : EnginePlan
    jobs : list of Job
        Each writes its pixels' amplitudes to rows ``job.out`` of the result.
    n_out : int
        Rows of the result.
    n_jobs : int, optional
        Worker threads (each with single-threaded BLAS); default: the CPUs of this process.
    progress : callable, optional
        ``progress(done, total)`` after each job (units: pixels).
    timings : dict, optional
        Wall times [s] are added to "matrix_build", "eigensolve", "assembly".
    outputs : ndarray of int, optional
        Pool indices of the beams to return (each must be in every job's strong set, which is
        sorted); the result is then ψ_g, shape (n_out, n_thickness, len(outputs)), from every
        Bloch wave, with the surface-normal metric undone (docs/physics.md §4).
    """
    backend = plan.options["backend"]
    n_workers = _resolve_jobs(n_jobs) if backend == "numpy" else 1
    shape = (n_out, len(plan.options["thickness_nm"]))
    if outputs is not None:
        outputs = np.asarray(outputs, dtype=np.int64)
        for job in jobs:
            if not np.all(np.isin(outputs, job.strong)):
                raise LacbedError("a requested beam is missing from a strong set (plan bug)")
        shape += (len(outputs),)
    out = np.zeros(shape, dtype=np.complex128)
    runner = _JobRunner(plan, out, n_workers, {} if timings is None else timings, progress, outputs)
    runner.expect(jobs)
    with _single_threaded_blas(backend == "numpy"):
        if n_workers == 1:
            for job in jobs:
                runner(job)
        else:
            with ThreadPoolExecutor(max_workers=n_workers) as ex:
                list(ex.map(runner, jobs))
    return out


def solve_directions(plan: EnginePlan, kt: np.ndarray, *, n_jobs: int | None = None) -> np.ndarray:
    """Bright-field intensities at arbitrary incident directions, shape (n_thickness, n) [-].

    Each direction is solved exactly at its own tilt with the beam sets of the plan pixel it falls
    in (:func:`lacbed.simulate.plan.direction_jobs`; the plan must solve every pixel, symmetry
    '1'), at every thickness of the plan; no grid, no interpolation.

    Parameters
    ----------
    plan : EnginePlan
    kt : ndarray, shape (n, 2)
        Tangential tilts (k_x, k_y) [1/Å].
    n_jobs : int, optional
        Worker threads.
    """
    from lacbed.simulate.plan import direction_jobs

    jobs = direction_jobs(plan, kt)
    psi = solve_jobs(plan, jobs, len(kt), n_jobs=n_jobs)  # (n, t)
    inten = np.abs(psi.T) ** 2  # (t, n)
    if not np.all(np.isfinite(inten)):
        raise LacbedError(f"the simulation produced NaN or inf intensities for {describe(plan)}")
    return inten


def convergence_estimate(
    main: np.ndarray | None,
    sample_main: np.ndarray,
    sample_ref: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """Estimated Z = 1 − ZNCC between a pattern and its reference, from a pixel sample.

    With b = a + δ, ã = a − ā and δ̃ = δ − δ̄ = αã + δ⊥ (δ⊥ ⟂ ã), exactly
    Z = 1 − 1/√(1 + |δ⊥|² / ((1 + α)²|ã|²)). |ã|² comes from the whole pattern (or, without
    it, from the weighted sample); the moments of δ (its variance and covariance with a) from
    the weighted sample.

    Parameters
    ----------
    main : ndarray, shape (t, n_pixels), or None
        The pattern's intensities, every pattern pixel once [-]; None before the pattern is
        solved (the pilot estimate of :func:`pilot`): its mean and variance are then the
        weighted sample's.
    sample_main, sample_ref : ndarray, shape (t, s)
        Intensities of the sample pixels, as solved and with the reference (twice the beams).
    weight : ndarray, shape (s,)
        Pattern pixels each sample pixel stands for.

    Returns
    -------
    ndarray, shape (t,)
        Estimated Z [-] per thickness.

    References
    ----------
    ZNCC as in :func:`lacbed.metrics.zncc` (docs/physics.md §9); the decomposition is the law of
    cosines for the centred vectors.
    """
    w = weight / weight.sum()
    if main is None:
        am = (w * sample_main).sum(axis=1, keepdims=True)
        var_a = (w * (sample_main - am) ** 2).sum(axis=1)
    else:
        am = main.mean(axis=1, keepdims=True)
        var_a = main.var(axis=1)  # (t,)
    d = sample_ref - sample_main  # (t, s)
    dm = (d * w).sum(axis=1, keepdims=True)
    var_d = (w * (d - dm) ** 2).sum(axis=1)
    cov = (w * (d - dm) * (sample_main - am)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.where(var_a > 0, cov / np.where(var_a > 0, var_a, 1.0), 0.0)
        perp = np.maximum(var_d - alpha * cov, 0.0)
        ratio = np.where(var_a > 0, perp / ((1.0 + alpha) ** 2 * np.where(var_a > 0, var_a, 1)), 0)
    return 1.0 - 1.0 / np.sqrt(1.0 + ratio)


def pilot(plan: EnginePlan, *, n_jobs: int | None = None) -> tuple[float, np.ndarray]:
    """The convergence estimate of a plan before its pattern is solved.

    Solves only the estimate's sample pixels, with the plan's beam sets (``pilot_jobs``) and
    with the reference sets (``sample_jobs``, twice the strong beams): about 1/64 + 8/64 of the
    cost of the pattern at the default sample fraction. The escalated budget of
    :func:`simulate_lacbed` uses it to choose the budget before the one full solve.

    Parameters
    ----------
    plan : EnginePlan
        With a convergence sample (``convergence_sample`` > 0).
    n_jobs : int, optional
        Worker threads.

    Returns
    -------
    estimate : float
        Estimated Z [-] against the reference, worst over the thicknesses; the pattern's own
        variance is taken from the weighted sample (:func:`convergence_estimate` with
        ``main=None``), so it differs a little from the estimate of the solved pattern.
    reference : ndarray, shape (n_sample, n_thickness), complex
        ψ₀ of the sample pixels with the reference sets, for :func:`solve_plan` to reuse.
    """
    if not plan.sample_jobs:
        raise LacbedError("pilot needs a plan with a convergence sample (convergence_sample > 0)")
    n = len(plan.sample_index)
    main = solve_jobs(plan, plan.pilot_jobs, n, n_jobs=n_jobs)
    ref = solve_jobs(plan, plan.sample_jobs, n, n_jobs=n_jobs)
    z = convergence_estimate(None, np.abs(main.T) ** 2, np.abs(ref.T) ** 2, plan.sample_weight)
    return float(np.nan_to_num(z, nan=1.0).max()), ref


def solve_plan(
    plan: EnginePlan,
    *,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    timings: dict | None = None,
    warn: bool = True,
    reference: np.ndarray | None = None,
) -> LacbedPattern:
    """Execute a plan: the pattern, with its settings, timings and convergence estimate.

    Parameters
    ----------
    plan : EnginePlan
        From :func:`lacbed.simulate.plan.plan_lacbed`.
    n_jobs : int, optional
        Worker threads for the batched solves (single-threaded BLAS each).
    progress : callable, optional
        ``progress(done, total)`` after each job of the pattern (units: pixels solved).
    timings : dict, optional
        Timings of the planning stages to carry into the result [s].
    warn : bool
        Log a warning when the estimate exceeds :data:`CONVERGENCE_WARNING`.
    reference : ndarray, optional
        ψ₀ of the sample pixels with the reference sets, as :func:`pilot` returns it (not
        solved again).

    Returns
    -------
    LacbedPattern
        As :func:`simulate_lacbed`.
    """
    t_start = time.perf_counter()
    timings = dict(timings or {})
    for key in ("beam_selection", "structure_factors", "matrix_build", "eigensolve", "assembly"):
        timings.setdefault(key, 0.0)
    size, t_nm = plan.options["size"], np.asarray(plan.options["thickness_nm"])
    outputs = plan.outputs
    psi = solve_jobs(
        plan,
        plan.jobs,
        len(plan.rows),
        n_jobs=n_jobs,
        progress=progress,
        timings=timings,
        outputs=outputs,
    )
    t0 = time.perf_counter()
    inten = np.abs(psi) ** 2  # (n_unique, t) or (n_unique, t, n_outputs)
    if outputs is None:
        full = _fill(plan, inten.T, size)
    else:
        full = _discs(plan, inten, outputs, size)  # (n_g, t, size, size)
        inten = inten[:, :, 0]  # the 000 beam (outputs[0]) for the estimate
    timings["assembly"] += time.perf_counter() - t0
    if not np.all(np.isfinite(full)):
        raise LacbedError(
            f"the simulation produced NaN or inf intensities for {describe(plan)}; try more "
            "strong beams or a smaller half-width"
        )
    bright = full if outputs is None else _fill(plan, inten.T, size)
    estimate = None
    if plan.sample_jobs:
        t0 = time.perf_counter()
        ref = reference
        if ref is None:
            ref = solve_jobs(plan, plan.sample_jobs, len(plan.sample_index), n_jobs=n_jobs)
        z = convergence_estimate(
            bright.reshape(len(t_nm), -1),
            inten[plan.sample_index].T,
            np.abs(ref.T) ** 2,
            plan.sample_weight,
        )
        estimate = [float(x) for x in np.nan_to_num(z, nan=1.0)]
        timings["convergence_estimate"] = time.perf_counter() - t0
    timings["solve"] = time.perf_counter() - t_start
    return _pattern(plan, full, estimate, timings, warn)


def _fill(plan: EnginePlan, values: np.ndarray, size: int) -> np.ndarray:
    """(..., n_unique) values of the solved pixels → (..., size, size) (wedge, half or all)."""
    if plan.symmetry == "1":
        return values.reshape(*values.shape[:-1], size, size)
    return fill_from_wedge(values, plan.rows, plan.cols, size, plan.symmetry)


def _discs(plan: EnginePlan, inten: np.ndarray, outputs: np.ndarray, size: int) -> np.ndarray:
    """Discs of the requested reflections, shape (n_g, t, size, size) [-].

    ``inten`` (n_unique, t, n_outputs) holds I_g of the beams ``outputs``; a reflection forbidden
    by the lattice centring (index −1) is exactly zero (docs/physics.md §5). With symmetry '2'
    (the half plane rows ≥ N solved) the other half is I_g(R k) = I_{Rg}(k), R the 2-fold axis
    along [001], Rg = (−h, −k, l) (docs/dark_field.md; tested against a full solve).
    """
    n_t = inten.shape[1]
    out = np.zeros((len(plan.reflections), n_t, size, size))
    partner = plan.partner_index if plan.symmetry == "2" else None
    lower = np.arange(size) < size // 2  # rows of the half plane that is not solved
    for i, idx in enumerate(plan.reflection_index):
        if idx < 0:
            continue
        out[i] = _fill(plan, inten[:, :, int(np.searchsorted(outputs, idx))].T, size)
        if plan.symmetry == "2":
            col = int(np.searchsorted(outputs, partner[i]))
            out[i][:, lower] = _fill(plan, inten[:, :, col].T, size)[:, lower]
    return out


def _pattern(plan: EnginePlan, full: np.ndarray, estimate, timings: dict, warn=True):
    from lacbed import __version__

    cr, o = plan.crystal, plan.options
    n_strong = plan.n_strong
    used = np.zeros(len(plan.pool), dtype=bool)
    for s, _ in plan.tile_sets:
        used[s] = True
    worst = None if estimate is None else max(estimate)
    settings = {
        "crystal": {
            "formula": cr.formula,
            "a": cr.a,
            "space_group_number": cr.space_group_number,
            **({} if cr.is_cubic else {"cell": list(cr.lattice_parameters)}),
            "name": cr.name,
            "source": cr.source,
        },
        **{k: v for k, v in o.items() if k != "convergence_sample"},
        "max_g": plan.info["max_g"],
        "symmetry": plan.symmetry,
        "n_tiles": len(plan.tiles),
        "n_unique_pixels": int(len(plan.rows)),
        "n_pool": int(len(plan.pool)),
        "n_holz_pool": plan.info["n_holz_pool"],
        **_beam_counts(plan),
        "n_strong_union": int(used.sum()),
        "matrix_size_max": int(n_strong.max()),
        "real_arithmetic": bool(plan.real),
        "origin_shift": plan.info["origin_shift"],
        "centring": plan.info["centring"],
        "surface_normal_metric": True,
        "wavenumber": plan.wavenumber,
        "U0": plan.info["U0"],
        "U0_abs": plan.info["U0_abs"],
        "physics_version": PHYSICS_VERSION,
        "bethe_order": bloch_matrix.BETHE_ORDER,
        "bethe_precision": bloch_matrix.BETHE_PRECISION,
        "eigh_precision": bloch_solver.EIGH_PRECISION if o["backend"] == "numpy" else "double",
        # the weak-beam interpolation nodes span each batch, so results depend on the batching
        # at the 1e-5 level (docs/engine_validation.md): both are recorded
        "bethe_nodes": bloch_matrix.BETHE_NODES,
        "bethe_smoothness": bloch_matrix.BETHE_SMOOTHNESS,
        "budget_capped": plan.budget_capped,
        "n_tiles_capped": int(np.count_nonzero(plan.capped)),
        "convergence_estimate": worst,
        "convergence_estimate_per_thickness": estimate,
        "convergence_sample_pixels": int(len(plan.sample_index)),
        "predicted_cpu": plan.predicted_cpu(),
    }
    kx0, ky0 = o.get("tilt", (0.0, 0.0))
    pattern = LacbedPattern(
        intensities=full,
        thickness_nm=np.asarray(o["thickness_nm"]),
        kx=pixel_axis(o["size"], o["half_width"], kx0),  # the shifted axes (§6)
        ky=pixel_axis(o["size"], o["half_width"], ky0),
        wavelength=plan.wavelength,
        beams=plan.pool[used],
        settings=settings,
        timings=timings,
        version=__version__,
        reflections=None if plan.reflections is None else np.array(plan.reflections),
    )
    if warn:
        _warn_unconverged(pattern, plan)
    return pattern


def simulate_lacbed(
    crystal: Any,
    thickness_nm: float | np.ndarray,
    *,
    voltage_kv: float = 200.0,
    size: int = 128,
    half_width: float | None = None,
    scattering: str = "kirkland",
    absorption: str = "bird-king",
    kappa: float = 0.078,
    b_iso: float | None = None,
    strong_beams: int | None = None,
    max_g: float | None = None,
    solver: str = "fast",
    backend: str = "numpy",
    progress: Callable[[int, int], None] | None = None,
    symmetry: str = "auto",
    tile: int | None = None,
    batch: int = 64,
    n_jobs: int | None = None,
    convergence_sample: float = SAMPLE_FRACTION,
    convergence_target: float | None = CONVERGENCE_WARNING,
    reflections=None,
    zone_axis=(0, 0, 1),
    x_direction=None,
    normal=None,
    tilt=(0.0, 0.0),
    skip_unconverged: bool = False,
    skip_margin: float = SKIP_MARGIN,
    second_look: bool = True,
    budget_steps: tuple[float, ...] | None = None,
) -> LacbedPattern:
    """Bright-field (000) LACBED pattern, or dark-field discs, of a crystal along any zone
    axis [UVW] (default [001]).

    Cubic crystals take the cubic path (docs/zone_axes.md); a crystal of any other system
    (docs/crystal_systems.md) is solved in its own cell's metric, with [UVW] and the normal as
    direct-lattice and the x-direction as reciprocal-lattice vectors, the default half-width
    4·min(|a*|, |b*|, |c*|), and the pixels reduced only by the direct symmetries that its
    atoms' point-group operations give on the pixel grid (2mm for hcp Mg along [0001]).

    Parameters
    ----------
    crystal : Crystal, path, ase.Atoms or pymatgen Structure
        The crystal (anything :func:`lacbed.crystal.load_crystal` accepts).
    thickness_nm : float or array_like
        Specimen thickness(es) [nm]; all come from one eigensolve.
    voltage_kv : float
        Accelerating voltage [kV].
    size : int
        Pattern side 2N [pixels]; even and ≥ 8 (the zone axis lies between pixels).
    half_width : float, optional
        W [1/Å]: the pattern spans tangential wave vectors (−W, W). Default 4/a (|g₄₀₀|).
    scattering : str
        Electron scattering factors ('kirkland', 'peng', 'lobato', 'doyle-turner').
    absorption : {'bird-king', 'proportional', 'none'}
        Absorption model; 'proportional' uses U′ = κU.
    kappa : float
        κ for proportional absorption [-].
    b_iso : float, optional
        Debye–Waller factor for every atom [Å²]; None keeps the crystal's.
    strong_beams : int, optional
        Minimum strong beams per tile (beams too strongly coupled for a Bethe potential are added);
        None (default) adapts to the material (module notes).
    max_g : float, optional
        Pool limit |g| ≤ max_g [1/Å]; default 3.0, reduced for large cells so the pool has at most
        :data:`MAX_POOL` beams.
    solver : {'fast', 'exact'}
        'fast': Hermitian eigh + first-order absorption; 'exact': non-Hermitian eig.
    backend : {'numpy', 'torch'}
        Linear-algebra backend of the eigensolve ('torch' uses a GPU when present).
    progress : callable, optional
        Called as ``progress(done, total)`` after each tile (units: pixels solved).
    symmetry : {'auto', '4mm', '2mm', '1'}
        Bright-field symmetry used to reduce the pixels; 'auto' takes the crystal's, '1' solves
        every pixel (for validation).
    tile : int, optional
        Tile side [pixels] sharing one beam set; default max(4, size // 8).
    batch : int
        Matrices per eigensolve call (memory bound).
    n_jobs : int, optional
        Worker threads for the batched solves (each with single-threaded BLAS, which is much
        faster than threaded BLAS on these small matrices). Default: the CPUs available to this
        process. Pass 1 when many simulations run in parallel (dataset builds).
    convergence_sample : float
        Fraction of the solved pixels (at least SAMPLE_MIN = 16) re-solved with twice each tile's strong beams
        for the convergence estimate; 0 skips it (``settings["convergence_estimate"]`` None).
    convergence_target : float or None
        Z [-] the adaptive budget aims for (default 0.5 %). The budget is chosen before the
        pattern is solved: the :func:`pilot` estimate (the sample pixels only, with and without
        twice the strong beams) is taken at 1 × and then :data:`BUDGET_STEPS` × every tile's
        adaptive strong count (at most MAX_STRONG) until one meets the target, and that budget
        is solved once (:func:`_escalate`: the search stops where the cap allows no more beams,
        when a step did not divide the estimate by :data:`ESCALATION_MIN_GAIN`, or when it
        exceeds :data:`ESCALATION_REACH` × the target, and the last step tried, with the most
        beams, is solved). A budget left unconverged gets a second look (:func:`_rescue`: the
        steps up to 3× re-piloted with a pixel sample 8× larger where the estimate is within 2×
        the target, and the steps the search did not reach). ``settings["budget_factor"]`` and
        ``settings["escalation"]`` (per step: factor, pilot estimate, whether solved and the
        solved pattern's estimate, CPU, stage, sample pixels) say what was spent. None (or a
        fixed ``strong_beams``, or no estimate) solves once at 1 ×.
    reflections : sequence of (h, k, l) or str, optional
        Dark-field discs: the intensity I_g of each listed beam g (e.g. ``[(0, 0, 0), (2, -2,
        0), "-220"]``) over the same incident directions as the bright field (Felix's
        convention, docs/physics.md §6). Each is strong in every tile (with its images under
        the crystal's [001] symmetry), and every Bloch wave enters ψ_g (docs/physics.md §4).
        With any reflection other than 000 the pixels are reduced only by the 2-fold axis along
        [001], common to every cubic point group: the half plane rows ≥ N is solved, and
        I_g(R k) = I_{Rg}(k), Rg = (−h, −k, l), gives the rest (symmetry '2'; ``symmetry='1'``
        solves every pixel; '4mm'/'2mm' are refused: the discs do not share the bright field's
        symmetry, Buxton et al. 1976). A reflection forbidden by the lattice centring is returned as zero; one
        outside the pool raises SettingsError. The convergence estimate and the escalation of
        the budget are those of the 000 beam only. None (default): the bright field as before.
        Away from the [001] frame every pixel is solved (no 2-fold reduction).
    zone_axis : sequence of 3 int
        [UVW], the beam direction at the pattern centre (Felix IIncidentBeamDirection);
        default [001] (docs/zone_axes.md, docs/physics.md §12).
    x_direction : sequence of 3 int, optional
        (HKL): the pattern's +x is its component perpendicular to [UVW] (Felix IXDirection);
        default the lowest-index g perpendicular to [UVW]
        (:func:`lacbed.crystal.orientation.default_x_direction`: [100] for [001]).
    normal : sequence of 3 int, optional
        Surface normal (Felix INormalDirection), along which the thickness is measured and which
        enters the excitation errors and the metric (g_n, k_n); default the zone axis.
        Away from the [001] frame the pixels are reduced only by the crystal's direct symmetries
        that keep the zone axis and map the pixel grid (4mm at <100> and 2mm at <110> of m-3m,
        2mm at <100> of m-3; :func:`lacbed.crystal.orientation.frame_symmetry`); otherwise
        every pixel is solved. Nothing is imposed by reciprocity there. The default half-width 4/a is kept
        for every zone axis (the same angular field for every axis of one crystal).
    tilt : sequence of 2 float
        Pattern-centre tilt (k_x0, k_y0) [1/Å] in the pattern's (x, y) frame: every pixel's
        tangential incident wave vector is shifted by it, so the centre lies off the zone axis
        (docs/physics.md §6, docs/zone_axes.md). Default (0, 0): centred on the zone axis, as
        before. A non-zero tilt solves every pixel (symmetry '1'; 'auto' gives it, '4mm'/'2mm'
        are refused) and selects each tile's beams at its shifted tilts; ``kx``/``ky`` of the
        result are the shifted axes, and ``settings["tilt"]`` records it. Must be finite, with
        the farthest corner of the pattern |(|k_x0| + W, |k_y0| + W)| < K/2. The beam pool is
        still chosen about the zone axis's Ewald sphere (Felix's criterion, §11), so keep the
        tilt small compared with the HOLZ radius.
    skip_unconverged : bool
        With the escalated budget: when no step's pilot estimate comes below
        ``skip_margin`` × ``convergence_target``, raise
        :class:`lacbed.errors.UnconvergedError` (with the escalation history) instead of
        solving a pattern that would not converge. For dataset builds, which keep such
        materials out of their splits; default False (the pattern is solved and flagged).
    skip_margin : float
        The multiple of the target above which ``skip_unconverged`` does not solve (≥ 1;
        default :data:`SKIP_MARGIN`, 2: a pilot that misses the target by less is solved and
        judged by its own estimate). 1 solves only what a pilot calls converged: a dataset
        build that defers the second look uses it, since there such solves converged 4 of 18
        materials for ~715 s of CPU each (``benchmarks/build_second_look.py``).
        ``settings["skip_margin"]`` records it (None without ``skip_unconverged``).
    second_look : bool
        With the escalated budget: where the first pass leaves the pattern unconverged, take
        the second look (:data:`RESCUE_STEPS`, :func:`_rescue`) before giving up. It never
        changes a pattern the first pass converges; it costs most where it fails, so dataset
        builds defer it to a retry of the unconverged materials (``lacbed dataset build
        --retry-unconverged``). ``settings["second_look"]`` records it.
    budget_steps : tuple of float, optional
        The escalation's steps after 1× (increasing, each > 1); default :data:`BUDGET_STEPS`
        (1.5, 2). A dataset build's first pass uses (1.5,): replayed over release 2's records
        with skip margin 1, the 2× step was reached by 13 materials and converted 5, at
        104-388 s of CPU per conversion against ~38 s per converged material of the first pass
        (``benchmarks/build_second_look.py``); the second look still tries 2× and 3×.
        ``settings["budget_steps"]`` records them.

    Returns
    -------
    LacbedPattern
        ``intensities[t, row, col]`` with the Felix pixel convention (docs/physics.md §6), including
        the mean absorption exp(−2πtU′₀/K) that Felix omits. ``timings`` [s]: wall time of
        "beam_selection", "structure_factors", "matrix_build", "eigensolve", "assembly" (the
        last three summed over worker threads and divided by their number), "total" (wall) and
        "cpu" (process CPU time, all threads; robust on a shared machine), and
        "convergence_estimate" (the sample solve). ``settings["convergence_estimate"]``: the
        estimated Z = 1 − ZNCC [-] against a run with twice the strong beams, worst over the
        thicknesses (a warning is logged above 0.5 %); ``settings["budget_capped"]``: some tile
        needed more than MAX_STRONG strong beams, so the result may not be converged.
        With ``reflections``: ``intensities[g, t, row, col]`` and ``reflections`` (n_g, 3).

    Raises
    ------
    SettingsError
        Impossible settings (thickness ≤ 0, voltage ≤ 0, size < 8 or odd, half-width ≤ 0, more
        strong beams than the pool, unknown solver/backend, a non-finite or too large tilt).
    LacbedError
        If the result contains NaN or inf, or the solve of a tile fails (the message names the
        crystal and the settings).
    UnconvergedError
        With ``skip_unconverged``, when the budget cannot converge the pattern (no budget
        step's pilot within ``skip_margin`` × the target, after the second look if it is on).
    """
    cpu_start = time.process_time()
    t_start = time.perf_counter()
    kw = dict(
        voltage_kv=voltage_kv,
        size=size,
        half_width=half_width,
        scattering=scattering,
        absorption=absorption,
        kappa=kappa,
        b_iso=b_iso,
        strong_beams=strong_beams,
        max_g=max_g,
        solver=solver,
        backend=backend,
        symmetry=symmetry,
        tile=tile,
        batch=batch,
        convergence_sample=convergence_sample,
        reflections=reflections,
        zone_axis=zone_axis,
        x_direction=x_direction,
        normal=normal,
        tilt=tilt,
    )
    if not skip_margin >= 1.0:
        raise SettingsError(f"skip_margin must be >= 1, got {skip_margin!r}")
    steps = BUDGET_STEPS if budget_steps is None else tuple(float(x) for x in budget_steps)
    if not all(1.0 < x < np.inf for x in steps) or list(steps) != sorted(set(steps)):
        raise SettingsError(
            f"budget_steps must be finite and increase from above 1, got {budget_steps!r}"
        )
    if convergence_target is not None and not convergence_target > 0:
        raise SettingsError(f"convergence_target must be > 0 or None, got {convergence_target!r}")
    escalate = convergence_target is not None and strong_beams is None and convergence_sample > 0
    if escalate:
        pattern, plan, history = _escalate(
            crystal, thickness_nm, kw, convergence_target, n_jobs=n_jobs, progress=progress,
            skip=skip_margin if skip_unconverged else None, cpu_start=cpu_start,
            second_look=second_look, steps=steps,
        )  # fmt: skip
    else:
        timings: dict = {}
        plan = plan_lacbed(crystal, thickness_nm, budget_factor=1.0, timings=timings, **kw)
        pattern = solve_plan(plan, n_jobs=n_jobs, progress=progress, timings=timings, warn=False)
        est = pattern.settings["convergence_estimate"]
        history = [
            {"budget_factor": 1.0, "pilot_estimate": None, "convergence_estimate": est,
             "n_strong_mean": pattern.settings["n_strong_mean"], "solved": True,
             "cpu": time.process_time() - cpu_start}
        ]  # fmt: skip
    _warn_unconverged(pattern, plan)
    pattern.settings["escalation"] = history
    if escalate:
        pattern.settings["second_look"] = bool(second_look)
        pattern.settings["skip_margin"] = float(skip_margin) if skip_unconverged else None
        pattern.settings["budget_steps"] = list(steps)
    pattern.timings["total"] = time.perf_counter() - t_start
    pattern.timings["cpu"] = time.process_time() - cpu_start
    return pattern


def _escalate(
    crystal, thickness_nm, kw: dict, target: float, *, n_jobs, progress, skip, cpu_start,
    second_look=True, steps=BUDGET_STEPS,
):  # fmt: skip
    """The escalated adaptive budget of :func:`simulate_lacbed`: (pattern, plan, history).

    Each budget step (1, then ``steps``, default :data:`BUDGET_STEPS`) is planned and its
    :func:`pilot` estimate taken (the sample pixels only); the first step whose pilot meets
    ``target`` is solved in full, and if the solved pattern's own estimate still misses the target
    the search goes on. The search stops where the beam cap allows no more beams, when a step did
    not divide the pilot estimate by :data:`ESCALATION_MIN_GAIN`, or when it exceeds
    :data:`ESCALATION_REACH` × the target; then the last step tried (the most beams) is solved, if
    it is not yet. Only one pattern is solved in full unless a pilot misjudged the target. With
    ``second_look``, a result that misses the target then gets :func:`_rescue`. With ``skip`` (the
    skip margin; None: always solve), a last step whose pilot estimate exceeds ``skip`` × the target
    raises :class:`UnconvergedError` instead.
    """
    tried: list[dict] = []  # plan, pilot estimate and reference, timings, pattern of each step
    spent: dict = {}  # stage timings summed over everything solved

    def solve(step: dict, entry: dict) -> LacbedPattern:
        cpu0, timings = time.process_time(), step["timings"]
        pat = solve_plan(
            step["plan"], n_jobs=n_jobs, progress=progress, timings=timings, warn=False,
            reference=step["reference"],
        )  # fmt: skip
        for key, val in pat.timings.items():
            spent[key] = spent.get(key, 0.0) + val
        entry.update(solved=True, convergence_estimate=pat.settings["convergence_estimate"])
        entry["cpu"] += time.process_time() - cpu0
        step["pattern"] = pat
        return pat

    history: list[dict] = []
    for factor in (1.0, *steps):
        last = tried[-1]["plan"] if tried else None
        step = _pilot_step(crystal, thickness_nm, kw, factor, n_jobs, last=last, stage="escalation")
        if step is None:
            break  # the beam cap allows no more beams anywhere
        est = step["estimate"]
        tried.append(step)
        history.append(step["entry"])
        if est <= target:
            if solve(tried[-1], history[-1]).settings["convergence_estimate"] <= target:
                break
            continue  # the pilot misjudged it: the next step
        if len(tried) > 1 and est * ESCALATION_MIN_GAIN > tried[-2]["estimate"]:
            break  # no real progress: more beams will not converge it either
        if est > ESCALATION_REACH * target:
            break  # out of reach of the budget steps
    best = len(tried) - 1  # the most beams: its reference has the most too
    step = tried[best]
    if step["pattern"] is None and not (skip is not None and step["estimate"] > skip * target):
        solve(step, history[best])  # exactly as without the second look
    missed = step["pattern"] is None or step["pattern"].settings["convergence_estimate"] > target
    if second_look and missed:
        second = _rescue(crystal, thickness_nm, kw, target, tried, history, n_jobs=n_jobs)
        if second is not None:
            history.append(second["entry"])
            if solve(second, second["entry"]).settings["convergence_estimate"] <= target:
                tried.append(second)  # else the first pass's result stands
                best = len(tried) - 1
    if tried[best]["pattern"] is None:  # skip: its pilot is beyond the skip margin × target
        raise _unconverged(tried[best], history, target, cpu_start, second_look, skip, steps)
    for step in tried:  # the planning of the steps that were only piloted
        if step["pattern"] is None:
            for key in ("beam_selection", "structure_factors"):
                spent[key] = spent.get(key, 0.0) + step["timings"].get(key, 0.0)
    pattern = tried[best]["pattern"]
    pattern.timings.update(spent)
    pattern.timings["convergence_estimate"] = sum(
        t["timings"].get("convergence_estimate", 0.0) for t in tried
    )
    return pattern, tried[best]["plan"], history


def _rescue(crystal, thickness_nm, kw: dict, target: float, tried: list, history: list, *, n_jobs):
    """Second look at a budget that :func:`_escalate` left unconverged; called only then.

    For each of :data:`RESCUE_STEPS` in turn:

    - a step the first pass did not reach is planned (the look ends at the beam cap) and gets its
      ordinary pilot (default sample); it is chosen when that meets the target, as in the first
      pass, and the look ends where it exceeds :data:`RESCUE_REACH` × the target or did not
      divide the step before's by :data:`ESCALATION_MIN_GAIN`;
    - a step whose ordinary estimate is within :data:`SKIP_MARGIN` × the target is piloted again
      with the larger sample :data:`RESCUE_SAMPLE` (when it is larger than the default): chosen
      when that meets the target; the look ends when it exceeds SKIP_MARGIN × the target (a
      reliable no).

    Returns the chosen step (plan, estimate, reference, timings and its history entry) for the
    caller to solve, or None. Every pilot not chosen is appended to ``history`` (``"stage":
    "rescue"``). The caller keeps the first pass's result unless the chosen step's solved
    pattern meets the target, so a material the first pass converges is never affected.
    """
    cheap = {float(h["budget_factor"]): h["pilot_estimate"] for h in history}
    if min(cheap.values()) > RESCUE_REACH * target:
        return None
    more = RESCUE_SAMPLE > kw["convergence_sample"]
    last, before = tried[-1]["plan"], None
    for factor in RESCUE_STEPS:
        est = cheap.get(factor)
        if est is None:  # beyond the first pass: its ordinary pilot first
            step = _pilot_step(crystal, thickness_nm, kw, factor, n_jobs, last=last)
            if step is None:
                return None  # the beam cap allows no more beams anywhere
            last, est = step["plan"], step["estimate"]
            if est <= target:
                return step
            history.append(step["entry"])
            if est > RESCUE_REACH * target or (
                before is not None and est * ESCALATION_MIN_GAIN > before
            ):
                return None  # out of reach, or no real progress from the step before
        before = est
        if est > SKIP_MARGIN * target or not more:
            continue
        kw_more = dict(kw, convergence_sample=RESCUE_SAMPLE)
        step = _pilot_step(crystal, thickness_nm, kw_more, factor, n_jobs)
        if step["estimate"] <= target:
            return step
        history.append(step["entry"])
        if step["estimate"] > SKIP_MARGIN * target:
            return None
    return None


def _pilot_step(
    crystal, thickness_nm, kw: dict, factor: float, n_jobs, *, last=None, stage="rescue"
) -> dict | None:
    """Plan one budget step and take its pilot estimate (plan, estimate, reference, timings,
    pattern None and its history entry); None when its strong beams are those of the plan
    ``last`` (the beam cap)."""
    cpu0, timings = time.process_time(), {}
    plan = plan_lacbed(crystal, thickness_nm, budget_factor=factor, timings=timings, **kw)
    if last is not None and np.array_equal(plan.n_strong, last.n_strong):
        return None
    t0 = time.perf_counter()
    est, ref = pilot(plan, n_jobs=n_jobs)
    timings["convergence_estimate"] = time.perf_counter() - t0
    return dict(
        plan=plan, estimate=est, reference=ref, timings=timings, pattern=None,
        entry=_history_entry(plan, est, cpu0, stage=stage),
    )  # fmt: skip


def _history_entry(plan: EnginePlan, estimate: float, cpu0: float, stage: str = "escalation"):
    """One step of ``settings["escalation"]``: budget factor, pilot estimate and its sample."""
    return {
        "budget_factor": plan.options["budget_factor"], "pilot_estimate": estimate,
        "convergence_estimate": None, "n_strong_mean": float(plan.n_strong.mean()),
        "solved": False, "cpu": time.process_time() - cpu0, "stage": stage,
        "sample_pixels": int(len(plan.sample_index)),
    }  # fmt: skip


def _beam_counts(plan: EnginePlan) -> dict:
    """Strong beams per tile (least, most, mean) and weak beams per tile (mean) of a plan."""
    n_strong = plan.n_strong
    return {
        "n_strong_min": int(n_strong.min()),
        "n_strong_max": int(n_strong.max()),
        "n_strong_mean": float(n_strong.mean()),
        "n_weak_mean": float(plan.n_weak.mean()),
    }


def _unconverged(
    step: dict, history: list, target: float, cpu_start: float, second_look: bool, margin: float,
    steps: tuple,
) -> UnconvergedError:  # fmt: skip
    """The error of a pattern not solved because its budget cannot converge it (or, with a skip
    margin below :data:`SKIP_MARGIN`, because its pilot missed the target: deferred)."""
    plan, est = step["plan"], step["estimate"]
    cr = plan.crystal
    settings = {
        "physics_version": PHYSICS_VERSION,
        "bethe_order": bloch_matrix.BETHE_ORDER,
        "budget_factor": plan.options["budget_factor"],
        "budget_capped": plan.budget_capped,
        "convergence_estimate": None,
        "pilot_estimate": est,
        "escalation": history,
        "second_look": bool(second_look),
        "skip_margin": float(margin),
        "budget_steps": list(steps),
        "n_pool": int(len(plan.pool)),
        **_beam_counts(plan),
        "symmetry": plan.symmetry,
        "cpu": time.process_time() - cpu_start,
    }
    capped = "; the beam cap stopped the budget" if plan.budget_capped else ""
    if est <= SKIP_MARGIN * target:  # only a stricter margin than the engine's refused it
        return UnconvergedError(
            f"{cr.name or cr.formula}: not solved, the pilot estimate Z = {100 * est:.2f} % at "
            f"{plan.options['budget_factor']:g}× the strong beams misses the target "
            f"{100 * target:.2f} % (skip margin {margin:g}: left for the second look{capped})",
            settings,
        )
    return UnconvergedError(
        f"{cr.name or cr.formula}: not solved, the adaptive budget cannot converge it (pilot "
        f"estimate Z = {100 * est:.2f} % at {plan.options['budget_factor']:g}× the strong beams, "
        f"target {100 * target:.2f} %{capped})",
        settings,
    )


def _warn_unconverged(pattern: LacbedPattern, plan: EnginePlan) -> None:
    worst = pattern.settings["convergence_estimate"]
    if worst is not None and worst > CONVERGENCE_WARNING:
        cr = plan.crystal
        log.warning(
            "%s: estimated Z = %.2f %% against twice the strong beams (> %.1f %%)%s",
            cr.name or cr.formula,
            100 * worst,
            100 * CONVERGENCE_WARNING,
            "; the beam budget is capped" if plan.budget_capped else "",
        )
