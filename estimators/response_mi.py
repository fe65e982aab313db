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
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from palliasim.estimators import engines
from palliasim.estimators.base import Estimate, Estimator, StatisticalTrouble, register
from palliasim.estimators.fast import mi_pmm as fast_pmm
from palliasim.estimators.longitudinal import DEAD, nrs_wide
from palliasim.sim.pain import PARTIAL, consensus_category
from palliasim.sim.truth import ADJUSTMENT_SET


class Donors(NamedTuple):
    """The donors' design of an imputation model: rows with the same values in every
    imputation (``Xf`` (n_f, k), positions ``fi`` among the donors) and rows with imputed
    predictors (``Xv`` (m, n_v, k) or None, positions ``vi``)."""

    Xf: np.ndarray
    fi: np.ndarray
    Xv: np.ndarray | None
    vi: np.ndarray


def _bayes_pmm(y, D: Donors, Xr, rng, donors: int, m: int) -> np.ndarray:
    """Predictive-mean-matching draws (m, n_r) for the recipients ``Xr`` (m, n_r, k) of the m
    imputations from the donors (values ``y`` (n,), design ``D``), all imputations at once
    (module doc). Columns constant among the donors (e.g. strong_opioid among non-users) are
    left out. Random numbers: those of :func:`estimators.engines.bayes_draws` (chi2 (m),
    N(0, 1) (m, k)), then the donor choice, integers (m, n_r). The draws, predictions, donor
    search and picks run compiled (:func:`estimators.fast.mi_pmm.pmm_draws`, the same numbers
    drawn up front); the numpy code below runs only when that hands back (generator state
    restored: a factorisation for the QR path to decide)."""
    if D.Xf.shape[0]:
        const = np.zeros((1 if D.Xv is None else D.Xv.shape[0], D.Xf.shape[1]), bool)
        for j in np.flatnonzero(np.ptp(D.Xf, axis=0) == 0):  # and among the other donors?
            const[:, j] = True if D.Xv is None else (D.Xv[:, :, j] == D.Xf[0, j]).all(axis=1)
    else:
        const = np.ptp(D.Xv, axis=1) == 0
    const[:, 0] = False  # the intercept
    if (const != const[:1]).any():  # a column constant among the donors in some imputations
        return np.concatenate(
            [
                _bayes_pmm(y, D._replace(Xv=D.Xv[i : i + 1]), Xr[i : i + 1], rng, donors, 1)
                for i in range(m)
            ]
        )
    cols = np.flatnonzero(~const[0])
    Xf, Xv, Xr = D.Xf[:, cols], None if D.Xv is None else D.Xv[..., cols], Xr[..., cols]
    n, k = y.size, cols.size
    if n < k + 2:
        raise StatisticalTrouble(f"imputation model: {n} observed patients for {k} parameters")
    got = fast_pmm.pmm_draws(y, Xf, D.fi, Xv, D.vi, Xr, rng, donors, m)
    if got is not None:  # the compiled plan (same random numbers); else the numpy code below
        return got
    try:
        if Xv is None:
            draw = engines.bayes_draws(y, Xf, m, rng, engine="fast")
        else:
            common = engines.common_rows(Xf, y[D.fi])
            draw = engines.bayes_draws(y[D.vi], Xv, m, rng, engine="fast", common=common)
    except StatisticalTrouble:
        raise StatisticalTrouble("imputation model: singular design") from None
    if Xv is None:
        pd_ = draw.beta_hat @ Xf.T  # donors' predictions (type 1 matching), (1, n)
    else:
        pd_ = np.empty((m, n))
        pd_[:, D.fi] = draw.beta_hat @ Xf.T
        pd_[:, D.vi] = np.matmul(Xv, draw.beta_hat[:, :, None])[:, :, 0]
    pr = np.matmul(Xr, draw.beta[:, :, None])[:, :, 0]  # recipients' predictions (m, n_r)
    order, start = _nearest_runs(pd_, pr, min(donors, n))
    pick = start + rng.integers(0, min(donors, n), pr.shape)
    return y[np.take_along_axis(order, pick, axis=1)]


