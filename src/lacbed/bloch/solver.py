"""Batched Bloch-wave solvers: a Hermitian fast path and an exact non-Hermitian path.

Both take the symmetrised structure matrices Â (n_tilts, n, n) of
:func:`lacbed.bloch.matrix.structure_matrices` (eigenvalues 2k_nγ) and return amplitudes at all
thicknesses from one eigensolve per tilt.

* ``exact``: Â C = 2k_nγ C with the full complex potential (LAPACK geev);
  ψ(t) = C exp(2πiγt) C⁻¹ e₀.
* ``fast``: eigh of the Hermitian (elastic) part H = (Â + Âᴴ)/2, then first-order absorption
  γ_j → γ_j + i q_j with q_j = C_jᴴ Â′ C_j / (2k_n), Â′ = (Â − Âᴴ)/(2i);
  ψ₀(t) = Σ_j |C₀ⱼ|² exp(2πi(γ_j + iq_j)t), plus the first-order coupling of the Bloch waves
  by Â′ (Fréchet derivative of the exponential, :func:`_propagate`), so the error is second order
  in U′ also near degeneracies (Bragg lines of weak reflections). When H is real (centrosymmetric
  crystal with the origin on an inversion centre) a real symmetric eigh is used.

References
----------
.. [1] P. Hirsch et al., *Electron Microscopy of Thin Crystals* (1965), ch. 12 (first-order
   absorption of Bloch waves).
.. [2] J. C. H. Spence and J. M. Zuo, *Electron Microdiffraction* (1992), ch. 3.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.linalg import LinAlgError

from lacbed.bloch.matrix import metric_scale

__all__ = ["solve_fast", "solve_exact", "eigh_batched", "BACKENDS"]

BACKENDS = ("numpy", "torch")


#: Fast path: Bloch waves whose summed weight Σ|C₀ⱼ|² is below this are left out of ψ₀ [-].
EXCITATION_TAIL: float = 1e-5
#: Precision of the fast path's eigensolve and absorption products on the numpy backend
#: ('single' or 'double'). Single: LAPACK ssyevd/cheevd matrix by matrix (numpy's batched eigh
#: does not run faster in float32 here), 1.2–1.6× faster than the batched float64 eigh on 2 cores.
#: The eigenvalue error ~ε₃₂‖H‖ ≈ 1e-6 Å⁻² is a phase error ≲ 1e-3 rad at 200 nm; measured on
#: the ten examples (32×32) and Cu3Pd, Cs3TbF6, LiMgP, UC2 (64×64) at 50–200 nm: Z ≤ 3e-10
#: against double, max |ΔI| ≤ 2e-5, eigensolve 1.4–1.6× faster (benchmarks/engine_precision.py →
#: benchmarks/results/engine_precision.json; bound in tests/test_engine_plan.py). As abTEM's
#: float32 default, only where the test shows it is enough (issue 8).
EIGH_PRECISION: str = "single"


def _propagate(w, q, qm, c0, k_n, thickness):
    """y_j(t) = Σ_k [exp(iτM)]_{jk} conj(C₀ₖ) to first order in Â′, M = diag(w) + iQ.

    τ = 2πt/(2k_n), Q = Cᴴ Â′ C. Diagonal: the usual first-order absorption e^{iτ(w_j + iq_j)}.
    Off-diagonal: the Fréchet derivative of exp at diag(λ), λ = w + iq, in the direction iQ_off,
    whose (j, k) element is iQ_jk (e^{iτλ_j} − e^{iτλ_k})/(λ_j − λ_k) (the divided difference;
    iτ e^{iτλ} in the degenerate limit). This keeps the amplitude error second order in U′ even
    where two Bloch waves are nearly degenerate (Bragg lines of weak reflections such as GaAs 200),
    where the diagonal-only form is off by O(|Q_jk| / |w_j − w_k|).

    References
    ----------
    N. J. Higham, *Functions of Matrices* (SIAM, 2008), Thm. 3.11 (Fréchet derivative via divided
    differences); Hirsch et al. (1965), ch. 12 (first-order absorption).
    """
    n, p = w.shape[1], len(w)
    tau = (np.pi / k_n)[:, None, None] * thickness[None, None, :]  # (p, 1, t): 2πt/(2k_n)
    beta = np.conj(c0)  # (p, n)
    lam = w + 1j * q  # (p, n)
    ex = np.exp(1j * tau * lam[:, :, None])  # (p, n, t)
    y = ex * beta[:, :, None]  # (p, n, t)
    if n < 2:
        return y
    # (e^{iτλ_j} − e^{iτλ_k})/(λ_j − λ_k) splits into two matrix products, R = iQ_off/(λ_j − λ_k):
    # y_j += e^{iτλ_j} (Rβ)_j − (R (β e^{iτλ}))_j; pairs with |τ(λ_j − λ_k)| < 1e-4 (cancellation)
    # use the degenerate limit iτ (e^{iτλ_j} + e^{iτλ_k})/2 instead. The (p, n, n) arrays are
    # few and updated in place, and with real Q the products are real (R = A + iB with
    # A = Q·Δq/|Δλ|², B = Q·Δw/|Δλ|²): faster than complex R, same values to ~1e-16
    # (tested against the former form; benchmarks/engine_assembly_speed.py).
    dr = w[:, :, None] - w[:, None, :]  # (p, n, n)
    di = q[:, :, None] - q[:, None, :]
    den = np.multiply(dr, dr)
    den += di * di  # |λ_j − λ_k|²
    tmax = tau.max(axis=2)[:, :, None]  # (p, 1, 1)
    tiny = den * (tmax * tmax) < 1e-8  # includes the diagonal
    np.putmask(den, tiny, np.inf)
    inv = np.reciprocal(den, out=den)  # 1/|Δλ|², 0 on tiny pairs
    diag = tiny.reshape(p, n * n)[:, :: n + 1]
    diag[:] = False
    bex = beta[:, :, None] * ex  # (p, n, t)
    if np.iscomplexobj(qm):
        f = np.empty(qm.shape, dtype=np.complex128)  # i·conj(dl)/|dl|² = (di + i·dr)/|dl|²
        np.multiply(di, inv, out=f.real)
        np.multiply(dr, inv, out=f.imag)
        r = np.multiply(qm, f, out=f)
        y += ex * (r @ beta[:, :, None]) - r @ bex
    else:
        y += _real_coupling(qm, inv, di, dr, beta, ex, bex)
    if tiny.any():
        pi, ji, ki = np.nonzero(tiny)
        add = (
            (1j * qm[pi, ji, ki] * beta[pi, ki])[:, None]
            * 0.5j
            * tau[pi, 0, :]
            * (ex[pi, ji, :] + ex[pi, ki, :])
        )
        np.add.at(y, (pi, ji), add)
    return y


def _real_coupling(qm, inv, di, dr, beta, ex, bex):
    """e^{iτλ_j}(Rβ)_j − (R(βe^{iτλ}))_j for real Q, R = A + iB, in real products.

    Overwrites ``inv``, ``di`` and ``dr`` (with Q/|Δλ|², A and B)."""
    inv *= qm
    a = np.multiply(di, inv, out=di)
    b = np.multiply(dr, inv, out=dr)
    t = ex.shape[2]
    if np.iscomplexobj(beta):
        cols = [beta.real[:, :, None], beta.imag[:, :, None], bex.real, bex.imag]
        rhs = np.concatenate(cols, axis=2)  # (p, n, 2 + 2t)
        av, bv = a @ rhs, b @ rhs
        rb = (av[..., 0] - bv[..., 1]) + 1j * (av[..., 1] + bv[..., 0])
        o = 2
    else:
        rhs = np.concatenate([beta[:, :, None], bex.real, bex.imag], axis=2)  # (p, n, 1 + 2t)
        av, bv = a @ rhs, b @ rhs
        rb = av[..., 0] + 1j * bv[..., 0]
        o = 1
    re, im = slice(o, o + t), slice(o + t, o + 2 * t)
    rbex = (av[..., re] - bv[..., im]) + 1j * (av[..., im] + bv[..., re])
    return ex * rb[:, :, None] - rbex


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from lacbed.errors import SettingsError

        raise SettingsError(
            "backend='torch' needs PyTorch (install the optional extra lacbed[ml])"
        ) from exc
    return torch


def eigh_batched(h: np.ndarray, backend: str = "numpy") -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a stack of Hermitian (or real symmetric) matrices.

    With the numpy backend a failed batched ``heevd`` ("Eigenvalues did not converge") is retried
    matrix by matrix with the LAPACK drivers ``heevr`` and ``heev`` (:func:`_eigh_robust`).

    Parameters
    ----------
    h : ndarray, shape (batch, n, n)
    backend : {'numpy', 'torch'}
        'torch' uses ``torch.linalg.eigh`` on a GPU when one is available, else on the CPU.

    Returns
    -------
    w : ndarray, shape (batch, n), ascending
    v : ndarray, shape (batch, n, n), eigenvectors in columns
    """
    return _decompose(h, backend, hermitian=True)


