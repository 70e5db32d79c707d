"""Figure of a refinement: experiment | fit | difference, and Z against thickness."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_refinement"]


def plot_refinement(result, *, panel_size: float = 3.0) -> Figure:
    """Four panels: the experiment, the fitted simulation (scaled to it), their difference over
    the mask, and Z = 1 − ZNCC of the dense thickness scan with the fitted thickness marked.

    Parameters
    ----------
    result : lacbed.refine.RefineResult
    panel_size : float
        Width of one panel [inch].

    Returns
    -------
    matplotlib.figure.Figure
    """
    exp = np.asarray(result.images["experiment"], float)
    fit = np.asarray(result.images["fit"], float)
    mask = np.asarray(result.images["mask"], bool)
    fig = Figure(figsize=(4 * panel_size + 0.8, panel_size + 0.7), layout="constrained")
    axes = fig.subplots(1, 4)
    shown = [np.where(mask, exp, np.nan), np.where(mask, fit, np.nan)]
    vmin, vmax = np.nanpercentile(shown[0], [0.5, 99.5])
    for ax, im, title in zip(axes[:2], shown, ("experiment", "fit"), strict=True):
        h = ax.imshow(im, origin="lower", cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("column [px]", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("row [px]", fontsize=8)
    fig.colorbar(h, ax=axes[1], shrink=0.8).ax.tick_params(labelsize=7)
    diff = np.where(mask, exp - fit, np.nan)
    lim = float(np.nanmax(np.abs(diff))) or 1.0
    h = axes[2].imshow(diff, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[2].set_title("experiment − fit", fontsize=9)
    axes[2].set_xlabel("column [px]", fontsize=8)
    axes[2].tick_params(labelsize=7)
    fig.colorbar(h, ax=axes[2], shrink=0.8).ax.tick_params(labelsize=7)
    t, z = result.z_thickness
    ax = axes[3]
    ax.plot(t, 100 * np.asarray(z), lw=1)
    if "thickness" in result.parameters:
        ax.axvline(result.parameters["thickness"]["value"], color="C3", lw=0.8, ls="--")
    ax.set_xlabel("thickness [nm]", fontsize=8)
    ax.set_ylabel("Z = 1 − ZNCC [%]", fontsize=8)
    ax.set_title("Z against thickness (first structure)", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.suptitle(f"refinement: final Z = {100 * result.z:.2f} %", fontsize=10)
    return fig
