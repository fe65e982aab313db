"""Judging a suite: every check's figure, MCSE, test and p-value from the performance table,
the p-values of the statistical checks adjusted together (Holm or Bonferroni over the suite's
hypotheses, so a suite of correct estimators fails with probability <= ``error_rate``), the
verdicts (:func:`evaluate`; the expectations are described in :mod:`.schema`).

Bias and relative error are z-tests on their Monte Carlo SE. Coverage and rejection rate are
exact binomial tests of the count k out of n against the nominal p0 (Clopper-Pearson): lower
tail P(X <= k), upper tail P(X >= k), two-sided min(1, 2 min(lower, upper)), X ~ Bin(n, p0).
Two estimator rows of the same kind and options that differ only in ``engine`` and give the
same replications (estimate, SE, CI to :data:`DUPLICATE_RTOL`) are one hypothesis: the Holm
family counts each (scenario, estimand, expectation) of such a group once."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from palliasim.estimators.base import FAILED
from palliasim.experiments.checks.schema import EXPECTATIONS, CheckSpec, Suite


def _adjust(p: np.ndarray, correction: str) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted p-values and each test's own level factor (divide error_rate by it).

    Holm: sort ascending, p_adj(i) = max_{j <= i} min(1, (m - j + 1) p_(j)); the test of rank r
    is judged at error_rate / (m - r + 1). Bonferroni: min(1, m p), level error_rate / m.
    NaN p-values (nothing to test) count as 1 (they never reject; their checks fail anyway).
    """
    m = len(p)
    if m == 0:
        return np.array([]), np.array([])
    q = np.where(np.isnan(p), 1.0, p)
    if correction == "bonferroni":
        return np.minimum(1.0, m * q), np.full(m, float(m))
    order = np.argsort(q, kind="stable")
    factors = m - np.arange(m)  # m, m-1, ..., 1
    adj_sorted = np.maximum.accumulate(np.minimum(1.0, factors * q[order]))
    adj = np.empty(m)
    adj[order] = adj_sorted
    fac = np.empty(m)
    fac[order] = factors
    return adj, fac


def _crit(level: float, side: str) -> float:
    return float(stats.norm.isf(level / 2.0 if side == "two" else level))


#: engine twins are duplicates when every replication's estimate, SE and CI bounds agree to
#: this relative tolerance (of the rows' empirical SD) - numerically the same analysis
DUPLICATE_RTOL = 1e-6


def binom_pvalue(k: int, n: int, p0: float, side: str) -> float:
    """Exact binomial p-value of k successes out of n against p0 (X ~ Bin(n, p0)):
    ``lower`` P(X <= k), ``upper`` P(X >= k), ``two`` min(1, 2 min(lower, upper)) - the
    test that rejects at level a exactly when p0 lies outside the (1 - a) Clopper-Pearson
    interval of k / n."""
    lo = float(stats.binom.cdf(k, n, p0))
    hi = float(stats.binom.sf(k - 1, n, p0))
    if side == "lower":
        return lo
    if side == "upper":
        return hi
    return min(1.0, 2.0 * min(lo, hi))


def binom_band(n: int, p0: float, level: float, side: str) -> tuple[float, float]:
    """The rates k / n the exact test does *not* reject at ``level`` (see
    :func:`binom_pvalue`): (lowest, highest) accepted rate; a one-sided test is open on the
    other side (0 or 1)."""
    k = np.arange(n + 1)
    lo_t = stats.binom.cdf(k, n, p0)
    hi_t = stats.binom.sf(k - 1, n, p0)
    if side == "lower":
        ok = lo_t > level
    elif side == "upper":
        ok = hi_t > level
    else:
        ok = np.minimum(1.0, 2.0 * np.minimum(lo_t, hi_t)) > level
    if not ok.any():
        return np.nan, np.nan
    acc = k[ok]
    lo = 0.0 if side == "upper" else acc.min() / n
    hi = 1.0 if side == "lower" else acc.max() / n
    return float(lo), float(hi)


def fmt(x: float, digits: int = 4) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def fmt_p(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.2g}"


