"""lacbed: large-angle convergent-beam electron diffraction (LACBED) patterns of crystals.

Two ways to compute a pattern: a Bloch-wave simulator (:mod:`lacbed.simulate`) and a neural
surrogate (:mod:`lacbed.ml`, optional extra ``lacbed[ml]``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lacbed")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
