"""Gaussian linear model with an unstructured covariance per patient (MMRM / cLDA kernel).

Model: y_i = X_i b + e_i, e_i ~ N(0, S[o_i, o_i]) where S (m x m) is unstructured and o_i the
visits observed for patient i (missing visits are simply absent). (RE)ML with the fixed
effects profiled out: with V = blockdiag(S_i), W_i = S_i^-1, Phi = (X'V^-1X)^-1,
b(S) = Phi X'V^-1 y and e = y - X b(S),

    f(S) = -2 l(S) - c = sum_i log|S_i| + e'V^-1 e [+ log|X'V^-1 X| for REML].

Missingness patterns are batched: with x~_i = [X_i, y_i] embedded in m rows (unobserved rows
zero) and, per pattern s, M_s[a, b] = sum_{i in s} x~_ia x~_ib' ((p+1) x (p+1) for each pair of
visits), every quantity is a contraction of M_s with W~_s (S_s^-1 embedded in m x m): for
instance [X, y]'V^-1[X, y] = sum_s sum_ab W~_s[a, b] M_s[a, b]. Nothing is per patient after
the one pass that builds M.

Parameters are the K = m(m+1)/2 elements s_ab (a <= b) of S (the linear parameterisation:
dV/ds_k = D_k, the symmetric indicator of (a, b)). With P the REML projection
(V^-1 - V^-1 X Phi X'V^-1) and r = V^-1 e = P y, analytically

    df/ds_k = tr(V^-1 D_k) - tr(Phi X'V^-1 D_k V^-1 X) [REML] - r'D_k r,
    d2f/ds_k ds_l = -tr(P D_k P D_l) + 2 r'D_k P D_l r      (ML: V^-1 in place of P in the
                                                            trace),

and the expected (Fisher) Hessian is tr(P D_k P D_l). The optimiser is Newton's method with
the observed Hessian (Fisher scoring when it is not positive definite), a backtracking line
search that keeps S positive definite, to a Newton decrement g'H^-1 g < 1e-20 max(1, |f|)
and one last full step (the optimum to ~1e-10 relative, not a library's stopping point); the
derivatives of the last Newton point serve the inference.

Inference for a contrast c'b (v = c'Phi c, g_k = dv/ds_k = c'Phi P_k Phi c with
P_k = X'V^-1 D_k V^-1 X, W = Cov(s^) = 2 H^-1 from the observed Hessian H of f):

- Satterthwaite: df = 2 v^2 / (g'W g)  (Christensen's formulation, as lmerTest / R mmrm; the
  delta method at the optimum, so the same in any parameterisation of S);
- Kenward-Roger (REML only): SE from Phi_A = Phi + 2 Phi [sum_kl W_kl (Q_kl - P_k Phi P_l)] Phi
  with Q_kl = X'V^-1 D_k V^-1 D_l V^-1 X (Kenward & Roger 1997, eq. 5). In this linear
  parameterisation the second-derivative term R_kl is zero; the remaining sum is the same in
  any parameterisation (P, Q and W transform with the Jacobian), so this is R mmrm's
  ``vcov = "Kenward-Roger-Linear"`` (its R_kl dropped), W from the observed information as
  there. df from Kenward & Roger's E* and V* moment matching (one contrast: A1 = A2 =
  g'W g / v^2);
- residual: N - p (observations minus fixed effects: nlme's summary.gls t-tests and R mmrm's
  "Residual"; emmeans' ``mode = "df.error"`` for gls also subtracts the covariance
  parameters other than sigma, N - p - (K - 1));
- asymptotic: normal.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ._common import STATUS_FAILED, STATUS_OK, STATUS_WARNING, chol, chol_inv
from .mmrm_kernel import (
    CODE_LINE_SEARCH,
    CODE_MAX_ITER,
    CODE_NO_INFO,
    CODE_START,
    fit_un_c,
    pattern_stats,
    start_c,
)

_LOG2PI = math.log(2.0 * math.pi)
DF_METHODS = ("satterthwaite", "kenward-roger", "residual", "asymptotic")
#: S is reported as not positive definite when its smallest eigenvalue, relative to the
#: largest, is below this (the REML optimum is on the boundary of the parameter space).
SINGULAR_RTOL = 1e-8
#: Convergence: Newton decrement g'H^-1 g below this times max(1, |f|) (f is then within
#: ~1e-20 relative of its minimum and S within ~1e-10 relative of the optimum).
TOL_DECREMENT = 1e-20


@dataclass(frozen=True, slots=True)
class PatternData:
    """Sufficient statistics of (y, X) batched by missingness pattern (see module docstring)."""

    masks: np.ndarray  # (S, m) bool: visits observed in pattern s
    counts: np.ndarray  # (S,) patients per pattern
    M: np.ndarray  # (S, m, m, p+1, p+1) cross-products of [X, y] rows per pair of visits
    n_obs: int  # observations N
    n_patients: int
    p: int
    m: int
    oidx: np.ndarray  # (S, m) int: the visits observed in pattern s (ascending; k_s valid)
    ks: np.ndarray  # (S,) int: k_s, the number of visits observed in pattern s

    @property
    def by_size(self) -> tuple:
        """((patterns (P,), their visits (P, k)) for each pattern size k)."""
        return tuple(
            (np.flatnonzero(self.ks == k), self.oidx[self.ks == k, :k]) for k in np.unique(self.ks)
        )

    @property
    def pair(self) -> np.ndarray:
        """(S, m, m) 1.0 where both visits are observed in pattern s."""
        mf = self.masks.astype(float)
        return mf[:, :, None] * mf[:, None, :]

    @property
    def fill(self) -> np.ndarray:
        """(S, m, m) identity on the unobserved visits of pattern s."""
        return np.eye(self.m)[None] * (1.0 - self.masks.astype(float))[:, :, None]


def pattern_data(Y: np.ndarray, X: np.ndarray) -> PatternData:
    """Batch ``Y`` (n, m; NaN = not observed) and per-visit designs ``X`` (n, m, p) by pattern
    (patterns in ascending order of sum_a 2^a [visit a observed]; one compiled pass,
    :func:`.mmrm_kernel.pattern_stats`).

    Patients with no observed visit are dropped. X rows of unobserved visits are ignored.
    """
    Y = np.ascontiguousarray(Y, float)
    X = np.ascontiguousarray(X, float)
    masks, counts, oidx, ks, M, n_obs, n_patients = pattern_stats(Y, X)
    return PatternData(masks, counts, M, n_obs, n_patients, X.shape[2], Y.shape[1], oidx, ks)


def sym_basis(m: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """D (K, m, m): the symmetric indicator matrices of the elements s_ab, a <= b (row order)."""
    pairs = [(a, b) for a in range(m) for b in range(a, m)]
    D = np.zeros((len(pairs), m, m))
    for k, (a, b) in enumerate(pairs):
        D[k, a, b] = D[k, b, a] = 1.0
    return D, pairs


def vech(S: np.ndarray) -> np.ndarray:
    m = S.shape[0]
    return np.array([S[a, b] for a in range(m) for b in range(a, m)])


def unvech(s: np.ndarray, m: int) -> np.ndarray:
    S = np.zeros((m, m))
    k = 0
    for a in range(m):
        for b in range(a, m):
            S[a, b] = S[b, a] = s[k]
            k += 1
    return S


@dataclass
class _Eval:
    """The profile (RE)ML criterion and what its derivatives need, at one S."""

    f: float
    Winv: np.ndarray  # (S, m, m) embedded inverses of S[o, o]
    A: np.ndarray  # (p+1, p+1) [X, y]'V^-1[X, y]
    Phi: np.ndarray  # (p, p)
    beta: np.ndarray  # (p,)


def _evaluate(d: PatternData, Sig: np.ndarray, reml: bool) -> _Eval | None:
    """f(S) (None if S or X'V^-1X is not positive definite)."""
    m, p = d.m, d.p
    # every pattern at once: S[o, o] completed by the identity on the unobserved visits is
    # block diagonal, so its inverse minus that identity is S[o, o]^-1 embedded in m x m
    full = Sig * d.pair + d.fill
    try:
        c = np.linalg.cholesky(full)
    except np.linalg.LinAlgError:
        return None
    logdet = 2.0 * float(d.counts @ np.log(np.diagonal(c, axis1=1, axis2=2)).sum(axis=1))
    ci = np.linalg.inv(c)
    Winv = ci.transpose(0, 2, 1) @ ci - d.fill
    S = Winv.shape[0]
    A = (Winv.reshape(1, S * m * m) @ d.M.reshape(S * m * m, -1)).reshape(p + 1, p + 1)
    A = 0.5 * (A + A.T)
    c, info = chol(A[:p, :p])
    if info != 0:
        return None
    Phi = chol_inv(c)
    beta = Phi @ A[:p, p]
    q = float(A[p, p] - A[p, :p] @ beta)
    f = logdet + q
    if reml:
        f += 2.0 * float(np.log(np.diagonal(c)).sum())
    return _Eval(f, Winv, A, Phi, beta)


@dataclass
class _Derivs:
    grad: np.ndarray  # (K,) df/ds
    hess: np.ndarray  # (K, K) observed d2f/ds ds
    fisher: np.ndarray  # (K, K) expected
    Pk: np.ndarray  # (K, p, p) X'V^-1 D_k V^-1 X
    N: np.ndarray | None  # (S, m, m, p+1, p+1) W~ M_s W~ over the visit indices (for Q_kl)


@functools.lru_cache(maxsize=8)
def _pair_index(m: int):
    """Index arrays (a, b, a != b) of the elements s_ab, a <= b, in :func:`sym_basis` order."""
    ka, kb = np.triu_indices(m)
    return ka, kb, (ka != kb).astype(float)


@functools.lru_cache(maxsize=8)
def _pair_flat(m: int):
    """Flat indices into Z (m^4) and weights of the four terms of :func:`_pair_gather`, for
    every (k, l) in row-major order: T.ravel() = sum_t w_t Z.ravel()[i_t]."""
    ka, kb, off = _pair_index(m)
    a, b = ka[:, None], kb[:, None]
    c, d = ka[None, :], kb[None, :]
    ok, ol = off[:, None], off[None, :]
    K = ka.size

    def flat(y, z, w, x):
        return np.ravel_multi_index(np.broadcast_arrays(y, z, w, x), (m,) * 4).reshape(K * K)

    terms = (
        (flat(b, c, d, a), np.ones((K, K))),
        (flat(b, d, c, a), np.broadcast_to(ol, (K, K))),
        (flat(a, c, d, b), np.broadcast_to(ok, (K, K))),
        (flat(a, d, c, b), ok * ol),
    )
    return tuple((i, np.ascontiguousarray(w, dtype=float).reshape(K * K)) for i, w in terms)


def _outer_sum(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Z[y, z, w, x] = sum_s A_s[y, z] B_s[w, x] for (S, m, m) stacks (one matrix product)."""
    S, m, _ = A.shape
    return (A.reshape(S, m * m).T @ B.reshape(S, m * m)).reshape(m, m, m, m)


def _pair_gather(Z: np.ndarray, ka, kb, off) -> np.ndarray:
    """T_kl = tr(D_k A D_l B) from Z[y, z, w, x] = A[y, z] B[w, x] (trailing axes kept).

    tr(E_xy A E_zw B) = A[y, z] B[w, x]; D_k = E_ab (+ E_ba if a != b) and D_l = E_cd (+ E_dc).
    """
    m = Z.shape[0]
    K = ka.size
    Zf = Z.reshape((m**4,) + Z.shape[4:])
    (i1, _), (i2, w2), (i3, w3), (i4, w4) = _pair_flat(m)
    if Z.ndim > 4:
        w2, w3, w4 = (w.reshape((-1,) + (1,) * (Z.ndim - 4)) for w in (w2, w3, w4))
    T = Zf[i1] + w2 * Zf[i2] + w3 * Zf[i3] + w4 * Zf[i4]
    return T.reshape((K, K) + Z.shape[4:])


def _pattern_n(d: PatternData, W: np.ndarray) -> np.ndarray:
    """N_s[a, b] = sum_cd W_s[a, c] M_s[c, d] W_s[d, b] for every pattern (S, m, m, p+1, p+1)."""
    S, m = W.shape[0], d.m
    t = np.matmul(W, d.M.reshape(S, m, -1)).reshape(S, m, m, -1)
    N = np.matmul(t.transpose(0, 1, 3, 2), W[:, None]).transpose(0, 1, 3, 2)
    return N.reshape(d.M.shape)


def _derivatives(d: PatternData, ev: _Eval, reml: bool, need_n: bool = False) -> _Derivs:
    """Gradient, observed and expected Hessian of f, and P_k (``need_n``: also the per-pattern
    N_s that Kenward-Roger's Q_kl needs; otherwise only sums over patterns are formed)."""
    p, m = d.p, d.m
    p1 = p + 1
    S = d.masks.shape[0]
    ka, kb, off = _pair_index(m)
    K = ka.size
    n = d.counts.astype(float)
    W = ev.Winv
    u = np.append(-ev.beta, 1.0)
    Mf = d.M.reshape(S * m * m, p1 * p1)
    # N_s[a, b] = sum_cd W[a, c] M_s[c, d] W[d, b] = sum_i (W x~_i)_a (W x~_i)_b'; its sum over
    # s in one product: Nt[a, b] = sum_scd (W_s[a, c] W_s[d, b]) M_s[c, d]
    G = np.einsum("sac,sdb->abscd", W, W).reshape(m * m, S * m * m)
    Nt = (G @ Mf).reshape(m, m, p1, p1)
    NX = Nt[:, :, :p, :p]
    Nu = Nt[:, :, :p, :] @ u  # (m, m, p): sum_i (W X_i)_a' r_ib
    # per pattern only contractions of M: u'M_s[c, d]u and tr(Phi M_s[c, d]), then W . W
    Mu = ((Mf.reshape(-1, p1) @ u).reshape(S * m * m, p1) @ u).reshape(S, m, m)
    Phi1 = np.zeros((p1, p1))
    Phi1[:p, :p] = ev.Phi
    MP = (Mf @ Phi1.ravel()).reshape(S, m, m)
    RR = W @ Mu @ W  # (S, m, m): sum_i r_ia r_ib
    TT = W @ MP @ W  # tr(Phi N_s[a, b])
    N = _pattern_n(d, W) if need_n else None
    Pk = NX[ka, kb] + off[:, None, None] * NX[kb, ka]
    h = Nu[ka, kb] + off[:, None] * Nu[kb, ka]
    Wn = np.tensordot(n, W, axes=1)
    RRt = RR.sum(axis=0)
    grad = (1.0 + off) * (Wn[ka, kb] - RRt[ka, kb])
    if reml:
        grad -= Pk.reshape(K, -1) @ ev.Phi.ravel()
    trWDWD = _pair_gather(_outer_sum(W * n[:, None, None], W), ka, kb, off)
    rDPDr = _pair_gather(_outer_sum(W, RR), ka, kb, off) - h @ ev.Phi @ h.T
    if reml:
        PhiP = np.matmul(ev.Phi, Pk)  # Phi P_k
        trPhiPPhiP = PhiP.reshape(K, -1) @ PhiP.transpose(0, 2, 1).reshape(K, -1).T
        trPDPD = trWDWD - 2.0 * _pair_gather(_outer_sum(W, TT), ka, kb, off) + trPhiPPhiP
    else:
        trPDPD = trWDWD
    hess = -trPDPD + 2.0 * rDPDr
    hess = 0.5 * (hess + hess.T)
    fisher = 0.5 * (trPDPD + trPDPD.T)
    return _Derivs(grad, hess, fisher, Pk, N)


def _q_matrices(d: PatternData, ev: _Eval, N: np.ndarray) -> np.ndarray:
    """Q_kl = X'V^-1 D_k V^-1 D_l V^-1 X = sum_s W_s[y, z] N_s[x, w] gathered (K, K, p, p)."""
    p = d.p
    ka, kb, off = _pair_index(d.m)
    S, m = N.shape[0], d.m
    NX = np.ascontiguousarray(N[:, :, :, :p, :p]).reshape(S, -1)
    Zq = (ev.Winv.reshape(S, m * m).T @ NX).reshape(m, m, m, m, p, p).transpose(0, 1, 3, 2, 4, 5)
    return _pair_gather(Zq, ka, kb, off)


@dataclass(frozen=True, slots=True)
class UNFit:
    """An unstructured-covariance fit and everything its contrasts need."""

    beta: np.ndarray  # (p,) fixed effects
    cov_beta: np.ndarray  # (p, p) model-based Phi = (X'V^-1X)^-1
    sigma: np.ndarray  # (m, m) covariance S
    loglik: float  # (RE)ML log-likelihood (without REML's 1/2 log|X'X| term)
    reml: bool
    n_obs: int
    n_patients: int
    iterations: int
    converged: bool
    status: str
    message: str
    theta_cov: np.ndarray  # (K, K) Cov(s^) = 2 H^-1 (NaN if H is not positive definite)
    Pk: np.ndarray  # (K, p, p)
    cov_kr: np.ndarray | None  # (p, p) Kenward-Roger's Phi_A (kenward_roger=True), else None


def _start(d: PatternData) -> np.ndarray:
    """Start: pairwise residual covariance of the OLS fit (the diagonal if not PD), compiled
    (:func:`.mmrm_kernel.start_c`; :func:`fit_unstructured` starts there inside its kernel)."""
    return start_c(d.M, d.counts, d.masks)


def fit_unstructured(
    d: PatternData, reml: bool = True, kenward_roger: bool = False, max_iter: int = 200
) -> UNFit:
    """(RE)ML fit of the unstructured-covariance model by Newton's method (module docstring).

    The whole fit (the Newton loop with its line search, the derivatives, Cov(s^) and, with
    ``kenward_roger``, Phi_A) is one call of the compiled :func:`.mmrm_kernel.fit_un_c`; the
    numpy :func:`_evaluate` / :func:`_derivatives` state the same formulas.

    Status: ``failed`` if S leaves the positive-definite cone (non-convergence, or a boundary
    optimum with singular S) or X'V^-1X is singular; ``warning`` if the Hessian of f at the
    optimum is not positive definite (Satterthwaite/KR then use the expected information).
    """
    m, p = d.m, d.p
    K = m * (m + 1) // 2
    nan_fit = dict(
        beta=np.full(p, np.nan),
        cov_beta=np.full((p, p), np.nan),
        sigma=np.full((m, m), np.nan),
        loglik=float("nan"),
        reml=reml,
        n_obs=d.n_obs,
        n_patients=d.n_patients,
        converged=False,
        status=STATUS_FAILED,
        theta_cov=np.full((K, K), np.nan),
        Pk=np.full((K, p, p), np.nan),
        cov_kr=None,
    )
    (code, it, converged, dec, s, f, beta, Phi, _grad, _hess, _fisher, Pk, theta_cov, hess_pd,
     cov_kr) = fit_un_c(
        d.M, d.counts, d.masks, d.oidx, d.ks, bool(reml), bool(kenward_roger),
        int(max_iter), TOL_DECREMENT,
    )  # fmt: skip
    if code == CODE_START:
        return UNFit(**nan_fit, iterations=0, message="X'V^-1X is singular at the start")
    msg = ""
    if code == CODE_NO_INFO:
        msg = "neither the observed nor the expected information is positive definite"
    elif code == CODE_LINE_SEARCH:
        msg = f"line search failed (Newton decrement {dec:.3g})"
    elif code == CODE_MAX_ITER:
        msg = f"no convergence in {max_iter} Newton iterations"
    Sig = unvech(s, m)
    ev_w = np.linalg.eigvalsh(Sig)
    if not converged and ev_w[0] > 1e-6 * ev_w[-1]:
        return UNFit(**nan_fit, iterations=it, message=f"(RE)ML did not converge: {msg}")
    if not ev_w[0] > SINGULAR_RTOL * ev_w[-1] or not converged:
        return UNFit(
            **nan_fit,
            iterations=it,
            message=(
                f"covariance matrix not positive definite at the (RE)ML optimum "
                f"(eigenvalues {ev_w[0]:.3g} .. {ev_w[-1]:.3g}): boundary fit"
                + ("" if converged else f"; {msg}")
            ),
        )
    status, message = STATUS_OK, ""
    if not hess_pd:
        status = STATUS_WARNING
        message = (
            "Hessian of the (RE)ML criterion not positive definite at the optimum: "
            "df from the expected information"
        )
    const = (d.n_obs - p if reml else d.n_obs) * _LOG2PI
    return UNFit(
        beta=beta,
        cov_beta=Phi,
        sigma=Sig,
        loglik=-0.5 * (f + const),
        reml=reml,
        n_obs=d.n_obs,
        n_patients=d.n_patients,
        iterations=it,
        converged=True,
        status=status,
        message=message,
        theta_cov=theta_cov,
        Pk=Pk,
        cov_kr=cov_kr if kenward_roger else None,
    )


def kr_adjusted_cov(fit: UNFit) -> np.ndarray:
    """Kenward-Roger's Phi_A = Phi + 2 Phi [sum_kl W_kl (Q_kl - P_k Phi P_l)] Phi (computed in
    the fit: ``fit_unstructured(..., kenward_roger=True)``; :func:`_q_matrices` gives Q_kl)."""
    if fit.cov_kr is None:
        raise ValueError("fit_unstructured(..., kenward_roger=True) is needed")
    return fit.cov_kr


def kr_df(v: float, gWg: float) -> float:
    """Kenward-Roger df for one contrast (l = 1): A1 = A2 = g'W g / v^2 (Kenward & Roger 1997)."""
    nl = 1.0
    a1 = a2 = gWg / (v * v)
    b = (a1 + 6.0 * a2) / (2.0 * nl)
    e_star = 1.0 / (1.0 - a2 / nl)
    g = ((nl + 1.0) * a1 - (nl + 4.0) * a2) / ((nl + 2.0) * a2)
    den = 3.0 * nl + 2.0 - 2.0 * g
    c1, c2, c3 = g / den, (nl - g) / den, (nl + 2.0 - g) / den
    v_star = 2.0 / nl * (1.0 + c1 * b) / (1.0 - c2 * b) ** 2 / (1.0 - c3 * b)
    rho = v_star / (2.0 * e_star**2)
    return 4.0 + (nl + 2.0) / (nl * rho - 1.0)


def contrast(fit: UNFit, c: np.ndarray, df: str = "satterthwaite", cov_adj=None):
    """(estimate, se, df) of c'b; df None for ``asymptotic``. ``cov_adj``: KR's Phi_A."""
    if df not in DF_METHODS:
        raise ValueError(f"df must be one of {', '.join(DF_METHODS)}; got {df!r}")
    est = float(c @ fit.beta)
    Phi = fit.cov_beta
    v = float(c @ Phi @ c)
    if df == "asymptotic":
        return est, math.sqrt(v), None
    if df == "residual":
        return est, math.sqrt(v), float(fit.n_obs - fit.beta.size)
    pc = Phi @ c
    g = np.einsum("i,kij,j->k", pc, fit.Pk, pc)  # dv/ds_k
    gWg = float(g @ fit.theta_cov @ g)
    if df == "satterthwaite":
        return est, math.sqrt(v), 2.0 * v * v / gWg
    if cov_adj is None:
        cov_adj = kr_adjusted_cov(fit)
    return est, math.sqrt(float(c @ cov_adj @ c)), kr_df(v, gWg)
