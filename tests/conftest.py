"""Shared fixtures."""

import pytest


@pytest.fixture
def double_precision(monkeypatch):
    """The fast path in float64 throughout (the default eigensolve is float32).

    For the exact oracles (two-beam, flux conservation, symmetry and origin invariance to
    ~1e-10): they test the algorithm, whose float32 round-off (max |ΔI| ~1e-5, Z ~1e-10; measured
    by tests/test_bloch_core.py::test_single_precision_eigensolve_*) would otherwise set the
    tolerance.
    """
    import lacbed.bloch.solver as bs

    monkeypatch.setattr(bs, "EIGH_PRECISION", "double")
