"""Refinement of a simulated LACBED pattern against a measured one: :func:`refine`.

Stages (each counted in engine calls = :func:`lacbed.simulate.engine.solve_plan` calls):

1. **Disc and mask** (no engine call): bad pixels (:func:`~lacbed.refine.experiment.bad_pixel_mask`),
   the disc (:func:`~lacbed.refine.experiment.find_disc`); the fit uses the disc shrunk by
   :data:`MASK_MARGIN` pixels, without bad pixels.
2. **First simulation** (1 call): one plan (:func:`lacbed.simulate.plan.plan_lacbed`) over a tilt
   grid that covers the disc, with every thickness of ``thickness_range`` at ``thickness_step``
   from one eigensolve.
3. **Coarse alignment** (no call): Z over a grid of rotations (one period of the disc's symmetry),
   scales and zone-axis positions, each with its best thickness of the stack
   (:func:`coarse_alignment`).
4. **Alignment and thickness** (no call): least squares in the residual of
   :mod:`lacbed.refine.objective` over zone-axis position, rotation, scale, blur and thickness
   (the stack interpolated in thickness), then the dense Z(t) scan with that geometry; if the
   scan's minimum lies elsewhere the least squares restarts from it.
5. **Direct correction** (1 call per pass): the model of a detector pixel is the mean of
   ``supersample`` × ``supersample`` points over its area (:data:`SUPERSAMPLE`). On the grid
   those points are interpolated, which misses features sharper than a grid pixel; so the
   pixels around the mask are solved directly at their own tilts
   (:func:`lacbed.refine.detector.pixel_means`, one call) and the difference Δ from the grid's
   values is added to the grid model before the blur. Each pass refits with the corrected model;
   at the fixed point the model is the directly solved pixels, the grid supplying only the
   derivatives (whose error matters at second order, as in deferred correction).
6. **Structure** (1 call per evaluation): B per element and U_g factors (with the thickness, and
   the geometry if ``orientation`` is fitted) by least squares inside the first pass; each
   evaluation re-solves the plan with a new potential table
   (:class:`~lacbed.refine.structure.PotentialTable`) over a window of thicknesses around the
   current one. Later passes take one Gauss–Newton step with that fit's Jacobian (1 call).
7. **Convergence** (1 call): the final model is solved once more with the engine's estimate
   (Z against twice the strong beams on a pixel sample, docs/physics.md §9); above the engine's
   :data:`~lacbed.simulate.engine.CONVERGENCE_WARNING` one warning line is logged.

Uncertainties: s²(JᵀJ)⁻¹ of the last least squares, times the residual's integrated
autocorrelation (:mod:`lacbed.refine.objective`); they do not include a model error common to
neighbouring pixels beyond 3 pixels, or a bias of the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares

from lacbed.errors import LacbedError, SettingsError
from lacbed.refine.experiment import (
    Experiment,
    bad_pixel_mask,
    bin_image,
    find_disc,
    symmetry_centre,
)
from lacbed.refine.geometry import Alignment, interpolation_matrix, pixel_tilts, render
from lacbed.refine.objective import (
    correlation_factor,
    interp_thickness,
    normalise,
    parabola_vertex,
    residual,
    z_columns,
)
from lacbed.refine.structure import FitSpec, PotentialTable, parse_fit, ug_name, with_phases
from lacbed.simulate.engine import CONVERGENCE_WARNING
from lacbed.simulate.plan import SAMPLE_FRACTION

__all__ = ["refine", "RefineResult", "coarse_alignment", "MASK_MARGIN"]

log = logging.getLogger(__name__)

#: The fit mask is the disc shrunk by this many pixels (plus 2σ of the blur estimate) [px].
MASK_MARGIN: float = 3.0
#: The simulation covers the masked pixels seen from the zone axis, × this (scale margin) [-].
COVER: float = 1.1
#: Default simulation pixels per image pixel (the image is sampled from the simulation by cubic
#: convolution; 1 leaves a bias of ~1 nm in thickness on sharp 150 nm patterns, 2 does not).
OVERSAMPLE: float = 2.0
#: A best alignment worse than this Z [-] means the image is not this crystal's pattern (a disc
#: of smooth random texture reaches Z ≈ 0.46 on 40 × 40 pixels; good fits reach 0.01–0.1).
Z_NOT_A_PATTERN: float = 0.3
#: Model pixels integrate over their area by the mean of this many points per side [-]
#: (benchmarks/refine_model_floor.py: U_200 of GaAs against experiments integrated with 8).
SUPERSAMPLE: int = 2
#: Most passes of the direct correction (each one engine call over the detector's pixels and a
#: refit); they stop when no parameter moved by more than :data:`DIRECT_TOL` of its
#: uncertainty (or of its floor, :func:`_moved`).
DIRECT_PASSES: int = 3
#: U_g fits use at least this many strong beams per tile (a fixed ``strong_beams``) unless the
#: caller gives a budget: the 000 disc is weakly sensitive to U_g. Noise-free GaAs U_200 at
#: 64 × 64 pixels against a 150-beam experiment: −0.78 % with the adaptive ~50 beams, −0.28 %
#: with twice the adaptive budget (450 s CPU), −0.036 % with 80 fixed beams (177 s)
#: (benchmarks/refine_ug_budget.py, benchmarks/refine_model_floor.py).
UG_STRONG_BEAMS: int | None = 80
#: The alternative measured: this multiple of the adaptive budget when UG_STRONG_BEAMS is None.
UG_BUDGET_FACTOR: float = 2.0
DIRECT_TOL: float = 0.1
#: The correction is solved on the pixels within this distance of the fit mask, so the blur of
#: the corrected image is right on the mask for σ ≲ SUPPORT_PX/4 [px].
SUPPORT_PX: float = 4.0
#: Thickness window solved around the current thickness in the structure fit [nm].
WINDOW_NM: float = 6.0
GEOMETRY = ("row", "col", "angle", "scale", "blur")
#: Parameter units of the least squares (its internal variables are in these units) and the
#: relative finite-difference steps; B and U_g factors are relative to their starting values.
_UNIT = {"row": 1.0, "col": 1.0, "angle": 1.0, "blur": 1.0, "thickness": 1.0}
_STEP = {"row": 1e-3, "col": 1e-3, "angle": 1e-3, "scale": 1e-3, "blur": 1e-3, "thickness": 1e-3}


@dataclass
class RefineResult:
    """What :func:`refine` found.

    Attributes
    ----------
    parameters : dict
        name → {"value", "uncertainty", "start", "unit"} for thickness [nm], B:El [Å²],
        Ug:hkl (a factor [-] on the starting U_g, with "U_g" [Å⁻²] as [re, im] at the engine's
        origin, "U_g_uncertainty" of |U_g|, "U_g_re_uncertainty", "U_g_im_uncertainty"; an
        acentric U_g's complex factor α + iβ adds "value_im", "uncertainty_im", "start_im" and
        "U_g_re_im_correlation": :func:`_report_ug`).
    alignment : Alignment
        Zone-axis position [px], rotation [deg], scale [1/Å per px], blur σ [px].
    alignment_uncertainty : dict
        Standard uncertainties of the alignment's fields (same units).
    disc : tuple
        Disc centre (row, col) and radius [px].
    tilt : dict
        Pattern-centre tilt: zone axis minus disc centre, in 1/Å and mrad (k_x, k_y).
    z : float
        Final Z = 1 − ZNCC over the mask [-].
    z_thickness : tuple of ndarray
        (thicknesses [nm], Z [-]) of the dense scan.
    history : list of dict
        One entry per stage: Z, evaluations, engine calls, CPU [s], parameters.
    engine_calls : int
        Plan solves (:func:`lacbed.simulate.engine.solve_plan`).
    cpu_s, wall_s : float
        Process CPU and wall time of the fit [s].
    crystal : Crystal
        The refined crystal (B of the fitted elements replaced).
    images : dict
        "experiment", "fit" (scaled to the experiment on the mask), "mask" (rows, cols).
    settings : dict
        Simulation settings (size, half-width, voltage, ...).
    """

    parameters: dict
    alignment: Alignment
    alignment_uncertainty: dict
    disc: tuple
    tilt: dict
    z: float
    z_thickness: tuple
    history: list
    engine_calls: int
    cpu_s: float
    wall_s: float
    crystal: Any
    images: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready summary (no images)."""
        return {
            "parameters": self.parameters,
            "alignment": self.alignment.as_dict(),
            "alignment_uncertainty": self.alignment_uncertainty,
            "disc": {"row": self.disc[0], "col": self.disc[1], "radius": self.disc[2]},
            "pattern_centre_tilt": self.tilt,
            "z": self.z,
            "z_thickness": {
                "thickness_nm": [float(x) for x in self.z_thickness[0]],
                "z": [float(x) for x in self.z_thickness[1]],
            },
            "history": self.history,
            "engine_calls": self.engine_calls,
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
            "settings": self.settings,
        }


