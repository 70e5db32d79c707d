"""Projected potential of one unit cell along [001] by Fourier synthesis over the zero layer.

    V_p(x, y) = ∫₀^c V(x, y, z) dz = c Σ_{h,k} V_{hk0} e^{2πi(hx + ky)/a}    [V·Å]

(docs/physics.md §2; Kirkland 2010, Ch. 5). The image is sampled at x = col·a/size, y = row·a/size
(``arr[row, col]``), i.e. pixel (0, 0) is the cell origin.

Truncation: all (h, k) with |h|, |k| < size/2 are summed, i.e. the image is the potential
band-limited to the grid's Nyquist frequency. Each coefficient then falls on its own FFT bin, so
nothing aliases, the image is exactly real and keeps every symmetry of the plane group that maps
the grid onto itself (p4mm for Si [001]), and its mean is exactly c·V₀₀₀. The crystal's
Debye–Waller factors smooth the atoms; for B ≳ 0.3 Å² and a ≲ 6 Å at size 128 the omitted
terms (|g| > size/(2a) ≈ 10 1/Å) are below 1e-3 of the largest coefficient. For a large cell or a
static lattice (B = 0) the truncation shows as ringing around the atoms.

Other zone axes [UVW] (``zone_axis=``; docs/zone_axes.md): with z = [UVW]/gcd the primitive
integer direction, the zero layer {h : h·z = 0} is a 2D lattice with covolume |z|/a², spanned by
b₁ (the default x-direction of :func:`lacbed.crystal.orientation.default_x_direction`) and the
shortest b₂ with b₁ × b₂ = z (:func:`projection_cell`). Integrating over one period L = a|z| along
the axis,

    V_p(r) = ∫₀^L V(r + sẑ) ds = L Σ_{m,n} V_{m b₁ + n b₂} e^{2πi(m u + n v)},   r = a(u a₁ + v a₂),

with a₁, a₂ the real-space 2D cell dual to b₁, b₂ (a_i·b_j = δ_ij, in the plane ⊥ z), sampled at
u = col/size, v = row/size. For [001], b₁ = (1, 0, 0), b₂ = (0, 1, 0), L = a: the formula above.

Any other crystal system (issue 12): the zero layer {h : h·[UVW] = 0} is still a 2D lattice of
Miller indices (the condition does not involve the metric), b₁ is the shortest g in it (the
default x-direction with the metric), b₂ the shortest with b₁ × b₂ = z, and the Cartesian vectors
g = h @ (a*, b*, c*) give the dual cell a₁, a₂ in the plane ⊥ [UVW] and the period
L = |U a + V b + W c| (International Tables B, Section 1.1.2). Every non-cubic projection, [001]
included, is an (in general oblique) 2D cell.
"""

from __future__ import annotations

import numpy as np

from lacbed.errors import SettingsError

__all__ = ["projected_potential", "projection_cell", "zero_layer_indices"]


def projection_cell(zone_axis=(0, 0, 1), lattice=None) -> tuple[np.ndarray, np.ndarray, float]:
    """The 2D cell of the projection of a lattice along [UVW] (module notes).

    Parameters
    ----------
    zone_axis : sequence of 3 int
        [UVW] (not 0 0 0).
    lattice : ndarray, shape (3, 3), optional
        Cell vectors a, b, c as rows in units of a (``crystal.lattice / crystal.a``) of a
        crystal of any system; None: cubic (the identity).

    Returns
    -------
    b : ndarray, shape (2, 3), int
        Zero-layer basis b₁, b₂ (Miller indices), b₁ × b₂ = z = [UVW]/gcd.
    cell : ndarray, shape (2, 3)
        Real-space cell a₁, a₂ dual to b [units of a]: a_i·b_j = δ_ij, both ⊥ z.
    length : float
        Period along the axis L/a = |z| [units of a].
    """
    from lacbed.crystal.orientation import default_x_direction, orientation

    orientation(zone_axis)  # checks: three integers, not 0 0 0
    z = np.asarray(zone_axis, dtype=np.int64)
    z = z // np.gcd.reduce(np.abs(z))
    lat = np.eye(3) if lattice is None else np.asarray(lattice, dtype=np.float64)
    rec = np.eye(3) if lattice is None else np.linalg.inv(lat).T  # rows a*, b*, c* [1/a]
    b1 = np.asarray(default_x_direction(z, None if lattice is None else rec), dtype=np.int64)
    b2 = None
    for n in range(1, 64):
        r = np.arange(n, -n - 1, -1)
        cand = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
        ok = np.all(np.cross(b1, cand) == z, axis=1)
        if ok.any():
            c = cand[ok]
            gc = c @ rec
            n2 = np.sum(gc * gc, axis=1)
            # shortest, then lexicographically largest (ties within round-off for a metric)
            b2 = c[np.nonzero(n2 <= n2.min() * (1 + 1e-9))[0][0]]
            break
    b = np.stack([b1, b2])
    bf = b.astype(np.float64) @ rec  # Cartesian g of b₁, b₂ [1/a]
    cell = np.linalg.solve(bf @ bf.T, bf)  # rows a_i with a_i·b_j = δ_ij, in the plane of b
    return b, cell, float(np.linalg.norm(z @ lat))


