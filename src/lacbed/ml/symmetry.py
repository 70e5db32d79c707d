"""Point-group averaging of [001] bright-field patterns in torch.

The pattern convention (docs/physics.md §6) puts the zone axis at the image centre between pixels, so
the mirrors and the four-fold rotation are exact array flips and transposes. The [001]
bright-field disc has 4mm symmetry for the point groups m-3m, -43m and 432, and 2mm (mirrors
normal to [100] and [010]) for m-3 and 23 (Buxton, Eades, Steeds & Rackham, Phil. Trans. R. Soc.
A281 (1976) 171, Table 2; see :func:`lacbed.crystal.model.bright_field_symmetry`).
"""

from __future__ import annotations

import torch

__all__ = ["SYMMETRY_CODES", "symmetry_code", "symmetrize"]

#: Per-sample flags: 0 = leave as it is, 1 = 2mm, 2 = 4mm.
SYMMETRY_CODES = {"none": 0, "2mm": 1, "4mm": 2}


def symmetry_code(name: str | None) -> int:
    """Integer flag of a bright-field symmetry name ('4mm', '2mm' or 'none'/None)."""
    return SYMMETRY_CODES["none" if name is None else name]


def _mean_2mm(x: torch.Tensor) -> torch.Tensor:
    # identity, mirror x (flip columns), mirror y (flip rows), 2-fold (both)
    return 0.25 * (x + x.flip(-1) + x.flip(-2) + x.flip(-2, -1))


def symmetrize(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Average each image over its bright-field point group.

    Parameters
    ----------
    x : Tensor, shape (batch, rows, cols)
        Square images.
    code : Tensor of int, shape (batch,)
        0 (none), 1 (2mm) or 2 (4mm) per image.

    Returns
    -------
    Tensor, shape (batch, rows, cols)
        The group average (a projection: applying it twice changes nothing).
    """
    m2 = _mean_2mm(x)
    m4 = 0.5 * (m2 + m2.transpose(-1, -2))  # add the diagonal mirror: 2mm -> 4mm
    c = code.view(-1, 1, 1)
    return torch.where(c == 2, m4, torch.where(c == 1, m2, x))
