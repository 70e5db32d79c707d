"""What a surrogate must beat before it has learned anything: input-blind predictions.

Usage::

    python benchmarks/ml_trivial_baselines.py data/lacbed-cubic [--split val] \
        [-o benchmarks/results/ml_trivial_baselines.json]

Two predictions that ignore the crystal's potential, scored with Z = 1 − ZNCC against the
release's converged patterns of one split, per thickness:

- ``mean``: the mean of the training split's standardised patterns (one image per thickness);
- ``mean_by_centring``: the same mean over the training materials of the same lattice centring
  (F, I or P, from the space group). At the releases' half-width W = 4/a the zero-layer Bragg
  lines of every cubic crystal of one centring fall on the same pixels (docs/ml.md, physics
  channel), so this is the layout of lines without their strengths.

A network whose Z is not clearly below these has learned the average pattern, not the physics.

One prediction that uses the input without learning: ``nearest_train``, the pattern (same
thickness) of the training material nearest in log(1 + |FFT(V_p)|) over |h|, |k| ≤ 8 (the
zero-layer coefficients the image carries; origin-independent) and a/3 Å: a lookup table a
network must beat.

And one prediction that knows everything but blurs: ``blurred_<σ>px``, the true pattern convolved
with a Gaussian of σ pixels (scipy.ndimage.gaussian_filter, edges repeated). Its Z is the floor
of a model that puts every line right but cannot resolve detail finer than ~σ: the 5 % goal
needs the lines resolved to about that scale.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gemmi
import numpy as np
from scipy.ndimage import gaussian_filter

from lacbed.dataset.release import open_release
from lacbed.metrics import z_score
from lacbed.ml.data import standardize_pattern

#: Gaussian blurs [pixels] of the true pattern (the resolution floor).
BLUR_PX = (0.5, 1.0, 2.0, 4.0)


def _features(rel, slots) -> np.ndarray:
    """log(1 + |c·V_hk0|) for |h|, |k| ≤ 8 from each potential image, and a / 3 Å."""
    m, out = 8, []
    a = rel.table.set_index("slot")["a"]
    for s in slots:
        v = np.asarray(rel.potentials[int(s)], dtype=np.float64)
        f = np.fft.fft2(v) / v.size
        idx = np.r_[0 : m + 1, v.shape[0] - m : v.shape[0]]
        out.append(np.r_[np.log1p(np.abs(f[np.ix_(idx, idx)]).ravel()), a.loc[int(s)] / 3.0])
    return np.array(out)


def _stats(z: np.ndarray) -> dict:
    return {
        "n": int(len(z)),
        "mean": float(z.mean()),
        "median": float(np.median(z)),
        "p90": float(np.percentile(z, 90)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("release", type=Path)
    ap.add_argument("--split", default="val")
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/ml_trivial_baselines.json")
    )
    args = ap.parse_args()
    rel = open_release(args.release)
    train, test = rel.split_slots("train"), rel.split_slots(args.split)
    centring = {
        int(s): gemmi.find_spacegroup_by_number(int(n)).hm[0]
        for s, n in zip(rel.table["slot"], rel.table["space_group_number"], strict=True)
    }

    def load(slots):
        return np.stack([rel.patterns[int(s)] for s in slots]).astype(np.float64)  # (n, T, S, S)

    ptrain, ptest = standardize_pattern(load(train)).astype(np.float64), load(test)
    mean = ptrain.mean(axis=0)  # (T, S, S)
    by_c = {c: ptrain[[centring[int(s)] == c for s in train]].mean(axis=0) for c in "FIP"}
    ftrain, ftest = _features(rel, train), _features(rel, test)
    nearest = np.argmin(((ftest[:, None, :] - ftrain[None, :, :]) ** 2).sum(axis=2), axis=1)
    out: dict = {
        "release": args.release.name,
        "split": args.split,
        "n_train": int(len(train)),
        "z_units": "1 (multiply by 100 for %)",
        "per_thickness": {},
    }
    for i, t in enumerate(rel.thicknesses_nm):
        z_mean = z_score(ptest[:, i], mean[i][None])
        z_c = np.array(
            [
                float(z_score(p[i], by_c[centring[int(s)]][i]))
                for s, p in zip(test, ptest, strict=True)
            ]
        )
        z_nn = z_score(ptest[:, i], ptrain[nearest, i])
        out["per_thickness"][f"{t:g}"] = {
            "mean": _stats(z_mean),
            "mean_by_centring": _stats(z_c),
            "nearest_train": _stats(z_nn),
        }
        for sig in BLUR_PX:
            blur = gaussian_filter(ptest[:, i], sigma=(0, sig, sig), mode="nearest")
            z_b = z_score(ptest[:, i], blur)
            out["per_thickness"][f"{t:g}"][f"blurred_{sig:g}px"] = _stats(z_b)
        print(
            f"{t:g} nm: training mean Z {100 * z_mean.mean():.1f} % (median "
            f"{100 * np.median(z_mean):.1f}), by centring {100 * z_c.mean():.1f} % "
            f"(median {100 * np.median(z_c):.1f}); nearest training material "
            f"{100 * z_nn.mean():.1f} (median {100 * np.median(z_nn):.1f}); blurred "
            + ", ".join(
                f"{s:g} px {100 * out['per_thickness'][f'{t:g}'][f'blurred_{s:g}px']['mean']:.1f}"
                for s in BLUR_PX
            )
            + " %"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
