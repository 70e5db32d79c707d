"""Training objectives in torch: Z = 1 − ZNCC per image, and the VAE's KL term.

References
----------
.. [1] R. Beanland et al., Acta Cryst. A77 (2021): Z = 1 − ZNCC, the Felix figure of merit
   (numpy version: :func:`lacbed.metrics.z_score`).
.. [2] D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR (2014), Appendix B:
   KL(N(μ, σ²) ‖ N(0, 1)) = −½ Σ (1 + log σ² − μ² − σ²).
"""

from __future__ import annotations

import torch

__all__ = ["z_per_image", "z_loss", "kl_divergence", "standardize"]

_EPS = 1e-8


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit population standard deviation over the last two axes.

    A constant image becomes all zeros (its ZNCC is defined as 0, as in :mod:`lacbed.metrics`).
    """
    mu = x.mean(dim=(-2, -1), keepdim=True)
    d = x - mu
    sd = d.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt()
    return d / sd.clamp_min(_EPS)


def z_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Z = 1 − ZNCC of each image, ZNCC = Σ(a−ā)(b−b̄) / (N σ_a σ_b) (population σ) [1].

    Parameters
    ----------
    pred, target : Tensor, shape (..., rows, cols)

    Returns
    -------
    Tensor, shape (...)
        Z in [0, 2]; differentiable. A constant image gives ZNCC = 0, i.e. Z = 1.
    """
    da = pred - pred.mean(dim=(-2, -1), keepdim=True)
    db = target - target.mean(dim=(-2, -1), keepdim=True)
    num = (da * db).mean(dim=(-2, -1))
    va = da.pow(2).mean(dim=(-2, -1))
    vb = db.pow(2).mean(dim=(-2, -1))
    den = torch.sqrt(va * vb + _EPS**2)
    zncc = torch.where(den > _EPS, num / den, torch.zeros_like(num))
    return 1.0 - zncc


def z_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Z over a batch (scalar)."""
    return z_per_image(pred, target).mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over the latent, averaged over the batch [2]."""
    # (batch, latent) -> (batch,)
    kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)
    return kl.mean()
