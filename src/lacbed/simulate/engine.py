"""The LACBED engine: :func:`simulate_lacbed`.

Pipeline (PHYSICS.md §4–7)
--------------------------
1. Crystal: detect the lattice centring from the atoms; for a centrosymmetric point group move the
   origin to an inversion centre so every U_g, U′_g is real (a real symmetric eigenproblem, several
   times faster; intensities do not depend on the origin).
2. Beam pool (:func:`lacbed.bloch.pool.beam_pool`): all centring-allowed g with |g| ≤ g_max near
   the Ewald sphere, HOLZ included. One structure-factor call fills the table V_{g−h} for all pairs.
3. Pixels: only the irreducible wedge of the bright-field symmetry (4mm: N(N+1)/2 of 4N² pixels),
   grouped into square tiles. Each tile gets one beam set: the beams of largest second-order
   perturbation strength over the tile (:func:`lacbed.bloch.matrix.beam_importance`) are strong,
   the next ones are folded in as Bethe potentials. Tiles that touch the diagonal mirror get sets
   closed under that mirror, so the symmetry of the reduced solve is exact; the other pixels are
   exact copies (the set of an image pixel is the image of the set).
4. Per tile: batched structure matrices U + diag(K² − |k+g|²) with Bethe corrections and the
   surface-normal metric, one batched eigensolve, all thicknesses at once.

Beam budget
-----------
``strong_beams=N`` takes the N strongest beams per tile (as Felix's IMinStrongBeams, but per tile);
it is a minimum: a further beam coupled to the strong set by more than :data:`BETHE_SAFETY` of
its |K² − |k+w|²| somewhere in the tile is promoted to strong instead of entering as a Bethe
potential (the perturbation series would not converge there), up to max(:data:`MAX_STRONG`, N).
``strong_beams=None`` (default) adapts to the material: every beam whose strength over the tile is
at least :data:`STRONG_THRESHOLD` is strong (bounded by :data:`MIN_STRONG` and
:data:`MAX_STRONG`), and beams down to :data:`WEAK_THRESHOLD` enter as Bethe potentials. The
thresholds were set so that Z ≤ 0.5 % against a run with twice the strong beams on the panel in
docs/engine_validation.md.
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

from lacbed.bloch.matrix import (
    beam_importance,
    bethe_tensor,
    bethe_tensor_real,
    excitation_denominators,
    structure_matrices,
    structure_matrices_real,
)
from lacbed.bloch.pool import beam_pool
from lacbed.bloch.solver import BACKENDS, solve_exact, solve_fast
from lacbed.constants import electron_constants
from lacbed.errors import LacbedError, SettingsError
from lacbed.simulate.geometry import incident_wavevectors, pixel_axis, tilts
from lacbed.simulate.pattern import LacbedPattern
from lacbed.simulate.symmetry import (
    fill_from_wedge,
    find_inversion_centre,
    lattice_centring,
    representative_ops,
    resolve_symmetry,
    wedge_pixels,
)

__all__ = [
    "simulate_lacbed",
    "STRONG_THRESHOLD",
    "WEAK_THRESHOLD",
    "MIN_STRONG",
    "MAX_STRONG",
    "DEFAULT_G_MAX",
    "MAX_POOL",
]

log = logging.getLogger(__name__)

#: Adaptive budget: beams with tile strength ≥ this are strong [-].
STRONG_THRESHOLD: float = 0.01
#: Beams with strength ≥ this (and not strong) enter as Bethe potentials [-].
WEAK_THRESHOLD: float = 1e-3
#: Bounds of the adaptive strong-beam count per tile.
MIN_STRONG: int = 24
MAX_STRONG: int = 400
#: Default largest |g| of the pool [1/Å] (Felix reference run: RgLimit = 3.0).
DEFAULT_G_MAX: float = 3.0
#: The default g_max shrinks until the pool has at most this many beams (large cells).
MAX_POOL: int = 1200
#: A weak beam whose coupling to the strong set exceeds this fraction of |K² − |k+w|²| somewhere
#: in the tile is promoted to the strong set (or, past the size limit, left out of the Bethe sum):
#: the perturbation series would not converge there, and its absorptive part can give gain.
BETHE_SAFETY: float = 0.2
#: Bytes allowed for the Bethe products of one beam set (caps the number of weak beams).
BETHE_MEMORY: float = 1.5e8
#: Elements allowed in one (batch, n, n) stack; larger matrices get smaller batches.
BATCH_ELEMENTS: int = 1_500_000

_SOLVERS = ("fast", "exact")


def _validate(thickness_nm, voltage_kv, size, half_width, strong_beams, max_g, solver, backend):
    t = np.atleast_1d(np.asarray(thickness_nm, dtype=np.float64))
    if t.ndim != 1 or t.size == 0:
        raise SettingsError("thickness_nm must be a number or a 1-D list of thicknesses in nm")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise SettingsError(f"every thickness must be a finite number > 0 nm, got {t.tolist()}")
    v = float(voltage_kv)
    if not np.isfinite(v) or v <= 0:
        raise SettingsError(f"voltage must be > 0 kV, got {voltage_kv!r}")
    if int(size) != size or size < 8 or size % 2:
        raise SettingsError(
            f"size must be an even number of pixels >= 8 (zone axis between pixels), got {size!r}"
        )
    if half_width is not None and not (np.isfinite(half_width) and half_width > 0):
        raise SettingsError(f"half_width must be > 0 1/Å, got {half_width!r}")
    if strong_beams is not None and (int(strong_beams) != strong_beams or strong_beams < 2):
        raise SettingsError(f"strong_beams must be an integer >= 2 or None, got {strong_beams!r}")
    if max_g is not None and not (np.isfinite(max_g) and max_g > 0):
        raise SettingsError(f"max_g must be > 0 1/Å, got {max_g!r}")
    if solver not in _SOLVERS:
        raise SettingsError(f"solver must be one of {_SOLVERS}, got {solver!r}")
    if backend not in BACKENDS:
        raise SettingsError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return t


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


def _pool_for(a: float, max_g: float | None, wavenumber: float, centring: str) -> np.ndarray:
    if max_g is not None:
        return beam_pool(a, max_g, wavenumber, centring=centring)
    gm = DEFAULT_G_MAX
    pool = beam_pool(a, gm, wavenumber, centring=centring)
    while len(pool) > MAX_POOL:
        gm *= 0.95
        pool = beam_pool(a, gm, wavenumber, centring=centring)
    return pool


def _potential_table(crystal, pool, *, voltage, scattering, absorption, kappa, b_iso, real):
    """V_{g−h} = U + iU′ for all pool pairs, and |U_{g−h}| [Å⁻²]."""
    from lacbed.scattering import structure_factors

    n = len(pool)
    diff = (pool[:, None, :] - pool[None, :, :]).reshape(-1, 3)
    m = int(np.abs(diff).max()) + 1
    key = ((diff[:, 0] + m) * (2 * m + 1) + diff[:, 1] + m) * (2 * m + 1) + diff[:, 2] + m
    ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
    uniq = diff[first]
    sf = structure_factors(
        crystal,
        uniq,
        voltage=voltage,
        scattering=scattering,
        absorption=absorption,
        kappa=kappa,
        b_iso=b_iso,
    )
    u = np.asarray(sf.U, dtype=np.complex128)
    up = np.asarray(sf.U_abs, dtype=np.complex128)
    if real:
        scale = max(np.abs(u).max(), 1e-300)
        if np.abs(u.imag).max() > 1e-9 * scale or np.abs(up.imag).max() > 1e-9 * scale:
            real = False
            log.warning("origin on the inversion centre but U_g not real; using complex algebra")
        else:
            u = u.real.astype(np.complex128)
            up = up.real.astype(np.complex128)
    inv = inv.reshape(-1)
    v = (u + 1j * up)[inv].reshape(n, n)
    if real:
        v = u.real[inv].reshape(n, n) + 1j * up.real[inv].reshape(n, n)
    absu = np.abs(u)[inv].reshape(n, n)
    return (
        v,
        absu,
        real,
        complex(u[np.all(uniq == 0, axis=1)][0]),
        complex(up[np.all(uniq == 0, axis=1)][0]),
    )


def _select(
    w: np.ndarray,
    absu: np.ndarray,
    min_abs_d: np.ndarray,
    strong_beams: int | None,
    mirror: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Strong and weak pool indices for one tile (000 is pool index 0 and comes first)."""
    n_pool = len(w)
    order = np.argsort(-w, kind="stable")
    if strong_beams is not None:
        n = min(int(strong_beams), n_pool)
    else:
        n = int(np.count_nonzero(w >= STRONG_THRESHOLD))
        n = min(max(n, MIN_STRONG), MAX_STRONG, n_pool)
    strong = np.zeros(n_pool, dtype=bool)
    strong[order[:n]] = True
    if mirror is not None:
        strong |= strong[mirror]
    candidate = (~strong) & (w >= WEAK_THRESHOLD) & (min_abs_d > 1e-12)
    # Bethe validity: a candidate whose coupling to the strong set is not small compared with
    # K² − |k+w|² somewhere in the tile (ratio > BETHE_SAFETY) would be folded in with a near
    # zero denominator (the perturbation series diverges, and its absorptive part can give gain).
    # Promote it to the strong set, strongest coupling first, up to `limit`; repeat, since a
    # promoted beam brings couplings of its own; whatever is still too strongly coupled is left
    # out of the Bethe sum.
    limit = max(MAX_STRONG, n)
    inv_d = 1.0 / np.maximum(min_abs_d, 1e-30)
    for _ in range(8):
        ratio = np.max(absu[:, strong], axis=1) * inv_d
        bad = candidate & ~strong & (ratio > BETHE_SAFETY)
        room = limit - int(strong.sum())
        if not bad.any() or room <= 0:
            break
        idx = np.nonzero(bad)[0]
        idx = idx[np.argsort(-ratio[idx], kind="stable")][:room]
        strong[idx] = True
        if mirror is not None:
            strong |= strong[mirror]
    ratio = np.max(absu[:, strong], axis=1) * inv_d
    weak = candidate & ~strong & (ratio <= BETHE_SAFETY)
    # memory cap of the Bethe products (≤ 16 n_strong² bytes per weak beam): keep the strongest
    n_s = int(strong.sum())
    cap = max(16, int(BETHE_MEMORY / (16.0 * n_s * n_s)))
    if weak.sum() > cap:
        keep = [i for i in order if weak[i]][:cap]
        weak = np.zeros(n_pool, dtype=bool)
        weak[keep] = True
    if mirror is not None:
        weak |= weak[mirror]
        weak &= ~strong & (min_abs_d > 1e-12)
    return np.nonzero(strong)[0], np.nonzero(weak)[0]


