"""Bloch-wave core: beam pool, excitation errors, beam selection, Bethe potentials, solvers.

Pure array functions (numpy; an optional torch backend for the eigensolve). See
:mod:`lacbed.bloch.matrix` for the conventions (vacuum K, U₀ kept, surface-normal metric).
"""

from lacbed.bloch.matrix import (
    beam_importance,
    excitation_denominators,
    excitation_errors,
    structure_matrices,
    structure_matrix_parts,
)
from lacbed.bloch.pool import beam_pool, centring_allowed
from lacbed.bloch.solver import eigh_batched, solve_exact, solve_fast

__all__ = [
    "beam_importance",
    "beam_pool",
    "centring_allowed",
    "eigh_batched",
    "excitation_denominators",
    "excitation_errors",
    "solve_exact",
    "solve_fast",
    "structure_matrices",
    "structure_matrix_parts",
]
