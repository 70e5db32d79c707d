"""The figure of merit of a fit and its residual form (pure array functions).

Z = 1 − ZNCC over the masked pixels (docs/physics.md §9; Beanland et al., Acta Cryst. A77
(2021)). With â = (a − ā)/‖a − ā‖ and b̂ likewise, ZNCC = â·b̂ and so

    Z = ½ ‖â − b̂‖²,

a sum of squares: a fit maximising ZNCC is a least-squares problem in the residual r = â − b̂,
blind to the intensity scale and offset of either image, and its Gauss–Newton curvature
(½ ∂²Z/∂p∂q ≈ JᵀJ) gives the parameters' covariance s²(JᵀJ)⁻¹ with s² = ‖r‖²/(n − p).
Neighbouring residuals are correlated (blur, model error), so that covariance is multiplied by
the residual's integrated autocorrelation (:func:`correlation_factor`: n over the effective
number of independent pixels, as for correlated samples).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "normalise",
    "residual",
    "z_columns",
    "interp_thickness",
    "parabola_vertex",
    "correlation_factor",
]


def normalise(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """(v − v̄)/‖v − v̄‖ along ``axis`` (a constant vector gives zeros)."""
    d = v - v.mean(axis=axis, keepdims=True)
    n = np.sqrt((d * d).sum(axis=axis, keepdims=True))
    return d / np.where(n > 0, n, 1.0)


def residual(model: np.ndarray, exp_hat: np.ndarray) -> np.ndarray:
    """r = â − b̂ for a model's masked pixels ``model`` and the normalised experiment ``exp_hat``."""
    return normalise(np.asarray(model, dtype=np.float64)) - exp_hat


def z_columns(models: np.ndarray, exp_hat: np.ndarray) -> np.ndarray:
    """Z = 1 − ZNCC of each column of ``models`` (pixels, n) against ``exp_hat`` (pixels,)."""
    return 1.0 - normalise(models, axis=0).T @ exp_hat


def interp_thickness(stack: np.ndarray, grid: np.ndarray, t: float) -> np.ndarray:
    """The stack at thickness ``t`` by cubic convolution along its (uniform) thickness grid.

    Parameters
    ----------
    stack : ndarray, shape (n_t, ...)
        Intensities at thicknesses ``grid`` [nm] (uniformly spaced, n_t ≥ 4).
    grid : ndarray, shape (n_t,)
    t : float
        [nm], within grid[1] … grid[-2].
    """
    from lacbed.refine.geometry import keys_kernel

    step = grid[1] - grid[0]
    f = (t - grid[0]) / step
    i0 = int(np.clip(np.floor(f), 1, len(grid) - 3))
    idx = np.arange(i0 - 1, i0 + 3)
    w = keys_kernel(f - idx)
    return np.tensordot(w, stack[idx], axes=(0, 0))


def parabola_vertex(x: np.ndarray, y: np.ndarray, i: int) -> float:
    """Abscissa of the vertex of the parabola through points i−1, i, i+1 (x uniform)."""
    if i <= 0 or i >= len(x) - 1:
        return float(x[i])
    y0, y1, y2 = y[i - 1], y[i], y[i + 1]
    den = y0 - 2 * y1 + y2
    if den <= 0:
        return float(x[i])
    return float(x[i] + 0.5 * (x[1] - x[0]) * (y0 - y2) / den)


def correlation_factor(resid: np.ndarray, mask: np.ndarray, reach: int = 3) -> float:
    """Integrated autocorrelation of a residual image: Σ ρ(Δ) over lags |Δr|, |Δc| ≤ reach.

    ρ is the residual's autocorrelation (masked pixels, normalised by the overlap of the mask
    with its shifted self, ρ(0) = 1). For independent pixels the sum is 1; the variance of a fitted
    parameter grows by about this factor when neighbouring residuals are correlated.

    Parameters
    ----------
    resid : ndarray, shape (n,)
        Residuals of the masked pixels (row-major order of ``mask``).
    mask : ndarray of bool, shape (rows, cols)
    reach : int
        Largest lag summed [pixels].

    Returns
    -------
    float
        ≥ 1 [-].
    """
    img = np.zeros(mask.shape)
    img[mask] = resid - resid.mean()
    shape = (2 * mask.shape[0], 2 * mask.shape[1])
    ac = np.fft.irfft2(np.abs(np.fft.rfft2(img, shape)) ** 2, shape)
    overlap = np.fft.irfft2(np.abs(np.fft.rfft2(mask.astype(np.float64), shape)) ** 2, shape)
    lags = np.arange(-reach, reach + 1)
    rows, cols = np.meshgrid(lags % shape[0], lags % shape[1], indexing="ij")
    if ac[0, 0] <= 0:
        return 1.0
    rho = (ac[rows, cols] / np.maximum(overlap[rows, cols], 1.0)) / (ac[0, 0] / overlap[0, 0])
    return float(max(1.0, rho.sum()))
