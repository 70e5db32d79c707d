"""Element symbols and atomic numbers (via gemmi's periodic table)."""

from __future__ import annotations

import gemmi

from lacbed.errors import CrystalError

__all__ = ["atomic_number", "normalise_symbol"]


def normalise_symbol(symbol: str) -> str:
    """Element symbol from a CIF type symbol such as ``'Si'``, ``'O2-'``, ``'Fe3+'``, ``'si'``.

    Raises
    ------
    CrystalError
        If the symbol is not a known element.
    """
    raw = str(symbol).strip()
    letters = ""
    for ch in raw:
        if ch.isalpha():
            letters += ch
        else:
            break
    if not letters:
        raise CrystalError(f"unknown element symbol {symbol!r}")
    for cand in (letters[:2], letters[:1]):
        el = gemmi.Element(cand.capitalize())
        if el.atomic_number > 0 and el.name.lower() == cand.lower():
            return el.name
    raise CrystalError(f"unknown element symbol {symbol!r}")


def atomic_number(symbol: str) -> int:
    """Atomic number Z of an element symbol (charges are ignored)."""
    return gemmi.Element(normalise_symbol(symbol)).atomic_number