def _eigh_single(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single-precision eigh matrix by matrix (LAPACK ssyevd/cheevd); returns float32/complex64.

    A matrix on which the single-precision driver fails is solved by :func:`_eigh_robust` in
    double precision (and rounded).
    """
    x = h.astype(np.complex64 if np.iscomplexobj(h) else np.float32)
    w = np.empty(x.shape[:-1], dtype=np.float32)
    v = np.empty_like(x)
    if not len(x):
        return w, v
    # the LAPACK driver scipy.linalg.eigh(driver="evd") calls, with its arguments (lower
    # triangle, workspace from the driver's own query), without its per-call checks: the
    # same numbers bit for bit (tested), less overhead on the ~2 000 small matrices of a
    # pattern (with the propagation rewrite 1.02-1.19x per pattern,
    # benchmarks/engine_assembly_speed.py)
    drv, args = _evd_driver(x[0])
    for i in range(len(x)):
        wi, vi, info = drv(a=x[i], compute_v=1, lower=1, **args)
        if info < 0:  # an illegal argument: a bug here, not a hard matrix
            raise LinAlgError(f"LAPACK ?syevd/?heevd: illegal value in argument {-info}")
        if info == 0:
            w[i], v[i] = wi, vi
        else:  # no convergence: the robust double-precision drivers
            wi, vi = _eigh_robust(np.asarray(h[i : i + 1]))
            w[i], v[i] = wi[0], vi[0]
    return w, v


def _evd_driver(a: np.ndarray):
    """LAPACK ?syevd/?heevd for matrices like ``a`` and its workspace sizes (as scipy's eigh)."""
    from scipy.linalg import lapack

    pfx = "he" if np.iscomplexobj(a) else "sy"
    drv, query = lapack.get_lapack_funcs((pfx + "evd", pfx + "evd_lwork"), (a,))
    names = ("lwork", "liwork", "lrwork") if pfx == "he" else ("lwork", "liwork")
    compute = getattr(lapack, "_compute_lwork", None)  # scipy's own helper (not public API)
    if compute is not None:
        sizes = compute(query, n=a.shape[-1], lower=1, compute_v=1)
    else:  # the query's raw answer, rounded up
        raw = query(n=a.shape[-1], lower=1, compute_v=1)[:-1]
        sizes = [int(np.ceil(np.real(x))) + 1 for x in raw]
    return drv, dict(zip(names, sizes, strict=True))


def _decompose(a: np.ndarray, backend: str, *, hermitian: bool) -> tuple[np.ndarray, np.ndarray]:
    """Batched ``eigh`` (hermitian) or ``eig`` on the chosen backend, with the robust fallback."""
    if backend == "numpy":
        try:
            return np.linalg.eigh(a) if hermitian else np.linalg.eig(a)
        except np.linalg.LinAlgError:
            return _eigh_robust(a) if hermitian else _eig_robust(a)
    if backend == "torch":
        torch = _torch()
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        x = torch.from_numpy(np.ascontiguousarray(a)).to(dev)
        w, v = torch.linalg.eigh(x) if hermitian else torch.linalg.eig(x)
        return w.cpu().numpy(), v.cpu().numpy()
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _check_finite(a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise FloatingPointError("the structure matrix contains NaN or inf")


def _eigh_robust(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matrix-by-matrix eigh with fallback LAPACK drivers, for when the batched call fails.

    numpy's eigh uses LAPACK ``heevd`` (divide and conquer), which can report "Eigenvalues did
    not converge" on valid, finite matrices with clusters of nearly equal eigenvalues. Each
    matrix is then retried with ``heevr`` (MRRR, scipy driver 'evr'), then ``heev`` (QR, 'ev').
    A matrix with NaN or inf raises FloatingPointError (no driver can help).

    References
    ----------
    E. Anderson et al., *LAPACK Users' Guide*, 3rd ed. (SIAM, 1999), §2.3.4.1 (symmetric
    eigenproblem drivers).
    """
    import scipy.linalg

    _check_finite(h)
    w = np.empty(h.shape[:-1], dtype=np.float64)
    v = np.empty_like(h)
    for i in range(len(h)):
        try:
            w[i], v[i] = np.linalg.eigh(h[i])
            continue
        except np.linalg.LinAlgError:
            pass
        for driver in ("evr", "ev"):
            try:
                w[i], v[i] = scipy.linalg.eigh(h[i], driver=driver, check_finite=False)
                break
            except (np.linalg.LinAlgError, ValueError):
                continue
        else:
            raise np.linalg.LinAlgError(
                f"eigh failed with every LAPACK driver (heevd, heevr, heev) on a "
                f"{h.shape[-1]}x{h.shape[-1]} matrix"
            )
    return w, v


def _eig_robust(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matrix-by-matrix eig after a failed batched call (scipy's geev as a second attempt)."""
    import scipy.linalg

    _check_finite(a)
    w = np.empty(a.shape[:-1], dtype=np.complex128)
    v = np.empty(a.shape, dtype=np.complex128)
    for i in range(len(a)):
        try:
            w[i], v[i] = np.linalg.eig(a[i])
        except np.linalg.LinAlgError:
            w[i], v[i] = scipy.linalg.eig(a[i], check_finite=False)
    return w, v


def _add(timings: dict | None, key: str, dt: float) -> None:
    if timings is not None:
        timings[key] = timings.get(key, 0.0) + dt


def _metric_scale(g_n: np.ndarray | None, k_n: np.ndarray, n: int) -> np.ndarray:
    if g_n is None:
        return np.ones((len(k_n), n))
    return metric_scale(g_n, k_n)


def solve_fast(
    a: np.ndarray,
    k_n: np.ndarray,
    thickness: np.ndarray,
    *,
    all_beams: bool = False,
    g_n: np.ndarray | None = None,
    backend: str = "numpy",
    timings: dict | None = None,
    real: bool = False,
) -> np.ndarray:
    """Hermitian eigensolve with first-order absorption; amplitudes at every thickness.

    Parameters
    ----------
    a : ndarray, shape (p, n, n), complex, or tuple (h, ap)
        Symmetrised structure matrices Â (eigenvalues 2k_nγ) [Å⁻²]; beam 0 is 000. A tuple
        gives the Hermitian part H and Â′ = (Â − Âᴴ)/(2i) directly (e.g. from
        :func:`lacbed.bloch.matrix.structure_matrices_real`).
    k_n : ndarray, shape (p,)
        Normal component of the incident wave vector [1/Å].
    thickness : ndarray, shape (t,)
        Thicknesses [Å].
    all_beams : bool
        Return every beam's amplitude (else only 000).
    g_n : ndarray, shape (n,), optional
        Normal components of the beams [1/Å], to undo the metric (C = D^(−½)B) for diffracted
        amplitudes; None when the metric was not used. Irrelevant for 000.
    backend : {'numpy', 'torch'}
    timings : dict, optional
        Wall times [s] are added to its keys "eigensolve" and "assembly".
    real : bool
        Â is complex symmetric with real symmetric H = Re Â and Â′ = Im Â (real U_g and U′_g:
        centrosymmetric crystal, origin on the inversion centre): real eigh, no Hermitian split.

    Returns
    -------
    ndarray, complex, shape (p, t) or (p, t, n)
        ψ₀ (or ψ_g). With the metric, Σ_g |ψ_g|² (1 + g_n/k_n) is the transmitted flux.
    """
    k_n = np.asarray(k_n, dtype=np.float64)
    thickness = np.asarray(thickness, dtype=np.float64)
    t0 = time.perf_counter()
    if isinstance(a, tuple):
        h, ap = a
        real = not np.iscomplexobj(h)
    elif real:
        # complex symmetric Â = H + iÂ′ with H, Â′ real symmetric
        h = np.ascontiguousarray(a.real)
        ap = np.ascontiguousarray(a.imag)
    else:
        a = np.asarray(a)
        ah = np.conj(np.swapaxes(a, -1, -2))
        h = 0.5 * (a + ah)
        ap = (a - ah) / 2j  # Â′, Hermitian
    t1 = time.perf_counter()
    single = EIGH_PRECISION == "single" and backend == "numpy"
    if single:
        _check_finite(h)
        w, v = _eigh_single(h)  # float32 / complex64
        ap = ap.astype(v.dtype)
    else:
        w, v = eigh_batched(h, backend)  # (p, n), (p, n, n)
    t2 = time.perf_counter()
    if not all_beams:
        # only Bloch waves excited by the incident beam matter for ψ₀: keep, per pixel, the
        # largest |C₀ⱼ|² whose excluded sum is ≤ EXCITATION_TAIL. The batch keeps the largest
        # count; the waves beyond a pixel's own count are zeroed, so that a pixel's result does
        # not depend on the batch it is solved in
        wt = np.abs(v[:, 0, :]) ** 2  # (p, n)
        order = np.argsort(-wt, axis=1)
        tail = 1.0 - np.cumsum(np.take_along_axis(wt, order, axis=1), axis=1)
        own = np.minimum(v.shape[-1], 1 + np.sum(tail > EXCITATION_TAIL, axis=1))  # (p,)
        m = int(own.max())
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=1)
        sub = np.sort(order[:, :m], axis=1)  # (p, m)
        v = np.take_along_axis(v, sub[:, None, :], axis=2)  # (p, n, m)
        w = np.take_along_axis(w, sub, axis=1)
        v = v * (np.take_along_axis(rank, sub, axis=1) < own[:, None])[:, None, :]
    av = ap @ v  # (p, n, m)
    vc = v if real else np.conj(v)
    qm = np.swapaxes(vc, -1, -2) @ av  # (p, m, m): Q = Cᴴ Â′ C
    if single:  # the propagation (phases τλ up to ~10³ rad) in double precision
        w, qm = (
            w.astype(np.float64),
            qm.astype(np.complex128 if np.iscomplexobj(qm) else np.float64),
        )
    q = np.diagonal(qm, axis1=1, axis2=2).real  # (p, m)
    c0 = v[:, 0, :].astype(np.complex128 if np.iscomplexobj(v) else np.float64)  # (p, m)
    y = _propagate(w, q, qm, c0, k_n, thickness)  # (p, m, t)
    if not all_beams:
        out = np.einsum("pj,pjt->pt", c0, y)
    else:
        scale = _metric_scale(g_n, k_n, v.shape[-1])  # (p, n)
        out = np.einsum("pgj,pjt->ptg", v, y) * scale[:, None, :]
    _add(timings, "eigensolve", t2 - t1)
    _add(timings, "assembly", time.perf_counter() - t2 + t1 - t0)
    return out


def solve_exact(
    a: np.ndarray,
    k_n: np.ndarray,
    thickness: np.ndarray,
    *,
    all_beams: bool = False,
    g_n: np.ndarray | None = None,
    backend: str = "numpy",
    timings: dict | None = None,
) -> np.ndarray:
    """Exact non-Hermitian eigensolve (geev + solve); amplitudes at every thickness.

    Parameters and returns as :func:`solve_fast`. ψ(t) = D^(−½) B exp(2πiγt) B⁻¹ e₀ with
    γ = eig(Â)/(2k_n).
    """
    a = np.asarray(a, dtype=np.complex128)
    k_n = np.asarray(k_n, dtype=np.float64)
    thickness = np.asarray(thickness, dtype=np.float64)
    t1 = time.perf_counter()
    w, v = _decompose(a, backend, hermitian=False)
    e0 = np.zeros(a.shape[:-1] + (1,), dtype=np.complex128)
    e0[:, 0, 0] = 1.0
    alpha = np.linalg.solve(v, e0)[:, :, 0]  # (p, n)
    t2 = time.perf_counter()
    gam = w / (2.0 * k_n[:, None])
    ph = np.exp(2j * np.pi * gam[:, :, None] * thickness[None, None, :])  # (p, n, t)
    if not all_beams:
        out = np.einsum("pj,pjt->pt", v[:, 0, :] * alpha, ph)
    else:
        scale = _metric_scale(g_n, k_n, a.shape[-1])
        out = np.einsum("pgj,pjt->ptg", v * alpha[:, None, :], ph) * scale[:, None, :]
    _add(timings, "eigensolve", t2 - t1)
    _add(timings, "assembly", time.perf_counter() - t2)
    return out
