"""The example CIFs bundled with lacbed (``src/lacbed/examples/``)."""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from lacbed.errors import CrystalError

__all__ = ["example_names", "example_path"]

# Paths handed out by example_path stay valid until the interpreter exits: for a zipped
# installation importlib.resources.as_file extracts a temporary copy, removed at exit.
_files = contextlib.ExitStack()
atexit.register(_files.close)


def _folder() -> Traversable:
    return resources.files("lacbed").joinpath("examples")


def example_names() -> list[str]:
    """Names of the bundled example crystals, e.g. ``['Al', 'CaF2', ..., 'Si', 'SrTiO3']``."""
    return sorted(
        p.name.removesuffix(".cif") for p in _folder().iterdir() if p.name.endswith(".cif")
    )


def example_path(name: str) -> Path:
    """Path of a bundled example CIF by name (``'Si'``, ``'GaAs'``, ...; case-insensitive).

    Raises
    ------
    CrystalError
        If there is no such example (the message lists the available ones).
    """
    for n in example_names():
        if n.lower() == str(name).lower().removesuffix(".cif"):
            return _files.enter_context(resources.as_file(_folder().joinpath(f"{n}.cif")))
    raise CrystalError(f"no example crystal {name!r}; available: {', '.join(example_names())}")
