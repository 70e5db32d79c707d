"""Crystal structures: the :class:`Crystal` dataclass and readers (CIF via gemmi, ASE, pymatgen)."""

from lacbed.crystal.cif import read_cif, write_cif
from lacbed.crystal.convert import from_ase, from_pymatgen, load_crystal
from lacbed.crystal.examples import example_names, example_path
from lacbed.crystal.model import Crystal, bright_field_symmetry, point_group_of
from lacbed.crystal.standardise import DEFAULT_B, SYMPREC, conventional_crystal

__all__ = [
    "DEFAULT_B",
    "SYMPREC",
    "Crystal",
    "bright_field_symmetry",
    "conventional_crystal",
    "example_names",
    "example_path",
    "from_ase",
    "from_pymatgen",
    "load_crystal",
    "point_group_of",
    "read_cif",
    "write_cif",
]
