"""Augment a library of real cubic structures with chemically sensible derivatives.

Each derivative starts from a real parent and changes it in three ways:

1. **Isovalent element substitution.** One or two elements are replaced by a neighbour in the same
   family of elements with the same usual oxidation state (a column of the periodic table, or the
   lanthanides), at most two rows away (ionic-substitution probabilities fall off quickly with
   the size mismatch; Hautier et al., Inorg. Chem. 50 (2011) 656, Fig. 3). Because the oxidation
   state is kept, a charge-balanced parent gives a charge-balanced child. A substitution onto an
   element already present in the parent is not made (it would merge Wyckoff sites and change the
   space group).
2. **Cell rescaling.** The lattice parameter follows the atomic volume, a' = a (Σ nᵢ r'ᵢ³ /
   Σ nᵢ rᵢ³)^(1/3), with the covalent radii rᵢ of Cordero et al., Dalton Trans. (2008) 2832 (as
   tabulated by gemmi), then a random lattice perturbation a'' = a' (1 + ε), |ε| ≤ 3 %. A
   derivative with two atoms closer than 0.7 (r_i + r_j) is dropped (:data:`MIN_CONTACT`).
3. **Debye–Waller perturbation.** All B are multiplied by a random factor in [0.6, 1.6] (the
   spread of room-temperature B of inorganic solids, 0.2–1.5 Å²; Peng, Acta Cryst. A53 (1997)
   663).

Candidates are drawn with a seeded :class:`numpy.random.Generator` from a list built in a fixed
order, so the same parents, target and seed always give the same derivatives. A derivative whose
(formula, space group) already exists among the parents or earlier derivatives is not made. When
substitutions run out before the target, perturbation-only variants (steps 2–3 without 1) fill up.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from lacbed.structures.entry import Entry

__all__ = ["FAMILIES", "augment", "min_contact_ratio", "substitution_partners"]

log = logging.getLogger(__name__)

#: Families of elements with the same usual oxidation state, ordered by period.
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("Li", "Na", "K", "Rb", "Cs"),
    ("Be", "Mg", "Ca", "Sr", "Ba"),
    ("Mg", "Zn", "Cd", "Hg"),
    ("B", "Al", "Ga", "In", "Tl"),
    ("Sc", "Y", "La"),
    ("La", "Ce", "Pr", "Nd", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu"),
    ("Th", "U"),
    ("C", "Si", "Ge", "Sn", "Pb"),
    ("N", "P", "As", "Sb", "Bi"),
    ("O", "S", "Se", "Te"),
    ("F", "Cl", "Br", "I"),
    ("Ti", "Zr", "Hf"),
    ("V", "Nb", "Ta"),
    ("Cr", "Mo", "W"),
    ("Mn", "Re"),
    ("Fe", "Ru", "Os"),
    ("Co", "Rh", "Ir"),
    ("Ni", "Pd", "Pt"),
    ("Cu", "Ag", "Au"),
    ("Mn", "Fe", "Co", "Ni"),
)

#: Largest step along a family (1 = adjacent row).
MAX_STEP = 2
#: Relative weight of a substitution two rows away compared with an adjacent one.
STEP_WEIGHT = {1: 1.0, 2: 0.35}
LATTICE_JITTER = 0.03
B_FACTOR_RANGE = (0.6, 1.6)
#: Largest accepted change of the lattice parameter by the radius rescaling.
MAX_RESCALE = 0.2
#: Smallest accepted ratio of an interatomic distance to the sum of the two covalent radii. Among
#: the real structures (OQMD, COD, AFLOW) only ~0.1 % have a contact below 0.7 (1st percentile
#: 0.76, median 0.93), so a derivative below it has atoms implausibly close.
MIN_CONTACT = 0.7
#: Cells with more sites are not contact-checked (the O(n²) check would dominate the time).
CONTACT_CHECK_MAX_SITES = 256


def substitution_partners(element: str) -> list[tuple[str, float]]:
    """Elements that may replace ``element``, with relative weights (sorted, unique)."""
    out: dict[str, float] = {}
    for fam in FAMILIES:
        if element not in fam:
            continue
        i = fam.index(element)
        for j, other in enumerate(fam):
            step = abs(i - j)
            if 1 <= step <= MAX_STEP:
                out[other] = max(out.get(other, 0.0), STEP_WEIGHT[step])
    return sorted(out.items())


def _radius(symbol: str) -> float:
    import gemmi

    return float(gemmi.Element(symbol).covalent_r)


def _substitute(parent: Entry, subs: dict[str, str]) -> tuple[np.ndarray, float]:
    """New symbols and the radius rescaling factor of the lattice parameter."""
    c = parent.crystal
    new = np.array([subs.get(s, s) for s in c.symbols])
    occ = c.occupancies
    v_old = sum(o * _radius(s) ** 3 for s, o in zip(c.symbols, occ, strict=True))
    v_new = sum(o * _radius(s) ** 3 for s, o in zip(new, occ, strict=True))
    return new, float((v_new / v_old) ** (1.0 / 3.0))


def min_contact_ratio(crystal) -> float:  # noqa: ANN001 (Crystal)
    """Smallest d_ij / (r_i + r_j) over pairs of fully occupied sites (covalent radii r) [-].

    Sites with partial occupancy are left out (the atoms of a mixed site share a position).
    Returns inf when there is no such pair.
    """
    full = crystal.occupancies >= 1.0 - 1e-6
    pos = crystal.positions[full]
    if len(pos) == 0:
        return float("inf")
    r = np.array([_radius(s) for s, f in zip(crystal.symbols, full, strict=True) if f])
    d = pos[:, None, :] - pos[None, :, :]  # (n, n, 3) fractional
    d -= np.round(d)  # minimum image: exact for an orthogonal (cubic) cell
    dist = np.sqrt(np.einsum("ijk,ijk->ij", d, d)) * crystal.a  # [Å]
    np.fill_diagonal(dist, crystal.a)  # an atom and its nearest periodic image
    return float((dist / (r[:, None] + r[None, :])).min())


def _candidates(parents: list[Entry]) -> list[tuple[Entry, dict[str, str], float]]:
    """Every single and double substitution of every parent, in a fixed order, with weights."""
    cands = []
    for p in parents:
        present = sorted(set(p.crystal.symbols))
        opts = {
            el: [(o, w) for o, w in substitution_partners(el) if o not in present] for el in present
        }
        for el in present:
            for other, w in opts[el]:
                cands.append((p, {el: other}, w))
        for i, e1 in enumerate(present):
            for e2 in present[i + 1 :]:
                for o1, w1 in opts[e1]:
                    for o2, w2 in opts[e2]:
                        if o1 != o2:
                            cands.append((p, {e1: o1, e2: o2}, 0.5 * w1 * w2))
    return cands


def _derive(
    parent: Entry, subs: dict[str, str], rng: np.random.Generator, tag: str
) -> Entry | None:
    c = parent.crystal
    if subs:
        symbols, rescale = _substitute(parent, subs)
        if abs(rescale - 1.0) > MAX_RESCALE:
            return None
    else:
        symbols, rescale = np.array(c.symbols), 1.0
    eps = float(rng.uniform(-LATTICE_JITTER, LATTICE_JITTER))
    bfac = float(rng.uniform(*B_FACTOR_RANGE))
    a_new = c.a * rescale * (1.0 + eps)
    parts = []
    if subs:
        parts.append("sub:" + ",".join(f"{k}->{v}" for k, v in sorted(subs.items())))
        parts.append(f"radii*{rescale:.4f}")
    parts += [f"a*{1 + eps:.4f}", f"B*{bfac:.3f}"]
    derivation = "; ".join(parts)
    info = dict(c.info)
    info.update(parent=parent.key, derivation=derivation)
    crystal = replace(
        c,
        a=a_new,
        symbols=tuple(str(s) for s in symbols),
        b_iso=c.b_iso * bfac,
        name=f"{parent.crystal.name or parent.source_id} {tag}",
        source=f"augmented from {parent.key}",
        info=info,
    )
    key = f"aug:{parent.key}|{tag}"
    return Entry(
        key=key,
        crystal=crystal,
        source="augmented",
        source_id=f"{parent.key}|{tag}",
        parent=parent.key,
        derivation=derivation,
    )


def augment(parents: list[Entry], *, target: int, seed: int = 0) -> list[Entry]:
    """Derivatives of ``parents`` so that parents + derivatives number ``target``.

    Parameters
    ----------
    parents : list of Entry
        Real structures (de-duplicated).
    target : int
        Total number wanted (parents included); nothing is made if ``len(parents) >= target``.
    seed : int
        Seed of the random choices.

    Returns
    -------
    list of Entry
        The derivatives, each with ``parent`` and ``derivation`` set.
    """
    n_new = int(target) - len(parents)
    if n_new <= 0:
        return []
    rng = np.random.default_rng(seed)
    seen = {(p.formula, p.space_group_number) for p in parents}
    cands = _candidates(parents)
    out: list[Entry] = []
    if cands:
        w = np.array([c[2] for c in cands], float)
        # weighted random order without replacement (Efraimidis & Spirakis, IPL 97 (2006) 181)
        keys = rng.random(len(cands)) ** (1.0 / w)
        order = np.argsort(-keys, kind="stable")
        for idx in order:
            if len(out) >= n_new:
                break
            parent, subs, _ = cands[idx]
            tag = ",".join(f"{k}->{v}" for k, v in sorted(subs.items()))
            child = _derive(parent, subs, rng, tag)
            if child is None:
                continue
            sig = (child.formula, child.space_group_number)
            if sig in seen:
                continue
            if (
                child.n_atoms <= CONTACT_CHECK_MAX_SITES
                and min_contact_ratio(child.crystal) < MIN_CONTACT
            ):
                continue
            seen.add(sig)
            out.append(child)
    n_sub = len(out)
    k = 0
    while len(out) < n_new and parents:
        parent = parents[int(rng.integers(len(parents)))]
        k += 1
        out.append(_derive(parent, {}, rng, f"perturb{k}"))
    log.info(
        "augmented %d parents with %d substitutions and %d perturbations",
        len(parents),
        n_sub,
        len(out) - n_sub,
    )
    return out
