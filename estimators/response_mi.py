"""Multiple imputation of the week-12 pain response (kind ``mi_response``): the principled
alternative to non-responder imputation for alive patients without a week-12 assessment.

Model (monotone sequential regressions, imputed M times with proper draws):
1. NRS at weeks 1, 4, 8, 12 in turn: for every patient alive at the visit whose NRS is missing
   (dropout or missed visit), NRS_j is imputed from the regression of NRS_j on
   (1, group, covariates, NRS0, NRS at the previous visit, observed or already imputed) fitted
   to the patients observed at week j;
2. week-12 OMED, patients with a missing week-12 assessment: users (OMED0 > 0) through
   log(OMED12 / OMED0), non-users through OMED12 itself, each regressed on (1, group,
   covariates, NRS0, NRS8, NRS12) among the assessed of the same stratum.
Each regression is imputed by predictive mean matching with a Bayesian draw (van Buuren 2018,
"type 1" matching): sigma*^2 = RSS / chi2_{n-k}, beta* ~ N(beta_hat, sigma*^2 (X'X)^-1); a
recipient's prediction X beta* is matched to the ``donors`` observed patients whose X beta_hat
is closest and one of them, at random, gives its observed value (so imputed NRS are integers
0-10 with the observed floor at 0, and OMED keeps its point mass at "unchanged"). All draws
come from the estimator's ``rng``.
3. The consensus category (Chow et al. 2012, :func:`palliasim.sim.pain.consensus_category`
   with this estimator's thresholds) of the imputed NRS12 and OMED12 gives the imputed response;
   assessed patients keep theirs, patients dead by week 12 keep the data's coding (0).
4. Each completed data set is analysed by the crude 2 x 2 table: log OR with Woolf's SE and the
   risk difference with the unpooled Wald SE; Rubin's rules combine them (T = W + (1 + 1/M) B)
   with the Barnard-Rubin degrees of freedom (complete-data df n - 2) for a t CI and p.

Target: the study's estimand (``response_logor``, ``response_rd``: marginal; death =
non-response, missing assessment hypothetical). Consistent when the week-12 assessment is
missing at random given the imputation model's variables (dropout MAR on the last observed NRS
and ECOG: include ``ecog`` in ``covariates``) and there is no confounding (the analysis is
crude, as the study's is); in ``study`` it is confounded by U like every crude analysis.
Patients with missing covariates are left out (counted in the message).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from palliasim.estimators.base import Estimate, Estimator, StatisticalTrouble, register
from palliasim.sim.pain import PARTIAL, consensus_category
from palliasim.sim.schedule import POST_WEEKS
from palliasim.sim.truth import ADJUSTMENT_SET


def _bayes_pmm(y, X, Xr, rng, donors: int) -> np.ndarray:
    """Predictive-mean-matching draws for recipients ``Xr`` from donors (y, X) (module doc).
    Columns constant among the donors (e.g. strong_opioid among non-users) are left out."""
    cols = [0] + [j for j in range(1, X.shape[1]) if np.ptp(X[:, j]) > 0]
    X, Xr = X[:, cols], Xr[:, cols]
    n, k = X.shape
    if n < k + 2:
        raise StatisticalTrouble(f"imputation model: {n} observed patients for {k} parameters")
    XtX = X.T @ X
    try:
        L = np.linalg.cholesky(np.linalg.inv(XtX))
    except np.linalg.LinAlgError:
        raise StatisticalTrouble("imputation model: singular design") from None
    beta = np.linalg.solve(XtX, X.T @ y)
    rss = float(np.sum((y - X @ beta) ** 2))
    sigma2 = rss / rng.chisquare(n - k)
    beta_star = beta + np.sqrt(sigma2) * (L @ rng.standard_normal(k))
    pd_ = X @ beta  # donors' predictions (type 1 matching)
    pr = Xr @ beta_star
    order = np.argsort(pd_, kind="stable")
    sd = pd_[order]
    d = min(donors, n)
    pos = np.searchsorted(sd, pr)
    lo = np.clip(pos - d, 0, n - 2 * d if n >= 2 * d else 0)
    cand = lo[:, None] + np.arange(min(2 * d, n))[None, :]
    dist = np.abs(sd[cand] - pr[:, None])
    nearest = np.take_along_axis(cand, np.argsort(dist, axis=1, kind="stable")[:, :d], axis=1)
    pick = nearest[np.arange(len(pr)), rng.integers(0, d, len(pr))]
    return y[order[pick]]


def _rubin(q: np.ndarray, u: np.ndarray, n: int):
    """Rubin's rules: (estimate, total SE, Barnard-Rubin df; inf when B = 0)."""
    m = q.size
    qbar, w, b = q.mean(), u.mean(), q.var(ddof=1)
    t = w + (1 + 1 / m) * b
    if b <= 0:
        return qbar, np.sqrt(t), np.inf
    gamma = (1 + 1 / m) * b / t
    nu_m = (m - 1) / gamma**2
    nu_com = max(n - 2, 1)
    nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - gamma)
    return qbar, np.sqrt(t), 1.0 / (1.0 / nu_m + 1.0 / nu_obs)


