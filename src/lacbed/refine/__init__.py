"""Refinement against a measured LACBED pattern (issue 13): thickness, alignment, B and U_g.

Sits above :mod:`lacbed.simulate` in the import order (crystal → scattering → bloch → simulate →
refine); no torch. Entry points: :func:`load_experiment`, :func:`refine`, and
:func:`write_outputs` (report.json, refined CIF, figure); ``lacbed refine`` on the command line.
"""

from lacbed.refine.experiment import Experiment, load_experiment
from lacbed.refine.fit import RefineResult, refine
from lacbed.refine.geometry import Alignment

__all__ = ["Alignment", "Experiment", "RefineResult", "load_experiment", "refine"]
