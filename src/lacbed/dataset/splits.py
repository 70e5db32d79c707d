"""Deterministic train/validation/test splits grouped by parent family.

Every item carries a ``group`` key (the parent family: a real structure and everything derived
from it share one group). The split of a group is a pure function of its key (a SHA-256 hash
mapped to [0, 1)), so it never depends on the order of a build, on which items failed, or on how
many items a dataset holds, and a group can never straddle two splits (no leakage between
near-duplicates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from lacbed.errors import LacbedError

__all__ = ["SPLIT_FRACTIONS", "SPLIT_NAMES", "assign_splits", "split_of_group"]

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
