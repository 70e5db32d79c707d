"""An encoder on the Fourier coefficients of the projected potential, with the ResAE decoder.

Physics behind it: the projected potential is the Fourier synthesis
V_p(x, y) = c Σ V_hk0 exp(2πi(hx + ky)/a) (docs/physics.md §2), so the 2-D FFT of the input image
returns c·V_hk0 on integer (h, k). The 000 LACBED pattern is shaped by the strengths of the
zero-layer reflections (their Bragg lines lie at fixed positions in units of 1/a, because the
pattern's half-width is 4/a) and, through the Ewald sphere, by a and the thickness. The encoder
therefore sees |c·V_hk0| for |h|, |k| ≤ ``modes``, which is independent of the arbitrary cell
origin (a shift only changes phases), plus the conditioning (t, a).
"""

from __future__ import annotations

import torch
from torch import nn

from lacbed.ml.config import ModelConfig
from lacbed.ml.networks.resae import N_COND, ResAE

__all__ = ["SpectralAE", "fourier_magnitudes"]


def fourier_magnitudes(x: torch.Tensor, modes: int, potential_scale: float) -> torch.Tensor:
    """|c·V_hk0| / potential_scale for |h|, |k| ≤ modes from the normalised input image.

    Parameters
    ----------
    x : Tensor, shape (batch, 1, S, S)
        asinh(V_p / potential_scale) (see :mod:`lacbed.ml.data`).

    Returns
    -------
    Tensor, shape (batch, (2·modes + 1)²)
    """
    v = torch.sinh(x[:, 0])  # V_p / scale
    s = v.shape[-1]
    f = torch.fft.fft2(v) / (s * s)  # (batch, S, S): c·V_hk / scale at [k, h]
    idx = torch.cat([torch.arange(0, modes + 1), torch.arange(s - modes, s)])
    f = f[:, idx][:, :, idx]  # (batch, 2m+1, 2m+1)
    return f.abs().flatten(1)


class SpectralAE(ResAE):
    """MLP on Fourier magnitudes (+ conditioning) → latent → the :class:`ResAE` decoder."""

    shared_encoding = False  # the conditioning enters the encoder

    def __init__(self, config: ModelConfig, *, potential_scale: float = 100.0) -> None:
        super().__init__(config, conv_encoder=False)
        self.potential_scale = potential_scale
        n_in = (2 * config.modes + 1) ** 2 + (N_COND if config.conditioned else 0)
        hidden = 512
        self.mlp = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.LayerNorm(hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.SiLU(),
            nn.Linear(hidden, config.latent),
        )

    def encode_features(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        # compress the dynamic range: strong reflections are ~100× the weak ones
        f = torch.asinh(100.0 * fourier_magnitudes(x, self.config.modes, 1.0))
        if self.config.conditioned and cond is not None:
            f = torch.cat([f, cond], dim=1)
        return f

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, *, generator=None
    ) -> dict[str, torch.Tensor]:
        z = self.mlp(self.encode_features(x, cond))  # (batch, latent)
        return {"pred": self.decode(z, cond)}
