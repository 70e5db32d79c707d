"""Excitation errors, beam selection, Bethe potentials and batched structure matrices.

Conventions (used consistently by the whole engine)
--------------------------------------------------
* Reciprocal vectors in 1/Å without 2π; K = 1/λ is the **vacuum** wavenumber and every incident
  wave vector lies on the vacuum Ewald sphere, |k| = K. The mean inner potential is not put into
  K: it stays in the structure matrix as U₀ + iU′₀ on the diagonal (unlike Felix, which drops it),
  so refraction appears as the uniform phase exp(iπU₀t/k_n) and the mean absorption as the
  uniform factor exp(−2πU′₀t/K) in the intensity.
* Surface normal n = ẑ (the zone axis, the beam direction at the pattern centre; a tilted normal
  enters only through g_n = g·n̂ and k_n = k·n̂, :func:`normal_components`, docs/physics.md §12). With ψ = Σ_g C_g exp(2πi(k + g + γn)·r) the
  Schrödinger equation, neglecting γ² (no back-scattering), reads

      (K² − |k+g|²) C_g + Σ_h V_{g−h} C_h = 2 k_n γ (1 + g_n/k_n) C_g,

  with V = U + iU′ the complex potential [Å⁻²]. We always use the surface-normal metric:
  D = diag(1 + g_n/k_n), Â = D^(−½) (diag(K² − |k+g|²) + V) D^(−½), Â B = 2k_n γ B,
  C = D^(−½) B. For a Hermitian elastic V, Â is Hermitian. The diagonal
  K² − |k+g|² = 2(k_n + g_n) s_g defines the exact excitation error
  s_g = (K² − |k+g|²) / (2 (k+g)·n) (docs/physics.md §4), valid for HOLZ beams.
* Bethe potentials: weak beams w are folded into the strong block,
  V^eff_gh = V_{g−h} − Σ_w V_{g−w} V_{w−h} / (K² − |k+w|²) (diagonal included),
  **plus the absorption of the weak-beam admixture**, i Nᴴ U′_ww N with
  N = D_w⁻¹ U_ws, D_w = diag(K² − |k+w|²) (so N_wh = U_{w−h}/(K² − |k+w|²)).
  Why: to first order in U′ (the order of the fast path) the absorptive part of the effective
  matrix is Pᴴ U′ P with P = [I; −N] (the Bloch wave with its first-order weak-beam components
  c_w = −Σ_h U_{w−h}C_h/(K² − |k+w|²)): U′_ss − (U′_sw N + Nᴴ U′_ws) + Nᴴ U′_ww N. The plain Bethe
  sum holds only the indefinite cross term; alone it can make the absorptive part negative in
  some direction (gain: I₀₀₀ up to 2·10⁴ for BaPbO3 with a few hundred weak beams). With the
  last term it is a completed square, positive semi-definite because U′ (the Fourier matrix of
  an absorptive potential U′(r) ≥ 0) is, so there is no gain. Its diagonal alone (U′₀) is not
  enough (the off-diagonal U′_{w−w′} matter); the full term costs m²n + mn² per tilt.

References
----------
.. [1] J. C. H. Spence and J. M. Zuo, *Electron Microdiffraction* (Plenum, 1992), ch. 3
   (structure matrix, surface-normal metric).
.. [2] P. Hirsch, A. Howie, R. Nicholson, D. Pashley and M. Whelan, *Electron Microscopy of Thin
   Crystals* (1965), ch. 12.
.. [3] H. Bethe, Ann. Phys. 87 (1928) 55; S. Wang and M. De Graef, Ultramicroscopy 160 (2016) 35
   (Bethe potentials in many-beam calculations).
.. [4] J. M. Zuo and A. L. Weickenmeier, Ultramicroscopy 57 (1995) 375 (perturbation strength
   |U_g| / (2K|s_g|) as the beam-selection measure).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "excitation_denominators",
    "excitation_errors",
    "normal_components",
    "beam_importance",
    "structure_matrices",
    "structure_matrix_parts",
    "structure_matrices_real",
]


def excitation_denominators(k: np.ndarray, g: np.ndarray, wavenumber: float) -> np.ndarray:
    """K² − |k + g|² for every incident wave vector and beam [Å⁻²].

    Parameters
    ----------
    k : ndarray, shape (n_tilts, 3)
        Incident wave vectors with |k| = K [1/Å].
    g : ndarray, shape (n_beams, 3)
        Reciprocal-lattice vectors [1/Å].
    wavenumber : float
        K [1/Å].

    Returns
    -------
    ndarray, shape (n_tilts, n_beams)
        Written as −(2k·g + |g|²), exact because |k| = K, and free of the cancellation in
        K² − |k+g|².
    """
    k = np.asarray(k, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    return -(2.0 * k @ g.T + np.sum(g * g, axis=1)[None, :])


def excitation_errors(
    k: np.ndarray, g: np.ndarray, wavenumber: float, normal: np.ndarray | None = None
) -> np.ndarray:
    """Exact excitation errors s_g = (K² − |k+g|²) / (2 (k+g)·n) [1/Å]; n = ẑ unless ``normal``.

    References
    ----------
    docs/physics.md §4; Spence & Zuo (1992), Eq. (3.8). The small-angle limit is −(2k·g + g²)/(2K).
    """
    d = excitation_denominators(k, g, wavenumber)
    k_n, g_n = normal_components(k, g, normal)
    return d / (2.0 * (k_n[:, None] + g_n[None, :]))


def beam_importance(
    abs_u_table: np.ndarray, min_abs_d: np.ndarray, *, zero_index: int = 0
) -> np.ndarray:
    """Perturbation strength of every pool beam over a group of tilts, to second order.

    First order (Zuo & Weickenmeier 1995): a_h = |U_h| / |K² − |k+h|²| (= |U_h|/(2K|s_h|)), capped
    at 1. Second order lets a beam also be fed through an excited beam h:
    w_g = max(|U_g|, max_h |U_{g−h}| a_h) / |K² − |k+g|²|, capped at 1. This keeps kinematically
    forbidden but dynamically important beams (Si 200) and the HOLZ beams that couple to the
    excited zero-layer beams. For a group of tilts the smallest |K² − |k+g|²| over the group is
    used (the beam's closest approach to the Bragg condition).

    Parameters
    ----------
    abs_u_table : ndarray, shape (n_pool, n_pool)
        |U_{g−h}| [Å⁻²] for pool beams g (rows) and h (columns).
    min_abs_d : ndarray, shape (n_pool,)
        min over the group of |K² − |k+g|²| [Å⁻²].
    zero_index : int
        Index of the 000 beam in the pool.

    Returns
    -------
    ndarray, shape (n_pool,)
        Strength in [0, 1]; the 000 beam gets 1 (+ a tiny bonus so it always ranks first).
    """
    d = np.maximum(min_abs_d, 1e-30)
    a = np.minimum(abs_u_table[:, zero_index] / d, 1.0)
    a[zero_index] = 1.0
    off = abs_u_table.copy()
    np.fill_diagonal(off, 0.0)
    feed = np.max(off * a[None, :], axis=1)
    w = np.minimum(feed / d, 1.0)
    w[zero_index] = 2.0
    return w


def metric_scale(g_n: np.ndarray, k_n: np.ndarray) -> np.ndarray:
    """Surface-normal metric D^{-1/2} = (1 + g_n/k_n)^{-1/2} for every tilt and beam.

    Parameters
    ----------
    g_n : ndarray, shape (n,)
        Beam components along the surface normal [1/Å].
    k_n : ndarray, shape (p,)
        Incident wave-vector components along the surface normal [1/Å].

    Returns
    -------
    ndarray, shape (p, n)

    References
    ----------
    Spence & Zuo, *Electron Microdiffraction* (1992), ch. 3 (the same metric as Felix).
    """
    return 1.0 / np.sqrt(1.0 + np.asarray(g_n)[None, :] / np.asarray(k_n)[:, None])


#: Precision of the Bethe sums ('single' or 'double'). The sums are corrections of size
#: ~|U|²/|K² − |k+w|²| added to float64 matrices, so float32 products change the matrix by
#: ~1e-7 of the correction (tests/test_bloch_core.py) and halve the time of the products.
BETHE_PRECISION: str = "single"
#: Order of the weak-beam elimination in U (2: Bethe potentials; 3 and 4 add the weak–weak
#: coupling, see :func:`structure_matrix_parts`). Order 4 cut Z against twice the strong beams
#: 3–5× on BaPbO3 and Sn2Pt (docs/engine_validation.md) and the convergence estimate of the
#: heavy materials 5–100× (Cs3TbF6 11.6 → 2.2 %, TlPd3O4 0.29 → 0.003 %) for ~10–15 % more CPU.
#: It is the physics of dataset release 2 (data/lacbed-cubic); release 1 was order 2.
BETHE_ORDER: int = 4


def normal_components(
    k: np.ndarray, g: np.ndarray, normal: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Components k_n = k·n̂ and g_n = g·n̂ along the surface normal [1/Å] (docs/physics.md §12).

    Parameters
    ----------
    k : ndarray, shape (p, 3)
        Incident wave vectors in the frame [1/Å].
    g : ndarray, shape (n, 3)
        Beams in the frame [1/Å].
    normal : ndarray, shape (3,), optional
        Unit surface normal in the frame; None: n̂ = ẑ (the zone axis), the z components exactly.

    Returns
    -------
    k_n : ndarray, shape (p,)
    g_n : ndarray, shape (n,)
    """
    k = np.asarray(k, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if normal is None:
        return k[:, 2], g[:, 2]
    n = np.asarray(normal, dtype=np.float64)
    return k @ n, g @ n


def _hermitian_blocks(v_table: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """U[rows, cols] and U′[rows, cols] of V = U + iU′ with U, U′ Hermitian [Å⁻²].

    U = (V + Vᴴ)/2 and U′ = (V − Vᴴ)/(2i) (module notes).
    """
    vrc = v_table[np.ix_(rows, cols)]
    vcr_h = np.conj(v_table[np.ix_(cols, rows)].T)
    return 0.5 * (vrc + vcr_h), (vrc - vcr_h) / 2j


def structure_matrix_parts(
    v_table: np.ndarray,
    k: np.ndarray,
    g: np.ndarray,
    wavenumber: float,
    strong: np.ndarray,
    weak: np.ndarray | None = None,
    *,
    metric: bool = True,
    bethe_precision: str | None = None,
    bethe_order: int | None = None,
    normal: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hermitian and absorptive parts of the batched structure matrices, with Bethe potentials.

    Â = H + iÂ′ with H = (Â + Âᴴ)/2 and Â′ = (Â − Âᴴ)/(2i), both Hermitian. With N = D_w⁻¹U_ws
    (D_w = diag(K² − |k+w|²)) the Bethe-corrected blocks are (module notes)

        H  = diag(K² − |k+g|²) + U_ss − U_sw N + U′_sw D_w⁻¹ U′_ws  [+ Nᴴ Y − Yᴴ D_w⁻¹ Y],
        Â′ = U′_ss − U′_sw N − Nᴴ U′_ws + Nᴴ U′_ww N   (= Pᴴ U′ P, P = [I; −N]),

    then D^(−½) · D^(−½) (surface-normal metric). The bracket (``bethe_order`` 3 and 4, with
    Y = U_ww N) is the coupling of the weak beams among themselves, which the Bethe potentials
    neglect: eliminating the weak beams exactly gives −U_sw (D_w + U_ww)⁻¹ U_ws (Löwdin
    partitioning), whose Neumann series
    (D_w + U_ww)⁻¹ = D_w⁻¹ − D_w⁻¹U_wwD_w⁻¹ + D_w⁻¹U_wwD_w⁻¹U_wwD_w⁻¹ − … gives the orders
    2, 3, 4. Here U_ww is taken without its diagonal U₀: like the Bethe potentials, the
    elimination is referred to the eigenvalues ≈ U₀ of the excited Bloch waves (the strong
    diagonal carries U₀), where (λ − U₀ − D_w − U_ww,off) ≈ −(D_w + U_ww,off). Low-order weak–
    weak reflections of heavy atoms are strong; neglecting them cost up to 4 % in Z (against
    twice the strong beams) on heavy-element OQMD structures, 0.6–1.3 % with order 4. Each weak-beam sum is one batched matrix
    product per tilt batch; no tensor of the products is built. When U and U′ are real (a
    centrosymmetric crystal with the origin on an inversion centre) the arithmetic is real.

    Parameters
    ----------
    v_table : ndarray, shape (n_pool, n_pool), complex
        V_{g−h} = U_{g−h} + iU′_{g−h} [Å⁻²] for pool beams (diagonal U₀ + iU′₀).
    k : ndarray, shape (n_tilts, 3)
        Incident wave vectors, |k| = K [1/Å].
    g : ndarray, shape (n_pool, 3)
        Pool reciprocal vectors [1/Å].
    wavenumber : float
        K [1/Å].
    strong : ndarray of int, shape (n_strong,)
        Pool indices of the strong beams (the 000 beam first).
    weak : ndarray of int, shape (n_weak,), optional
        Pool indices of the weak beams folded in as Bethe potentials.
    metric : bool
        Apply the surface-normal metric D^(−½) · D^(−½) (module notes). Without it the diagonal
        is K² − |k+g|² and the eigenvalue is 2k_nγ (HOLZ beams then lack the 1 + g_n/k_n factor).
    bethe_precision : {'single', 'double'}, optional
        Arithmetic of the weak-beam products (default :data:`BETHE_PRECISION`); everything else
        (the diagonal, U_ss, the sums into Â) is float64.
    bethe_order : {2, 3, 4}, optional
        Order of the elimination in U (default :data:`BETHE_ORDER`).
    normal : ndarray, shape (3,), optional
        Unit surface normal in the frame (:func:`normal_components`); None: ẑ.

    Returns
    -------
    h, ap : ndarray, shape (n_tilts, n_strong, n_strong)
        H and Â′ [Å⁻²]; float64 when U and U′ are real, else complex128.

    References
    ----------
    Spence & Zuo (1992) ch. 3; Bethe (1928); Wang & De Graef (2016), Eq. (8);
    P.-O. Löwdin, J. Chem. Phys. 19 (1951) 1396 (partitioning, the series in the couplings).
    """
    order = BETHE_ORDER if bethe_order is None else int(bethe_order)
    if order not in (2, 3, 4):
        raise ValueError(f"bethe_order must be 2, 3 or 4, got {bethe_order!r}")
    strong = np.asarray(strong, dtype=np.int64)
    weak = np.zeros(0, dtype=np.int64) if weak is None else np.asarray(weak, dtype=np.int64)
    k = np.asarray(k, dtype=np.float64)
    gs = g[strong]
    n, p = len(strong), len(k)
    blocks = list(_hermitian_blocks(v_table, strong, strong))  # U_ss, U′_ss
    if len(weak):
        blocks += _hermitian_blocks(v_table, strong, weak)  # U_sw, U′_sw
        blocks += _hermitian_blocks(v_table, weak, weak)  # U_ww, U′_ww
    scale = max(float(np.abs(blocks[0]).max()), 1e-300)
    if all(np.abs(b.imag).max(initial=0.0) <= 1e-12 * scale for b in blocks):
        blocks = [np.ascontiguousarray(b.real) for b in blocks]
    dtype = blocks[0].dtype
    h = np.empty((p, n, n), dtype=dtype)
    ap = np.empty((p, n, n), dtype=dtype)
    h[:] = blocks[0]
    ap[:] = blocks[1]
    idx = np.arange(n)
    h[:, idx, idx] += excitation_denominators(k, gs, wavenumber)
    if len(weak):
        precision = BETHE_PRECISION if bethe_precision is None else bethe_precision
        if precision not in ("single", "double"):
            raise ValueError(f"bethe_precision must be 'single' or 'double', got {precision!r}")
        low = precision == "single"
        usw, upsw, uww, upww = (
            b.astype(np.complex64 if np.iscomplexobj(b) else np.float32) if low else b
            for b in blocks[2:]
        )
        inv_d = 1.0 / excitation_denominators(k, g[weak], wavenumber)  # (p, m)
        inv_d = inv_d.astype(np.float32) if low else inv_d
        nm = inv_d[:, :, None] * np.conj(usw.T)[None, :, :]  # N = D_w⁻¹ U_ws, (p, m, n)
        # Every term is Hermitian in exact arithmetic; each is symmetrised (sym(X) = (X + Xᴴ)/2)
        # so that float32 round-off cannot put an anti-Hermitian part (spurious absorption or
        # gain) into H or Â′. With U_sw N = Nᴴ U_ws under sym, both parts share one product Nᴴ[..]:
        #   H:  − U_sw N + Nᴴ Y = sym(Nᴴ (Y − U_ws)),   Â′: sym(Nᴴ (U′_ww N − 2 U′_ws)).
        uws, upws = np.conj(usw.T), np.conj(upsw.T)  # (m, n)
        nh = np.conj(np.swapaxes(nm, 1, 2))  # Nᴴ, (p, n, m)
        b = upsw @ (inv_d[:, :, None] * upws[None, :, :])  # U′_sw D_w⁻¹ U′_ws
        if order >= 3:
            uww = uww - np.diag(np.diag(uww))  # U₀ off: see the notes above
            y = uww @ nm  # Y = U_ww N, (p, m, n)
            r = y - uws
            if order >= 4:
                b -= np.conj(np.swapaxes(y, 1, 2)) @ (inv_d[:, :, None] * y)
        else:
            r = np.broadcast_to(-uws, nm.shape)
        both = nh @ np.concatenate([r, upww @ nm - 2.0 * upws], axis=2)  # (p, n, 2n)
        b += both[:, :, :n]
        h += 0.5 * (b + np.conj(np.swapaxes(b, 1, 2)))
        b = both[:, :, n:]
        ap += 0.5 * (b + np.conj(np.swapaxes(b, 1, 2)))
    if metric:
        _apply_metric(h, ap, k, gs, normal)
    return h, ap


def _apply_metric(h: np.ndarray, ap: np.ndarray, k, gs, normal) -> None:  # noqa: ANN001
    """D^(−½) · D^(−½) on H and Â′ in place (surface-normal metric, module notes)."""
    k_n, g_n = normal_components(k, gs, normal)
    s = metric_scale(g_n, k_n)  # (p, n)
    sc = s[:, :, None] * s[:, None, :]
    h *= sc
    ap *= sc


def structure_matrices(
    v_table: np.ndarray,
    k: np.ndarray,
    g: np.ndarray,
    wavenumber: float,
    strong: np.ndarray,
    weak: np.ndarray | None = None,
    *,
    metric: bool = True,
    bethe_precision: str | None = None,
    bethe_order: int | None = None,
) -> np.ndarray:
    """Batched symmetrised structure matrices Â = H + iÂ′ (complex; for the exact solver).

    Parameters and references as :func:`structure_matrix_parts`.

    Returns
    -------
    ndarray, shape (n_tilts, n_strong, n_strong), complex128
        Â [Å⁻²]; eigenvalues are 2k_nγ (k_n = k_z, or K without the metric).
    """
    h, ap = structure_matrix_parts(
        v_table,
        k,
        g,
        wavenumber,
        strong,
        weak,
        metric=metric,
        bethe_precision=bethe_precision,
        bethe_order=bethe_order,
    )
    return h + 1j * ap


def structure_matrices_real(
    v_table: np.ndarray,
    k: np.ndarray,
    g: np.ndarray,
    wavenumber: float,
    strong: np.ndarray,
    weak: np.ndarray | None = None,
    *,
    metric: bool = True,
    bethe_precision: str | None = None,
    bethe_order: int | None = None,
    normal: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`structure_matrix_parts` for real U and U′ (centrosymmetric, origin on a centre).

    Raises
    ------
    ValueError
        If U or U′ is not real on these beams.
    """
    h, ap = structure_matrix_parts(
        v_table,
        k,
        g,
        wavenumber,
        strong,
        weak,
        metric=metric,
        bethe_precision=bethe_precision,
        bethe_order=bethe_order,
    )
    if np.iscomplexobj(h):
        raise ValueError("U or U′ is not real on these beams; use structure_matrix_parts")
    return h, ap


#: Weak-beam corrections interpolated across a batch of tilts: Chebyshev–Lobatto nodes per
#: tangential axis (3 → a 3×3 grid of exact evaluations), 0 = exact at every tilt. See
#: :func:`structure_matrix_parts_interpolated`.
BETHE_NODES: int = 3
#: Nodes per axis when the corrections are interpolated over a whole tile (every batch of the
#: tile from the same nodes, :func:`bethe_node_parts`; the engine's default path). A tile spans
#: up to 16 × 16 pixels at 128 × 128, 2–4× a batch, hence more nodes than :data:`BETHE_NODES`.
BETHE_TILE_NODES: int = 4


def _lobatto(lo: float, hi: float, n: int) -> np.ndarray:
    """n Chebyshev–Lobatto points spanning [lo, hi] (one point when the interval is empty)."""
    if n < 2 or hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.array([0.5 * (lo + hi)])
    return 0.5 * (lo + hi) + 0.5 * (hi - lo) * np.cos(np.pi * np.arange(n) / (n - 1))


def _lagrange(x: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Lagrange basis weights, shape (len(x), len(nodes)); rows sum to 1."""
    w = np.ones((len(x), len(nodes)))
    for j, xj in enumerate(nodes):
        for m, xm in enumerate(nodes):
            if m != j:
                w[:, j] *= (x - xm) / (xj - xm)
    return w


def interpolation_weights(kt: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Tensor Chebyshev–Lobatto nodes over the tilts' bounding box and each tilt's weights.

    Parameters
    ----------
    kt : ndarray, shape (p, 2)
        Tangential incident wave vectors (k_x, k_y) [1/Å].
    n_nodes : int
        Nodes per axis.

    Returns
    -------
    (nodes, weights) with shapes (q, 2) and (p, q), or None when q ≥ p (nothing to gain).
    """
    nx = _lobatto(kt[:, 0].min(), kt[:, 0].max(), n_nodes)
    ny = _lobatto(kt[:, 1].min(), kt[:, 1].max(), n_nodes)
    if n_nodes < 1 or len(nx) * len(ny) >= len(kt):
        return None
    gx, gy = np.meshgrid(nx, ny, indexing="ij")
    w = _lagrange(kt[:, 0], nx)[:, :, None] * _lagrange(kt[:, 1], ny)[:, None, :]
    return np.column_stack([gx.ravel(), gy.ravel()]), w.reshape(len(kt), -1)


#: Largest relative change (max − min)/min of a weak beam's |K² − |k+w|²| over a batch's
#: bounding box for which its corrections are interpolated; beyond it (or where the denominator
#: changes sign between the pixels) the batch is evaluated exactly.
BETHE_SMOOTHNESS: float = 1.0


def _box_denominators(box, gw: np.ndarray, wavenumber: float) -> np.ndarray:
    """K² − |k+w|² at the four corners of a tilt box (k_x0, k_x1, k_y0, k_y1) [1/Å], (4, m)."""
    kx0, kx1, ky0, ky1 = box
    corners = np.array([[x, y] for x in (kx0, kx1) for y in (ky0, ky1)], dtype=np.float64)
    kc = np.column_stack([corners, np.sqrt(wavenumber**2 - np.sum(corners**2, axis=1))])
    return excitation_denominators(kc, gw, wavenumber)


def tilt_box(k: np.ndarray) -> tuple[float, float, float, float]:
    """Bounding box (k_x0, k_x1, k_y0, k_y1) of tangential wave vectors k[:, :2] [1/Å]."""
    k = np.asarray(k, dtype=np.float64)
    return (float(k[:, 0].min()), float(k[:, 0].max()), float(k[:, 1].min()), float(k[:, 1].max()))


def rough_beams(box, gw: np.ndarray, wavenumber: float) -> np.ndarray:
    """Weak beams whose corrections cannot be interpolated over a tilt box, shape (m,) bool.

    K² − |k+w|² = −(2k·w + w²) is linear in the tangential k up to the small k_z variation, so
    its extremes over the box are at the corners: a beam is rough where it changes sign there
    (its Bragg line crosses the box) or its magnitude varies by more than
    :data:`BETHE_SMOOTHNESS` × its smallest value.

    Parameters
    ----------
    box : (float, float, float, float)
        (k_x0, k_x1, k_y0, k_y1) [1/Å] (:func:`tilt_box`).
    gw : ndarray, shape (m, 3)
        The weak beams' reciprocal vectors [1/Å].
    wavenumber : float
        K [1/Å].
    """
    if len(gw) == 0:
        return np.zeros(0, dtype=bool)
    d = _box_denominators(box, gw, wavenumber)
    a = np.abs(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = (a.max(axis=0) - a.min(axis=0)) / a.min(axis=0)
    return (d.max(axis=0) * d.min(axis=0) <= 0) | ~(spread <= BETHE_SMOOTHNESS)


def bethe_node_parts(
    v_table: np.ndarray,
    box,
    g: np.ndarray,
    wavenumber: float,
    strong: np.ndarray,
    weak: np.ndarray,
    n_nodes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The smooth parts of the structure matrices at the interpolation nodes of a tilt box.

    U_ss + (weak-beam corrections) and Â′, without the diagonal K² − |k+g|² and the metric,
    exactly (:func:`structure_matrix_parts`) at a tensor grid of ``n_nodes`` Chebyshev–Lobatto
    points per axis spanning the box; :func:`interpolate_parts` takes them to any tilt in it.

    Returns
    -------
    (nx, ny, h, ap) : the node abscissae in k_x and k_y [1/Å] (one each where the box is flat
    in that direction) and the parts at the q = len(nx)·len(ny) nodes, (q, n, n), node
    (i, j) at row i·len(ny) + j; None when a weak beam is rough over the box
    (:func:`rough_beams`) or ``n_nodes`` < 1 (evaluate exactly instead).
    """
    weak = np.asarray(weak, dtype=np.int64)
    if n_nodes < 1 or np.any(rough_beams(box, g[weak], wavenumber)):
        return None
    nx = _lobatto(box[0], box[1], n_nodes)
    ny = _lobatto(box[2], box[3], n_nodes)
    gx, gy = np.meshgrid(nx, ny, indexing="ij")
    nodes = np.column_stack([gx.ravel(), gy.ravel()])
    kz = np.sqrt(wavenumber**2 - np.sum(nodes**2, axis=1))
    k_nodes = np.column_stack([nodes, kz])  # (q, 3) on the Ewald sphere
    strong = np.asarray(strong, dtype=np.int64)
    h, ap = structure_matrix_parts(v_table, k_nodes, g, wavenumber, strong, weak, metric=False)
    idx = np.arange(len(strong))
    h[:, idx, idx] -= excitation_denominators(k_nodes, g[strong], wavenumber)
    return nx, ny, h, ap


def interpolate_parts(
    node_parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    k: np.ndarray,
    g: np.ndarray,
    wavenumber: float,
    strong: np.ndarray,
    *,
    normal: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """H and Â′ at tilts k from :func:`bethe_node_parts` (Lagrange interpolation in (k_x, k_y)),
    with the exact diagonal K² − |k+g|² and the surface-normal metric [Å⁻²].

    Parameters
    ----------
    node_parts : (nx, ny, h, ap)
        From :func:`bethe_node_parts` for a box holding every tilt of ``k``.
    k : ndarray, shape (p, 3)
        Incident wave vectors, |k| = K [1/Å].
    g, wavenumber, strong, normal
        As :func:`structure_matrix_parts`.
    """
    nx, ny, h_q, ap_q = node_parts
    k = np.asarray(k, dtype=np.float64)
    w = _lagrange(k[:, 0], nx)[:, :, None] * _lagrange(k[:, 1], ny)[:, None, :]
    w = w.reshape(len(k), -1)
    strong = np.asarray(strong, dtype=np.int64)
    n, q, p = len(strong), len(nx) * len(ny), len(k)
    h = (w @ h_q.reshape(q, n * n)).reshape(p, n, n)
    ap = (w @ ap_q.reshape(q, n * n)).reshape(p, n, n)
    idx = np.arange(n)
    gs = g[strong]
    h[:, idx, idx] += excitation_denominators(k, gs, wavenumber)
    _apply_metric(h, ap, k, gs, normal)
    return h, ap


def structure_matrix_parts_interpolated(
    v_table: np.ndarray,
    k: np.ndarray,
    g: np.ndarray,
    wavenumber: float,
    strong: np.ndarray,
    weak: np.ndarray | None = None,
    *,
    n_nodes: int | None = None,
    normal: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`structure_matrix_parts` with the potential and Bethe terms interpolated in the tilt.

    Within a batch of tilts (one tile's pixels) the strong block minus its diagonal,
    U_ss + (weak-beam corrections), and Â′ depend smoothly on k: every weak beam keeps
    |K² − |k+w|²| above 1/:data:`~lacbed.simulate.plan.BETHE_SAFETY` times its coupling to the
    strong set throughout the tile, so no Bethe denominator comes near zero and the corrections
    are analytic there. They are evaluated exactly at a tensor grid of Chebyshev–Lobatto nodes
    spanning the batch's (k_x, k_y) and interpolated to every tilt by the Lagrange polynomials
    (Trefethen, *Approximation Theory and Approximation Practice*, SIAM 2013, ch. 5 and 8); the
    diagonal K² − |k+g|² and the surface-normal metric stay exact at every tilt. Real weights
    summing to 1 keep H and Â′ Hermitian. Cost per tilt: 2 q n² (q = n_nodes², 9 by default)
    instead of ~4n²m + 2m²n for m weak beams. Measured against the exact evaluation:
    benchmarks/engine_precision.py.

    Parameters
    ----------
    v_table, k, g, wavenumber, strong, weak
        As :func:`structure_matrix_parts` (k: shape (p, 3), |k| = K [1/Å]).
    n_nodes : int, optional
        Nodes per axis (default :data:`BETHE_NODES`); 0, or a batch no larger than the grid,
        evaluates every tilt exactly.
    normal : ndarray, shape (3,), optional
        Surface normal of the metric, as :func:`structure_matrix_parts`.

    Returns
    -------
    h, ap : ndarray, shape (p, n_strong, n_strong)
        H and Â′ with the metric applied [Å⁻²].
    """
    n_nodes = BETHE_NODES if n_nodes is None else int(n_nodes)
    k = np.asarray(k, dtype=np.float64)
    if weak is None or len(weak) == 0 or n_nodes < 1 or n_nodes**2 >= len(k):
        return structure_matrix_parts(v_table, k, g, wavenumber, strong, weak, normal=normal)
    parts = bethe_node_parts(v_table, tilt_box(k), g, wavenumber, strong, weak, n_nodes)
    if parts is None:  # a weak beam too close to its Bragg condition somewhere in the batch
        return structure_matrix_parts(v_table, k, g, wavenumber, strong, weak, normal=normal)
    return interpolate_parts(parts, k, g, wavenumber, strong, normal=normal)
