"""The example CIFs bundled with lacbed (``src/lacbed/examples/``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lacbed.errors import CrystalError

__all__ = ["example_names", "example_path"]


def _folder() -> Path:
    return Path(str(resources.files("lacbed") / "examples"))


def example_names() -> list[str]:
    """Names of the bundled example crystals, e.g. ``['Al', 'CaF2', ..., 'Si', 'SrTiO3']``."""
    return sorted(p.stem for p in _folder().glob("*.cif"))


def example_path(name: str) -> Path:
    """Path of a bundled example CIF by name (``'Si'``, ``'GaAs'``, ...; case-insensitive).

    Raises
    ------
    CrystalError
        If there is no such example (the message lists the available ones).
    """
    for n in example_names():
        if n.lower() == str(name).lower().removesuffix(".cif"):
            return _folder() / f"{n}.cif"
    raise CrystalError(f"no example crystal {name!r}; available: {', '.join(example_names())}")
