"""``lacbed simulate``: the bright-field (000) LACBED pattern of a crystal (any system) at [001].

Contract (issue 3)::

    lacbed simulate X.cif -o OUT --thickness T [T ...]      (T in nm)
    lacbed simulate --felix-inp felix.inp felix.cif -o OUT   (settings from a Felix input file)
    lacbed simulate X.cif --thickness T --plan              (print the plan, solve nothing)
    lacbed simulate X.cif -o OUT -t T --reflections 000 2-20 -220     (dark-field discs)
    lacbed simulate --felix-inp felix.inp --felix-hkl felix.hkl felix.cif -o OUT

OUT by suffix: ``.npy`` (float32; (size, size) for one thickness, (n_thickness, size, size)
otherwise), ``.h5`` (the (n_thickness, size, size) stack, also for one thickness, plus all
metadata), ``.png`` (one panel per thickness). The summary line states the shape written.

Dark-field discs (``--reflections``, Felix-style hkl: ``2-20`` = (2, −2, 0), or ``2,-2,0``; or
the list of a Felix ``felix.hkl`` through ``--felix-hkl``): the intensity of each beam over the
same incident directions as the bright field (docs/physics.md §6). ``.npy`` (n_g, n_thickness,
size, size) float32, ``.h5`` the same stack plus the dataset ``reflections`` (n_g, 3) with the
labels as its attribute ``labels``, ``.png`` a labelled montage. ``--reflections 000`` alone is
the bright field with today's shapes. felix.hkl is read only when named (``--felix-hkl``): a
felix.hkl next to felix.inp is not picked up, so ``--felix-inp`` alone still gives the bright
field.

With ``--felix-inp`` every setting comes from the Felix file, and an option given explicitly on
the command line overrides the file's value (e.g. ``--thickness 100`` or ``--solver exact``).

Orientation (docs/zone_axes.md): ``--zone-axis U V W`` (Felix IIncidentBeamDirection, default
0 0 1), ``--x-direction H K L`` (IXDirection: its part ⊥ the zone axis is the pattern's +x;
default the lowest-index g ⊥ the zone axis) and ``--normal U V W`` (INormalDirection, default the
zone axis). An explicit ``--zone-axis`` replaces the felix.inp's three directions: the file's
IXDirection and INormalDirection are then not used unless given again on the command line.
``--tilt KX KY`` puts the pattern centre off the zone axis: every pixel's tangential incident
wave vector is shifted by (KX, KY) in the pattern's (x, y) frame, in 1/Å (or mrad with
``--tilt-unit mrad``, k = θ/λ); every pixel is then solved (docs/zone_axes.md). felix.inp has no
key for an off-axis centre (Felix centres the pattern on IIncidentBeamDirection), so the tilt
comes only from the command line.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperCommand

from lacbed.cli.app import app
from lacbed.errors import SettingsError

__all__ = ["simulate", "expand_multi_value_options"]

SCATTERING = ("kirkland", "peng", "lobato", "doyle-turner")
ABSORPTION = ("none", "proportional", "bird-king")
SOLVERS = ("fast", "exact")
BACKENDS = ("numpy", "torch")
PNG_UNITS = ("mrad", "1/A")
TILT_UNITS = ("1/a", "mrad")
#: Warn when the engine's convergence estimate exceeds this Z [-] (issue 8: 0.5 %).
CONVERGENCE_WARNING = 0.005
#: Options that take several values after one flag (``--thickness 50 100 150``).
MULTI_VALUE_OPTIONS = ("--thickness", "-t")
#: A progress bar appears once a run has taken this long [s].
PROGRESS_AFTER_S = 2.0


def _number_list(token: str) -> list[str] | None:
    """Split ``"50,100"`` → ``["50", "100"]`` if every piece is a number, else None."""
    pieces = [p for p in re.split(r"[,\s]+", token.strip()) if p]
    if not pieces:
        return None
    for p in pieces:
        try:
            float(p)
        except ValueError:
            return None
    return pieces


def expand_multi_value_options(
    args: list[str], names: tuple[str, ...] = MULTI_VALUE_OPTIONS
) -> list[str]:
    """Rewrite ``--thickness 50 100 150`` as ``--thickness 50 --thickness 100 --thickness 150``.

    click options take one value per flag; this lets one flag take every following token that is
    a number (or a comma-separated list of numbers, also after ``=``), so the contract's form and
    ``--thickness 50,100,150`` both work. Tokens after ``--`` are left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        name, eq, value = token.partition("=")
        if name not in names:
            out.append(token)
            i += 1
            continue
        i += 1
        values: list[str] = []
        if eq:
            values = _number_list(value) or [value]
        else:
            while i < len(args):
                pieces = _number_list(args[i])
                if pieces is None:
                    break
                values.extend(pieces)
                i += 1
        if not values:
            out.append(token)  # let click report the missing value
        for v in values:
            out.extend([name, v])
    return out