@contextlib.contextmanager
def _eigh_precision(precision: str) -> Iterator[None]:
    """Set the engine's eigensolve precision for the fit (a process-wide module setting)."""
    import lacbed.bloch.solver as bs

    old = bs.EIGH_PRECISION
    bs.EIGH_PRECISION = precision
    try:
        yield
    finally:
        bs.EIGH_PRECISION = old


# ------------------------------------------------------------------------------ coarse alignment
def coarse_alignment(
    stack: np.ndarray,
    half_width: float,
    exp_image: np.ndarray,
    pts: tuple[np.ndarray, np.ndarray],
    centre: tuple[float, float],
    scale: float,
    *,
    period: float = 90.0,
    angle_step: float = 5.0,
    scales: tuple[float, ...] = (0.94, 0.97, 1.0, 1.03, 1.06),
    offset: float = 0.5,
    keep: int = 3,
) -> tuple[Alignment, int, float, int]:
    """Best rotation, scale and zone-axis position on a coarse grid (no blur).

    Rotations × scales with the zone axis at ``centre`` first; then, for the ``keep`` best,
    zone-axis positions on a 5 × 5 grid of step ``offset`` around it. Each trial takes its best
    thickness of the stack.

    Parameters
    ----------
    stack : ndarray, shape (n_t, size, size)
        Simulated intensities at several thicknesses [-].
    half_width : float
        Their half-width W [1/Å].
    exp_image : ndarray, shape (rows, cols)
    pts : (rows, cols)
        Masked pixels used.
    centre : (row, col)
        Zone-axis position estimate [px] (:func:`lacbed.refine.experiment.symmetry_centre`).
    scale : float
        Calibration [1/Å per px]; ``scales`` multiply it.
    period : float
        Rotation period of the disc's symmetry [deg] (90 for 4mm, 180 for 2mm).
    angle_step : float
        [deg].
    offset : float
        Step of the zone-axis positions tried [px].

    Returns
    -------
    (Alignment, index of the best thickness, its Z, number of trials)
    """
    n_t, size = stack.shape[0], stack.shape[-1]
    flat = stack.reshape(n_t, -1).T  # (size², n_t)
    b_hat = normalise(exp_image[pts[0], pts[1]])

    def trial(al: Alignment) -> tuple[float, Alignment, int]:
        mat, _ = interpolation_matrix(pixel_tilts(*pts, al), size, half_width)
        z = z_columns(np.asarray(mat @ flat), b_hat)
        i = int(np.argmin(z))
        return float(z[i]), al, i

    first = [
        trial(Alignment(centre[0], centre[1], float(a), scale * s))
        for a in np.arange(-period / 2, period / 2, angle_step)
        for s in scales
    ]
    first.sort(key=lambda x: x[0])
    d = offset * np.arange(-2, 3)
    second = [
        trial(Alignment(centre[0] + dr, centre[1] + dc, al.angle, al.scale))
        for _, al, _ in first[:keep]
        for dr in d
        for dc in d
    ]
    z, al, i = min(first + second, key=lambda x: x[0])
    return al, i, z, len(first) + len(second)


