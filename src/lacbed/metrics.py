"""Image similarity measures (numpy only).

References
----------
.. [1] R. Beanland et al., Acta Cryst. A77 (2021): the Z = 1 − ZNCC figure of merit used by Felix.
"""

from __future__ import annotations

import numpy as np

__all__ = ["zncc", "z_score"]


def zncc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Zero-mean normalised cross-correlation over the last two axes.

    ZNCC = Σ(a−ā)(b−b̄) / (N σ_a σ_b), population standard deviations, no mask, no alignment.

    Parameters
    ----------
    a, b : ndarray, shape (..., rows, cols)
        Images; leading axes broadcast.

    Returns
    -------
    ndarray, shape (...)
        ZNCC in [−1, 1]. A constant image has no defined ZNCC; it is returned as 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError("zncc needs images with at least two dimensions")
    da = a - a.mean(axis=(-2, -1), keepdims=True)
    db = b - b.mean(axis=(-2, -1), keepdims=True)
    num = (da * db).mean(axis=(-2, -1))
    den = np.sqrt((da**2).mean(axis=(-2, -1)) * (db**2).mean(axis=(-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return out


def z_score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Z = 1 − ZNCC over the last two axes (0: identical, 1: uncorrelated).

    Multiply by 100 for the percentage that Felix and the study report.
    """
    return 1.0 - zncc(a, b)
