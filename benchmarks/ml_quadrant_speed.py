"""Forward-pass speed of ``resae`` with the full and the quadrant decoder (ratio within one run).

Usage::

    python benchmarks/ml_quadrant_speed.py [--threads 1] [--batch 64] \
        [-o benchmarks/results/ml_quadrant_speed.json]

Both networks are the default ``resae`` at 128 px (untrained weights: the cost does not depend
on them); the quadrant one decodes 64 × 64 and unfolds it (``ModelConfig.quadrant``). Each is
timed ``--repeats`` times alternately on the same batch of potential images; the best time of
each gives patterns per second, and their ratio is what the machine's load affects least.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def main(argv=None) -> dict:
    import torch

    from lacbed.ml.config import default_model_config
    from lacbed.ml.networks import build_network

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "-o", "--out", type=Path, default=Path("benchmarks/results/ml_quadrant_speed.json")
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = default_model_config("resae", size=128)
    nets = {
        "full": build_network(cfg).eval(),
        "quadrant": build_network(dataclasses.replace(cfg, quadrant=True)).eval(),
    }
    x = torch.randn(args.batch, cfg.in_channels, cfg.size, cfg.size)
    cond = torch.randn(args.batch, 2)
    best = {k: float("inf") for k in nets}
    with torch.no_grad():
        for net in nets.values():
            net(x, cond)  # warm-up
        for _ in range(args.repeats):
            for name, net in nets.items():
                t0 = time.perf_counter()
                out = net(x, cond)["pred"]
                best[name] = min(best[name], time.perf_counter() - t0)
                assert out.shape == (args.batch, cfg.size, cfg.size)
    res = {
        "model": "resae",
        "threads": args.threads,
        "batch": args.batch,
        "torch": torch.__version__,
        "parameters": {k: sum(p.numel() for p in n.parameters()) for k, n in nets.items()},
        "patterns_per_s": {k: args.batch / v for k, v in best.items()},
        "speedup": best["full"] / best["quadrant"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
