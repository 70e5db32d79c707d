"""The :class:`LacbedPattern` result object returned by :func:`lacbed.simulate.simulate_lacbed`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LacbedPattern"]


@dataclass(frozen=True, eq=False)
class LacbedPattern:
    """A bright-field (000) LACBED pattern, or a stack of discs, for one or more thicknesses.

    Pixel convention as Felix (docs/physics.md §6): ``intensities[t, row, col]``, col → +x = [100],
    row → +y = [010], zone axis at the image centre (between pixels).

    Attributes
    ----------
    intensities : ndarray, shape (n_thickness, size, size) or (n_g, n_thickness, size, size)
        I₀₀₀ [-] (fraction of the incident intensity); with ``reflections`` set, I_g of each
        reflection g over the same incident directions (Felix's dark-field discs,
        docs/physics.md §6).
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
    reflections : ndarray, shape (n_g, 3), int, or None
        Miller indices of the discs in ``intensities`` (axis 0); None for a bright-field pattern.
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
    reflections: np.ndarray | None = None

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
        """The pattern at the listed thickness closest to ``thickness_nm``, shape (size, size).

        With ``reflections`` set: every disc at that thickness, shape (n_g, size, size).
        """
        i = int(np.argmin(np.abs(self.thickness_nm - thickness_nm)))
        return self.intensities[i] if self.reflections is None else self.intensities[:, i]

    def disc(self, hkl) -> np.ndarray:
        """The disc of one reflection (h, k, l) or "2-20", shape (n_thickness, size, size) [-].

        Raises
        ------
        KeyError
            The reflection is not in ``reflections`` (a bright-field pattern holds only 000).
        """
        from lacbed.simulate.reflections import hkl_label, parse_hkl

        want = parse_hkl(hkl) if isinstance(hkl, str) else tuple(int(x) for x in hkl)
        if self.reflections is None:
            if want == (0, 0, 0):
                return np.asarray(self.intensities)
            raise KeyError(f"a bright-field pattern has no {hkl_label(want)} disc")
        for i, h in enumerate(np.asarray(self.reflections)):
            if tuple(int(x) for x in h) == want:
                return self.intensities[i]
        raise KeyError(f"reflection {hkl_label(want)} was not simulated")
