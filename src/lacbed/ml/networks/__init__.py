"""Surrogate networks: ``build_network(config)`` returns the ``nn.Module`` for a model config.

Every network maps ``x`` (batch, 1, size, size) and an optional conditioning vector
``cond`` (batch, 2) to a dict with ``"pred"`` (batch, size, size) (and ``"mu"``, ``"logvar"``
for the VAE).
"""

from __future__ import annotations

from torch import nn

from lacbed.ml.config import ModelConfig
from lacbed.ml.networks.resae import ResAE
from lacbed.ml.networks.spectral import SpectralAE
from lacbed.ml.networks.unet import UNet
from lacbed.ml.networks.vae import VAE

__all__ = ["build_network", "VAE", "ResAE", "SpectralAE", "UNet"]


def build_network(config: ModelConfig) -> nn.Module:
    """The network described by ``config``."""
    nets = {"vae": VAE, "cvae": VAE, "resae": ResAE, "unet": UNet, "spectral": SpectralAE}
    return nets[config.name](config)