def _nearest_runs(pd_: np.ndarray, pr: np.ndarray, d: int):
    """Donor order and nearest runs for predictive mean matching, per imputation: ``pd_``
    (1 or m, n) donors' predictions, ``pr`` (m, n_r) recipients'. Returns (order (m, n): the
    donors sorted by prediction (stable), start (m, n_r)): the d donors whose predictions are
    nearest to recipient r's are order[start_r : start_r + d] (distance ties keep the lower
    sorted position, as a stable sort by distance would).

    With one set of donor predictions, one stable sort and np.searchsorted (side "left");
    otherwise one stable sort per imputation of [recipients, donors] gives both the donor order
    and each recipient's position among the sorted donors (the number predicted strictly below
    it: equal donors sort after it). The d nearest of sorted values are a run of d consecutive ones inside the 2d
    around that position, starting a steps right of its left end lo, where a counts the i with
    the left element s_i farther than s_(i+d) (a monotone predicate)."""
    m, nr = pr.shape
    n = pd_.shape[1]
    if pd_.shape[0] == 1:  # one set of donor predictions: one sort, one searchsorted
        order = np.argsort(pd_[0], kind="stable")
        sd = pd_[0][order]
        pos = np.searchsorted(sd, pr)
        order = np.broadcast_to(order, (m, n))

        def sorted_at(i):
            return sd[i]

    else:
        o = np.argsort(np.concatenate([pr, pd_], axis=1), axis=1, kind="stable")
        is_rec = o < nr
        order = o[~is_rec].reshape(m, n) - nr
        sdm = np.take_along_axis(pd_, order, axis=1)
        rank = np.empty_like(o)
        np.put_along_axis(rank, o, np.arange(n + nr), axis=1)
        below = np.cumsum(is_rec, axis=1)  # recipients up to and including each sorted slot
        pos = rank[:, :nr] - np.take_along_axis(below, rank[:, :nr], axis=1) + 1
        rows = np.arange(m)[:, None, None]

        def sorted_at(i):
            return sdm[rows, i]

    c = min(2 * d, n)
    lo = np.clip(pos - d, 0, n - c)
    i = lo[:, :, None] + np.arange(c - d)
    a = (2 * pr[:, :, None] - sorted_at(i) - sorted_at(i + d) > 0).sum(axis=2)
    return order, lo + a


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
        pa = cohort.arrays
        need = ["group", "response", "response_category", "nrs0", "omed0", "omed12", *covs]
        absent = [c for c in need if c not in pa]
        if absent:
            raise StatisticalTrouble(f"cohort has no column(s): {', '.join(absent)}")

        def numeric(c):
            a = cohort.numeric_column(c)
            if a is None:  # categorical or text: as pandas coerces it (NaN unless numeric)
                a = pd.to_numeric(cohort.patients[c], errors="coerce").to_numpy(dtype=float)
            return a

        wide = nrs_wide(cohort)
        W = wide.nrs[:, 1:]
        dead = wide.status[:, 1:] == DEAD
        X = np.column_stack([numeric(c) for c in covs]) if covs else np.empty((cohort.n, 0))
        g = numeric("group")
        keep = np.isfinite(X).all(axis=1) & np.isfinite(g)
        missing = cohort.label_mask("response_category", "missing")
        return {
            "g": g[keep],
            "y": numeric("response")[keep],
            "missing": missing[keep],
            "nrs0": numeric("nrs0")[keep],
            "omed0": numeric("omed0")[keep],
            "omed12": numeric("omed12")[keep],
            "W": W[keep],
            "dead": dead[keep],
            "X": X[keep],
            "dropped": int((~keep).sum()),
            "has_nrs0": "nrs0" in covs,
        }

    def _impute(self, d, rng) -> np.ndarray:
        """The m completed response vectors (m, n) (NaN where the data's response stays
        missing), the m imputations side by side."""
        m, n = self.m, d["g"].size
        base = np.column_stack(
            [np.ones(n), d["g"], d["X"]] + ([] if d["has_nrs0"] else [d["nrs0"]])
        )
        W0 = d["W"]
        W = np.repeat(W0[None], m, axis=0)
        dm = (self.donors, m)

        def donors(rows, extra) -> Donors:
            """[base, extra visits] of the donor ``rows``, split by whether an extra visit
            value there is imputed (differs between imputations) or not."""
            if not extra:
                return Donors(base[rows], np.arange(rows.size), None, rows[:0])
            vals = W0[np.ix_(rows, extra)]
            fin = np.isfinite(vals).all(axis=1)
            fi, vi = np.flatnonzero(fin), np.flatnonzero(~fin)
            Xf = np.column_stack([base[rows[fi]], vals[fi]])
            return Donors(Xf, fi, recipients(rows[vi], extra) if vi.size else None, vi)

        def recipients(rows, extra):
            """(m, len(rows), k): [base, extra visits of each imputation] of ``rows``."""
            b = np.broadcast_to(base[rows], (m, rows.size, base.shape[1]))
            return np.concatenate([b, W[:, rows][:, :, extra]], axis=2) if extra else b

        for j in range(W0.shape[1]):
            obs = np.isfinite(W0[:, j])
            rec = np.flatnonzero(~obs & ~d["dead"][:, j])
            if rec.size:
                prev = [] if j == 0 else [j - 1]
                rows = np.flatnonzero(obs)
                got = fast_pmm.pmm_plan(W0[obs, j], base, W, W0, rows, prev, rec, rng, *dm)
                if got is None:  # the numpy path (same random numbers)
                    got = _bayes_pmm(
                        W0[obs, j], donors(rows, prev), recipients(rec, prev), rng, *dm
                    )
                W[:, rec, j] = got
        target = d["missing"]
        y = np.repeat(d["y"][None], m, axis=0)
        if not target.any():
            return y
        assessed = np.isfinite(d["omed12"]) & np.isfinite(W0[:, 3])
        omed12 = np.repeat(d["omed12"][None], m, axis=0)
        for users in (True, False):
            s = (d["omed0"] > 0) == users
            rec, don = np.flatnonzero(target & s), np.flatnonzero(assessed & s)
            if not rec.size:
                continue
            if users:
                yd = np.log(d["omed12"][don] / d["omed0"][don])
            else:
                yd = d["omed12"][don]
            got = fast_pmm.pmm_plan(yd, base, W, W0, don, [2, 3], rec, rng, *dm)
            if got is None:  # the numpy path (same random numbers)
                got = _bayes_pmm(yd, donors(don, [2, 3]), recipients(rec, [2, 3]), rng, *dm)
            omed12[:, rec] = d["omed0"][rec] * np.exp(got) if users else got
        cat = consensus_category(
            d["nrs0"][target],
            W[:, target, 3],
            d["omed0"][target],
            np.round(omed12[:, target], 1),
            self.increase_threshold,
            self.partial_omed_decrease,
            self.progression_omed_increase,
        )
        y[:, target] = (cat <= PARTIAL).astype(float)
        return y

    def _fit(self, cohort, rng) -> list[Estimate]:
        if rng is None:
            raise ValueError("mi_response needs an rng (multiple imputation draws)")
        d = self._frame(cohort)
        n_imp = int(np.sum(d["missing"]))
        y = self._impute(d, rng)
        ok = np.isfinite(y)
        g1, g0 = ok & (d["g"] == 1), ok & (d["g"] == 0)
        cells = np.stack(
            [
                (g1 & (y == 1)).sum(1),
                (g1 & (y == 0)).sum(1),
                (g0 & (y == 1)).sum(1),
                (g0 & (y == 0)).sum(1),
            ]
        ).astype(float)  # (4, m): a, b, c, d of each imputation's 2 x 2 table
        zero = np.flatnonzero(cells.min(axis=0) == 0)
        if zero.size:
            raise StatisticalTrouble(
                f"imputation {zero[0] + 1}: a zero cell in the 2 x 2 table (log OR infinite)"
            )
        a_, b_, c_, d_ = cells
        n1, n0 = a_ + b_, c_ + d_
        p1, p0 = a_ / n1, c_ / n0
        q = np.column_stack([np.log(a_ * d_ / (b_ * c_)), p1 - p0])
        u = np.column_stack(
            [1 / a_ + 1 / b_ + 1 / c_ + 1 / d_, p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0]
        )
        n_used = int(ok[-1].sum())
        msg = f"M = {self.m} imputations of {n_imp} unassessed patients"
        if d["dropped"]:
            msg += f"; {d['dropped']} patients dropped for missing covariates"
        rows = []
        for k, est in enumerate(self.estimands):
            qbar, se, df = _rubin(q[:, k], u[:, k], n_used)
            rows.append(_row(self.name, est, qbar, se, df, self.alpha, n_used, msg))
        return rows
