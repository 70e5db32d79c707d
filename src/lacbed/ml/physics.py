"""A cheap physics channel: a two-beam (kinematic-strength) map of the Bragg lines of the 000 disc.

Every reflection g removes intensity from the transmitted beam along its Bragg line, the tilts k
where the excitation error s_g(k) = (K² − |k + g|²) / (2 (k + g)·ẑ) vanishes (for the zero
layer the straight line k·g = −|g|²/2; HOLZ lines are the same condition with the g_z term).
This module renders, on the pattern's own tilt grid (:mod:`lacbed.simulate.geometry`), the
sum over the reflections of the engine's beam pool of one line profile each, with

- the **position** of the engine: the same excitation errors
  (:func:`lacbed.bloch.matrix.excitation_errors`), beam pool and lattice centring;
- the **integrated strength** of two-beam theory without absorption,
  ∫ I_g ds = (π / 2ξ_g) ∫₀^{2πt/ξ_g} J₀(u) du  [1/Å], which tends to π²t/ξ_g² (kinematic) for
  t ≪ ξ_g and to π/(2ξ_g) for t ≫ ξ_g (the integral of the rocking curve
  I_g(s) = sin²(πt s_eff) / (ξ_g s_eff)², s_eff = √(s² + ξ_g⁻²));
- a Lorentzian **shape** in s of half width γ_g = √(ξ_g⁻² + (0.443/t)²) (the thick-crystal
  rocking curve's 1/ξ_g and the half width at half maximum, 0.443/t, of the kinematic
  sinc²(πts)), averaged exactly over each pixel's range of s (arctan difference), so lines
  narrower than a pixel keep their strength instead of being hit or missed by a pixel centre.

The channel is ``exp(−B)`` with B the sum of the profiles: the bright-field intensity if each
line removed its fraction of what the others left (a heuristic combination; no dynamical
coupling between reflections, no absorption, no thickness fringes). It puts every line where the
engine puts it, which a network cannot read off the projected potential without learning the
whole geometry; its intensities are only indicative.

Cost: one structure-factor call for the pool and one pass over the pixels per reflection whose
line crosses the disc (tens of ms at 128 px, see docs/ml.md).

References
----------
.. [1] P. B. Hirsch, A. Howie, R. B. Nicholson, D. W. Pashley and M. J. Whelan, *Electron
   Microscopy of Thin Crystals* (Butterworths, 1965), Ch. 8 (two-beam rocking curve, integrated
   intensity).
.. [2] J. C. H. Spence and J. M. Zuo, *Electron Microdiffraction* (Plenum, 1992), Ch. 2–3
   (U_g, extinction distance ξ_g = 1/(λ|U_g|), excitation error, Bragg and HOLZ lines).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = [
    "KINEMATIC_HWHM",
    "COARSE_STRONG",
    "FEWBEAM_STRONG",
    "LEGACY_COARSE_STRONG",
    "MAP_VERSION",
    "PHYSICS_KINDS",
    "bragg_line_map",
    "coarse_size",
    "map_settings",
    "physics_beams",
    "physics_maps",
    "coarse_maps",
    "recorded_beams",
    "two_beam_integrated_intensity",
    "upsample_pattern",
]

#: Half width at half maximum of sinc²(πts) in units of 1/t (the root of sinc²(x) = ½ is
#: x = 1.3916, and s = x/(πt) = 0.443/t).
KINEMATIC_HWHM: float = 0.443


def two_beam_integrated_intensity(t: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """∫ I_g ds of the non-absorbing two-beam rocking curve [1/Å].

    Parameters
    ----------
    t : ndarray
        Thickness [Å].
    xi : ndarray
        Extinction distance ξ_g [Å] (``inf`` gives 0).

    Returns
    -------
    ndarray
        (π / 2ξ) ∫₀^{2πt/ξ} J₀(u) du (Hirsch et al. 1965, Ch. 8).
    """
    from scipy.special import itj0y0

    t, xi = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(xi, dtype=np.float64))
    out = np.zeros(t.shape)
    ok = np.isfinite(xi) & (xi > 0)
    out[ok] = np.pi / (2 * xi[ok]) * itj0y0(2 * np.pi * t[ok] / xi[ok])[0]
    return out


def _pixel_lorentzian(s: np.ndarray, gamma: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Mean over [s − w/2, s + w/2] of the unit-area Lorentzian γ / (π (s² + γ²)) [Å]."""
    hi = np.arctan((s + 0.5 * width) / gamma)
    lo = np.arctan((s - 0.5 * width) / gamma)
    return (hi - lo) / (np.pi * width)


