"""Standardisation is a function of the structure only: any origin, cell or orientation → same Crystal."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from lacbed.crystal import conventional_crystal
from lacbed.crystal.standardise import crystal_system

ELEMENTS = ["Na", "Cl", "Ga", "As", "O", "Sr", "Ti", "Fe", "S"]
# primitive cell vectors (rows, in units of a) of the three cubic lattices
PRIMITIVE = {
    "P": np.eye(3),
    "F": np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]),
    "I": np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]]),
}


def _unique(frac: np.ndarray, cell: np.ndarray) -> list[int]:
    """Indices of the atoms left after dropping periodic duplicates closer than 0.01 Å."""
    keep: list[int] = []
    for i, f in enumerate(frac):
        d = f - frac[keep] if keep else np.zeros((0, 3))
        d -= np.round(d)
        if not keep or np.min(np.linalg.norm(d @ cell, axis=1)) > 0.01:
            keep.append(i)
    return keep


def _random_structure(number: int, rng: np.random.Generator):
    """A random structure of space group ``number``: 1-2 orbits of general or (x,x,x) points."""
    ops = list(gemmi.find_spacegroup_by_number(number).operations())
    a = 5.0 + 3.0 * rng.random()
    for _ in range(100):  # retry until no two atoms are closer than 0.7 Å
        pos, sym = [], []
        for _k in range(rng.integers(1, 3)):
            x = rng.random(3) if rng.random() < 0.5 else np.full(3, rng.random())
            el = ELEMENTS[rng.integers(len(ELEMENTS))]
            orbit = np.mod([op.apply_to_xyz(list(x)) for op in ops], 1.0)
            orbit = orbit[_unique(orbit, np.eye(3) * a)]
            pos.append(orbit)
            sym += [el] * len(orbit)
        pos = np.vstack(pos)
        d = pos[:, None] - pos[None]
        d -= np.round(d)
        r = np.linalg.norm(d * a, axis=-1) + 10 * np.eye(len(pos))
        if r.min() > 0.7:
            return a, pos, sym
    raise AssertionError("could not build a structure")  # pragma: no cover


def _same(c1, c2) -> bool:
    return (
        c1.symbols == c2.symbols
        and np.allclose(c1.positions, c2.positions, atol=1e-6)
        and c1.space_group_number == c2.space_group_number
    )


@pytest.mark.parametrize("number", range(195, 231))
def test_any_cell_gives_the_same_crystal(number):
    rng = np.random.default_rng(number)
    a, pos, sym = _random_structure(number, rng)
    ref = conventional_crystal(np.eye(3) * a, pos, sym)
    # cubic, though possibly of higher symmetry or a smaller cell than the generating group (an
    # orbit on a special position); every comparison below is against this reference
    assert crystal_system(ref.space_group_number) == "cubic"

    t = rng.random(3)  # arbitrary origin
    assert _same(conventional_crystal(np.eye(3) * a, pos + t, sym), ref)

    # a 1x2x1 supercell
    sup = np.vstack([(pos + t) / [1, 2, 1], (pos + t + [0, 1, 0]) / [1, 2, 1]])
    assert _same(conventional_crystal(np.diag([a, 2 * a, a]), sup, sym * 2), ref)

    # the primitive cell (vectors along the cubic axes' face/body diagonals: same orientation)
    centring = gemmi.find_spacegroup_by_number(number).centring_type()
    prim = PRIMITIVE[centring] * a
    frac = np.mod((pos + t) * a @ np.linalg.inv(prim), 1.0)
    keep = _unique(frac, prim)
    assert _same(conventional_crystal(prim, frac[keep], [sym[i] for i in keep]), ref)

    # a cell rotated off the Cartesian axes: spglib's orientation; the same atoms up to a rotation
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # proper rotation
    rot = conventional_crystal(np.eye(3) * a @ q.T, pos + t, sym)
    assert rot.space_group_number == ref.space_group_number
    assert rot.composition == pytest.approx(ref.composition)
    assert rot.a == pytest.approx(ref.a, rel=1e-9)  # float rounding only


def test_spglib_failure_on_the_canonical_cell_is_logged(monkeypatch, caplog):
    """A failing spglib call is reported, not swallowed; the origin stays on an atom."""
    import logging

    import spglib

    from lacbed.crystal.standardise import _canonical_cell

    def fail(*args, **kwargs):
        raise RuntimeError("spglib exploded")

    monkeypatch.setattr(spglib, "get_symmetry_dataset", fail)
    pos = np.array([[0.1, 0.1, 0.1], [0.35, 0.35, 0.35]])
    with caplog.at_level(logging.WARNING, logger="lacbed.crystal.standardise"):
        contents = [(("Ga", 1.0, 0.5),), (("As", 1.0, 0.5),)]  # (element, occupancy, B) per site
        out, origin = _canonical_cell(pos, contents, 5.65)
    assert origin == "atom" and np.allclose(out[0], 0.0)
    assert "spglib exploded" in caplog.text