#: Suffixes of files, never taken for a reflection after ``--reflections``.
_FILE_SUFFIXES = (".cif", ".npy", ".h5", ".hdf5", ".png", ".inp", ".hkl")


def _looks_like_hkl(token: str) -> bool:
    """A token meant as a reflection (valid or not): starts like 2-20, -220, 2,-2,0 or [2,-2,0]."""
    t = token.strip()
    if not t or t.lower().endswith(_FILE_SUFFIXES):
        return False
    return t[0].isdigit() or t[0] in "[(" or (t[0] == "-" and t[1:2].isdigit())


def expand_reflection_options(args: list[str], name: str = "--reflections") -> list[str]:
    """Rewrite ``--reflections 000 2-20 -220`` as ``--reflections=000 --reflections=2-20 ...``.

    Every following token that looks like a reflection is taken (so ``-220`` is not read as an
    option, and a malformed one such as ``2x0`` reaches the hkl parser and its clear error).
    Tokens after ``--`` are left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        i += 1
        if token != name:
            out.append(token)
            continue
        values = []
        while i < len(args) and _looks_like_hkl(args[i]):
            values.append(args[i])
            i += 1
        if not values:
            out.append(token)  # let click report the missing value
        out.extend(f"{name}={v}" for v in values)
    return out


class _MultiValueCommand(TyperCommand):
    """A Typer command whose ``--thickness`` and ``--reflections`` take several values."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = expand_reflection_options(expand_multi_value_options(list(args)))
        return super().parse_args(ctx, args)


