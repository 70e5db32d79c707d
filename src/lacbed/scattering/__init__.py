"""Electron scattering factors, structure factors U_g (with absorption) and projected potentials.

Public API (see docs/dev/CONTRACTS.md and docs/scattering.md):

- :func:`scattering_factor` – f_e(s) [Å] for the Kirkland, Peng, Lobato and Doyle–Turner tables;
- :func:`structure_factors` – V_g [V], U_g and U′_g [Å⁻²], ξ_g [nm] → :class:`StructureFactors`;
- :func:`absorptive_form_factor` – Bird–King f′(s) [Å];
- :func:`projected_potential` – the projected potential of one cell along [001] (or [UVW]) [V·Å].
"""

from lacbed.scattering.absorption import absorptive_form_factor
from lacbed.scattering.parametrizations import (
    PARAMETRIZATIONS,
    available_elements,
    scattering_factor,
)
from lacbed.scattering.potential import projected_potential
from lacbed.scattering.structure_factors import (
    ABSORPTION_MODELS,
    StructureFactors,
    reflections_within,
    structure_factors,
)

__all__ = [
    "ABSORPTION_MODELS",
    "PARAMETRIZATIONS",
    "StructureFactors",
    "absorptive_form_factor",
    "available_elements",
    "projected_potential",
    "reflections_within",
    "scattering_factor",
    "structure_factors",
]
