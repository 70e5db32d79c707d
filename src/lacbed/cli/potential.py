"""``lacbed potential`` and ``lacbed factors``: the projected potential and the structure factors.

Contract (issue 2)::

    lacbed potential X.cif -o pot.npy|pot.png [--size N] [--zone-axis U V W]
    lacbed factors X.cif [--voltage 200] [--scattering kirkland|peng|lobato|doyle-turner]
                         [--absorption none|proportional|bird-king] [--max-g G]
                         [--format csv|json] [-o FILE] [--sort strength|g] [--nonzero]

``factors`` writes one row per reflection with |g| ≤ G, strongest first (by |U_g|, then |U′_g|,
then |g| and h, k, l; ``--sort g`` orders by |g| instead), so ``lacbed factors X.cif | head``
shows the reflections that matter; 000 and the reflections that are zero by symmetry are
included, at the end (``--nonzero`` drops the zero ones). Columns: h, k, l,
g [1/Å], V_re, V_im [V], U_re, U_im, Uabs_re, Uabs_im [Å⁻²], xi_nm [nm] (``inf`` in CSV and
``null`` in JSON where U_g = 0).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Annotated

import typer

from lacbed.cli.app import app
from lacbed.errors import SettingsError

__all__ = ["potential", "factors", "factor_rows", "FACTOR_COLUMNS"]

SCATTERING = ("kirkland", "peng", "lobato", "doyle-turner", "peng-c4322")
ABSORPTION = ("none", "proportional", "bird-king")
FORMATS = ("csv", "json")
SORTS = ("strength", "g")
FACTOR_COLUMNS = (
    "h",
    "k",
    "l",
    "g",
    "V_re",
    "V_im",
    "U_re",
    "U_im",
    "Uabs_re",
    "Uabs_im",
    "xi_nm",
)


def _load_crystal(path: Path):
    from lacbed.crystal import load_crystal

    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    return load_crystal(path, any_system=True)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    v = value.strip().lower()
    if v not in allowed:
        raise SettingsError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return v


def _debye_waller(value: str) -> float | None:
    """``--debye-waller``: None for 'cif', else one B ≥ 0 [Å²] for all atoms."""
    if value.strip().lower() == "cif":
        return None
    try:
        b = float(value)
    except ValueError:
        b = float("nan")
    if not (math.isfinite(b) and b >= 0):
        raise SettingsError(f"--debye-waller {value!r} must be 'cif' or a number B ≥ 0 (Å²)")
    return b


@app.command("potential")
def potential(
    cif: Annotated[Path, typer.Argument(help="Crystal structure (CIF), any crystal system.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output: .npy (float32 array) or .png (image).")
    ],
    size: Annotated[int, typer.Option("--size", help="Pixels per side (≥ 8).")] = 128,
    scattering: Annotated[
        str, typer.Option("--scattering", help="kirkland | peng | lobato | doyle-turner.")
    ] = "kirkland",
    debye_waller: Annotated[
        str, typer.Option("--debye-waller", help="'cif' (the CIF's B) or one B (Å²) for all atoms.")
    ] = "cif",
    zone_axis: Annotated[
        tuple[int, int, int] | None,
        typer.Option(
            "--zone-axis",
            help="Project along U V W (default 0 0 1): one 2D cell a1, a2 of that projection, "
            "columns along a1, rows along a2 (docs/zone_axes.md).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Projected potential of one unit cell along [001] (V·Å); rows along y, columns along x.

    With ``--zone-axis U V W``: one 2D cell of the projection along [UVW], integrated over one
    period a|[UVW]| (lacbed.scattering.potential.projection_cell).
    """
    import numpy as np

    from lacbed._io import atomic_path
    from lacbed.scattering import projected_potential

    suffix = output.suffix.lower()
    if suffix not in (".npy", ".png"):
        raise SettingsError(f"output {output.name!r} must end in .npy or .png")
    from lacbed._io import check_writable

    check_writable(output)
    if size < 8:
        raise SettingsError(f"--size must be ≥ 8 pixels, got {size}")
    scattering = _choice("--scattering", scattering, SCATTERING)
    b_iso = _debye_waller(debye_waller)
    zone = (0, 0, 1) if zone_axis is None else tuple(zone_axis)
    from lacbed.crystal.orientation import orientation
    from lacbed.scattering.potential import cell_in_units_of_a, projection_cell

    orientation(zone, names=("--zone-axis", "x-direction", "normal"))  # one-line errors
    crystal = _load_crystal(cif)
    image = projected_potential(crystal, size, scattering=scattering, b_iso=b_iso, zone_axis=zone)
    with atomic_path(output) as tmp:
        if suffix == ".npy":
            np.save(tmp, image.astype(np.float32))
        else:
            from lacbed.plotting.potential import plot_potential

            name = crystal.name or crystal.formula
            label = "".join(str(x) for x in zone)
            lat = cell_in_units_of_a(crystal)
            cell = None if zone == (0, 0, 1) and lat is None else projection_cell(zone, lat)[1]
            title = f"{name}: projected potential [{label}]"
            fig = plot_potential(image, crystal.a, title=title, cell=cell)
            fig.savefig(tmp, dpi=120)
    typer.echo(f"wrote {output} ({size}×{size}, mean {image.mean():.4g} V·Å)", err=True)