def _row(name, estimand, est, se, df, alpha, n, msg) -> Estimate:
    if np.isfinite(df):
        q = stdtrit(df, 1 - alpha / 2)
        p = 2 * stdtr(df, -abs(est / se))
    else:
        q, p = ndtri(1 - alpha / 2), 2 * ndtr(-abs(est / se))
    return Estimate(
        name,
        estimand,
        float(est),
        float(se),
        float(est - q * se),
        float(est + q * se),
        float(p),
        n,
        message=msg,
    )


@register("mi_response")
@dataclass
class MIResponse(Estimator):
    """Multiple imputation of week-12 NRS and OMED, consensus category, Rubin's rules on the
    crude log OR and RD (module docstring). Targets response_logor, response_rd (marginal)."""

    m: int = 20
    donors: int = 5
    covariates: list | None = None
    increase_threshold: float = 0.0
    partial_omed_decrease: float = 0.25
    progression_omed_increase: float = 0.25
    estimands = ("response_logor", "response_rd")

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.m, int) and self.m >= 2):
            raise ValueError(f"estimators.{self.name}.m must be an integer >= 2; got {self.m}")
        if not (isinstance(self.donors, int) and self.donors >= 1):
            raise ValueError(f"estimators.{self.name}.donors must be an integer >= 1")
        if not 0 < self.partial_omed_decrease < 1 or self.progression_omed_increase <= 0:
            raise ValueError(
                f"estimators.{self.name}: partial_omed_decrease must be in (0, 1) and "
                "progression_omed_increase > 0"
            )
        if not 0 <= self.increase_threshold < self.progression_omed_increase:
            raise ValueError(
                f"estimators.{self.name}.increase_threshold must be in "
                "[0, progression_omed_increase)"
            )

    def _frame(self, cohort):
        covs = list(ADJUSTMENT_SET if self.covariates is None else self.covariates)
        p = cohort.patients
        need = ["group", "response", "response_category", "nrs0", "omed0", "omed12", *covs]
        absent = [c for c in need if c not in p]
        if absent:
            raise StatisticalTrouble(f"cohort has no column(s): {', '.join(absent)}")
        v = cohort.visits
        nrs = v.pivot(index="id", columns="week", values="nrs").reindex(p["id"].to_numpy())
        status = (
            v.assign(status=v["status"].astype(str))
            .pivot(index="id", columns="week", values="status")
            .reindex(p["id"].to_numpy())
        )
        weeks = list(POST_WEEKS)
        W = nrs[weeks].to_numpy(dtype=float)
        dead = status[weeks].to_numpy() == "dead"
        X = p[covs].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(X).all(axis=1) & p["group"].notna().to_numpy()
        cat = p["response_category"].astype(str).to_numpy()
        return {
            "g": p["group"].to_numpy(dtype=float)[keep],
            "y": p["response"].to_numpy(dtype=float)[keep],
            "cat": cat[keep],
            "nrs0": p["nrs0"].to_numpy(dtype=float)[keep],
            "omed0": p["omed0"].to_numpy(dtype=float)[keep],
            "omed12": p["omed12"].to_numpy(dtype=float)[keep],
            "W": W[keep],
            "dead": dead[keep],
            "X": X[keep],
            "dropped": int((~keep).sum()),
            "has_nrs0": "nrs0" in covs,
        }

    def _impute_once(self, d, rng) -> np.ndarray:
        """One completed response vector (NaN where the data's response stays missing)."""
        n = d["g"].size
        base = np.column_stack(
            [np.ones(n), d["g"], d["X"]] + ([] if d["has_nrs0"] else [d["nrs0"]])
        )
        W = d["W"].copy()
        for j in range(W.shape[1]):
            obs = np.isfinite(W[:, j])
            rec = ~obs & ~d["dead"][:, j]
            if rec.any():
                Z = base if j == 0 else np.column_stack([base, W[:, j - 1]])
                W[rec, j] = _bayes_pmm(W[obs, j], Z[obs], Z[rec], rng, self.donors)
        target = d["cat"] == "missing"
        y = d["y"].copy()
        if not target.any():
            return y
        assessed = np.isfinite(d["omed12"]) & np.isfinite(d["W"][:, 3])
        Z = np.column_stack([base, W[:, 2], W[:, 3]])
        omed12 = d["omed12"].copy()
        for users in (True, False):
            s = (d["omed0"] > 0) == users
            rec, don = target & s, assessed & s
            if not rec.any():
                continue
            if users:
                ratio = np.log(d["omed12"][don] / d["omed0"][don])
                omed12[rec] = d["omed0"][rec] * np.exp(
                    _bayes_pmm(ratio, Z[don], Z[rec], rng, self.donors)
                )
            else:
                omed12[rec] = _bayes_pmm(d["omed12"][don], Z[don], Z[rec], rng, self.donors)
        cat = consensus_category(
            d["nrs0"][target],
            W[target, 3],
            d["omed0"][target],
            np.round(omed12[target], 1),
            self.increase_threshold,
            self.partial_omed_decrease,
            self.progression_omed_increase,
        )
        y[target] = (cat <= PARTIAL).astype(float)
        return y

    def _fit(self, cohort, rng) -> list[Estimate]:
        if rng is None:
            raise ValueError("mi_response needs an rng (multiple imputation draws)")
        d = self._frame(cohort)
        n_imp = int(np.sum(d["cat"] == "missing"))
        q = np.empty((self.m, 2))
        u = np.empty((self.m, 2))
        n_used = 0
        for i in range(self.m):
            y = self._impute_once(d, rng)
            ok = np.isfinite(y)
            yy, gg = y[ok], d["g"][ok]
            cells = [(yy[gg == a] == r).sum() for a in (1, 0) for r in (1, 0)]
            a_, b_, c_, d_ = (float(x) for x in cells)
            if min(cells) == 0:
                raise StatisticalTrouble(
                    f"imputation {i + 1}: a zero cell in the 2 x 2 table (log OR infinite)"
                )
            n1, n0 = a_ + b_, c_ + d_
            p1, p0 = a_ / n1, c_ / n0
            q[i] = (np.log(a_ * d_ / (b_ * c_)), p1 - p0)
            u[i] = (1 / a_ + 1 / b_ + 1 / c_ + 1 / d_, p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
            n_used = int(ok.sum())
        msg = f"M = {self.m} imputations of {n_imp} unassessed patients"
        if d["dropped"]:
            msg += f"; {d['dropped']} patients dropped for missing covariates"
        rows = []
        for k, est in enumerate(self.estimands):
            qbar, se, df = _rubin(q[:, k], u[:, k], n_used)
            rows.append(_row(self.name, est, qbar, se, df, self.alpha, n_used, msg))
        return rows