def _coverage_counts(results: pd.DataFrame, failures: str) -> pd.DataFrame:
    """Replications behind coverage (n_cov) and rejection (n_rej), as in ``summarise``."""
    r = results
    used = (r["status"] != FAILED).to_numpy() & r["estimate"].notna().to_numpy()
    has_true = r["true"].notna().to_numpy()
    if failures == "count":
        n_cov = has_true.astype(float)
        n_rej = np.ones(len(r))
    else:
        ci = r["ci_low"].notna().to_numpy() & r["ci_high"].notna().to_numpy()
        n_cov = (used & ci & has_true).astype(float)
        n_rej = (used & r["p_value"].notna().to_numpy()).astype(float)
    df = r[["scenario", "method", "estimand"]].assign(n_cov=n_cov, n_rej=n_rej)
    return df.groupby(["scenario", "method", "estimand"], sort=True).sum().reset_index()


def _first_failure(results: pd.DataFrame) -> dict:
    """(scenario, method, estimand) -> the first failure message (in rep order)."""
    if "message" not in results.columns:
        return {}
    f = results[results["status"] == FAILED]
    if f.empty:
        return {}
    f = f.sort_values(["scenario", "method", "estimand", "rep"], kind="stable")
    first = f.groupby(["scenario", "method", "estimand"], sort=False)["message"].first()
    return {k: str(v) for k, v in first.items()}


def _max_or_nan(p: np.ndarray) -> float:
    f = p[np.isfinite(p)]
    return float(f.max()) if len(f) else np.nan


def _engine_free(spec: dict) -> str:
    """An estimator spec without its ``engine``: equal for engine twins."""
    return repr(sorted((str(k), repr(v)) for k, v in spec.items() if k != "engine"))


def _same_replications(results: pd.DataFrame, sc: str, a: str, b: str, estimand: str) -> bool:
    """Do methods ``a`` and ``b`` give the same rows for ``estimand`` in scenario ``sc``
    (status equal; estimate, se, ci_low, ci_high equal to DUPLICATE_RTOL x the estimates' SD)?"""
    cols = ["estimate", "se", "ci_low", "ci_high"]
    sel = (results["scenario"] == sc) & (results["estimand"] == estimand)
    ra = results[sel & (results["method"] == a)].sort_values("rep", kind="stable")
    rb = results[sel & (results["method"] == b)].sort_values("rep", kind="stable")
    if len(ra) == 0 or len(ra) != len(rb):
        return False
    if not (ra["rep"].to_numpy() == rb["rep"].to_numpy()).all():
        return False
    if not (ra["status"].to_numpy() == rb["status"].to_numpy()).all():
        return False
    xa = ra[cols].to_numpy(float)
    xb = rb[cols].to_numpy(float)
    sd = np.nanstd(xa[:, 0])
    scale = sd if np.isfinite(sd) and sd > 0 else 1.0
    return bool(np.allclose(xa, xb, rtol=0.0, atol=DUPLICATE_RTOL * scale, equal_nan=True))


def _hypotheses(suite: Suite, results: pd.DataFrame | None) -> tuple[list[int], list[str]]:
    """For each check (suite order): the id of its hypothesis in the multiplicity family (-1
    for a fixed check) and the id of the check it duplicates ("" if none).

    Checks of engine twins (same kind and options but ``engine``) on the same scenario,
    estimand and expectation share one hypothesis when the twins' replications agree
    (:func:`_same_replications`); without ``results`` nothing is merged."""
    rep_of: dict[tuple[str, str, str], str] = {}  # (scenario, estimand, method) -> representative
    if results is not None and len(results):
        methods = list(suite.estimators)
        for c in suite.checks:
            k = (c.scenario, c.estimand, c.method)
            if k in rep_of:
                continue
            rep_of[k] = c.method
            mine = _engine_free(suite.estimators[c.method])
            for other in methods:
                if other == c.method:
                    break  # only earlier methods can be the representative
                ko = (c.scenario, c.estimand, other)
                if (
                    ko in rep_of
                    and rep_of[ko] == other
                    and _engine_free(suite.estimators[other]) == mine
                    and _same_replications(results, c.scenario, other, c.method, c.estimand)
                ):
                    rep_of[k] = other
                    break
    ids: dict[tuple, int] = {}
    first: dict[tuple, str] = {}
    hyp, dup = [], []
    for c in suite.checks:
        if not c.statistical:
            hyp.append(-1)
            dup.append("")
            continue
        rep = rep_of.get((c.scenario, c.estimand, c.method), c.method)
        key = (c.scenario, c.estimand, c.expectation, repr(c.value), rep)
        if key in ids:
            dup.append(first[key])
        else:
            ids[key] = len(ids)
            first[key] = c.id
            dup.append("")
        hyp.append(ids[key])
    return hyp, dup


