"""The measured pattern: reading it (the I/O edge), its calibration, its disc and its bad pixels.

Formats: ``.npy`` (numpy), ``.png`` (matplotlib's reader), ``.tif``/``.tiff`` (tifffile) and
Gatan DigitalMicrograph ``.dm3``/``.dm4`` (RosettaSciIO, ``rsciio.digitalmicrograph``, imported
only when such a file is read). No file-format parser is written here. A Gatan file must hold one
real 2-D image: several images, a 1-D spectrum, a 3-D stack, RGB or complex data are refused.

Calibration: the pattern's sampling in reciprocal space, Δk [1/Å per pixel]. It is taken from the
file when present: an ImageJ TIFF's resolution and unit, or a Gatan file's axis scale and units
(1/nm, 1/Å, mrad or rad per pixel, both axes equal); a real-space unit (nm, µm: an image, not a
diffraction pattern) or none means no calibration. Otherwise it must be given (``calibration``
with ``calibration_unit`` '1/A', '1/nm' or 'mrad'). Angles convert with θ ≈ λk
(docs/physics.md §6).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from lacbed.errors import LacbedError

__all__ = [
    "Experiment",
    "load_experiment",
    "calibration_to_inv_angstrom",
    "calibration_from_axes",
    "find_disc",
    "bad_pixel_mask",
    "symmetry_centre",
    "bin_image",
    "FORMATS",
]

#: File suffixes :func:`load_experiment` reads.
FORMATS: tuple[str, ...] = (".npy", ".png", ".tif", ".tiff", ".dm3", ".dm4")
#: Calibration units accepted [per pixel].
UNITS: tuple[str, ...] = ("1/A", "1/nm", "mrad")
#: Spellings of a file's axis unit that mean reciprocal space or angle, and their canonical form
#: (after removing spaces and writing Å as A; DigitalMicrograph writes '1/nm').
_AXIS_UNITS: dict[str, str] = {
    "1/nm": "1/nm", "nm^-1": "1/nm", "nm-1": "1/nm", "nm⁻¹": "1/nm",
    "1/A": "1/A", "A^-1": "1/A", "A-1": "1/A", "A⁻¹": "1/A",
    "mrad": "mrad", "rad": "rad",
}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Experiment:
    """A measured bright-field LACBED pattern.

    Attributes
    ----------
    image : ndarray, shape (rows, cols), float64
        Intensities [counts or arbitrary units].
    calibration : float
        Reciprocal-space sampling Δk [1/Å per pixel].
    source : str
        Where the image came from.
    calibration_source : str
        'metadata' or 'option'.
    metadata : dict
        Anything else worth reporting (original units, shape).
    """

    image: np.ndarray
    calibration: float
    source: str = ""
    calibration_source: str = "option"
    metadata: dict = field(default_factory=dict)


def calibration_to_inv_angstrom(value: float, unit: str, wavelength: float) -> float:
    """Convert a calibration to Δk [1/Å per pixel].

    Parameters
    ----------
    value : float
        Calibration per pixel, in ``unit``.
    unit : {'1/A', '1/nm', 'mrad'}
        Its unit; 'mrad' uses k = θ/λ (small angles, docs/physics.md §6).
    wavelength : float
        Electron wavelength λ [Å].
    """
    if not (np.isfinite(value) and value > 0):
        raise LacbedError(f"the calibration must be a number > 0 per pixel, got {value!r}")
    u = unit.replace("Å", "A").strip()
    if u in ("1/A", "A^-1", "1/Å"):
        return float(value)
    if u in ("1/nm", "nm^-1"):
        return float(value) / 10.0
    if u == "mrad":
        return float(value) * 1e-3 / wavelength
    if u == "rad":
        return float(value) / wavelength
    raise LacbedError(f"unknown calibration unit {unit!r}; use one of {', '.join(UNITS)}")


def calibration_from_axes(axes: list[dict], wavelength: float) -> float | None:
    """Δk [1/Å per pixel] from axis dictionaries ({"scale", "units"}), or None when not calibrated.

    Both signal axes must carry the same scale in a reciprocal-space or angular unit
    ('1/nm', 'nm^-1', 'nm-1', '1/Å', 'Å^-1', 'mrad', 'rad'); spatial units (nm, µm) or no units
    give None.
    """
    scales = []
    for ax in axes[-2:]:
        unit = _AXIS_UNITS.get(_plain_unit(ax.get("units")))
        if unit is None:
            return None
        scales.append(calibration_to_inv_angstrom(float(ax.get("scale", 0.0)), unit, wavelength))
    if len(scales) != 2 or not np.isclose(scales[0], scales[1], rtol=1e-3):
        return None
    return float(scales[0])


def _plain_unit(unit: object) -> str:
    """An axis unit without spaces, with Å (either code point) written A."""
    return str(unit or "").replace(" ", "").replace("\u212b", "A").replace("Å", "A")


def _tiff_axes(tif) -> list[dict] | None:  # noqa: ANN001 (tifffile.TiffFile)
    """Axes (scale per pixel, unit) from an ImageJ TIFF's resolution tags and 'unit', if any."""
    meta = tif.imagej_metadata or {}
    unit = meta.get("unit")
    tags = tif.pages[0].tags
    if not unit or "XResolution" not in tags or "YResolution" not in tags:
        return None
    axes = []
    for name in ("YResolution", "XResolution"):
        num, den = tags[name].value
        if num <= 0 or den <= 0:
            return None
        axes.append({"scale": den / num, "units": str(unit)})  # pixels per unit → unit per pixel
    return axes


