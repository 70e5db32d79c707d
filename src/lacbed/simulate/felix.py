"""Reading Felix input files (``felix.inp``) so that a Felix user can rerun a case unchanged.

Felix (Beanland, Evans & Römer, v1.3) reads ``felix.inp`` by line position: the value of each
line is taken after column 27 and the labels are ignored. lacbed reads the file **by label**, so
a real Felix file, a reordered one and one with extra lines all give the same settings
(docs/physics.md §11).

Meaning of the supported keys (Felix v1.3 source, ``ug_matrix_mod`` and ``felixrefine``):

=============================  =====================================================================
``IPixelCount``                pattern radius [pixels]; the pattern is 2·IPixelCount square
``ROuterConvergenceAngle``     half-width W of the pattern [1/Å] (``RConvergenceAngle`` in older files)
``RAcceleratingVoltage (kV)``  accelerating voltage [kV]
``RInitialThickness`` ...      thicknesses [Å]: initial, initial+delta, ... up to final inclusive
``IMinStrongBeams``            strong-beam budget (lacbed uses one set per pattern, not per pixel)
``IMinWeakBeams``              ignored: lacbed folds weak beams in by its own rule (Felix's Bethe
                               correction is dimensionally inconsistent, docs/physics.md §11 fault 4)
``RgLimit``                    beam-pool limit |g| [1/Å, no 2π]; 0 means "lacbed's default pool"
                               (complete shells; Felix's own RgLimit = 0 cuts mid-shell, fault 5)
``IAbsorbFLAG``                0 none, 1 proportional (U′ = κU), 2 Bird–King (Felix's ``SELECT CASE``)
``RAbsorptionPer``             κ in per cent for the proportional model
``IScatterFactorMethodFLAG``   0 Kirkland, 1 Peng, 2 Doyle–Turner, 3 Lobato (Felix's numbering).
                               Felix's Peng and Lobato options evaluate f at 2π|g| (fault 2);
                               lacbed evaluates them correctly, so those patterns differ from Felix's
``RDebyeWallerConstant``       Felix's rule: each atom keeps the CIF's B unless it is outside
                               [0, 10] Å², where the constant is used instead
``IIncidentBeamDirection``     zone axis [UVW] (beam direction at the pattern centre); default [0,0,1]
``IXDirection``                (HKL) whose part ⊥ [UVW] is the pattern's +x; default: lacbed's rule,
                               the lowest-index g ⊥ [UVW] (:mod:`lacbed.crystal.orientation`)
``INormalDirection``           surface normal; default the zone axis. Felix gives the zone axis and
                               the normal in the direct basis and IXDirection in the reciprocal
                               one; for a cubic crystal they coincide (docs/zone_axes.md)
=============================  =====================================================================

Keys that only steer Felix's refinement or its output files are ignored (logged at debug level);
unknown keys give a logged warning, not an error.

References
----------
.. [1] R. Beanland, K. Evans, R. A. Römer et al., Felix, https://github.com/RudoRoemer/Felix
   (v1.3 input format and flag meanings).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lacbed.errors import SettingsError

__all__ = [
    "FelixInput",
    "read_felix_inp",
    "read_felix_hkl",
    "parse_felix_inp",
    "felix_thicknesses",
]

log = logging.getLogger(__name__)

#: Keys that only steer Felix's refinement, output or bookkeeping: read and ignored.
IGNORED_KEYS = frozenset(
    {
        "IWriteFLAG",
        "IByteSize",
        "IHolzFLAG",  # Felix v1.3 builds the 3D pool regardless; lacbed always includes HOLZ
        "IMinReflectionPool",  # pool size is set by RgLimit in lacbed
        "RAcceptanceAngle",
        "RPrecision",
        "IRefineModeFLAG",
        "IWeightingFLAG",
        "IRefineMethodFLAG",
        "ICorrelationFLAG",
        "IImageProcessingFLAG",
        "RBlurRadius",
        "INoofUgs",
        "IAtomicSites",
        "IPrint",
        "RSimplexLengthScale",
        "RExitCriteria",
        "IImageFLAG",
        "IOutputFLAG",
        "IBinorTextFLAG",
        "ICentralBeamFLAG",
        "IMaskFLAG",
        "IZolzFLAG",
        "IBeamConvergenceFLAG",
        "IPseudoCubicFLAG",
        "IXDirectionFLAG",
        "IDevFLAG",
        "IDebugFLAG",
        "IInitialSimulationFLAG",
        "RInnerConvergenceAngle",
        "IReflectOut",
        "ISimFLAG",
        "IScanFLAG",
        "INoOfLacbedPatterns",
        "RFrameAngle",
    }
)

#: Keys lacbed reads.
SUPPORTED_KEYS = frozenset(
    {
        "IPixelCount",
        "ROuterConvergenceAngle",
        "RConvergenceAngle",
        "RAcceleratingVoltage",
        "RInitialThickness",
        "RFinalThickness",
        "RDeltaThickness",
        "IMinStrongBeams",
        "IMinWeakBeams",
        "RgLimit",
        "IAbsorbFLAG",
        "RAbsorptionPer",
        "RAbsorptionPercentage",
        "IScatterFactorMethodFLAG",
        "RDebyeWallerConstant",
        "IIncidentBeamDirection",
        "IXDirection",
        "INormalDirection",
        "IAnisoDebyeWallerFlag",
    }
)

#: Felix's ``IScatterFactorMethodFLAG`` → lacbed's scattering parametrisation.
SCATTERING_BY_FLAG = {0: "kirkland", 1: "peng", 2: "doyle-turner", 3: "lobato"}
#: Felix's ``IAbsorbFLAG`` → lacbed's absorption model.
ABSORPTION_BY_FLAG = {0: "none", 1: "proportional", 2: "bird-king"}
#: Felix's direction keys, in the order of :func:`lacbed.crystal.orientation.orientation`.
DIRECTION_KEYS = ("IIncidentBeamDirection", "IXDirection", "INormalDirection")
#: Felix's rule for a "realistic" CIF B [Å²]: values outside are replaced by RDebyeWallerConstant.
FELIX_B_RANGE = (0.0, 10.0)

_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)")


def parse_felix_inp(text: str, *, source: str = "<string>") -> dict[str, str]:
    """Split the text of a felix.inp into ``{label: raw value}`` by label, not by position.

    A line ``Label (unit) = value  # comment`` gives ``{"Label": "value"}``: the label is the first
    word before ``=``, anything after ``#`` or ``!`` is a comment, blank and comment-only lines are
    skipped. A line without ``=`` or a key given twice is an error (:class:`SettingsError`).
    """
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"[#!]", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise SettingsError(f"{source}:{lineno}: expected 'Label = value', got {raw.strip()!r}")
        left, value = line.split("=", 1)
        m = _LABEL.match(left)
        if m is None:
            raise SettingsError(f"{source}:{lineno}: no label before '=' in {raw.strip()!r}")
        key = m.group(1)
        if key in values:
            raise SettingsError(f"{source}:{lineno}: key {key} is given twice")
        values[key] = value.strip()
    return values


def felix_thicknesses(initial_A: float, final_A: float, delta_A: float) -> np.ndarray:
    """Felix's thickness list [Å]: initial, initial+delta, ... up to final inclusive.

    Felix counts ``IThicknessCount = (final − initial)/delta + 1`` (integer division) thicknesses
    starting at ``initial``; a small tolerance absorbs the rounding of the division.
    ``delta ≤ 0`` or ``final ≤ initial`` gives the single thickness ``initial``.
    """
    if delta_A <= 0 or final_A <= initial_A:
        return np.array([initial_A], dtype=np.float64)
    n = int(math.floor((final_A - initial_A) / delta_A + 1e-9)) + 1
    return initial_A + delta_A * np.arange(n, dtype=np.float64)


@dataclass(frozen=True)
class FelixInput:
    """The simulation settings of a felix.inp, in lacbed's units.

    Attributes
    ----------
    pixel_count : int
        Felix ``IPixelCount``: pattern radius [pixels]; the pattern is ``size = 2·pixel_count``.
    half_width : float
        Half-width W of the pattern [1/Å] (``ROuterConvergenceAngle``).
    voltage_kv : float
        Accelerating voltage [kV].
    thickness_nm : tuple of float
        Thicknesses [nm] (Felix's Å list divided by 10).
    strong_beams : int or None
        ``IMinStrongBeams`` (None: lacbed's adaptive default).
    weak_beams : int
        ``IMinWeakBeams`` (recorded, not used; see the module docstring).
    max_g : float or None
        ``RgLimit`` [1/Å]; None when RgLimit = 0 (lacbed's default pool).
    absorption : str
        "none", "proportional" or "bird-king".
    kappa : float
        Proportional-absorption ratio κ = RAbsorptionPer/100 [-].
    scattering : str
        "kirkland", "peng", "doyle-turner" or "lobato".
    debye_waller_constant : float
        ``RDebyeWallerConstant`` [Å²]: the B used for atoms whose CIF B is outside [0, 10] Å².
    zone_axis : tuple of 3 int
        ``IIncidentBeamDirection`` as written (default (0, 0, 1)).
    x_direction, normal : tuple of 3 int or None
        ``IXDirection`` and ``INormalDirection`` as written; None when the file has no such key
        (lacbed's defaults: the lowest-index g ⊥ the zone axis, and the zone axis).
    source : str
        Path of the file read.
    values : dict
        Every label → raw string value of the file (for the record).
    """

    pixel_count: int
    half_width: float
    voltage_kv: float
    thickness_nm: tuple[float, ...]
    strong_beams: int | None = None
    weak_beams: int = 0
    max_g: float | None = None
    absorption: str = "bird-king"
    kappa: float = 0.078
    scattering: str = "kirkland"
    debye_waller_constant: float = 0.0
    zone_axis: tuple[int, int, int] = (0, 0, 1)
    x_direction: tuple[int, int, int] | None = None
    normal: tuple[int, int, int] | None = None
    source: str = field(default="", compare=False)
    values: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def size(self) -> int:
        """Pattern side length [pixels] (2·IPixelCount)."""
        return 2 * self.pixel_count

    @property
    def thickness_A(self) -> np.ndarray:
        """Thicknesses [Å] as Felix lists them."""
        return 10.0 * np.asarray(self.thickness_nm, dtype=np.float64)

    def simulation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`lacbed.simulate.simulate_lacbed` for this input.

        ``b_iso`` is None (the crystal's own B): apply Felix's Debye–Waller rule to the crystal
        first with :meth:`apply_debye_waller`.
        """
        return {
            "thickness_nm": np.asarray(self.thickness_nm, dtype=np.float64),
            "voltage_kv": self.voltage_kv,
            "size": self.size,
            "half_width": self.half_width,
            "scattering": self.scattering,
            "absorption": self.absorption,
            "kappa": self.kappa,
            "b_iso": None,
            "strong_beams": self.strong_beams,
            "max_g": self.max_g,
            "zone_axis": self.zone_axis,
            "x_direction": self.x_direction,
            "normal": self.normal,
        }

    def apply_debye_waller(self, crystal: Any) -> Any:
        """Felix's Debye–Waller rule: B outside [0, 10] Å² → ``RDebyeWallerConstant``.

        Felix (``GetVgContributionij``) keeps each atom's CIF B and replaces only values it deems
        unrealistic (B > 10 Å² or B < 0) by the constant. Returns the crystal unchanged when no
        atom is affected.
        """
        b = np.asarray(crystal.b_iso, dtype=np.float64)
        bad = (b < FELIX_B_RANGE[0]) | (b > FELIX_B_RANGE[1])
        if not bad.any():
            return crystal
        log.info(
            "Felix rule: %d site(s) with B outside [0, 10] Å² use RDebyeWallerConstant = %g Å²",
            int(bad.sum()),
            self.debye_waller_constant,
        )
        return crystal.with_b_iso(np.where(bad, self.debye_waller_constant, b))


def _number(key: str, raw: str, kind: type) -> Any:
    text = raw.strip().replace("D", "E").replace("d", "e")
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"felix.inp: {key} = {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise SettingsError(f"felix.inp: {key} = {raw!r} is not a finite number")
    if kind is int:
        if value != int(value):
            raise SettingsError(f"felix.inp: {key} = {raw!r} must be an integer")
        return int(value)
    return value


def _vector(key: str, raw: str) -> tuple[int, int, int]:
    parts = [p for p in re.split(r"[\s,]+", raw.strip().strip("[]()").strip()) if p]
    if len(parts) != 3:
        raise SettingsError(f"felix.inp: {key} = {raw!r} is not a vector [u,v,w]")
    return tuple(_number(key, p, int) for p in parts)  # type: ignore[return-value]


def _directions(values: dict[str, str], source: str) -> tuple:
    """Zone axis, x-direction and normal of a felix.inp (None where absent), checked."""
    from lacbed.crystal.orientation import orientation

    vec = [_vector(k, values[k]) if k in values else None for k in DIRECTION_KEYS]
    zone = vec[0] if vec[0] is not None else (0, 0, 1)
    try:
        orientation(zone, vec[1], vec[2], names=DIRECTION_KEYS)
    except SettingsError as exc:
        raise SettingsError(f"{source}: {exc}") from None
    return zone, vec[1], vec[2]


def felix_input_from_values(values: dict[str, str], *, source: str = "<string>") -> FelixInput:
    """Build a :class:`FelixInput` from ``{label: raw value}`` (see :func:`parse_felix_inp`)."""
    for key in values:
        if key in SUPPORTED_KEYS:
            continue
        if key in IGNORED_KEYS:
            log.debug("felix.inp: %s only steers Felix's refinement or output; ignored", key)
        else:
            log.warning("felix.inp: unknown key %s ignored", key)

    def get(key: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
        if key not in values:
            if required:
                raise SettingsError(f"{source}: required key {key} is missing")
            return default
        return _number(key, values[key], kind)

    zone_axis, x_direction, normal = _directions(values, source)
    if get("IAnisoDebyeWallerFlag", int, 0) != 0:
        raise SettingsError(
            f"{source}: IAnisoDebyeWallerFlag = {values['IAnisoDebyeWallerFlag']} is not "
            "supported; lacbed uses isotropic Debye-Waller factors (IAnisoDebyeWallerFlag = 0)"
        )

    pixel_count = get("IPixelCount", int, required=True)
    if pixel_count < 4:
        raise SettingsError(f"{source}: IPixelCount = {pixel_count} must be ≥ 4 (size ≥ 8)")
    if "ROuterConvergenceAngle" in values:
        half_width = get("ROuterConvergenceAngle", float)
    elif "RConvergenceAngle" in values:
        half_width = get("RConvergenceAngle", float)
    else:
        raise SettingsError(f"{source}: required key ROuterConvergenceAngle is missing")
    if half_width <= 0:
        raise SettingsError(f"{source}: ROuterConvergenceAngle = {half_width} must be > 0 [1/Å]")
    voltage = get("RAcceleratingVoltage", float, required=True)
    if voltage <= 0:
        raise SettingsError(f"{source}: RAcceleratingVoltage = {voltage} must be > 0 [kV]")

    t0 = get("RInitialThickness", float, required=True)
    t1 = get("RFinalThickness", float, t0)
    dt = get("RDeltaThickness", float, 0.0)
    if t0 <= 0:
        raise SettingsError(f"{source}: RInitialThickness = {t0} must be > 0 [Å]")
    thick_A = felix_thicknesses(t0, t1, dt)

    strong = get("IMinStrongBeams", int, None)
    if strong is not None and strong < 1:
        raise SettingsError(f"{source}: IMinStrongBeams = {strong} must be ≥ 1")
    weak = get("IMinWeakBeams", int, 0)
    if weak:
        log.info("felix.inp: IMinWeakBeams = %d ignored; lacbed chooses its weak beams", weak)
    g_limit = get("RgLimit", float, 0.0)
    if g_limit < 0:
        raise SettingsError(f"{source}: RgLimit = {g_limit} must be ≥ 0 [1/Å] (0: default)")

    absorb_flag = get("IAbsorbFLAG", int, 2)
    if absorb_flag not in ABSORPTION_BY_FLAG:
        raise SettingsError(
            f"{source}: IAbsorbFLAG = {absorb_flag} is not supported "
            "(0 none, 1 proportional, 2 Bird-King)"
        )
    per = values.get("RAbsorptionPer", values.get("RAbsorptionPercentage"))
    kappa = 0.078 if per is None else _number("RAbsorptionPer", per, float) / 100.0
    if kappa < 0:
        raise SettingsError(f"{source}: RAbsorptionPer = {100 * kappa} must be ≥ 0 [%]")
    scatter_flag = get("IScatterFactorMethodFLAG", int, 0)
    if scatter_flag not in SCATTERING_BY_FLAG:
        raise SettingsError(
            f"{source}: IScatterFactorMethodFLAG = {scatter_flag} is not supported "
            "(0 Kirkland, 1 Peng, 2 Doyle-Turner, 3 Lobato)"
        )
    b_const = get("RDebyeWallerConstant", float, 0.0)
    if b_const < 0:
        raise SettingsError(f"{source}: RDebyeWallerConstant = {b_const} must be ≥ 0 [Å²]")

    return FelixInput(
        pixel_count=pixel_count,
        half_width=float(half_width),
        voltage_kv=float(voltage),
        thickness_nm=tuple(float(t) / 10.0 for t in thick_A),
        strong_beams=strong,
        weak_beams=weak,
        max_g=None if g_limit == 0 else float(g_limit),
        absorption=ABSORPTION_BY_FLAG[absorb_flag],
        kappa=float(kappa),
        scattering=SCATTERING_BY_FLAG[scatter_flag],
        debye_waller_constant=float(b_const),
        zone_axis=zone_axis,
        x_direction=x_direction,
        normal=normal,
        source=source,
        values=dict(values),
    )


def read_felix_inp(path: str | Path) -> FelixInput:
    """Read a Felix ``felix.inp`` by label (see the module docstring for the keys).

    Parameters
    ----------
    path : str or Path
        The felix.inp file.

    Returns
    -------
    FelixInput

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    SettingsError
        A malformed line, a missing required key, or a value lacbed does not support (e.g. an
        IXDirection parallel to the zone axis), named in the message.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    return felix_input_from_values(parse_felix_inp(text, source=str(path)), source=str(path))


_HKL_LINE = re.compile(r"^\s*\[\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\]")


def read_felix_hkl(path: str | Path) -> list[tuple[int, int, int]]:
    """The reflections of a Felix ``felix.hkl``: one ``[h,k,l]`` per line, in file order.

    Felix simulates one LACBED disc per listed reflection. Text after the bracket on a line
    (Felix's refinement input may carry numbers there) is ignored, as are blank lines and lines
    starting with ``#`` or ``!``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    SettingsError
        A line that does not start with ``[h,k,l]`` (named with its number), or no reflection.
    """
    path = Path(path)
    out: list[tuple[int, int, int]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip()[:1] in ("#", "!"):
            continue
        m = _HKL_LINE.match(line)
        if m is None:
            raise SettingsError(f"{path}: line {n} {line.strip()!r} is not a reflection [h,k,l]")
        out.append(tuple(int(x) for x in m.groups()))  # type: ignore[arg-type]
    if not out:
        raise SettingsError(f"{path}: no reflection [h,k,l] in the file")
    return out
