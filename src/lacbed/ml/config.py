"""Configuration of a surrogate: the network, the input/target normalisation and the training.

All three are frozen dataclasses that round-trip through plain dicts, so a checkpoint carries the
full configuration (and the lacbed version) and can rebuild the model without any other file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from lacbed.errors import SettingsError

__all__ = [
    "AUGMENT_MODES",
    "MODEL_NAMES",
    "ModelConfig",
    "Normalisation",
    "TrainConfig",
    "default_model_config",
]

#: Training augmentations (:class:`TrainConfig`.augment).
AUGMENT_MODES: tuple[str, ...] = ("none", "ops", "shifts", "all")

#: Models the CLI knows, with one-line descriptions (shown by ``lacbed train --help``).
MODEL_NAMES: dict[str, str] = {
    "vae": "the study's VAE: 2-layer conv encoder/decoder, 12-d latent, loss Z + beta*KL",
    "cvae": "the VAE with (t, a) fed to its decoder and 4mm/2mm output averaging",
    "resae": "deeper residual encoder-decoder, 128-d latent, periodic padding, FiLM (t, a)",
    "unet": "U-Net with a global-context bottleneck and FiLM conditioning on (t, a)",
    "spectral": "MLP on the potential's Fourier magnitudes |V_hk0| + ResAE decoder, FiLM (t, a)",
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a surrogate network.

    Attributes
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    size : int
        Side of the input potential and the output pattern [pixels] (the study: 128).
    latent : int
        Latent dimension (VAE: 12, as the study; ``resae``: 128).
    width : int
        Channels of the first convolution; deeper levels double it.
    depth : int
        Down-sampling levels of the encoder (VAE: 2, as the study).
    beta : float
        Weight of the KL term of the VAE loss (ignored by the deterministic models).
    conditioned : bool
        Whether the network receives the thickness [nm] and the lattice parameter [Å] as a
        conditioning vector (FiLM). An unconditioned model serves one thickness.
    symmetrize : bool
        Average the output over the bright-field point group of each sample (4mm or 2mm,
        given per sample); a sample flagged 'none' is left as it is.
    modes : int
        Fourier orders |h|, |k| <= modes seen by the ``spectral`` encoder.
    physics_channel : bool
        Feed a second input channel computed from the crystal on the pattern's tilt grid at the
        sample's thickness (not for ``spectral``, whose encoder reads only Fourier magnitudes).
    physics_kind : {'bragg', 'fewbeam', 'coarse'}
        What that channel is: the two-beam map of the Bragg lines
        (:func:`lacbed.ml.physics.bragg_line_map`, ms), a few-beam engine run
        (:data:`lacbed.ml.physics.FEWBEAM_STRONG` strong beams; 0.8–55 s, mean 7 s on real
        materials) or a coarse one (:data:`lacbed.ml.physics.COARSE_STRONG` strong beams at half
        the pixels, upsampled; ~1–2 s): the multi-fidelity modes.
    residual : bool
        Predict a correction: the output is the network's plus the standardised physics
        channel (only with an engine run, 'fewbeam' or 'coarse': a residual on physics). The
        output layer of a fresh residual ``resae`` or ``unet`` starts at zero, so training
        starts from the physics run itself.
    quadrant : bool
        Decode one quadrant (size/2 × size/2) and unfold it by the two mirrors through the
        zone axis, which every bright-field [001] pattern of a cubic crystal has (2mm at least:
        Buxton et al. 1976): the output has them exactly and a ``resae`` forward pass costs less
        than half (the decoder's top levels dominate it). ``resae`` only.
    mirror_pad : bool
        With ``quadrant``: the decoder's convolutions pad the mirror image at the quadrant's
        inner edges instead of zeros (:class:`lacbed.ml.networks.blocks.MirrorConv`), so the
        quadrant decoder is exactly a full decoder with 2mm-symmetric features (no seam).
    """

    name: str = "vae"
    size: int = 128
    latent: int = 12
    width: int = 32
    depth: int = 2
    beta: float = 1e-3
    conditioned: bool = False
    symmetrize: bool = False
    modes: int = 8
    physics_channel: bool = False
    physics_kind: str = "bragg"
    residual: bool = False
    quadrant: bool = False
    mirror_pad: bool = False

    @property
    def physics_input(self) -> str | None:
        """The kind of physics channel, or None without one."""
        return self.physics_kind if self.physics_channel else None

    @property
    def in_channels(self) -> int:
        """Input channels: the potential, plus the physics map if enabled."""
        return 2 if self.physics_channel else 1

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise SettingsError(
                f"unknown model {self.name!r}; choose one of {', '.join(MODEL_NAMES)}"
            )
        if self.size < 16 or self.size % (2 ** max(self.depth, 1)) != 0:
            raise SettingsError(
                f"size {self.size} must be >= 16 and divisible by 2**depth = {2**self.depth}"
            )
        if self.latent < 1 or self.width < 1 or self.depth < 1:
            raise SettingsError("latent, width and depth must be positive integers")
        if not 1 <= self.modes < self.size // 2:
            raise SettingsError(f"modes must lie in 1..{self.size // 2 - 1}, got {self.modes}")
        if self.physics_channel and self.name == "spectral":
            raise SettingsError(
                "the spectral model reads only the potential's Fourier magnitudes; "
                "choose another model for --physics-channel"
            )
        if self.physics_kind not in ("bragg", "fewbeam", "coarse"):
            raise SettingsError(
                f"unknown physics channel {self.physics_kind!r}; choose bragg, fewbeam or coarse"
            )
        if self.residual and self.physics_input not in ("fewbeam", "coarse"):
            raise SettingsError(
                "a residual model needs an engine run as its physics channel (fewbeam or coarse)"
            )
        if self.quadrant and self.name != "resae":
            raise SettingsError(f"--quadrant is a resae decoder; {self.name!r} has none")
        if self.mirror_pad and not self.quadrant:
            raise SettingsError("--mirror-pad pads a quadrant decoder; add --quadrant")
        if self.quadrant and (self.size // 2) % (2**self.depth) != 0:
            raise SettingsError(f"a quadrant of {self.size} px is not divisible by 2**depth")
        if self.beta < 0:
            raise SettingsError(f"beta must be >= 0, got {self.beta}")

    def to_dict(self) -> dict:
        """Plain-dict form (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`SettingsError`."""
        return _from_dict(cls, d)


def default_model_config(name: str, *, size: int = 128) -> ModelConfig:
    """The configuration used in docs/ml.md for each named model."""
    if name == "vae":
        # The study: conv encoder and decoder, each two layers deep, 12-d latent.
        return ModelConfig("vae", size=size, latent=12, width=32, depth=2, beta=1e-3)
    if name == "cvae":
        return ModelConfig(
            "cvae",
            size=size,
            latent=12,
            width=24,
            depth=2,
            beta=1e-3,
            conditioned=True,
            symmetrize=True,
        )
    if name == "resae":
        return ModelConfig(
            "resae", size=size, latent=128, width=8, depth=5, conditioned=True, symmetrize=True
        )
    if name == "unet":
        return ModelConfig(
            "unet", size=size, latent=128, width=8, depth=5, conditioned=True, symmetrize=True
        )
    if name == "spectral":
        return ModelConfig(
            "spectral",
            size=size,
            latent=256,
            width=8,
            depth=5,
            conditioned=True,
            symmetrize=True,
            modes=8,
        )
    raise SettingsError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


@dataclass(frozen=True)
class Normalisation:
    """How raw arrays become network tensors (saved with every model).

    Input: ``x = asinh(V_p / potential_scale)``, with ``V_p`` the projected potential [V·Å] and a
    fixed ``potential_scale`` [V·Å]: a fixed (not per-image) scale keeps the absolute strength of
    the potential, which controls how dynamical the pattern is; asinh compresses the heavy-atom
    peaks. Target: every pattern is standardised per image to zero mean and unit variance, because
    Z = 1 − ZNCC is blind to scale and offset; predictions are returned in the same standardised
    units. Before standardising, the target is clipped to [0, ``clip_max``]: I₀₀₀ ≤ 1 in an
    absorbing crystal, and the clip stops a few unstable engine pixels (seen with small beam
    budgets at 150–200 nm, values up to 200) from dominating a pattern's standard deviation.
    ``None`` disables the clip. Conditioning: ``thickness_nm / thickness_scale`` and
    ``a / a_scale``.
    """

    potential_scale: float = 100.0
    thickness_scale: float = 100.0
    a_scale: float = 10.0
    clip_max: float | None = 1.0

    def to_dict(self) -> dict:
        """Plain-dict form (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Normalisation:
        """Inverse of :meth:`to_dict`."""
        return _from_dict(cls, d)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (all stored with the checkpoint).

    Attributes
    ----------
    epochs : int
        Maximum number of epochs (a rerun with a larger value continues training).
    batch_size : int
        Patterns per batch.
    lr : float
        AdamW learning rate (cosine-free; reduced on plateau).
    weight_decay : float
        AdamW weight decay.
    seed : int
        Seeds the weights, the data order and the VAE's sampling.
    max_train : int or None
        Use at most this many training *structures* (the first ones in a seeded shuffle);
        for learning curves.
    thickness_nm : tuple of float or None
        Thicknesses to train on [nm] (snapped to the dataset's); ``None`` = all for a conditioned
        model, the middle one otherwise.
    patience : int
        Early-stopping patience [epochs] on the validation Z.
    augment : {'none', 'ops', 'shifts', 'all'}
        Exact-physics augmentation of training pairs (:mod:`lacbed.ml.augment`): a random one
        of the 8 operations of 4mm on input and target ('ops'), a random cell origin of the
        input ('shifts'), or both ('all'). Validation data is never augmented.
    init : str or None
        Model file (or run directory) whose weights and normalisation start a new run: a warm
        start, e.g. to continue training a model as the release grows. The network must have the
        same parameters (``mirror_pad`` may differ: it changes padding, not weights). Recorded
        as given.
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_train: int | None = None
    thickness_nm: tuple[float, ...] | None = None
    patience: int = 8
    augment: str = "none"
    init: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise SettingsError("epochs and batch size must be >= 1")
        if not self.lr > 0:
            raise SettingsError(f"learning rate must be > 0, got {self.lr}")
        if self.augment not in AUGMENT_MODES:
            raise SettingsError(
                f"unknown augmentation {self.augment!r}; choose one of {', '.join(AUGMENT_MODES)}"
            )
        if self.max_train is not None and self.max_train < 1:
            raise SettingsError(f"--max-train must be >= 1, got {self.max_train}")
        if self.thickness_nm is not None:
            t = tuple(float(v) for v in self.thickness_nm)
            if not t or any(not v > 0 for v in t):
                raise SettingsError("thicknesses must be > 0 nm")
            object.__setattr__(self, "thickness_nm", t)

    def to_dict(self) -> dict:
        """Plain-dict form (stored in checkpoints)."""
        d = asdict(self)
        d["thickness_nm"] = None if self.thickness_nm is None else list(self.thickness_nm)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        return _from_dict(cls, d)


def _from_dict(cls, d: dict):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise SettingsError(f"unknown {cls.__name__} keys {sorted(unknown)}")
    return cls(**d)
