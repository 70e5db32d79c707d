"""Deterministic train/validation/test splits: by parent family, or by structure prototype.

Working datasets (:mod:`lacbed.dataset.store`): every item carries a ``group`` key (the parent family: a real structure and everything derived
from it share one group). The split of a group is a pure function of its key (a SHA-256 hash
mapped to [0, 1)), so it never depends on the order of a build, on which items failed, or on how
many items a dataset holds, and a group can never straddle two splits (no leakage between
near-duplicates).

Releases (:mod:`lacbed.dataset.release`) split by structure prototype (space group, Wyckoff
letters and stoichiometry pattern), so isostructural compounds never straddle two splits, through a
table planned once from all real structures (:func:`plan_prototype_splits`) and stored with the
release.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from lacbed.errors import LacbedError

__all__ = [
    "LARGE_PROTOTYPE_FRACTION",
    "SPLIT_FRACTIONS",
    "SPLIT_NAMES",
    "assign_splits",
    "plan_prototype_splits",
    "split_of_group",
    "split_of_prototype",
]

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
#: Target fractions of groups in each split (85:10:5).
SPLIT_FRACTIONS: tuple[float, ...] = (0.85, 0.10, 0.05)


def _unit_hash(group: str) -> float:
    """Map a string to a number in [0, 1) by SHA-256 (stable across runs and platforms)."""
    digest = hashlib.sha256(str(group).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of_group(group: str, *, fractions: tuple[float, ...] = SPLIT_FRACTIONS) -> str:
    """Split ('train', 'val' or 'test') of one parent family.

    Parameters
    ----------
    group : str
        Group key (parent family).
    fractions : tuple of float
        Fractions of the three splits; must be non-negative and sum to 1.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise LacbedError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    u = _unit_hash(group)
    edges = np.cumsum(f)
    for name, edge in zip(SPLIT_NAMES, edges, strict=True):
        if u < edge:
            return name
    return SPLIT_NAMES[-1]


def assign_splits(
    groups: Iterable[str], *, fractions: tuple[float, ...] = SPLIT_FRACTIONS
) -> list[str]:
    """Split of each item, given the group key of each item (same order)."""
    cache: dict[str, str] = {}
    out = []
    for g in groups:
        g = str(g)
        if g not in cache:
            cache[g] = split_of_group(g, fractions=fractions)
        out.append(cache[g])
    return out


#: A structure prototype holding more than this fraction of all real structures goes to the
#: training split whole: a type that large (rock salt is about a quarter of the real cubic
#: structures) would swamp the 5 % test split or the 10 % validation split.
LARGE_PROTOTYPE_FRACTION: float = 0.01


def plan_prototype_splits(
    group_prototype: dict[str, str],
    *,
    fractions: tuple[float, ...] = SPLIT_FRACTIONS,
    large: float = LARGE_PROTOTYPE_FRACTION,
) -> dict:
    """Freeze a prototype → split table that holds the target fractions by material count.

    Hashing prototypes (as :func:`split_of_group` does for parent families) keeps a structure type
    on one side, but a few prototypes hold most materials, so the fractions by material count would
    be far off. Instead the table is planned once, from every real structure of a release:
    prototypes larger than ``large`` of all structures go to 'train'; the others, taken in SHA-256
    order of their label, each go whole to the split furthest below its target count (largest
    relative shortfall). The result is deterministic and is stored with the release, so it never
    changes as the release grows.

    Parameters
    ----------
    group_prototype : dict
        Key of each real structure (a parent family) → its prototype label
        (:func:`lacbed.crystal.serialise.prototype_label`).
    fractions : tuple of float
        Target fractions of 'train', 'val' and 'test' by number of structures.
    large : float
        Size above which a prototype goes to 'train' [fraction of all structures].

    Returns
    -------
    dict
        ``{"fractions", "large_fraction", "prototypes": {label: split}, "groups": {key: label},
        "counts": {split: n_structures}, "n_prototypes": {split: n}}``.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f <= 0) or not np.isclose(f.sum(), 1.0):
        raise LacbedError(
            f"split fractions must be three positive numbers summing to 1, got {fractions}"
        )
    sizes: dict[str, int] = {}
    for label in group_prototype.values():
        sizes[str(label)] = sizes.get(str(label), 0) + 1
    total = sum(sizes.values())
    target = f * total
    counts = np.zeros(3)
    table: dict[str, str] = {}
    big = sorted((p for p, n in sizes.items() if n > large * total), key=lambda p: (-sizes[p], p))
    for p in big:
        table[p] = SPLIT_NAMES[0]
        counts[0] += sizes[p]
    rest = sorted((p for p in sizes if p not in table), key=_unit_hash)
    for p in rest:
        i = int(np.argmax((target - counts) / target))
        table[p] = SPLIT_NAMES[i]
        counts[i] += sizes[p]
    n_proto = {s: sum(1 for v in table.values() if v == s) for s in SPLIT_NAMES}
    return {
        "fractions": [float(x) for x in f],
        "large_fraction": float(large),
        "prototypes": dict(sorted(table.items())),
        "groups": dict(sorted((str(k), str(v)) for k, v in group_prototype.items())),
        "counts": {s: int(c) for s, c in zip(SPLIT_NAMES, counts, strict=True)},
        "n_prototypes": n_proto,
    }


def split_of_prototype(label: str, plan: dict) -> str:
    """Split of a prototype under a frozen plan (:func:`plan_prototype_splits`).

    A prototype the plan does not know (a structure type first seen after the plan was made)
    falls back to the hash of its label, :func:`split_of_group`, which is just as deterministic.
    """
    known = plan.get("prototypes", {})
    if label in known:
        return known[label]
    return split_of_group(label, fractions=tuple(plan.get("fractions", SPLIT_FRACTIONS)))
