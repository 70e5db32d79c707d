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
"""

from __future__ import annotations

import numpy as np

from lacbed.errors import SettingsError

__all__ = ["projected_potential", "zero_layer_indices"]


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
) -> np.ndarray:
    """Projected potential of one cell along [001] [V·Å].

    Parameters
    ----------
    crystal : lacbed.crystal.Crystal
        Cubic crystal (its Debye–Waller factors are used).
    size : int
        Pixels per side (≥ 8).
    scattering : str
        Scattering-factor parametrisation.
    b_iso : float, ndarray or None
        Override of the Debye–Waller factors B [Å²].

    Returns
    -------
    ndarray, shape (size, size), float64
        ``arr[row, col]`` = V_p(x = col·a/size, y = row·a/size) [V·Å]; mean = c·V₀₀₀.

    References
    ----------
    docs/physics.md §2; Kirkland (2010), Ch. 5 (projected potential).
    """
    from lacbed.scattering.structure_factors import structure_factors

    if isinstance(size, bool) or int(size) != size or int(size) < 8:
        raise SettingsError(f"size must be an integer >= 8 pixels, got {size!r}")
    size = int(size)
    hkl = zero_layer_indices(size)
    sf = structure_factors(crystal, hkl, scattering=scattering, absorption="none", b_iso=b_iso)
    coeff = np.zeros((size, size), dtype=np.complex128)  # [row ↔ k, col ↔ h]
    coeff[hkl[:, 1] % size, hkl[:, 0] % size] = sf.V
    # arr[r, c] = Σ V_hk e^{2πi(k r + h c)/size} = size² · ifft2(coeff)
    image = np.fft.ifft2(coeff).real * (size * size) * crystal.a
    return image