def bragg_line_map(
    crystal,
    thickness_nm: float,
    *,
    size: int = 128,
    half_width: float | None = None,
    voltage_kv: float = 200.0,
    scattering: str = "kirkland",
    g_max: float | None = None,
    reach: float = 30.0,
) -> np.ndarray:
    """Two-beam map of the Bragg lines on the 000 pattern's tilt grid.

    Parameters
    ----------
    crystal : lacbed.crystal.Crystal
        The crystal (conventional cubic cell).
    thickness_nm : float
        Thickness [nm].
    size : int
        Pattern side [pixels] (even; pixel convention of :mod:`lacbed.simulate.geometry`).
    half_width : float, optional
        W [1/Å]; default 4/a, as the engine and the datasets.
    voltage_kv : float
        Accelerating voltage [kV].
    scattering : str
        Scattering-factor parametrisation of U_g.
    g_max : float, optional
        Largest |g| of the pool [1/Å]; default as the engine
        (:data:`lacbed.simulate.engine.DEFAULT_G_MAX`, shrunk to at most
        :data:`lacbed.simulate.engine.MAX_POOL` beams).
    reach : float
        A reflection is drawn only where |s_g| < ``reach`` γ_g plus half a pixel, and skipped
        when that never happens inside the disc (its far Lorentzian tail is left out) [-].

    Returns
    -------
    ndarray, shape (size, size), float32
        exp(−B) in (0, 1], ``[row ↔ k_y, col ↔ k_x]``; 1 where no line passes.
    """
    from lacbed.bloch.matrix import excitation_errors
    from lacbed.bloch.pool import beam_pool
    from lacbed.constants import wavelength
    from lacbed.scattering import structure_factors
    from lacbed.simulate.engine import DEFAULT_G_MAX, MAX_POOL
    from lacbed.simulate.geometry import incident_wavevectors, pixel_axis
    from lacbed.simulate.symmetry import lattice_centring

    lam = wavelength(voltage_kv * 1e3)  # [Å]
    K = 1.0 / lam  # [1/Å]
    t = float(thickness_nm) * 10.0  # [Å]
    a = crystal.a
    w = 4.0 / a if half_width is None else float(half_width)
    centring = lattice_centring(crystal)
    if g_max is None:
        gm = DEFAULT_G_MAX
        pool = beam_pool(a, gm, K, centring=centring)
        while len(pool) > MAX_POOL:
            gm *= 0.95
            pool = beam_pool(a, gm, K, centring=centring)
    else:
        pool = beam_pool(a, g_max, K, centring=centring)
    pool = pool[np.any(pool != 0, axis=1)]
    sf = structure_factors(
        crystal, pool, voltage=voltage_kv * 1e3, scattering=scattering, absorption="none"
    )
    xi = np.asarray(sf.xi_nm) * 10.0  # [Å]
    keep = np.isfinite(xi)
    g, xi = np.asarray(sf.g)[keep], xi[keep]  # (n, 3) [1/Å], (n,) [Å]
    area = two_beam_integrated_intensity(t, xi)  # (n,) [1/Å]
    gamma = np.sqrt(xi**-2 + (KINEMATIC_HWHM / t) ** 2)  # (n,) [1/Å]
    ax = pixel_axis(size, w)  # (size,) [1/Å]
    step = ax[1] - ax[0]
    kx, ky = np.meshgrid(ax, ax, indexing="xy")  # [row ↔ k_y, col ↔ k_x]
    k = incident_wavevectors(np.column_stack([kx.ravel(), ky.ravel()]), K)  # (P, 3)
    # s over the disc's corners and centre bounds the lines that can cross it: s is close to
    # linear in the tilt (|k_t| ≤ √2 W ≪ K), so a line crosses iff s changes sign or comes near 0
    probe = incident_wavevectors(
        np.array([[x, y] for x in (ax[0], 0.0, ax[-1]) for y in (ax[0], 0.0, ax[-1])]), K
    )
    sp = excitation_errors(probe, g, K)  # (9, n) [1/Å]
    ds = np.hypot(g[:, 0], g[:, 1]) * step / K  # (n,) s across one pixel [1/Å]
    near = reach * gamma + ds
    crosses = (sp.min(axis=0) < near) & (sp.max(axis=0) > -near)
    g, gamma, area, ds = g[crosses], gamma[crosses], area[crosses], ds[crosses]
    b = np.zeros(k.shape[0])
    for lo in range(0, len(g), 64):  # blocks of reflections: (P, 64) temporaries
        sl = slice(lo, lo + 64)
        s = excitation_errors(k, g[sl], K)  # (P, m) [1/Å]
        prof = _pixel_lorentzian(s, gamma[sl], np.maximum(ds[sl], 1e-12))
        prof = np.where(np.abs(s) < (reach * gamma[sl] + ds[sl]), prof, 0.0)
        b += prof @ area[sl]
    return np.exp(-b).reshape(size, size).astype(np.float32)


