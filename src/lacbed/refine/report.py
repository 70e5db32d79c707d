"""Writing a refinement's outputs (the I/O edge): report.json, the refined CIF and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lacbed._io import atomic_path

__all__ = ["write_outputs", "cif_record"]


def cif_record(result) -> list[str]:
    """CIF lines (``_lacbed_refine_*`` data names) with the refined thickness, U_g and Z.

    U_g [1/Å²] at the engine's origin: real and imaginary parts with their uncertainties, the
    uncertainty of |U_g|, and the factor c = α + iβ on the CIF's U_g (β = 0 for a centric
    reflection, whose phase is fixed by symmetry).
    """
    lines = ["", "# refined by lacbed refine (issue 13)", f"_lacbed_refine_z {result.z:.6g}"]
    p = result.parameters
    if "thickness" in p:
        lines.append(
            f"_lacbed_refine_thickness_nm {p['thickness']['value']:.4f}"
            f"({p['thickness']['uncertainty']:.2g})"
        )
    ugs = [(k, v) for k, v in p.items() if k.startswith("Ug:")]
    if ugs:
        lines += [
            "loop_",
            "_lacbed_refine_Ug_index",
            "_lacbed_refine_Ug_real_invA2",
            "_lacbed_refine_Ug_imag_invA2",
            "_lacbed_refine_Ug_uncertainty_invA2",
            "_lacbed_refine_Ug_factor",
            "_lacbed_refine_Ug_real_uncertainty_invA2",
            "_lacbed_refine_Ug_imag_uncertainty_invA2",
            "_lacbed_refine_Ug_factor_imag",
        ]
        for k, v in ugs:
            lines.append(
                f"{k[3:]} {v['U_g'][0]:.6e} {v['U_g'][1]:.6e} {v['U_g_uncertainty']:.2e} "
                f"{v['value']:.5f} {v.get('U_g_re_uncertainty', float('nan')):.2e} "
                f"{v.get('U_g_im_uncertainty', float('nan')):.2e} {v.get('value_im', 0.0):.5f}"
            )
    return lines


def write_outputs(result, run: str | Path, *, figure: bool = True) -> dict[str, Path]:
    """Write RUN/report.json, RUN/refined.cif and (``figure``) RUN/refine.png.

    Parameters
    ----------
    result : RefineResult
    run : str or Path
        Output folder (created).
    figure : bool
        Also draw the figure (:func:`lacbed.plotting.refine.plot_refinement`).

    Returns
    -------
    dict
        "report", "cif" and "figure" paths.
    """
    from lacbed import __version__
    from lacbed.crystal.cif import write_cif

    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    out = {"report": run / "report.json", "cif": run / "refined.cif"}
    record = {"lacbed_version": __version__, **result.as_dict()}
    with atomic_path(out["report"]) as tmp:
        text = json.dumps(_finite(record), indent=2, default=_json_default, allow_nan=False)
        tmp.write_text(text + "\n")
    with atomic_path(out["cif"]) as tmp:
        write_cif(result.crystal, tmp)
        tmp.write_text(tmp.read_text() + "\n".join(cif_record(result)) + "\n")
    if figure:
        from lacbed.plotting.refine import plot_refinement

        out["figure"] = run / "refine.png"
        with atomic_path(out["figure"]) as tmp:
            plot_refinement(result).savefig(tmp, dpi=110)
    return out


def _finite(obj):  # noqa: ANN001, ANN202
    """The record with NaN and ±inf as None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
