"""The Bethe-potential gain fix, measured (docs/engine_validation.md, "Robustness fixes").

BaPbO3 (``tests/data/cif/BaPbO3_oqmd.cif``, heavy absorbers) gained intensity (I₀₀₀ ≫ 1) before
commit 6116171 added the absorption of the weak-beam admixture to the Bethe potentials. This script
measures, for the engine it is run with:

1. ``bapbo3``: BaPbO3 at 32×32 against a 400-strong-beam run: the adaptive default (fast path) and
   ``strong_beams=64`` (exact path): Z [%] at 50, 100, 200 nm and the largest I₀₀₀;
2. ``fixed32``: ``strong_beams=32`` (the ML dataset's setting), 64×64, fast, against 250 strong
   beams, for GaAs, SrTiO3 and BaPbO3: Z, strong beams per tile, CPU time, largest I₀₀₀.

"Before" is the same script run on the engine of commit 6116171's parent, e.g.::

    git archive 6116171^ src | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/src python benchmarks/engine_bethe_gain.py --label before \\
        --commit 6116171^
    python benchmarks/engine_bethe_gain.py --label after --commit HEAD

Raw output: ``benchmarks/results/engine_bethe_gain.json`` (one entry per label).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BAPBO3 = ROOT / "tests" / "data" / "cif" / "BaPbO3_oqmd.cif"
EXAMPLES = ROOT / "src" / "lacbed" / "examples"
THICK = [50.0, 100.0, 200.0]


def _run(crystal, **kw):
    from lacbed.simulate import simulate_lacbed

    t0 = time.process_time()
    p = simulate_lacbed(crystal, THICK, n_jobs=1, **kw)
    return p, time.process_time() - t0


def _row(p, ref, cpu) -> dict:
    from lacbed.metrics import z_score

    return {
        "z_percent": [round(float(v), 4) for v in 100 * z_score(p.intensities, ref.intensities)],
        "max_I000": float(np.max(p.intensities)),
        "strong_min": int(p.settings["n_strong_min"]),
        "strong_max": int(p.settings["n_strong_max"]),
        "strong_mean": round(float(p.settings["n_strong_mean"]), 1),
        "cpu_s": round(cpu, 2),
    }


def bapbo3() -> dict:
    from lacbed.crystal import read_cif

    cr = read_cif(BAPBO3)
    ref, _ = _run(cr, size=32, strong_beams=400)
    out = {"reference_strong_beams": 400, "reference_max_I000": float(ref.intensities.max())}
    p, cpu = _run(cr, size=32)
    out["adaptive_fast"] = _row(p, ref, cpu)
    p, cpu = _run(cr, size=32, strong_beams=64, solver="exact")
    out["strong64_exact"] = _row(p, ref, cpu)
    print(json.dumps(out), flush=True)
    return out


def fixed32() -> dict:
    from lacbed.crystal import read_cif

    out = {"reference_strong_beams": 250}
    for name, path in (
        ("GaAs", EXAMPLES / "GaAs.cif"),
        ("SrTiO3", EXAMPLES / "SrTiO3.cif"),
        ("BaPbO3", BAPBO3),
    ):
        cr = read_cif(path)
        ref, _ = _run(cr, size=64, strong_beams=250)
        p, cpu = _run(cr, size=64, strong_beams=32)
        out[name] = _row(p, ref, cpu)
        print(name, json.dumps(out[name]), flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="after", help="entry name in the output (before|after)")
    ap.add_argument("--commit", default="working tree", help="the engine's commit, recorded")
    ap.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "engine_bethe_gain.json")
    )
    args = ap.parse_args(argv)
    import lacbed

    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.is_file() else {}
    result[args.label] = {
        "engine_commit": args.commit,
        "lacbed_version": lacbed.__version__,
        "machine": platform.platform(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "thickness_nm": THICK,
        "bapbo3": bapbo3(),
        "fixed32": fixed32(),
    }
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
