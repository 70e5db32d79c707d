"""Throughput of the shipped surrogate (an ensemble) against the study's VAE and the engine.

Usage::

    python benchmarks/ml_shipped_speed.py [--threads 1 2] [--n 64] \
        [-o benchmarks/results/ml_shipped_speed.json]

All timings in one run, alternating, best of ``--repeats``, so their ratios are what the
machine's load affects least (issue 10 §4):

- ``ensemble_potential_1t``: patterns/s from potential images, one thickness per image (every
  member's forward pass, then mean and spread);
- ``ensemble_potential_4t``: the same for the four thicknesses of each image
  (:func:`lacbed.ml.model.run_model_series`: ``resae`` encodes each image once);
- ``ensemble_cif_4t``: from crystals to patterns at four thicknesses with the error estimate
  (:func:`lacbed.ml.predict.predict_series`: projected potentials included), the bundled
  example CIFs repeated to ``--n``;
- ``vae_potential_1t``: the study's VAE (untrained weights of its 128-px configuration: the
  cost does not depend on them) from potential images;
- ``engine_converged``: the engine's converged default (``simulate_lacbed``) on Si and GaAs,
  all four thicknesses in one call, per pattern.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

THICK = (50.0, 100.0, 150.0, 200.0)


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _timers(n: int, model=None):  # noqa: ANN202
    """name → (callable, patterns per call)."""
    from lacbed.crystal import example_names, example_path, read_cif
    from lacbed.ml.config import Normalisation, default_model_config
    from lacbed.ml.model import run_model, run_model_series
    from lacbed.ml.predict import load_predictor, predict_series
    from lacbed.ml.training import make_surrogate
    from lacbed.ml.uncertainty import ensemble_stats
    from lacbed.scattering import projected_potential

    ens = load_predictor(model)
    members = [m for m, _ in ens.load_models()]
    cifs = [read_cif(example_path(name)) for name in example_names()]
    xs = [cifs[i % len(cifs)] for i in range(n)]
    pots = np.stack([projected_potential(c, 128) for c in xs])
    kw = {"a": np.array([c.a for c in xs]), "symmetry": [c.bright_field_symmetry for c in xs]}
    vae = make_surrogate(default_model_config("vae", size=128), Normalisation(), seed=0).eval()

    def one_t():
        ensemble_stats(np.stack([run_model(m, pots, thickness_nm=100.0, **kw) for m in members]))

    def four_t():
        ensemble_stats(
            np.stack([run_model_series(m, pots, thicknesses_nm=THICK, **kw) for m in members])
        )

    def from_cif():
        predict_series(xs, THICK, model=ens)

    def vae_1t():
        run_model(vae, pots, thickness_nm=150.0, **kw)

    return {
        "ensemble_potential_1t": (one_t, n),
        "ensemble_potential_4t": (four_t, 4 * n),
        "ensemble_cif_4t": (from_cif, 4 * n),
        "vae_potential_1t": (vae_1t, n),
    }, len(members)


def main(argv=None) -> dict:
    import torch

    from lacbed.crystal import example_path, read_cif
    from lacbed.simulate import simulate_lacbed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n", type=int, default=64, help="images per batch")
    ap.add_argument("--model", default=None, help="ensemble file (default: the shipped one)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/ml_shipped_speed.json")
    )
    args = ap.parse_args(argv)
    timers, n_members = _timers(args.n, args.model)
    res: dict = {
        "model": args.model or "shipped",
        "members": n_members,
        "n": args.n,
        "torch": torch.__version__,
        "threads": {},
    }
    for th in args.threads:
        torch.set_num_threads(th)
        for fn, _ in timers.values():
            fn()  # warm-up at this thread count
        best = {k: _best(fn, args.repeats) for k, (fn, _) in timers.items()}
        res["threads"][str(th)] = {
            k: {"patterns_per_s": timers[k][1] / t, "best_s": t} for k, t in best.items()
        }
    torch.set_num_threads(1)
    engine = {}
    for name in ("Si", "GaAs"):
        c = read_cif(example_path(name))
        t0 = time.process_time()
        simulate_lacbed(c, list(THICK), size=128, n_jobs=1)
        engine[name] = (time.process_time() - t0) / len(THICK)
    res["engine_converged_cpu_s_per_pattern"] = engine
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
