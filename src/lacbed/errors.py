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


class UnconvergedError(LacbedError):
    """The adaptive budget cannot converge the pattern, and the caller asked not to solve it.

    Raised by :func:`lacbed.simulate.simulate_lacbed` with ``skip_unconverged=True``; ``settings``
    holds what the engine found (the escalation history with its pilot estimates, the budget,
    the beam counts), as a solved pattern's settings would.
    """

    def __init__(self, message: str, settings: dict) -> None:
        super().__init__(message)
        self.settings = settings