def _read(path: Path) -> tuple[np.ndarray, list[dict] | None, dict]:
    """Pixel array, the file's calibration as axis dictionaries (or None), and its instrument."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False), None, {}
    if suffix == ".png":
        from matplotlib.image import imread

        img = np.asarray(imread(path), dtype=np.float64)
        if img.ndim == 3:  # RGB(A) of a grey image: the mean of the colour channels
            img = img[..., :3].mean(axis=-1)
        return img, None, {}
    if suffix in (".dm3", ".dm4"):
        return _read_gatan(path)
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return np.asarray(tif.asarray()), _tiff_axes(tif), {}


def _read_gatan(path: Path) -> tuple[np.ndarray, list[dict], dict]:
    """One real 2-D image of a Gatan .dm3/.dm4 file, its axes and its instrument (RosettaSciIO).

    Returns
    -------
    image : ndarray, shape (rows, cols)
        In the file's data type.
    axes : list of dict
        rsciio's signal axes (y then x): 'name', 'scale' [unit per pixel], 'offset', 'size',
        'units'.
    instrument : dict
        What :func:`_gatan_instrument` finds in the file's tags.

    Raises
    ------
    LacbedError
        Unreadable (truncated, corrupt) file, several signals, not 2-D, RGB or complex data.
    """
    try:  # imported here: it takes ~0.8 s (dask)
        from rsciio.digitalmicrograph import file_reader
    except ImportError as exc:
        raise LacbedError(
            f"{path.name}: reading Gatan files needs RosettaSciIO (pip install 'lacbed[gatan]')"
        ) from exc
    try:
        signals = file_reader(str(path))
    except Exception as exc:  # rsciio raises struct.error, ValueError, … on a damaged file
        why = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise LacbedError(
            f"cannot read the Gatan file {path.name} (truncated or corrupt?): {why}"
        ) from exc
    if len(signals) != 1:
        raise LacbedError(
            f"{path.name} holds {len(signals)} images or signals; export the LACBED pattern "
            "alone (as .dm3/.dm4, .tif or .npy) and give that file"
        )
    sig = signals[0]
    data = np.asarray(sig["data"])
    axes = [dict(ax) for ax in sig["axes"] if int(ax.get("size", 2)) > 1]
    data = np.squeeze(data)
    if data.ndim != 2:
        what = {1: "a spectrum or profile", 3: "a stack or spectrum image"}.get(data.ndim, "")
        raise LacbedError(
            f"{path.name} holds a {data.ndim}-D signal of shape {data.shape}"
            + (f" ({what})" if what else "")
            + "; the experiment must be one 2-D image"
        )
    if data.dtype.names is not None:
        raise LacbedError(
            f"{path.name} holds an RGB image; the experiment must be grey intensities"
        )
    if data.dtype.kind == "c":
        raise LacbedError(
            f"{path.name} holds complex data ({data.dtype}, e.g. an FFT); the experiment must be "
            "real intensities"
        )
    return np.array(data), axes, _gatan_instrument(sig.get("original_metadata") or {})


def _gatan_instrument(tags: dict) -> dict:
    """Beam energy [kV], camera length [mm] and microscope from a Gatan file's image tags.

    The tags are those rsciio returns as ``original_metadata`` (the image at
    ImageList.TagGroup0). DigitalMicrograph writes 'Microscope Info' → 'Voltage' [V]; the camera
    length is read as rsciio/HyperSpy read it: 'Indicated Magnification' in TEM diffraction mode,
    else 'STEM Camera Length' [mm]. Absent or zero values are left out.
    """
    image_tags = (tags.get("ImageList") or {}).get("TagGroup0", {}).get("ImageTags") or {}
    info = image_tags.get("Microscope Info") or {}
    session = image_tags.get("Session Info") or {}

    def number(value):
        try:
            v = float(value)
        except (TypeError, ValueError):
            return None
        return v if np.isfinite(v) and v > 0 else None

    def text(value):
        return value.strip() if isinstance(value, str) and value.strip() else None

    out: dict = {}
    volts = number(info.get("Voltage"))
    if volts is not None:
        out["beam_energy_kv"] = volts / 1e3
    illumination, imaging = text(info.get("Illumination Mode")), text(info.get("Imaging Mode"))
    if illumination == "TEM" and imaging == "DIFFRACTION":
        tag = "Indicated Magnification"
    else:
        tag = "STEM Camera Length"
    length = number(info.get(tag))
    if length is not None:
        out["camera_length_mm"] = length
        out["camera_length_tag"] = f"Microscope Info:{tag}"
    name = text(session.get("Microscope")) or text(info.get("Name"))
    for key, value in (("microscope", name), ("illumination_mode", illumination),
                       ("imaging_mode", imaging)):  # fmt: skip
        if value is not None:
            out[key] = value
    return out


def load_experiment(
    path: str | Path,
    *,
    calibration: float | None = None,
    calibration_unit: str = "1/A",
    voltage_kv: float = 200.0,
    voltage_source: str = "voltage_kv",
) -> Experiment:
    """Read a measured LACBED pattern and its calibration.

    Parameters
    ----------
    path : str or Path
        .npy, .png, .tif/.tiff or Gatan .dm3/.dm4.
    calibration : float, optional
        Δk per pixel in ``calibration_unit``; overrides the file's metadata. Required when the
        file has none (or only a real-space one).
    calibration_unit : {'1/A', '1/nm', 'mrad'}
        Unit of ``calibration``.
    voltage_kv : float
        Accelerating voltage [kV] (converts angles to 1/Å). A Gatan file's own beam energy is
        recorded in the metadata, with a warning when it differs from this.
    voltage_source : str
        Where ``voltage_kv`` came from, for that warning (the CLI: '--voltage', 'felix.inp' or
        'the default 200 kV').

    Returns
    -------
    Experiment
        ``metadata`` holds the shape and format, the file's axes ('name', 'units', 'scale'
        [unit per pixel], 'offset', 'size') when it has them, and for a Gatan file its
        'instrument' (beam_energy_kv, camera_length_mm, microscope, modes, where present).

    Raises
    ------
    LacbedError
        Unknown format, an unreadable file, an image that is not one 2-D real image or not
        finite, or no calibration.
    """
    from lacbed.constants import electron_constants

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    if path.suffix.lower() not in FORMATS:
        raise LacbedError(
            f"cannot read {path.name}: the experiment must be one of {', '.join(FORMATS)}"
        )
    try:
        img, axes, instrument = _read(path)
    except LacbedError:
        raise
    except Exception as exc:
        raise LacbedError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    img = np.squeeze(np.asarray(img))
    if img.ndim != 2:
        raise LacbedError(
            f"{path.name}: the experiment must be one 2-D image, got shape {img.shape}"
        )
    if img.dtype.kind not in "biuf":
        raise LacbedError(f"{path.name}: the image is not numeric (dtype {img.dtype})")
    img = img.astype(np.float64)
    if not np.all(np.isfinite(img)):
        raise LacbedError(f"{path.name}: the image holds NaN or inf values")
    if min(img.shape) < 16:
        raise LacbedError(f"{path.name}: the image is too small ({img.shape}); need ≥ 16×16 pixels")
    wavelength = electron_constants(float(voltage_kv) * 1e3).wavelength
    meta = _file_metadata(path, img.shape, axes, instrument, float(voltage_kv), voltage_source)
    if calibration is not None:
        cal = calibration_to_inv_angstrom(float(calibration), calibration_unit, wavelength)
        meta["calibration_given"] = [float(calibration), calibration_unit]
        return Experiment(img, cal, str(path), "option", meta)
    cal = calibration_from_axes(axes, wavelength) if axes else None
    if cal is None:
        units = sorted({str(ax.get("units") or "") for ax in axes or []} - {""})
        found = f" (its axes are in {', '.join(units)}, not 1/nm, 1/Å or mrad)" if units else ""
        raise LacbedError(
            f"{path.name} has no reciprocal-space calibration{found}; give one with "
            "--calibration (and --calibration-unit 1/A, 1/nm or mrad)"
        )
    return Experiment(img, cal, str(path), "metadata", meta)


def _file_metadata(
    path: Path,
    shape: tuple,
    axes: list[dict] | None,
    instrument: dict,
    voltage_kv: float,
    voltage_source: str,
) -> dict:
    """Experiment.metadata: shape, format, the file's axes and instrument.

    Warns (UserWarning) when the file's beam energy differs from ``voltage_kv`` [kV] by more
    than 0.1 %: the refine uses ``voltage_kv``, and the file's value is kept in the metadata.
    """
    meta: dict = {"shape": list(shape), "format": path.suffix.lower()}
    if axes:
        keys = ("name", "units", "scale", "offset", "size")
        meta["axes"] = [
            {k: (float(ax[k]) if k in ("scale", "offset") else ax[k]) for k in keys if k in ax}
            for ax in axes
        ]
    if instrument:
        meta["instrument"] = dict(instrument)
        file_kv = instrument.get("beam_energy_kv")
        if file_kv is not None and not np.isclose(file_kv, voltage_kv, rtol=1e-3, atol=0.0):
            meta["voltage_kv_used"] = voltage_kv
            warnings.warn(
                f"{path.name} was recorded at {file_kv:g} kV but the refine uses {voltage_kv:g} "
                f"kV ({voltage_source})",
                UserWarning,
                stacklevel=3,
            )
    return meta


# --------------------------------------------------------------------------- pure array helpers
def bad_pixel_mask(image: np.ndarray, threshold: float = 8.0, relative: float = 0.5) -> np.ndarray:
    """Dead or hot pixels: isolated outliers from the median of their 3×3 neighbourhood.

    A pixel is bad when d = I − median₃ₓ₃(I) exceeds ``threshold`` robust standard deviations of
    d over the image (1.4826 × its median absolute deviation) and also ``relative`` × the
    neighbourhood median: with little noise, sharp lines would otherwise pass the first test.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    threshold : float
        In robust standard deviations [-].
    relative : float
        Least |d| as a fraction of the neighbourhood median [-].

    Returns
    -------
    ndarray of bool, shape (rows, cols)
        True where the pixel is bad.
    """
    img = np.asarray(image, dtype=np.float64)
    med = ndimage.median_filter(img, size=3, mode="nearest")
    d = img - med
    mad = 1.4826 * np.median(np.abs(d - np.median(d)))
    if mad <= 0:
        mad = max(1e-12, 1e-6 * float(np.abs(img).max()))
    return (np.abs(d) > threshold * mad) & (np.abs(d) > relative * np.abs(med))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of a set of values (maximises the between-class variance)."""
    hist, edges = np.histogram(values, bins=256)
    p = hist.astype(np.float64) / hist.sum()
    mids = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * mids)
    mt = m0[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * (1.0 - w0))
    return float(mids[int(np.nanargmax(between))])