def _tiles(rows, cols, size, tile):
    n = size // 2
    tr = (rows - n) // tile if size else rows
    tc = (cols - n) // tile
    key = tr * (size // tile + 2) + tc
    groups = {}
    for i, kk in enumerate(key):
        groups.setdefault(int(kk), []).append(i)
    return [np.array(v) for _, v in sorted(groups.items())]


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
) -> LacbedPattern:
    """Bright-field (000) LACBED pattern of a cubic crystal along [001] by Bloch waves.

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

    Returns
    -------
    LacbedPattern
        ``intensities[t, row, col]`` with the Felix pixel convention (PHYSICS.md §6), including
        the mean absorption exp(−2πtU′₀/K) that Felix omits. ``timings`` [s]: wall time of
        "beam_selection", "structure_factors", "matrix_build", "eigensolve", "assembly" (the
        last three summed over worker threads and divided by their number), "total" (wall) and
        "cpu" (process CPU time, all threads; robust on a shared machine).

    Raises
    ------
    SettingsError
        Impossible settings (thickness ≤ 0, voltage ≤ 0, size < 8 or odd, half-width ≤ 0, more
        strong beams than the pool, unknown solver/backend).
    LacbedError
        If the result contains NaN or inf, or the solve of a tile fails (the message names the
        crystal and the settings).
    """
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    timings = dict.fromkeys(
        ("beam_selection", "structure_factors", "matrix_build", "eigensolve", "assembly"), 0.0
    )
    t_nm = _validate(
        thickness_nm, voltage_kv, size, half_width, strong_beams, max_g, solver, backend
    )
    from lacbed.crystal import Crystal, load_crystal

    if not isinstance(crystal, Crystal):
        crystal = load_crystal(crystal)
    size = int(size)
    ec = electron_constants(float(voltage_kv) * 1e3)
    K = ec.wavenumber
    if half_width is None:
        half_width = 4.0 / crystal.a
    half_width = float(half_width)
    if half_width >= 0.5 * K:
        raise SettingsError(f"half_width {half_width} 1/Å is not a small tilt (K = {K:.2f} 1/Å)")
    sym = resolve_symmetry(symmetry, crystal.bright_field_symmetry)
    if sym not in ("4mm", "2mm", "1"):
        raise SettingsError(f"symmetry must be 'auto', '4mm', '2mm' or '1', got {symmetry!r}")
    if tile is None:
        tile = max(4, size // 8)
    if int(tile) != tile or tile < 1:
        raise SettingsError(f"tile must be a positive number of pixels, got {tile!r}")
    if int(batch) != batch or batch < 1:
        raise SettingsError(f"batch must be a positive integer, got {batch!r}")
    tile, batch = int(tile), int(batch)

    # ---- crystal: centring and origin on an inversion centre
    t0 = time.perf_counter()
    centring = lattice_centring(crystal)
    centre = None
    if crystal.point_group in ("m-3m", "m-3"):
        centre = find_inversion_centre(crystal)
    work = crystal.shifted(centre) if centre is not None else crystal
    pool = _pool_for(crystal.a, max_g, K, centring)
    n_pool = len(pool)
    if strong_beams is not None and strong_beams > n_pool:
        raise SettingsError(
            f"strong_beams={strong_beams} exceeds the beam pool of {n_pool} beams "
            f"(|g| <= {max_g or DEFAULT_G_MAX} 1/Å); use fewer strong beams or a larger max_g"
        )
    g = pool / crystal.a
    timings["beam_selection"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    v_table, absu, real, u0, u0p = _potential_table(
        work,
        pool,
        voltage=ec.voltage,
        scattering=scattering,
        absorption=absorption,
        kappa=kappa,
        b_iso=b_iso,
        real=centre is not None,
    )
    timings["structure_factors"] += time.perf_counter() - t0

    # ---- pixels and tiles
    rows, cols = wedge_pixels(size, sym)
    if sym == "1":
        # full solve: beam sets of each pixel are images of those of its 4mm/2mm representative
        base = crystal.bright_field_symmetry
        rep_r, rep_c, ops = representative_ops(size, base)
        w_rows, w_cols = wedge_pixels(size, base)
    else:
        base = sym
        w_rows, w_cols = rows, cols
    tile_groups = _tiles(w_rows, w_cols, size, tile)
    mirror = None
    if base == "4mm":
        lookup = {tuple(h): i for i, h in enumerate(pool)}
        mirror = np.array([lookup[(h[1], h[0], h[2])] for h in pool])

    thickness_a = 10.0 * t_nm
    total = len(rows)
    n_strong_list, n_weak_list = [], []
    used = np.zeros(n_pool, dtype=bool)
    # wedge tile beam sets
    tile_sets = []
    t0 = time.perf_counter()
    n = size // 2
    for grp in tile_groups:
        kt = tilts(w_rows[grp], w_cols[grp], size, half_width)
        k = incident_wavevectors(kt, K)
        d = np.abs(excitation_denominators(k, g, K))  # (p, pool)
        w = beam_importance(absu, d.min(axis=0))
        tr = (w_rows[grp][0] - n) // tile
        tc = (w_cols[grp][0] - n) // tile
        mir = mirror if (mirror is not None and tr == tc) else None
        strong, weak = _select(w, absu, d.min(axis=0), strong_beams, mir)
        tile_sets.append((strong, weak))
        used[strong] = True
        n_strong_list.append(len(strong))
        n_weak_list.append(len(weak))
    timings["beam_selection"] += time.perf_counter() - t0

    solve = solve_fast if solver == "fast" else solve_exact
    psi_out = np.zeros((len(rows), len(t_nm)), dtype=np.complex128)

    # ---- jobs: (pixel indices, strong, weak), at most `batch` pixels each
    jobs = []

    def add_jobs(pix_idx, strong, weak):
        step = max(1, min(batch, BATCH_ELEMENTS // len(strong) ** 2))
        for s0 in range(0, len(pix_idx), step):
            jobs.append((pix_idx[s0 : s0 + step], strong, weak))

    if sym != "1":
        for grp, (strong, weak) in zip(tile_groups, tile_sets, strict=True):
            add_jobs(grp, strong, weak)
    else:
        from lacbed.simulate.symmetry import apply_op_hkl

        lookup = {tuple(h): i for i, h in enumerate(pool)}
        widx = np.full((size, size), -1, dtype=np.int64)
        widx[w_rows, w_cols] = np.arange(len(w_rows))
        tile_of = np.empty(len(w_rows), dtype=np.int64)
        for it, grp in enumerate(tile_groups):
            tile_of[grp] = it
        flat_tile = tile_of[widx[rep_r, rep_c]].ravel()
        flat_op = ops.ravel()
        for it in range(len(tile_groups)):
            strong, weak = tile_sets[it]
            for op in np.unique(flat_op[flat_tile == it]):
                sel = np.nonzero((flat_tile == it) & (flat_op == op))[0]
                ms = np.array(
                    [lookup[tuple(h)] for h in apply_op_hkl(pool[strong], op, inverse=True)]
                )
                mw = np.array(
                    [lookup[tuple(h)] for h in apply_op_hkl(pool[weak], op, inverse=True)],
                    dtype=np.int64,
                )
                add_jobs(sel, np.sort(ms), mw)  # sorted: 000 (pool index 0) stays first

    lock = threading.Lock()
    state = {"done": 0}
    bethe_cache: dict = {}  # per beam set; batches of one tile share it

    def describe() -> str:
        name = crystal.name or crystal.formula
        return (
            f"crystal {name} ({crystal.formula}, a = {crystal.a:.4f} Å, "
            f"source {crystal.source or 'unknown'}) at {float(voltage_kv):g} kV, size {size}, "
            f"thickness {t_nm.tolist()} nm, solver={solver!r}, backend={backend!r}, "
            f"strong_beams={strong_beams}, absorption={absorption!r}"
        )

    def work(job):
        try:
            _work(job)
        except LacbedError:
            raise
        except Exception as exc:
            pix_idx, strong, weak = job
            raise LacbedError(
                f"the Bloch-wave solve failed for {describe()} "
                f"({len(pix_idx)} pixels, {len(strong)} strong and {len(weak)} weak beams): "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _work(job):
        pix_idx, strong, weak = job
        local = dict.fromkeys(("matrix_build", "eigensolve", "assembly"), 0.0)
        kt = tilts(rows[pix_idx], cols[pix_idx], size, half_width)
        k = incident_wavevectors(kt, K)
        tb = time.perf_counter()
        use_real = real and solver == "fast"
        key = (id(strong), id(weak))
        bethe = bethe_cache.get(key)
        if bethe is None and len(weak):
            bethe = (bethe_tensor_real if use_real else bethe_tensor)(v_table, strong, weak)
            with lock:
                bethe_cache[key] = bethe
                while len(bethe_cache) > n_workers + 1:  # jobs run tile by tile
                    bethe_cache.pop(next(iter(bethe_cache)))
        if use_real:
            a = structure_matrices_real(v_table, k, g, K, strong, weak, bethe=bethe)
        else:
            a = structure_matrices(v_table, k, g, K, strong, weak, bethe=bethe)
        local["matrix_build"] += time.perf_counter() - tb
        psi_out[pix_idx] = solve(a, k[:, 2], thickness_a, backend=backend, timings=local)
        with lock:
            for key, val in local.items():
                timings[key] += val / n_workers
            state["done"] += len(pix_idx)
            if progress is not None:
                progress(state["done"], total)

    n_workers = _resolve_jobs(n_jobs) if backend == "numpy" else 1
    with _single_threaded_blas(backend == "numpy"):
        if n_workers == 1:
            for job in jobs:
                work(job)
        else:
            with ThreadPoolExecutor(max_workers=n_workers) as ex:
                list(ex.map(work, jobs))

    t0 = time.perf_counter()
    inten = np.abs(psi_out) ** 2  # (n_unique, t)
    if sym == "1":
        full = inten.T.reshape(len(t_nm), size, size)
    else:
        full = fill_from_wedge(inten.T, rows, cols, size, sym)
    timings["assembly"] += time.perf_counter() - t0
    if not np.all(np.isfinite(full)):
        raise LacbedError(
            f"the simulation produced NaN or inf intensities for {describe()}; try more strong "
            "beams or a smaller half-width"
        )
    timings["total"] = time.perf_counter() - t_start
    timings["cpu"] = time.process_time() - cpu_start
    ax = pixel_axis(size, half_width)
    from lacbed import __version__

    n_strong = np.array(n_strong_list)
    settings = {
        "crystal": {
            "formula": crystal.formula,
            "a": crystal.a,
            "space_group_number": crystal.space_group_number,
            "name": crystal.name,
            "source": crystal.source,
        },
        "voltage_kv": float(voltage_kv),
        "size": size,
        "half_width": half_width,
        "thickness_nm": t_nm.tolist(),
        "scattering": scattering,
        "absorption": absorption,
        "kappa": float(kappa),
        "b_iso": None if b_iso is None else float(b_iso),
        "strong_beams": strong_beams,
        "beam_budget": "adaptive" if strong_beams is None else "fixed",
        "max_g": float(np.linalg.norm(g, axis=1).max()),
        "solver": solver,
        "backend": backend,
        "symmetry": sym,
        "tile": int(tile),
        "n_tiles": len(tile_groups),
        "n_unique_pixels": int(len(rows)),
        "n_pool": int(n_pool),
        "n_holz_pool": int(np.count_nonzero(pool[:, 2] != 0)),
        "n_strong_min": int(n_strong.min()),
        "n_strong_max": int(n_strong.max()),
        "n_strong_mean": float(n_strong.mean()),
        "n_weak_mean": float(np.mean(n_weak_list)),
        "n_strong_union": int(used.sum()),
        "matrix_size_max": int(n_strong.max()),
        "real_arithmetic": bool(real),
        "origin_shift": None if centre is None else [float(x) for x in centre],
        "centring": centring,
        "surface_normal_metric": True,
        "wavenumber": K,
        "U0": [u0.real, u0.imag],
        "U0_abs": [u0p.real, u0p.imag],
    }
    return LacbedPattern(
        intensities=full,
        thickness_nm=t_nm,
        kx=ax.copy(),
        ky=ax.copy(),
        wavelength=ec.wavelength,
        beams=pool[used],
        settings=settings,
        timings=timings,
        version=__version__,
    )
