"""LACBED simulation: geometry, symmetry reduction and :func:`simulate_lacbed`."""

from lacbed.simulate.engine import simulate_lacbed
from lacbed.simulate.pattern import LacbedPattern

__all__ = ["LacbedPattern", "simulate_lacbed"]