# ---------------------------------------------------------------------------------- the problem
@dataclass
class _Problem:
    """State shared by the stages of a fit (internal)."""

    image: np.ndarray
    mask: np.ndarray
    b_hat: np.ndarray
    plan: Any
    table: PotentialTable
    grid: np.ndarray
    t_range: tuple[float, float]
    precision: str
    n_jobs: int | None
    binning: int = 1
    supersample: int = 1
    direct_plan: Any = None
    support: np.ndarray | None = None
    offset: np.ndarray | None = None
    calls: int = 0
    history: list = field(default_factory=list)
    cache: dict = field(default_factory=dict)

    @property
    def half_width(self) -> float:
        return float(self.plan.options["half_width"])

    def solve(self, b: dict, factors: dict, thicknesses: np.ndarray, estimate: bool = False):
        """Intensities (n_t, size, size) for B, U_g factors and thicknesses (one engine call);
        with ``estimate`` the engine's pattern, with its convergence estimate."""
        from lacbed.simulate.engine import solve_plan

        plan = dataclasses.replace(
            self.plan,
            v_table=self.table.table(b, factors),
            options={**self.plan.options, "thickness_nm": [float(t) for t in thicknesses]},
            sample_jobs=self.plan.sample_jobs if estimate else [],
        )
        with _eigh_precision(self.precision):
            pattern = solve_plan(plan, n_jobs=self.n_jobs, warn=False)
        self.calls += 1
        return pattern if estimate else pattern.intensities

    def model(self, frame: np.ndarray, al: Alignment) -> np.ndarray:
        """Masked pixels of one simulated frame as recorded with alignment ``al`` (pixel means
        of the grid, plus the direct correction :attr:`offset`, then blurred)."""
        img, _ = render(frame, self.half_width, self.image.shape, al, self.supersample, self.offset)
        return img[self.mask]

    def direct_offset(self, frame: np.ndarray, b: dict, f: dict, t: float, al: Alignment):
        """The correction Δ = directly solved pixel means − the grid's, on :attr:`support`
        (one engine call; zero elsewhere), for the model at B, U_g factors, thickness [nm] and
        alignment; and the Z of the corrected model there."""
        from lacbed.refine.detector import pixel_means

        plan = dataclasses.replace(
            self.direct_plan,
            v_table=self.table.table(b, f),
            options={**self.direct_plan.options, "thickness_nm": [float(t)]},
        )
        sharp = dataclasses.replace(al, blur=0.0)
        rows, cols = np.nonzero(self.support)
        with _eigh_precision(self.precision):
            direct = pixel_means(plan, rows, cols, sharp, self.supersample, n_jobs=self.n_jobs)
        self.calls += 1
        grid, _ = render(frame, self.half_width, self.image.shape, sharp, self.supersample)
        offset = np.zeros(self.image.shape)
        offset[rows, cols] = direct[0] - grid[rows, cols]
        self.offset = offset
        return float(0.5 * np.sum(residual(self.model(frame, al), self.b_hat) ** 2))

    def record(self, stage, z, nfev, cpu0, params, factor=None) -> None:
        self.history.append(
            {"stage": stage, "z": float(z), "evaluations": int(nfev), "engine_calls": self.calls,
             "cpu_s": time.process_time() - cpu0, "parameters": params,
             "correlation_factor": factor}
        )  # fmt: skip


def _least_squares(fun: Callable, mask, x0: np.ndarray, units, lower, upper, steps):
    """Least squares in scaled variables u = (x − x0)/units; returns (x, cov, result).

    cov = s²(JᵀJ)⁻¹ × the residual's :func:`~lacbed.refine.objective.correlation_factor`.
    """
    units = np.asarray(units, float)
    lo = (np.asarray(lower, float) - x0) / units
    hi = (np.asarray(upper, float) - x0) / units
    res = least_squares(
        lambda u: fun(x0 + units * u),
        np.zeros(len(x0)),
        bounds=(lo, hi),
        diff_step=np.asarray(steps, float),
        x_scale=1.0,
        method="trf",
        xtol=1e-8,
        ftol=1e-10,
        gtol=1e-10,
        max_nfev=60 * len(x0),
    )
    x = x0 + units * res.x
    jac = np.asarray(res.jac)
    dof = max(1, len(res.fun) - len(x0))
    s2 = float(res.fun @ res.fun) / dof
    try:
        cov_u = s2 * np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        cov_u = np.full((len(x0), len(x0)), np.nan)
    res.correlation_factor = correlation_factor(res.fun, mask)
    cov = cov_u * units[:, None] * units[None, :] * res.correlation_factor
    return x, cov, res


def _geometry_bounds(al: Alignment, disc, scale0):
    """Lower and upper bounds of the alignment's fields."""
    r = disc[2]
    lower = [al.row - 0.5 * r, al.col - 0.5 * r, al.angle - 30.0, 0.8 * scale0, 0.0]
    upper = [al.row + 0.5 * r, al.col + 0.5 * r, al.angle + 30.0, 1.25 * scale0, 5.0]
    return lower, upper


def _fit_alignment(prob: _Problem, stack, al: Alignment, t0: float, fit_t: bool, disc, scale0):
    """Stage 4: geometry, blur and thickness by least squares on the dense stack."""
    cpu0 = time.process_time()
    names = list(GEOMETRY) + (["thickness"] if fit_t else [])
    x0 = np.array([al.row, al.col, al.angle, al.scale, max(al.blur, 0.8)] + ([t0] if fit_t else []))
    lower, upper = _geometry_bounds(al, disc, scale0)
    g = prob.grid
    if fit_t:
        lower.append(g[1] + 1e-6)
        upper.append(g[-2] - 1e-6)
    units = [_UNIT.get(n, 0.01 * scale0) for n in names]

    def fun(x):
        a = Alignment(*x[:5])
        t = x[5] if fit_t else t0
        return residual(prob.model(interp_thickness(stack, g, t), a), prob.b_hat)

    x, cov, res = _least_squares(fun, prob.mask, x0, units, lower, upper, [_STEP[n] for n in names])
    z = 0.5 * float(res.fun @ res.fun)
    params = dict(zip(names, (float(v) for v in x), strict=True))
    prob.record("alignment", z, res.nfev, cpu0, params, res.correlation_factor)
    return Alignment(*x[:5]), (float(x[5]) if fit_t else t0), cov, names, z


