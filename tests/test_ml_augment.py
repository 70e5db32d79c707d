"""Exact-physics augmentation (lacbed.ml.augment): the augmented pairs are what physics gives.

Oracles: the potential image of the transformed crystal (computed from its atoms) equals the
transformed image, and the engine's pattern of the transformed crystal (computed without any
symmetry filling, on a 16-pixel grid) equals the transformed target.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lacbed.crystal import example_path, read_cif  # noqa: E402
from lacbed.metrics import z_score  # noqa: E402
from lacbed.ml.augment import (  # noqa: E402
    N_OPS,
    op_on_pattern,
    op_on_potential,
    origin_shift,
    random_augment,
)
from lacbed.scattering import projected_potential  # noqa: E402

SIZE = 16


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def transformed(crystal, op: int, shift=(0.0, 0.0)):
    """The crystal moved by operation ``op`` of 4mm (then translated by ``shift`` = (x, y))."""
    p = np.array(crystal.positions, dtype=np.float64)
    if op & 1:
        p[:, 0] = -p[:, 0]
    if op & 2:
        p[:, 1] = -p[:, 1]
    if op & 4:
        p[:, [0, 1]] = p[:, [1, 0]]
    p[:, 0] += shift[0]
    p[:, 1] += shift[1]
    return dataclasses.replace(crystal, positions=np.mod(p, 1.0))


@pytest.fixture(scope="module")
def pyrite():
    c = read_cif(example_path("FeS2"))  # Pa-3 (m-3): a 2mm bright field, not 4mm
    assert c.bright_field_symmetry == "2mm"
    return c


@pytest.mark.parametrize("op", range(N_OPS))
def test_op_on_potential_is_the_potential_of_the_moved_crystal(pyrite, op):
    pot = torch.from_numpy(projected_potential(pyrite, SIZE))
    want = projected_potential(transformed(pyrite, op), SIZE)
    # the same Fourier synthesis of the same atoms: round-off only (|V_p| ~ 1e3 V·Å)
    np.testing.assert_allclose(op_on_potential(pot, op).numpy(), want, rtol=0, atol=1e-8)
    if op not in (0, 3):  # not the identity on this crystal (op 3, the 2-fold axis, is one:
        # Pa-3 is centrosymmetric, so its projection has a 2-fold axis at the origin)
        assert np.abs(want - pot.numpy()).max() > 1.0


def test_origin_shift_is_the_potential_of_the_translated_crystal(pyrite):
    pot = torch.from_numpy(projected_potential(pyrite, SIZE))
    want = projected_potential(transformed(pyrite, 0, shift=(5 / SIZE, 3 / SIZE)), SIZE)
    np.testing.assert_allclose(origin_shift(pot, 3, 5).numpy(), want, rtol=0, atol=1e-8)


def test_ops_and_shift_are_exact_permutations():
    x = torch.arange(SIZE * SIZE, dtype=torch.float64).reshape(SIZE, SIZE)
    for op in range(N_OPS):
        for f in (op_on_pattern, op_on_potential):
            y = f(x, op)
            assert torch.equal(torch.sort(y.ravel()).values, x.ravel())
    # the 8 operations are distinct on a generic image, and 0-3 fix a 2mm-symmetric pattern
    assert len({tuple(op_on_pattern(x, k).ravel().tolist()) for k in range(N_OPS)}) == N_OPS
    two_mm = x + x.flip(-1) + x.flip(-2) + x.flip(-1, -2)
    for k in range(4):
        assert torch.equal(op_on_pattern(two_mm, k), two_mm)
    for k in range(4, 8):  # the others transpose it
        assert torch.equal(op_on_pattern(two_mm, k), two_mm.T)
    with pytest.raises(ValueError, match="0..7"):
        op_on_pattern(x, 8)


def _engine(crystal) -> np.ndarray:
    from lacbed.simulate import simulate_lacbed

    # no symmetry filling: every pixel is solved, so the pattern's symmetry is not imposed
    p = simulate_lacbed(
        crystal, thickness_nm=60.0, size=SIZE, strong_beams=16, symmetry="1", n_jobs=1
    )
    return np.asarray(p.intensities[0])


@pytest.mark.parametrize("op", [1, 4, 7])
def test_engine_pattern_of_moved_2mm_crystal_is_the_moved_pattern(pyrite, op):
    base = _engine(pyrite)
    moved = _engine(transformed(pyrite, op))
    want = op_on_pattern(torch.from_numpy(base), op).numpy()
    # same physics; measured Z = 0.0 (the engine is exactly equivariant), 1e-6 leaves room for
    # round-off in the order of sums on other BLAS builds
    assert z_score(want, moved) < 1e-6
    if op & 4:  # for 2mm the diagonal operations really change the target
        assert z_score(base, moved) > 0.1  # measured 0.69: the target must be transposed


def test_engine_pattern_does_not_depend_on_the_origin(pyrite):
    base = _engine(pyrite)
    shifted = _engine(transformed(pyrite, 0, shift=(5 / SIZE, 3 / SIZE)))
    assert z_score(base, shifted) < 1e-6  # measured Z = 0.0; 1e-6 as above


def test_4mm_target_is_invariant_under_all_ops():
    gaas = read_cif(example_path("GaAs"))  # -43m: 4mm bright field (with reciprocity)
    assert gaas.bright_field_symmetry == "4mm"
    base = _engine(gaas)
    for op in (1, 4, 6):
        assert z_score(base, _engine(transformed(gaas, op))) < 1e-6
        assert z_score(base, op_on_pattern(torch.from_numpy(base), op).numpy()) < 1e-6


def test_random_augment_pairs_are_consistent_and_seeded():
    rng = np.random.default_rng(0)
    x0 = torch.from_numpy(rng.random((2, SIZE, SIZE)))  # channel 0: potential, 1: pattern-grid map
    y0 = torch.from_numpy(rng.random((SIZE, SIZE)))
    gen = torch.Generator().manual_seed(3)
    seen_ops, seen_shifts = set(), set()
    for _ in range(40):
        x, y = random_augment(x0, y0, gen, pattern_channels=1)
        (op,) = [k for k in range(N_OPS) if torch.equal(op_on_pattern(y0, k), y)]
        assert torch.equal(x[1], op_on_pattern(x0[1], op))  # pattern-grid channel: no shift
        moved = op_on_potential(x0[0], op)
        shifts = [
            (r, c)
            for r in range(SIZE)
            for c in range(SIZE)
            if torch.equal(origin_shift(moved, r, c), x[0])
        ]
        assert len(shifts) == 1
        seen_ops.add(op)
        seen_shifts.add(shifts[0])
    assert seen_ops == set(range(N_OPS)) and len(seen_shifts) > 20
    a = [random_augment(x0, y0, torch.Generator().manual_seed(9)) for _ in range(2)]
    assert torch.equal(a[0][0], a[1][0]) and torch.equal(a[0][1], a[1][1])


def test_training_with_augmentation(tmp_path):
    """PatternSamples draws augmented copies for training only; train() records the mode."""
    from lacbed.errors import SettingsError
    from lacbed.ml.config import Normalisation, TrainConfig
    from lacbed.ml.data import PatternSamples, SplitArrays

    rng = np.random.default_rng(1)
    arrays = SplitArrays(
        potential=rng.uniform(30, 500, (3, SIZE, SIZE)).astype(np.float32),
        pattern=rng.random((3, 1, SIZE, SIZE)).astype(np.float32),
        thickness_nm=np.array([100.0]),
        a=np.array([4.0, 5.0, 6.0]),
        symmetry=("4mm", "2mm", "none"),
        keys=("a", "b", "c"),
        formulas=("A", "B", "C"),
    )
    plain = PatternSamples(arrays, Normalisation())
    aug = PatternSamples(arrays, Normalisation(), augment="all", seed=0)
    assert torch.equal(plain[0]["x"], plain[0]["x"])
    changed = sum(not torch.equal(aug[k]["x"], plain[k]["x"]) for k in range(3) for _ in range(4))
    assert changed >= 10  # the identity with no shift has probability 1/(8·256) per draw
    with pytest.raises(SettingsError, match="augmentation"):
        TrainConfig(augment="rotate")
    assert TrainConfig(augment="ops").to_dict()["augment"] == "ops"