def cell_in_units_of_a(crystal) -> np.ndarray | None:
    """``crystal.lattice / crystal.a`` of a non-cubic crystal, None for a cubic one."""
    return None if crystal.is_cubic else crystal.lattice / crystal.a


def zero_layer_indices(size: int) -> np.ndarray:
    """(h, k, 0) with |h|, |k| < size/2, shape ((2m+1)², 3), m = ⌈size/2⌉ − 1."""
    m = (int(size) - 1) // 2
    h = np.arange(-m, m + 1)
    hh, kk = np.meshgrid(h, h, indexing="xy")
    return np.stack([hh.ravel(), kk.ravel(), np.zeros(hh.size, dtype=np.int64)], axis=1)


def projected_potential(
    crystal,
    size: int = 128,
    *,
    scattering: str = "kirkland",
    b_iso: float | np.ndarray | None = None,
    zone_axis=(0, 0, 1),
) -> np.ndarray:
    """Projected potential of one cell along [001], or along [UVW] [V·Å].

    Parameters
    ----------
    crystal : lacbed.crystal.Crystal
        Crystal of any system (its Debye–Waller factors are used).
    size : int
        Pixels per side (≥ 8).
    scattering : str
        Scattering-factor parametrisation.
    b_iso : float, ndarray or None
        Override of the Debye–Waller factors B [Å²].
    zone_axis : sequence of 3 int
        Projection direction [UVW] (module notes); default [001].

    Returns
    -------
    ndarray, shape (size, size), float64
        ``arr[row, col]`` = V_p(x = col·a/size, y = row·a/size) [V·Å]; mean = c·V₀₀₀. Along
        [UVW]: V_p(a(u a₁ + v a₂)), u = col/size, v = row/size (:func:`projection_cell`), mean
        L·V₀₀₀ with L = a|z|.

    References
    ----------
    docs/physics.md §2; Kirkland (2010), Ch. 5 (projected potential).
    """
    from lacbed.scattering.structure_factors import structure_factors

    if isinstance(size, bool) or int(size) != size or int(size) < 8:
        raise SettingsError(f"size must be an integer >= 8 pixels, got {size!r}")
    size = int(size)
    mn = zero_layer_indices(size)  # (m, n, 0)
    basis, _, length = projection_cell(zone_axis, cell_in_units_of_a(crystal))
    hkl = mn[:, :1] * basis[0] + mn[:, 1:2] * basis[1]  # [001]: (m, n, 0) itself
    sf = structure_factors(crystal, hkl, scattering=scattering, absorption="none", b_iso=b_iso)
    coeff = np.zeros((size, size), dtype=np.complex128)  # [row ↔ n, col ↔ m]
    coeff[mn[:, 1] % size, mn[:, 0] % size] = sf.V
    # arr[r, c] = Σ V_mn e^{2πi(n r + m c)/size} = size² · ifft2(coeff)
    image = np.fft.ifft2(coeff).real * (size * size) * (crystal.a * length)
    return image
