"""``lacbed refine``: fit a simulation to a measured bright-field LACBED pattern (issue 13).

Contract::

    lacbed refine EXP X.cif -o RUN [--fit thickness,orientation,B,Ug:200]
                  [--thickness-range 20 400] [--calibration 0.03 --calibration-unit 1/A]
                  [--felix-inp felix.inp]

EXP: .npy, .png, .tif/.tiff or Gatan .dm3/.dm4 (one 2-D image); the calibration comes from an
ImageJ TIFF's resolution and unit or a Gatan file's axis scale in 1/nm, 1/Å, mrad or rad when
present, else from --calibration (which overrides the file's). RUN gets report.json, refined.cif
and refine.png. With --felix-inp the simulation settings come from a Felix felix.inp (voltage,
scattering factors, absorption and κ, strong beams, g limit, the thickness range from its
thickness list, Felix's Debye–Waller rule); options given explicitly override it. See
docs/refine.md.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from lacbed.cli.app import app
from lacbed.errors import SettingsError

__all__ = ["refine_command", "parse_start"]


def parse_start(items: list[str]) -> dict[str, float]:
    """``["B:Ga=0.6", "Ug:200=1.1"]`` → ``{"B:Ga": 0.6, "Ug:200": 1.1}``."""
    out: dict[str, float] = {}
    for item in items:
        for piece in (p for p in item.split(";") if p.strip()):
            name, eq, value = piece.partition("=")
            try:
                out[name.strip()] = float(value)
            except ValueError:
                eq = ""
            if not eq:
                raise SettingsError(f"--start {piece!r}: write NAME=VALUE, e.g. B:Ga=0.6")
    return out


@app.command("refine")
def refine_command(
    experiment: Annotated[
        Path, typer.Argument(help="Measured pattern: .npy, .png, .tif or Gatan .dm3/.dm4.")
    ],
    cif: Annotated[Path, typer.Argument(help="Starting crystal structure (CIF).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (RUN).")],
    fit: Annotated[
        str,
        typer.Option(
            "--fit",
            help="Comma-separated: thickness, orientation, B (every element) or B:El, Ug:hkl "
            "(one real factor on a centric U_g; a complex one, two parameters, on an acentric).",
        ),
    ] = "thickness,orientation",
    thickness_range: Annotated[
        tuple[float, float] | None,
        typer.Option(
            "--thickness-range",
            help="Thicknesses searched: MIN MAX (nm); default 20 400, or felix.inp's list.",
            show_default=False,
        ),
    ] = None,
    thickness_step: Annotated[
        float, typer.Option("--thickness-step", help="Step of the dense thickness scan (nm).")
    ] = 0.5,
    thickness: Annotated[
        float | None,
        typer.Option("--thickness", help="Fixed thickness (nm) when it is not in --fit."),
    ] = None,
    calibration: Annotated[
        float | None,
        typer.Option("--calibration", help="Sampling per pixel (overrides the file's)."),
    ] = None,
    calibration_unit: Annotated[
        str, typer.Option("--calibration-unit", help="Unit of --calibration: 1/A, 1/nm or mrad.")
    ] = "1/A",
    voltage: Annotated[
        float | None,
        typer.Option("--voltage", help="Accelerating voltage (kV); default 200 or felix.inp's."),
    ] = None,
    start: Annotated[
        list[str] | None,
        typer.Option(
            "--start",
            help="Starting value, e.g. B:Ga=0.6, Ug:200=1.1 (a factor), Ug:111:im=0.02 "
            "(imaginary part of an acentric U_g's factor).",
        ),
    ] = None,
    sim_size: Annotated[
        int | None, typer.Option("--sim-size", help="Simulation side (px); default from the disc.")
    ] = None,
    strong_beams: Annotated[
        int | None,
        typer.Option(
            "--strong-beams",
            help="Fixed strong-beam budget per tile (default: adaptive; 80 when U_g is fitted).",
        ),
    ] = None,
    n_jobs: Annotated[int | None, typer.Option("--jobs", help="Engine worker threads.")] = None,
    felix_inp: Annotated[
        Path | None,
        typer.Option(
            "--felix-inp",
            help="Take the simulation settings from a Felix felix.inp ([001] only); explicit "
            "options override it.",
        ),
    ] = None,
    figure: Annotated[bool, typer.Option("--figure/--no-figure", help="Draw refine.png.")] = True,
) -> None:
    """Fit thickness, alignment, Debye–Waller factors and U_g to a measured LACBED pattern."""
    from lacbed.refine import load_experiment, refine
    from lacbed.refine.report import write_outputs

    settings = _settings(felix_inp, voltage=voltage, thickness_range=thickness_range,
                         strong_beams=strong_beams, fit=fit)  # fmt: skip
    voltage = settings.pop("voltage_kv")
    voltage_source = settings.pop("voltage_source")
    if settings.pop("felix_beams_raised", False):
        typer.echo(
            f"warning: {felix_inp}'s IMinStrongBeams is below the {settings['strong_beams']} strong "
            "beams a U_g fit needs; using them (--strong-beams overrides)",
            err=True,
        )
    with warnings.catch_warnings(record=True) as caught:  # e.g. the file's beam energy differs
        warnings.simplefilter("always", UserWarning)
        exp = load_experiment(
            experiment,
            calibration=calibration,
            calibration_unit=calibration_unit,
            voltage_kv=voltage,
            voltage_source=voltage_source,
        )
    for w in caught:
        if issubclass(w.category, UserWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not cif.exists():
        raise FileNotFoundError(2, "no such file", str(cif))
    _check_output_folder(output)  # before minutes of fitting, not after
    crystal = cif
    felix = settings.pop("felix", None)
    if felix is not None:
        from lacbed.crystal import load_crystal

        crystal = felix.apply_debye_waller(load_crystal(cif))
    result = refine(
        exp,
        crystal,
        fit=fit,
        thickness_step=thickness_step,
        thickness=thickness,
        start=parse_start(start or []),
        voltage_kv=voltage,
        sim_size=sim_size,
        n_jobs=n_jobs,
        **settings,
    )
    if felix is not None:
        result.settings["felix_inp"] = {"path": str(felix_inp), "values": felix.values}
    paths = write_outputs(result, output, figure=figure)
    _print_result(result, paths)


def _print_result(result, paths: dict) -> None:  # noqa: ANN001 (RefineResult)
    """The alignment, each parameter (and U_g), the convergence estimate, Z and the files."""
    al = result.alignment
    typer.echo(
        f"aligned: zone axis at row {al.row:.2f}, col {al.col:.2f} px, rotation {al.angle:.2f}°, "
        f"scale {al.scale:.5f} 1/Å per px, blur σ {al.blur:.2f} px"
    )
    for name, p in result.parameters.items():
        typer.echo(f"{name} = {p['value']:.5g} ± {p['uncertainty']:.2g} {p['unit']}")
        if "value_im" in p:  # acentric U_g: the complex factor's imaginary part, and U_g itself
            typer.echo(f"{name}:im = {p['value_im']:.5g} ± {p['uncertainty_im']:.2g}")
        if "U_g" in p:
            typer.echo(
                f"  U_g = {p['U_g'][0]:.5e} ({p['U_g_re_uncertainty']:.1e}) "
                f"{p['U_g'][1]:+.5e} ({p['U_g_im_uncertainty']:.1e}) i  {p['U_g_unit']}"
            )
    est = result.settings.get("convergence_estimate")
    if est is not None:
        typer.echo(f"convergence estimate of the fitted model: Z = {100 * est:.3f} % against "
                   "twice the strong beams")  # fmt: skip
    typer.echo(
        f"Z = {100 * result.z:.3f} %, {result.engine_calls} engine calls, "
        f"{result.cpu_s:.1f} s CPU; wrote {', '.join(str(p) for p in paths.values())}"
    )


def _settings(
    felix_inp: Path | None, *, voltage, thickness_range, strong_beams, fit: str = ""
) -> dict:
    """refine()'s simulation settings: lacbed defaults < felix.inp < explicit options.

    Returns the keyword arguments (``voltage_kv``, ``thickness_range``, ``strong_beams`` and,
    from a felix.inp, ``max_g``, ``scattering``, ``absorption``, ``kappa``), ``voltage_source``
    (for messages) and, under ``"felix"``, the :class:`lacbed.simulate.felix.FelixInput` (its
    Debye–Waller rule is applied to the crystal by the caller). A U_g fit (``fit`` names a
    ``Ug:``) takes at least :data:`lacbed.refine.fit.UG_STRONG_BEAMS` strong beams from a
    felix.inp (``felix_beams_raised`` True when its IMinStrongBeams was lower); only an explicit
    ``strong_beams`` goes below.
    """
    from lacbed.refine.fit import UG_STRONG_BEAMS

    out = {"voltage_kv": 200.0, "thickness_range": (20.0, 400.0), "strong_beams": None,
           "voltage_source": "the default 200 kV"}  # fmt: skip
    if felix_inp is not None:
        from lacbed.simulate.felix import read_felix_inp

        if not felix_inp.exists():
            raise FileNotFoundError(2, "no such file", str(felix_inp))
        felix = read_felix_inp(felix_inp)
        if felix.zone_axis != (0, 0, 1) or felix.normal not in (None, (0, 0, 1)):
            raise SettingsError(
                f"{felix_inp}: lacbed refine fits [001] patterns only; this file has "
                f"IIncidentBeamDirection {list(felix.zone_axis)}"
                + ("" if felix.normal is None else f" and INormalDirection {list(felix.normal)}")
            )
        kw = felix.simulation_kwargs()
        t = np.asarray(felix.thickness_nm, dtype=np.float64)
        out.update({k: kw[k] for k in ("voltage_kv", "strong_beams", "max_g", "scattering",
                                        "absorption", "kappa")})  # fmt: skip
        if t.size > 1 and t.max() > t.min():
            out["thickness_range"] = (float(t.min()), float(t.max()))
        fb = out["strong_beams"]
        if "ug:" in fit.lower() and fb is not None and fb < UG_STRONG_BEAMS:
            out["strong_beams"], out["felix_beams_raised"] = UG_STRONG_BEAMS, True
        out["felix"] = felix
        out["voltage_source"] = "felix.inp"
    if voltage is not None:
        out["voltage_kv"] = float(voltage)
        out["voltage_source"] = "--voltage"
    if thickness_range is not None:
        out["thickness_range"] = tuple(float(v) for v in thickness_range)
    if strong_beams is not None:
        out["strong_beams"] = int(strong_beams)
        out.pop("felix_beams_raised", None)
    return out


def _check_output_folder(output: Path) -> None:
    """RUN must be a folder that exists or can be made, and writable."""
    import os

    if output.exists() and not output.is_dir():
        raise SettingsError(f"-o {output} exists and is not a folder")
    parent = output if output.exists() else next(p for p in output.parents if p.exists())
    if not os.access(parent, os.W_OK):
        raise SettingsError(f"-o {output}: {parent} is not writable")
