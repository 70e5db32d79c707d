"""Which error estimate ranks a surrogate's mistakes: ensemble spread or distance to the data?

Usage::

    python benchmarks/ml_error_estimates.py data/lacbed-cubic RUN0 RUN1 RUN2 \
        [-o benchmarks/results/ml_error_estimates.json] [--split val]

For every (structure, thickness) of the split (``val`` by default: the test split stays
untouched while models are chosen) it scores the ensemble mean of the runs (mean of their
standardised predictions, :func:`lacbed.ml.uncertainty.ensemble_stats`) against the stored
pattern, Z = 1 − ZNCC, and compares candidate estimates of that Z:

- ``spread``: the ensemble's member spread (mean Z of each member against the mean);
- ``latent_knn`` (networks with an ``encode`` method, e.g. ``resae``): mean Euclidean distance from the structure's latent vector (first run's
  encoder, dimensions scaled by their training standard deviation) to its 5 nearest training
  structures; needs one forward pass of one model, no ensemble;
- ``fft_knn``: the same distance on the potential's low-order Fourier amplitudes
  (:func:`lacbed.ml.uncertainty.potential_features`; no network at all), as the shipped
  estimate computes it (:func:`lacbed.ml.uncertainty.reference_distance`);
- ``thickness``: the thickness alone (a check that an estimate beats the obvious);
- ``log_a``: the logarithm of the lattice parameter (line density scales with a);
- affine combinations of these (:data:`COMBINATIONS`), scored out of fold only.

For each it reports the Spearman rank correlation with the true Z (overall and per thickness)
and, by 5-fold cross-validation over structures, the out-of-fold error of the calibration
Z ≈ slope · estimate (least squares through the origin, as :func:`lacbed.ml.uncertainty.calibrate`)
and its coverage (fraction of Z at or below the estimate), the error of an affine fit
Z ≈ a + b · estimate (``mae_affine``), and the error of predicting the mean Z of the other folds
for every sample (``mae_constant``): an estimate is useful only where it beats that.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lacbed.ml.uncertainty import K_NEAREST

N_FOLDS = 5
#: affine combinations of the single estimates that are scored out of fold
COMBINATIONS = {
    "combined": ("spread", "latent_knn", "thickness"),
    "spread+fft": ("spread", "fft_knn", "thickness"),
    "spread+fft+latent": ("spread", "fft_knn", "latent_knn", "thickness"),
    "spread+fft+log_a": ("spread", "fft_knn", "thickness", "log_a"),
}


def latents(model, potentials: np.ndarray, batch: int = 64) -> np.ndarray:
    """The encoder's latent vector of each potential (no conditioning enters the encoder)."""
    import torch

    from lacbed.ml.data import normalize_potential

    out = []
    with torch.no_grad():
        for i in range(0, len(potentials), batch):
            x = torch.from_numpy(normalize_potential(potentials[i : i + batch], model.norm))
            out.append(model.net.encode(x[:, None]).numpy())
    return np.concatenate(out).astype(np.float64)


