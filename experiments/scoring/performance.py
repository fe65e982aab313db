"""Performance measures of a simulation study, each with its Monte Carlo standard error.

Scores a long, rsimsum-compatible table of replication results (one row per replication x
method x estimand, with the true value on every row) following Morris, White & Crowther (2019),
"Using simulation studies to evaluate statistical methods", Statistics in Medicine 38:2074-2102,
Table 6. Anyone's table: the columns are named by keyword (``summarise(df, estimate="b",
rep="dataset", true=0.5)`` scores rsimsum's MIsim layout); method, estimand, rep, status, CI and
p-value columns are optional (:func:`canonical_results` says what replaces each).

Notation (per group = by-columns + method + estimand [+ engine]): ``n`` = replications used
after the failure policy, ``theta`` = true value, ``est_i``, ``se_i``, ``V_i = se_i^2``,
``mean_est`` = mean of ``est_i``, ``Var(V)`` = sample variance of ``V_i`` (denominator n - 1).

=========================  ========================================  =============================================================
measure                    estimate                                  Monte Carlo SE
=========================  ========================================  =============================================================
bias                       mean_est - theta                          EmpSE / sqrt(n)  [ (+) true_mcse in quadrature, see below ]
rel_bias                   mean((est_i - theta) / theta)             SD((est_i - theta) / theta) / sqrt(n); NaN when theta == 0
empse                      sqrt(sum (est_i - mean_est)^2 / (n - 1))  EmpSE / sqrt(2 (n - 1))
modse                      sqrt(mean V_i)  (root mean variance)      sqrt(Var(V) / (4 n ModSE^2))
relerror                   100 (ModSE / EmpSE - 1)                   100 (ModSE/EmpSE) sqrt(Var(V) / (4 n ModSE^4) + 1 / (2 (n - 1)))
mse                        mean (est_i - theta)^2                    sqrt(sum ((est_i - theta)^2 - MSE)^2 / (n (n - 1)))
rmse                       sqrt(MSE)                                 (not reported)
coverage                   mean 1(ci_low_i <= theta <= ci_high_i)    sqrt(C (1 - C) / n_c)
becoverage                 same with mean_est in place of theta      sqrt(B (1 - B) / n_c)
rejection                  mean 1(p_i <= alpha)                      sqrt(P (1 - P) / n_p)
ci_width                   mean (ci_high_i - ci_low_i)               (not reported)
ci_level                   mean of the rows' nominal CI level        (coverage's reference: 1 - alpha, or 1 - alpha/k for a simultaneous CI)
fail_rate                  n_failed / n_reps                         sqrt(F (1 - F) / n_reps)
=========================  ========================================  =============================================================

Truth with Monte Carlo error: when the column ``true_mcse`` is present and not NaN (a truth
obtained by simulation), the bias MCSE is ``sqrt(EmpSE^2 / n + true_mcse^2)``. Only the bias MCSE
carries it (as in MEASURES.md); a NaN or absent ``true_mcse`` means an exact (analytic) truth.

Failure policy. A replication *failed* when ``status == "failed"`` or its estimate is NaN.

* ``failures="exclude"``: every measure uses the non-failed replications only. Rows whose CI
  bound (resp. p-value) is NaN are also left out of coverage (resp. rejection), so ``n_c`` and
  ``n_p`` may be smaller than ``n_used``.
* ``failures="count"``: bias, EmpSE, ModSE, relative error, MSE and CI width use the non-failed
  replications; coverage, bias-eliminated coverage and rejection use *all* replications, a
  failed replication (or a missing CI / p-value) counting as non-covering and non-rejecting, so
  ``n_c = n_p = n_reps``. This is what a user of the method would experience if every failure
  were reported as "no evidence" (the simr convention made visible).

The policy in force is written to the output column ``failures``. With fewer than two usable
replications the measures that need a variance are NaN; nothing raises.

Paired comparison of two methods on the same data sets (``compare_methods``), over the ``n``
replications where both succeeded, with ``rho`` the correlation of their estimates:

* bias_A - bias_B = mean(est_A - est_B), MCSE sqrt((EmpSE_A^2 + EmpSE_B^2 - 2 rho EmpSE_A EmpSE_B) / n);
* relative % precision of B vs A = 100 ((EmpSE_A / EmpSE_B)^2 - 1),
  MCSE 200 (EmpSE_A / EmpSE_B)^2 sqrt((1 - rho^2) / (n - 1));
* MSE_A - MSE_B = mean((est_A - theta)^2 - (est_B - theta)^2), MCSE SD(per-rep difference) / sqrt(n).

Replications needed for a target MCSE (``reps_needed``): bias n = EmpSE^2 / MCSE^2 (with a
simulated truth n = EmpSE^2 / (MCSE^2 - true_mcse^2), infinite when true_mcse >= MCSE);
coverage and rejection n = p (1 - p) / MCSE^2 (95% coverage to MCSE 0.005 needs 1900); EmpSE
n = 1 + EmpSE^2 / (2 MCSE^2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

__all__ = [
    "summarise",
    "canonical_results",
    "reps_needed",
    "compare_methods",
    "OUTPUT_COLUMNS",
    "FAILURE_POLICIES",
]

FAILURE_POLICIES = ("exclude", "count")
STATUS_VALUES = ("ok", "warning", "failed")

REQUIRED_COLUMNS = (
    "rep",
    "method",
    "estimand",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "status",
    "true",
)

OUTPUT_COLUMNS = (
    "n_reps",
    "n_used",
    "n_failed",
    "n_warning",
    "fail_rate",
    "fail_rate_mcse",
    "true",
    "true_mcse",
    "bias",
    "bias_mcse",
    "rel_bias",
    "rel_bias_mcse",
    "empse",
    "empse_mcse",
    "modse",
    "modse_mcse",
    "relerror",
    "relerror_mcse",
    "mse",
    "mse_mcse",
    "rmse",
    "coverage",
    "coverage_mcse",
    "becoverage",
    "becoverage_mcse",
    "rejection",
    "rejection_mcse",
    "ci_width",
    "ci_level",
    "failures",
    "alpha",
)

_NUMERIC = ("estimate", "se", "ci_low", "ci_high", "p_value", "true")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _as_list(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str = "results") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} is missing required column(s): {', '.join(map(repr, missing))}")


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, (int, float, np.floating)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")


def _check_status(status: pd.Series) -> None:
    bad = ~status.isin(STATUS_VALUES)
    if bad.any():
        values = sorted({repr(v) for v in status[bad].unique()})
        raise ValueError(
            f"status must be one of {', '.join(map(repr, STATUS_VALUES))}; found {', '.join(values)}"
        )


def _failed_mask(df: pd.DataFrame) -> pd.Series:
    return (df["status"] == "failed").to_numpy() | df["estimate"].isna().to_numpy()


def _check_constant(
    grouped_col: pd.core.groupby.SeriesGroupBy, name: str, keys: list[str]
) -> pd.Series:
    """Per-group constant value of a column; ValueError if it varies within a group.

    All-NaN groups are allowed (value NaN); a mix of NaN and numbers is not.
    """
    agg = grouped_col.agg(["min", "max", "count", "size"])
    mixed = (agg["count"] > 0) & (agg["count"] < agg["size"])
    lo, hi = agg["min"].to_numpy(float), agg["max"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        varies = (agg["count"] > 0).to_numpy() & ~np.isclose(lo, hi, rtol=1e-12, atol=0.0)
    bad = mixed.to_numpy() | varies
    if bad.any():
        first = agg.index[np.flatnonzero(bad)[0]]
        raise ValueError(
            f"column {name!r} must be constant within each group ({', '.join(keys)}); "
            f"it varies in {int(bad.sum())} group(s), e.g. {first!r} "
            f"(min {lo[bad][0]!r}, max {hi[bad][0]!r}, {int(agg['count'][bad].iloc[0])} "
            f"non-missing of {int(agg['size'][bad].iloc[0])})"
        )
    return agg["min"]


def _sqrt(x) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.asarray(x, dtype=float))


def _binom_mcse(p: pd.Series, n: pd.Series) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return _sqrt(p.to_numpy(float) * (1.0 - p.to_numpy(float)) / n.to_numpy(float))


# --------------------------------------------------------------------------------------------
# summarise
# --------------------------------------------------------------------------------------------
_OPTIONAL_ROLES = ("method", "estimand", "rep", "status", "ci_low", "ci_high", "p_value")


def _resolve_roles(df: pd.DataFrame, names: dict) -> dict:
    """Role -> column name (None: absent optional role). A required role's column (estimate,
    se, true when a name) or an explicitly named optional column that is missing is an error;
    an optional role left at its default name and missing is absent."""
    found, missing = {}, []
    for role, name in names.items():
        if role == "true" and not isinstance(name, str):
            found[role] = None  # a number
            continue
        if name is None and role in _OPTIONAL_ROLES:
            found[role] = None
        elif not isinstance(name, str):
            raise ValueError(f"{role}= must be a column name, got {name!r}")
        elif name in df.columns:
            found[role] = name
        elif role in _OPTIONAL_ROLES and name == role:
            found[role] = None
        else:
            missing.append(name)
    if missing:
        absent = [r for r in _OPTIONAL_ROLES if r in found and found[r] is None]
        raise ValueError(
            f"results is missing required column(s): {', '.join(map(repr, missing))}"
            + (f" (absent optional: {', '.join(map(repr, absent))})" if absent else "")
            + f"; columns: {', '.join(map(str, df.columns))}"
        )
    return found


def canonical_results(
    results: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    estimate: str = "estimate",
    se: str = "se",
    true: str | float = "true",
    method: str | None = "method",
    estimand: str | None = "estimand",
    rep: str | None = "rep",
    status: str | None = "status",
    ci_low: str | None = "ci_low",
    ci_high: str | None = "ci_high",
    p_value: str | None = "p_value",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """``results`` with palliasim's column names (REQUIRED_COLUMNS), whatever the input's.

    Optional roles and what replaces them when absent (``None`` or the default name missing):
    ``method`` -> one method labelled "all"; ``estimand`` -> one estimand named after the
    ``estimate`` column; ``rep`` -> row order within each group (0, 1, ...); ``status`` -> "ok"
    (a NaN estimate still counts as failed); ``ci_low``/``ci_high`` (both or neither) -> the Wald
    interval estimate -/+ z_(1 - alpha/2) se; ``p_value`` -> 2 Phi(-|estimate / se|) (the
    rsimsum convention; a method's own p-value is better where it has one). ``true`` is a column
    name or a number (the same true value on every row). By-columns, ``engine``, ``message`` and
    ``true_mcse`` are kept as they are.
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    _check_alpha(alpha)
    by_cols = _as_list(by)
    _require_columns(results, by_cols)
    if not (
        isinstance(true, str)
        or (isinstance(true, (int, float, np.integer, np.floating)) and not isinstance(true, bool))
    ):
        raise ValueError(f"true= must be a column name or a number, got {true!r}")
    names = dict(estimate=estimate, se=se, true=true, method=method, estimand=estimand)
    names.update(rep=rep, status=status, ci_low=ci_low, ci_high=ci_high, p_value=p_value)
    roles = _resolve_roles(results, names)
    est_col, se_col, true_col = roles.pop("estimate"), roles.pop("se"), roles.pop("true")
    if (roles["ci_low"] is None) != (roles["ci_high"] is None):
        given = roles["ci_low"] or roles["ci_high"]
        raise ValueError(f"confidence limits need both columns ci_low and ci_high; only {given!r}")

    own = {c for c in (est_col, se_col, true_col, *roles.values()) if c is not None}
    clash = [c for c in by_cols if c in own and c not in ("method", "estimand")]
    if clash:
        raise ValueError(f"column {clash[0]!r} cannot be both a by-column and a measured role")
    keep = [c for c in results.columns if c not in own and c not in REQUIRED_COLUMNS]
    out = results[keep].copy()
    out["estimate"] = pd.to_numeric(results[est_col], errors="raise")
    out["se"] = pd.to_numeric(results[se_col], errors="raise")
    out["true"] = float(true) if true_col is None else pd.to_numeric(results[true_col])
    out["method"] = "all" if roles["method"] is None else results[roles["method"]]
    out["estimand"] = est_col if roles["estimand"] is None else results[roles["estimand"]]
    out["status"] = "ok" if roles["status"] is None else results[roles["status"]]
    est = out["estimate"].to_numpy(float)
    sev = out["se"].to_numpy(float)
    if roles["ci_low"] is None:
        z = float(ndtri(1.0 - alpha / 2.0))
        out["ci_low"], out["ci_high"] = est - z * sev, est + z * sev
    else:
        out["ci_low"] = pd.to_numeric(results[roles["ci_low"]], errors="raise")
        out["ci_high"] = pd.to_numeric(results[roles["ci_high"]], errors="raise")
    if roles["p_value"] is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["p_value"] = 2.0 * ndtr(-np.abs(est / sev))
    else:
        out["p_value"] = pd.to_numeric(results[roles["p_value"]], errors="raise")
    if roles["rep"] is None:
        keys = [*by_cols, "method", "estimand"] + (["engine"] if "engine" in out.columns else [])
        keys = list(dict.fromkeys(keys))
        out["rep"] = out.groupby(keys, sort=False, dropna=False).cumcount()
    else:
        out["rep"] = results[roles["rep"]]
    return out


def summarise(
    results: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    estimate: str = "estimate",
    se: str = "se",
    true: str | float = "true",
    method: str | None = "method",
    estimand: str | None = "estimand",
    rep: str | None = "rep",
    status: str | None = "status",
    ci_low: str | None = "ci_low",
    ci_high: str | None = "ci_high",
    p_value: str | None = "p_value",
    alpha: float = 0.05,
    failures: str = "exclude",
    truth_mcse_col: str = "true_mcse",
) -> pd.DataFrame:
    """Performance measures with Monte Carlo SEs, one row per group.

    Parameters
    ----------
    results
        Long table, one row per replication and group: optional by-columns, the estimate, its
        SE, the true value and, where present, method, estimand, rep, status ("ok" | "warning"
        | "failed"), CI limits and p-value; optionally ``truth_mcse_col`` (Monte Carlo SE of a
        simulated truth), ``engine``, ``message``.
    by
        Scenario factor column(s) to group by, in addition to method and estimand (and engine
        when present).
    estimate, se, true, method, estimand, rep, status, ci_low, ci_high, p_value
        The column playing each role (defaults: palliasim's own names). ``true`` may also be a
        number. All but estimate, se and true are optional: see :func:`canonical_results` for
        what replaces an absent one (e.g. rsimsum's layout: ``estimate="b", method="method",
        rep="dataset", true=0.5``). An explicitly named column that is missing is an error.
    alpha
        Nominal level; a replication rejects when ``p_value <= alpha``.
    failures
        ``"exclude"`` or ``"count"``; see the module docstring.
    truth_mcse_col
        Name of the column with the truth's Monte Carlo SE (ignored if absent).

    Returns
    -------
    DataFrame with the by-columns, ``method``, ``estimand`` (``engine``) followed by
    ``OUTPUT_COLUMNS`` (the method and estimand columns keep these names whatever the input's).

    Raises
    ------
    ValueError
        Missing columns, unknown ``failures`` policy or status value, alpha outside (0, 1),
        a true value (or true_mcse) varying within a group, or duplicated replications.
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    if failures not in FAILURE_POLICIES:
        raise ValueError(
            f"failures must be one of {', '.join(map(repr, FAILURE_POLICIES))}, got {failures!r}"
        )
    _check_alpha(alpha)
    by_cols = _as_list(by)
    roles = dict(estimate=estimate, se=se, true=true, method=method, estimand=estimand)
    roles.update(rep=rep, status=status, ci_low=ci_low, ci_high=ci_high, p_value=p_value)
    _require_columns(results, by_cols)
    own_layout = all(roles[k] == k for k in roles) and all(
        c in results.columns for c in REQUIRED_COLUMNS
    )
    if not own_layout:  # other names or absent optional columns: rename / fill in first
        results = canonical_results(results, by_cols, alpha=alpha, **roles)

    keys = [c for c in by_cols if c not in ("method", "estimand", "engine")]
    keys += ["method", "estimand"]
    if "engine" in results.columns:
        keys.append("engine")
    has_tmcse = truth_mcse_col in results.columns

    _check_status(results["status"])
    dup = results.duplicated(subset=[*keys, "rep"])
    if dup.any():
        row = results.loc[dup, [*keys, "rep"]].iloc[0].to_dict()
        raise ValueError(
            f"{int(dup.sum())} duplicated replication row(s) for the same group and rep, e.g. {row}"
        )

    # ---- per-row working columns (vectorised) -------------------------------------------------
    w = results[keys].copy()
    num = {c: pd.to_numeric(results[c], errors="raise").to_numpy(float) for c in _NUMERIC}
    failed = _failed_mask(results)
    used = ~failed
    theta = num["true"]
    est = np.where(used, num["estimate"], np.nan)
    w["_failed"] = failed.astype(float)
    # not failed but flagged (e.g. an implausible estimate for the outcome's scale): counted
    w["_warning"] = (~failed & (results["status"] == "warning").to_numpy()).astype(float)
    w["_est"] = est
    w["_true"] = theta
    if has_tmcse:
        w["_tmcse"] = pd.to_numeric(results[truth_mcse_col], errors="raise").to_numpy(float)
    w["_V"] = np.where(used, num["se"] ** 2, np.nan)
    w["_err2"] = (est - theta) ** 2
    w["_width"] = np.where(used, num["ci_high"] - num["ci_low"], np.nan)
    # each row's nominal CI level (estimators record it: 1 - alpha, or 1 - alpha / k for a
    # simultaneous interval); a table without the column has the run's 1 - alpha
    if "ci_level" in results:
        w["_level"] = pd.to_numeric(results["ci_level"], errors="coerce").to_numpy(float)
    else:
        w["_level"] = np.nan

    count = failures == "count"
    lo, hi, p = num["ci_low"], num["ci_high"], num["p_value"]
    ci_ok = used & ~np.isnan(lo) & ~np.isnan(hi)
    with np.errstate(invalid="ignore"):
        cover = (lo <= theta) & (theta <= hi)
        reject = p <= alpha
    fallback = 0.0 if count else np.nan  # value for failed rows / missing CI or p-value
    w["_cover"] = np.where(np.isnan(theta), np.nan, np.where(ci_ok, cover, fallback))
    p_ok = used & ~np.isnan(p)
    w["_reject"] = np.where(p_ok, reject, fallback)

    g = w.groupby(keys, sort=True, observed=True, dropna=False)

    # truth constant within each group
    true_g = _check_constant(g["_true"], "true", keys)
    if has_tmcse:
        tmcse_g = _check_constant(g["_tmcse"], truth_mcse_col, keys)
    else:
        tmcse_g = pd.Series(np.nan, index=true_g.index)

    # bias-eliminated coverage needs the group mean estimate on each row
    mean_row = g["_est"].transform("mean").to_numpy(float)
    with np.errstate(invalid="ignore"):
        becover = (lo <= mean_row) & (mean_row <= hi)
    w["_becover"] = np.where(ci_ok & ~np.isnan(mean_row), becover, fallback)
    g = w.groupby(keys, sort=True, observed=True, dropna=False)

    agg = g.agg(
        n_reps=("_failed", "size"),
        n_failed=("_failed", "sum"),
        n_warning=("_warning", "sum"),
        n_used=("_est", "count"),
        mean_est=("_est", "mean"),
        var_est=("_est", "var"),
        n_V=("_V", "count"),
        mean_V=("_V", "mean"),
        var_V=("_V", "var"),
        mse=("_err2", "mean"),
        var_err2=("_err2", "var"),
        coverage=("_cover", "mean"),
        n_cov=("_cover", "count"),
        becoverage=("_becover", "mean"),
        n_becov=("_becover", "count"),
        rejection=("_reject", "mean"),
        n_rej=("_reject", "count"),
        ci_width=("_width", "mean"),
        ci_level=("_level", "mean"),
    )

    n = agg["n_used"].to_numpy(float)
    n_reps = agg["n_reps"].to_numpy(float)
    n_failed = agg["n_failed"].to_numpy(float)
    th = true_g.to_numpy(float)
    tm = tmcse_g.to_numpy(float)
    mean_est = agg["mean_est"].to_numpy(float)
    var_est = agg["var_est"].to_numpy(float)
    n_V = agg["n_V"].to_numpy(float)
    var_V = agg["var_V"].to_numpy(float)
    mse = agg["mse"].to_numpy(float)

    out = pd.DataFrame(index=agg.index)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        empse = np.sqrt(var_est)
        modse = np.sqrt(agg["mean_V"].to_numpy(float))
        bias_mcse = np.sqrt(var_est / n + np.where(np.isnan(tm), 0.0, tm**2))
        abs_theta = np.where(th == 0, np.nan, np.abs(th))
        ratio = modse / empse

        out["n_reps"] = n_reps.astype(np.int64)
        out["n_used"] = n.astype(np.int64)
        out["n_failed"] = n_failed.astype(np.int64)
        out["n_warning"] = agg["n_warning"].to_numpy(float).astype(np.int64)
        out["fail_rate"] = n_failed / n_reps
        out["fail_rate_mcse"] = np.sqrt(out["fail_rate"] * (1 - out["fail_rate"]) / n_reps)
        out["true"] = th
        out["true_mcse"] = tm
        out["bias"] = mean_est - th
        out["bias_mcse"] = bias_mcse
        out["rel_bias"] = (mean_est - th) / np.where(th == 0, np.nan, th)
        out["rel_bias_mcse"] = empse / abs_theta / np.sqrt(n)
        out["empse"] = empse
        out["empse_mcse"] = empse / np.sqrt(2.0 * (n - 1.0))
        out["modse"] = modse
        out["modse_mcse"] = np.sqrt(var_V / (4.0 * n_V * modse**2))
        out["relerror"] = 100.0 * (ratio - 1.0)
        out["relerror_mcse"] = (
            100.0 * ratio * np.sqrt(var_V / (4.0 * n_V * modse**4) + 1.0 / (2.0 * (n - 1.0)))
        )
        out["mse"] = mse
        out["mse_mcse"] = np.sqrt(agg["var_err2"].to_numpy(float) / n)
        out["rmse"] = np.sqrt(mse)
        out["coverage"] = agg["coverage"]
        out["coverage_mcse"] = _binom_mcse(agg["coverage"], agg["n_cov"])
        out["becoverage"] = agg["becoverage"]
        out["becoverage_mcse"] = _binom_mcse(agg["becoverage"], agg["n_becov"])
        out["rejection"] = agg["rejection"]
        out["rejection_mcse"] = _binom_mcse(agg["rejection"], agg["n_rej"])
        out["ci_width"] = agg["ci_width"]
        out["ci_level"] = agg["ci_level"].fillna(1.0 - float(alpha))
    # n < 2: the variance-based quantities are already NaN (pandas var with one value); make the
    # ones built from 1/(n - 1) explicit so n == 1 never yields +inf.
    few = n < 2
    for col in ("empse_mcse", "relerror", "relerror_mcse", "modse_mcse", "mse_mcse"):
        out.loc[few, col] = np.nan
    out = out.replace([np.inf, -np.inf], np.nan)
    out["failures"] = failures
    out["alpha"] = float(alpha)
    return out.reset_index()[[*keys, *OUTPUT_COLUMNS]]


# --------------------------------------------------------------------------------------------
# replications needed
# --------------------------------------------------------------------------------------------
_REPS_MEASURES = ("bias", "empse", "coverage", "becoverage", "rejection")


def reps_needed(perf: pd.DataFrame, target_mcse, measure: str = "bias") -> pd.Series:
    """Replications needed for a performance measure to reach a target Monte Carlo SE.

    Uses the estimates in ``perf`` (the output of :func:`summarise`) as planning values:

    * ``"bias"``: n = EmpSE^2 / target^2; when ``true_mcse`` is known (simulated truth),
      n = EmpSE^2 / (target^2 - true_mcse^2), ``inf`` when ``true_mcse >= target`` (no number of
      replications is enough: improve the truth instead);
    * ``"empse"``: n = 1 + EmpSE^2 / (2 target^2);
    * ``"coverage"`` / ``"becoverage"`` / ``"rejection"``: n = p (1 - p) / target^2.

    Returns a float Series (rounded up; NaN where the planning value is NaN) aligned with
    ``perf``, named ``reps_needed_<measure>``. ``target_mcse`` may be a scalar or an array /
    Series aligned with ``perf``.
    """
    if measure not in _REPS_MEASURES:
        raise ValueError(
            f"measure must be one of {', '.join(map(repr, _REPS_MEASURES))}, got {measure!r}"
        )
    col = "empse" if measure in ("bias", "empse") else measure
    _require_columns(perf, [col], what="perf")
    target = np.broadcast_to(np.asarray(target_mcse, dtype=float), (len(perf),))
    if not np.all(target > 0):
        raise ValueError(f"target_mcse must be > 0, got {target_mcse!r}")
    t2 = target**2
    x = perf[col].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if measure == "bias":
            if "true_mcse" in perf.columns:
                tm = perf["true_mcse"].to_numpy(float)
                tm2 = np.where(np.isnan(tm), 0.0, tm**2)
            else:
                tm2 = np.zeros(len(perf))
            room = t2 - tm2
            n = np.where(room > 0, x**2 / np.where(room > 0, room, 1.0), np.inf)
            n = np.where(np.isnan(x), np.nan, n)
        elif measure == "empse":
            n = 1.0 + x**2 / (2.0 * t2)
        else:
            n = x * (1.0 - x) / t2
    # round up, tolerating floating-point noise (0.95 * 0.05 / 0.005^2 must give 1900, not 1901)
    n = np.ceil(np.round(n, 6))
    return pd.Series(n, index=perf.index, name=f"reps_needed_{measure}")


# --------------------------------------------------------------------------------------------
# paired comparison of two methods
# --------------------------------------------------------------------------------------------
_COMPARE_REQUIRED = ("rep", "method", "estimand", "estimate", "status", "true")


def compare_methods(
    results: pd.DataFrame,
    method_a: str,
    method_b: str,
    by: str | Sequence[str] | None = None,
    estimand: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Paired contrasts of method A with method B over replications where both succeeded.

    Rows of the two methods are joined on by + estimand + rep (common random numbers make the
    contrasts paired). A replication is used when neither method failed (status "failed" or NaN
    estimate). See the module docstring for the formulas; differences are A minus B, and
    ``rel_precision`` > 0 means B is more precise than A.

    Returns a DataFrame with columns by + ``estimand``, ``method_a``, ``method_b``, ``n_pairs``,
    ``rho``, ``bias_diff``, ``bias_diff_mcse``, ``rel_precision``, ``rel_precision_mcse``,
    ``mse_diff``, ``mse_diff_mcse``. Quantities needing a variance are NaN when n_pairs < 2
    (``rho`` also when either method has zero empirical SE).
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    by_cols = [c for c in _as_list(by) if c not in ("method", "estimand")]
    _require_columns(results, [*by_cols, *_COMPARE_REQUIRED])
    if method_a == method_b:
        raise ValueError(f"method_a and method_b must differ, both are {method_a!r}")
    _check_status(results["status"])
    keys = [*by_cols, "estimand"]

    df = results
    if estimand is not None:
        df = df[df["estimand"].isin(_as_list(estimand))]
    present = set(df["method"].unique())
    for name, m in (("method_a", method_a), ("method_b", method_b)):
        if m not in present:
            raise ValueError(f"{name}={m!r} not found in results (methods: {sorted(present)!r})")

    def side(m: str, suffix: str) -> pd.DataFrame:
        d = df[df["method"] == m]
        d = d[~_failed_mask(d)]
        dup = d.duplicated(subset=[*keys, "rep"])
        if dup.any():
            raise ValueError(
                f"method {m!r} has {int(dup.sum())} duplicated (by, estimand, rep) row(s); "
                "filter to a single engine (or add the distinguishing column to `by`)"
            )
        out = d[[*keys, "rep"]].copy()
        out["est" + suffix] = pd.to_numeric(d["estimate"]).to_numpy(float)
        out["true" + suffix] = pd.to_numeric(d["true"]).to_numpy(float)
        return out

    pairs = side(method_a, "_a").merge(side(method_b, "_b"), on=[*keys, "rep"], how="inner")
    ta, tb = pairs["true_a"].to_numpy(), pairs["true_b"].to_numpy()
    with np.errstate(invalid="ignore"):
        differ = ~np.isclose(ta, tb, rtol=1e-12, atol=0.0, equal_nan=True)
    if differ.any():
        raise ValueError(
            f"true differs between {method_a!r} and {method_b!r} in {int(differ.sum())} paired row(s)"
        )
    a = pairs["est_a"].to_numpy()
    b = pairs["est_b"].to_numpy()
    pairs["d"] = a - b
    pairs["dmse"] = (a - ta) ** 2 - (b - ta) ** 2

    g = pairs.groupby(keys, sort=True, observed=True, dropna=False)
    pairs["ca"] = a - g["est_a"].transform("mean").to_numpy()
    pairs["cb"] = b - g["est_b"].transform("mean").to_numpy()
    pairs["cab"] = pairs["ca"] * pairs["cb"]
    g = pairs.groupby(keys, sort=True, observed=True, dropna=False)
    agg = g.agg(
        n_pairs=("d", "size"),
        var_a=("est_a", "var"),
        var_b=("est_b", "var"),
        sum_cab=("cab", "sum"),
        bias_diff=("d", "mean"),
        var_d=("d", "var"),
        mse_diff=("dmse", "mean"),
        var_dmse=("dmse", "var"),
    )
    n = agg["n_pairs"].to_numpy(float)
    va, vb = agg["var_a"].to_numpy(float), agg["var_b"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        sa, sb = np.sqrt(va), np.sqrt(vb)
        cov = np.where(n >= 2, agg["sum_cab"].to_numpy(float) / (n - 1.0), np.nan)
        rho = np.clip(cov / (sa * sb), -1.0, 1.0)
        ratio2 = va / vb
        out = pd.DataFrame(index=agg.index)
        out["method_a"] = method_a
        out["method_b"] = method_b
        out["n_pairs"] = agg["n_pairs"].astype(np.int64)
        out["rho"] = rho
        out["bias_diff"] = agg["bias_diff"]
        out["bias_diff_mcse"] = np.sqrt(
            np.maximum(va + vb - 2.0 * rho * sa * sb, 0.0) / n
        )  # equals SD(est_a - est_b) / sqrt(n)
        # with a degenerate rho (zero EmpSE) fall back to the direct SD of the differences
        out["bias_diff_mcse"] = np.where(
            np.isnan(rho), np.sqrt(agg["var_d"].to_numpy(float) / n), out["bias_diff_mcse"]
        )
        out["rel_precision"] = 100.0 * (ratio2 - 1.0)
        out["rel_precision_mcse"] = 200.0 * ratio2 * np.sqrt((1.0 - rho**2) / (n - 1.0))
        out["mse_diff"] = agg["mse_diff"]
        out["mse_diff_mcse"] = np.sqrt(agg["var_dmse"].to_numpy(float) / n)
    out = out.replace([np.inf, -np.inf], np.nan)
    cols = [
        *keys,
        "method_a",
        "method_b",
        "n_pairs",
        "rho",
        "bias_diff",
        "bias_diff_mcse",
        "rel_precision",
        "rel_precision_mcse",
        "mse_diff",
        "mse_diff_mcse",
    ]
    return out.reset_index()[cols]