def find_disc(image: np.ndarray, bad: np.ndarray | None = None) -> tuple[float, float, float]:
    """Centre and radius of the bright-field disc [pixels], or the whole image if it fills it.

    The image, smoothed (Gaussian, σ = 2 pixels), is thresholded at Otsu's level; the largest
    connected bright region, holes filled, is the disc: its centroid is the centre and
    √(area/π) the radius. When that region covers more than 90 % of the image, or touches all
    four edges, the disc fills the image: the image centre and the inscribed radius are returned.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    bad : ndarray of bool, optional
        Pixels to ignore (replaced by the median of their neighbourhood first).

    Returns
    -------
    (row, col, radius) : float
        [pixels]; row and col are array indices of the centre.

    Raises
    ------
    LacbedError
        When no round bright region is found (not a LACBED disc).
    """
    img = np.asarray(image, dtype=np.float64)
    if bad is not None and bad.any():
        img = np.where(bad, ndimage.median_filter(img, size=5, mode="nearest"), img)
    smooth = ndimage.gaussian_filter(img, 2.0, mode="nearest")
    rows, cols = img.shape
    full = ((rows - 1) / 2.0, (cols - 1) / 2.0, min(rows, cols) / 2.0)
    if np.ptp(smooth) <= 0:
        raise LacbedError("the image is constant: it is not a LACBED disc")
    # closing bridges the dark lines that cross the disc
    region = ndimage.binary_closing(smooth > _otsu(smooth.ravel()), iterations=3)
    labels, n = ndimage.label(region)
    if n == 0:
        raise LacbedError("no bright disc found in the image: it is not a LACBED disc")
    sizes = ndimage.sum(region, labels, index=np.arange(1, n + 1))
    disc = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    touches = [disc[0].any(), disc[-1].any(), disc[:, 0].any(), disc[:, -1].any()]
    if disc.mean() > 0.9 or all(touches):
        return full
    r, c = np.nonzero(disc)
    radius = float(np.sqrt(disc.sum() / np.pi))
    # roundness: the region's second moment against that of a filled circle (R²/4 per axis)
    spread = float(((r - r.mean()) ** 2 + (c - c.mean()) ** 2).mean()) / (radius**2 / 2.0)
    if radius < 6 or not 0.8 < spread < 1.25:
        raise LacbedError(
            f"the bright region is not a round disc (radius {radius:.1f} px, second moment "
            f"{spread:.2f} of a circle's): it does not look like a LACBED disc"
        )
    return float(r.mean()), float(c.mean()), radius


