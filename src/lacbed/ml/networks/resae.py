"""A deeper residual encoder–decoder with a larger latent and FiLM conditioning."""

from __future__ import annotations

import torch
from torch import nn

from lacbed.ml.config import ModelConfig
from lacbed.ml.networks.blocks import FiLM, ResBlock, conv3

__all__ = ["ResAE", "N_COND", "unfold"]

#: Conditioning vector: (thickness / thickness_scale, a / a_scale).
N_COND = 2


class ResAE(nn.Module):
    """Residual encoder → global average pool → latent → residual decoder.

    The encoder uses circular padding: the input is one period of the projected potential, so
    a change of cell origin is a circular shift, and with the global pooling the latent is
    (up to the stride) independent of the arbitrary origin — the 000 pattern is too.
    The decoder grows a (width·2^(depth−1)) × 4 × 4 seed back to size × size, with a FiLM on
    (thickness, lattice parameter) in every block when ``conditioned``. With
    ``config.quadrant`` it grows one quadrant and unfolds it by the 2mm mirrors (:func:`unfold`);
    with ``config.mirror_pad`` too, its convolutions pad the mirror image at the quadrant's inner
    edges (:class:`~lacbed.ml.networks.blocks.MirrorConv`): the decoder of a full pattern whose
    features are 2mm-symmetric, without a seam at the mirrors.
    """

    #: the encoder sees the potential only (no thickness), so one encoding serves every
    #: thickness of a series (:func:`lacbed.ml.model.run_model_series`)
    shared_encoding = True

    def __init__(self, config: ModelConfig, *, conv_encoder: bool = True) -> None:
        super().__init__()
        self.config = config
        w, d = config.width, config.depth
        s = config.size // 2 if config.quadrant else config.size  # decoded side
        n_cond = N_COND if config.conditioned else 0
        chans = [min(w * 2**i, 128) for i in range(d + 1)]  # channels per level
        if conv_encoder:
            self._build_encoder(chans)
        self.latent_film = FiLM(n_cond, config.latent) if n_cond else None
        self.seed = s // 2**d
        self.from_latent = nn.Linear(config.latent, chans[-1] * self.seed**2)
        self.up = nn.ModuleList()
        for i in reversed(range(d)):
            self.up.append(
                nn.ModuleList(
                    [
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        conv3(chans[i + 1], chans[i], mirror=config.mirror_pad),
                        ResBlock(chans[i], n_cond=n_cond, mirror=config.mirror_pad)
                        if i > 0
                        else None,
                    ]
                )
            )
        self.head = nn.Sequential(
            nn.GroupNorm(min(8, chans[0]), chans[0]), nn.SiLU(), nn.Conv2d(chans[0], 1, 1)
        )
        self._top = chans[-1]

    def _build_encoder(self, chans: list[int]) -> None:
        d = self.config.depth
        self.stem = conv3(self.config.in_channels, chans[0], circular=True)
        self.down = nn.ModuleList()
        for i in range(d):
            self.down.append(
                nn.ModuleList(
                    [
                        # no residual block at full resolution: it would dominate the cost
                        ResBlock(chans[i], circular=True) if i > 0 else nn.Identity(),
                        conv3(chans[i], chans[i + 1], stride=2, circular=True),
                    ]
                )
            )
        self.to_latent = nn.Sequential(
            nn.GroupNorm(min(8, chans[-1]), chans[-1]),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(chans[-1], self.config.latent),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, s, s) → latent (batch, latent)."""
        h = self.stem(x)  # (batch, w, s, s)
        for block, down in self.down:
            h = down(block(h))
        return self.to_latent(h)

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Latent (batch, latent) → pattern (batch, s, s)."""
        if self.latent_film is not None and cond is not None:
            z = self.latent_film(z, cond)
        h = self.from_latent(z).view(-1, self._top, self.seed, self.seed)
        for up, conv, block in self.up:
            h = conv(up(h))
            if block is not None:
                h = block(h, cond)
        out = self.head(h)[:, 0]  # (batch, s, s), or one quadrant (batch, s/2, s/2)
        return unfold(out) if self.config.quadrant else out

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, *, generator=None
    ) -> dict[str, torch.Tensor]:
        return {"pred": self.decode(self.encode(x), cond)}


def unfold(quadrant: torch.Tensor) -> torch.Tensor:
    """(batch, n, n) top-left quadrant → (batch, 2n, 2n) pattern with both mirrors through the
    centre. The zone axis lies between the central pixels, so each mirror is a plain flip."""
    top = torch.cat([quadrant, quadrant.flip(-1)], dim=-1)
    return torch.cat([top, top.flip(-2)], dim=-2)