def cross_validated(est: np.ndarray, z: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict:
    """Out-of-fold calibrations of Z over structure folds: through the origin (Z ≈ slope · est,
    a single estimate only), affine (least squares on [1, est...]) and constant (the mean)."""
    rng = np.random.default_rng(seed)
    uniq = rng.permutation(np.unique(groups))
    fold = {g: i % N_FOLDS for i, g in enumerate(uniq)}
    f = np.array([fold[g] for g in groups])
    x = est.reshape(len(z), -1)
    design = np.column_stack([np.ones(len(z)), x])
    pred, aff, const = np.full_like(z, np.nan), np.empty_like(z), np.empty_like(z)
    upper = np.empty_like(z)
    for i in range(N_FOLDS):
        tr, te = f != i, f == i
        if x.shape[1] == 1:
            pred[te] = x[te, 0] * np.dot(x[tr, 0], z[tr]) / np.dot(x[tr, 0], x[tr, 0])
        coef = np.linalg.lstsq(design[tr], z[tr], rcond=None)[0]
        aff[te], const[te] = design[te] @ coef, z[tr].mean()
        q90 = np.percentile(z[tr] - design[tr] @ coef, 90)  # the upper bound, fitted in fold
        upper[te] = aff[te] + q90
    out = {
        "mae_affine": float(np.abs(aff - z).mean()),
        "coverage_affine": float(np.mean(z <= aff)),
        "coverage_q90_out_of_fold": float(np.mean(z <= upper)),
        "mean_upper90": float(upper.mean()),
        "mae_constant": float(np.abs(const - z).mean()),
        "spearman_out_of_fold_affine": spearman(aff, z),
    }
    if x.shape[1] == 1:
        out.update(mae=float(np.abs(pred - z).mean()), coverage=float(np.mean(z <= pred)))
    return out


def spearman(x, y) -> float:
    from lacbed.ml.uncertainty import spearman as rank_correlation

    return rank_correlation(x, y)


def main(argv=None) -> dict:
    import torch

    from lacbed.dataset.store import open_dataset
    from lacbed.metrics import z_score
    from lacbed.ml.data import load_split, prepare_target, resolve_thicknesses
    from lacbed.ml.evaluate import z_stats
    from lacbed.ml.model import load_surrogate, run_model
    from lacbed.ml.uncertainty import ensemble_stats, potential_features, reference_distance

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("runs", nargs="+", type=Path, help="run directories or model files (≥ 2)")
    ap.add_argument("--split", default="val", choices=["val"])
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/ml_error_estimates.json")
    )
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = [load_surrogate(r / "model.pt" if r.is_dir() else r)[0] for r in args.runs]
    ds = open_dataset(args.data)
    m0 = models[0]
    t_idx = resolve_thicknesses(
        ds.thicknesses_nm, m0.trained_thicknesses_nm or None, conditioned=m0.config.conditioned
    )
    va = load_split(ds, args.split, thickness_index=t_idx)
    tr = load_split(ds, "train", thickness_index=t_idx[:1])
    n, nt = va.pattern.shape[:2]
    spread, z = np.empty((n, nt)), np.empty((n, nt))
    z_members = np.empty((len(models), n, nt))
    for j, t in enumerate(va.thickness_nm):
        kw = {"thickness_nm": float(t), "a": va.a, "symmetry": va.symmetry}
        preds = np.stack([run_model(m, va.potential, **kw) for m in models])  # each member once
        mean, spread[:, j] = ensemble_stats(preds)
        target = prepare_target(va.pattern[:, j], m0.norm)
        z[:, j] = z_score(target, mean).reshape(-1)
        z_members[:, :, j] = z_score(target[None], preds).reshape(len(models), n)
    lat = reference_distance(latents(m0, va.potential), latents(m0, tr.potential))
    # as the shipped estimate computes it (float16-rounded reference, lacbed.ml.uncertainty)
    ref = potential_features(tr.potential).astype(np.float16).astype(np.float32)
    fft = reference_distance(potential_features(va.potential), ref)
    estimates = {
        "spread": spread,
        "latent_knn": np.repeat(lat[:, None], nt, axis=1),
        "fft_knn": np.repeat(fft[:, None], nt, axis=1),
        "thickness": np.broadcast_to(np.asarray(va.thickness_nm, float), (n, nt)),
        "log_a": np.repeat(np.log(np.asarray(va.a, float))[:, None], nt, axis=1),
    }
    groups = np.repeat(np.arange(n)[:, None], nt, axis=1).ravel()
    rows = {}
    for name, feats in COMBINATIONS.items():  # affine in several estimates; ranked out of fold
        both = np.stack([estimates[f] for f in feats], axis=-1).reshape(-1, len(feats))
        rows[name] = {"features": list(feats), **cross_validated(both, z.ravel(), groups)}
    for name, e in estimates.items():
        rows[name] = {
            "spearman": spearman(e.ravel(), z.ravel()),
            "spearman_per_thickness": {
                f"{t:g}": spearman(e[:, j], z[:, j]) if np.ptp(e[:, j]) > 0 else None
                for j, t in enumerate(va.thickness_nm)
            },
            **cross_validated(np.asarray(e, float).ravel(), z.ravel(), groups),
        }
    result = {
        "dataset": Path(ds.path).name,
        "split": args.split,
        "runs": [r.name for r in args.runs],
        "n_structures": int(n),
        "n_train_structures": int(len(tr.potential)),
        "thickness_nm": [float(t) for t in va.thickness_nm],
        "z_units": "1 (multiply by 100 for %)",
        "ensemble_z": {
            **z_stats(z),
            "per_thickness": {f"{t:g}": z_stats(z[:, j]) for j, t in enumerate(va.thickness_nm)},
            "worst": sorted(
                (
                    {"formula": va.formulas[i], "key": va.keys[i], "mean_z": float(z[i].mean())}
                    for i in range(n)
                ),
                key=lambda r: -r["mean_z"],
            )[:10],
        },
        "member_z": [
            {
                **z_stats(zm),
                "per_thickness": {
                    f"{t:g}": z_stats(zm[:, j]) for j, t in enumerate(va.thickness_nm)
                },
            }
            for zm in z_members
        ],
        "k_nearest": K_NEAREST,
        "folds": N_FOLDS,
        "estimates": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(
        f"ensemble val Z mean {100 * z.mean():.1f} %, members "
        + ", ".join(f"{100 * zm.mean():.1f}" for zm in z_members)
        + " %"
    )
    for name, r in rows.items():
        origin = f"through 0 {100 * r['mae']:.1f} % " if "mae" in r else ""
        print(
            f"{name:11s} Spearman {r.get('spearman', float('nan')):+.2f} "
            f"(out of fold, affine {r['spearman_out_of_fold_affine']:+.2f})  out-of-fold MAE "
            f"{origin}affine {100 * r['mae_affine']:.1f} % (constant "
            f"{100 * r['mae_constant']:.1f} %), coverage affine {100 * r['coverage_affine']:.0f} %"
        )
    return result


if __name__ == "__main__":
    main()
