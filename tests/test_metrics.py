"""Z = 1 - ZNCC against a direct numpy reference."""

import numpy as np
import pytest

from lacbed.metrics import z_score, zncc


def _reference(a, b):
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    return float(np.sum(a * b) / (a.size * a.std() * b.std()))


def test_zncc_matches_reference():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 32, 32))
    assert zncc(a, b) == pytest.approx(_reference(a, b), abs=1e-14)


def test_invariances_and_batch():
    rng = np.random.default_rng(1)
    a = rng.random((3, 16, 16))
    # Z is blind to a uniform scale and offset (docs/physics.md §3, §9)
    np.testing.assert_allclose(z_score(a, 3.7 * a + 2.0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z_score(a, -a), 2.0, atol=1e-12)
    assert z_score(a, a[::-1]).shape == (3,)


def test_constant_image_is_uncorrelated():
    a = np.ones((8, 8))
    assert zncc(a, np.random.default_rng(2).random((8, 8))) == 0.0