def _thickness_scan(prob: _Problem, stack, al: Alignment) -> tuple[np.ndarray, float]:
    """Z at every thickness of the stack with alignment ``al``; and the parabola vertex [nm]."""
    z = np.empty(len(stack))
    for start in range(0, len(stack), 64):  # bounded memory for long stacks
        images, _ = render(stack[start : start + 64], prob.half_width, prob.image.shape, al,
                           prob.supersample)  # fmt: skip
        z[start : start + 64] = z_columns(images[:, prob.mask].T, prob.b_hat)
    i = int(np.argmin(z))
    return z, parabola_vertex(prob.grid, z, i)


def _structure_setup(prob: _Problem, spec: FitSpec, al, t0, scale0, disc, b0, f0):
    """Names, start, units, bounds and steps of the structure least squares."""
    names = (list(GEOMETRY) if spec.orientation else []) + (["thickness"] if spec.thickness else [])
    x0 = ([al.row, al.col, al.angle, al.scale, al.blur] if spec.orientation else []) + (
        [t0] if spec.thickness else []
    )
    lower, upper = _geometry_bounds(al, disc, scale0) if spec.orientation else ([], [])
    if spec.thickness:
        lower.append(prob.t_range[0])
        upper.append(prob.t_range[1])
    units = [_UNIT.get(n, 0.01 * scale0) for n in names]
    steps = [_STEP[n] for n in names]
    for el in spec.b_elements:
        names.append(f"B:{el}")
        x0.append(b0[el])
        units.append(max(b0[el], 0.1))
        lower.append(0.0)
        upper.append(5.0 * max(b0[el], 0.1) + 2.0)
        steps.append(0.01)
    for h in spec.ug:
        names.append(ug_name(h))
        x0.append(complex(f0[h]).real)
        units.append(1.0)
        lower.append(0.1)
        upper.append(10.0)
        steps.append(0.005)
        if h in spec.acentric:  # β of c = α + iβ (structure.py notes)
            names.append(ug_name(h) + ":im")
            x0.append(complex(f0[h]).imag)
            units.append(1.0)
            lower.append(-5.0)
            upper.append(5.0)
            steps.append(0.005)
    return names, np.array(x0, float), units, lower, upper, steps


def _fit_structure(prob: _Problem, spec: FitSpec, al: Alignment, t0, scale0, disc, b0, f0, step):
    """Stage 5: B, U_g factors (with thickness and optionally geometry) by least squares."""
    cpu0 = time.process_time()
    names, x0, units, lower, upper, steps = _structure_setup(
        prob, spec, al, t0, scale0, disc, b0, f0
    )
    n_geo = len(GEOMETRY) if spec.orientation else 0
    n_t = 1 if spec.thickness else 0

    def unpack(x):
        a = Alignment(*x[:n_geo]) if n_geo else al
        t = float(x[n_geo]) if n_t else t0
        rest = list(map(float, x[n_geo + n_t :]))
        b = dict(zip(spec.b_elements, rest, strict=False))
        rest = rest[len(spec.b_elements) :]
        f = {}
        for h in spec.ug:  # α, then β for an acentric reflection (complex factor)
            f[h] = complex(rest.pop(0), rest.pop(0)) if h in spec.acentric else rest.pop(0)
        return a, t, {**b0, **b}, {**f0, **f}

    def frame(b, f, t):
        key = (tuple(sorted(b.items())), tuple(sorted(f.items())))
        hit = prob.cache.get(key)
        if hit is None or not (hit[0][1] <= t <= hit[0][-2]):
            lo = max(prob.t_range[0] - 2 * step, t - WINDOW_NM)
            grid = np.arange(lo, lo + 2 * WINDOW_NM + step / 2, step)
            grid = grid[grid > 0]
            if len(grid) < 4:
                raise SettingsError("the thickness window is too small; use a smaller step")
            hit = (grid, prob.solve(b, f, grid))
            if len(prob.cache) > 16:
                prob.cache.clear()
            prob.cache[key] = hit
        return interp_thickness(hit[1], hit[0], t)

    def fun(x):
        a, t, b, f = unpack(x)
        return residual(prob.model(frame(b, f, t), a), prob.b_hat)

    x, cov, res = _least_squares(fun, prob.mask, x0, units, lower, upper, steps)
    z = 0.5 * float(res.fun @ res.fun)
    params = dict(zip(names, map(float, x), strict=True))
    prob.record("structure", z, res.nfev, cpu0, params, res.correlation_factor)
    a, t, b, f = unpack(x)
    state = {"fun": fun, "unpack": unpack, "frame": frame, "x": x, "jac": np.asarray(res.jac),
             "units": np.asarray(units, float), "bounds": (lower, upper), "names": names}  # fmt: skip
    return a, t, b, f, cov, names, z, frame(b, f, t), state


def _gauss_newton(prob: _Problem, state: dict, cov, scale0: float):
    """One Gauss–Newton step of the structure fit with its last Jacobian, after the direct
    correction changed (module notes); returns (alignment, t, b, f, Z, frame, largest move in
    units of max(σ, floor) [-]). One engine call when B or U_g move."""
    cpu0 = time.process_time()
    x = state["x"]
    r = state["fun"](x)  # the new correction at the same parameters (cached solve)
    du = np.linalg.lstsq(state["jac"], -r, rcond=None)[0]
    x_new = np.clip(x + state["units"] * du, *state["bounds"])
    state["x"] = x_new
    names = state["names"]
    before = dict(zip(names, map(float, x), strict=True))
    params = dict(zip(names, map(float, x_new), strict=True))
    a, t, b, f = state["unpack"](x_new)
    frame = state["frame"](b, f, t)
    z = 0.5 * float(np.sum(residual(prob.model(frame, a), prob.b_hat) ** 2))
    prob.record("structure (Gauss-Newton step)", z, 1, cpu0, params)
    return a, t, b, f, z, frame, _moved(before, params, names, cov, scale0)


def _check_range(thickness_range, thickness_step) -> tuple[float, float, float]:
    lo, hi = (float(v) for v in thickness_range)
    step = float(thickness_step)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        raise SettingsError(
            f"the thickness range must be two numbers 0 < min < max [nm], got {thickness_range}"
        )
    if not (0 < step <= (hi - lo) / 4):
        raise SettingsError(f"thickness_step must be > 0 and ≤ (max − min)/4, got {step}")
    if hi > 2000:
        raise SettingsError(f"thickness range beyond 2000 nm is outside a LACBED fit ({hi} nm)")
    return lo, hi, step