def factor_rows(sf) -> list[dict]:
    """One dict per reflection with the keys of :data:`FACTOR_COLUMNS` (plain Python numbers)."""
    rows = []
    for i in range(len(sf)):
        h, k, l_ = (int(v) for v in sf.hkl[i])
        xi = float(sf.xi_nm[i])
        rows.append(
            {
                "h": h,
                "k": k,
                "l": l_,
                "g": float(sf.g_norm[i]),
                "V_re": float(sf.V[i].real),
                "V_im": float(sf.V[i].imag),
                "U_re": float(sf.U[i].real),
                "U_im": float(sf.U[i].imag),
                "Uabs_re": float(sf.U_abs[i].real),
                "Uabs_im": float(sf.U_abs[i].imag),
                "xi_nm": xi if math.isfinite(xi) else None,
            }
        )
    return rows


def _to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FACTOR_COLUMNS)
    for r in rows:
        out = []
        for c in FACTOR_COLUMNS:
            v = r[c]
            if v is None:
                out.append("inf")
            elif isinstance(v, int):
                out.append(str(v))
            else:
                out.append(f"{v:.10g}")
        writer.writerow(out)
    return buf.getvalue()


@app.command("factors")
def factors(
    cif: Annotated[Path, typer.Argument(help="Crystal structure (CIF), any crystal system.")],
    voltage: Annotated[float, typer.Option("--voltage", help="Accelerating voltage (kV).")] = 200.0,
    scattering: Annotated[
        str, typer.Option("--scattering", help="kirkland | peng | lobato | doyle-turner.")
    ] = "kirkland",
    absorption: Annotated[
        str, typer.Option("--absorption", help="none | proportional | bird-king.")
    ] = "bird-king",
    kappa: Annotated[
        float, typer.Option("--kappa", help="U′/U for --absorption proportional.")
    ] = 0.078,
    max_g: Annotated[float, typer.Option("--max-g", help="Largest |g| listed (1/Å).")] = 2.0,
    debye_waller: Annotated[
        str, typer.Option("--debye-waller", help="'cif' (the CIF's B) or one B (Å²) for all atoms.")
    ] = "cif",
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv | json (default: from the -o suffix, else csv)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output file (default: stdout).")
    ] = None,
    nonzero: Annotated[
        bool, typer.Option("--nonzero", help="Leave out reflections with U_g = U′_g = 0.")
    ] = False,
    sort: Annotated[
        str,
        typer.Option(
            "--sort", help="strength: strongest |U_g| first, zeros last | g: by |g|, then h, k, l."
        ),
    ] = "strength",
) -> None:
    """Structure factors V_g, U_g, U′_g and ξ_g of every reflection with |g| ≤ --max-g."""
    import numpy as np

    from lacbed._io import atomic_path
    from lacbed.scattering import reflections_within, structure_factors

    if fmt is None:
        fmt = "json" if output is not None and output.suffix.lower() == ".json" else "csv"
    fmt = _choice("--format", fmt, FORMATS)
    sort = _choice("--sort", sort, SORTS)
    if output is not None:
        from lacbed._io import check_writable

        check_writable(output)
    scattering = _choice("--scattering", scattering, SCATTERING)
    absorption = _choice("--absorption", absorption, ABSORPTION)
    if not (math.isfinite(voltage) and voltage > 0):
        raise SettingsError(f"--voltage must be > 0 kV, got {voltage}")
    if not (math.isfinite(max_g) and max_g > 0):
        raise SettingsError(f"--max-g must be > 0 (1/Å), got {max_g}")
    if not (math.isfinite(kappa) and kappa >= 0):
        raise SettingsError(f"--kappa must be ≥ 0, got {kappa}")
    b_iso = _debye_waller(debye_waller)
    crystal = _load_crystal(cif)
    hkl = reflections_within(crystal, max_g)
    sf = structure_factors(
        crystal,
        hkl,
        voltage=voltage * 1e3,
        scattering=scattering,
        absorption=absorption,
        kappa=kappa,
        b_iso=b_iso,
    )
    rows = factor_rows(sf)  # by |g|, then h, k, l (reflections_within)
    if sort == "strength":
        # strengths rounded to 10 figures so that symmetry-equivalent g (equal up to round-off)
        # tie and keep the |g|, h, k, l order (a stable sort)
        scale = max(float(np.max(np.abs(sf.U), initial=0.0)), 1e-300)
        strong = np.round(np.abs(sf.U) / scale, 10)
        weak = np.round(np.abs(sf.U_abs) / scale, 10)
        order = np.lexsort((np.arange(len(rows)), -weak, -strong))
        rows = [rows[i] for i in order]
    if nonzero:
        rows = [r for r in rows if r["U_re"] or r["U_im"] or r["Uabs_re"] or r["Uabs_im"]]
    text = json.dumps(rows, indent=1) + "\n" if fmt == "json" else _to_csv(rows)
    if output is None:
        typer.echo(text, nl=False)
        return
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output} ({len(rows)} reflections)", err=True)
