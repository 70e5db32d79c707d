"""Robustness of the Bloch-wave engine: no gain from Bethe potentials, robust eigensolves.

Regression tests for the dataset-build failures of issue 3 (docs/engine_validation.md,
"Robustness fixes"): BaPbO3 (OQMD 284503-646760) gave I₀₀₀ up to 7·10⁴ at 200 nm with
``strong_beams=64`` because the absorptive part of the Bethe sum made the effective absorption
matrix indefinite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lacbed.bloch import solver as bsolver
from lacbed.bloch.matrix import (
    excitation_denominators,
    structure_matrices,
    structure_matrices_real,
)
from lacbed.bloch.solver import eigh_batched, solve_exact
from lacbed.constants import electron_constants
from lacbed.crystal import read_cif
from lacbed.errors import LacbedError
from lacbed.simulate import engine, simulate_lacbed
from lacbed.simulate.geometry import incident_wavevectors, tilts
from lacbed.simulate.symmetry import find_inversion_centre, lattice_centring

DATA = Path(__file__).resolve().parent / "data" / "cif"
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "lacbed" / "examples"


def _beam_set(crystal, *, size, strong_beams, row, col, tile, real=True):
    """Engine's pool, potential table and beam set for the tile of one pixel (200 kV)."""
    ec = electron_constants(200e3)
    big_k = ec.wavenumber
    centre = find_inversion_centre(crystal) if real else None
    work = crystal.shifted(centre) if centre is not None else crystal
    pool = engine._pool_for(crystal.a, None, big_k, lattice_centring(crystal))
    g = pool / crystal.a
    v, absu, is_real, _, _ = engine._potential_table(
        work,
        pool,
        voltage=ec.voltage,
        scattering="kirkland",
        absorption="bird-king",
        kappa=0.078,
        b_iso=None,
        real=centre is not None,
    )
    n = size // 2
    half_width = 4.0 / crystal.a
    rr, cc = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    sel = ((rr - n) // tile == (row - n) // tile) & ((cc - n) // tile == (col - n) // tile)
    k_tile = incident_wavevectors(tilts(rr[sel], cc[sel], size, half_width), big_k)
    d_min = np.abs(excitation_denominators(k_tile, g, big_k)).min(axis=0)
    w = engine.beam_importance(absu, d_min)
    strong, weak = engine._select(w, absu, d_min, strong_beams, None)
    k = incident_wavevectors(tilts([row], [col], size, half_width), big_k)
    return v, g, big_k, k, strong, weak, is_real


@pytest.fixture(scope="module")
def bapbo3():
    return read_cif(DATA / "BaPbO3_oqmd.cif")


def test_bethe_absorption_is_positive_semidefinite(bapbo3):
    # the pixel (15, 15) of a 128-pixel pattern with 64 strong beams: before the fix the
    # absorptive part of Â had an eigenvalue of -0.06 Å⁻² (gain); U′ itself is PSD with
    # eigenvalues down to ~3e-6 Å⁻², so -1e-12 allows only round-off
    v, g, big_k, k, strong, weak, is_real = _beam_set(
        bapbo3, size=128, strong_beams=64, row=15, col=15, tile=16
    )
    assert is_real and len(weak) > 100
    a = structure_matrices(v, k, g, big_k, strong, weak)[0]
    ap = (a - a.conj().T) / 2j
    assert np.linalg.eigvalsh(ap).min() > -1e-12
    h, ap_real = structure_matrices_real(v, k, g, big_k, strong, weak)
    assert np.linalg.eigvalsh(ap_real[0]).min() > -1e-12
    # the real build is the complex build (round-off of sums of ~1e-2 Å⁻² terms)
    np.testing.assert_allclose(h[0] + 1j * ap_real[0], a, atol=1e-13)


@pytest.mark.parametrize("solver", ["fast", "exact"])
def test_bapbo3_no_intensity_blow_up(bapbo3, solver):
    # before the fix: max I000 = 69 (fast) and 6.7e4 (exact) at 200 nm (size 32, 64 beams)
    p = simulate_lacbed(bapbo3, [50, 200], size=32, strong_beams=64, solver=solver)
    assert np.all(np.isfinite(p.intensities))
    # with absorption the transmitted intensity cannot exceed the incident one; 1e-9: round-off
    assert p.intensities.max() <= 1 + 1e-9
    assert p.intensities.min() >= 0


@pytest.mark.parametrize("name", ["Si", "GaAs", "SrTiO3", "FeS2"])
def test_flux_never_grows_with_absorption(name):
    # Σ_g |ψ_g|² (1 + g_n/k_n) (the transmitted flux) is ≤ 1 and non-increasing in t for every
    # tilt of a tile at a low beam count with many Bethe beams (exact solver, all beams)
    crystal = read_cif(EXAMPLES / f"{name}.cif")
    real = crystal.point_group in ("m-3m", "m-3")
    v, g, big_k, _, strong, weak, _ = _beam_set(
        crystal, size=16, strong_beams=12, row=0, col=0, tile=4, real=real
    )
    assert len(weak) > 0
    half_width = 4.0 / crystal.a
    rr, cc = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    k = incident_wavevectors(tilts(rr.ravel(), cc.ravel(), 16, half_width), big_k)
    a = structure_matrices(v, k, g, big_k, strong, weak)
    t = np.linspace(0.0, 4000.0, 41)  # [Å]
    gn = g[strong, 2]
    psi = solve_exact(a, k[:, 2], t, all_beams=True, g_n=gn)  # (p, t, n)
    flux = np.sum(np.abs(psi) ** 2 * (1 + gn / k[:, 2:3])[:, None, :], axis=2)
    # 1e-9: round-off of the eigen-decomposition (flux is O(1))
    assert flux.max() <= 1 + 1e-9
    assert np.all(np.diff(flux, axis=1) <= 1e-9)


@pytest.mark.parametrize("name", ["Si", "GaAs", "SrTiO3", "FeS2"])
def test_i000_at_most_one_low_beam_counts(name):
    crystal = read_cif(EXAMPLES / f"{name}.cif")
    p = simulate_lacbed(crystal, [50, 200, 400], size=16, strong_beams=12)
    # 1e-9: round-off; with absorption I000 ≤ 1 at every tilt and thickness
    assert p.intensities.max() <= 1 + 1e-9


def test_eigh_falls_back_to_other_drivers(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 20, 20))
    h = x + np.swapaxes(x, 1, 2)
    w_ref, _ = np.linalg.eigh(h)
    original = np.linalg.eigh

    def failing(a, *args, **kwargs):  # the batched heevd call fails, single matrices too
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(bsolver.np.linalg, "eigh", failing)
    w, v = eigh_batched(h)
    monkeypatch.setattr(bsolver.np.linalg, "eigh", original)
    # heevr/heev against heevd: round-off of O(10) eigenvalues
    np.testing.assert_allclose(w, w_ref, atol=1e-12)
    np.testing.assert_allclose(v @ (w[..., None] * np.swapaxes(v, 1, 2)), h, atol=1e-12)
    with pytest.raises(FloatingPointError, match="NaN"):
        bsolver._eigh_robust(np.full((1, 3, 3), np.nan))