def _setup(experiment: Experiment, crystal, spec: FitSpec, options: dict):
    """Stages 1–2: mask, plan and the first simulation; returns (problem, stack, disc)."""
    from lacbed.simulate.plan import plan_lacbed

    img = np.asarray(experiment.image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 16 or not np.all(np.isfinite(img)):
        raise LacbedError(
            f"the experiment must be one finite 2-D image of at least 16 × 16 pixels, got shape "
            f"{img.shape}" + ("" if np.all(np.isfinite(img)) else " with NaN or inf")
        )
    if not (np.isfinite(experiment.calibration) and experiment.calibration > 0):
        raise SettingsError(
            f"the calibration must be > 0 1/Å per pixel, got {experiment.calibration}"
        )
    bad = bad_pixel_mask(img) if options["bad_pixels"] else np.zeros(img.shape, bool)
    given = None if options["mask"] is None else np.asarray(options["mask"], bool)
    if given is not None and given.shape != img.shape:
        raise SettingsError(f"the mask has shape {given.shape}, the image {img.shape}")
    factor = max(1, int(np.ceil(max(img.shape) / options["max_size"])))
    if factor > 1:  # bad pixels replaced by their neighbourhood's median, then binned
        img = bin_image(np.where(bad, ndimage.median_filter(img, size=3), img), factor)
        bad = bin_image(bad, factor) > 0.5
        given = None if given is None else bin_image(given, factor) > 0.5
    disc = find_disc(img, bad)
    rr, cc = np.indices(img.shape)
    inner = np.hypot(rr - disc[0], cc - disc[1]) <= disc[2] - MASK_MARGIN
    mask = inner & ~bad
    if given is not None:
        mask &= given
    if mask.sum() < 200:
        raise LacbedError(f"only {int(mask.sum())} usable pixels in the disc; need ≥ 200")
    scale0 = experiment.calibration * factor
    centre = symmetry_centre(img, mask)
    reach = float(np.hypot(rr[mask] - centre[0], cc[mask] - centre[1]).max()) + 3.0
    half_width = COVER * reach * scale0
    size = options["sim_size"]
    if size is None:
        size = int(np.clip(2 * np.ceil(OVERSAMPLE * COVER * reach), 24, 160))
    lo, hi, step = options["range"]
    grid = np.arange(lo - 2 * step, hi + 2.5 * step, step)
    grid = grid[grid > 0]
    kw = dict(voltage_kv=options["voltage_kv"], size=int(size), half_width=half_width,
              strong_beams=options["strong_beams"], max_g=options["max_g"],
              budget_factor=options["budget_factor"], scattering=options["scattering"],
              absorption=options["absorption"], kappa=options["kappa"])  # fmt: skip
    plan = plan_lacbed(crystal, grid, convergence_sample=SAMPLE_FRACTION, **kw)
    # the same pool and tiles solving every pixel: the beam sets of the directly solved pixels
    direct = plan_lacbed(crystal, grid[:1], convergence_sample=0.0, symmetry="1", **kw)
    if not np.array_equal(direct.pool, plan.pool):  # pragma: no cover - one pool per settings
        raise LacbedError("the direct plan's beam pool differs from the grid plan's (bug)")
    support = ndimage.distance_transform_edt(~mask) <= SUPPORT_PX
    prob = _Problem(
        image=img, mask=mask, b_hat=normalise(img[mask]), plan=plan, table=PotentialTable(plan),
        grid=grid, t_range=(lo, hi), precision=options["precision"], n_jobs=options["n_jobs"],
        binning=factor, supersample=options["supersample"], direct_plan=direct, support=support,
    )  # fmt: skip
    return prob, disc, scale0, centre


def _starts(crystal, spec: FitSpec, start: dict | None) -> tuple[dict, dict]:
    """Starting B per element [Å²] (the crystal's mean, or ``start``) and U_g factors [-]."""
    start = dict(start or {})
    b0, f0 = {}, {}
    for el in dict.fromkeys(crystal.symbols):
        sites = np.array([s == el for s in crystal.symbols])
        b0[el] = float(start.pop(f"B:{el}", np.mean(crystal.b_iso[sites])))
    for h in spec.ug:
        name = ug_name(h)
        alpha = float(start.pop(name, 1.0))
        if h in spec.acentric:
            f0[h] = complex(alpha, float(start.pop(name + ":im", 0.0)))
        elif name + ":im" in start:
            raise SettingsError(
                f"starting value {name}:im: {name[3:]} is centric in {crystal.formula} (its phase "
                f"is fixed by symmetry), so only the real factor {name} is refined"
            )
        else:
            f0[h] = alpha
    if start:
        raise SettingsError(
            f"unknown starting values {sorted(start)}; use B:El, Ug:hkl or (acentric reflections "
            "of the fit) Ug:hkl:im keys"
        )
    return b0, f0


def _report_parameters(prob, spec, names, cov, t, b, f, b_start, f_start, t_start):
    """The parameters block of the result (values, uncertainties, starts, units)."""
    sig = dict(zip(names, np.sqrt(np.clip(np.diag(cov), 0, None)), strict=True))
    out = {}
    if spec.thickness:
        out["thickness"] = {"value": t, "uncertainty": float(sig.get("thickness", np.nan)),
                            "start": t_start, "unit": "nm"}  # fmt: skip
    for el in spec.b_elements:
        out[f"B:{el}"] = {"value": b[el], "uncertainty": float(sig.get(f"B:{el}", np.nan)),
                          "start": b_start[el], "unit": "Å²"}  # fmt: skip
    for h in spec.ug:
        out[ug_name(h)] = _report_ug(prob.table.ug(b, h), names, cov, h, f[h], f_start[h])
    return out, sig


def _report_ug(u0: complex, names: list, cov: np.ndarray, h, f, f_start) -> dict:
    """One U_g's report entry: its factor, U_g = c U_g⁰ [Å⁻²] (engine origin) and uncertainties.

    The covariance C of (α, β) (β ≡ 0 for a centric reflection) maps linearly onto that of
    (Re U_g, Im U_g): Re = α Re⁰ − β Im⁰, Im = α Im⁰ + β Re⁰, so cov = J C Jᵀ with
    J = [[Re⁰, −Im⁰], [Im⁰, Re⁰]]. "U_g_uncertainty" is that of |U_g| = |c| |U_g⁰| (for a
    centric reflection σ_α |U_g⁰|, as in lacbed ≤ 0.2).
    """
    name = ug_name(h)
    c = complex(f)
    idx = [names.index(n) for n in (name, name + ":im") if n in names]
    cab = np.zeros((2, 2))  # covariance of (α, β); β fixed at 0 (centric): its rows are 0
    cab[: len(idx), : len(idx)] = cov[np.ix_(idx, idx)] if idx else np.nan
    jac = np.array([[u0.real, -u0.imag], [u0.imag, u0.real]])
    cov_ri = jac @ cab @ jac.T
    grad = np.array([c.real, c.imag]) / abs(c) * abs(u0)  # d|U_g| / d(α, β)
    ug = u0 * c
    entry = {"value": c.real, "uncertainty": float(np.sqrt(max(cab[0, 0], 0.0))),
             "start": complex(f_start).real, "unit": "factor on the CIF's U_g",
             "U_g": [ug.real, ug.imag], "U_g_unit": "1/Å² (engine origin)",
             "U_g_uncertainty": float(np.sqrt(max(grad @ cab @ grad, 0.0))),
             "U_g_re_uncertainty": float(np.sqrt(max(cov_ri[0, 0], 0.0))),
             "U_g_im_uncertainty": float(np.sqrt(max(cov_ri[1, 1], 0.0)))}  # fmt: skip
    if len(idx) == 2:  # acentric: the complex factor's imaginary part and the correlation
        entry.update({"value_im": c.imag, "uncertainty_im": float(np.sqrt(max(cab[1, 1], 0.0))),
                      "start_im": complex(f_start).imag,
                      "U_g_re_im_correlation": float(cov_ri[0, 1] / np.sqrt(
                          cov_ri[0, 0] * cov_ri[1, 1])) if cov_ri[0, 0] * cov_ri[1, 1] > 0
                      else float("nan")})  # fmt: skip
    return entry


def refine(
    experiment: Experiment,
    crystal: Any,
    *,
    fit: str = "thickness,orientation",
    thickness_range: tuple[float, float] = (20.0, 400.0),
    thickness_step: float = 0.5,
    thickness: float | None = None,
    start: dict | None = None,
    voltage_kv: float = 200.0,
    sim_size: int | None = None,
    mask: np.ndarray | None = None,
    bad_pixels: bool = True,
    max_size: int = 128,
    strong_beams: int | None = None,
    max_g: float | None = None,
    scattering: str = "kirkland",
    absorption: str = "bird-king",
    kappa: float = 0.078,
    precision: str = "double",
    n_jobs: int | None = None,
    angle_step: float = 5.0,
    scales: tuple[float, ...] = (0.94, 0.97, 1.0, 1.03, 1.06),
    supersample: int = SUPERSAMPLE,
    direct_passes: int = DIRECT_PASSES,
) -> RefineResult:
    """Fit a simulated bright-field LACBED pattern to a measured one (module notes).

    Parameters
    ----------
    experiment : Experiment
        From :func:`lacbed.refine.load_experiment` (image and calibration [1/Å per px]).
    crystal : Crystal or path
        Starting structure (anything :func:`lacbed.crystal.load_crystal` reads).
    fit : str
        Comma-separated: ``thickness``, ``orientation``, ``B`` (every element) or ``B:El``,
        ``Ug:hkl`` (:func:`lacbed.refine.structure.parse_fit`).
    thickness_range : (min, max)
        Thicknesses searched [nm].
    thickness_step : float
        Spacing of the dense thickness scan [nm].
    thickness : float, optional
        Fixed thickness [nm] when ``thickness`` is not fitted.
    start : dict, optional
        Starting values: ``{"B:Ga": 0.6, "Ug:200": 1.1}`` (B [Å²]; U_g as a factor on the CIF's;
        ``"Ug:111:im"``: the imaginary part β of the complex factor of an acentric reflection,
        default 0).
    voltage_kv : float
        [kV].
    sim_size : int, optional
        Simulation side [px]; default :data:`OVERSAMPLE` simulation pixels per image pixel over
        the disc as seen from the zone axis (24–160).
    mask : ndarray of bool, optional
        Pixels that may be used (True), combined with the disc and bad-pixel masks.
    bad_pixels : bool
        Detect and mask dead/hot pixels.
    max_size : int
        Larger images are binned by the least integer factor that brings both sides to at most
        this [px] (bad pixels replaced first); the alignment is reported in the original pixels,
        the result's images at the fit's sampling.
    strong_beams, max_g
        Engine beam budget (:func:`lacbed.simulate.simulate_lacbed`); None: the adaptive one,
        or :data:`UG_STRONG_BEAMS` when U_g is fitted.
    scattering, absorption, kappa
        Elastic scattering factors, absorption model and proportional-absorption ratio κ [-],
        as :func:`lacbed.simulate.simulate_lacbed` (e.g. from a Felix felix.inp).
    precision : {'double', 'single'}
        Eigensolve precision during the fit (double: smooth finite differences).
    n_jobs : int, optional
        Engine worker threads.
    angle_step : float
        Rotation step of the coarse alignment [deg].
    scales : tuple of float
        Scale factors on the calibration tried by the coarse alignment [-].
    supersample : int
        Model pixels are the mean of ``supersample`` × ``supersample`` points over their area [-].
    direct_passes : int
        Most passes of the direct correction (each one engine call over the detector's pixels,
        module notes); 0 fits the grid model alone (cheaper, biased: docs/refine.md).

    Returns
    -------
    RefineResult

    Raises
    ------
    SettingsError, LacbedError
        Bad settings, no disc, too few pixels, or a best thickness at the edge of the range.
    """
    from lacbed.crystal import Crystal, load_crystal

    cpu0, wall0 = time.process_time(), time.perf_counter()
    if not isinstance(crystal, Crystal):
        crystal = load_crystal(crystal)
    spec = with_phases(parse_fit(fit, list(dict.fromkeys(crystal.symbols))), crystal)
    rng = _check_range(thickness_range, thickness_step)
    if not spec.thickness and thickness is None:
        raise SettingsError("give a thickness when it is not fitted (--fit without thickness)")
    if not spec.thickness and not rng[0] <= float(thickness) <= rng[1]:
        raise SettingsError(
            f"the fixed thickness {thickness} nm must lie inside the thickness range {rng[:2]}"
        )
    if precision not in ("double", "single"):
        raise SettingsError(f"precision must be 'double' or 'single', got {precision!r}")
    b0, f0 = _starts(crystal, spec, start)
    # U_g fits need more beams than the adaptive default (UG_STRONG_BEAMS) unless given
    factor = 1.0
    if spec.ug and strong_beams is None:
        strong_beams = UG_STRONG_BEAMS
        factor = UG_BUDGET_FACTOR if strong_beams is None else 1.0
    options = {"bad_pixels": bad_pixels, "mask": mask, "sim_size": sim_size, "range": rng,
               "voltage_kv": voltage_kv, "strong_beams": strong_beams, "max_g": max_g,
               "budget_factor": factor, "scattering": scattering, "absorption": absorption,
               "kappa": float(kappa),
               "precision": precision, "n_jobs": n_jobs, "max_size": int(max_size),
               "supersample": int(supersample), "direct_passes": int(direct_passes)}  # fmt: skip
    if int(supersample) != supersample or not 1 <= supersample <= 8:
        raise SettingsError(f"supersample must be an integer 1–8, got {supersample!r}")
    if int(direct_passes) != direct_passes or not 0 <= direct_passes <= 10:
        raise SettingsError(f"direct_passes must be an integer 0–10, got {direct_passes!r}")
    crystal0 = crystal.with_b_iso([b0[s] for s in crystal.symbols])
    prob, disc, scale0, centre = _setup(experiment, crystal0, spec, options)
    stack = prob.solve(b0, f0, prob.grid)
    al, t = _align(prob, stack, spec, thickness, centre, scale0, angle_step, scales)
    al, t, cov, names, z = _fit_alignment(prob, stack, al, t, spec.thickness, disc, scale0)
    zt, t_scan = _thickness_scan(prob, stack, al)
    if spec.thickness and abs(t_scan - t) > 1.0:  # the least squares sat in a side minimum
        al, t, cov, names, z = _fit_alignment(prob, stack, al, t_scan, True, disc, scale0)
        zt, t_scan = _thickness_scan(prob, stack, al)
    if z > Z_NOT_A_PATTERN:
        raise LacbedError(
            f"the best alignment matches the simulation with Z = {100 * z:.0f} % only: the image "
            f"is not a LACBED disc of {crystal.formula} at [001] (or its calibration is far off)"
        )
    if spec.thickness:
        _check_edge(prob, zt, t)
    t_align = t
    al, t, b, f, cov, names, z, frame = _direct_passes(
        prob, spec, stack, (al, t, cov, names, z), scale0, disc, b0, f0, rng[2],
        options["direct_passes"],
    )  # fmt: skip
    params, sig = _report_parameters(prob, spec, names, cov, t, b, f, b0, f0, t_align)
    result = _result(prob, spec, al, sig, disc, z, zt, frame, params, b, f, t, cpu0, wall0)
    result.settings["experiment"] = {  # where the image and its calibration came from
        "source": experiment.source,
        "calibration_inv_angstrom_per_px": float(experiment.calibration),
        "calibration_source": experiment.calibration_source,
        **experiment.metadata,
    }
    return result


def _moved(before: dict, after: dict, names: list, cov, scale0: float) -> float:
    """Largest change of a parameter between passes in units of max(σ, its floor) [-]."""
    sig = np.sqrt(np.clip(np.diag(cov), 0, None))
    worst = 0.0
    for name, s in zip(names, sig, strict=True):
        if name in before:
            floor = 1e-5 * scale0 if name == "scale" else 1e-3 * max(abs(before[name]), 1.0)
            worst = max(worst, abs(after[name] - before[name]) / max(float(s), floor))
    return worst


def _direct_passes(prob: _Problem, spec, stack, aligned, scale0, disc, b0, f0, step, passes):
    """Stages 5–6: the direct correction passes around the alignment and structure fits.

    Each pass solves the detector's pixels directly at the current parameters (one engine call,
    :meth:`_Problem.direct_offset`) and refits with the grid model plus that correction; at the
    fixed point the model is the directly solved pixel means, and the grid only supplies the
    derivatives. The first pass refits the alignment (the stack's structure is the start's) and
    then the structure, if any; later passes refit the alignment (no engine call) or take one
    Gauss–Newton step of the structure fit with its Jacobian (:func:`_gauss_newton`). They stop
    when no parameter moves by more than :data:`DIRECT_TOL` of its uncertainty (or floor).
    ``passes = 0``: the grid model alone. ``aligned``: (alignment, thickness [nm], covariance,
    names, Z) of stage 4.
    """
    structure = bool(spec.b_elements or spec.ug)
    b, f = dict(b0), dict(f0)
    al, t, cov, names, z = aligned
    frame = interp_thickness(stack, prob.grid, t)
    state = None
    if passes == 0 and structure:
        al, t, b, f, cov, names, z, frame, state = _fit_structure(
            prob, spec, al, t, scale0, disc, b, f, step
        )
    for k in range(passes):
        cpu0 = time.process_time()
        before = dict(prob.history[-1]["parameters"])
        z_direct = prob.direct_offset(frame, b, f, t, al)
        prob.record("direct pixels", z_direct, 1, cpu0, {"pass": k + 1})
        if k == 0 or not structure:
            al, t, cov, names, z = _fit_alignment(prob, stack, al, t, spec.thickness, disc, scale0)
            frame = interp_thickness(stack, prob.grid, t)
            moved = _moved(before, prob.history[-1]["parameters"], names, cov, scale0)
        if structure and k == 0:
            al, t, b, f, cov, names, z, frame, state = _fit_structure(
                prob, spec, al, t, scale0, disc, b, f, step
            )
        elif structure:
            al, t, b, f, z, frame, moved = _gauss_newton(prob, state, cov, scale0)
        if k > 0 and moved <= DIRECT_TOL:
            break
    return al, t, b, f, cov, names, z, frame


def _align(prob: _Problem, stack, spec, thickness, centre, scale0, angle_step, scales):
    """Stage 3: coarse alignment; returns the alignment and the starting thickness [nm]."""
    cpu0 = time.process_time()
    every = max(1, int(round(2.0 / (prob.grid[1] - prob.grid[0]))))  # ~2 nm steps
    sub = slice(2, len(prob.grid) - 2, every)
    if not spec.thickness:
        i_fix = int(np.argmin(np.abs(prob.grid - float(thickness))))
        sub = slice(i_fix, i_fix + 1)
    rows, cols = np.nonzero(prob.mask)
    pts = (rows[::2], cols[::2])
    period = 90.0 if prob.plan.symmetry == "4mm" else 180.0
    al, i, z, n = coarse_alignment(
        stack[sub], prob.half_width, prob.image, pts, centre, scale0,
        period=period, angle_step=angle_step, scales=tuple(scales),
    )  # fmt: skip
    t = float(prob.grid[sub][i]) if spec.thickness else float(thickness)
    prob.record("coarse alignment", z, n, cpu0, {**al.as_dict(), "thickness": t})
    return al, t


def _check_edge(prob: _Problem, zt: np.ndarray, t: float) -> None:
    """The best thickness must lie inside the range (else the range misses the specimen)."""
    lo, hi = prob.t_range
    step = prob.grid[1] - prob.grid[0]
    inside = (prob.grid >= lo) & (prob.grid <= hi)
    t_best = float(prob.grid[inside][int(np.argmin(zt[inside]))])
    if t_best <= lo + step or t_best >= hi - step or not lo <= t <= hi:
        raise LacbedError(
            f"the best thickness ({t_best:.1f} nm) lies at the edge of the thickness range "
            f"{lo:g}–{hi:g} nm: the specimen is outside it; widen --thickness-range"
        )


def _final_estimate(prob: _Problem, b: dict, f: dict, t: float) -> float | None:
    """The engine's convergence estimate of the final model (one engine call; docs/physics.md
    §9: Z against twice the strong beams); logs one warning line above the engine's limit."""
    est = prob.solve(b, f, [t], estimate=True).settings["convergence_estimate"]
    if est is not None and est > CONVERGENCE_WARNING:
        cr = prob.plan.crystal
        log.warning(
            "%s: the fitted model's convergence estimate is Z = %.2f %% against twice the strong "
            "beams (> %.1f %%): the simulation is not converged; use more strong beams",
            cr.name or cr.formula, 100 * est, 100 * CONVERGENCE_WARNING,
        )  # fmt: skip
    return est


def _result(prob, spec, al, sig, disc, z, zt, frame, params, b, f, t, cpu0, wall0):
    """Assemble the result: uncertainties, tilt, images, refined crystal (a RefineResult)."""
    from lacbed.constants import electron_constants

    estimate = _final_estimate(prob, b, f, t)
    model, _ = render(frame, prob.half_width, prob.image.shape, al, prob.supersample, prob.offset)
    m, e = model[prob.mask], prob.image[prob.mask]
    slope, offset = np.polyfit(m, e, 1)
    fit_img = slope * model + offset
    k_disc = pixel_tilts(np.array([disc[0]]), np.array([disc[1]]), al)[0]
    wavelength = electron_constants(prob.plan.options["voltage_kv"] * 1e3).wavelength
    tilt = {"k_x": float(k_disc[0]), "k_y": float(k_disc[1]), "unit_k": "1/Å",
            "theta_x_mrad": float(1e3 * wavelength * k_disc[0]),
            "theta_y_mrad": float(1e3 * wavelength * k_disc[1])}  # fmt: skip
    al_sig = {n: float(sig[n]) for n in GEOMETRY if n in sig}
    f = prob.binning
    if f > 1:  # back to the original pixels: binned index b ↔ original (b + ½) f − ½
        al = Alignment((al.row + 0.5) * f - 0.5, (al.col + 0.5) * f - 0.5, al.angle,
                       al.scale / f, al.blur * f)  # fmt: skip
        al_sig = {n: v / f if n == "scale" else (v if n == "angle" else v * f)
                  for n, v in al_sig.items()}  # fmt: skip
        disc = ((disc[0] + 0.5) * f - 0.5, (disc[1] + 0.5) * f - 0.5, disc[2] * f)
    o = prob.plan.options
    settings = {"size": o["size"], "half_width": o["half_width"], "voltage_kv": o["voltage_kv"],
                "scattering": o["scattering"], "absorption": o["absorption"], "kappa": o["kappa"],
                "thickness_range": list(prob.t_range),
                "thickness_step": float(prob.grid[1] - prob.grid[0]),
                "mask_pixels": int(prob.mask.sum()), "precision": prob.precision,
                "symmetry": prob.plan.symmetry, "binning": prob.binning, "fit": spec.names + (
                    ["orientation"] if spec.orientation else []),
                "strong_beams": o["strong_beams"], "max_g_pool": prob.plan.info.get("max_g"),
                "beam_budget": o["beam_budget"],
                "budget_factor": o["budget_factor"],
                "supersample": prob.supersample,
                "direct_passes": sum(h["stage"] == "direct pixels" for h in prob.history),
                "convergence_estimate": estimate,
                "convergence_warning": CONVERGENCE_WARNING}  # fmt: skip
    lo, hi = prob.t_range
    keep = (prob.grid >= lo) & (prob.grid <= hi)
    return RefineResult(
        parameters=params,
        alignment=al,
        alignment_uncertainty=al_sig,
        disc=tuple(float(v) for v in disc),
        tilt=tilt,
        z=float(z),
        z_thickness=(prob.grid[keep], zt[keep]),
        history=prob.history,
        engine_calls=prob.calls,
        cpu_s=time.process_time() - cpu0,
        wall_s=time.perf_counter() - wall0,
        crystal=prob.table.crystal_with_b(b),
        images={"experiment": prob.image, "fit": fit_img, "mask": prob.mask},
        settings=settings,
    )
