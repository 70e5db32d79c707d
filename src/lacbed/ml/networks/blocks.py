"""Building blocks shared by the networks: residual blocks and FiLM conditioning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FiLM", "MirrorConv", "ResBlock", "conv3"]


def conv3(
    c_in: int, c_out: int, *, stride: int = 1, circular: bool = False, mirror: bool = False
) -> nn.Conv2d:
    """3×3 convolution; circular padding for periodic inputs (the unit-cell potential);
    ``mirror`` for the top-left quadrant of a 2mm-symmetric map (:class:`MirrorConv`)."""
    if mirror:
        return MirrorConv(c_in, c_out)
    return nn.Conv2d(
        c_in, c_out, 3, stride=stride, padding=1, padding_mode="circular" if circular else "zeros"
    )


class MirrorConv(nn.Conv2d):
    """3×3 convolution of the top-left quadrant of a map with mirrors between its central rows
    and columns (the [001] bright field of a cubic crystal, :func:`lacbed.ml.networks.resae.unfold`).

    Beyond the outer (top, left) edges it pads zeros, as a convolution of the whole map does;
    beyond the inner (bottom, right) edges it pads the mirror image, which for a mirror between
    pixels is the edge row or column itself. The result is exactly the top-left quadrant of the
    zero-padded convolution of the unfolded map (tested), so a quadrant decoder built from it has
    no seam at the mirrors.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 3, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 1, 0, 1), mode="replicate")  # inner edges: the mirror image
        return super().forward(F.pad(x, (1, 0, 1, 0)))  # outer edges: zeros


class FiLM(nn.Module):
    """Feature-wise linear modulation h ← h·(1 + γ(c)) + β(c) (Perez et al., AAAI 2018).

    The last layer starts at zero, so an untrained FiLM is the identity.
    """

    def __init__(self, n_cond: int, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_cond, hidden), nn.SiLU(), nn.Linear(hidden, 2 * channels)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.net(cond).chunk(2, dim=-1)  # (batch, channels) each
        shape = (h.shape[0], -1) + (1,) * (h.ndim - 2)
        return h * (1.0 + gamma.view(shape)) + beta.view(shape)


class ResBlock(nn.Module):
    """Pre-activation residual block: GroupNorm → SiLU → conv, twice, optional FiLM."""

    def __init__(
        self,
        channels: int,
        *,
        n_cond: int = 0,
        circular: bool = False,
        mirror: bool = False,
        groups: int = 8,
    ) -> None:
        super().__init__()
        g = min(groups, channels)
        self.norm1 = nn.GroupNorm(g, channels)
        self.conv1 = conv3(channels, channels, circular=circular, mirror=mirror)
        self.norm2 = nn.GroupNorm(g, channels)
        self.conv2 = conv3(channels, channels, circular=circular, mirror=mirror)
        self.film = FiLM(n_cond, channels) if n_cond else None
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.norm2(h)
        if self.film is not None and cond is not None:
            h = self.film(h, cond)
        h = self.conv2(self.act(h))
        return x + h
