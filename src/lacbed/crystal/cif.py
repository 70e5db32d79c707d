"""Read and write CIF files (the only place lacbed uses gemmi to read a CIF).

:func:`read_cif` expands the asymmetric unit with the CIF's symmetry operations, turns every
atomic displacement parameter into an isotropic B [Å²] and standardises the result to the
conventional cubic cell with spglib (:func:`lacbed.crystal.standardise.conventional_crystal`).
:func:`write_cif` writes a CIF that :func:`read_cif` reads back to the same crystal.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from lacbed._io import atomic_path
from lacbed.crystal.elements import normalise_symbol
from lacbed.crystal.model import Crystal
from lacbed.crystal.standardise import (
    DEFAULT_B,
    SYMPREC,
    any_crystal,
    conventional_crystal,
    group_sites,
)
from lacbed.errors import CrystalError, NonCubicError

__all__ = ["read_cif", "write_cif"]

logger = logging.getLogger(__name__)

_SYMOP_TAGS = (
    "_space_group_symop_operation_xyz",
    "_space_group_symop.operation_xyz",
    "_symmetry_equiv_pos_as_xyz",
    "_symmetry_equiv.pos_as_xyz",
)
_HALL_TAGS = ("_space_group_name_Hall", "_space_group.name_Hall", "_symmetry_space_group_name_Hall")
_HM_TAGS = (
    "_space_group_name_H-M_alt",
    "_space_group.name_H-M_alt",
    "_symmetry_space_group_name_H-M",
    "_space_group_name_H-M_full",
)
_NUMBER_TAGS = ("_space_group_IT_number", "_space_group.IT_number", "_symmetry_Int_Tables_number")
_CHOICE_TAGS = ("_space_group_IT_coordinate_system_code", "_space_group.IT_coordinate_system_code")
# Copies of one asymmetric-unit atom closer than this [Å] are the same atom (coordinates of special
# positions printed with three or four decimals put the copies up to ~0.03 Å apart in a 20 Å cell).
_SAME_ATOM_TOLERANCE = 0.05
# Looser spglib tolerance [Å] tried once when the CIF declares a cubic group but SYMPREC finds a
# lower symmetry (coarsely rounded coordinates); still below real displacements in a crystal.
_LOOSE_SYMPREC = 0.1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _value(block, tags: tuple[str, ...]) -> str | None:  # noqa: ANN001 (gemmi.cif.Block)
    import gemmi

    for tag in tags:
        v = block.find_value(tag)
        if v is not None:
            s = gemmi.cif.as_string(v).strip()
            if s and s not in ("?", "."):
                return s
    return None


def _number(text: str) -> float | None:
    """A CIF number such as ``'5.431(2)'``, or None for ``'?'``/``'.'``/non-numbers."""
    m = re.match(r"^\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)", text)
    return float(m.group(1)) if m else None


def _column(block, tag: str) -> list[str] | None:  # noqa: ANN001
    import gemmi

    col = block.find_values(tag)
    if col is None or len(col) == 0:
        return None
    return [gemmi.cif.as_string(v) for v in col]


def _select_block(doc, block: str | int | None, path: Path):  # noqa: ANN001, ANN202
    if block is None:
        for b in doc:
            if b.find_values("_atom_site_fract_x") and len(b.find_values("_atom_site_fract_x")):
                return b
        raise CrystalError(
            f"{path.name}: no atoms (no _atom_site_fract_x/y/z loop in any data block)"
        )
    if isinstance(block, int):
        if not -len(doc) <= block < len(doc):
            raise CrystalError(
                f"{path.name}: block index {block} out of range (file has {len(doc)} blocks)"
            )
        return doc[block]
    b = doc.find_block(block)
    if b is None:
        names = ", ".join(x.name for x in doc)
        raise CrystalError(f"{path.name}: no data block {block!r} (blocks: {names})")
    return b


def _symops_from_cif(block, path: Path):  # noqa: ANN001, ANN202
    """List of gemmi.Op from the CIF's explicit symmetry operations, or None."""
    import gemmi

    for tag in _SYMOP_TAGS:
        col = _column(block, tag)
        if col:
            ops = []
            for t in col:
                try:
                    ops.append(gemmi.Op(t.strip()))
                except (RuntimeError, ValueError) as exc:
                    raise CrystalError(
                        f"{path.name}: bad symmetry operation {t!r} ({_one_line(exc)})"
                    ) from None
            return ops
    return None


