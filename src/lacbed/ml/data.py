"""Data for the surrogates: arrays from a dataset store, normalisation, and a torch Dataset.

One *sample* is one (structure, thickness) pair: the input is the structure's 128×128 projected
potential [V·Å], the target its 000 pattern at that thickness. Normalisation (stated in
:class:`lacbed.ml.config.Normalisation` and saved with every model):

- input  ``x = asinh(V_p / potential_scale)`` with a fixed scale (not per image);
- target ``y = (I − mean I) / std I`` per image (Z is blind to scale and offset), after
  clipping I to [0, clip_max] (see :class:`~lacbed.ml.config.Normalisation`);
- conditioning ``(t / thickness_scale, a / a_scale)`` with t [nm] and a [Å].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from lacbed.errors import LacbedError, SettingsError
from lacbed.ml.config import Normalisation
from lacbed.ml.symmetry import symmetry_code

__all__ = [
    "SplitArrays",
    "PatternSamples",
    "load_split",
    "resolve_thicknesses",
    "normalize_potential",
    "standardize_pattern",
    "prepare_target",
    "symmetry_of_space_group",
    "subset",
]

log = logging.getLogger(__name__)


def normalize_potential(potential: np.ndarray, norm: Normalisation) -> np.ndarray:
    """Network input from projected potentials [V·Å]: asinh(V_p / scale), float32."""
    return np.arcsinh(np.asarray(potential, dtype=np.float64) / norm.potential_scale).astype(
        np.float32
    )


def standardize_pattern(pattern: np.ndarray) -> np.ndarray:
    """Zero mean and unit (population) standard deviation over the last two axes, float32.

    A constant pattern becomes all zeros.
    """
    p = np.asarray(pattern, dtype=np.float64)
    d = p - p.mean(axis=(-2, -1), keepdims=True)
    sd = np.sqrt((d**2).mean(axis=(-2, -1), keepdims=True))
    return np.where(sd > 0, d / np.where(sd > 0, sd, 1.0), 0.0).astype(np.float32)


def prepare_target(pattern: np.ndarray, norm: Normalisation) -> np.ndarray:
    """Training/evaluation target: clip to [0, clip_max], then standardise per image."""
    p = np.asarray(pattern, dtype=np.float64)
    if norm.clip_max is not None:
        p = np.clip(p, 0.0, norm.clip_max)
    return standardize_pattern(p)


def symmetry_of_space_group(space_group_number) -> str:
    """Bright-field symmetry ('4mm', '2mm') of a cubic space group, 'none' if unknown."""
    from lacbed.crystal.model import bright_field_symmetry, point_group_of

    try:
        return bright_field_symmetry(point_group_of(int(space_group_number)))
    except (LacbedError, TypeError, ValueError):
        return "none"


@dataclass(frozen=True, eq=False)
class SplitArrays:
    """Raw arrays of one split, in memory.

    Attributes
    ----------
    potential : ndarray, shape (n, S, S) float32
        Projected potentials [V·Å].
    pattern : ndarray, shape (n, T, S, S) float32
        I₀₀₀ at each selected thickness [-].
    thickness_nm : ndarray, shape (T,)
        Selected thicknesses [nm].
    a : ndarray, shape (n,)
        Lattice parameters [Å].
    symmetry : tuple of str
        Bright-field symmetry per structure ('4mm', '2mm' or 'none').
    keys, formulas : tuple of str
        Item keys and formulas.
    physics : ndarray, shape (n, T, S, S) float32, optional
        Two-beam Bragg-line maps at each thickness (:mod:`lacbed.ml.physics`), when loaded.
    """

    potential: np.ndarray
    pattern: np.ndarray
    thickness_nm: np.ndarray
    a: np.ndarray
    symmetry: tuple[str, ...]
    keys: tuple[str, ...]
    formulas: tuple[str, ...]
    physics: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.potential.shape[0])


def resolve_thicknesses(available_nm: np.ndarray, requested_nm, *, conditioned: bool) -> np.ndarray:
    """Indices into ``available_nm`` of the thicknesses to use.

    ``requested_nm`` (sequence or None): each value must match a stored thickness within
    0.5 nm (otherwise :class:`SettingsError` lists the stored ones). ``None`` selects all
    thicknesses for a conditioned model and the middle one otherwise.
    """
    avail = np.asarray(available_nm, dtype=np.float64)
    if requested_nm is None:
        if conditioned:
            return np.arange(len(avail))
        return np.array([len(avail) // 2])
    idx = []
    for t in np.atleast_1d(np.asarray(requested_nm, dtype=np.float64)):
        i = int(np.argmin(np.abs(avail - t)))
        if abs(avail[i] - t) > 0.5:  # tolerance: half a nanometre is far below any thickness step
            raise SettingsError(
                f"thickness {t:g} nm is not in the dataset; stored thicknesses [nm]: "
                + ", ".join(f"{v:g}" for v in avail)
            )
        idx.append(i)
    return np.array(sorted(set(idx)))


def subset(slots: np.ndarray, max_items: int | None, seed: int) -> np.ndarray:
    """At most ``max_items`` of ``slots``, a seeded random subset in their original order (the
    training subset of ``TrainConfig.max_train``; nested in ``max_items`` for one seed)."""
    slots = np.asarray(slots)
    if max_items is None or max_items >= len(slots):
        return slots
    return slots[np.sort(np.random.default_rng(seed).permutation(len(slots))[:max_items])]


def load_split(
    dataset,
    split: str,
    *,
    thickness_index: np.ndarray,
    max_items: int | None = None,
    seed: int = 0,
    require: bool = True,
    physics: bool | str = False,
    cache=True,
) -> SplitArrays:
    """Read one split of a :class:`lacbed.dataset.store.Dataset` into memory.

    Parameters
    ----------
    dataset : lacbed.dataset.store.Dataset
    split : {'train', 'val', 'test'}
    thickness_index : ndarray of int
        Which stored thicknesses to keep.
    max_items : int, optional
        Keep at most this many structures: a seeded random subset (for learning curves).
    seed : int
        Seed of that subset.
    require : bool
        Raise :class:`LacbedError` if the split is empty.
    physics : bool or {'bragg', 'fewbeam', 'coarse'}
        Also compute physics maps (:func:`lacbed.ml.physics.physics_maps`; True = 'bragg') from
        each item's crystal record, with the dataset's engine settings.
    cache : bool or path-like
        Where maps are cached: True for ``<lacbed cache dir>/physics-maps``
        (``$LACBED_CACHE_DIR``, else ``~/.cache/lacbed``), a folder, or False for none.

    Items whose arrays contain NaN or inf are skipped with a warning.
    """
    slots = dataset.split_slots(split)
    if require and len(slots) == 0:
        raise LacbedError(
            f"the dataset {dataset.path} has no {split!r} split "
            f"(items per split: {dataset.split_counts()}); build a larger dataset"
        )
    table = dataset.table.set_index("slot", drop=False)
    slots = subset(slots, max_items, seed)
    ti = np.asarray(thickness_index, dtype=np.int64)
    pots, pats, keep = [], [], []
    for s in slots:
        pot = np.asarray(dataset.potentials[int(s)], dtype=np.float32)
        pat = np.asarray(dataset.patterns[int(s)], dtype=np.float32)[ti]
        if not (np.all(np.isfinite(pot)) and np.all(np.isfinite(pat))):
            log.warning("skipping slot %d: non-finite values in the store", s)
            continue
        pots.append(pot)
        pats.append(pat)
        keep.append(int(s))
    size = dataset.size
    rows = table.loc[keep] if keep else table.iloc[:0]
    maps = None
    if physics:
        kind = "bragg" if physics is True else str(physics)
        maps = _physics_maps(dataset, [str(k) for k in rows["key"]], ti, cache, kind)
    return SplitArrays(
        potential=np.stack(pots) if pots else np.zeros((0, size, size), np.float32),
        pattern=np.stack(pats) if pats else np.zeros((0, len(ti), size, size), np.float32),
        thickness_nm=dataset.thicknesses_nm[ti],
        a=rows["a"].to_numpy(dtype=np.float64),
        symmetry=tuple(symmetry_of_space_group(v) for v in rows["space_group_number"]),
        keys=tuple(str(k) for k in rows["key"]),
        formulas=tuple(str(f) for f in rows["formula"]),
        physics=maps,
    )


def _crystals_of(dataset, keys: list[str]) -> list:
    """Crystals of the given items, from their records (release or working dataset)."""
    from lacbed.crystal.serialise import crystal_from_record
    from lacbed.dataset.store import read_records

    records = getattr(dataset, "records", None)
    if records is None or callable(records):
        records = read_records(dataset.path)
    by_key = {r["key"]: r for r in records}
    out = []
    for k in keys:
        rec = by_key.get(k) or {}
        if not rec.get("crystal"):
            raise LacbedError(
                f"item {k!r} of {dataset.path} has no crystal record, so its physics map "
                "cannot be computed; rebuild the dataset with this lacbed or train without "
                "--physics-channel"
            )
        out.append(crystal_from_record(rec["crystal"]))
    return out


def _physics_maps(dataset, keys: list[str], t_index: np.ndarray, cache, kind: str) -> np.ndarray:
    from lacbed.ml.physics import map_settings, physics_maps

    if cache is True:
        from lacbed.structures.sources import cache_dir

        cache = cache_dir() / "physics-maps"
    elif cache is False:
        cache = None
    crystals = _crystals_of(dataset, keys)
    settings = map_settings(dataset.settings.get("settings", {}))
    return physics_maps(
        crystals,
        dataset.thicknesses_nm[t_index],
        size=dataset.size,
        cache=cache,
        kind=kind,
        **settings,
    )


class PatternSamples(torch.utils.data.Dataset):
    """Torch dataset of (structure, thickness) samples from a :class:`SplitArrays`.

    Each item is a dict: ``x`` (1, S, S) normalised potential (with the physics map of that
    thickness as a second channel, (2, S, S), when ``arrays.physics`` is set), ``y`` (S, S) standardised pattern,
    ``cond`` (2,) conditioning, ``sym`` symmetry flag (int), ``index`` structure index and
    ``t_index`` thickness index. With ``augment`` (training only) each access returns a random
    exact copy of the pair (:func:`lacbed.ml.augment.random_augment`), drawn from a generator
    seeded with ``seed``.
    """

    def __init__(
        self, arrays: SplitArrays, norm: Normalisation, *, augment: str = "none", seed: int = 0
    ) -> None:
        from lacbed.ml.config import AUGMENT_MODES

        if augment not in AUGMENT_MODES:
            raise SettingsError(
                f"unknown augmentation {augment!r}; choose one of {', '.join(AUGMENT_MODES)}"
            )
        self.arrays = arrays
        self.norm = norm
        self.augment = augment
        self._gen = torch.Generator().manual_seed(int(seed))
        n, t = arrays.pattern.shape[:2]
        self._x = torch.from_numpy(normalize_potential(arrays.potential, norm))[:, None]
        self._maps = None if arrays.physics is None else torch.from_numpy(arrays.physics)
        self._y = torch.from_numpy(prepare_target(arrays.pattern, norm))  # (n, T, S, S)
        self._t = torch.as_tensor(arrays.thickness_nm / norm.thickness_scale, dtype=torch.float32)
        self._a = torch.as_tensor(arrays.a / norm.a_scale, dtype=torch.float32)
        self._sym = torch.as_tensor([symmetry_code(s) for s in arrays.symmetry], dtype=torch.long)
        self._pairs = [(i, j) for i in range(n) for j in range(t)]

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        i, j = self._pairs[k]
        x, y = self._x[i], self._y[i, j]
        if self._maps is not None:  # second channel: the map at this thickness
            x = torch.cat([x, self._maps[i, j][None]])  # (2, S, S)
        if self.augment != "none":
            from lacbed.ml.augment import random_augment

            x, y = random_augment(
                x,
                y,
                self._gen,
                ops=self.augment in ("ops", "all"),
                shifts=self.augment in ("shifts", "all"),
                pattern_channels=0 if self._maps is None else 1,
            )
        return {
            "x": x,
            "y": y,
            "cond": torch.stack([self._t[j], self._a[i]]),
            "sym": self._sym[i],
            "index": torch.tensor(i),
            "t_index": torch.tensor(j),
        }
