"""Shared fixtures."""

import pytest


@pytest.fixture
def double_precision(monkeypatch):
    """The engine without its approximations below round-off: float64 eigensolve, exact Bethe
    terms in float64.

    The default eigensolve is float32 and the weak-beam corrections are interpolated across each
    batch of tilts (``lacbed.bloch.matrix.BETHE_NODES``; a full solve batches its pixels
    differently from a reduced one, so the interpolation nodes differ).

    For the exact oracles (two-beam, flux conservation, symmetry and origin invariance to
    ~1e-10): they test the algorithm, whose float32 round-off (max |ΔI| ~1e-5, Z ~1e-10; measured
    by tests/test_bloch_core.py::test_single_precision_eigensolve_*) would otherwise set the
    tolerance.
    """
    import lacbed.bloch.matrix as bm
    import lacbed.bloch.solver as bs

    monkeypatch.setattr(bs, "EIGH_PRECISION", "double")
    monkeypatch.setattr(bm, "BETHE_NODES", 0)
    # float32 weak-beam products round differently on different CPUs (OpenBLAS picks its
    # kernels at run time): up to 8e-8 in I on an AMD EPYC against 1.6e-10 on an Intel machine
    monkeypatch.setattr(bm, "BETHE_PRECISION", "double")