def test_tile_failure_is_a_clear_error(monkeypatch):
    crystal = read_cif(EXAMPLES / "Si.cif")

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(engine, "solve_fast", broken)
    with pytest.raises(LacbedError, match=r"Si.*200 kV.*strong_beams=8.*did not converge"):
        simulate_lacbed(crystal, 50, size=8, strong_beams=8, n_jobs=1)


@pytest.mark.parametrize("complex_", [False, True])
def test_single_precision_eigh_is_scipys_evd_and_falls_back(monkeypatch, complex_):
    """_eigh_single calls the LAPACK driver of scipy.linalg.eigh(driver='evd') directly: the
    same numbers bit for bit; a matrix on which the driver reports failure (info != 0) is solved
    by the robust double-precision path."""
    import scipy.linalg

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 30, 30)) + (1j * rng.normal(size=(4, 30, 30)) if complex_ else 0)
    h = x + np.conj(np.swapaxes(x, 1, 2))
    w, v = bsolver._eigh_single(h)
    single = h.astype(np.complex64 if complex_ else np.float32)
    for i in range(len(h)):
        w0, v0 = scipy.linalg.eigh(single[i], driver="evd", check_finite=False)
        assert np.array_equal(w[i], w0) and np.array_equal(v[i], v0)
    real_driver = bsolver._evd_driver

    def failing_on_second(a):
        drv, args = real_driver(a)
        calls = []

        def wrapped(**kw):
            calls.append(1)
            out = drv(**kw)
            return (*out[:2], 1) if len(calls) == 2 else out  # info = 1: no convergence

        return wrapped, args

    monkeypatch.setattr(bsolver, "_evd_driver", failing_on_second)
    w2, v2 = bsolver._eigh_single(h)
    w_robust = bsolver._eigh_robust(np.asarray(h[1:2]))[0][0].astype(np.float32)
    assert np.array_equal(w2[1], w_robust) and not np.array_equal(w2[1], w[1])

    def illegal(a):  # info < 0 is a bug in the call, not a hard matrix: raised, not hidden
        drv, args = real_driver(a)
        return (lambda **kw: (*drv(**kw)[:2], -3)), args

    monkeypatch.setattr(bsolver, "_evd_driver", illegal)
    with pytest.raises(np.linalg.LinAlgError, match="illegal value in argument 3"):
        bsolver._eigh_single(h)
    assert np.array_equal(w2[0], w[0]) and np.array_equal(w2[2], w[2])


