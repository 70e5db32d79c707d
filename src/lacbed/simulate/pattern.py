"""The :class:`LacbedPattern` result object returned by :func:`lacbed.simulate.simulate_lacbed`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LacbedPattern"]


@dataclass(frozen=True, eq=False)
class LacbedPattern:
    """A bright-field (000) LACBED pattern for one or more thicknesses.

    Pixel convention as Felix (docs/physics.md §6): ``intensities[t, row, col]``, col → +x = [100],
    row → +y = [010], zone axis at the image centre (between pixels).

    Attributes
    ----------
    intensities : ndarray, shape (n_thickness, size, size)
        I₀₀₀ [-] (fraction of the incident intensity).
    thickness_nm : ndarray, shape (n_thickness,)
        Specimen thicknesses [nm].
    kx : ndarray, shape (size,)
        Tangential incident wave-vector component of each column [1/Å].
    ky : ndarray, shape (size,)
        Tangential incident wave-vector component of each row [1/Å].
    wavelength : float
        Electron wavelength [Å] (converts tilts to angles: θ ≈ λ|k_t|).
    beams : ndarray, shape (n_beams, 3)
        Miller indices of the strong beams used (the union when beam sets vary across the pattern).
    settings : dict
        All resolved settings (JSON-serialisable): voltage, size, half-width, scattering,
        absorption, beam budget, solver, crystal description, ...
    timings : dict
        Wall time of each stage [s].
    version : str
        lacbed version that made the pattern.
    """

    intensities: np.ndarray
    thickness_nm: np.ndarray
    kx: np.ndarray
    ky: np.ndarray
    wavelength: float
    beams: np.ndarray
    settings: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    version: str = ""

    @property
    def size(self) -> int:
        """Pattern side length [pixels]."""
        return int(self.intensities.shape[-1])

    @property
    def tilt_x_mrad(self) -> np.ndarray:
        """Beam tilt of each column [mrad], θ ≈ λ k_x."""
        return 1e3 * self.wavelength * self.kx

    @property
    def tilt_y_mrad(self) -> np.ndarray:
        """Beam tilt of each row [mrad], θ ≈ λ k_y."""
        return 1e3 * self.wavelength * self.ky

    def at(self, thickness_nm: float) -> np.ndarray:
        """The pattern at the listed thickness closest to ``thickness_nm``, shape (size, size)."""
        i = int(np.argmin(np.abs(self.thickness_nm - thickness_nm)))
        return self.intensities[i]
