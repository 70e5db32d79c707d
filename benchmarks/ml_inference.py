"""Surrogate inference speed on the CPU: batched throughput and single-pattern latency.

Compares with the Bloch-wave engine's time for the same pattern (Si [001], the engine's default
settings, timed once here), and writes a JSON summary.

Usage::

    python benchmarks/ml_inference.py [--model RUN|FILE | --architecture NAME] [--threads 2]
                                      [--out bench.json]

Without ``--model`` the model shipped in the package is used. ``--architecture vae`` times an
untrained network of that architecture with its default 128-pixel configuration instead: the
inference cost does not depend on the weights, so a trained run is not needed for the timing.
Times are wall-clock medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch


def _median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="run directory or model file (default: shipped)")
    ap.add_argument(
        "--architecture", default=None, help="time an untrained model of this architecture"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-engine", action="store_true", help="skip timing the Bloch-wave engine")
    ap.add_argument("--out", default=None, help="write the summary as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from lacbed.crystal import load_crystal
    from lacbed.crystal.examples import example_path
    from lacbed.ml.model import run_model
    from lacbed.ml.predict import load_model, model_thickness
    from lacbed.scattering import projected_potential

    if args.architecture:
        from lacbed.ml.config import Normalisation, default_model_config
        from lacbed.ml.training import make_surrogate

        model = make_surrogate(
            default_model_config(args.architecture, size=128), Normalisation(), seed=0
        )
        model.eval()
        t_nm = 100.0
    else:
        model, info = load_model(args.model)
        t_nm = model_thickness(info, model, None)
    si = load_crystal(example_path("Si"))
    size = model.config.size
    t0 = time.perf_counter()
    pot = projected_potential(si, size)
    t_pot = time.perf_counter() - t0
    pots = np.repeat(pot[None], args.batch, axis=0)
    a = np.full(args.batch, si.a)
    sym = [si.bright_field_symmetry] * args.batch

    # a physics channel's values do not change the cost of a forward pass; its own cost
    # (a map or an engine run per crystal) is not timed here
    phys = None
    if model.config.physics_channel:
        phys = np.repeat(np.random.default_rng(0).random((1, size, size)), args.batch, axis=0)

    def forward(n: int):
        return run_model(
            model, pots[:n], thickness_nm=t_nm, a=a[:n], symmetry=sym[:n],
            physics=None if phys is None else phys[:n], batch_size=args.batch,
        )  # fmt: skip

    forward(1)  # warm-up
    single = _median_time(lambda: forward(1), max(args.repeats * 4, 10))
    batched = _median_time(lambda: forward(args.batch), args.repeats)
    out = {
        "model": model.config.name,
        "weights": "untrained (timing only)" if args.architecture else (args.model or "shipped"),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "single_latency_ms": 1e3 * single,
        "batch": args.batch,
        "batched_patterns_per_s": args.batch / batched,
        "projected_potential_ms": 1e3 * t_pot,
        "physics_input": None if phys is None else "not timed: network forward only",
    }
    if not args.no_engine:
        from lacbed.simulate import simulate_lacbed

        t0 = time.perf_counter()
        simulate_lacbed(si, [t_nm], size=size)
        t_engine = time.perf_counter() - t0
        out["engine_s_per_pattern_si"] = t_engine
        out["speedup_single"] = t_engine / single
        out["speedup_batched"] = t_engine * out["batched_patterns_per_s"]
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
