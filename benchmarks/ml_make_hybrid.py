"""Make the hybrid model shipped in the package (``lacbed predict --hybrid``).

Usage::

    python benchmarks/ml_make_hybrid.py RUN [--physics-beams 96]

Writes ``src/lacbed/ml/weights/hybrid.pt`` (the run's best checkpoint, weights as float16, the
training set recorded by name, not by path), the test reference
``tests/data/ml/hybrid_model_Si.npy`` (the prediction for ``examples/Si.cif`` at every thickness
the model serves, one torch thread; it includes the coarse engine run) and prints the SHA-256
sums that ``tests/data/PROVENANCE.md`` and ``tests/test_ml.py`` record. The run must be a
``--physics-channel --physics-kind coarse --residual`` model.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "lacbed" / "ml" / "weights"
REFERENCE = ROOT / "tests" / "data" / "ml" / "hybrid_model_Si.npy"


def main(argv=None) -> None:
    import numpy as np
    import torch

    from lacbed.crystal import example_path, read_cif
    from lacbed.ml.config import TrainConfig
    from lacbed.ml.model import load_surrogate, save_surrogate
    from lacbed.ml.predict import HYBRID_ERROR_FILE, HYBRID_FILE, load_hybrid, predict_series

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run directory of a coarse residual model")
    ap.add_argument(
        "--physics-beams",
        type=int,
        default=None,
        help="strong beams of the coarse input the run was trained on, for a run that does not "
        "record them (trained before physics_beams was recorded)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, info = load_surrogate(args.run / "model.pt")
    if model.config.physics_input != "coarse" or not model.config.residual:
        raise SystemExit(f"{args.run} is not a --physics-kind coarse --residual model")
    data = dict(info.data)
    if "dataset" in data:
        data["dataset"] = Path(str(data["dataset"])).name
    if "physics_beams" not in data:
        if args.physics_beams is None:
            raise SystemExit(f"{args.run} does not record its input's strong beams: give them")
        data["physics_beams"] = int(args.physics_beams)
    path = WEIGHTS / HYBRID_FILE
    train = TrainConfig.from_dict(info.train)
    save_surrogate(model, path, train=train, data=data, metrics=info.metrics, half=True)
    stale = WEIGHTS / HYBRID_ERROR_FILE  # calibrated for the model just replaced
    if stale.is_file():
        stale.unlink()
        print(f"removed {stale.relative_to(ROOT)}: rerun benchmarks/ml_hybrid_error.py --write")
    shipped = load_hybrid()
    thick = shipped.model.trained_thicknesses_nm
    res = predict_series([read_cif(example_path("Si"))], thick, model=shipped)
    np.save(REFERENCE, res.patterns[0].astype(np.float32))
    for p in (path, REFERENCE):
        print(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