def _candidate_groups(block, path: Path) -> list[tuple[str, list]]:  # noqa: ANN001
    """Symmetry operations implied by the Hall / H-M symbol / number: one or two candidates.

    Returns a list of (description, ops). Two candidates are returned when the H-M symbol names a
    group with two origin choices without saying which (the caller keeps the one that puts the
    atoms on special positions).
    """
    import gemmi

    hall = _value(block, _HALL_TAGS)
    if hall:
        try:
            ops = gemmi.symops_from_hall(hall)
            return [(f"Hall {hall}", list(ops))]
        except (RuntimeError, ValueError):
            logger.warning(
                "%s: cannot parse Hall symbol %r; trying the H-M symbol", path.name, hall
            )
    hm = _value(block, _HM_TAGS)
    choice = _value(block, _CHOICE_TAGS)
    sg = None
    explicit = False
    if hm:
        base = hm.strip().strip("'\"")
        m = re.match(r"^(.*?)(?:\s*:\s*([12SZHR])|\s+([SZ]))$", base)
        if m:
            base = m.group(1).strip()
            code = m.group(2) or m.group(3)
            choice = {"S": "1", "Z": "2"}.get(code, code)
        if choice and choice.strip().lower().startswith("origin"):
            choice = choice.strip()[-1]
        if choice in ("1", "2"):
            sg = gemmi.find_spacegroup_by_name(f"{base}:{choice}")
            explicit = sg is not None
        if sg is None:
            sg = gemmi.find_spacegroup_by_name(base)
    if sg is None:
        num = _value(block, _NUMBER_TAGS)
        if num and _number(num) is not None:
            sg = gemmi.find_spacegroup_by_number(int(_number(num)))
    if sg is None:
        if hm:
            raise CrystalError(f"{path.name}: unknown space group symbol {hm!r}")
        raise CrystalError(
            f"{path.name}: no symmetry given (neither symmetry operations, Hall/H-M symbol, nor "
            "space group number)"
        )
    if not explicit and sg.ext in ("1", "2"):
        other = gemmi.find_spacegroup_by_name(f"{sg.hm}:{'2' if sg.ext == '1' else '1'}")
        first, second = (sg, other) if sg.ext == "1" else (other, sg)
        return [
            (f"{first.xhm()} (origin choice 1)", list(first.operations())),
            (f"{second.xhm()} (origin choice 2)", list(second.operations())),
        ]
    return [(sg.xhm(), list(sg.operations()))]


def _u_equivalent(aniso: np.ndarray, cell) -> float:  # noqa: ANN001
    """Isotropic equivalent U_eq [Å²] of an anisotropic U^ij tensor (CIF convention).

    U_eq = (1/3) Σ_ij U^ij a*_i a*_j (a_i · a_j); for a cubic (orthogonal) cell this is
    (U11 + U22 + U33) / 3.

    References
    ----------
    R. X. Fischer & E. Tillmanns, Acta Cryst. C44 (1988) 775, eq. (4).
    """
    orth = np.array(cell.orth.mat.tolist())  # columns are a, b, c [Å]
    metric = orth.T @ orth  # a_i · a_j
    rc = cell.reciprocal()
    rec = np.array([rc.a, rc.b, rc.c])  # a*_i [1/Å]
    return float(np.einsum("ij,i,j,ij->", aniso, rec, rec, metric) / 3.0)


def _expand(sites: list[dict], ops: list, lattice: np.ndarray) -> list[dict]:
    """Apply ``ops`` to every asymmetric-unit site; drop copies of one site within 0.05 Å."""
    out: list[dict] = []
    for s in sites:
        frac = np.array([op.apply_to_xyz(list(s["fract"])) for op in ops])  # (n_ops, 3)
        frac = np.mod(frac, 1.0)
        kept: list[np.ndarray] = []
        for f in frac:
            if kept:
                d = f - np.asarray(kept)
                d -= np.round(d)
                if np.min(np.linalg.norm(d @ lattice, axis=1)) < _SAME_ATOM_TOLERANCE:
                    continue
            kept.append(f)
        out.extend({**s, "fract": f} for f in kept)
    return out


