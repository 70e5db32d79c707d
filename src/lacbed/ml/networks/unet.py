"""A U-Net with a global-context bottleneck and FiLM conditioning.

Skip connections carry local detail; the bottleneck adds a globally pooled summary of the whole
cell to every position (a global receptive field at the coarsest level), and FiLM injects the
thickness and the lattice parameter. Reference for the U-Net layout: O. Ronneberger, P. Fischer
and T. Brox, MICCAI (2015).
"""

from __future__ import annotations

import torch
from torch import nn

from lacbed.ml.config import ModelConfig
from lacbed.ml.networks.blocks import ResBlock, conv3
from lacbed.ml.networks.resae import N_COND

__all__ = ["UNet"]


class UNet(nn.Module):
    """Residual U-Net, ``depth`` levels, channels width·2^i (capped at 128)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w, d = config.width, config.depth
        n_cond = N_COND if config.conditioned else 0
        chans = [min(w * 2**i, 128) for i in range(d + 1)]
        self.stem = conv3(config.in_channels, chans[0], circular=True)
        # no residual block at full resolution (level 0): it would dominate the cost on a CPU
        self.enc = nn.ModuleList(
            [ResBlock(chans[i], n_cond=n_cond, circular=True) if i else None for i in range(d)]
        )
        self.downs = nn.ModuleList(
            [conv3(chans[i], chans[i + 1], stride=2, circular=True) for i in range(d)]
        )
        top = chans[-1]
        self.mid1 = ResBlock(top, n_cond=n_cond)
        self.context = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(top, config.latent),
            nn.SiLU(),
            nn.Linear(config.latent, top),
        )
        self.mid2 = ResBlock(top, n_cond=n_cond)
        self.ups = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), conv3(chans[i + 1], chans[i])
                )
                for i in reversed(range(d))
            ]
        )
        self.merge = nn.ModuleList(
            [nn.Conv2d(2 * chans[i], chans[i], 1) for i in reversed(range(d))]
        )
        self.dec = nn.ModuleList(
            [ResBlock(chans[i], n_cond=n_cond) if i else None for i in reversed(range(d))]
        )
        self.head = nn.Sequential(
            nn.GroupNorm(min(8, chans[0]), chans[0]), nn.SiLU(), nn.Conv2d(chans[0], 1, 1)
        )

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, *, generator=None
    ) -> dict[str, torch.Tensor]:
        h = self.stem(x)
        skips = []
        for block, down in zip(self.enc, self.downs, strict=True):
            if block is not None:
                h = block(h, cond)
            skips.append(h)
            h = down(h)
        h = self.mid1(h, cond)
        h = h + self.context(h)[:, :, None, None]  # global context broadcast to every position
        h = self.mid2(h, cond)
        for up, merge, block in zip(self.ups, self.merge, self.dec, strict=True):
            h = up(h)
            h = merge(torch.cat([h, skips.pop()], dim=1))
            if block is not None:
                h = block(h, cond)
        return {"pred": self.head(h)[:, 0]}
