"""Crystal structures: the :class:`Crystal` dataclass and readers (CIF via gemmi, ASE, pymatgen)."""

from lacbed.crystal.model import Crystal, bright_field_symmetry, point_group_of

__all__ = ["Crystal", "bright_field_symmetry", "point_group_of"]
