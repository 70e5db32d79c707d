"""The study's baseline: a convolutional VAE (encoder and decoder each two layers deep, 12-d latent).

References
----------
.. [1] R. Beanland, "Machine Learning Calculation of Large Angle Convergent Beam Electron
   Diffraction Patterns" (conference abstract, University of Warwick): conv encoder/decoder
   2 layers deep, 12-d latent.
.. [2] D. P. Kingma and M. Welling, ICLR (2014): the reparameterisation z = μ + σ·ε.
"""

from __future__ import annotations

import torch
from torch import nn

from lacbed.ml.config import ModelConfig
from lacbed.ml.networks.resae import N_COND

__all__ = ["VAE"]


class VAE(nn.Module):
    """Potential image → 000 pattern through a Gaussian latent.

    Encoder: ``depth`` stride-2 4×4 convolutions (channels ``width``·2^i, ReLU) → flatten →
    linear to (μ, log σ²). Decoder: linear → ``depth`` stride-2 4×4 transposed convolutions.
    With the study's ``depth = 2`` a 128×128 input becomes 64 × 32 × 32 features.
    In evaluation mode the decoder uses z = μ (deterministic predictions).
    With ``config.conditioned`` (the ``cvae`` model) the decoder receives [z, cond], cond =
    (thickness, lattice parameter): the input image is in fractional coordinates, so without it
    the network cannot know a, which moves the HOLZ lines.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w, d, s = config.width, config.depth, config.size
        chans = [config.in_channels] + [w * 2**i for i in range(d)]
        enc: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            enc += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*enc)
        self.feat_shape = (chans[-1], s // 2**d, s // 2**d)
        n_feat = chans[-1] * (s // 2**d) ** 2
        self.to_stats = nn.Linear(n_feat, 2 * config.latent)
        n_cond = N_COND if config.conditioned else 0
        self.from_latent = nn.Linear(config.latent + n_cond, n_feat)
        dec: list[nn.Module] = []
        rev = chans[::-1]
        for i, (c_in, c_out) in enumerate(zip(rev[:-1], rev[1:], strict=True)):
            dec.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if i < d - 1:
                dec.append(nn.ReLU())
        self.decoder = nn.Sequential(*dec)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, *, generator=None
    ) -> dict[str, torch.Tensor]:
        h = self.encoder(x).flatten(1)  # (batch, n_feat)
        mu, logvar = self.to_stats(h).chunk(2, dim=-1)  # (batch, latent) each
        logvar = logvar.clamp(-20.0, 10.0)
        if self.training:
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        if self.config.conditioned:
            if cond is None:
                raise ValueError("a conditioned VAE needs the conditioning vector (t, a)")
            z = torch.cat([z, cond], dim=1)  # (batch, latent + 2)
        h = self.from_latent(z).view(-1, *self.feat_shape)
        out = self.decoder(h)[:, 0]  # (batch, size, size)
        return {"pred": out, "mu": mu, "logvar": logvar}