def evaluate(
    suite: Suite, performance: pd.DataFrame, results: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Judge every check of ``suite`` on a performance table (``summarise(results, by=
    "scenario")``, with the suite's scenario names in the ``scenario`` column).

    ``results`` (the long table the performance came from) gives the exact number of
    replications behind coverage and rejection and the first failure message; without it
    ``n_used`` is used. Returns one row per check in suite order (see ``CHECK_COLUMNS``).
    """
    perf = performance.set_index(["scenario", "method", "estimand"]).sort_index()
    counts = None
    first_fail: dict = {}
    if results is not None and len(results):
        counts = _coverage_counts(results, suite.failures).set_index(
            ["scenario", "method", "estimand"]
        )
        first_fail = _first_failure(results)
    nominal = 1.0 - suite.alpha
    rows = []
    for c in suite.checks:
        key = (c.scenario, c.method, c.estimand)
        _, _, side, fig_name = EXPECTATIONS[c.expectation]
        row: dict[str, Any] = {
            "check": c.id,
            "scenario": c.scenario,
            "method": c.method,
            "estimand": c.estimand,
            "expectation": c.label,
            "statistical": c.statistical,
            "side": side,
            "figure_name": fig_name,
            "figure": np.nan,
            "mcse": np.nan,
            "true": np.nan,
            "n_reps": 0,
            "n_used": 0,
            "n_failed": 0,
            "z": np.nan,
            "p_value": np.nan,
            "se0": np.nan,
            "key": c.path,
            "note": c.note,
            "_problem": "",
            "_binom": None,
            "_nominal": nominal,
        }
        if key not in perf.index:
            row["_problem"] = "no result rows for this method and estimand"
            rows.append(row)
            continue
        pr = perf.loc[key]
        if isinstance(pr, pd.DataFrame):  # several engines: judge the first (sorted)
            pr = pr.iloc[0]
        n_used = int(pr["n_used"])
        row.update(
            n_reps=int(pr["n_reps"]),
            n_used=n_used,
            n_failed=int(pr["n_failed"]),
            true=float(pr["true"]),
        )
        # coverage is judged against the rows' own nominal level (ci_level: 1 - alpha, or
        # 1 - alpha / k for a simultaneous interval such as the Bonferroni mixed model's)
        level = float(pr["ci_level"]) if "ci_level" in pr else np.nan
        row["_nominal"] = level if np.isfinite(level) else nominal
        fig = float(pr[fig_name])
        mcse = float(pr[f"{fig_name}_mcse"]) if f"{fig_name}_mcse" in pr else np.nan
        row.update(figure=fig, mcse=mcse)
        ff = first_fail.get(key, "")
        failed_note = f"{row['n_failed']} of {row['n_reps']} replications failed" + (
            f" (first: {ff[:160]})" if ff else ""
        )
        if fig_name in ("bias", "coverage") and not np.isfinite(row["true"]):
            row["_problem"] = (
                f"no true value of '{c.estimand}' in scenario '{c.scenario}' (needed for "
                f"{fig_name})"
            )
        elif not np.isfinite(fig):
            row["_problem"] = f"no usable replications: {failed_note}"
        elif c.expectation in ("unbiased", "biased"):
            if mcse > 0:
                row["z"] = fig / mcse
            elif mcse == 0:
                row["z"] = 0.0 if fig == 0 else math.copysign(np.inf, fig)
        elif c.expectation in ("covers", "undercovers", "type1"):
            p0 = row["_nominal"] if fig_name == "coverage" else suite.alpha
            col = "n_cov" if fig_name == "coverage" else "n_rej"
            n = (
                float(counts.loc[key, col])
                if counts is not None and key in counts.index
                else n_used
            )
            if n > 0:
                row["se0"] = math.sqrt(p0 * (1 - p0) / n)
                row["z"] = (fig - p0) / row["se0"]  # shown; the p-value is exact binomial
                row["_binom"] = (int(round(fig * n)), int(n), p0)
            else:
                row["_problem"] = f"no replications with a {'CI' if col == 'n_cov' else 'p-value'}"
            if c.expectation == "type1" and np.isfinite(row["true"]):
                tm = float(pr["true_mcse"]) if np.isfinite(pr["true_mcse"]) else 0.0
                if abs(row["true"]) > max(1e-9, 4.0 * tm):
                    row["_problem"] = (
                        f"the true value of '{c.estimand}' in scenario '{c.scenario}' is "
                        f"{fmt(row['true'])}, not 0: its rejection rate is power, not type I "
                        "error (point type1 checks at a null scenario)"
                    )
        elif c.expectation == "relerror":
            if np.isfinite(mcse) and mcse > 0:
                row["z"] = (abs(fig) - float(c.value)) / mcse
            else:
                row["_problem"] = "relative error without a Monte Carlo SE (fewer than 2 reps?)"
        z = row["z"]
        if c.statistical and row.get("_binom"):
            row["p_value"] = binom_pvalue(*row["_binom"], side)
        elif c.statistical and not np.isnan(z):
            if side == "two":
                row["p_value"] = float(2.0 * stats.norm.sf(abs(z)))
            elif side == "upper":
                row["p_value"] = float(stats.norm.sf(z))
            else:
                row["p_value"] = float(stats.norm.cdf(z))
        elif c.statistical and not row["_problem"]:
            row["_problem"] = (
                f"{fig_name} {fmt(fig)} has no Monte Carlo SE (fewer than 2 usable replications?)"
            )
        row["_failed_note"] = failed_note if row["n_failed"] else ""
        row["_first"] = ff
        rows.append(row)

    table = pd.DataFrame(rows)
    hyp, dup_of = _hypotheses(suite, results)
    table["hypothesis"] = hyp
    table["duplicate_of"] = dup_of
    stat = table["statistical"].to_numpy(bool)
    p_adj = np.full(len(table), np.nan)
    level = np.full(len(table), np.nan)
    # one p-value per hypothesis (the largest of its duplicates: they agree to DUPLICATE_RTOL)
    h_ids = table.loc[stat, "hypothesis"].to_numpy(int)
    h_unique = np.unique(h_ids)
    p_stat = table.loc[stat, "p_value"].to_numpy(float)
    p_h = np.array([_max_or_nan(p_stat[h_ids == h]) for h in h_unique])
    adj, fac = _adjust(p_h, suite.correction)
    where = np.searchsorted(h_unique, h_ids)
    p_adj[stat] = adj[where] if len(h_unique) else []
    level[stat] = suite.error_rate / fac[where] if len(h_unique) else []
    table["p_adjusted"] = p_adj
    table["level"] = level
    verdicts, thresholds, reasons = [], [], []
    for c, r in zip(suite.checks, table.to_dict("records")):
        ok, thr, why = _judge(c, r, suite)
        verdicts.append("PASS" if ok else "FAIL")
        thresholds.append(thr)
        if r.get("_failed_note") and not ok and "failed" not in why:
            why += f"; {r['_failed_note']}"
        if c.note and not ok:
            why += f" [{c.note}]"
        reasons.append(why)
    table["verdict"] = verdicts
    table["threshold"] = thresholds
    table["reason"] = reasons
    return table[list(CHECK_COLUMNS)]


CHECK_COLUMNS = (
    "verdict",
    "check",
    "scenario",
    "method",
    "estimand",
    "expectation",
    "figure_name",
    "figure",
    "mcse",
    "threshold",
    "true",
    "n_reps",
    "n_used",
    "n_failed",
    "statistical",
    "z",
    "p_value",
    "p_adjusted",
    "level",
    "hypothesis",
    "duplicate_of",
    "reason",
    "key",
    "note",
)


def _judge(c: CheckSpec, r: dict, suite: Suite) -> tuple[bool, str, str]:
    """(passed, threshold text, reason text) of one check."""
    e = suite.error_rate
    fig, mcse, z, padj = r["figure"], r["mcse"], r["z"], r["p_adjusted"]
    side = r["side"]
    zc = _crit(r["level"], side) if c.statistical else np.nan
    reject = bool(np.isfinite(padj) and padj <= e)
    sig = f"adjusted p = {fmt_p(padj)} {'<=' if reject else '>'} {e:g}"
    nominal = r.get("_nominal", 1.0 - suite.alpha)
    x = c.expectation

    if x in ("unbiased", "biased"):
        thr = f"abs(bias)/MCSE {'<=' if x == 'unbiased' else '>'} {zc:.2f}"
    elif x == "abs_bias_max":
        thr = f"abs(bias) <= {c.value:g}"
    elif x in ("covers", "undercovers", "type1"):
        b = r.get("_binom")
        lo, hi = binom_band(b[1], b[2], r["level"], side) if b else (np.nan, np.nan)
        tail = {"two": "two-sided", "lower": "lower tail", "upper": "upper tail"}[side]
        how = f"exact binomial, {tail} at {fmt(r['level'], 3)}, n = {b[1] if b else 'n/a'}"
        if x == "covers":
            thr = f"in [{fmt(lo)}, {fmt(hi)}] ({how})"
        elif x == "undercovers":
            # caught when the count is *rejected* below: the highest rejected rate
            b_lo, _ = binom_band(b[1], b[2], r["level"], "lower") if b else (np.nan, np.nan)
            hi_rej = (b_lo * b[1] - 1) / b[1] if b and np.isfinite(b_lo) else np.nan
            thr = f"<= {fmt(hi_rej)} ({how})"
        else:
            thr = f"<= {fmt(hi)} ({how})"
    elif x == "relerror":
        lim = c.value + zc * mcse if np.isfinite(mcse) else np.nan
        thr = f"abs <= {c.value:g}% + {zc:.2f} x MCSE = {fmt(lim, 3)}%"
    else:  # max_fail_rate
        thr = f"<= {c.value:g}"

    if r["_problem"]:
        return False, thr, r["_problem"]

    if x == "unbiased":
        why = f"bias {fmt(fig)} (MCSE {fmt(mcse, 2)}) is {abs(z):.2f} MCSE from 0 ({sig})"
        if reject:
            why = f"biased: {why}; true {fmt(r['true'])}, mean estimate {fmt(r['true'] + fig)}"
        return not reject, thr, why
    if x == "biased":
        why = f"bias {fmt(fig)} (MCSE {fmt(mcse, 2)}) is {abs(z):.2f} MCSE from 0 ({sig})"
        if reject:
            return True, thr, f"caught as biased: {why}"
        return False, thr, f"not caught as biased (a naive method should be): {why}"
    if x == "abs_bias_max":
        ok = abs(fig) <= c.value
        why = f"abs(bias) = {fmt(abs(fig))} {'<=' if ok else '>'} {c.value:g} (MCSE {fmt(mcse, 2)})"
        return ok, thr, why if ok else f"too biased: {why}"
    if x == "covers":
        why = f"coverage {fmt(fig)} (MCSE {fmt(mcse, 2)}, nominal {nominal:g}; {sig})"
        if reject:
            kind = "under-covers" if fig < nominal else "over-covers"
            return False, thr, f"{kind}: {why}, outside the exact binomial band"
        return True, thr, why
    if x == "undercovers":
        why = f"coverage {fmt(fig)} (MCSE {fmt(mcse, 2)}, nominal {nominal:g}; {sig})"
        if reject:
            return True, thr, f"caught under-covering: {why}"
        return False, thr, f"not caught under-covering (a naive method should be): {why}"
    if x == "type1":
        why = f"rejection rate {fmt(fig)} (MCSE {fmt(mcse, 2)}, alpha {suite.alpha:g}; {sig})"
        if reject:
            return False, thr, f"inflated type I error: {why}"
        return True, thr, why
    if x == "relerror":
        why = (
            f"model SE off by {fmt(fig, 3)}% of the empirical SE (MCSE {fmt(mcse, 2)}%; "
            f"allowed +/-{c.value:g}%; {sig})"
        )
        if reject:
            kind = "over" if fig > 0 else "under"
            return False, thr, f"model SE {kind}states the empirical SE: {why}"
        return True, thr, why
    # max_fail_rate
    ok = fig <= c.value
    if ok:
        return True, thr, f"fail rate {fmt(fig)}: {r['n_failed']} of {r['n_reps']} replications"
    why = (
        f"too many failures: {r['n_failed']} of {r['n_reps']} replications failed (fail rate "
        f"{fmt(fig)} > {c.value:g})"
    )
    if r.get("_first"):
        why += f"; first: {r['_first'][:160]}"
    return ok, thr, why
