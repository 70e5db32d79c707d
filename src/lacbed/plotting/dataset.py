"""Montage of dataset items: projected potential and LACBED pattern(s) side by side."""

from __future__ import annotations

import os

import numpy as np

from lacbed._io import atomic_path
from lacbed.errors import LacbedError

__all__ = ["plot_montage"]


def plot_montage(
    dataset,  # noqa: ANN001 (lacbed.dataset.Dataset)
    path: str | os.PathLike,
    *,
    n: int = 6,
    split: str | None = None,
    seed: int = 0,
    max_thicknesses: int = 3,
):
    """Write a figure with one row per sampled item: potential, then patterns by thickness.

    Parameters
    ----------
    dataset : lacbed.dataset.Dataset
        An opened dataset.
    path : path-like
        Output image; the format follows the suffix.
    n : int
        Number of items (fewer if the dataset is smaller).
    split : str, optional
        Sample only from this split.
    seed : int
        Seed of the sample.
    max_thicknesses : int
        Most pattern columns per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    table = dataset.table
    if split is not None:
        dataset.split_slots(split)  # validates the name
        table = table[table["split"] == split]
    if not len(table):
        raise LacbedError(
            f"the dataset has no stored items{f' in split {split!r}' if split else ''}"
        )
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(table), size=min(n, len(table)), replace=False))
    rows = table.iloc[idx]
    thick = dataset.thicknesses_nm
    t_idx = np.unique(
        np.linspace(0, len(thick) - 1, min(max_thicknesses, len(thick))).round().astype(int)
    )
    ncols = 1 + len(t_idx)
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(2.2 * ncols, 2.3 * len(rows)), squeeze=False
    )
    for r, (_, row) in enumerate(rows.iterrows()):
        slot = int(row["slot"])
        pot = np.asarray(dataset.potentials[slot])
        pats = np.asarray(dataset.patterns[slot])
        ax = axes[r, 0]
        ax.imshow(pot, cmap="magma", origin="upper")
        ax.set_title(f"{row['formula']} #{row['space_group_number']}\nV_proj [V·Å]", fontsize=7)
        for j, ti in enumerate(t_idx):
            ax = axes[r, 1 + j]
            ax.imshow(pats[ti], cmap="gray", origin="upper")
            ax.set_title(
                f"I000, t = {thick[ti]:g} nm\na = {row['a']:.3f} Å ({row['split']})", fontsize=7
            )
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return fig