def symmetry_centre(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Centre of two-fold rotation symmetry of the masked image (the zone axis) [pixels].

    Every bright-field pattern at [001] of a cubic crystal has a two-fold axis at the zone axis
    (4mm or 2mm, docs/physics.md §7): I(c + d) = I(c − d). With J = (I − Ī)·mask, the
    self-convolution (J ∗ J)(s) = Σ_x J(x) J(s − x) compares J with J rotated by 180° about s/2
    and peaks at s = 2c; it is computed by FFT (zero-padded), divided by the overlap of the
    masks, and the peak is refined by a parabola along each axis.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    mask : ndarray of bool
        Pixels inside the disc (and not bad).

    Returns
    -------
    (row, col) : float
        Array indices of the centre.
    """
    img = np.asarray(image, dtype=np.float64)
    j = np.where(mask, img - img[mask].mean(), 0.0)
    rows, cols = j.shape
    shape = (2 * rows, 2 * cols)
    corr = np.fft.irfft2(np.fft.rfft2(j, shape) ** 2, shape)
    weight = np.fft.irfft2(np.fft.rfft2(mask.astype(np.float64), shape) ** 2, shape)
    corr = np.where(weight > 0.5 * weight.max(), corr / np.maximum(weight, 1e-9), -np.inf)
    pr, pc = np.unravel_index(int(np.argmax(corr)), shape)

    def vertex(a, b, c):
        den = a - 2 * b + c
        return 0.0 if not np.isfinite(den) or den >= 0 else 0.5 * (a - c) / den

    dr = vertex(corr[pr - 1, pc], corr[pr, pc], corr[(pr + 1) % shape[0], pc])
    dc = vertex(corr[pr, pc - 1], corr[pr, pc], corr[pr, (pc + 1) % shape[1]])
    return (pr + dr) / 2.0, (pc + dc) / 2.0


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` × ``factor`` blocks (the image cropped to a multiple of ``factor``).

    Block (i, j) covers original pixels i·f … i·f + f − 1, so a binned index b maps to the original
    position (b + ½) f − ½.
    """
    f = int(factor)
    if f <= 1:
        return np.asarray(image, dtype=np.float64)
    rows, cols = (np.asarray(image.shape) // f) * f
    img = np.asarray(image, dtype=np.float64)[:rows, :cols]
    return img.reshape(rows // f, f, cols // f, f).mean(axis=(1, 3))
