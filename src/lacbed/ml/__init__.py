"""Neural surrogates (PyTorch + Lightning; optional extra ``lacbed[ml]``).

The only subpackage that imports torch. Pieces (nanoGPT style): :mod:`~lacbed.ml.config`
(frozen configuration), :mod:`~lacbed.ml.data` (store → tensors, normalisation),
:mod:`~lacbed.ml.networks` (VAE, residual encoder–decoder, U-Net), :mod:`~lacbed.ml.losses`
(Z = 1 − ZNCC, KL), :mod:`~lacbed.ml.training` (LightningModule and Trainer),
:mod:`~lacbed.ml.model` (model files), :mod:`~lacbed.ml.evaluate`, :mod:`~lacbed.ml.predict`.
See docs/ml.md.
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    from lacbed.errors import LacbedError

    raise LacbedError("lacbed.ml needs PyTorch and Lightning: pip install 'lacbed[ml]'") from exc