def read_cif(
    path: str | os.PathLike,
    *,
    block: str | int | None = None,
    symprec: float = SYMPREC,
    any_system: bool = False,
) -> Crystal:
    """Read a cubic crystal from a CIF file into its conventional cubic cell (or, with
    ``any_system=True``, a crystal of any system in the CIF's own cell).

    The asymmetric unit is expanded with the CIF's symmetry operations (``_space_group_symop_*``
    or ``_symmetry_equiv_pos_as_xyz``; when absent, those of the Hall symbol, else the H-M symbol,
    else the space group number). For the six cubic groups with two origin choices named without a
    choice, both are tried and the one that places the atoms on fewer positions (i.e. on special
    positions) is kept. The full cell is then standardised with spglib, which also determines the
    space group recorded on the crystal (the CIF's own symbol is kept in ``info``).

    Elements come from ``_atom_site_type_symbol`` (charges such as ``'O2-'`` are stripped) or,
    without it, the label. Occupancies are kept (default 1); a mixed site gives one entry per
    element. Debye–Waller factors: anisotropic U^ij → U_eq (Fischer & Tillmanns 1988); U_iso →
    B = 8π²U; B_iso as is; an atom with none gets ``DEFAULT_B`` = 0.5 Å² (listed in
    ``crystal.info["default_b_sites"]``).

    Parameters
    ----------
    path : str or PathLike
        CIF file.
    block : str or int, optional
        Data block name or index; default the first block with atoms.
    symprec : float
        spglib symmetry tolerance [Å] (default 0.01 Å).
    any_system : bool
        False (default; the dataset and the ML code): a non-cubic structure is refused. True
        (the engine, ``lacbed simulate``/``potential``): a non-cubic structure is kept in the
        CIF's cell, with the space group spglib finds
        (:func:`lacbed.crystal.standardise.any_crystal`); a cubic one is read as with False.

    Returns
    -------
    Crystal

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    NonCubicError
        If the structure is not cubic and ``any_system`` is False (the message names the space
        group found).
    CrystalError
        For a malformed CIF, a CIF without atoms, an unknown element, or bad values.
    """
    path = Path(path)
    blk, small, cell, lattice = _open_block(path, block)
    sites, default_b, b_source = _read_sites(blk, small, cell, path)
    sym_desc, atoms = _expanded_atoms(blk, sites, lattice, path)
    hm = _value(blk, _HM_TAGS)
    num = _value(blk, _NUMBER_TAGS)
    info = {
        "cif_block": blk.name,
        "cif_space_group": hm or "",
        "cif_space_group_number": int(_number(num)) if num and _number(num) is not None else None,
        "cif_symmetry": sym_desc,
        "default_b_A2": DEFAULT_B,
        "default_b_sites": default_b,
        "adp_source": b_source,
    }
    if default_b:
        logger.info(
            "%s: no ADP for %s; using B = %g Å²", path.name, ", ".join(default_b), DEFAULT_B
        )
    try:
        return _standardise(atoms, lattice, info, hm, path, symprec)
    except NonCubicError:
        if not any_system:
            raise
    try:
        return any_crystal(
            lattice,
            np.array([x["fract"] for x in atoms]),
            [x["element"] for x in atoms],
            np.array([x["occ"] for x in atoms]),
            np.array([x["b"] for x in atoms]),
            symprec=symprec,
            name=path.stem,
            source=str(path),
            info=info,
        )
    except CrystalError as exc:  # name the file in the one-line message
        raise type(exc)(f"{path.name}: {exc}") from None