#: Bumped whenever :func:`bragg_line_map` changes its output (invalidates cached maps).
MAP_VERSION = 1
#: Kinds of physics input: the Bragg-line map, a few-beam engine run at the pattern's size, or a
#: coarse engine run (more beams, half the pixels, upsampled).
PHYSICS_KINDS: tuple[str, ...] = ("bragg", "fewbeam", "coarse")
#: Strong beams of the few-beam input (issue 10: 16 beams are within Z = 1.3-5.3 % of Felix for
#: GaAs, CaF2, Cu and MgO at 0.26-0.7 s).
FEWBEAM_STRONG: int = 16
#: Strong beams of the coarse input, solved at half the pattern's pixels (64 for 128) without
#: a convergence estimate, at most the crystal's beam pool (a small cell has fewer beams). On all
#: 179 val materials of release 2 at 1 800, upsampled, against their converged patterns: median
#: Z 0.2 / 1.0 / 2.8 / 4.8 % at 50-200 nm for 2.2 s of CPU per material
#: (benchmarks/engine_coarse_configs.py, 64 x 96); 32 beams gave 3.0 / 6.4 / 10.2 / 13.8 % for
#: 1.7 s (benchmarks/ml_coarse_physics.py → ml_coarse_physics.json).
COARSE_STRONG: int = 96


#: Strong beams of the coarse input before COARSE_STRONG became 96 (2026-12-07): what a model
#: file that does not record ``physics_beams`` was trained on.
LEGACY_COARSE_STRONG: int = 32


def physics_beams(kind: str | None) -> int | None:
    """Default strong beams of an engine-run physics input (None for 'bragg' or no input)."""
    return {"fewbeam": FEWBEAM_STRONG, "coarse": COARSE_STRONG}.get(kind or "")


def recorded_beams(kind: str | None, data: dict) -> int | None:
    """Strong beams of the engine-run input a model was trained on, from its data summary
    (``physics_beams``); a model file from before it was recorded: 16 for 'fewbeam',
    :data:`LEGACY_COARSE_STRONG` for 'coarse'."""
    if "physics_beams" in data:
        return data["physics_beams"]
    return LEGACY_COARSE_STRONG if kind == "coarse" else physics_beams(kind)


