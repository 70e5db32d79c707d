"""Mapping a simulated pattern onto the experiment's pixels (pure array functions).

An experiment pixel at array index (r, c) sees the incident tilt

    (k_x, k_y) = s · R(φ) · (c − c₀, r − r₀),

with (r₀, c₀) the zone-axis position in the image [pixels] (the pattern-centre tilt is its
offset from the disc centre), φ the rotation of the image's column axis from [100] about the zone
axis [deg], and s the sampling [1/Å per pixel]. The simulation is a grid of tilts (pixel
convention of docs/physics.md §6: k = (i − N + ½) W/N); it is sampled at those tilts by cubic
convolution (Keys 1981, a = −½), as a sparse matrix so a whole thickness stack is mapped by one
product. The detector's point spread is a Gaussian of σ [pixels] applied in the image frame.

References
----------
.. [1] R. Keys, "Cubic convolution interpolation for digital image processing", IEEE Trans.
   ASSP 29, 1153 (1981).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage, sparse

__all__ = [
    "Alignment",
    "pixel_tilts",
    "subpixel_offsets",
    "interpolation_matrix",
    "render",
    "KEYS_A",
    "keys_kernel",
]

#: The cubic-convolution parameter a of Keys (1981) [-].
KEYS_A: float = -0.5


@dataclass(frozen=True)
class Alignment:
    """Geometry of the experiment relative to the simulation.

    Attributes
    ----------
    row, col : float
        Zone-axis position in the image (array indices) [pixels].
    angle : float
        Rotation φ of the image's column axis from [100] about [001] [deg].
    scale : float
        Sampling s [1/Å per pixel].
    blur : float
        Gaussian point spread σ of the detector [pixels].
    """

    row: float
    col: float
    angle: float
    scale: float
    blur: float = 0.0

    def as_dict(self) -> dict:
        """Plain floats (JSON)."""
        return {k: float(v) for k, v in asdict(self).items()}


def pixel_tilts(rows: np.ndarray, cols: np.ndarray, al: Alignment) -> np.ndarray:
    """Tangential tilts (k_x, k_y) [1/Å] seen by image pixels, shape (n, 2) (module formula)."""
    dc = np.asarray(cols, dtype=np.float64) - al.col
    dr = np.asarray(rows, dtype=np.float64) - al.row
    phi = np.deg2rad(al.angle)
    cs, sn = np.cos(phi), np.sin(phi)
    return al.scale * np.stack([cs * dc - sn * dr, sn * dc + cs * dr], axis=-1)


def subpixel_offsets(n: int) -> np.ndarray:
    """Midpoint-rule offsets (j + ½)/n − ½, j = 0 … n−1, of n points per pixel side [px]."""
    if int(n) != n or n < 1:
        raise ValueError(f"the supersample must be a positive integer, got {n!r}")
    return (np.arange(int(n)) + 0.5) / int(n) - 0.5


def keys_kernel(x: np.ndarray) -> np.ndarray:
    """Keys' cubic-convolution kernel at offsets x [pixels]."""
    a = KEYS_A
    ax = np.abs(x)
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return np.where(ax <= 1, near, np.where(ax < 2, far, 0.0))


def interpolation_matrix(kt: np.ndarray, size: int, half_width: float):
    """Sparse matrix sampling a (size, size) simulation at tilts ``kt`` by cubic convolution.

    Parameters
    ----------
    kt : ndarray, shape (n, 2)
        Tilts (k_x, k_y) [1/Å].
    size : int
        Simulation side 2N [pixels].
    half_width : float
        Simulation half-width W [1/Å].

    Returns
    -------
    matrix : scipy.sparse.csr_matrix, shape (n, size²)
        Row i holds the 16 weights of point i (row-major simulation pixels); zero when outside.
    inside : ndarray of bool, shape (n,)
        The point has all 16 neighbours in the simulation.
    """
    n = size // 2
    step = half_width / n
    fc = kt[:, 0] / step + n - 0.5  # fractional column index
    fr = kt[:, 1] / step + n - 0.5
    c0 = np.floor(fc).astype(np.int64)
    r0 = np.floor(fr).astype(np.int64)
    inside = (c0 >= 1) & (c0 <= size - 3) & (r0 >= 1) & (r0 <= size - 3)
    offs = np.arange(-1, 3)
    wc = keys_kernel(fc[:, None] - (c0[:, None] + offs))  # (n, 4)
    wr = keys_kernel(fr[:, None] - (r0[:, None] + offs))
    cols = np.clip(c0[:, None] + offs, 0, size - 1)
    rows = np.clip(r0[:, None] + offs, 0, size - 1)
    w = (wr[:, :, None] * wc[:, None, :]) * inside[:, None, None]
    idx = rows[:, :, None] * size + cols[:, None, :]
    pts = np.repeat(np.arange(len(kt)), 16)
    mat = sparse.csr_matrix((w.reshape(-1), (pts, idx.reshape(-1))), shape=(len(kt), size * size))
    return mat, inside


def render(
    stack: np.ndarray,
    half_width: float,
    shape: tuple[int, int],
    al: Alignment,
    supersample: int = 1,
    offset: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The simulation(s) as the experiment would record them (before background and noise).

    Parameters
    ----------
    stack : ndarray, shape (n_t, size, size) or (size, size)
        Simulated intensities [-].
    half_width : float
        Their half-width W [1/Å].
    shape : (rows, cols)
        Image shape [pixels].
    al : Alignment
        Geometry and blur.
    supersample : int
        Each pixel is the mean of ``supersample`` × ``supersample`` sampled points over its area
        (midpoint rule, :func:`subpixel_offsets`); 1: its centre.
    offset : ndarray, shape ``shape``, optional
        Added to every frame before the blur (the fit's correction towards the directly solved
        pixels, :mod:`lacbed.refine.fit`).

    Returns
    -------
    images : ndarray, shape (n_t, rows, cols) (or (rows, cols))
        Sampled, then blurred by σ = ``al.blur``; pixels outside the simulation hold the mean of
        those inside (the caller masks them).
    covered : ndarray of bool, shape (rows, cols)
        Pixels inside the simulation.
    """
    stack = np.asarray(stack, dtype=np.float64)
    single = stack.ndim == 2
    stack = stack[None] if single else stack
    n_t, size = stack.shape[0], stack.shape[-1]
    rr, cc = np.indices(shape)
    off = subpixel_offsets(supersample)
    mat, inside = None, np.ones(rr.size, dtype=bool)
    for dv in off:
        for du in off:
            kt = pixel_tilts(rr.ravel() + dv, cc.ravel() + du, al)
            m, ins = interpolation_matrix(kt, size, half_width)
            mat = m if mat is None else mat + m
            inside &= ins
    mat = mat / len(off) ** 2
    flat = np.asarray(mat @ stack.reshape(n_t, -1).T).T  # (n_t, rows*cols)
    if inside.any():
        fill = flat[:, inside].mean(axis=1, keepdims=True)
        flat = np.where(inside[None, :], flat, fill)
    images = flat.reshape(n_t, *shape)
    if offset is not None:
        images = images + np.asarray(offset, dtype=np.float64)[None]
    if al.blur > 0:
        images = ndimage.gaussian_filter(images, (0.0, al.blur, al.blur), mode="nearest")
    covered = inside.reshape(shape)
    return (images[0] if single else images), covered