def _open_block(path: Path, block):  # noqa: ANN001, ANN202
    """The CIF's data block, gemmi small structure, cell and lattice (rows a, b, c [Å])."""
    import gemmi

    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "CIF file not found", str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "expected a CIF file, got a directory", str(path))
    try:
        doc = gemmi.cif.read(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        msg = _one_line(exc)
        msg = msg.replace(str(path), path.name)
        raise CrystalError(f"{path.name}: not a readable CIF file: {msg}") from None
    if len(doc) == 0:
        raise CrystalError(f"{path.name}: no data block (not a CIF file?)")
    blk = _select_block(doc, block, path)
    try:
        small = gemmi.make_small_structure_from_block(blk)
    except (RuntimeError, ValueError) as exc:
        raise CrystalError(f"{path.name}: {_one_line(exc)}") from None
    if len(small.sites) == 0:
        raise CrystalError(
            f"{path.name}: no atoms (empty _atom_site loop or no fractional coordinates)"
        )
    cell = small.cell
    if _value(blk, ("_cell_length_a", "_cell.length_a")) is None or not cell.is_crystal():
        raise CrystalError(
            f"{path.name}: no unit cell (_cell_length_a/b/c and angles are required)"
        )
    lattice = np.array(cell.orth.mat.tolist()).T  # rows a, b, c [Å]
    return blk, small, cell, lattice


def _read_sites(blk, small, cell, path: Path) -> tuple[list[dict], list[str], dict[str, str]]:  # noqa: ANN001
    """Asymmetric-unit sites (element, fractional position, occupancy, B [Å²]) with ADP sources.

    References
    ----------
    Fischer & Tillmanns, Acta Cryst. C44 (1988) 775 (U_eq); B = 8π²U.
    """
    # Which atoms state an isotropic ADP (gemmi sets u_iso = 0 when none is given).
    labels = _column(blk, "_atom_site_label") or []
    iso_given: set[str] = set()
    for tag in ("_atom_site_U_iso_or_equiv", "_atom_site_B_iso_or_equiv"):
        col = _column(blk, tag)
        if col and len(col) == len(labels):
            iso_given |= {lab for lab, v in zip(labels, col, strict=True) if _number(v) is not None}
    occ_col = _column(blk, "_atom_site_occupancy")
    occ_text = (
        dict(zip(labels, occ_col, strict=True)) if occ_col and len(occ_col) == len(labels) else {}
    )
    sites: list[dict] = []
    default_b: list[str] = []
    b_source: dict[str, str] = {}
    for s in small.sites:
        raw = s.type_symbol.strip() or s.label.strip()
        try:
            el = normalise_symbol(raw)
        except CrystalError:
            raise CrystalError(
                f"{path.name}: unknown element {raw!r} for atom {s.label!r}"
            ) from None
        occ = float(s.occ)
        if s.label in occ_text and _number(occ_text[s.label]) is None:
            occ = 1.0  # '?' or '.': unknown occupancy, taken as fully occupied
        if not (math.isfinite(occ) and 0 < occ <= 1 + 1e-3):
            raise CrystalError(
                f"{path.name}: atom {s.label!r} has occupancy {occ:g}; allowed (0, 1]"
            )
        if s.aniso.nonzero():
            a = s.aniso
            u = np.array([[a.u11, a.u12, a.u13], [a.u12, a.u22, a.u23], [a.u13, a.u23, a.u33]])
            b_iso = 8 * math.pi**2 * _u_equivalent(u, cell)
            b_source[s.label] = "U_aniso -> U_eq"
        elif s.label in iso_given:
            b_iso = 8 * math.pi**2 * float(s.u_iso)
            b_source[s.label] = "iso"
        else:
            b_iso = DEFAULT_B
            default_b.append(s.label)
        if not (math.isfinite(b_iso) and b_iso >= 0):
            raise CrystalError(f"{path.name}: atom {s.label!r} has a negative or invalid ADP")
        sites.append(
            {
                "label": s.label,
                "element": el,
                "fract": (s.fract.x, s.fract.y, s.fract.z),
                "occ": min(occ, 1.0),
                "b": b_iso,
            }
        )
    return sites, default_b, b_source


def _expanded_atoms(blk, sites: list[dict], lattice, path: Path) -> tuple[str, list[dict]]:  # noqa: ANN001
    """The full cell's atoms and how the symmetry was found (origin choice by fewer positions)."""
    symops = _symops_from_cif(blk, path)
    if symops is not None:
        candidates = [("symmetry operations in the CIF", symops)]
    else:
        candidates = _candidate_groups(blk, path)
    expanded = [(desc, _expand(sites, ops, lattice)) for desc, ops in candidates]
    if len(expanded) == 1:
        return expanded[0]
    ok = []
    for desc, atoms in expanded:
        try:
            group_sites(
                lattice,
                np.array([x["fract"] for x in atoms]),
                [x["element"] for x in atoms],
                np.array([x["occ"] for x in atoms]),
                np.array([x["b"] for x in atoms]),
            )
        except CrystalError as exc:
            logger.debug("%s: candidate %s rejected: %s", path.name, desc, exc)
            continue
        ok.append((desc, atoms))
    if not ok:
        ok = expanded[:1]
    ok.sort(key=lambda t: len(t[1]))  # stable: ties keep origin choice 1
    if len(ok) > 1 and len(ok[0][1]) == len(ok[1][1]):
        logger.warning(
            "%s: origin choice not stated and both choices fit; using %s", path.name, ok[0][0]
        )
    return ok[0]


def _standardise(atoms, lattice, info: dict, hm, path: Path, symprec: float) -> Crystal:  # noqa: ANN001
    """The conventional cubic crystal (spglib), retried with a looser tolerance if declared cubic."""
    import gemmi

    args = (
        lattice,
        np.array([x["fract"] for x in atoms]),
        [x["element"] for x in atoms],
        np.array([x["occ"] for x in atoms]),
        np.array([x["b"] for x in atoms]),
    )
    kwargs = {"name": path.stem, "source": str(path), "info": info}
    try:
        try:
            crystal = conventional_crystal(*args, symprec=symprec, **kwargs)
        except NonCubicError:
            declared = info["cif_space_group_number"]
            if declared is None and hm:
                sg = gemmi.find_spacegroup_by_name(hm)
                declared = sg.number if sg else None
            if declared is None or not 195 <= declared <= 230 or symprec >= _LOOSE_SYMPREC:
                raise
            logger.warning(
                "%s: cubic symmetry not found with symprec %g Å; retrying with %g Å",
                path.name,
                symprec,
                _LOOSE_SYMPREC,
            )
            crystal = conventional_crystal(*args, symprec=_LOOSE_SYMPREC, **kwargs)
    except CrystalError as exc:  # name the file in the one-line message
        raise type(exc)(f"{path.name}: {exc}") from None
    if info["cif_space_group_number"] not in (None, crystal.space_group_number):
        logger.info(
            "%s: CIF says space group %s, the atoms have %s (#%d)",
            path.name,
            info["cif_space_group_number"],
            crystal.space_group,
            crystal.space_group_number,
        )
    return crystal


def _fmt(x: float) -> str:
    return f"{x:.10f}".rstrip("0").rstrip(".") if x != 0 else "0"


def _triplet(rot: np.ndarray, tran: np.ndarray) -> str:
    """Symmetry operation (R, t) acting on fractional coordinates as a CIF 'x,y,z' triplet."""
    out = []
    for i in range(3):
        term = ""
        for j, v in enumerate("xyz"):
            c = int(rot[i, j])
            if c:
                term += (
                    ("-" if c < 0 else "+" if term else "")
                    + (f"{abs(c)}*" if abs(c) != 1 else "")
                    + v
                )
        t = Fraction(float(np.mod(tran[i], 1.0))).limit_denominator(48)
        if t:
            term += f"+{t.numerator}/{t.denominator}"
        out.append(term or "0")
    return ",".join(out)


def _symmetry_for_cif(crystal: Crystal):  # noqa: ANN202
    """(asymmetric-unit indices into the sites, sites, contents, symop triplets, gemmi group or None).

    Returns None when the crystal's own symmetry cannot be written exactly.
    """
    import gemmi
    import spglib

    lattice = crystal.lattice
    site_pos, contents = group_sites(
        lattice, crystal.positions, crystal.symbols, crystal.occupancies, crystal.b_iso
    )
    kinds = sorted(set(contents))
    types = [kinds.index(c) + 1 for c in contents]
    try:
        ds = spglib.get_symmetry_dataset((lattice, site_pos, types), symprec=1e-3)
    except Exception as exc:  # noqa: BLE001 - spglib's error types vary by version
        logger.warning(
            "cannot find the symmetry of %s to write it (%s: %s); writing all atoms in P 1",
            crystal.formula,
            type(exc).__name__,
            str(exc).strip(),
        )
        return None
    if ds is None:
        return None
    ops = [
        (np.asarray(r, int), np.mod(np.asarray(t, float), 1.0))
        for r, t in zip(ds.rotations, ds.translations, strict=True)
    ]
    # CIF readers (gemmi among them) accept translations in 1/24ths only: otherwise write P 1
    if not all(np.allclose(t * 24, np.round(t * 24), atol=1e-6) for _, t in ops):
        return None
    triplets = [_triplet(r, t) for r, t in ops]
    asym = sorted(set(int(i) for i in ds.equivalent_atoms))
    # check: the operations regenerate every site exactly from the asymmetric unit
    gops = [gemmi.Op(t) for t in triplets]
    regenerated = set()
    for i in asym:
        for op in gops:
            x = np.mod(np.array(op.apply_to_xyz(list(site_pos[i]))), 1.0)
            regenerated.add((contents[i], tuple(np.round(np.mod(x + 1e-7, 1.0), 5))))
    original = {
        (c, tuple(np.round(np.mod(p + 1e-7, 1.0), 5)))
        for p, c in zip(site_pos, contents, strict=True)
    }
    if regenerated != original:
        return None
    # name the group only if the operations are exactly its standard-setting ones
    sg = None
    std = gemmi.find_spacegroup_by_number(int(ds.number))
    for cand in [std] + [gemmi.find_spacegroup_by_name(f"{std.hm}:{c}") for c in ("1", "2")]:
        if cand is not None and {o.triplet() for o in cand.operations()} == {
            o.triplet() for o in gops
        }:
            sg = cand
            break
    return asym, site_pos, contents, triplets, sg


def write_cif(crystal: Crystal, path: str | os.PathLike, *, symmetry: bool = True) -> Path:
    """Write ``crystal`` as a CIF that :func:`read_cif` reads back to the same crystal.

    With ``symmetry=True`` (default) the asymmetric unit is written with the crystal's symmetry
    operations (found by spglib; the H-M symbol, Hall symbol and number are added when the
    operations are the standard setting's); otherwise, or if the symmetry cannot be written
    exactly, every atom of the conventional cell is listed in P 1. Occupancies and B_iso [Å²] are
    written per atom; a mixed site is several atoms at one position. The file is written atomically
    (:func:`lacbed._io.atomic_path`).

    Parameters
    ----------
    crystal : Crystal
    path : str or PathLike
        Output file.
    symmetry : bool
        Write the asymmetric unit and symmetry operations (True) or all atoms in P 1 (False).

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", crystal.name or crystal.formula) or "crystal"
    a, b, c, alpha, beta, gamma = (_fmt(round(x, 8)) for x in crystal.lattice_parameters)
    sym = _symmetry_for_cif(crystal) if symmetry else None
    formula_sum = " ".join(re.findall(r"[A-Z][a-z]?[0-9.]*", crystal.formula))
    lines = [
        f"# written by lacbed: {crystal.formula}, {crystal.space_group} "
        f"(#{crystal.space_group_number}), "
        + (f"a = {crystal.a:.6f} Å" if crystal.is_cubic else f"cell {crystal._cell_text()}"),
    ]
    if crystal.source:
        lines.append(f"# source: {crystal.source}".replace("\n", " "))
    lines += [
        f"data_{name}",
        f"_chemical_formula_sum '{formula_sum}'",
        f"_cell_length_a {a}",
        f"_cell_length_b {b}",
        f"_cell_length_c {c}",
        f"_cell_angle_alpha {alpha}",
        f"_cell_angle_beta {beta}",
        f"_cell_angle_gamma {gamma}",
    ]
    if sym is None:
        lines += [
            "# all atoms of the "
            + ("conventional cubic cell" if crystal.is_cubic else "cell")
            + " are listed (symmetry P 1)",
            "_space_group_name_H-M_alt 'P 1'",
            "_space_group_IT_number 1",
            "loop_",
            "_space_group_symop_operation_xyz",
            "'x,y,z'",
        ]
        rows = [
            (s, p, o, b)
            for s, p, o, b in zip(
                crystal.symbols, crystal.positions, crystal.occupancies, crystal.b_iso, strict=True
            )
        ]
    else:
        asym, site_pos, contents, triplets, sg = sym
        if sg is not None:
            lines += [
                f"_space_group_name_H-M_alt '{sg.xhm()}'",
                f"_space_group_name_Hall '{sg.hall.strip()}'",
                f"_space_group_IT_number {sg.number}",
            ]
        else:
            lines.append(
                f"# {crystal.space_group} (#{crystal.space_group_number}) in a non-standard "
                "setting: only the symmetry operations are given"
            )
        lines += ["loop_", "_space_group_symop_operation_xyz"]
        lines += [f"'{t}'" for t in triplets]
        rows = [(el, site_pos[i], o, b) for i in asym for el, o, b in contents[i]]
    lines += [
        "loop_",
        "_atom_site_label",
        "_atom_site_type_symbol",
        "_atom_site_fract_x",
        "_atom_site_fract_y",
        "_atom_site_fract_z",
        "_atom_site_occupancy",
        "_atom_site_B_iso_or_equiv",
    ]
    counts: dict[str, int] = {}
    for s, p, o, b in rows:
        counts[s] = counts.get(s, 0) + 1
        lines.append(
            f"{s}{counts[s]} {s} {_fmt(p[0])} {_fmt(p[1])} {_fmt(p[2])} {_fmt(o)} {_fmt(b)}"
        )
    text = "\n".join(lines) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
