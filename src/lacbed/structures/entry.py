"""One structure of a library: a :class:`~lacbed.crystal.Crystal` plus its provenance."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from lacbed.crystal import Crystal

__all__ = ["Entry", "LoadResult", "Rejected"]


@dataclass(frozen=True, eq=False)
class Entry:
    """A cubic structure from a source, with where it came from.

    Attributes
    ----------
    key : str
        Unique, stable key, e.g. ``'oqmd:1000-2678-Cs2LiMnC6N6'`` or
        ``'aug:oqmd:1000-2678-Cs2LiMnC6N6|Cs->Rb'``.
    crystal : Crystal
        Conventional cubic cell.
    source : str
        Source name ('oqmd', 'aflow', 'cod', 'cifs', 'examples', 'augmented').
    source_id : str
        Identifier inside the source (database name, file path relative to the source root, ...).
    parent : str
        Key of the real structure this one was derived from; empty for a real structure.
    derivation : str
        How it was derived, e.g. ``'sub:Ga->Al,As->P; radii*0.968; a*1.012; B*1.21'``.
    """

    key: str
    crystal: Crystal
    source: str
    source_id: str
    parent: str = ""
    derivation: str = ""

    @property
    def group(self) -> str:
        """Parent family: the key of the real parent (its own key for a real structure)."""
        return self.parent or self.key

    @property
    def formula(self) -> str:
        """Reduced formula of the crystal."""
        return self.crystal.formula

    @property
    def space_group_number(self) -> int:
        """International Tables space-group number."""
        return self.crystal.space_group_number

    @property
    def a(self) -> float:
        """Lattice parameter [Å]."""
        return self.crystal.a

    @property
    def n_atoms(self) -> int:
        """Number of sites in the conventional cell."""
        return self.crystal.n_sites

    def meta(self) -> dict:
        """JSON-serialisable description (the per-item fields of a dataset record)."""
        return {
            "formula": self.formula,
            "space_group_number": self.space_group_number,
            "space_group": self.crystal.space_group,
            "a": self.a,
            "n_atoms": self.n_atoms,
            "source": self.source,
            "source_id": self.source_id,
            "parent": self.parent or None,
            "group": self.group,
            "derivation": self.derivation or None,
        }


@dataclass(frozen=True)
class Rejected:
    """An entry of a source that could not be turned into a cubic crystal.

    Attributes
    ----------
    key, source, source_id : str
        As for :class:`Entry`.
    reason : str
        One line: the category ('non-cubic', 'invalid structure', ...) and the reader's message.
    """

    key: str
    source: str
    source_id: str
    reason: str


@dataclass
class LoadResult:
    """Entries of a source, the entries rejected by the readers, and skip counts by reason.

    ``skipped`` counts every entry left out (rejected, duplicate, or filtered out before reading,
    such as the non-cubic rows of the OQMD database); ``rejected`` lists those the readers tried
    and failed on, with the reason.
    """

    entries: list[Entry] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    n_read: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        """Append another result's entries and counts."""
        self.entries.extend(other.entries)
        self.skipped.update(other.skipped)
        self.n_read += other.n_read
        self.rejected.extend(other.rejected)