def _propagate_reference(w, q, qm, c0, k_n, thickness):
    """The coupled propagation as written before the 2026-12-07 rewrite (complex R, np.where)."""
    n = w.shape[1]
    tau = (np.pi / k_n)[:, None, None] * thickness[None, None, :]
    beta = np.conj(c0)
    ex = np.exp(1j * tau * (w + 1j * q)[:, :, None])
    y = ex * beta[:, :, None]
    dr = w[:, :, None] - w[:, None, :]
    di = q[:, :, None] - q[:, None, :]
    den = dr * dr + di * di
    tiny = den * (tau.max(axis=2)[:, :, None] ** 2) < 1e-8
    inv = np.where(tiny, 0.0, 1.0 / np.where(tiny, 1.0, den))
    r = qm * inv * (di + 1j * dr)
    tiny.reshape(len(w), n * n)[:, :: n + 1] = False
    y += ex * (r @ beta[:, :, None]) - r @ (beta[:, :, None] * ex)
    pi, ji, ki = np.nonzero(tiny)
    add = (1j * qm[pi, ji, ki] * beta[pi, ki])[:, None] * 0.5j * tau[pi, 0, :]
    np.add.at(y, (pi, ji), add * (ex[pi, ji, :] + ex[pi, ki, :]))
    return y, len(pi)


def test_propagation_coupling_matches_the_former_form():
    """The rewritten coupling (in-place temporaries; real products for real Q) equals the former
    complex form, for real and complex Q and c0, including near-degenerate pairs (the
    degenerate-limit branch, checked to be taken)."""
    rng = np.random.default_rng(2)
    p, n = 6, 40
    w = np.sort(rng.normal(size=(p, n)), axis=1)
    q = np.abs(rng.normal(size=(p, n))) * 1e-3
    w[:, 7], q[:, 7] = w[:, 6] + 1e-9, q[:, 6]  # a degenerate pair: |τΔλ| ≪ 1e-4
    qm = rng.normal(size=(p, n, n)) * 1e-4
    qm = qm + np.swapaxes(qm, 1, 2)
    qc = qm + 1j * (rng.normal(size=(p, n, n)) * 1e-4)
    qc = 0.5 * (qc + np.conj(np.swapaxes(qc, 1, 2)))  # Hermitian
    k_n, t = np.full(p, 39.9), np.array([500.0, 1000.0, 2000.0])
    c_real, c_cplx = rng.normal(size=(p, n)), rng.normal(size=(p, n)) + 1j * rng.normal(size=(p, n))
    for q_mat, c0 in ((qm, c_real), (qm, c_cplx), (qc, c_cplx)):
        ref, n_tiny = _propagate_reference(w, q, q_mat, c0, k_n, t)
        assert n_tiny == 2 * p  # the pair (6, 7) both ways in every batch
        new = bsolver._propagate(w, q, q_mat, c0, k_n, t)
        np.testing.assert_allclose(new, ref, rtol=0, atol=1e-13 * np.abs(ref).max())
