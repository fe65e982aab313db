"""Trial planning by simulation: power curves, adaptive replication, required sample sizes, and
the closed-form formulas side by side (the engine of ``palliasim task=power``).

    from palliasim.experiments.engine.design import expand_design
    from palliasim.experiments.planning import power as P
    pts = expand_design("randomized", None, {"cohort.n": [100, 200, 300]})
    run = P.adaptive_power(pts, {"logrank": {"kind": "logrank"}}, alpha=0.05, out_dir="out/pw",
                           ci_halfwidth=0.02, reps_start=200, reps_step=200, reps_max=1000)
    tab = P.rejection_table(run.results, alpha=0.05)      # power, MCSE, Clopper-Pearson CI
    P.required_n(tab.n, tab.rejections, tab.reps, target=0.8)

Pieces (all plain functions, no Hydra):

* :func:`clopper_pearson`, :func:`rejection_table` - power at a grid point is the rejection rate
  at ``alpha`` of the method's *own* p-value; failed fits count as non-rejections (and are
  reported in ``n_failed``); Monte Carlo SE ``sqrt(p (1 - p) / reps)`` and the exact binomial
  (Clopper-Pearson) interval.
* :func:`adaptive_power` - replications are added to each (grid point, method) in steps until
  the widest CI half-width of its estimands is at most ``ci_halfwidth`` or ``reps_max`` is
  reached. Runs through :func:`experiments.runner.run_experiment` in one run directory, so each
  step computes only the new chunks (and an interrupted run resumes).
* :func:`required_n` - the smallest n reaching a target power from a monotone fit of rejection
  on n: isotonic regression (pool-adjacent-violators, weights = reps) of the smoothed rejection
  rates, linear interpolation between the two grid points that bracket the target on the
  scale where a two-sided normal-approximation power curve is straight (u = b sqrt(n), power =
  Phi(u - z) + Phi(-u - z)); outside the grid, b fitted by weighted least squares extrapolates,
  and the result is flagged. 95% CI by parametric bootstrap of the binomial counts.
* :func:`design_inputs` - the formula inputs *of the scenario itself*, measured on one large
  simulated cohort with its potential outcomes: the control arm's survival curve, P(event)
  under the scenario's accrual / follow-up / loss to follow-up, the true marginal effects
  (``sim.truth``), SDs and baseline correlations of NRS and QoL, response risks, variance
  components; plus what the analysis will actually see (observed event fractions, analysed n
  after death and dropout, complete-case effects).
* :func:`analytic_table` / :func:`formula_for` - the closed-form power of each method
  (:mod:`experiments.analytic_power`): Schoenfeld / Freedman / lifelines ``power_under_cph``
  for log-rank and Cox, ANCOVA (1 - rho^2) and the two-sample t for NRS and QoL, the t-test at
  the Bonferroni level for the mixed model's per-visit contrasts, the repeated-measures design
  effect for a mean-over-visits endpoint, two proportions and Hsieh for response.
* :func:`explain` - where simulation and formula disagree, which assumption explains it and by
  how much (each assumption's effect on the formula's power, averaged over the grid).
* :func:`plot_power_curves` - one panel per endpoint (simulated power with its CI band, formula
  lines, required n marked) and a panel of type I error.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from palliasim.experiments.planning import formulas as AP
from palliasim.sim.schedule import POST_WEEKS

__all__ = [
    "ENDPOINTS",
    "PowerRun",
    "adaptive_power",
    "analytic_table",
    "clopper_pearson",
    "design_inputs",
    "endpoint_of",
    "explain",
    "formula_for",
    "formula_n",
    "isotonic",
    "method_projection",
    "projected_power",
    "plot_power_curves",
    "rejection_table",
    "required_n",
]

ENDPOINTS = ("pfs", "os", "nrs", "response", "qol")
ENDPOINT_LABELS = {"pfs": "PFS", "os": "OS", "nrs": "NRS", "response": "Response", "qol": "QoL"}
#: estimands whose p-value tests "no treatment effect" (the ones with a power)
TESTED = re.compile(
    r"^(pfs_loghr|os_loghr|nrs_diff_w\d+|response_logor|response_rd|qol_[a-z]+_diff)$"
)
KIND_LABELS = {
    "logrank": "log-rank",
    "cox": "Cox",
    "ancova_cc": "ANCOVA",
    "lmm": "mixed model",
    "logistic": "logistic",
    "risk_difference": "risk difference",
    "ancova_w12": "ANCOVA",
}
NRS_WEEKS = POST_WEEKS


def endpoint_of(estimand: str) -> str | None:
    """``pfs_loghr`` -> ``pfs``; None for estimands without a test of no effect."""
    if not TESTED.match(str(estimand)):
        return None
    return str(estimand).split("_", 1)[0]


def estimand_tag(estimand: str) -> str:
    """The part that tells contrasts of one endpoint apart: ``nrs_diff_w12`` -> ``w12``."""
    e = str(estimand)
    if e.startswith("nrs_diff_"):
        return e[len("nrs_diff_") :]
    if e.startswith("qol_") and e.endswith("_diff"):
        return e[4:-5]
    return e.split("_", 1)[1] if "_" in e else e


# --------------------------------------------------------------------------------------------
# rejection rates
# --------------------------------------------------------------------------------------------
def clopper_pearson(k, n, alpha: float = 0.05):
    """Exact (Clopper-Pearson) two-sided 1 - alpha interval for a binomial proportion k / n.

    Vectorised; returns (low, high) as arrays (floats for scalar input); NaN where n == 0.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    lo = np.where(n > 0, lo, np.nan)
    hi = np.where(n > 0, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def rejection_table(
    results: pd.DataFrame, alpha: float, by: Sequence[str] = ("scenario_key", "method", "estimand")
) -> pd.DataFrame:
    """Rejection rate of each group of replication rows (one row per replication).

    A replication rejects when its status is not ``failed``, its p-value is finite and
    ``p < alpha``; failed fits and missing p-values count as non-rejections (``n_failed``).
    Columns: ``by``, reps, rejections, n_failed, power, power_mcse (``sqrt(p (1 - p) / reps)``),
    ci_low, ci_high (exact 95% Clopper-Pearson interval), ci_halfwidth.
    """
    by = list(by)
    p = pd.to_numeric(results["p_value"], errors="coerce").to_numpy(dtype=float)
    ok = (results["status"].to_numpy() != "failed") & np.isfinite(p)
    df = results[by].copy()
    df["_rej"] = (ok & (p < alpha)).astype(np.int64)
    df["_fail"] = (~ok).astype(np.int64)
    g = df.groupby(by, sort=False, dropna=False)
    out = g.agg(reps=("_rej", "size"), rejections=("_rej", "sum"), n_failed=("_fail", "sum"))
    out = out.reset_index()
    r = out["reps"].to_numpy(float)
    k = out["rejections"].to_numpy(float)
    pw = k / r
    out["power"] = pw
    out["power_mcse"] = np.sqrt(pw * (1 - pw) / r)
    lo, hi = clopper_pearson(k, r, 0.05)
    out["ci_low"] = lo
    out["ci_high"] = hi
    out["ci_halfwidth"] = (out["ci_high"] - out["ci_low"]) / 2
    return out


# --------------------------------------------------------------------------------------------
# adaptive replication
# --------------------------------------------------------------------------------------------
@dataclass
class PowerRun:
    """What :func:`adaptive_power` returns.

    ``results``: every replication row used (runner columns); ``reps``: (scenario_key, method)
    -> replications used; ``stopped``: (scenario_key, method) -> "target" (CI half-width reached)
    or "reps_max"; ``rounds``: one dict per step (reps, pairs run, seconds).
    """

    results: pd.DataFrame
    reps: dict = field(default_factory=dict)
    stopped: dict = field(default_factory=dict)
    rounds: list = field(default_factory=list)


def adaptive_power(
    points,
    specs: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float,
    out_dir,
    needed: Mapping[tuple[str, str], Sequence[str]] | None = None,
    ci_halfwidth: float = 0.01,
    reps_start: int = 200,
    reps_step: int = 200,
    reps_max: int = 2000,
    method_reps_max: Mapping[str, int] | None = None,
    seed: int = 1,
    n_jobs: int = 1,
    backend: str = "loky",
    chunk_size: int = 25,
    dask_address: str | None = None,
    quiet: bool = False,
    config: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> PowerRun:
    """Rejection rates with replications added until the CI is narrow enough.

    Every (design point, method) pair in ``needed`` (default: every method at every point, all
    its estimands) starts with ``reps_start`` replications; after each step, a pair whose widest
    Clopper-Pearson half-width over its estimands (``needed[pair]``) exceeds ``ci_halfwidth``
    gets ``reps_step`` more, up to ``reps_max`` (or ``method_reps_max[method]``). Pairs needing
    the same replications and methods run in one :func:`run_experiment` call (one parallel pool
    over their chunks); the run directory ``out_dir`` is shared, so a step computes only the new
    chunks and rerunning the same call resumes. Deterministic: the rows depend only on (seed,
    scenario, method, rep), never on the stopping path.
    """
    from palliasim.experiments.engine.runner import run_experiment

    points = list(points)
    by_key = {p.key: p for p in points}
    specs = {m: dict(s) for m, s in specs.items()}
    if needed is None:
        needed = {(p.key, m): () for p in points for m in specs}
    needed = {tuple(k): tuple(v) for k, v in needed.items()}
    for key, m in needed:
        if key not in by_key or m not in specs:
            raise ValueError(f"needed names an unknown point or method: {(key, m)}")
    for name, v in (("reps_start", reps_start), ("reps_step", reps_step), ("reps_max", reps_max)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    if not 0 < ci_halfwidth < 0.5:
        raise ValueError(f"ci_halfwidth must be in (0, 0.5); got {ci_halfwidth!r}")
    caps = {m: int((method_reps_max or {}).get(m) or reps_max) for m in specs}
    target = {pair: min(reps_start, caps[pair[1]]) for pair in needed}
    rows: dict[tuple[str, str], pd.DataFrame] = {}
    run = PowerRun(results=pd.DataFrame())
    active = set(needed)
    say = log or (lambda s: None)
    step = 0
    while active:
        step += 1
        t0 = _now()
        groups: dict[tuple[int, frozenset], list[str]] = {}
        per_point: dict[tuple[int, str], set] = {}
        for key, m in active:
            per_point.setdefault((target[(key, m)], key), set()).add(m)
        for (reps, key), ms in per_point.items():
            groups.setdefault((reps, frozenset(ms)), []).append(key)
        say(
            f"step {step}: {len(active)} (grid point, method) pair(s) -> "
            + ", ".join(
                f"{reps} reps x {len(keys)} point(s) x [{', '.join(sorted(ms))}]"
                for (reps, ms), keys in sorted(
                    groups.items(), key=lambda t: (t[0][0], sorted(t[0][1]))
                )
            )
        )
        for (reps, ms), keys in sorted(groups.items(), key=lambda t: (t[0][0], sorted(t[0][1]))):
            pts = [by_key[k] for k in sorted(keys, key=lambda k: points.index(by_key[k]))]
            res = run_experiment(
                pts,
                {m: specs[m] for m in sorted(ms)},
                reps,
                seed,
                out_dir,
                n_jobs=n_jobs,
                backend=backend,
                chunk_size=chunk_size,
                dask_address=dask_address,
                quiet=quiet,
                config=config,
            )
            for key in keys:
                sub = res[res["scenario_key"] == key]
                for m in ms:
                    rows[(key, m)] = sub[sub["method"] == m]
        # stopping rule
        finished = []
        for pair in sorted(active):
            key, m = pair
            df = rows[pair]
            ests = needed[pair] or tuple(sorted(df["estimand"].unique()))
            df = df[df["estimand"].isin(ests)]
            tab = rejection_table(df, alpha, by=("estimand",))
            hw = float(tab["ci_halfwidth"].max()) if len(tab) else 0.0
            reps_now = target[pair]
            run.reps[pair] = reps_now
            if hw <= ci_halfwidth:
                run.stopped[pair] = "target"
                finished.append(pair)
            elif reps_now >= caps[m]:
                run.stopped[pair] = "reps_max"
                finished.append(pair)
            else:
                target[pair] = min(reps_now + reps_step, caps[m])
        active -= set(finished)
        run.rounds.append(
            {"step": step, "pairs": len(finished) + len(active), "seconds": _now() - t0}
        )
    frames = []
    for (key, m), df in rows.items():
        ests = needed[(key, m)]
        frames.append(df[df["estimand"].isin(ests)] if ests else df)
    run.results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return run


def _now() -> float:
    import time

    return time.perf_counter()


# --------------------------------------------------------------------------------------------
# required sample size
# --------------------------------------------------------------------------------------------
def isotonic(y, w=None) -> np.ndarray:
    """Non-decreasing least-squares fit (pool-adjacent-violators) of ``y`` with weights ``w``."""
    y = np.asarray(y, dtype=float)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=float)
    vals: list[float] = []
    wts: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(y, w):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, s2 = vals.pop(), wts.pop(), sizes.pop()
            v1, w1, s1 = vals.pop(), wts.pop(), sizes.pop()
            ws = w1 + w2
            vals.append((v1 * w1 + v2 * w2) / ws)
            wts.append(ws)
            sizes.append(s1 + s2)
    return np.repeat(vals, sizes)


_U_GRID = np.linspace(0.0, 40.0, 40001)


def _u_of(p, alpha: float) -> np.ndarray:
    """The two-sided normal power scale: u >= 0 with Phi(u - z) + Phi(-u - z) = p,
    z = z_{1 - alpha/2} (u = 0 for p <= alpha). Every normal-approximation power curve is
    u = b sqrt(n); interpolation and extrapolation are linear on this scale."""
    return np.interp(np.asarray(p, dtype=float), _power_grid(float(alpha)), _U_GRID, left=0.0)


@functools.lru_cache(maxsize=16)
def _power_grid(alpha: float) -> np.ndarray:
    z = stats.norm.ppf(1 - alpha / 2)
    return stats.norm.cdf(_U_GRID - z) + stats.norm.cdf(-_U_GRID - z)


def _n_at(nv, k, r, target, alpha) -> tuple[float, str]:
    """n reaching ``target`` from counts (k of r rejections at sizes nv, sorted)."""
    p = (k + 0.5) / (r + 1.0)  # no 0 or 1: the power scale stays finite
    iso = isotonic(p, r)
    x = np.sqrt(nv)
    ut = float(_u_of(target, alpha))
    if len(nv) >= 2 and iso[0] < target <= iso[-1]:
        i = int(np.argmax(iso >= target))
        u0, u1 = _u_of([iso[i - 1], iso[i]], alpha)
        xs = x[i - 1] + (ut - u0) * (x[i] - x[i - 1]) / (u1 - u0)
        return float(xs**2), "interpolated"
    if iso[0] >= target:  # below the grid: the curve u = b sqrt(n) through the first point
        u0 = float(_u_of(iso[0], alpha))
        return float(nv[0] * (ut / u0) ** 2) if u0 > 0 else float(nv[0]), (
            "extrapolated below the grid"
        )
    # above the grid, but no rejection rate on the grid is significantly above the nominal
    # level (exact one-sided 97.5% bound): no detectable effect, nothing to extrapolate from
    kk, rr = np.asarray(k, dtype=float), np.asarray(r, dtype=float)
    lower = np.where(kk > 0, stats.beta.ppf(0.025, np.maximum(kk, 1), rr - kk + 1), 0.0)
    if not np.any(lower > alpha):
        return float("inf"), "not reached (no rejection rate on the grid above the nominal level)"
    # above the grid: weighted least squares of u on sqrt(n) through the origin (u = b sqrt n),
    # weights = inverse delta-method variances r (dp/du)^2 / (p (1 - p)); never below the grid
    z = stats.norm.ppf(1 - alpha / 2)
    u = _u_of(p, alpha)
    w = r * (stats.norm.pdf(u - z) - stats.norm.pdf(u + z)) ** 2 / (p * (1 - p))
    den = float(np.sum(w * x * x))
    b = float(np.sum(w * x * u)) / den if den > 0 else 0.0
    if not b > 0:
        return float("inf"), "not reached (no increase with n)"
    return float(max((ut / b) ** 2, nv[-1])), "extrapolated above the grid"


def required_n(
    n,
    rejections,
    reps,
    target: float,
    alpha: float = 0.05,
    conf: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Smallest n with power >= ``target`` from rejection counts on a grid of sample sizes.

    Monotone fit: isotonic regression (pool-adjacent-violators, weights = reps) of the smoothed
    rates ``(k + 1/2) / (reps + 1)``, then linear interpolation between the two grid points that
    bracket the target on the scale where every two-sided normal-approximation power curve is a
    straight line, ``u = b sqrt(n)`` with ``power = Phi(u - z) + Phi(-u - z)``,
    ``z = z_{1-alpha/2}`` (``alpha`` = the test's nominal level). Outside the grid, ``b`` is
    fitted by weighted least squares over all grid points and the curve extrapolated (below the
    grid: the curve through the smallest n); ``how`` says so. CI: parametric bootstrap (``n_boot`` binomial redraws at the smoothed rates, the
    same fit each time), percentile interval; an upper limit of ``inf`` means that more than
    (1 - conf) / 2 of the redraws never reach the target.

    Returns ``{"n": float, "ci_low", "ci_high", "how"}`` (n unrounded; ``math.ceil`` it).
    """
    order = np.argsort(np.asarray(n, dtype=float))
    nv = np.asarray(n, dtype=float)[order]
    k = np.asarray(rejections, dtype=float)[order]
    r = np.asarray(reps, dtype=float)[order]
    if not alpha < target < 1:
        raise ValueError(f"target must be in (alpha, 1) = ({alpha}, 1); got {target!r}")
    if len(nv) == 0 or np.any(r <= 0):
        return {
            "n": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "how": "no data",
        }
    est, how = _n_at(nv, k, r, target, alpha)
    rng = np.random.default_rng(seed)
    p = (k + 0.5) / (r + 1.0)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        kb = rng.binomial(r.astype(np.int64), p)
        boots[b] = _n_at(nv, kb, r, target, alpha)[0]
    boots = np.where(np.isnan(boots), np.inf, boots)
    lo, hi = np.quantile(boots, [(1 - conf) / 2, (1 + conf) / 2], method="inverted_cdf")
    return {"n": est, "ci_low": float(lo), "ci_high": float(hi), "how": how}


# --------------------------------------------------------------------------------------------
# formula inputs measured on the scenario
# --------------------------------------------------------------------------------------------
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
    :func:`experiments.analytic_power.prob_event_arm` converges)."""
    from scipy.interpolate import PchipInterpolator

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
    from palliasim import sim
    from palliasim.sim.generate import generate_with_potential
    from palliasim.sim.missingness import DEAD, OBSERVED
    from palliasim.sim.qol import DOMAINS

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
    from palliasim import sim
    from palliasim.estimators.base import build_estimator

    cohort = sim.generate(scenario, sim.rng_for(seed, scenario.key, "truth", 7920), int(n_big))
    out = {}
    for name, spec in specs.items():
        opts = {k: v for k, v in spec.items() if k != "kind"}
        est = build_estimator(spec["kind"], name=name, **opts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = est.fit(cohort, sim.rng_for(seed, scenario.key, "estimator", 7920))
        for r in rows:
            if r.status != "failed" and np.isfinite(r.estimate) and np.isfinite(r.se) and r.se > 0:
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


# --------------------------------------------------------------------------------------------
# formulas per method
# --------------------------------------------------------------------------------------------
@dataclass
class Formula:
    """A closed-form power curve ``fn(n, inputs) -> power`` and the inputs it is evaluated at.

    ``inputs`` are the planner's (true marginal effect, full n, the scenario's P(event) / SD /
    rho); ``adjusted`` the same with what the analysis actually sees; ``variants`` maps an
    assumption's name to (description, inputs) used by :func:`explain`.
    """

    label: str
    fn: Callable[[np.ndarray, dict], np.ndarray]
    inputs: dict
    alt_label: str = ""
    alt_fn: Callable[[np.ndarray, dict], np.ndarray] | None = None
    adjusted: dict | None = None
    variants: dict = field(default_factory=dict)
    nominal: float = 0.05

    def power(self, n, inputs: dict | None = None) -> np.ndarray:
        return _safe(self.fn, n, self.inputs if inputs is None else inputs)

    def alt_power(self, n) -> np.ndarray:
        if self.alt_fn is None:
            return np.full(np.shape(np.asarray(n, float)), np.nan)
        return _safe(self.alt_fn, n, self.inputs)


def _safe(fn, n, inputs) -> np.ndarray:
    """``fn(n, inputs)`` as a float array; NaN where the formula is undefined. scipy's noncentral
    t returns NaN for huge noncentrality: where a smaller n already has power > 0.9999 that NaN
    is replaced by 1."""
    n = np.atleast_1d(np.asarray(n, dtype=float))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pw = np.asarray(fn(n, inputs), dtype=float).reshape(n.shape)
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return np.full(n.shape, np.nan)
    bad = np.isnan(pw)
    if bad.any() and (~bad).any():
        for i in np.flatnonzero(bad):
            smaller = (~bad) & (n < n[i])
            if smaller.any() and pw[smaller][np.argmax(n[smaller])] > 0.9999:
                pw[i] = 1.0
    return pw


def _survival_formulas(kind, inp, alpha, alloc, ep) -> Formula:
    base = {"hr": inp["hr"], "p_event": inp["p_event"], "p0": inp["p0"], "p1": inp["p1"]}

    def schoenfeld(n, i):
        return AP.power_logrank_n(n, i["hr"], alpha, alloc, i["p_event"], "schoenfeld", True)

    def freedman(n, i):
        return AP.power_logrank_n(n, i["hr"], alpha, alloc, i["p_event"], "freedman", True)

    def lifelines(n, i):
        return np.array(
            [
                AP.lifelines_power_cph(alloc * x, (1 - alloc) * x, i["p1"], i["p0"], i["hr"], alpha)
                for x in np.atleast_1d(n)
            ]
        )

    pe = f"P(event) {inp['p_event']:.3f}"
    sch = f"Schoenfeld (HR {inp['hr']:.3f}, {pe})"
    fre = f"Freedman (HR {inp['hr']:.3f}, {pe})"
    lif = (
        f"lifelines power_under_cph (HR {inp['hr']:.3f}, P(event) {inp['p0']:.3f}/{inp['p1']:.3f})"
    )
    if kind == "cox":
        label, fn, alt_label, alt_fn = lif, lifelines, sch, schoenfeld
    else:
        label, fn, alt_label, alt_fn = sch, schoenfeld, fre, freedman
    observed = {**base, "p_event": inp["p_event_obs"], "p0": inp["p0_obs"], "p1": inp["p1_obs"]}
    hr_lr = inp.get("hr_logrank", inp["hr"])
    adjusted = {**observed, "hr": hr_lr} if np.isfinite(hr_lr) and hr_lr != 1 else observed
    variants = {
        "censoring": (
            f"censoring pattern: {inp['p_event_obs']:.3f} of the simulated patients have an "
            f"observed event vs {inp['p_event']:.3f} by the formula (uniform accrual, exponential "
            f"loss to follow-up from entry; the scenario's loss to follow-up starts after week 12 "
            f"and the arms' event curves are not S0^HR)",
            observed,
        ),
    }
    chr_ = inp["cum_hr_at_quartiles"]
    q = inp["quartiles_months"]
    nonph = (
        f"non-proportional hazards: cumulative HR {chr_[0]:.3f} / {chr_[1]:.3f} / {chr_[2]:.3f} "
        f"at {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} months (control quartiles) vs the single HR "
        f"{inp['hr']:.3f}"
        + (
            " (PFS = min(progression, death): two Weibull shapes and HRs, and the frailty U)"
            if ep == "pfs"
            else " (frailty U and covariates marginalised)"
        )
    )
    if np.isfinite(hr_lr) and hr_lr != 1:
        nonph += (
            f"; the log-rank test weights them by the events: its effective HR in the simulated "
            f"trial is {hr_lr:.3f} (Peto (O - E) / V on {inp.get('n_big', 0):,} patients)"
        )
        variants["nonph"] = (nonph, {**base, "hr": hr_lr})
    else:
        variants["nonph"] = (
            nonph,
            {**base, "p_event": inp["p_event_nonph"], "p1": inp["p1_nonph"]},
        )
    if np.isfinite(inp["hr_cond"]) and inp["hr_cond"] != 1.0:
        variants["noncollapsibility"] = (
            f"non-collapsibility of the HR: the formula uses the marginal HR {inp['hr']:.3f} "
            f"(sim.truth); the DGM's conditional HR {inp['hr_cond']:.3f} would be the wrong input",
            {**base, "hr": inp["hr_cond"]},
        )
    return Formula(label, fn, base, alt_label, alt_fn, adjusted, variants, nominal=alpha)


def _ancova_formulas(inp, alpha, alloc, what: str, cc_note: str) -> Formula:
    base = {"n_frac": 1.0, "delta": inp["delta"], "sd": inp["sd"], "rho": inp["rho"]}

    def ancova(n, i):
        return AP.ancova_power(n * i["n_frac"], i["delta"], i["sd"], i["rho"], alpha, alloc)

    def ttest(n, i):
        return AP.ttest_power(n * i["n_frac"], i["delta"], i["sd"], alpha, alloc)

    label = f"ANCOVA 1-rho^2 (diff {inp['delta']:.3g}, SD {inp['sd']:.3g}, rho {inp['rho']:.2f})"
    alt = f"two-sample t (diff {inp['delta']:.3g}, SD {inp['sd']:.3g})"
    f = inp["cc_fraction"]
    adjusted = {
        "n_frac": f,
        "delta": inp["cc_delta"],
        "sd": inp["cc_sd"],
        "rho": inp["cc_rho"],
    }
    variants = {
        "missing": (
            f"missing data and death before week 12: {what} is analysed in {f:.0%} of the "
            f"randomized patients{cc_note}",
            {**base, "n_frac": f},
        ),
        "completers": (
            f"complete cases differ: effect {inp['cc_delta']:.3g} (SD {inp['cc_sd']:.3g}, rho "
            f"{inp['cc_rho']:.2f}) among completers vs the hypothetical {inp['delta']:.3g}",
            {**adjusted, "n_frac": 1.0},
        ),
    }
    return Formula(label, ancova, base, alt, ttest, adjusted, variants, nominal=alpha)


def _true_effect(estimand: str, inputs: dict) -> float | None:
    ep = endpoint_of(estimand)
    if ep in ("pfs", "os"):
        return inputs[ep]["loghr"]
    if ep == "nrs":
        wk = inputs["nrs"]["weeks"].get(estimand_tag(estimand))
        return None if wk is None else wk["delta"]
    if ep == "response":
        return inputs["response"]["p1"] - inputs["response"]["p0"]
    if ep == "qol":
        q = inputs["qol"].get(estimand_tag(estimand))
        return None if q is None else q["delta"]
    return None


def formula_for(
    kind: str, estimand: str, inputs: dict, alpha: float, options=None
) -> Formula | None:
    """The closed-form power curve matching method ``kind`` on ``estimand`` (None if none).

    Without a true effect (a null scenario) every formula gives the test's nominal level."""
    options = dict(options or {})
    if _true_effect(estimand, inputs) == 0:
        level = alpha / 4 if kind == "lmm" and options.get("bonferroni", True) else alpha
        return Formula(
            f"no effect: nominal level {level:g}",
            lambda n, i: np.full(np.shape(n), i["level"]),
            {"level": level},
            nominal=level,
        )
    alloc = inputs["allocation"]
    ep = endpoint_of(estimand)
    if ep in ("pfs", "os"):
        return _survival_formulas(kind, inputs[ep], alpha, alloc, ep)
    if ep == "nrs":
        nrs = inputs["nrs"]
        tag = estimand_tag(estimand)
        wk = nrs["weeks"].get(tag)
        if wk is None:
            return None
        note = (
            f" ({nrs['dead_w12']:.0%} died before week 12, {nrs['missing_alive_w12']:.0%} alive "
            f"without a week-12 NRS)"
        )
        latent = (
            f"integer NRS: the latent effect {wk['latent_delta']:.3g} is {wk['delta']:.3g} on the "
            f"observed 0-10 scale ({nrs['zero_w12']:.0%} at 0 at week 12, clipped); the formula "
            f"takes the observed-scale difference and SD, so only the normal approximation of a "
            f"discrete bounded outcome remains"
        )
        if kind == "lmm":
            bonf = bool(options.get("bonferroni", True))
            a_eff = alpha / 4 if bonf else alpha
            base = {"n_frac": 1.0, "delta": wk["delta"], "sd": wk["sd"], "alpha": a_eff}

            def tt(n, i):
                r = i.get("se_ratio", 1.0)
                if r == 1.0:
                    return AP.ttest_power(n * i["n_frac"], i["delta"], i["sd"], i["alpha"], alloc)
                # Wald test whose model SE is r x the true SE (misspecified covariance)
                se = i["sd"] / np.sqrt(n * i["n_frac"] * alloc * (1 - alloc))
                zc = stats.norm.ppf(1 - i["alpha"] / 2) * r
                x = abs(i["delta"]) / se
                return stats.norm.cdf(x - zc) + stats.norm.cdf(-x - zc)

            lvl = "alpha/4 (Bonferroni)" if bonf else "alpha"
            label = f"two-sample t at {lvl} (diff {wk['delta']:.3g}, SD {wk['sd']:.3g})"
            alt_label = f"two-sample t at alpha (diff {wk['delta']:.3g}, SD {wk['sd']:.3g})"
            ratio = wk.get("cs_se_ratio", 1.0)
            r2 = min(max(nrs.get("icc_empirical", 0.0), 0.0), 1.0) ** 2
            f_eff = wk["observed"] + (1 - wk["observed"]) * r2
            adjusted = {**base, "se_ratio": ratio, "n_frac": f_eff}
            variants = {
                "cs_variance": (
                    f"compound symmetry: the random-intercept model pools the visits' variances "
                    f"(SD {wk['sd'] * ratio:.3g}) where the week-{tag[1:]} NRS has SD "
                    f"{wk['sd']:.3g}: its model SE is {ratio:.2f} x the true one"
                    + (" (anti-conservative)" if ratio < 1 else " (conservative)"),
                    adjusted,
                ),
                "missing": (
                    f"missing data and death: {wk['observed']:.0%} of patients have an NRS at "
                    f"week {tag[1:]}; under MAR the mixed model recovers about rho^2 = {r2:.2f} "
                    f"of the others' information from their earlier visits (effective n "
                    f"{f_eff:.0%} of randomized, vs {wk['observed']:.0%} for complete cases; an "
                    f"approximation)",
                    {**base, "n_frac": f_eff},
                ),
                "integer": (latent, base),
            }
            return Formula(
                label,
                tt,
                base,
                alt_label,
                lambda n, i: tt(n, {**i, "alpha": alpha}),
                adjusted,
                variants,
                nominal=a_eff,
            )
        if tag != "w12":
            return None
        ainp = {
            "delta": wk["delta"],
            "sd": wk["sd"],
            "rho": nrs["rho"],
            "cc_fraction": nrs["cc_fraction"],
            "cc_delta": nrs["cc_delta"],
            "cc_sd": nrs["cc_sd"],
            "cc_rho": nrs["cc_rho"],
        }
        fm = _ancova_formulas(ainp, alpha, alloc, "week-12 NRS", note)
        fm.variants["integer"] = (latent, fm.inputs)
        return fm
    if ep == "response":
        r = inputs["response"]
        base = {"n_frac": 1.0, "p0": r["p0"], "p1": r["p1"]}
        adjusted = {"n_frac": r["analysed_fraction"], "p0": r["p0_obs"], "p1": r["p1_obs"]}
        miss = (
            f"missing data: {r['missing_alive_w12']:.0%} alive without a week-12 assessment, "
            f"counted as {r['missing_as']}"
            + (" (dilutes the risks)" if r["missing_as"] == "nonresponse" else "")
            + f"; observed risks {r['p0_obs']:.3f} / {r['p1_obs']:.3f} vs the estimand's "
            f"{r['p0']:.3f} / {r['p1']:.3f} (death before week 12, {r['dead_w12']:.0%}, is "
            f"non-response in both)"
        )
        variants = {"missing": (miss, adjusted)}
        if estimand == "response_logor":

            def hsieh(n, i):
                pb = (1 - alloc) * i["p0"] + alloc * i["p1"]
                orr = i.get("or") or (i["p1"] * (1 - i["p0"]) / (i["p0"] * (1 - i["p1"])))
                return AP.hsieh_logistic_power(n * i["n_frac"], pb, orr, alpha, alloc)

            def twop(n, i):
                return AP.two_proportions_power(
                    n * i["n_frac"], i["p0"], i["p1"], alpha, alloc, both_tails=True
                )

            orr = math.exp(r["logor"])
            label = f"Hsieh logistic (OR {orr:.3f}, P {r['p0']:.3f} / {r['p1']:.3f})"
            if r.get("logor_adj") is not None:
                variants["noncollapsibility"] = (
                    f"non-collapsibility of the OR: the crude logistic targets the marginal OR "
                    f"{orr:.3f}; the covariate-adjusted (conditional) OR is "
                    f"{math.exp(r['logor_adj']):.3f}",
                    {**base, "or": math.exp(r["logor_adj"])},
                )
            return Formula(
                label,
                hsieh,
                base,
                f"two proportions (P {r['p0']:.3f} / {r['p1']:.3f})",
                twop,
                adjusted,
                variants,
                nominal=alpha,
            )

        def twop2(n, i):
            return AP.two_proportions_power(
                n * i["n_frac"], i["p0"], i["p1"], alpha, alloc, both_tails=True
            )

        label = f"two proportions (P {r['p0']:.3f} / {r['p1']:.3f})"
        return Formula(label, twop2, base, "", None, adjusted, variants, nominal=alpha)
    if ep == "qol":
        d = estimand_tag(estimand)
        qi = inputs["qol"].get(d)
        if qi is None:
            return None
        note = (
            f" ({inputs['nrs']['dead_w12']:.0%} died before week 12, "
            f"{inputs['nrs']['missing_alive_w12']:.0%} alive without a week-12 visit)"
        )
        return _ancova_formulas(qi, alpha, alloc, f"week-12 QoL ({d})", note)
    return None


def rm_formula(inputs: dict, alpha: float) -> Formula:
    """Repeated-measures design effect: mean of the 4 post-baseline NRS visits (formula only)."""
    nrs = inputs["nrs"]
    alloc = inputs["allocation"]
    base = {"delta": nrs["mean_delta"], "sd": nrs["mean_sd"], "icc": nrs["icc_vc"]}

    def fn(n, i):
        return AP.repeated_measures_power(n, i["delta"], i["sd"], 4, i["icc"], alpha, alloc)

    de = AP.repeated_measures_design_effect(4, nrs["icc_vc"])
    label = (
        f"repeated measures, mean of 4 visits (diff {nrs['mean_delta']:.3g}, SD "
        f"{nrs['mean_sd']:.3g}, icc {nrs['icc_vc']:.2f} from sd_intercept / sd_residual, "
        f"design effect {de:.2f})"
    )
    variants = {
        "icc": (
            f"the visits' correlation is {nrs['icc_empirical']:.2f} in the scenario (baseline "
            f"covariates and U add between-patient variance), not the variance components' "
            f"{nrs['icc_vc']:.2f}",
            {**base, "icc": min(max(nrs["icc_empirical"], 0.0), 1.0)},
        )
    }
    return Formula(label, fn, base, "", None, None, variants, nominal=alpha)


def formula_n(formula: Formula, target: float, inputs: dict | None = None) -> float:
    """Smallest continuous n with formula power >= target (inf if none below 1e8, NaN if the
    formula is undefined). Doubling search from n = 10, then ``brentq`` on log n."""

    def f(logn):
        return float(formula.power([math.exp(logn)], inputs)[0]) - target

    lo = math.log(10.0)
    flo = f(lo)
    if not np.isfinite(flo):
        return float("nan")
    if flo >= 0:
        return 10.0
    hi = lo
    while True:
        hi, prev = hi + math.log(2.0), hi
        if hi > math.log(1e8):
            return float("inf")
        fhi = f(hi)
        if not np.isfinite(fhi):
            return float("nan")
        if fhi >= 0:
            break
    return float(math.exp(optimize.brentq(f, prev, hi, xtol=1e-10)))


def analytic_table(
    method_info: Mapping[str, Mapping[str, Any]], inputs: dict, alpha: float
) -> dict[tuple[str, str], Formula]:
    """{(method, estimand): Formula} for every tested estimand of every method.

    ``method_info``: name -> {"kind", "options", "estimands"}.
    """
    out = {}
    for m, info in method_info.items():
        for e in info["estimands"]:
            f = formula_for(info["kind"], e, inputs, alpha, info.get("options"))
            if f is not None:
                out[(m, e)] = f
    return out


# --------------------------------------------------------------------------------------------
# explanation of the gaps
# --------------------------------------------------------------------------------------------
def explain(
    table: pd.DataFrame,
    formula: Formula,
    projection: dict | None = None,
    true_value: float | None = None,
) -> tuple[str, dict]:
    """Why simulation and formula differ, for one (scenario, endpoint, method) curve.

    ``table``: its rows (n, power, power_mcse, reps, analytic_power, analytic_adj_power).
    Returns the text and the numbers (mean gap, largest gap, its n and MCSE units, each
    assumption's effect on the formula's power averaged over the grid).
    """
    with warnings.catch_warnings():  # all-NaN curves (undefined formulas) give NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        return _explain(table, formula, projection, true_value)


def _explain(table, formula, projection, true_value):
    t = table.sort_values("n")
    n = t["n"].to_numpy(float)
    gap = (t["power"] - t["analytic_power"]).to_numpy(float)
    se = np.maximum(t["power_mcse"].to_numpy(float), 1.0 / t["reps"].to_numpy(float))
    z = gap / se
    i = int(np.nanargmax(np.abs(z))) if np.isfinite(z).any() else 0
    agree = bool(np.all(np.abs(z[np.isfinite(z)]) <= 3))
    base = formula.power(n)
    effects = []
    for name, (text, inp) in formula.variants.items():
        d = float(np.nanmean(formula.power(n, inp) - base))
        effects.append((name, d, text))
    effects.sort(key=lambda t: -abs(t[1]) if np.isfinite(t[1]) else 0)
    adj_gap = (
        float(np.nanmean(t["power"] - t["analytic_adj_power"]))
        if "analytic_adj_power" in t and t["analytic_adj_power"].notna().any()
        else float("nan")
    )
    proj_gap = (
        float(np.nanmean(t["power"] - t["projected_power"]))
        if "projected_power" in t and t["projected_power"].notna().any()
        else float("nan")
    )
    head = (
        f"Simulated - formula = {np.nanmean(gap):+.3f} on average over n = {n.min():.0f}-"
        f"{n.max():.0f} (largest {gap[i]:+.3f} at n = {n[i]:.0f}, {z[i]:+.1f} MCSE): "
        + ("they agree within 3 MCSE at every n" if agree else "they disagree")
    )
    parts = [head]
    if effects:
        lead = effects[0]
        parts.append(
            f"Largest effect of an assumption on the formula: {lead[0]} ({lead[1]:+.3f} power)"
        )
        if np.isfinite(adj_gap):
            parts.append(
                f"With the inputs the analysis actually sees (observed events and effective HR, "
                f"analysed n, observed effect) the gap is {adj_gap:+.3f}"
            )
    if np.isfinite(proj_gap) and projection:
        parts.append(
            f"The method's own large-sample projection (one fit on {projection['n']:,} "
            f"patients: estimate {projection['estimate']:.4g} +/- "
            f"{1.96 * projection['se_sqrt_n'] / math.sqrt(projection['n']):.2g}"
            + (f" vs the true {true_value:.4g}" if true_value is not None else "")
            + f", SE x sqrt(n) {projection['se_sqrt_n']:.4g}) leaves a gap of {proj_gap:+.3f} "
            "(small-sample behaviour)"
        )
    if effects:
        parts.append(
            "Assumptions: " + "; ".join(f"[{nm}, {d:+.3f} power] {tx}" for nm, d, tx in effects)
        )
    numbers = {
        "gap_mean": float(np.nanmean(gap)),
        "gap_max": float(gap[i]),
        "gap_max_n": float(n[i]),
        "gap_max_z": float(z[i]),
        "agree": agree,
        "gap_adjusted": adj_gap,
        "gap_projection": proj_gap,
        "effects": {nm: d for nm, d, _ in effects},
    }
    return ". ".join(parts), numbers


# --------------------------------------------------------------------------------------------
# plot
# --------------------------------------------------------------------------------------------
def plot_power_curves(
    power: pd.DataFrame,
    sizes: pd.DataFrame,
    formulas: Mapping[tuple[str, str], Formula],
    out,
    alpha: float,
    targets: Sequence[float] = (0.8, 0.9),
    scenario: str | None = None,
) -> Path:
    """Power curves: one panel per endpoint (+ type I error), Figure API (no pyplot).

    Simulated power (markers) with its 95% Clopper-Pearson band, the matching formula as a
    dashed line of the same colour, horizontal lines at the target powers, and the required n
    (simulation) marked with its CI as a horizontal bar at the target height.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    alt = power[power["scenario"] == scenario] if scenario is not None else power
    null = power[power["scenario"] != scenario] if scenario is not None else power.iloc[0:0]
    eps = [e for e in ENDPOINTS if e in set(alt["endpoint"])]
    npan = len(eps) + (1 if len(null) else 0)
    ncol = min(3, max(npan, 1))
    nrow = max(1, math.ceil(npan / ncol))
    fig = Figure(figsize=(5.2 * ncol, 4.0 * nrow))
    cmap = colormaps["tab10"]
    for pi, ep in enumerate(eps):
        ax = fig.add_subplot(nrow, ncol, pi + 1)
        d = alt[alt["endpoint"] == ep]
        sim_rows = d[d["reps"] > 0]
        nmin, nmax = float(d["n"].min()), float(d["n"].max())
        sz = sizes[(sizes["endpoint"] == ep)] if len(sizes) else sizes
        finite = sz["n_required"][np.isfinite(sz["n_required"])] if len(sz) else []
        hi = max([nmax] + [x for x in finite if x <= 2.5 * nmax])
        grid = np.linspace(max(nmin * 0.5, 10), hi * 1.05, 200)
        methods = list(dict.fromkeys(d["method"]))
        for ci, m in enumerate(methods):
            col = cmap(ci % 10)
            dm = d[d["method"] == m].sort_values("n")
            sm = dm[dm["reps"] > 0]
            if len(sm):
                ax.fill_between(sm["n"], sm["ci_low"], sm["ci_high"], color=col, alpha=0.18, lw=0)
                ax.plot(sm["n"], sm["power"], "o-", color=col, ms=4, lw=1.2, label=m)
            key = (dm["method_name"].iloc[0], dm["estimand"].iloc[0])
            f = formulas.get(key)
            if f is not None:
                ax.plot(
                    grid,
                    f.power(grid),
                    "--",
                    color=col,
                    lw=1.0,
                    label=f"{m}: formula" if len(sm) else f"{m} (formula only)",
                )
            if len(sz):
                for _, r in sz[sz["method"] == m].iterrows():
                    x = r["n_required"]
                    if not np.isfinite(x):
                        continue
                    if x > grid[-1]:
                        ax.annotate(
                            f"{m}: n{int(round(r['target_power'] * 100))} = {x:,.0f} \u2192",
                            xy=(grid[-1], r["target_power"] + 0.035 * ci),
                            ha="right",
                            va="bottom",
                            fontsize=7,
                            color=col,
                        )
                        continue
                    lo = r["ci_low"] if np.isfinite(r["ci_low"]) else x
                    hi_ = min(r["ci_high"], grid[-1]) if np.isfinite(r["ci_high"]) else grid[-1]
                    ax.errorbar(
                        [x],
                        [r["target_power"]],
                        xerr=[[max(x - lo, 0)], [max(hi_ - x, 0)]],
                        fmt="D",
                        color=col,
                        ms=5,
                        capsize=3,
                        lw=1,
                    )
        for tp in targets:
            ax.axhline(tp, color="grey", lw=0.6, ls=":")
        ax.axhline(alpha, color="grey", lw=0.6, ls="-.")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(grid[0], grid[-1])
        ax.set_title(f"{ENDPOINT_LABELS.get(ep, ep)} ({scenario or ''})")
        ax.set_xlabel("total sample size n")
        ax.set_ylabel("power")
        ax.legend(fontsize=6.5, loc="lower right")
        if not len(sim_rows):
            ax.text(0.5, 0.5, "formula only", transform=ax.transAxes, ha="center")
    if len(null):
        ax = fig.add_subplot(nrow, ncol, len(eps) + 1)
        labels = list(dict.fromkeys(zip(null["endpoint"], null["method"])))
        cmap_t1 = colormaps["tab10" if len(labels) <= 10 else "tab20"]
        for ci, (ep, m) in enumerate(labels):
            col = cmap_t1(ci % cmap_t1.N)
            dm = null[(null["endpoint"] == ep) & (null["method"] == m)].sort_values("n")
            ax.errorbar(
                dm["n"] * (1 + 0.01 * (ci - len(labels) / 2)),
                dm["power"],
                yerr=[dm["power"] - dm["ci_low"], dm["ci_high"] - dm["power"]],
                fmt="o-",
                color=col,
                ms=3,
                lw=0.8,
                capsize=2,
                label=f"{ENDPOINT_LABELS.get(ep, ep)}, {m}",
            )
        ax.axhline(alpha, color="black", lw=0.8, ls="--", label=f"alpha = {alpha:g}")
        for lv in sorted(set(null["analytic_power"].dropna().round(6)) - {round(alpha, 6)}):
            ax.axhline(lv, color="black", lw=0.6, ls=":", label=f"nominal {lv:g}")
        if null["n"].max() > 4 * null["n"].min():
            ax.set_xscale("log")
        ax.set_title(f"type I error ({null['scenario'].iloc[0]})")
        ax.set_xlabel("total sample size n")
        ax.set_ylabel("rejection rate")
        ax.set_ylim(0, max(0.12, float(null["ci_high"].max()) * 1.1))
        ax.legend(fontsize=6, loc="upper right", ncol=2)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def _eprint(*a) -> None:
    print(*a, file=sys.stderr)
