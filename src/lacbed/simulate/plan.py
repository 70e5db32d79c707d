"""The engine's plan: what :func:`lacbed.simulate.solve_plan` will solve, and at what cost.

A plan is built by small pure functions (docs/physics.md §4–7) and holds everything the solver needs:
the beam pool, the potential table V_{g−h}, the pixels to solve, their tiles, each tile's strong
and weak beam sets, the batched jobs, the pixel sample of the convergence estimate with its
doubled beam sets, and a predicted CPU time. It knows nothing about threads or backends, so it can
be printed (``lacbed simulate X.cif --plan``), tested and used to schedule a dataset build (the
largest materials first) without solving anything.

Beam budget
-----------
``strong_beams=N`` takes the N strongest beams per tile (as Felix's IMinStrongBeams, but per tile);
it is a minimum: a further beam coupled to the strong set by more than :data:`BETHE_SAFETY` of
its |K² − |k+w|²| somewhere in the tile is promoted to strong instead of entering as a Bethe
potential (the perturbation series would not converge there), up to max(:data:`MAX_STRONG`, N).
``strong_beams=None`` (default) adapts to the material: every beam whose strength over the tile is
at least :data:`STRONG_THRESHOLD` is strong (bounded by :data:`MIN_STRONG` and
:data:`MAX_STRONG`), and beams down to :data:`WEAK_THRESHOLD` enter as Bethe potentials. A tile
whose adaptive set would exceed :data:`MAX_STRONG` (or whose promotions stop at it) is
*budget-capped*, and the result says so (``settings["budget_capped"]``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from lacbed.bloch import matrix as bloch_matrix
from lacbed.bloch.matrix import beam_importance, excitation_denominators, rough_beams, tilt_box
from lacbed.bloch.pool import beam_pool
from lacbed.bloch.solver import BACKENDS
from lacbed.constants import electron_constants
from lacbed.crystal.orientation import (
    Orientation,
    crystal_operations,
    frame_symmetry,
    orientation,
)
from lacbed.errors import SettingsError
from lacbed.simulate.geometry import incident_wavevectors, tilts
from lacbed.simulate.reflections import (
    as_hkl_array,
    hkl_label,
    resolve_reflections,
    symmetry_orbit,
)
from lacbed.simulate.symmetry import (
    apply_op_hkl,
    find_inversion_centre,
    lattice_centring,
    representative_ops,
    resolve_symmetry,
    wedge_pixels,
)

__all__ = [
    "EnginePlan",
    "Job",
    "plan_lacbed",
    "beam_pool_size",
    "direction_jobs",
    "STRONG_THRESHOLD",
    "WEAK_THRESHOLD",
    "MIN_STRONG",
    "MAX_STRONG",
    "DEFAULT_G_MAX",
    "MAX_POOL",
    "SAMPLE_FRACTION",
    "SAMPLE_MIN",
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
#: Rough weak beams (near their Bragg condition within a tile, so that their corrections cannot
#: be interpolated over it) become strong when there are at most this fraction of the strong set
#: (or :data:`PROMOTE_MIN`). Measured at 128 × 128: 0–9 per tile with 120–400 strong beams on six
#: panel materials (none at all on four), but 15–24 in the outer tiles of SrTiO3 (~140 strong):
#: promoting them (+≤ 20 % beams, ≤ 1.7× the tile's eigensolve) costs less than the exact
#: evaluation of the corrections at every pixel (~2× the eigensolve), and is more accurate.
PROMOTE_FRACTION: float = 0.2
PROMOTE_MIN: int = 4
#: Convergence estimate: fraction of the solved (wedge) pixels re-solved with twice the strong
#: beams, and the least number of such pixels [-].
SAMPLE_FRACTION: float = 1.0 / 64.0
SAMPLE_MIN: int = 16
#: Cost model of one pixel [s per unit]: c·(n³ + m n² + m² n) for n strong and m weak beams,
#: ×COMPLEX_FACTOR for complex algebra (no inversion centre). Least-squares fit of the solve's CPU
#: time (total minus structure factors and selection) on the 18-material panel of
#: benchmarks/engine_panel.py (2-core development machine, single-threaded BLAS): c = 2.9e-10
#: (materials within 0.5–1.15× of it), complex 8.9e-10 (0.6–1.6×, small cells worst).
CPU_PER_UNIT: float = 2.9e-10
COMPLEX_FACTOR: float = 3.0

_SOLVERS = ("fast", "exact")
_ORIENTATION_KEYS = ("zone_axis", "x_direction", "normal")
_WEDGES = ("1", "2mm", "4mm")


class Job(NamedTuple):
    """One batch of pixels sharing a beam set.

    Attributes
    ----------
    out : ndarray of int, shape (p,)
        Where the amplitudes go in the solver's output.
    rows, cols : ndarray of int, shape (p,)
        Pattern pixels (Felix convention, docs/physics.md §6).
    strong, weak : ndarray of int
        Pool indices of the strong beams (000 first) and of the Bethe (weak) beams.
    box : (float, float, float, float) or None
        Tilt box (k_x0, k_x1, k_y0, k_y1) [1/Å] of all the pixels that share this job's beam
        sets (its tile): the weak-beam corrections are interpolated from nodes spanning it, the
        same for every batch of the tile (:func:`lacbed.bloch.matrix.bethe_node_parts`); None:
        evaluated exactly at every pixel (too few pixels for the nodes to pay).
    kt : ndarray, shape (p, 2), optional
        Tangential tilts (k_x, k_y) [1/Å] solved instead of those of ``rows``/``cols``
        (:func:`direction_jobs`: arbitrary directions, e.g. a detector's pixels); None: the
        pixels' own tilts.
    """

    out: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    strong: np.ndarray
    weak: np.ndarray
    box: tuple | None = None
    kt: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class EnginePlan:
    """Everything :func:`lacbed.simulate.solve_plan` needs; built by :func:`plan_lacbed`.

    Attributes
    ----------
    crystal : Crystal
        The crystal as given (its name and formula are reported).
    options : dict
        Resolved settings (voltage_kv, size, half_width [1/Å], thickness_nm, scattering, ...).
    wavenumber : float
        K = 1/λ in vacuum [1/Å].
    wavelength : float
        λ [Å].
    pool : ndarray, shape (n_pool, 3), int
        Miller indices of the beam pool, 000 first.
    g : ndarray, shape (n_pool, 3)
        Pool reciprocal vectors in the frame (beam along z at the pattern centre,
        docs/physics.md §12) [1/Å].
    v_table : ndarray, shape (n_pool, n_pool), complex
        V_{g−h} = U + iU′ [Å⁻²].
    real : bool
        U_g and U′_g are real (origin on an inversion centre): real symmetric eigenproblems.
    symmetry : str
        Symmetry used to reduce the pixels: the bright field's ('4mm', '2mm'), '1' (none) or,
        for dark-field discs, '2' (the 2-fold axis along [001]: the half plane rows ≥ N).
    rows, cols : ndarray of int
        The pixels solved (the wedge, or every pixel for symmetry '1').
    tiles : list of ndarray
        Indices into the wedge pixels of each tile.
    tile_sets : list of (strong, weak)
        Pool indices of each tile's beam sets.
    capped : ndarray of bool, shape (n_tiles,)
        The tile's adaptive budget hit :data:`MAX_STRONG`.
    jobs : list of Job
        The batched solves of the pattern.
    sample_jobs : list of Job
        The sample pixels with twice the strong beams (convergence estimate).
    pilot_jobs : list of Job
        The same sample pixels with the plan's own beam sets: with ``sample_jobs`` they give the
        convergence estimate before the pattern is solved (:func:`lacbed.simulate.engine.pilot`).
    sample_index : ndarray of int
        Index into ``rows``/``cols`` of each sample pixel (order of ``sample_jobs`` outputs).
    sample_weight : ndarray
        Number of pattern pixels each sample pixel stands for [-].
    info : dict
        Origin shift, centring, U₀, U′₀ and pool details for the result's settings.
    reflections : ndarray, shape (n_g, 3), int, or None
        Beams whose discs are returned (dark-field run), in output order; None: the 000 disc
        only, as a bright-field pattern.
    reflection_index : ndarray, shape (n_g,), int, or None
        Pool index of each reflection; −1 where the lattice centring forbids it (disc ≡ 0).
    normal : ndarray, shape (3,), or None
        Unit surface normal in the frame; None: ẑ, the zone axis (docs/physics.md §12).
    """

    crystal: Any
    options: dict
    wavenumber: float
    wavelength: float
    pool: np.ndarray
    g: np.ndarray
    v_table: np.ndarray
    real: bool
    symmetry: str
    rows: np.ndarray
    cols: np.ndarray
    tiles: list
    tile_sets: list
    capped: np.ndarray
    jobs: list
    sample_jobs: list = field(default_factory=list)
    pilot_jobs: list = field(default_factory=list)
    sample_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sample_weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    info: dict = field(default_factory=dict)
    reflections: np.ndarray | None = None
    reflection_index: np.ndarray | None = None
    normal: np.ndarray | None = None

    @property
    def partner_index(self) -> np.ndarray | None:
        """Pool index of R g = (−h, −k, l) for each reflection (R: the 2-fold axis along [001]);
        −1 where the reflection is centring-forbidden."""
        if self.reflections is None:
            return None
        lookup = {tuple(int(x) for x in h): i for i, h in enumerate(self.pool)}
        out = np.full(len(self.reflections), -1, dtype=np.int64)
        for i, (h, idx) in enumerate(zip(self.reflections, self.reflection_index, strict=True)):
            if idx >= 0:
                out[i] = lookup[(-int(h[0]), -int(h[1]), int(h[2]))]
        return out

    @property
    def outputs(self) -> np.ndarray | None:
        """Pool indices of the beams the main solve returns (000 first), None: 000 only.

        With symmetry '2' (half plane) the partners R g are solved too: I_g(R k) = I_{Rg}(k).
        """
        if self.reflections is None:
            return None
        idx = np.asarray(self.reflection_index, dtype=np.int64)
        if self.symmetry == "2":
            idx = np.concatenate([idx, self.partner_index])
        return np.unique(np.concatenate([[0], idx[idx >= 0]]))

    @property
    def budget_capped(self) -> bool:
        """Some tile wanted more strong beams than :data:`MAX_STRONG` allows."""
        return bool(np.any(self.capped))

    @property
    def n_strong(self) -> np.ndarray:
        """Strong beams of each tile."""
        return np.array([len(s) for s, _ in self.tile_sets])

    @property
    def n_weak(self) -> np.ndarray:
        """Weak (Bethe) beams of each tile."""
        return np.array([len(w) for _, w in self.tile_sets])

    def predicted_cpu(self, *, sample: bool = True) -> float:
        """Predicted CPU time of the solve [s] (:data:`CPU_PER_UNIT`; ~±2×, machine-dependent)."""
        jobs = self.jobs + (self.sample_jobs if sample else [])
        units = 0.0
        for job in jobs:
            n, m = float(len(job.strong)), float(len(job.weak))
            units += len(job.out) * (n**3 + m * n * n + m * m * n)
        return CPU_PER_UNIT * (1.0 if self.real else COMPLEX_FACTOR) * units

    def summary(self) -> str:
        """Human-readable plan: beams per tile, matrix sizes, predicted CPU."""
        o = self.options
        cr = self.crystal
        capped = f" (CAPPED at {MAX_STRONG} strong beams)" if self.budget_capped else ""
        lines = [
            f"plan for {cr.name or cr.formula} ({cr.formula}, {cell_label(cr)}, "
            f"{o['voltage_kv']:g} kV, {o['size']}×{o['size']}, W = {o['half_width']:.4f} 1/Å, "
            f"thickness {o['thickness_nm']} nm)",
            f"pool {len(self.pool)} beams (|g| ≤ {self.info['max_g']:.3f} 1/Å, "
            f"{self.info['n_holz_pool']} HOLZ), {'real' if self.real else 'complex'} algebra, "
            f"symmetry {self.symmetry}, {len(self.rows)} pixels solved in {len(self.tiles)} tiles, "
            f"budget {o['beam_budget']}{capped}",
            *(
                []
                if [o.get(k) for k in _ORIENTATION_KEYS] == [[0, 0, 1], [1, 0, 0], [0, 0, 1]]
                else [
                    "zone axis [{}], x-direction [{}], normal [{}]".format(
                        *(" ".join(map(str, o[k])) for k in _ORIENTATION_KEYS)
                    )
                ]
            ),
            *(
                []
                if not any(o.get("tilt", (0.0, 0.0)))
                else ["pattern centre tilted by ({:g}, {:g}) 1/Å".format(*o["tilt"])]
            ),
            *(
                []
                if self.reflections is None
                else ["discs " + " ".join(hkl_label(h) for h in self.reflections)]
            ),
            f"{'tile':>4} {'pixels':>6} {'strong':>6} {'weak':>5}",
        ]
        for i, (grp, (s, w)) in enumerate(zip(self.tiles, self.tile_sets, strict=True)):
            flag = "  capped" if self.capped[i] else ""
            lines.append(f"{i:>4} {len(grp):>6} {len(s):>6} {len(w):>5}{flag}")
        ns = self.n_strong
        lines.append(
            f"matrices {sum(len(j.out) for j in self.jobs)} of size {ns.min()}–{ns.max()} "
            f"(mean {ns.mean():.0f}); estimate: {len(self.sample_index)} pixels with twice the "
            f"strong beams; predicted CPU {self.predicted_cpu():.1f} s "
            f"({self.predicted_cpu(sample=False):.1f} s without the estimate)"
        )
        return "\n".join(lines)


# ----------------------------------------------------------------------------------- settings
def cell_label(crystal) -> str:
    """'a = 5.4310 Å' for a cubic crystal, all six lattice parameters for any other."""
    if crystal.is_cubic:
        return f"a = {crystal.a:.4f} Å"
    a, b, c, al, be, ga = crystal.lattice_parameters
    return f"a = {a:.4f}, b = {b:.4f}, c = {c:.4f} Å, {al:g}°, {be:g}°, {ga:g}°"


def validate_options(
    thickness_nm, voltage_kv, size, half_width, strong_beams, max_g, solver, backend
) -> np.ndarray:
    """Check the engine settings; returns the thicknesses [nm] as a 1-D array."""
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


def pool_for(
    a: float,
    max_g: float | None,
    wavenumber: float,
    centring: str,
    rotation: np.ndarray | None = None,
    reciprocal: np.ndarray | None = None,
) -> np.ndarray:
    """The beam pool (Miller indices): |g| ≤ max_g, or the default g_max shrunk to ≤ MAX_POOL.

    ``rotation`` (:class:`lacbed.crystal.orientation.Orientation`) selects the beams near the
    Ewald sphere of that zone axis (:func:`lacbed.bloch.pool.beam_pool`); None: [001].
    ``reciprocal``: the reciprocal basis of a non-cubic crystal (rows a*, b*, c* [1/Å]).
    """
    kw = {"centring": centring, "rotation": rotation}
    if reciprocal is not None:
        kw["reciprocal"] = reciprocal
    if max_g is not None:
        return beam_pool(a, max_g, wavenumber, **kw)
    gm = DEFAULT_G_MAX
    pool = beam_pool(a, gm, wavenumber, **kw)
    while len(pool) > MAX_POOL:
        gm *= 0.95
        pool = beam_pool(a, gm, wavenumber, **kw)
    return pool


def beam_pool_size(crystal, voltage_kv: float = 200.0, max_g: float | None = None) -> int:
    """Number of beams in the [001] pool of ``crystal`` at ``voltage_kv`` [kV] (``max_g`` [1/Å]
    as in :func:`plan_lacbed`): the most strong beams a fixed ``strong_beams`` may ask for."""
    K = electron_constants(float(voltage_kv) * 1e3).wavenumber
    rec = None if crystal.is_cubic else crystal.reciprocal_basis
    return int(len(pool_for(crystal.a, max_g, K, lattice_centring(crystal), None, rec)))


def potential_table(crystal, pool, *, voltage, scattering, absorption, kappa, b_iso, real):
    """V_{g−h} = U + iU′ for all pool pairs [Å⁻²], and |U_{g−h}| [Å⁻²].

    Returns
    -------
    v, absu, real, u0, u0p
        The table, |U|, whether U and U′ are real (checked), U₀ and U′₀ [Å⁻²].
    """
    from lacbed.scattering import structure_factors

    n = len(pool)
    diff = (pool[:, None, :] - pool[None, :, :]).reshape(-1, 3)
    m = int(np.abs(diff).max()) + 1
    key = ((diff[:, 0] + m) * (2 * m + 1) + diff[:, 1] + m) * (2 * m + 1) + diff[:, 2] + m
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
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
    zero = np.all(uniq == 0, axis=1)
    return v, absu, real, complex(u[zero][0]), complex(up[zero][0])


# ------------------------------------------------------------------------------ beam selection
def select_beams(
    w: np.ndarray,
    absu: np.ndarray,
    min_abs_d: np.ndarray,
    strong_beams: int | None,
    mirror: np.ndarray | None,
    forced: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Strong and weak pool indices for one tile (000 is pool index 0 and comes first).

    Parameters
    ----------
    w : ndarray, shape (n_pool,)
        Beam strength over the tile (:func:`lacbed.bloch.matrix.beam_importance`) [-].
    absu : ndarray, shape (n_pool, n_pool)
        |U_{g−h}| [Å⁻²].
    min_abs_d : ndarray, shape (n_pool,)
        min over the tile of |K² − |k+g|²| [Å⁻²].
    strong_beams : int or None
        Fixed minimum count, or None for the adaptive budget (module notes).
    mirror : ndarray of int or None
        Pool index of each beam's diagonal-mirror image, for tiles on the mirror.
    forced : ndarray of int, optional
        Pool indices that are strong whatever their strength (the beams of dark-field discs),
        in addition to the budget.

    Returns
    -------
    strong, weak : ndarray of int
    capped : bool
        The adaptive budget (or the promotion of strongly coupled beams) stopped at the cap.
    """
    n_pool = len(w)
    order = np.argsort(-w, kind="stable")
    capped = False
    if strong_beams is not None:
        n = min(int(strong_beams), n_pool)
    else:
        n_want = int(np.count_nonzero(w >= STRONG_THRESHOLD))
        n = min(max(n_want, MIN_STRONG), MAX_STRONG, n_pool)
        capped = n_want > MAX_STRONG and n_pool > MAX_STRONG
    strong = np.zeros(n_pool, dtype=bool)
    strong[order[:n]] = True
    if forced is not None:
        strong[np.asarray(forced, dtype=np.int64)] = True
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
        if not bad.any():
            break
        if room <= 0:
            capped = capped or strong_beams is None
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
    return np.nonzero(strong)[0], np.nonzero(weak)[0], capped


def tile_groups(rows: np.ndarray, cols: np.ndarray, size: int, tile: int) -> list[np.ndarray]:
    """Indices of the pixels in each square tile of side ``tile`` (tiles in row-major order)."""
    n = size // 2
    tr = (rows - n) // tile
    tc = (cols - n) // tile
    key = tr * (size // tile + 2) + tc
    groups: dict[int, list[int]] = {}
    for i, kk in enumerate(key):
        groups.setdefault(int(kk), []).append(i)
    return [np.array(v) for _, v in sorted(groups.items())]


@dataclass
class _Geometry:
    """Pixels and tiles of a plan (internal)."""

    size: int
    half_width: float
    tile: int
    symmetry: str  # the one solved
    base: str  # the wedge symmetry the tiles live on
    rows: np.ndarray
    cols: np.ndarray
    w_rows: np.ndarray
    w_cols: np.ndarray
    tiles: list
    swap: np.ndarray | None = None  # the op on hkl whose image swaps x and y (4mm, rotated frame)
    tilt: tuple = (0.0, 0.0)  # pattern-centre tilt (k_x0, k_y0) [1/Å], docs/physics.md §6


def _geometry(
    size: int, half_width: float, tile: int, sym: str, crystal_sym: str, tilt=(0.0, 0.0)
) -> _Geometry:
    rows, cols = wedge_pixels(size, sym)
    full = sym in ("1", "2")  # every pixel, or the half plane of the dark-field discs
    base = crystal_sym if full else sym
    w_rows, w_cols = wedge_pixels(size, base) if full else (rows, cols)
    tiles = tile_groups(w_rows, w_cols, size, tile)
    return _Geometry(
        size, half_width, tile, sym, base, rows, cols, w_rows, w_cols, tiles, tilt=tuple(tilt)
    )


def _tile_beam_sets(
    geo, pool, g, absu, K, strong_beams, *, factor: float = 1.0, cap=False, forced=None
):
    """Beam sets (strong, weak, capped) of every tile; ``factor`` scales the strong count.

    ``forced`` (pool indices) are strong in every tile (:func:`select_beams`).

    With factor > 1 each tile gets a fixed budget of factor × its adaptive (or given) strong
    count: the "twice the strong beams" reference of the convergence estimate, or (``cap``) an
    escalated budget, limited to :data:`MAX_STRONG` and flagged capped where the limit bites.
    """
    mirror = None
    if geo.base == "4mm":
        lookup = {tuple(h): i for i, h in enumerate(pool)}
        images = pool[:, [1, 0, 2]] if geo.swap is None else pool @ geo.swap.T
        mirror = np.array([lookup[tuple(h)] for h in images])
    n = geo.size // 2
    sets, base_sets = [], None
    if factor != 1.0:
        base_sets = _tile_beam_sets(geo, pool, g, absu, K, strong_beams, forced=forced)
    for it, grp in enumerate(geo.tiles):
        kt = tilts(geo.w_rows[grp], geo.w_cols[grp], geo.size, geo.half_width, geo.tilt)
        d_min = np.abs(excitation_denominators(incident_wavevectors(kt, K), g, K)).min(axis=0)
        w = beam_importance(absu, d_min)
        tr = (geo.w_rows[grp][0] - n) // geo.tile
        tc = (geo.w_cols[grp][0] - n) // geo.tile
        mir = mirror if (mirror is not None and tr == tc) else None
        budget, limited = strong_beams, False
        if base_sets is not None:
            budget = int(round(factor * len(base_sets[it][0])))
            if cap:
                limited = base_sets[it][2] or budget > MAX_STRONG
                budget = min(budget, MAX_STRONG)
            budget = min(budget, len(pool))
        strong, weak, capped = select_beams(w, absu, d_min, budget, mir, forced)
        strong, weak = _promote_rough(strong, weak, tilt_box(kt), g, K, mir)
        sets.append((strong, weak, capped or limited))
    return sets


def _promote_rough(strong, weak, box, g, K, mirror=None):  # noqa: ANN001, ANN202
    """Move the weak beams that are rough over a tile's tilt box into its strong set.

    A weak beam whose K² − |k+w|² changes sign or varies more than 2× over the tile is near its
    Bragg condition there (its coupling is weak enough for the adaptive selection, but its
    Bethe correction varies too fast to interpolate, :func:`lacbed.bloch.matrix.rough_beams`):
    treated exactly as a strong beam instead, so that every tile's corrections interpolate.
    With ``mirror`` (a diagonal tile) a beam's mirror image moves with it. Only a few move
    (at most :data:`PROMOTE_FRACTION` of the strong set, and never past :data:`MAX_STRONG`);
    otherwise the tile keeps its sets and is evaluated exactly at every pixel.
    """
    bad = rough_beams(box, g[weak], K)
    if not np.any(bad):
        return strong, weak
    move = weak[bad]
    if mirror is not None:
        move = np.union1d(move, mirror[move])
    new = np.setdiff1d(move, strong)
    limit = max(PROMOTE_MIN, PROMOTE_FRACTION * len(strong))
    if len(new) > limit or len(strong) + len(new) > MAX_STRONG:
        return strong, weak
    keep = ~np.isin(weak, move)
    strong = np.concatenate([strong, new])
    if np.all(np.diff(strong[: len(strong) - len(new)]) > 0):
        strong = np.sort(strong)  # a sorted set stays sorted (000, pool index 0, first)
    return strong, weak[keep]


def _batches(out, rows, cols, strong, weak, batch: int, geo=None) -> list[Job]:  # noqa: ANN001
    """Jobs of at most ``batch`` pixels (and BATCH_ELEMENTS matrix elements) sharing one beam
    set; with ``geo``, each carries the tilt box of all of them (the tile's interpolation)."""
    step = max(1, min(batch, BATCH_ELEMENTS // len(strong) ** 2))
    box = None
    # the tile's nodes pay where it has at least twice as many pixels
    if geo is not None and len(weak) and len(out) >= 2 * bloch_matrix.BETHE_TILE_NODES**2:
        box = tilt_box(tilts(rows, cols, geo.size, geo.half_width, geo.tilt))
    return [
        Job(out[s : s + step], rows[s : s + step], cols[s : s + step], strong, weak, box)
        for s in range(0, len(out), step)
    ]


def _jobs(geo: _Geometry, pool: np.ndarray, sets: list, batch: int) -> list[Job]:
    """Batched jobs over the solved pixels (wedge, or every pixel with the images of the sets)."""
    jobs: list[Job] = []
    if geo.symmetry not in ("1", "2"):
        for grp, (strong, weak, _) in zip(geo.tiles, sets, strict=True):
            jobs += _batches(grp, geo.rows[grp], geo.cols[grp], strong, weak, batch, geo)
        return jobs
    # full (or half-plane) solve: the beam sets of each solved pixel are the images of those of
    # its wedge representative
    size = geo.size
    rep_r, rep_c, ops = representative_ops(size, geo.base)
    lookup = {tuple(h): i for i, h in enumerate(pool)}
    widx = np.full((size, size), -1, dtype=np.int64)
    widx[geo.w_rows, geo.w_cols] = np.arange(len(geo.w_rows))
    tile_of = np.empty(len(geo.w_rows), dtype=np.int64)
    for it, grp in enumerate(geo.tiles):
        tile_of[grp] = it
    flat_tile = tile_of[widx[rep_r[geo.rows, geo.cols], rep_c[geo.rows, geo.cols]]]
    flat_op = ops[geo.rows, geo.cols]

    def image(idx, op):
        return np.array(
            [lookup[tuple(h)] for h in apply_op_hkl(pool[idx], op, inverse=True)], dtype=np.int64
        )

    for it, (strong, weak, _) in enumerate(sets):
        for op in np.unique(flat_op[flat_tile == it]):
            sel = np.nonzero((flat_tile == it) & (flat_op == op))[0]
            # sorted: 000 (pool index 0) stays first
            jobs += _batches(
                sel,
                geo.rows[sel],
                geo.cols[sel],
                np.sort(image(strong, op)),
                image(weak, op),
                batch,
                geo,
            )
    return jobs


def direction_jobs(plan: EnginePlan, kt: np.ndarray, batch: int | None = None) -> list[Job]:
    """Jobs solving arbitrary incident directions with the beam sets of a plan's pixels.

    Each direction takes the strong and weak beams of the plan pixel it falls in (nearest pixel
    centre; directions beyond the grid take the edge pixel's), so the plan must solve every
    pixel (symmetry '1': its jobs carry the images of the wedge's beam sets). Directions of one
    plan job are batched together, so each batch spans about one tile (the span of the Bethe
    interpolation, :func:`lacbed.bloch.matrix.structure_matrix_parts_interpolated`).

    Parameters
    ----------
    plan : EnginePlan
        A plan with symmetry '1', bright field (:func:`plan_lacbed` with ``symmetry="1"``).
    kt : ndarray, shape (n, 2)
        Tangential tilts (k_x, k_y) [1/Å], absolute (the plan's pattern-centre tilt is not added).
    batch : int, optional
        Directions per batch (default: the plan's ``batch``).

    Returns
    -------
    list of Job
        ``out`` indexes ``kt``; ``rows``/``cols`` are the nearest plan pixels.

    Raises
    ------
    SettingsError
        The plan does not solve every pixel, or ``kt`` is not (n, 2) finite.
    """
    kt = np.asarray(kt, dtype=np.float64)
    if kt.ndim != 2 or kt.shape[1] != 2 or not np.all(np.isfinite(kt)):
        raise SettingsError(
            f"directions must be finite (k_x, k_y) pairs, shape (n, 2); got {kt.shape}"
        )
    if plan.symmetry != "1" or plan.reflections is not None:
        raise SettingsError(
            f"direction_jobs needs a bright-field plan that solves every pixel (symmetry '1'), "
            f"got symmetry {plan.symmetry!r}"
        )
    o = plan.options
    size, n = int(o["size"]), int(o["size"]) // 2
    step = float(o["half_width"]) / n
    tilt = o.get("tilt", (0.0, 0.0))
    col = np.clip(np.floor((kt[:, 0] - tilt[0]) / step + n), 0, size - 1).astype(np.int64)
    row = np.clip(np.floor((kt[:, 1] - tilt[1]) / step + n), 0, size - 1).astype(np.int64)
    owner = np.full((size, size), -1, dtype=np.int64)
    for i, job in enumerate(plan.jobs):
        owner[job.rows, job.cols] = i
    which = owner[row, col]  # (n,)
    batch = int(o["batch"] if batch is None else batch)
    jobs: list[Job] = []
    for i in np.unique(which):
        sel = np.nonzero(which == i)[0]
        strong, weak, box = plan.jobs[i].strong, plan.jobs[i].weak, plan.jobs[i].box
        for part in _batches(sel, row[sel], col[sel], strong, weak, batch):
            # the owner tile's interpolation nodes where the directions lie within a pixel of its
            # box (the same matrices as the plan's pixels), else the batch's own
            k = kt[part.out]
            inside = box is not None and (
                k[:, 0].min() >= box[0] - step and k[:, 0].max() <= box[1] + step
                and k[:, 1].min() >= box[2] - step and k[:, 1].max() <= box[3] + step
            )  # fmt: skip
            jobs.append(part._replace(kt=k, box=box if inside else None))
    return jobs


def pixel_multiplicity(size: int, symmetry: str) -> np.ndarray:
    """How many pattern pixels each wedge pixel of :func:`wedge_pixels` stands for [-]."""
    rows, cols = wedge_pixels(size, symmetry)
    index = np.full((size, size), -1, dtype=np.int64)
    index[rows, cols] = np.arange(len(rows))
    rr, rc, _ = representative_ops(size, symmetry)
    return np.bincount(index[rr, rc].ravel(), minlength=len(rows)).astype(np.float64)


def _sample(geo: _Geometry, fraction: float, seed: int = 0) -> tuple[list, np.ndarray]:
    """Stratified random sample of wedge pixels: per tile, its share of SAMPLE pixels.

    Returns the wedge indices per tile and the weight (pattern pixels represented) of each.
    """
    n_wedge = len(geo.w_rows)
    n_total = min(n_wedge, max(SAMPLE_MIN, int(np.ceil(fraction * n_wedge))))
    mult = pixel_multiplicity(geo.size, geo.base)
    rng = np.random.default_rng(seed)
    weights = np.array([mult[grp].sum() for grp in geo.tiles])
    share = np.maximum(1, np.round(n_total * weights / weights.sum()).astype(int))
    picks, wts = [], []
    for grp, k, wt in zip(geo.tiles, share, weights, strict=True):
        k = min(int(k), len(grp))
        chosen = np.sort(rng.choice(grp, size=k, replace=False))
        picks.append(chosen)
        wts.append(np.full(k, wt / k))
    return picks, np.concatenate(wts)


def _sample_jobs(geo, sets, ref_sets, fraction, batch):
    """Jobs of the convergence estimate: the sample pixels with the reference beam sets (twice
    each tile's strong beams) and with the plan's own sets ``sets`` (the pilot)."""
    picks, weights = _sample(geo, fraction)
    jobs, pilot, index, start = [], [], [], 0
    if geo.symmetry in ("1", "2"):
        full = np.full((geo.size, geo.size), -1, dtype=np.int64)
        full[geo.rows, geo.cols] = np.arange(len(geo.rows))
    # a wedge pixel's own sets are its tile's (the identity among the images of _jobs)
    for chosen, (strong, weak, _), (s_main, w_main, _) in zip(picks, ref_sets, sets, strict=True):
        out = np.arange(start, start + len(chosen))
        start += len(chosen)
        r, c = geo.w_rows[chosen], geo.w_cols[chosen]
        jobs += _batches(out, r, c, strong, weak, batch)
        pilot += _batches(out, r, c, s_main, w_main, batch)
        index.append(full[r, c] if geo.symmetry in ("1", "2") else chosen)
    return jobs, pilot, np.concatenate(index), weights


def check_tilt(tilt, half_width: float | None, wavenumber: float) -> tuple[float, float]:
    """Validate a pattern-centre tilt (k_x0, k_y0) [1/Å] (docs/physics.md §6).

    Parameters
    ----------
    tilt : sequence of 2 float
        (k_x0, k_y0) [1/Å] in the pattern's (x, y) frame.
    half_width : float or None
        W [1/Å]; None checks only that the tilt is two finite numbers.
    wavenumber : float
        K [1/Å].

    Returns
    -------
    (float, float)

    Raises
    ------
    SettingsError
        Not two finite numbers, or the farthest corner of the pattern, |(|k_x0| + W,
        |k_y0| + W)|, reaches K/2 (not a small tilt).
    """
    try:
        kx0, ky0 = (float(x) for x in tilt)
    except (TypeError, ValueError):  # not iterable, not numbers, or not two of them
        raise SettingsError(f"tilt must be two numbers (k_x0, k_y0) [1/Å], got {tilt!r}") from None
    if not (np.isfinite(kx0) and np.isfinite(ky0)):
        raise SettingsError(f"tilt must be finite [1/Å], got ({kx0}, {ky0})")
    if half_width is None:
        return kx0, ky0
    reach = float(np.hypot(abs(kx0) + half_width, abs(ky0) + half_width))
    if (kx0 or ky0) and reach >= 0.5 * wavenumber:
        raise SettingsError(
            f"tilt ({kx0:g}, {ky0:g}) 1/Å with half_width {half_width:g} 1/Å reaches "
            f"|k_t| = {reach:.3g} 1/Å ≥ K/2 = {0.5 * wavenumber:.3g} 1/Å: not a small tilt"
        )
    return kx0, ky0


def default_half_width(crystal) -> float:
    """Default pattern half-width W [1/Å]: 4/a for a cubic crystal (|g₄₀₀|, any zone axis);
    for any other, 4 × the shortest reciprocal axis min(|a*|, |b*|, |c*|) (docs/crystal_systems.md),
    which is 4/a for a cubic cell."""
    if crystal.is_cubic:
        return 4.0 / crystal.a
    return 4.0 * float(np.linalg.norm(crystal.reciprocal_basis, axis=1).min())


def _check_options(crystal, K, **kw) -> tuple[np.ndarray, float, str, int]:
    """Validate the settings; returns thicknesses [nm], half-width [1/Å], symmetry, tile.

    A non-zero tilt (``kw["tilted"]``, :func:`check_tilt`) solves every pixel: 'auto' becomes
    '1' and a reducing symmetry is refused (a tilt breaks the pattern's symmetry in general).
    """
    t_nm = validate_options(
        kw["thickness_nm"],
        kw["voltage_kv"],
        kw["size"],
        kw["half_width"],
        kw["strong_beams"],
        kw["max_g"],
        kw["solver"],
        kw["backend"],
    )
    half_width = default_half_width(crystal) if kw["half_width"] is None else kw["half_width"]
    half_width = float(half_width)
    if half_width >= 0.5 * K:
        raise SettingsError(f"half_width {half_width} 1/Å is not a small tilt (K = {K:.2f} 1/Å)")
    symmetry = kw["symmetry"]
    orient = kw["orientation"]
    if kw["tilted"]:
        if symmetry not in ("auto", "1"):
            raise SettingsError(
                f"symmetry {symmetry!r} cannot be used with a tilt (the pattern centre is off "
                "the zone axis, so the pattern lacks that symmetry); use 'auto' or '1'"
            )
        sym = "1"
    elif orient.standard:
        sym = resolve_symmetry(symmetry, crystal.bright_field_symmetry)
    else:  # only the direct symmetries of this orientation (docs/zone_axes.md; any system)
        frame_sym = frame_symmetry(orient, crystal.point_group, kw["operations"])[0]
        if symmetry == "auto":
            sym = frame_sym
        elif symmetry in _WEDGES and _WEDGES.index(symmetry) <= _WEDGES.index(frame_sym):
            sym = symmetry
        else:
            raise SettingsError(
                f"symmetry {symmetry!r} is not available for this orientation: its direct "
                f"bright-field symmetry on the pixel grid is {frame_sym!r}; use 'auto' or '1'"
            )
    tile = max(4, int(kw["size"]) // 8) if kw["tile"] is None else kw["tile"]
    if int(tile) != tile or tile < 1:
        raise SettingsError(f"tile must be a positive number of pixels, got {tile!r}")
    batch = kw["batch"]
    if int(batch) != batch or batch < 1:
        raise SettingsError(f"batch must be a positive integer, got {batch!r}")
    if not (0.0 <= kw["convergence_sample"] <= 1.0):
        raise SettingsError(
            f"convergence_sample must be in [0, 1], got {kw['convergence_sample']!r}"
        )
    return t_nm, half_width, sym, int(tile)


def _crystal_tables(
    crystal, K, voltage, *, max_g, strong_beams, orient: Orientation, **sf_kw
) -> dict:
    """Origin, pool and potential table of a crystal (plan step 1); see :func:`plan_lacbed`.

    The pool's vectors g are rotated into the frame of ``orient``; the table V_{g−h} depends on
    the Miller indices only (docs/physics.md §12).
    """
    import time

    t0 = time.perf_counter()
    centring = lattice_centring(crystal)
    centre = find_inversion_centre(crystal) if crystal.centrosymmetric else None
    work = crystal.shifted(centre) if centre is not None else crystal
    rec = None if crystal.is_cubic else crystal.reciprocal_basis
    pool = pool_for(crystal.a, max_g, K, centring, orient.rotation, rec)
    if strong_beams is not None and strong_beams > len(pool):
        raise SettingsError(
            f"strong_beams={strong_beams} exceeds the beam pool of {len(pool)} beams "
            f"(|g| <= {max_g or DEFAULT_G_MAX} 1/Å); use fewer strong beams or a larger max_g"
        )
    g = orient.to_frame(pool / crystal.a if rec is None else pool @ rec)
    t_pool = time.perf_counter() - t0
    v, absu, real, u0, u0p = potential_table(
        work, pool, voltage=voltage, real=centre is not None, **sf_kw
    )
    info = {
        "max_g": float(np.linalg.norm(g, axis=1).max()),
        "n_holz_pool": int(np.count_nonzero(pool @ np.asarray(orient.zone_axis) != 0)),
        "origin_shift": None if centre is None else [float(x) for x in centre],
        "centring": centring,
        "U0": [u0.real, u0.imag],
        "U0_abs": [u0p.real, u0p.imag],
    }
    return {
        "pool": pool,
        "g": g,
        "v": v,
        "absu": absu,
        "real": real,
        "info": info,
        "t_pool": t_pool,
    }


def _reflection_request(
    reflections, symmetry: str, standard: bool = True
) -> tuple[np.ndarray | None, bool, bool]:
    """Requested reflections (n_g, 3) or None, whether any is a dark-field disc, and whether
    the discs are reduced by the 2-fold axis along [001] ('auto' in the [001] frame; '1', or
    any other orientation, solves every pixel; docs/dark_field.md)."""
    hkl = None if reflections is None else as_hkl_array(reflections)
    dark = hkl is not None and bool(np.any(hkl != 0))
    if dark and symmetry not in ("auto", "1"):
        raise SettingsError(
            f"symmetry {symmetry!r} cannot be used with dark-field discs (their symmetry "
            "differs from the bright field's); use 'auto' (the 2-fold axis along [001]) or '1'"
        )
    return hkl, dark, dark and symmetry == "auto" and standard


def _reflection_beams(hkl, dark: bool, pool, info: dict, crystal, geo: _Geometry):
    """Pool indices of the reflections (−1: centring-forbidden) and the beams forced strong.

    The forced beams are the reflections with their images under the wedge symmetry, so that
    the image sets of the full solve hold every reflection (:func:`symmetry_orbit`).
    """
    if hkl is None:
        return None, None, None
    rec = None if crystal.is_cubic else crystal.reciprocal_basis
    hkl, index = resolve_reflections(
        hkl, pool, info["centring"], max_g=info["max_g"], a=crystal.a, reciprocal=rec
    )
    return hkl, index, symmetry_orbit(index, pool, geo.base) if dark else None


def _check_factor(budget_factor: float, strong_beams: int | None) -> float:
    """The escalated budget factor, checked (≥ 1, adaptive budget only)."""
    factor = float(budget_factor)
    if not factor >= 1.0 or (factor != 1.0 and strong_beams is not None):
        raise SettingsError(
            f"budget_factor must be >= 1 and needs the adaptive budget (strong_beams=None), "
            f"got {budget_factor!r}"
        )
    return factor


def _plan_options(*, orient, tilt, reflections, **kw) -> dict:  # noqa: ANN001
    """The resolved settings a plan records (and the result's settings repeat)."""
    options = {
        "voltage_kv": float(kw["voltage_kv"]),
        "size": int(kw["size"]),
        "half_width": kw["half_width"],
        "thickness_nm": kw["thickness_nm"],
        "scattering": kw["scattering"],
        "absorption": kw["absorption"],
        "kappa": float(kw["kappa"]),
        "b_iso": None if kw["b_iso"] is None else float(kw["b_iso"]),
        "strong_beams": kw["strong_beams"],
        "beam_budget": "adaptive" if kw["strong_beams"] is None else "fixed",
        "budget_factor": kw["budget_factor"],
        "solver": kw["solver"],
        "backend": kw["backend"],
        "tile": int(kw["tile"]),
        "batch": int(kw["batch"]),
        "convergence_sample": float(kw["convergence_sample"]),
        **orient.settings(),
        "tilt": [tilt[0], tilt[1]],
    }
    if reflections is not None:
        options["reflections"] = reflections.tolist()
    return options


def plan_lacbed(
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
    symmetry: str = "auto",
    tile: int | None = None,
    batch: int = 64,
    convergence_sample: float = SAMPLE_FRACTION,
    budget_factor: float = 1.0,
    timings: dict | None = None,
    reflections=None,
    zone_axis=(0, 0, 1),
    x_direction=None,
    normal=None,
    tilt=(0.0, 0.0),
) -> EnginePlan:
    """Plan a LACBED simulation without solving it (arguments as :func:`simulate_lacbed`).

    Parameters
    ----------
    convergence_sample : float
        Fraction of the solved pixels re-solved with twice the strong beams for the convergence
        estimate (at least :data:`SAMPLE_MIN` pixels); 0 plans no estimate.
    budget_factor : float
        Escalated adaptive budget (≥ 1): every tile solves ``budget_factor`` × its adaptive
        strong count, at most :data:`MAX_STRONG` (flagged capped where that limit bites); the
        estimate's reference has twice that. Only with ``strong_beams=None``.
    timings : dict, optional
        Wall times [s] are added to "beam_selection" and "structure_factors".
    reflections : sequence of (h, k, l) or str, optional
        Discs to return (:func:`simulate_lacbed`). With any reflection other than 000 the
        pixels are reduced only by the 2-fold axis along [001] (symmetry '2', the half plane;
        '1' solves every pixel; '4mm'/'2mm' are refused) and the reflections, with their images
        under the crystal's [001] bright-field symmetry, are strong in every tile
        (:func:`lacbed.simulate.reflections.symmetry_orbit`).
    tilt : sequence of 2 float
        Pattern-centre tilt (k_x0, k_y0) [1/Å] added to every pixel (docs/physics.md §6);
        non-zero: every pixel solved, each tile's beams selected at its shifted tilts.

    Returns
    -------
    EnginePlan
    """
    import time

    timings = {} if timings is None else timings
    from lacbed.crystal import Crystal, load_crystal

    if not isinstance(crystal, Crystal):
        crystal = load_crystal(crystal, any_system=True)
    ec = electron_constants(float(voltage_kv) * 1e3)
    K = ec.wavenumber
    lattice = None if crystal.is_cubic else crystal.lattice
    orient = orientation(zone_axis, x_direction, normal, lattice=lattice)
    ops = None if crystal.is_cubic else crystal_operations(crystal)  # (Cartesian, hkl)
    hkl, dark, half = _reflection_request(reflections, symmetry, orient.standard)
    symmetry = "1" if dark else symmetry
    tilt = check_tilt(tilt, None, K)
    tilted = tilt != (0.0, 0.0)
    half = half and not tilted
    t_nm, half_width, sym, tile = _check_options(
        crystal,
        K,
        thickness_nm=thickness_nm,
        voltage_kv=voltage_kv,
        size=size,
        half_width=half_width,
        strong_beams=strong_beams,
        max_g=max_g,
        solver=solver,
        backend=backend,
        symmetry=symmetry,
        tile=tile,
        batch=batch,
        convergence_sample=convergence_sample,
        orientation=orient,
        tilted=tilted,
        operations=ops,
    )
    tilt = check_tilt(tilt, half_width, K)
    size = int(size)

    t0 = time.perf_counter()
    tables = _crystal_tables(
        crystal,
        K,
        ec.voltage,
        max_g=max_g,
        strong_beams=strong_beams,
        scattering=scattering,
        absorption=absorption,
        kappa=kappa,
        b_iso=b_iso,
        orient=orient,
    )
    pool, g, v_table, absu, real = (tables[k] for k in ("pool", "g", "v", "absu", "real"))
    t2 = time.perf_counter()
    factor = _check_factor(budget_factor, strong_beams)
    sym = "2" if half else sym
    base = crystal.bright_field_symmetry if orient.standard else ("1" if sym == "1" else sym)
    base = "1" if tilted else base  # no images of beam sets: each tile selects its own
    geo = _geometry(size, half_width, int(tile), sym, base, tilt)
    if not orient.standard and sym == "4mm":
        geo.swap = frame_symmetry(orient, crystal.point_group, ops)[1]
    hkl, ref_index, forced = _reflection_beams(hkl, dark, pool, tables["info"], crystal, geo)
    sets = _tile_beam_sets(
        geo, pool, g, absu, K, strong_beams, factor=factor, cap=True, forced=forced
    )
    jobs = _jobs(geo, pool, sets, int(batch))
    sample_jobs, pilot_jobs = [], []
    s_index, s_weight = np.zeros(0, dtype=np.int64), np.zeros(0)
    if convergence_sample > 0:
        ref_sets = _tile_beam_sets(
            geo, pool, g, absu, K, strong_beams, factor=2.0 * factor, forced=forced
        )
        sample_jobs, pilot_jobs, s_index, s_weight = _sample_jobs(
            geo, sets, ref_sets, convergence_sample, int(batch)
        )
    t3 = time.perf_counter()
    timings["beam_selection"] = timings.get("beam_selection", 0.0) + (t3 - t2) + tables["t_pool"]
    timings["structure_factors"] = timings.get("structure_factors", 0.0) + (t2 - t0)
    timings["structure_factors"] -= tables["t_pool"]
    options = _plan_options(
        voltage_kv=voltage_kv,
        size=size,
        half_width=half_width,
        thickness_nm=t_nm.tolist(),
        scattering=scattering,
        absorption=absorption,
        kappa=kappa,
        b_iso=b_iso,
        strong_beams=strong_beams,
        budget_factor=factor,
        solver=solver,
        backend=backend,
        tile=tile,
        batch=batch,
        convergence_sample=convergence_sample,
        orient=orient,
        tilt=tilt,
        reflections=hkl,
    )
    info = tables["info"]
    return EnginePlan(
        crystal=crystal,
        options=options,
        wavenumber=K,
        wavelength=ec.wavelength,
        pool=pool,
        g=g,
        v_table=v_table,
        real=bool(real),
        symmetry=sym,
        rows=geo.rows,
        cols=geo.cols,
        tiles=geo.tiles,
        tile_sets=[(s, w) for s, w, _ in sets],
        capped=np.array([c for _, _, c in sets], dtype=bool),
        jobs=jobs,
        sample_jobs=sample_jobs,
        pilot_jobs=pilot_jobs,
        sample_index=s_index,
        sample_weight=s_weight,
        info=info,
        reflections=hkl,
        reflection_index=ref_index,
        normal=orient.normal_frame,
    )
