"""Estimator ``mmrm``: mixed model for repeated measures of pain NRS, unstructured covariance.

Model (patient i, post-baseline visit j in weeks 1, 4, 8, 12; observed visits only):

    NRS_ij = a_j + d_j group_i + b_j nrs0_i (+ covariates_i' c) + e_ij,
    (e_i1, e_i4, e_i8, e_i12) ~ N(0, S), S 4 x 4 unstructured (10 parameters),

fitted by REML (ML as an option). A patient with missing visits contributes the visits
observed (their sub-vector of S). The fixed effects are the visit x group and baseline x visit
cells of ``NRS ~ week * group + week * nrs0`` (a cell-means parameterisation of the same column
space), so the fit is the one of R's
``nlme::gls(nrs ~ week * group + week * nrs0, correlation = corSymm(form = ~ visit | id),
weights = varIdent(form = ~ 1 | week), method = "REML")``, and d_w is what
``emmeans(fit, pairwise ~ group | week)`` reports (up to the sign: group 1 - group 0).
Checked on an exported cohort of 205: estimates and SEs agree with nlme to < 1e-6 relative
(nlme's own convergence); emmeans' gls Satterthwaite df differ from the exact ones by up to 3%
(they combine nlme's finite-difference apVar with a numDeriv Jacobian; the df here are the
delta method at the optimum, the same in three parameterisations of S).

Estimands: ``nrs_diff_w{1,4,8,12}`` (primary ``nrs_diff_w12``) = d_w, the difference in mean
week-w NRS between arms. Under randomization d_w is the marginal difference (conditioning on
nrs0 gains precision, not a different target in this linear model). Dropout and death: the
likelihood uses every observed visit and is valid if the missing visits are missing at random
given the observed NRS history, group and baseline; the estimand is then the hypothetical one
(had every patient lived and stayed in the study), which is what MAR implies for
death-truncated assessments. It is not a survivor or treatment-policy estimand, and it is
biased if dropout or death depends on unobserved pain.

Inference: SE from the model-based covariance (X'V^-1X)^-1 (Kenward-Roger: its adjusted
covariance), t CI and p-value with Satterthwaite (default), Kenward-Roger, residual (N - p) df,
or normal (``asymptotic``).

Engines: ``fast`` = :func:`palliasim.estimators.fast.mmrm.fit_unstructured` (Newton on the
pattern-batched profile likelihood, analytic derivatives; the whole fit one compiled call,
:func:`palliasim.estimators.fast.mmrm_kernel.fit_un_c`); ``reference`` =
:func:`un_reference` (an independent formulation: per-pattern dense algebra, standard
deviations and spherical-angle correlations, scipy BFGS, numerical derivatives for the df).
Statistical trouble (a visit without data in an arm, too few patients for an unstructured S,
non-convergence, S not positive definite at the optimum) -> rows with status failed/warning
and the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize

from palliasim.estimators.base import (
    FAILED,
    OK,
    WARNING,
    Estimate,
    Estimator,
    StatisticalTrouble,
    register,
    wald_row,
)
from palliasim.estimators.continuous import (
    ARM_LABELS,
    check_covariates,
    check_full_rank_fast,
    patient_covariates,
    patient_covariates_fast,
)
from palliasim.estimators.fast.mmrm import (
    DF_METHODS,
    SINGULAR_RTOL,
    contrast,
    fit_unstructured,
    kr_adjusted_cov,
    pattern_data,
)
from palliasim.estimators.longitudinal import nrs_wide
from palliasim.sim.errors import ConfigError
from palliasim.sim.schedule import POST_WEEKS, WEEKS

NRS_ESTIMANDS = tuple(f"nrs_diff_w{w}" for w in POST_WEEKS)


# --------------------------------------------------------------------------------------------
# options


def check_un_options(name: str, reml, df) -> tuple[bool, str]:
    """Validate ``reml`` and ``df`` (ConfigError naming the key and the allowed values)."""
    if not isinstance(reml, (bool, np.bool_)):
        raise ConfigError(f"estimators.{name}.reml must be true or false; got {reml!r}")
    if df not in DF_METHODS:
        raise ConfigError(
            f"estimators.{name}.df={df!r} is not allowed; allowed values: {', '.join(DF_METHODS)}"
        )
    if df == "kenward-roger" and not reml:
        raise ConfigError(
            f"estimators.{name}.df='kenward-roger' is defined for REML only: set "
            f"estimators.{name}.reml=true or choose df from satterthwaite, residual, asymptotic"
        )
    return bool(reml), str(df)


# --------------------------------------------------------------------------------------------
# data: per-visit designs


class VisitModel(NamedTuple):
    """Outcome (n, m) with NaN for unobserved visits and the per-visit designs (n, m, p)."""

    Y: np.ndarray
    X: np.ndarray
    names: list[str]
    weeks: tuple[int, ...]  # the visits in the model (columns of Y)
    contrasts: dict[int, np.ndarray]  # week -> c, c'b = group difference at that week
    per_visit: int  # patient-level columns per visit (for the unstructured-S size check)


def arm_gaps(Y: np.ndarray, group: np.ndarray, weeks) -> dict[int, str]:
    """{week: reason} for visits where an arm (or both) has no observed NRS."""
    why = {}
    o = np.isfinite(Y)
    seen = {a: (o & (group == a)[:, None]).any(axis=0) for a in (0, 1)}  # per visit, per arm
    for j, w in enumerate(weeks):
        empty = [a for a in (0, 1) if not seen[a][j]]
        if len(empty) == 2:
            why[w] = f"no observed NRS at week {w} in either arm"
        elif empty:
            why[w] = f"no observed NRS at week {w} in the {ARM_LABELS[empty[0]]} arm"
    return why


def usable_patients(cohort, covariates, fast: bool, need_nrs0: bool):
    """(wide NRS, covariates Z, names, usable rows, note on patients excluded)."""
    wide = nrs_wide(cohort)
    Z, znames = (patient_covariates_fast if fast else patient_covariates)(cohort, covariates)
    usable = np.isfinite(wide.group) & np.isfinite(Z).all(axis=1)
    note_parts = []
    k = int((np.isfinite(wide.group) & ~usable).sum())
    if k:
        note_parts.append(f"{k} patient(s) with missing covariates excluded")
    if need_nrs0:
        k = int((usable & ~np.isfinite(wide.nrs0)).sum())
        usable &= np.isfinite(wide.nrs0)
        if k:
            note_parts.append(f"{k} patient(s) with missing baseline NRS excluded")
    return wide, Z, znames, usable, "; ".join(note_parts)


def mmrm_design(wide, Z, znames, usable) -> tuple[VisitModel, dict[int, str]]:
    """MMRM design: cells visit_j, group:visit_j, nrs0:visit_j (+ Z), post-baseline visits."""
    g = wide.group[usable]
    Y = wide.nrs[usable][:, [WEEKS.index(w) for w in POST_WEEKS]]
    why = arm_gaps(Y, g, POST_WEEKS)
    weeks = tuple(w for w in POST_WEEKS if w not in why)
    Y = Y[:, [POST_WEEKS.index(w) for w in weeks]]
    b = wide.nrs0[usable]
    n, m = Y.shape
    q = Z.shape[1]
    X = np.zeros((n, m, 3 * m + q))
    names = (
        [f"week_{w}" for w in weeks]
        + [f"group:week_{w}" for w in weeks]
        + [f"nrs0:week_{w}" for w in weeks]
        + list(znames)
    )
    for j in range(m):
        X[:, j, j] = 1.0
        X[:, j, m + j] = g
        X[:, j, 2 * m + j] = b
        X[:, j, 3 * m :] = Z[usable]
    C = {w: np.eye(3 * m + q)[m + j] for j, w in enumerate(weeks)}
    return VisitModel(Y, X, names, weeks, C, 3 + q), why


# --------------------------------------------------------------------------------------------
# shared checks and rows


def check_un_data(model: VisitModel, what: str = "MMRM fixed-effects design") -> None:
    """Enough patients and visit pairs for an unstructured covariance; full-rank design."""
    obs = np.isfinite(model.Y)
    rows = obs.any(axis=1)
    n, m = int(rows.sum()), model.Y.shape[1]
    need = m + model.per_visit
    if n < need:
        raise StatisticalTrouble(
            f"too few patients ({n}) for an unstructured {m} x {m} covariance with "
            f"{model.per_visit} patient-level fixed effects per visit (need >= {need})"
        )
    both = obs.T.astype(int) @ obs.astype(int)
    for a in range(m):
        for b in range(a + 1, m):
            if both[a, b] == 0:
                raise StatisticalTrouble(
                    f"weeks {model.weeks[a]} and {model.weeks[b]} are never observed in the same "
                    "patient: their covariance is not identifiable"
                )
    Xl = model.X[obs]
    check_full_rank_fast(Xl, model.names, what)


def merge_rows(method, estimands, rows: list[Estimate], why: dict, note: str) -> list[Estimate]:
    """Rows in estimand order; visits dropped from the model fail with their reason."""
    by = {r.estimand: r for r in rows}
    out = []
    for e in estimands:
        w = int(e.rsplit("_w", 1)[1])
        r = by.get(e) or Estimate(method, e, status=FAILED, message=why.get(w, "not estimable"))
        if note and r.status != FAILED:
            r.message = "; ".join(filter(None, [r.message, note]))
        out.append(r)
    return out


def un_rows(est: Estimator, model: VisitModel, reml: bool, df: str, estimands) -> list[Estimate]:
    """Fit the unstructured model with the estimator's engine; one Wald row per visit contrast."""
    weeks = [w for w in model.weeks if f"nrs_diff_w{w}" in estimands]
    cs = [model.contrasts[w] for w in weeks]
    if est.engine == "fast":
        fit = fit_unstructured(
            pattern_data(model.Y, model.X), reml=reml, kenward_roger=df == "kenward-roger"
        )
        if fit.status == FAILED:
            raise StatisticalTrouble(fit.message)
        cov_adj = kr_adjusted_cov(fit) if df == "kenward-roger" else None
        res = [contrast(fit, c, df, cov_adj) for c in cs]
        n_used, status, msg = fit.n_patients, fit.status, fit.message
    else:
        r = un_reference(model.Y, model.X, reml, df, cs)
        res, n_used, status, msg = r.results, r.n_patients, r.status, r.message
    rows = []
    for w, (e, se, dfv) in zip(weeks, res):
        rows.append(
            wald_row(
                est.name,
                f"nrs_diff_w{w}",
                e,
                se,
                est.alpha,
                n_used,
                df=dfv,
                status=WARNING if status == WARNING else OK,
                message=msg,
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# reference engine: an independent formulation


class ReferenceResult(NamedTuple):
    results: list[tuple[float, float, float | None]]  # (estimate, se, df) per contrast
    beta: np.ndarray
    sigma: np.ndarray
    n_patients: int
    status: str
    message: str


def _corr_from_angles(x: np.ndarray, m: int) -> np.ndarray:
    """Correlation matrix R = B B' from spherical angles pi / (1 + exp(-x)) (PD by construction)."""
    ang = np.pi / (1.0 + np.exp(-x))
    B = np.zeros((m, m))
    B[0, 0] = 1.0
    k = 0
    for i in range(1, m):
        run = 1.0
        for j in range(i):
            B[i, j] = run * math.cos(ang[k])
            run *= math.sin(ang[k])
            k += 1
        B[i, i] = run
    return B @ B.T


def _angles_from_corr(R: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_corr_from_angles` (the unconstrained x)."""
    m = R.shape[0]
    B = np.linalg.cholesky(R)
    x = []
    for i in range(1, m):
        run = 1.0
        for j in range(i):
            cosv = np.clip(B[i, j] / run if run > 0 else 0.0, -1 + 1e-12, 1 - 1e-12)
            a = math.acos(cosv)
            run *= math.sin(a)
            x.append(-math.log(np.pi / a - 1.0))
    return np.array(x)


class _Patterns(NamedTuple):
    idx: list[np.ndarray]  # observed visit indices per pattern
    X: list[np.ndarray]  # (n_s, m_s, p)
    y: list[np.ndarray]  # (n_s, m_s)


def _patterns(Y: np.ndarray, X: np.ndarray) -> _Patterns:
    obs = np.isfinite(Y)
    keep = obs.any(axis=1)
    Y, X, obs = Y[keep], X[keep], obs[keep]
    keys, inv = np.unique(obs, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    idx, Xs, ys = [], [], []
    for s, key in enumerate(keys):
        j = np.flatnonzero(key)
        rows = inv == s
        idx.append(j)
        Xs.append(X[rows][:, j, :])
        ys.append(Y[rows][:, j])
    return _Patterns(idx, Xs, ys)


def _gls(pt: _Patterns, Sig: np.ndarray):
    """(f parts, beta, Phi, X'V^-1X): log|V|, r'V^-1r with GLS beta, log|X'V^-1X|."""
    p = pt.X[0].shape[2]
    A = np.zeros((p, p))
    bvec = np.zeros(p)
    logdet = 0.0
    inv = []
    for j, Xs, ys in zip(pt.idx, pt.X, pt.y):
        Ss = Sig[np.ix_(j, j)]
        sign, ld = np.linalg.slogdet(Ss)
        if sign <= 0:
            return None
        Wi = np.linalg.inv(Ss)
        inv.append(Wi)
        logdet += ys.shape[0] * ld
        WX = np.einsum("ab,nbp->nap", Wi, Xs)
        A += np.einsum("nap,naq->pq", Xs, WX)
        bvec += np.einsum("nap,na->p", WX, ys)
    Phi = np.linalg.inv(A)
    beta = Phi @ bvec
    quad = 0.0
    for Wi, Xs, ys in zip(inv, pt.X, pt.y):
        e = ys - Xs @ beta
        quad += float(np.einsum("na,ab,nb->", e, Wi, e))
    sign, ldA = np.linalg.slogdet(A)
    return logdet, quad, ldA, beta, Phi, inv


def _crit(pt, Sig, reml):
    r = _gls(pt, Sig)
    if r is None:
        return np.inf
    logdet, quad, ldA, *_ = r
    return logdet + quad + (ldA if reml else 0.0)


def _sig_from_x(x: np.ndarray, m: int) -> np.ndarray:
    sd = np.exp(x[:m])
    return _corr_from_angles(x[m:], m) * np.outer(sd, sd)


def _elements(m):
    return [(a, b) for a in range(m) for b in range(a, m)]


def _sig_from_elements(s, m):
    S = np.zeros((m, m))
    for k, (a, b) in enumerate(_elements(m)):
        S[a, b] = S[b, a] = s[k]
    return S


def un_reference(
    Y: np.ndarray, X: np.ndarray, reml: bool, df: str, contrasts: list[np.ndarray]
) -> ReferenceResult:
    """Reference fit of the unstructured model (independent of the fast kernel).

    Criterion f = sum_i log|S_i| + e'V^-1 e (+ log|X'V^-1X|, REML) computed per pattern with
    dense inverses; S = D R D with log standard deviations and spherical-angle correlations
    (positive definite by construction); scipy BFGS with 3-point numerical gradients
    (gtol 1e-9). df: Satterthwaite from central-difference derivatives of c'Phi c and of f in the
    elements of S (as lmerTest / emmeans compute them); Kenward-Roger from P_k, Q_kl summed
    per patient, W = 2 H^-1 (numerical H) and Kenward & Roger's (1997) E*, V* formulas.
    """
    pt = _patterns(Y, X)
    m = Y.shape[1]
    n_pat = int(sum(y.shape[0] for y in pt.y))
    # start: identity correlation, per-visit SD of OLS residuals
    obs = np.isfinite(Y)
    Xl, yl = X[obs], Y[obs]
    b0 = np.linalg.lstsq(Xl, yl, rcond=None)[0]
    res = np.where(obs, Y - np.einsum("nap,p->na", X, b0), np.nan)
    sd0 = np.sqrt(np.nanmean(res**2, axis=0))
    x0 = np.r_[np.log(sd0), np.zeros(m * (m - 1) // 2)]
    opt = minimize(
        lambda x: _crit(pt, _sig_from_x(x, m), reml),
        x0,
        method="BFGS",
        jac="3-point",
        options={"gtol": 1e-9, "maxiter": 2000},
    )
    Sig = _sig_from_x(opt.x, m)
    gnorm = float(np.max(np.abs(opt.jac))) if opt.jac is not None else np.inf
    status, msg = "ok", ""
    ev = np.linalg.eigvalsh(Sig)
    failed = not opt.success and gnorm > 1e-4
    if failed and ev[0] > 1e-6 * ev[-1]:
        raise StatisticalTrouble(f"(RE)ML did not converge (scipy BFGS: {opt.message})")
    if failed or not ev[0] > SINGULAR_RTOL * ev[-1]:
        raise StatisticalTrouble(
            f"covariance matrix not positive definite at the (RE)ML optimum "
            f"(eigenvalues {ev[0]:.3g} .. {ev[-1]:.3g}): boundary fit"
        )
    _, _, _, beta, Phi, inv = _gls(pt, Sig)
    s_hat = np.array([Sig[a, b] for a, b in _elements(m)])
    K = s_hat.size
    out = []
    if df in ("asymptotic", "residual"):
        dfv = None if df == "asymptotic" else float(obs.sum() - X.shape[2])
        for c in contrasts:
            out.append((float(c @ beta), math.sqrt(float(c @ Phi @ c)), dfv))
        return ReferenceResult(out, beta, Sig, n_pat, status, msg)
    # numerical Hessian of f and Jacobian of Phi in the elements of S (central differences)
    h = 1e-4 * np.sqrt(np.outer(np.diagonal(Sig), np.diagonal(Sig)))
    hk = np.array([h[a, b] for a, b in _elements(m)])

    def f_at(s):
        return _crit(pt, _sig_from_elements(s, m), reml)

    H = np.empty((K, K))
    E = np.eye(K)
    for k in range(K):
        for j in range(k, K):
            dk, dl = hk[k] * E[k], hk[j] * E[j]
            H[k, j] = H[j, k] = (
                f_at(s_hat + dk + dl)
                - f_at(s_hat + dk - dl)
                - f_at(s_hat - dk + dl)
                + f_at(s_hat - dk - dl)
            ) / (4 * hk[k] * hk[j])
    try:
        W = 2.0 * np.linalg.inv(H)
        if np.linalg.eigvalsh(H)[0] <= 0:
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError as exc:
        raise StatisticalTrouble(
            "numerical Hessian of the (RE)ML criterion is not positive definite"
        ) from exc
    dPhi = []
    for k in range(K):
        up = _gls(pt, _sig_from_elements(s_hat + hk[k] * E[k], m))[4]
        dn = _gls(pt, _sig_from_elements(s_hat - hk[k] * E[k], m))[4]
        dPhi.append((up - dn) / (2 * hk[k]))
    if df == "kenward-roger":
        Pk, Qkl = _pq_dense(pt, inv, m)
        inner = np.zeros_like(Phi)
        for k in range(K):
            for j in range(K):
                inner += W[k, j] * (Qkl[k][j] - Pk[k] @ Phi @ Pk[j])
        Phi_a = Phi + 2 * Phi @ inner @ Phi
    for c in contrasts:
        v = float(c @ Phi @ c)
        g = np.array([float(c @ dP @ c) for dP in dPhi])
        if df == "satterthwaite":
            out.append((float(c @ beta), math.sqrt(v), 2 * v * v / float(g @ W @ g)))
            continue
        L = c[None, :]
        Theta = L.T @ np.linalg.inv(L @ Phi @ L.T) @ L
        TP = [Theta @ Phi @ Pk[k] @ Phi for k in range(K)]
        a1 = sum(W[k, j] * np.trace(TP[k]) * np.trace(TP[j]) for k in range(K) for j in range(K))
        a2 = sum(W[k, j] * np.trace(TP[k] @ TP[j]) for k in range(K) for j in range(K))
        out.append((float(c @ beta), math.sqrt(float(c @ Phi_a @ c)), _kr_ddf(1, a1, a2)))
    return ReferenceResult(out, beta, Sig, n_pat, status, msg)


def _pq_dense(pt: _Patterns, inv, m):
    """P_k = sum_i X_i'W_i D_k W_i X_i, Q_kl = sum_i X_i'W_i D_k W_i D_l W_i X_i (per patient)."""
    els = _elements(m)
    K = len(els)
    p = pt.X[0].shape[2]
    Pk = [np.zeros((p, p)) for _ in range(K)]
    Qkl = [[np.zeros((p, p)) for _ in range(K)] for _ in range(K)]
    for j, Xs, Wi in zip(pt.idx, pt.X, inv):
        pos = {v: t for t, v in enumerate(j)}
        Dl = []
        for a, b in els:
            Dm = np.zeros((len(j), len(j)))
            if a in pos and b in pos:
                Dm[pos[a], pos[b]] = Dm[pos[b], pos[a]] = 1.0
            Dl.append(Dm)
        for i in range(Xs.shape[0]):
            WX = Wi @ Xs[i]
            for k in range(K):
                Pk[k] += WX.T @ Dl[k] @ WX
                for j in range(K):
                    Qkl[k][j] += WX.T @ Dl[k] @ Wi @ Dl[j] @ WX
    return Pk, Qkl


def _kr_ddf(nl: int, a1: float, a2: float) -> float:
    """Kenward & Roger (1997) denominator df from A1, A2 (l-dimensional contrast)."""
    b = (a1 + 6 * a2) / (2 * nl)
    g = ((nl + 1) * a1 - (nl + 4) * a2) / ((nl + 2) * a2)
    c1 = g / (3 * nl + 2 * (1 - g))
    c2 = (nl - g) / (3 * nl + 2 * (1 - g))
    c3 = (nl + 2 - g) / (3 * nl + 2 * (1 - g))
    e_star = 1 / (1 - a2 / nl)
    v_star = (2 / nl) * (1 + c1 * b) / ((1 - c2 * b) ** 2 * (1 - c3 * b))
    rho = v_star / (2 * e_star**2)
    return 4 + (nl + 2) / (nl * rho - 1)


# --------------------------------------------------------------------------------------------
# the estimator


@dataclass
class UnstructuredModel(Estimator):
    """The options shared by the unstructured-covariance models (mmrm, clda): baseline
    ``covariates``, ``reml`` (REML or ML) and ``df`` (satterthwaite | kenward-roger | residual |
    asymptotic), validated once."""

    draws_random = False  # fit never draws from rng: the runner passes rng=None

    covariates: list[str] = field(default_factory=list)
    reml: bool = True
    df: str = "satterthwaite"
    estimands = NRS_ESTIMANDS
    engines = ("reference", "fast")

    def __post_init__(self):
        super().__post_init__()
        self.covariates = check_covariates(self.name, self.covariates)
        self.reml, self.df = check_un_options(self.name, self.reml, self.df)


@register("mmrm")
@dataclass
class MMRM(UnstructuredModel):
    """MMRM of post-baseline NRS, unstructured covariance, REML (module docstring).

    -> ``nrs_diff_w1``, ``nrs_diff_w4``, ``nrs_diff_w8``, ``nrs_diff_w12`` (primary: week 12):
    d_w = group difference of week-w mean NRS adjusted for baseline NRS (and ``covariates``),
    hypothetical strategy for dropout and death under MAR. Patients missing baseline NRS or
    covariates are excluded (noted); a visit with no NRS in an arm is left out of the model
    and its row fails with the reason.
    """

    def _fit(self, cohort, rng) -> list[Estimate]:
        wide, Z, znames, usable, note = usable_patients(
            cohort, self.covariates, self.engine == "fast", need_nrs0=True
        )
        model, why = mmrm_design(wide, Z, znames, usable)
        if not model.weeks:
            return merge_rows(self.name, self.estimands, [], why, note)
        check_un_data(model)
        rows = un_rows(self, model, self.reml, self.df, self.estimands)
        return merge_rows(self.name, self.estimands, rows, why, note)
