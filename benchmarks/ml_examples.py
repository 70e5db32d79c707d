"""Z of the shipped surrogate on the bundled example crystals (docs/model_card.md, docs/ml.md).

Each example CIF is simulated with the engine settings recorded in the model file (those of its
training data: 32 strong beams, Bird–King, Kirkland, 200 kV, 128×128) at the model's thickness,
the pattern is turned into the training target (clipped and standardised,
:func:`lacbed.ml.data.prepare_target`), and Z = 1 − ZNCC [%] to the model's prediction is
recorded. Needs no dataset: everything comes from the repository.

Usage (from the repository root)::

    nice -n 10 python benchmarks/ml_examples.py [--model RUN|FILE] [--threads 1]
        [--out benchmarks/results/ml_examples.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src" / "lacbed" / "examples"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="run directory or model file (default: shipped)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ml_examples.json"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    import lacbed
    from lacbed.crystal import read_cif
    from lacbed.metrics import z_score
    from lacbed.ml.data import prepare_target
    from lacbed.ml.predict import load_model, model_thickness, predict_crystals
    from lacbed.simulate import simulate_lacbed

    model, info = load_model(args.model)
    t_nm = model_thickness(info, model, None)
    eng = dict(info.data.get("engine_settings") or {})
    kw = {
        k: eng[k]
        for k in ("voltage_kv", "scattering", "absorption", "kappa", "solver")
        if eng.get(k) is not None
    }
    kw.update(
        {k: eng[k] for k in ("half_width", "strong_beams", "max_g") if eng.get(k) is not None}
    )
    names = sorted(p.stem for p in EXAMPLES.glob("*.cif"))
    crystals = [read_cif(EXAMPLES / f"{n}.cif") for n in names]
    pred = predict_crystals(crystals, model=model, info=info, thickness_nm=t_nm)
    rows = {}
    for name, cr, p in zip(names, crystals, pred, strict=True):
        sim = simulate_lacbed(cr, [t_nm], size=model.config.size, n_jobs=1, **kw).intensities[0]
        target = prepare_target(sim[None], model.norm)[0]
        rows[name] = round(100 * float(z_score(target, p)), 2)
        print(name, rows[name], flush=True)
    out = {
        "lacbed_version": lacbed.__version__,
        "model": args.model or "shipped (src/lacbed/ml/weights/default.pt)",
        "machine": platform.platform(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "thickness_nm": t_nm,
        "engine_settings": kw,
        "z_percent": rows,
        "z_percent_range": [min(rows.values()), max(rows.values())],
        "z_percent_mean": round(float(np.mean(list(rows.values()))), 2),
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
