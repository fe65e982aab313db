"""The smallest n reaching a target power from a monotone fit of rejection on n: isotonic
regression (pool-adjacent-violators, weights = reps) of the smoothed rejection rates, linear
interpolation between the two grid points that bracket the target on the scale where a
two-sided normal-approximation power curve is straight (u = b sqrt(n), power = Phi(u - z) +
Phi(-u - z)); outside the grid, b fitted by weighted least squares extrapolates, and the result
is flagged. 95% CI by parametric bootstrap of the binomial counts."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from scipy import stats

from palliasim.experiments.planning.formula_choice import formula_n


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
    n, how = _n_at_rows(nv, np.asarray(k, dtype=float)[None, :], r, target, alpha)
    return float(n[0]), how[0]


def _n_at_rows(nv, k, r, target, alpha) -> tuple[np.ndarray, list[str]]:
    """:func:`_n_at` of every row of ``k`` (counts, one row per bootstrap redraw; the same
    arithmetic row by row, the scipy calls made once for all rows)."""
    k = np.asarray(k, dtype=float)
    r = np.asarray(r, dtype=float)
    p = (k + 0.5) / (r + 1.0)  # no 0 or 1: the power scale stays finite
    iso = np.array([isotonic(row, r) for row in p]).reshape(p.shape)
    x = np.sqrt(nv)
    ut = float(_u_of(target, alpha))
    rows = p.shape[0]
    out = np.empty(rows)
    how = [""] * rows
    inside = (iso[:, 0] < target) & (target <= iso[:, -1]) if len(nv) >= 2 else np.zeros(rows, bool)
    below = ~inside & (iso[:, 0] >= target)
    above = ~inside & ~below
    if inside.any():
        ii = np.flatnonzero(inside)
        i = np.argmax(iso[ii] >= target, axis=1)
        u0 = _u_of(iso[ii, i - 1], alpha)
        u1 = _u_of(iso[ii, i], alpha)
        xs = x[i - 1] + (ut - u0) * (x[i] - x[i - 1]) / (u1 - u0)
        out[ii] = xs**2
        for j in ii:
            how[j] = "interpolated"
    if below.any():  # below the grid: the curve u = b sqrt(n) through the first point
        ii = np.flatnonzero(below)
        u0 = _u_of(iso[ii, 0], alpha)
        with np.errstate(divide="ignore"):
            out[ii] = np.where(u0 > 0, nv[0] * (ut / u0) ** 2, nv[0])
        for j in ii:
            how[j] = "extrapolated below the grid"
    if above.any():
        # above the grid, but no rejection rate on the grid is significantly above the nominal
        # level (exact one-sided 97.5% bound): no detectable effect, nothing to extrapolate from
        ii = np.flatnonzero(above)
        kk, rr = k[ii], np.broadcast_to(r, k[ii].shape)
        lower = np.where(kk > 0, stats.beta.ppf(0.025, np.maximum(kk, 1), rr - kk + 1), 0.0)
        detect = np.any(lower > alpha, axis=1)
        # weighted least squares of u on sqrt(n) through the origin (u = b sqrt n), weights =
        # inverse delta-method variances r (dp/du)^2 / (p (1 - p)); never below the grid
        z = _z(alpha)
        pp = p[ii]
        u = _u_of(pp, alpha)
        w = r * (stats.norm.pdf(u - z) - stats.norm.pdf(u + z)) ** 2 / (pp * (1 - pp))
        den = np.sum(w * x * x, axis=1)
        num = np.sum(w * x * u, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
            ext = np.maximum((ut / np.where(b > 0, b, 1.0)) ** 2, nv[-1])
        for j, d, bj, e in zip(ii, detect, b, ext):
            if not d:
                out[j] = np.inf
                how[j] = "not reached (no rejection rate on the grid above the nominal level)"
            elif not bj > 0:
                out[j] = np.inf
                how[j] = "not reached (no increase with n)"
            else:
                out[j] = e
                how[j] = "extrapolated above the grid"
    return out, how


@functools.lru_cache(maxsize=16)
def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


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
    kb = np.empty((n_boot, len(nv)))
    for b in range(n_boot):  # one redraw at a time: the random stream of the loop it replaced
        kb[b] = rng.binomial(r.astype(np.int64), p)
    boots = _n_at_rows(nv, kb, r, target, alpha)[0] if n_boot else np.empty(0)
    boots = np.where(np.isnan(boots), np.inf, boots)
    lo, hi = np.quantile(boots, [(1 - conf) / 2, (1 + conf) / 2], method="inverted_cdf")
    return {"n": est, "ci_low": float(lo), "ci_high": float(hi), "how": how}


def sample_sizes(tab, formulas, extra_formulas, alt_name, targets, n_boot, seed, alpha=0.05):

    rows = []
    alt = tab[(tab["scenario"] == alt_name) & (tab["reps"] > 0)]
    for (ep, m), d in alt.groupby(["endpoint", "method"], sort=False):
        key = (d["method_name"].iloc[0], d["estimand"].iloc[0])
        f = formulas.get(key)
        for tp in targets:
            lvl = f.nominal if f is not None else alpha
            r = required_n(d["n"], d["rejections"], d["reps"], tp, lvl, n_boot=n_boot, seed=seed)
            rows.append(
                {
                    "scenario": alt_name,
                    "endpoint": ep,
                    "method": m,
                    "estimand": key[1],
                    "target_power": tp,
                    "n_required": r["n"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "how": r["how"],
                    "grid_min": int(d["n"].min()),
                    "grid_max": int(d["n"].max()),
                    "reps_total": int(d["reps"].sum()),
                    "formula_n": formula_n(f, tp) if f else np.nan,
                    "formula_adj_n": formula_n(f, tp, f.adjusted) if f and f.adjusted else np.nan,
                    "formula_method": f.label if f else "",
                }
            )
    for label, ep, f, ns in extra_formulas:
        for tp in targets:
            rows.append(
                {
                    "scenario": alt_name,
                    "endpoint": ep,
                    "method": label,
                    "estimand": "",
                    "target_power": tp,
                    "n_required": np.nan,
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "how": "formula only",
                    "grid_min": int(min(ns)),
                    "grid_max": int(max(ns)),
                    "reps_total": 0,
                    "formula_n": formula_n(f, tp),
                    "formula_adj_n": np.nan,
                    "formula_method": f.label,
                }
            )
    out = pd.DataFrame(rows)
    if len(out):
        order = {e: i for i, e in enumerate(("pfs", "os", "nrs", "response", "qol"))}
        out = out.assign(_o=out["endpoint"].map(order), _f=out["how"].eq("formula only"))
        out = out.sort_values(["_o", "_f"], kind="stable").drop(columns=["_o", "_f"])
    return out.reset_index(drop=True)