class _Progress:
    """``progress(done, total)`` callback that shows a rich bar once a run takes > 2 s."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self._bar = None
        self._task = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            if time.perf_counter() - self.t0 < PROGRESS_AFTER_S or done >= total:
                return
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("simulating"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("simulate", total=total)
        self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _engine():
    """The simulation function (a seam for tests)."""
    try:
        from lacbed.simulate import simulate_lacbed
    except ImportError:  # the package may not re-export it
        from lacbed.simulate.engine import simulate_lacbed

    return simulate_lacbed


def _load_crystal(path: Path):
    """Read a crystal file (a seam for tests)."""
    from lacbed.crystal import load_crystal

    return load_crystal(path, any_system=True)


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    v = value.strip()
    match = [a for a in allowed if a.lower() == v.lower()]  # case-insensitive: '1/A' or '1/a'
    if not match:
        raise SettingsError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return match[0]


def _debye_waller(value: str | None) -> tuple[bool, float | None]:
    """``--debye-waller``: (given, b_iso) with b_iso None for 'cif'."""
    if value is None:
        return False, None
    if value.strip().lower() == "cif":
        return True, None
    try:
        b = float(value)
    except ValueError:
        raise SettingsError(
            f"--debye-waller {value!r} must be 'cif' or a B value ≥ 0 [Å²]"
        ) from None
    if not b >= 0 or b != b or b == float("inf"):
        raise SettingsError(f"--debye-waller {value!r} must be 'cif' or a B value ≥ 0 [Å²]")
    return True, b


def _check_settings(kw: dict[str, Any]) -> None:
    """Reject impossible settings before any work is done (one clear message each)."""
    import numpy as np

    t = np.asarray(kw["thickness_nm"], dtype=float)
    if t.size == 0:
        raise SettingsError("give at least one thickness: --thickness T [T ...] (nm)")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise SettingsError(f"--thickness values must be > 0 nm, got {t.tolist()}")
    if not kw["voltage_kv"] > 0 or not np.isfinite(kw["voltage_kv"]):
        raise SettingsError(f"--voltage must be > 0 kV, got {kw['voltage_kv']}")
    if kw["size"] < 8:
        raise SettingsError(f"--size must be ≥ 8 pixels, got {kw['size']}")
    hw = kw.get("half_width")
    if hw is not None and (not hw > 0 or not np.isfinite(hw)):
        raise SettingsError(f"--half-width must be > 0 [1/Å], got {hw}")
    sb = kw.get("strong_beams")
    if sb is not None and sb < 1:
        raise SettingsError(f"--strong-beams must be ≥ 1, got {sb}")
    mg = kw.get("max_g")
    if mg is not None and (not mg > 0 or not np.isfinite(mg)):
        raise SettingsError(f"--max-g must be > 0 [1/Å], got {mg}")
    if not kw["kappa"] >= 0 or not np.isfinite(kw["kappa"]):
        raise SettingsError(f"--kappa must be ≥ 0, got {kw['kappa']}")


def _tilt(tilt: tuple[float, float] | None, unit: str, voltage_kv: float) -> tuple[float, float]:
    """``--tilt KX KY`` in ``--tilt-unit`` → (k_x0, k_y0) [1/Å] (mrad: k = θ/λ, θ in rad).

    Raises
    ------
    SettingsError
        A non-finite value or an unknown unit (the range is checked by the plan, before any
        solve: :func:`lacbed.simulate.plan.check_tilt`).
    """
    import math

    unit = _choice("--tilt-unit", unit, TILT_UNITS) or "1/a"
    if tilt is None:
        return (0.0, 0.0)
    if not all(math.isfinite(x) for x in tilt):
        raise SettingsError(f"--tilt values must be finite numbers, got {list(tilt)}")
    if unit == "1/a":
        return (float(tilt[0]), float(tilt[1]))
    from lacbed.constants import electron_constants

    lam = electron_constants(float(voltage_kv) * 1e3).wavelength  # [Å]
    return (1e-3 * tilt[0] / lam, 1e-3 * tilt[1] / lam)


def _check_orientation(kw: dict[str, Any]) -> None:
    """Reject an impossible orientation before any work (one line naming the option)."""
    from lacbed.crystal.orientation import orientation

    orientation(
        kw["zone_axis"],
        kw["x_direction"],
        kw["normal"],
        names=("--zone-axis", "--x-direction", "--normal"),
    )


@app.command("simulate", cls=_MultiValueCommand)
def simulate(
    cif: Annotated[Path, typer.Argument(help="Crystal structure (CIF), any crystal system.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output file: .npy (float32; (size, size) for one thickness, (n_thickness, "
            "size, size) for several), .h5 (always (n_thickness, size, size), with all "
            "metadata) or .png (one panel per thickness).",
        ),
    ] = None,
    thickness: Annotated[
        list[float] | None,
        typer.Option(
            "--thickness",
            "-t",
            help="Thicknesses (nm): --thickness 50 100 150 (or 50,100,150).",
            show_default=False,
        ),
    ] = None,
    felix_inp: Annotated[
        Path | None,
        typer.Option(
            "--felix-inp",
            help="Read the settings from a Felix felix.inp; explicit options override it.",
        ),
    ] = None,
    voltage: Annotated[
        float | None,
        typer.Option("--voltage", help="Accelerating voltage (kV); default 200."),
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Pattern side (pixels); default 128.")
    ] = None,
    half_width: Annotated[
        float | None,
        typer.Option("--half-width", help="Half-width W of the pattern (1/Å); default 4/a."),
    ] = None,
    scattering: Annotated[
        str | None,
        typer.Option(
            "--scattering",
            help="Scattering factors: kirkland|peng|lobato|doyle-turner; default kirkland.",
        ),
    ] = None,
    absorption: Annotated[
        str | None,
        typer.Option(
            "--absorption", help="Absorption: none|proportional|bird-king; default bird-king."
        ),
    ] = None,
    kappa: Annotated[
        float | None,
        typer.Option("--kappa", help="U′/U for --absorption proportional; default 0.078."),
    ] = None,
    debye_waller: Annotated[
        str | None,
        typer.Option("--debye-waller", help="'cif' (the CIF's B) or one B (Å²) for all atoms."),
    ] = None,
    strong_beams: Annotated[
        int | None,
        typer.Option(
            "--strong-beams", help="Number of strong beams; default adaptive (converged)."
        ),
    ] = None,
    convergence_target: Annotated[
        float,
        typer.Option(
            "--convergence-target",
            help="Estimated Z (%) the adaptive budget aims for: above it the pattern is solved "
            "again with 1.5× and 2× the strong beams; default 0.5; 0 solves once.",
        ),
    ] = 0.5,
    no_estimate: Annotated[
        bool,
        typer.Option(
            "--no-estimate",
            help="Skip the convergence estimate (it re-solves a sample of pixels with twice the "
            "strong beams; the pattern is the same) and the adaptive escalation that needs it: "
            "fastest with a fixed --strong-beams, e.g. 96 (docs/ml.md: median Z 0.1 % on val "
            "materials); the result then carries no estimate.",
        ),
    ] = False,
    max_g: Annotated[
        float | None, typer.Option("--max-g", help="Beam-pool limit |g| (1/Å).")
    ] = None,
    solver: Annotated[
        str | None,
        typer.Option("--solver", help="fast (Hermitian + 1st-order absorption) | exact."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="numpy | torch; default numpy.")
    ] = None,
    reflections: Annotated[
        list[str] | None,
        typer.Option(
            "--reflections",
            help="Discs to simulate, Felix-style hkl: --reflections 000 2-20 -220 (or 2,-2,0). "
            "Several give .npy (n_g, n_thickness, size, size), .h5 with the hkl labels, .png a "
            "labelled montage; at [001] half the pixels are solved (2-fold axis along 001).",
            show_default=False,
        ),
    ] = None,
    felix_hkl: Annotated[
        Path | None,
        typer.Option(
            "--felix-hkl",
            help="Take the discs from a Felix felix.hkl (one [h,k,l] per line).",
        ),
    ] = None,
    zone_axis: Annotated[
        tuple[int, int, int] | None,
        typer.Option(
            "--zone-axis",
            help="Zone axis U V W (beam direction at the centre, Felix IIncidentBeamDirection); "
            "default 0 0 1.",
            show_default=False,
        ),
    ] = None,
    x_direction: Annotated[
        tuple[int, int, int] | None,
        typer.Option(
            "--x-direction",
            help="H K L whose part perpendicular to the zone axis is +x (Felix IXDirection); "
            "default the lowest-index g perpendicular to the zone axis.",
            show_default=False,
        ),
    ] = None,
    normal: Annotated[
        tuple[int, int, int] | None,
        typer.Option(
            "--normal",
            help="Surface normal U V W (Felix INormalDirection); default the zone axis.",
            show_default=False,
        ),
    ] = None,
    tilt: Annotated[
        tuple[float, float] | None,
        typer.Option(
            "--tilt",
            help="Pattern centre off the zone axis: shift KX KY of every pixel's tangential "
            "incident wave vector in the pattern's x, y frame, in 1/Å (see --tilt-unit); "
            "default 0 0. Every pixel is then solved.",
            show_default=False,
        ),
    ] = None,
    tilt_unit: Annotated[
        str, typer.Option("--tilt-unit", help="Unit of --tilt: 1/A | mrad (k = θ/λ).")
    ] = "1/A",
    png_units: Annotated[
        str, typer.Option("--png-units", help="Axis units of a .png: mrad | 1/A.")
    ] = "mrad",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary.")] = False,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Print the plan (beams per tile, matrix sizes, predicted CPU) and exit; "
            "nothing is solved or written.",
        ),
    ] = False,
) -> None:
    """Simulate the 000 LACBED pattern (or dark-field discs) of a crystal at a zone axis.

    Pixel convention as Felix: arr(row, col), col → +x (the x-direction, (100) at [001]), row →
    +y = zone axis × x ((010) at [001]), zone axis at the centre. Thicknesses in nm, voltage in
    kV, half-width in 1/Å.
    """
    import numpy as np

    from lacbed._io import check_writable
    from lacbed.simulate.io import check_output_suffix, write_pattern

    if output is None and not plan:
        raise SettingsError("give the output file: -o OUT (.npy, .h5 or .png), or --plan")
    suffix = check_output_suffix(output) if output is not None else None
    if output is not None:
        check_writable(output)  # before any work: an unwritable path fails in a second
    png_units = _choice("--png-units", png_units, PNG_UNITS) or "mrad"
    discs = _reflections(reflections, felix_hkl)
    if not cif.exists():
        raise FileNotFoundError(2, "No such file", str(cif))

    # Settings: lacbed defaults < felix.inp < explicit command-line options.
    kw: dict[str, Any] = {
        "thickness_nm": None,
        "voltage_kv": 200.0,
        "size": 128,
        "half_width": None,
        "scattering": "kirkland",
        "absorption": "bird-king",
        "kappa": 0.078,
        "b_iso": None,
        "strong_beams": None,
        "max_g": None,
        "solver": "fast",
        "backend": "numpy",
        "zone_axis": (0, 0, 1),
        "x_direction": None,
        "normal": None,
    }
    felix = None
    if felix_inp is not None:
        from lacbed.simulate.felix import read_felix_inp

        if not felix_inp.exists():
            raise FileNotFoundError(2, "No such file", str(felix_inp))
        felix = read_felix_inp(felix_inp)
        kw.update(felix.simulation_kwargs())
    dw_given, b_iso = _debye_waller(debye_waller)
    explicit = {
        "thickness_nm": thickness or None,
        "voltage_kv": voltage,
        "size": size,
        "half_width": half_width,
        "scattering": _choice("--scattering", scattering, SCATTERING),
        "absorption": _choice("--absorption", absorption, ABSORPTION),
        "kappa": kappa,
        "strong_beams": strong_beams,
        "max_g": max_g,
        "solver": _choice("--solver", solver, SOLVERS),
        "backend": _choice("--backend", backend, BACKENDS),
    }
    kw.update({k: v for k, v in explicit.items() if v is not None})
    if zone_axis is not None:  # a new zone axis: the file's x-direction and normal do not apply
        kw.update(zone_axis=zone_axis, x_direction=None, normal=None)
    kw.update({k: v for k, v in (("x_direction", x_direction), ("normal", normal)) if v})
    if dw_given:
        kw["b_iso"] = b_iso
    if kw["thickness_nm"] is None:
        raise SettingsError("give the thicknesses: --thickness T [T ...] (nm), or --felix-inp")
    kw["thickness_nm"] = np.atleast_1d(np.asarray(kw["thickness_nm"], dtype=np.float64))
    _check_settings(kw)
    _check_orientation(kw)
    kw["tilt"] = _tilt(tilt, tilt_unit, kw["voltage_kv"])

    crystal = _load_crystal(cif)
    if felix is not None and not dw_given:
        crystal = felix.apply_debye_waller(crystal)

    if plan:
        from lacbed.simulate.plan import plan_lacbed

        typer.echo(plan_lacbed(crystal, **kw, reflections=discs).summary())
        return
    if not convergence_target >= 0 or not np.isfinite(convergence_target):
        raise SettingsError(f"--convergence-target must be ≥ 0 (%), got {convergence_target}")
    target = convergence_target / 100.0 if convergence_target > 0 else None
    bar = _Progress(enabled=not quiet)
    t0 = time.perf_counter()
    try:
        extra = {} if discs is None else {"reflections": discs}
        if no_estimate:
            extra["convergence_sample"] = 0.0
        pattern = _engine()(crystal, progress=bar, convergence_target=target, **kw, **extra)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    if felix is not None:
        record = {
            "felix_inp": str(felix_inp),
            "felix_values": felix.values,
            "overridden": sorted(k for k, v in explicit.items() if v is not None),
        }
        pattern = dataclasses.replace(pattern, settings={**pattern.settings, **record})
    write_pattern(pattern, output, **({"units": png_units} if suffix == ".png" else {}))
    if not quiet:
        typer.echo(f"wrote {output} ({_written(pattern, suffix)}, {elapsed:.2f} s)")
    _warn_convergence(pattern.settings)


def _reflections(reflections: list[str] | None, felix_hkl: Path | None) -> list | None:
    """The discs asked for (hkl triples), or None for the bright field (000 alone included).

    Raises
    ------
    SettingsError
        A malformed or repeated reflection, or both --reflections and --felix-hkl.
    """
    from lacbed.simulate.reflections import as_hkl_array

    if reflections and felix_hkl is not None:
        raise SettingsError("give the discs with --reflections or --felix-hkl, not both")
    if felix_hkl is not None:
        from lacbed.simulate.felix import read_felix_hkl

        if not felix_hkl.exists():
            raise FileNotFoundError(2, "No such file", str(felix_hkl))
        reflections = read_felix_hkl(felix_hkl)
    if not reflections:
        return None
    hkl = as_hkl_array(reflections)
    if len(hkl) == 1 and not hkl.any():
        return None  # 000 alone: the bright field, today's shapes
    return [tuple(int(x) for x in h) for h in hkl]


def _written(pattern, suffix: str) -> str:
    """What the file holds, for the summary line: the array shape as written, or the panels."""
    import numpy as np

    size = np.shape(pattern.intensities)[-1]
    n_t = len(np.atleast_1d(pattern.thickness_nm))
    n_beams = len(np.asarray(pattern.beams).reshape(-1, 3))
    refl = getattr(pattern, "reflections", None)
    if refl is not None:
        from lacbed.simulate.reflections import hkl_label

        n_g = len(refl)
        labels = " ".join(hkl_label(h) for h in refl)
        if suffix == ".png":
            what = f"{n_g * n_t} panels of {size}×{size}"
        else:
            what = f"{n_g}×{n_t}×{size}×{size} float32"
        return f"{what}, discs {labels}, {n_beams} beams"
    if suffix == ".png":
        what = f"{n_t} panel{'s' if n_t > 1 else ''} of {size}×{size}"
    elif suffix == ".npy" and n_t == 1:
        what = f"{size}×{size} float32"
    else:
        what = f"{n_t}×{size}×{size} float32"
    return f"{what}, {n_beams} beams"


def _warn_convergence(settings: dict) -> None:
    """One line on stderr when the result is not converged (estimate > 0.5 % or capped)."""
    z = settings.get("convergence_estimate")
    capped = bool(settings.get("budget_capped"))
    if (z is None or z <= CONVERGENCE_WARNING) and not capped:
        return
    what = "" if z is None else f"estimated Z = {100 * z:.2f} % against twice the strong beams"
    if capped:
        what += ("; " if what else "") + "the beam budget hit its cap (MAX_STRONG)"
    factor = settings.get("budget_factor") or 1.0
    if factor > 1:
        what += f" (after raising the budget to {factor:g}× the adaptive strong beams)"
    typer.echo(f"warning: the pattern may not be converged: {what}", err=True)
