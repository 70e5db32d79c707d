"""Exceptions raised by lacbed for bad input.

Every error a user can cause derives from :class:`LacbedError` (a :class:`ValueError`), so the
CLI can turn it into a one-line message and a non-zero exit status.
"""


class LacbedError(ValueError):
    """Base class for errors caused by bad input or impossible settings."""


class CrystalError(LacbedError):
    """The crystal structure is malformed, empty, or otherwise unusable."""


class NonCubicError(CrystalError):
    """A cubic cell is required but the structure is not cubic."""


class SettingsError(LacbedError):
    """A simulation or build setting is impossible (e.g. thickness <= 0)."""
