"""Exact-physics augmentation of (potential, pattern) pairs: 4mm operations and origin shifts.

Two kinds of operation give new, *exact* training pairs without running the engine
(issue 10 §1):

- **The 8 operations of 4mm about [001]** applied to the crystal. Rotating or mirroring the
  whole crystal about the beam axis rotates or mirrors its diffraction pattern the same way (the
  Schrödinger equation is invariant under these isometries), so the new pair is
  (R·potential, R·pattern). For a crystal whose [001] bright-field disc is 4mm (point groups
  m-3m, -43m, 432) R·pattern = pattern; for a 2mm disc (m-3, 23) the four operations outside
  2mm (the diagonal mirrors and the 90° rotations) transpose the pattern (Buxton, Eades, Steeds
  & Rackham, Phil. Trans. R. Soc. A281 (1976) 171, Table 2; ``Crystal.bright_field_symmetry``).
  Applying R to the target in every case is exact for both.
- **A change of cell origin** (a translation of the crystal in the xy plane): the 000 intensity
  does not depend on the origin, so the pattern is unchanged while the potential image is
  circularly shifted (the image is one period; pixel (0, 0) is the cell origin).

Pixel conventions (docs/physics.md §2 and §6): the potential image samples x = col·a/S,
y = row·a/S, so the mirror x → −x maps column c to (−c) mod S (a flip then a roll by one); the
pattern samples k = (c − N + ½)Δ, so k_x → −k_x is a plain flip (the zone axis lies between the
central pixels). Both images are [row ↔ y, col ↔ x], so the diagonal mirror x ↔ y is a
transpose of either. Every operation is an exact permutation of pixels.
"""

from __future__ import annotations

import torch

__all__ = ["N_OPS", "op_on_pattern", "op_on_potential", "origin_shift", "random_augment"]

#: Number of operations of 4mm. Operation ``k`` (0..7): flip x if bit 0, flip y if bit 1,
#: then transpose if bit 2. Operations 0-3 form the 2mm subgroup (the mirrors ⊥ x and ⊥ y).
N_OPS = 8


def _check(op: int) -> int:
    op = int(op)
    if not 0 <= op < N_OPS:
        raise ValueError(f"4mm operation index must lie in 0..7, got {op}")
    return op


def op_on_pattern(y: torch.Tensor, op: int) -> torch.Tensor:
    """Operation ``op`` of 4mm on patterns (..., S, S) whose zone axis lies between pixels."""
    op = _check(op)
    if op & 1:
        y = y.flip(-1)  # k_x → −k_x
    if op & 2:
        y = y.flip(-2)  # k_y → −k_y
    if op & 4:
        y = y.transpose(-1, -2)  # k_x ↔ k_y
    return y


def op_on_potential(x: torch.Tensor, op: int) -> torch.Tensor:
    """Operation ``op`` of 4mm on periodic images (..., S, S) with pixel (0, 0) at the origin."""
    op = _check(op)
    if op & 1:
        x = x.flip(-1).roll(1, -1)  # x → −x: column c → (−c) mod S
    if op & 2:
        x = x.flip(-2).roll(1, -2)  # y → −y
    if op & 4:
        x = x.transpose(-1, -2)  # x ↔ y
    return x


def origin_shift(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Move the cell origin: circular shift of a periodic image (..., S, S) by whole pixels."""
    return x.roll((int(rows), int(cols)), (-2, -1))


def random_augment(
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    *,
    ops: bool = True,
    shifts: bool = True,
    pattern_channels: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random exact copy of one training pair.

    Parameters
    ----------
    x : Tensor, shape (C, S, S)
        Network input: the first C − ``pattern_channels`` channels are periodic images of the
        cell (normalised projected potential), the last ``pattern_channels`` live on the
        pattern's tilt grid (e.g. :mod:`lacbed.ml.physics` maps) and transform like the target.
    y : Tensor, shape (S, S)
        Target pattern.
    generator : torch.Generator
        Source of randomness (seeded by the caller: no global RNG state).
    ops, shifts : bool
        Draw one of the 8 operations of 4mm (applied to both) / a random origin (the potential
        channels only).
    pattern_channels : int
        Trailing channels of ``x`` on the pattern grid.

    Returns
    -------
    (Tensor, Tensor)
        The transformed pair (views or copies; the inputs are not modified).
    """
    n_pot = x.shape[0] - int(pattern_channels)
    pot, pat = x[:n_pot], x[n_pot:]
    if ops:
        op = int(torch.randint(N_OPS, (1,), generator=generator))
        pot, pat, y = op_on_potential(pot, op), op_on_pattern(pat, op), op_on_pattern(y, op)
    if shifts:
        s = x.shape[-1]
        r, c = (int(v) for v in torch.randint(s, (2,), generator=generator))
        pot = origin_shift(pot, r, c)
    return torch.cat([pot, pat]).contiguous(), y.contiguous()
