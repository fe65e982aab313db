"""The formula inputs *of the scenario itself*, measured on one large simulated cohort with its
potential outcomes (:func:`design_inputs`): the control arm's survival curve, P(event) under the
scenario's accrual / follow-up / loss to follow-up, the true marginal effects (``sim.truth``),
SDs and baseline correlations of NRS and QoL, response risks, variance components; plus what the
analysis will actually see (observed event fractions, analysed n after death and dropout,
complete-case effects). :func:`method_projection`: each method fitted once on a very large
cohort, its own large-sample power (:func:`projected_power`)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats
from scipy.interpolate import PchipInterpolator

from palliasim import sim
from palliasim.estimators.base import FAILED, build_estimator
from palliasim.experiments.planning import formulas as AP
from palliasim.experiments.planning.endpoints import NRS_WEEKS
from palliasim.sim.generate import generate_with_potential
from palliasim.sim.missingness import DEAD, OBSERVED
from palliasim.sim.qol import DOMAINS


def _pooled_sd(x0, x1) -> float:
    return float(np.sqrt((np.var(x0, ddof=1) + np.var(x1, ddof=1)) / 2))


def _pooled_corr(pairs) -> float:
    return float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in pairs]))


def _ols_arm_effect(y, a, x):
    """OLS y ~ 1 + a + x: (coefficient of a, residual SD, within-arm corr(x, y) pooled)."""
    X = np.column_stack([np.ones_like(y), a, x])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    res = y - X @ beta
    s = float(np.sqrt(res @ res / (len(y) - 3)))
    rho = _pooled_corr([(x[a == g], y[a == g]) for g in (0, 1)])
    sd = _pooled_sd(y[a == 0], y[a == 1])
    return float(beta[1]), s, rho, sd


def _surv_fn(times: np.ndarray, horizon: float):
    """A smooth (monotone PCHIP) survival function through the empirical one of ``times``,
    knots at its percentiles within [0, horizon] (smooth, so ``scipy.integrate.quad`` in
    :func:`planning.formulas.prob_event_arm` converges)."""

    st = np.sort(np.asarray(times, dtype=float))
    knots = np.quantile(st, np.linspace(0.0, 0.995, 200))
    knots = np.unique(np.concatenate([[0.0], knots[(knots > 0) & (knots < horizon)], [horizon]]))
    s = 1.0 - np.searchsorted(st, knots, side="right") / st.size
    s[0] = 1.0
    interp = PchipInterpolator(knots, s, extrapolate=False)
    s_end = float(s[-1])

    def fn(t):
        if t >= horizon:
            return s_end
        return float(min(max(interp(max(t, 0.0)), 0.0), 1.0))

    return fn


def logrank_effective_hr(time, event, group) -> float:
    """exp((O - E) / V) of the log-rank test, arm 1 vs 0 (Peto's one-step log HR): the hazard
    ratio the log-rank test "sees", an event-weighted average when hazards are not proportional.
    Exact ties are broken by order (times are continuous in the simulation)."""
    t = np.asarray(time, dtype=float)
    d = np.asarray(event).astype(bool)
    g = np.asarray(group).astype(int)
    order = np.lexsort((~d, t))  # events before censorings at equal times
    d, g = d[order], g[order]
    n_tot = t.size
    at_risk = n_tot - np.arange(n_tot)
    at_risk1 = g.sum() - np.concatenate([[0], np.cumsum(g)[:-1]])
    frac = at_risk1 / at_risk
    o_minus_e = float(np.sum(g[d] - frac[d]))
    v = float(np.sum(frac[d] * (1 - frac[d])))
    return float(np.exp(o_minus_e / v)) if v > 0 else float("nan")


def design_inputs(scenario, truth=None, n_big: int = 100_000, seed: int = 1) -> dict:
    """Formula inputs of ``scenario`` measured on one simulated cohort of ``n_big`` patients.

    Uses the potential outcomes under both arms (hypothetical: no death, no dropout, no
    censoring where the estimand says so) and the observed cohort (what the analysis sees).
    Keys: ``allocation``, ``pfs``/``os`` (hr = exp(true marginal log HR), conditional hr,
    P(event) by the formula with the control arm's own survival curve, per arm, and as observed;
    cumulative hazard ratios at the control quartiles), ``nrs`` (per week: true difference, SD,
    fraction observed; week-12 baseline correlation, complete-case effect/SD/rho, deaths and
    dropout by week 12, variance components and ICC), ``response`` (true and observed risks,
    adjusted OR), ``qol`` (per domain like NRS week 12). Plain floats (JSON-ready).
    """

    tr = truth if truth is not None else sim.truth(scenario)
    p = scenario.params
    rng = sim.rng_for(seed, scenario.key, "truth", 7919)
    cohort, po = generate_with_potential(scenario, rng, int(n_big))
    pa = cohort.arrays
    A = np.asarray(pa["group"]).astype(int)
    n = A.size
    alloc = float(A.mean())
    cens = p["survival"]["censoring"]
    acc, fu, ltfu = (
        float(cens["accrual_months"]),
        float(cens["min_followup_months"]),
        float(cens["ltfu_rate"]),
    )
    out: dict[str, Any] = {"allocation": alloc, "n_big": n, "scenario": scenario.name}
    out["censoring"] = {"accrual": acc, "followup": fu, "dropout_rate": ltfu}
    for ep, tkey, evcol in (("pfs", "t_pfs", "pfs_event"), ("os", "t_death", "os_event")):
        t0, t1 = (np.asarray(x, float) for x in po[tkey])
        s0, s1 = _surv_fn(t0, acc + fu), _surv_fn(t1, acc + fu)
        hr = float(np.exp(tr[f"{ep}_loghr"]))
        spec = p["survival"]["os" if ep == "os" else "progression"]
        if ep == "os" or spec["log_hr"] == p["survival"]["os"]["log_hr"]:
            hr_cond = float(np.exp(spec["log_hr"]))
        else:
            hr_cond = float("nan")  # PFS = min(progression, death) with two different HRs
        with warnings.catch_warnings():  # quad's tolerance (1e-12) is stricter than needed
            warnings.simplefilter("ignore")
            if hr == 1.0:
                p0f = p1f = AP.prob_event_arm(s0, acc, fu, ltfu)
            else:
                p0f, p1f = AP.prob_event_arms(s0, hr, acc, fu, ltfu)
            p1_emp = AP.prob_event_arm(s1, acc, fu, ltfu)
        ev = np.asarray(pa[evcol], float)
        hr_lr = logrank_effective_hr(pa[f"{ep}_months"], ev, A)
        q = np.quantile(t0, [0.25, 0.5, 0.75])
        with np.errstate(divide="ignore", invalid="ignore"):
            chr_ = [float(np.log(np.mean(t1 > x)) / np.log(np.mean(t0 > x))) for x in q]
        out[ep] = {
            "hr": hr,
            "loghr": float(tr[f"{ep}_loghr"]),
            "hr_cond": hr_cond,
            "hr_logrank": hr_lr,
            "hr_adj": float(np.exp(tr[f"{ep}_loghr_adj"])) if f"{ep}_loghr_adj" in tr else None,
            "p0": float(p0f),
            "p1": float(p1f),
            "p_event": float((1 - alloc) * p0f + alloc * p1f),
            "p1_nonph": float(p1_emp),
            "p_event_nonph": float((1 - alloc) * p0f + alloc * p1_emp),
            "p0_obs": float(ev[A == 0].mean()),
            "p1_obs": float(ev[A == 1].mean()),
            "p_event_obs": float(ev.mean()),
            "quartiles_months": [float(x) for x in q],
            "cum_hr_at_quartiles": chr_,
            "median_0": float(np.median(t0)),
            "median_1": float(np.median(t1)),
            "n_big": n,
        }
    # ---- NRS
    va = cohort.visit_arrays
    st = np.asarray(va["status"]).reshape(n, 5)
    nrs0 = np.asarray(pa["nrs0"], float)
    y0, y1 = (np.asarray(x, float) for x in po["nrs"])
    weeks = {}
    for j, w in enumerate(NRS_WEEKS):
        weeks[f"w{w}"] = {
            "delta": float(tr[f"nrs_diff_w{w}"]),
            "sd": _pooled_sd(y0[:, j], y1[:, j]),
            "rho": _pooled_corr([(nrs0, y0[:, j]), (nrs0, y1[:, j])]),
            "observed": float(np.mean(st[:, j + 1] == OBSERVED)),
            "latent_delta": float(p["nrs"]["effect"][j]),
        }
    # the random-intercept model's single (compound-symmetry) variance: the visits' average
    cs_var = float(
        np.mean(
            [np.var(nrs0[A == a], ddof=1) for a in (0, 1)] + [w["sd"] ** 2 for w in weeks.values()]
        )
    )
    for w in weeks.values():
        w["cs_se_ratio"] = float(np.sqrt(cs_var) / w["sd"])
    rho12 = _pooled_corr([(nrs0, y0[:, 3]), (nrs0, y1[:, 3])])
    nrs12 = np.asarray(pa["nrs12"], float)
    cc = np.isfinite(nrs12)
    d_cc, s_cc, rho_cc, sd_cc = _ols_arm_effect(nrs12[cc], A[cc].astype(float), nrs0[cc])
    vc = p["nrs"]
    icc_vc = vc["sd_intercept"] ** 2 / (vc["sd_intercept"] ** 2 + vc["sd_residual"] ** 2)
    cm = np.corrcoef(y0.T)
    icc_emp = float(cm[np.triu_indices(4, 1)].mean())
    out["nrs"] = {
        "weeks": weeks,
        "rho": rho12,
        "cc_fraction": float(cc.mean()),
        "dead_w12": float(np.mean(st[:, 4] == DEAD)),
        "missing_alive_w12": float(np.mean((st[:, 4] != DEAD) & (st[:, 4] != OBSERVED))),
        "cc_delta": d_cc,
        "cc_sd": sd_cc,
        "cc_rho": rho_cc,
        "cc_residual_sd": s_cc,
        "zero_w12": float(np.mean(np.concatenate([y0[:, 3], y1[:, 3]]) == 0)),
        "sd_intercept": float(vc["sd_intercept"]),
        "sd_residual": float(vc["sd_residual"]),
        "sd_slope": float(vc.get("sd_slope", 0.0)),
        "icc_vc": float(icc_vc),
        "icc_empirical": icc_emp,
        "mean_delta": float(np.mean([weeks[f"w{w}"]["delta"] for w in NRS_WEEKS])),
        "mean_sd": float(np.mean([weeks[f"w{w}"]["sd"] for w in NRS_WEEKS])),
    }
    # ---- response
    resp = np.asarray(pa["response"], float)
    ok = np.isfinite(resp)
    out["response"] = {
        "p0": float(tr["response_risk_0"]),
        "p1": float(tr["response_risk_1"]),
        "logor": float(tr["response_logor"]),
        "logor_adj": float(tr["response_logor_adj"]) if "response_logor_adj" in tr else None,
        "p0_obs": float(resp[ok & (A == 0)].mean()),
        "p1_obs": float(resp[ok & (A == 1)].mean()),
        "analysed_fraction": float(ok.mean()),
        "dead_w12": float(np.mean(st[:, 4] == DEAD)),
        "missing_alive_w12": float(np.mean((st[:, 4] != DEAD) & (st[:, 4] != OBSERVED))),
        "missing_as": p["response"]["missing_as"],
        "dead_as": p["response"]["dead_as"],
    }
    # ---- QoL
    q0_all, q1_all = (np.asarray(x, float) for x in po["qol12"])
    qd = {}
    for i, d in enumerate(DOMAINS):
        if f"qol_{d}_diff" not in tr:
            continue
        base = np.asarray(pa[f"qol_{d}_w0"], float)
        y12 = np.asarray(pa[f"qol_{d}_w12"], float)
        c = np.isfinite(y12)
        dcc, _, rcc, scc = _ols_arm_effect(y12[c], A[c].astype(float), base[c])
        qd[d] = {
            "delta": float(tr[f"qol_{d}_diff"]),
            "sd": _pooled_sd(q0_all[i], q1_all[i]),
            "rho": _pooled_corr([(base, q0_all[i]), (base, q1_all[i])]),
            "cc_fraction": float(c.mean()),
            "cc_delta": dcc,
            "cc_sd": scc,
            "cc_rho": rcc,
        }
    out["qol"] = qd
    return out


def method_projection(scenario, specs, n_big: int = 200_000, seed: int = 1) -> dict:
    """Each method's own large-sample view: one fit on one cohort of ``n_big`` patients.

    Returns ``{(method, estimand): {"estimate", "se_sqrt_n", "n"}}`` where ``se_sqrt_n`` is the
    model SE times sqrt(n_big). The estimate approximates the method's probability limit (what
    it targets once dropout, death, censoring and the model are what they are), so
    ``projected_power(n) = Phi(|est| sqrt(n) / s - z) + Phi(-|est| sqrt(n) / s - z)`` is the
    method's own large-sample power: simulation minus projection isolates small-sample
    behaviour (and model SEs that are wrong in small samples).
    """

    cohort = sim.generate(scenario, sim.rng_for(seed, scenario.key, "truth", 7920), int(n_big))
    out = {}
    for name, spec in specs.items():
        opts = {k: v for k, v in spec.items() if k != "kind"}
        est = build_estimator(spec["kind"], name=name, **opts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = est.fit(cohort, sim.rng_for(seed, scenario.key, "estimator", 7920))
        for r in rows:
            if r.status != FAILED and np.isfinite(r.estimate) and np.isfinite(r.se) and r.se > 0:
                out[(name, r.estimand)] = {
                    "estimate": float(r.estimate),
                    "se_sqrt_n": float(r.se * math.sqrt(n_big)),
                    "n": int(n_big),
                }
    return out


def projected_power(n, projection: dict, level: float) -> np.ndarray:
    """Two-sided Wald power at ``level`` from a :func:`method_projection` entry."""
    n = np.atleast_1d(np.asarray(n, dtype=float))
    x = abs(projection["estimate"]) * np.sqrt(n) / projection["se_sqrt_n"]
    z = stats.norm.ppf(1 - level / 2)
    return stats.norm.cdf(x - z) + stats.norm.cdf(-x - z)