def coarse_size(size: int) -> int:
    """Pixels of the coarse run for a pattern of ``size`` pixels: half of it, rounded down to an
    even number (the engine's grid is even), at least 16."""
    return max(16, 2 * (int(size) // 4))


def upsample_pattern(pattern: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resampling of patterns (..., s, s) to (..., size, size) over the same field.

    Pixel centres of both grids sit at (i + ½)·2W/n − W, so pixel j of the coarse grid covers
    the fine pixels it overlaps (scipy's ``grid_mode``); the edges are extended.
    """
    from scipy.ndimage import zoom

    p = np.asarray(pattern, dtype=np.float64)
    if p.shape[-1] == size:
        return p.copy()
    f = size / p.shape[-1]
    factors = (1.0,) * (p.ndim - 2) + (f, f)
    return zoom(p, factors, order=1, mode="nearest", grid_mode=True)


def map_settings(dataset_settings: dict) -> dict:
    """Settings of the maps for a dataset's patterns (voltage [kV], W [1/Å] or None, scattering,
    absorption).

    ``dataset_settings``: the ``settings`` entry of a dataset's or release's metadata (the
    engine settings of its patterns).
    """
    s = dataset_settings or {}
    return {
        "voltage_kv": float(s.get("voltage_kv") or 200.0),
        "half_width": None if s.get("half_width") is None else float(s["half_width"]),
        "scattering": str(s.get("scattering") or "kirkland"),
        "absorption": str(s.get("absorption") or "bird-king"),
    }


def _engine_map(c, ts, size, kind, strong_beams, n_jobs, engine, *, estimate=False):
    """One crystal's engine-run map (T, size, size): 'coarse' at :func:`coarse_size` pixels
    with at most the crystal's pool of beams, upsampled; 'fewbeam' at ``size``. With
    ``estimate`` also the engine's convergence estimate per thickness (T,) [1] (the estimate
    re-solves a sample of pixels with twice the beams and leaves the intensities as they are:
    tested); otherwise ``None`` and the sample is skipped."""
    from lacbed.simulate import simulate_lacbed

    coarse = kind == "coarse"
    n_strong = int(strong_beams)
    if coarse:
        from lacbed.simulate.plan import beam_pool_size

        n_strong = min(n_strong, beam_pool_size(c, engine["voltage_kv"]))
    kw = {} if estimate else {"convergence_sample": 0.0}
    run = simulate_lacbed(
        c, ts, size=coarse_size(size) if coarse else size, strong_beams=n_strong,
        n_jobs=n_jobs, **engine, **kw,
    )  # fmt: skip
    img = upsample_pattern(run.intensities, size) if coarse else run.intensities
    if not estimate:
        return img, None
    per = run.settings.get("convergence_estimate_per_thickness")
    if per is None:
        per = [run.settings.get("convergence_estimate")] * len(ts)
    return img, np.array([np.nan if v is None else float(v) for v in per])


def coarse_maps(
    crystals, thicknesses_nm, *, size: int, strong_beams: int | None = None,
    n_jobs: int | None = 1, voltage_kv: float = 200.0, half_width: float | None = None,
    scattering: str = "kirkland", absorption: str = "bird-king", estimate=True,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The 'coarse' maps of :func:`physics_maps` (the same pixels) and the engine's own
    convergence estimate of each coarse run (``estimate``: for all, or a bool per crystal;
    NaN for the others, which skip the estimate's sample).

    Returns
    -------
    maps : ndarray, shape (n, T, size, size) float32
    convergence : ndarray, shape (n, T) float64
        Z between the coarse run and the same run with twice the strong beams on a sample of
        pixels [1] (:func:`lacbed.simulate.simulate_lacbed`); NaN where the engine gave none.
        At 96 beams and 64 px the sample costs little: ``benchmarks/ml_hybrid_error.py``
        records the CPU time per structure with it (against 1.84 s without,
        ``benchmarks/results/ml_coarse_physics_96.json``).
    """
    ts = [float(t) for t in np.atleast_1d(thicknesses_nm)]
    beams = COARSE_STRONG if strong_beams is None else int(strong_beams)
    engine = dict(voltage_kv=voltage_kv, half_width=half_width, scattering=scattering,
                  absorption=absorption)  # fmt: skip
    maps = np.empty((len(crystals), len(ts), size, size), dtype=np.float32)
    conv = np.full((len(crystals), len(ts)), np.nan)
    wanted = np.broadcast_to(np.asarray(estimate, dtype=bool), (len(crystals),))
    for i, c in enumerate(crystals):
        maps[i], e = _engine_map(c, ts, size, "coarse", beams, n_jobs, engine, estimate=wanted[i])
        if e is not None:
            conv[i] = e
    return maps, conv


def physics_maps(
    crystals,
    thicknesses_nm,
    *,
    size: int,
    voltage_kv: float = 200.0,
    half_width: float | None = None,
    scattering: str = "kirkland",
    absorption: str = "bird-king",
    kind: str = "bragg",
    strong_beams: int | None = None,
    cache=None,
    n_jobs: int | None = 1,
) -> np.ndarray:
    """Physics maps of each crystal at each thickness, shape (n, T, size, size) float32.

    ``kind``: 'bragg' for :func:`bragg_line_map` (``absorption`` unused), 'coarse' for the
    engine's I₀₀₀ with ``strong_beams`` (default :data:`COARSE_STRONG`; at most the crystal's
    pool) at :func:`coarse_size` pixels, upsampled by :func:`upsample_pattern`; 'fewbeam' for
    the engine's I₀₀₀ with ``strong_beams`` (default :data:`FEWBEAM_STRONG`) at ``size`` pixels
    (:func:`lacbed.simulate.simulate_lacbed`, fast solver, the same settings as the dataset
    otherwise: 0.8-55 s (mean 7 s) for real materials of the release at 128 px with the
    convergence estimate, benchmarks/engine_budget_curve.py). Engine runs skip the convergence
    estimate (it re-solves a sample of pixels with twice the beams and leaves the intensities
    as they are: tested), all thicknesses in one solve.
    ``n_jobs``: engine worker threads per crystal (:func:`lacbed.simulate.simulate_lacbed`; the
    pattern does not depend on it).
    ``cache``: a directory for one ``.npy`` per (crystal, settings), keyed by a SHA-256 of the
    crystal record, the settings and :data:`MAP_VERSION` (so a cache is never stale); ``None``
    computes every map.
    """
    if kind not in PHYSICS_KINDS:
        raise ValueError(f"physics map kind must be one of {PHYSICS_KINDS}, got {kind!r}")
    import hashlib
    import json
    from pathlib import Path

    from lacbed.crystal.serialise import crystal_to_record

    ts = [float(t) for t in np.atleast_1d(thicknesses_nm)]
    if strong_beams is None:
        strong_beams = physics_beams(kind)
    engine = dict(voltage_kv=voltage_kv, half_width=half_width, scattering=scattering,
                  absorption=absorption)  # fmt: skip
    out = np.empty((len(crystals), len(ts), size, size), dtype=np.float32)
    for i, c in enumerate(crystals):
        path = None
        if cache is not None:
            key = json.dumps(
                [
                    MAP_VERSION,
                    kind,
                    crystal_to_record(c),
                    ts,
                    size,
                    voltage_kv,
                    half_width,
                    scattering,
                    absorption if kind != "bragg" else None,
                    strong_beams if kind != "bragg" else None,
                ],
                sort_keys=True,
                default=str,
            )
            path = Path(cache) / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
            if path.is_file():
                try:
                    out[i] = np.load(path)
                    continue
                except (OSError, ValueError):
                    pass
        if kind != "bragg":  # an engine run: coarse (half the pixels, upsampled) or few-beam
            out[i] = _engine_map(c, ts, size, kind, int(strong_beams), n_jobs, engine)[0]
        for j, t in enumerate(ts if kind == "bragg" else []):
            out[i, j] = bragg_line_map(
                c,
                t,
                size=size,
                half_width=half_width,
                voltage_kv=voltage_kv,
                scattering=scattering,
            )
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, out[i])
                os.replace(tmp, path)
            except OSError:
                pass
    return out
