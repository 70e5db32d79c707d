"""Writing and reading LACBED patterns: ``.npy``, ``.h5`` and ``.png`` (an edge module).

Pixel convention as Felix (docs/physics.md §6): ``arr[..., row, col]``, col → +x = [100],
row → +y = [010], zone axis at the image centre.

- ``.npy``: float32; shape (size, size) for one thickness, (n_thickness, size, size) otherwise.
- ``.h5``: dataset ``intensities`` (n_thickness, size, size) float32, datasets ``thickness_nm``,
  ``kx``, ``ky`` [1/Å], ``tilt_x_mrad``, ``tilt_y_mrad`` [mrad], ``beams`` (n, 3) int; attributes
  ``wavelength`` [Å], ``settings`` (JSON), ``timings`` (JSON) [s], ``version``, ``convention``.
- ``.png``: one panel per thickness with axes in mrad or 1/Å (:mod:`lacbed.plotting.pattern`).

Dark-field discs (a pattern with ``reflections``): ``.npy`` float32 (n_g, n_thickness, size,
size), also for one thickness; ``.h5`` ``intensities`` (n_g, n_thickness, size, size) plus the
dataset ``reflections`` (n_g, 3) int with the attribute ``labels`` (Felix-style "2-20"); ``.png``
a montage, one panel per disc and thickness, each labelled with its hkl.

Every file is written through :func:`lacbed._io.atomic_path`, after checking that the
intensities are finite, so a failure never leaves a partial or invalid file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lacbed._io import atomic_path
from lacbed.errors import LacbedError, SettingsError
from lacbed.simulate.pattern import LacbedPattern

__all__ = [
    "PATTERN_SUFFIXES",
    "check_output_suffix",
    "check_finite",
    "write_pattern",
    "write_npy",
    "write_h5",
    "write_png",
    "read_pattern_h5",
]

#: Output formats by file suffix.
PATTERN_SUFFIXES = (".npy", ".h5", ".png")
CONVENTION = "arr[t, row, col]; col -> +x = [100], row -> +y = [010]; zone axis at image centre"
CONVENTION_DISCS = (
    "arr[g, t, row, col]: intensity of beam g vs incident direction; col -> +x = [100], "
    "row -> +y = [010]; zone axis at image centre"
)


def check_output_suffix(path: str | Path) -> str:
    """Return the lower-case suffix of ``path`` or raise :class:`SettingsError` if unsupported."""
    suffix = Path(path).suffix.lower()
    if suffix == ".hdf5":
        return ".h5"
    if suffix not in PATTERN_SUFFIXES:
        raise SettingsError(
            f"output {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; "
            "use .npy, .h5 or .png"
        )
    return suffix


def check_finite(pattern: LacbedPattern) -> None:
    """Raise :class:`LacbedError` if the pattern contains NaN or inf (never write such a file)."""
    arr = np.asarray(pattern.intensities)
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise LacbedError(f"the simulated pattern has {n_bad} non-finite pixels; nothing written")


def _stack(pattern: LacbedPattern) -> np.ndarray:
    arr = np.asarray(pattern.intensities)
    if pattern.reflections is not None:
        n_g = len(pattern.reflections)
        return arr.reshape(n_g, -1, *arr.shape[-2:])  # (n_g, n_thickness, size, size)
    if arr.ndim == 2:
        arr = arr[None]
    return arr  # (n_thickness, size, size)


def write_npy(pattern: LacbedPattern, path: str | Path) -> Path:
    """Write the intensities as float32 ``.npy``: (size, size) for one thickness, else a stack.

    Discs (``pattern.reflections`` set) are always written as (n_g, n_thickness, size, size).
    """
    check_finite(pattern)
    arr = _stack(pattern).astype(np.float32)
    if arr.shape[0] == 1 and pattern.reflections is None:
        arr = arr[0]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, arr)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def write_h5(pattern: LacbedPattern, path: str | Path) -> Path:
    """Write the intensity stack and all metadata to HDF5 (layout in the module docstring)."""
    import h5py

    check_finite(pattern)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("intensities", data=_stack(pattern).astype(np.float32))
            f.create_dataset("thickness_nm", data=np.asarray(pattern.thickness_nm, np.float64))
            f.create_dataset("kx", data=np.asarray(pattern.kx, np.float64))
            f.create_dataset("ky", data=np.asarray(pattern.ky, np.float64))
            f.create_dataset("tilt_x_mrad", data=np.asarray(pattern.tilt_x_mrad, np.float64))
            f.create_dataset("tilt_y_mrad", data=np.asarray(pattern.tilt_y_mrad, np.float64))
            beams = np.asarray(pattern.beams).reshape(-1, 3).astype(np.int64)
            f.create_dataset("beams", data=beams)
            f["intensities"].attrs["units"] = "fraction of incident intensity"
            f["thickness_nm"].attrs["units"] = "nm"
            f["kx"].attrs["units"] = "1/Angstrom (no 2pi)"
            f["ky"].attrs["units"] = "1/Angstrom (no 2pi)"
            f["tilt_x_mrad"].attrs["units"] = "mrad"
            f["tilt_y_mrad"].attrs["units"] = "mrad"
            f.attrs["wavelength"] = float(pattern.wavelength)
            f.attrs["settings"] = json.dumps(pattern.settings, default=_json_default)
            f.attrs["timings"] = json.dumps(pattern.timings, default=_json_default)
            f.attrs["version"] = str(pattern.version)
            f.attrs["convention"] = CONVENTION
            if pattern.reflections is not None:
                from lacbed.simulate.reflections import hkl_label

                hkl = np.asarray(pattern.reflections, dtype=np.int64).reshape(-1, 3)
                f.create_dataset("reflections", data=hkl)
                f["reflections"].attrs["labels"] = [hkl_label(h) for h in hkl]
                f.attrs["convention"] = CONVENTION_DISCS
    return Path(path)


def read_pattern_h5(path: str | Path) -> LacbedPattern:
    """Read a pattern written by :func:`write_h5` (intensities come back as float32)."""
    import h5py

    with h5py.File(path, "r") as f:
        return LacbedPattern(
            intensities=f["intensities"][()],
            thickness_nm=f["thickness_nm"][()],
            kx=f["kx"][()],
            ky=f["ky"][()],
            wavelength=float(f.attrs["wavelength"]),
            beams=f["beams"][()],
            settings=json.loads(f.attrs["settings"]),
            timings=json.loads(f.attrs["timings"]),
            version=str(f.attrs["version"]),
            reflections=f["reflections"][()] if "reflections" in f else None,
        )


def write_png(pattern: LacbedPattern, path: str | Path, *, units: str = "mrad") -> Path:
    """Write an image of the pattern, one panel per thickness, axes in ``units`` (mrad or 1/Å).

    Discs: a labelled montage (:func:`lacbed.plotting.pattern.plot_discs`).
    """
    from lacbed.plotting.pattern import plot_discs, plot_pattern

    check_finite(pattern)
    if pattern.reflections is not None:
        fig = plot_discs(pattern, units=units)
    else:
        fig = plot_pattern(pattern, units=units)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return Path(path)


def write_pattern(pattern: LacbedPattern, path: str | Path, **kwargs: Any) -> Path:
    """Write ``pattern`` in the format given by the suffix of ``path`` (.npy, .h5 or .png)."""
    suffix = check_output_suffix(path)
    if suffix == ".npy":
        return write_npy(pattern, path)
    if suffix == ".h5":
        return write_h5(pattern, path)
    return write_png(pattern, path, **kwargs)
