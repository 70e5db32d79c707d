"""Make the model shipped in the package: a seed ensemble of trained runs, calibrated on val.

Usage::

    python benchmarks/ml_make_default.py data/lacbed-cubic RUN0 RUN1 RUN2

Writes ``src/lacbed/ml/weights/default-<i>.pt`` (each run's best checkpoint, weights as float16,
the training set recorded by name, not by path), ``default.json`` (the ensemble file: members
and the calibration of their spread on the release's **val** split, computed with the float16
members; the error estimate is affine in spread, distance to the training structures and
thickness, :func:`lacbed.ml.uncertainty.calibrate`), ``default.reference.npz`` (the training
structures' features for that distance), removes any other ``default*`` file there, writes the
test references ``tests/data/ml/default_model_Si.npy`` (the ensemble mean for
``examples/Si.cif`` at every thickness the model serves, one torch thread) and
``default_model_Si_estimate.json`` (its estimated Z per thickness) and prints the SHA-256 sums that
``tests/data/PROVENANCE.md`` and ``tests/test_ml.py`` record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "lacbed" / "ml" / "weights"
REFERENCE = ROOT / "tests" / "data" / "ml" / "default_model_Si.npy"
ESTIMATE = REFERENCE.with_name("default_model_Si_estimate.json")


def main(argv=None) -> None:
    import numpy as np
    import torch

    from lacbed.crystal import example_path, read_cif
    from lacbed.ml.config import TrainConfig
    from lacbed.ml.model import load_surrogate, save_surrogate
    from lacbed.ml.predict import predict_series
    from lacbed.ml.uncertainty import Ensemble, calibrate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="the release the runs were trained on")
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (≥ 2)")
    args = ap.parse_args(argv)
    if len(args.runs) < 2:
        ap.error("an ensemble needs at least two runs")
    torch.set_num_threads(1)
    for old in WEIGHTS.glob("default*"):
        old.unlink()
    members = []
    for i, run in enumerate(args.runs):
        model, info = load_surrogate(run / "model.pt")
        data = dict(info.data)
        if "dataset" in data:
            data["dataset"] = Path(str(data["dataset"])).name
        path = WEIGHTS / f"default-{i}.pt"
        train = TrainConfig.from_dict(info.train)
        save_surrogate(model, path, train=train, data=data, metrics=info.metrics, half=True)
        members.append(path)
    ens = Ensemble(members)
    models = [load_surrogate(p)[0] for p in members]
    ens.calibration, ens.reference = calibrate(models, args.data, split="val")
    ens.save(WEIGHTS / "default.json")  # and default.reference.npz (the training features)
    print("calibration:", json.dumps(ens.calibration))
    thick = load_surrogate(members[0])[0].trained_thicknesses_nm
    res = predict_series([read_cif(example_path("Si"))], thick, model=ens)
    np.save(REFERENCE, res.patterns[0].astype(np.float32))
    estimate = {f"{t:g}": float(v) for t, v in zip(thick, res.estimated_z[0], strict=True)}
    ESTIMATE.write_text(json.dumps({"Si": estimate}, indent=1) + "\n")
    for p in [*sorted(WEIGHTS.glob("default*")), REFERENCE, ESTIMATE]:
        print(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
