"""Contingency-table and two-sample tests for many tables at once (numpy + scipy.special).

The numbers of :mod:`estimators.design`'s scipy-based helpers (``table_test``, ``wilson``,
``newcombe_diff``, ``rd_wald``) computed for a whole vector of 2 x 2 tables in one pass:

- Pearson's chi-square without continuity correction, p = ``chdtrc`` (what ``chi2.sf`` calls);
- Fisher's exact test, two-sided, as ``scipy.stats.fisher_exact``: p = the sum of the
  hypergeometric probabilities P(X = k) <= P(X = observed) (1 + 1e-14) over the support, from
  log-factorials (``gammaln``; relative error ~1e-13 at n = 205); probabilities within 1e-9 of
  the observed one are compared exactly in integers (math.comb), so tied tables (equal arm sizes)
  are counted as scipy counts them;
- Wilson / Newcombe (hybrid score) intervals and the unpooled Wald SE of p1 - p0, with the same
  floating-point operations as the scalar helpers.

A 2 x K table (K > 2) needing Fisher's test is left to ``scipy.stats.fisher_exact`` with a Monte
Carlo method drawing from the caller's rng (:func:`table_test`), so the draws are the reference's.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import chdtrc, gammaln, ndtri

from palliasim.estimators.lazy import lazy_module

stats = lazy_module("scipy.stats")  # ~0.5 s of import, off the hot paths

#: scipy.stats.fisher_exact's relative tolerance for "as probable as the observed table"
FISHER_GAMMA = 1e-14
#: |log P(k) - log P(observed)| below which the comparison is made exactly in integers
_NEAR = 1e-9


def _fisher_exact_tie(m: int, big: int, n1: int, k: int, x1: int) -> tuple[bool, float]:
    """(counted?, P(k) / P(x1)) for a table within rounding of the observed one, in integers."""
    a = math.comb(m, k) * math.comb(big - m, n1 - k)
    b = math.comb(m, x1) * math.comb(big - m, n1 - x1)
    # counted when P(k) <= P(x1) (1 + gamma), with gamma = 1e-14 = 1 / 10**14
    return a * 10**14 <= b * (10**14 + 1), a / b


def fisher_2x2(x1, n1, x0, n0) -> np.ndarray:
    """Two-sided Fisher exact p-values of the 2 x 2 tables [[n0 - x0, x0], [n1 - x1, x1]].

    Given the margins, X = x1 (events in arm 1) is hypergeometric: m = x0 + x1 events among
    N = n0 + n1, n1 drawn. p = sum_k P(k) [P(k) <= P(x1) (1 + 1e-14)], p = 1 for a table with an
    empty row or column (as scipy). Vectorised over tables (arrays of equal shape).
    """
    x1, n1, x0, n0 = (np.atleast_1d(np.asarray(a, dtype=np.int64)) for a in (x1, n1, x0, n0))
    big = n0 + n1
    m = x0 + x1
    p = np.ones(x1.shape)
    live = (m > 0) & (m < big) & (n0 > 0) & (n1 > 0)
    if not live.any():
        return p
    idx = np.flatnonzero(live)
    big_l, m_l, n1_l, x1_l = big[idx], m[idx], n1[idx], x1[idx]
    lo = np.maximum(0, n1_l - (big_l - m_l))
    hi = np.minimum(m_l, n1_l)
    width = int((hi - lo).max()) + 1
    k = lo[:, None] + np.arange(width)[None, :]
    valid = k <= hi[:, None]
    kk = np.where(valid, k, lo[:, None])
    lf = gammaln(np.arange(int(big_l.max()) + 1) + 1.0)  # log k!

    def logq(j, mm, nn1, bb):  # log C(m, j) C(N - m, n1 - j) up to a constant per table
        return -(lf[j] + lf[mm - j] + lf[nn1 - j] + lf[bb - mm - nn1 + j])

    lq = logq(kk, m_l[:, None], n1_l[:, None], big_l[:, None])
    lq_obs = logq(x1_l, m_l, n1_l, big_l)
    d = lq - lq_obs[:, None]
    counted = valid & (d <= FISHER_GAMMA)
    r = np.where(valid, np.exp(lq - np.where(valid, lq, -np.inf).max(axis=1)[:, None]), 0.0)
    near = valid & (np.abs(d) < _NEAR) & (kk != x1_l[:, None])
    for t, j in zip(*np.nonzero(near)):  # rare: tables as probable as the observed one
        counted[t, j], _ = _fisher_exact_tie(
            int(m_l[t]), int(big_l[t]), int(n1_l[t]), int(kk[t, j]), int(x1_l[t])
        )
    num = np.where(counted, r, 0.0).sum(axis=1)
    p[idx] = np.minimum(num / r.sum(axis=1), 1.0)
    return p


def chi2_2x2(x1, n1, x0, n0) -> tuple[np.ndarray, np.ndarray]:
    """(Pearson statistic, smallest expected count) of the 2 x 2 tables [[n0 - x0, x0],
    [n1 - x1, x1]] (no continuity correction), by the cell order of ``design.table_test``."""
    x1, n1, x0, n0 = (np.asarray(a, dtype=np.int64) for a in (x1, n1, x0, n0))
    t = np.stack([n0 - x0, x0, n1 - x1, x1], axis=-1)
    rows = (n0, n0, n1, n1)
    cols = (n0 - x0 + n1 - x1, x0 + x1, n0 - x0 + n1 - x1, x0 + x1)
    big = n0 + n1
    stat = np.zeros(x1.shape)
    emin = np.full(x1.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 for a degenerate table
        for j in range(4):
            e = (rows[j] * cols[j]) / big
            stat = stat + (t[..., j] - e) ** 2 / e
            emin = np.minimum(emin, e)
    return stat, emin


def two_by_two(x1, n1, x0, n0, alpha: float, ci: str, rule: str):
    """Risk differences p1 - p0 of many 2 x 2 tables: (rd, Wald SE, CI low, CI high, p).

    The numbers of ``design.binary_row`` for each table: unpooled Wald SE, Newcombe hybrid score
    (``ci="newcombe"``) or Wald CI at level 1 - alpha, p by ``rule`` (``study``: Fisher when an
    expected count is < 5, else chi-square; ``chi2``; ``fisher``); a table without events, or
    with events only, has p = 1. Counts as arrays of equal shape; every n1, n0 > 0.
    """
    x1, n1, x0, n0 = (np.atleast_1d(np.asarray(a, dtype=np.int64)) for a in (x1, n1, x0, n0))
    p1, p0 = x1 / n1, x0 / n0
    rd = p1 - p0
    se = np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    z = ndtri(1 - alpha / 2)
    if ci == "newcombe":
        l1, u1 = wilson(x1, n1, z)
        l0, u0 = wilson(x0, n0, z)
        lo = rd - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
        hi = rd + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    else:
        lo, hi = rd - z * se, rd + z * se
    m = x1 + x0
    degenerate = (m == 0) | (m == n1 + n0)
    stat, emin = chi2_2x2(x1, n1, x0, n0)
    fisher = np.full(x1.shape, rule == "fisher") | ((rule == "study") & (emin < 5))
    fisher &= ~degenerate
    p = np.where(degenerate, 1.0, chdtrc(1.0, np.where(degenerate, 0.0, stat)))
    if fisher.any():
        p[fisher] = fisher_2x2(x1[fisher], n1[fisher], x0[fisher], n0[fisher])
    return rd, se, lo, hi, p


def wilson(x, n, z):
    """Wilson score interval(s) for x / n (no continuity correction), vectorised."""
    p = x / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.maximum(centre - half, 0.0), np.minimum(centre + half, 1.0)


def table_test(table, rule: str, rng, n_resamples: int) -> tuple[float, float, str]:
    """``design.table_test`` for one 2 x K table without scipy.stats for chi-square and 2 x 2
    Fisher (the same numbers); Fisher-Freeman-Halton beyond 2 x 2 is scipy's Monte Carlo test
    drawing from ``rng``, as the reference."""
    t = np.asarray(table, dtype=np.int64)
    t = t[t.sum(axis=1) > 0][:, t.sum(axis=0) > 0]
    if t.ndim != 2 or min(t.shape) < 2:
        return 1.0, 0.0, "degenerate table"
    n = t.sum()
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    use_fisher = rule == "fisher" or (rule == "study" and expected.min() < 5)
    if not use_fisher:
        return float(chdtrc((t.shape[0] - 1) * (t.shape[1] - 1), chi2)), chi2, "chi-square"
    if t.shape == (2, 2):
        p = fisher_2x2(t[1, 1], t[1, 0] + t[1, 1], t[0, 1], t[0, 0] + t[0, 1])
        return float(p[0]), chi2, "Fisher exact"
    if rng is None:
        rng = np.random.default_rng(0)
    method = stats.MonteCarloMethod(n_resamples=n_resamples, rng=rng)
    return float(stats.fisher_exact(t, method=method).pvalue), chi2, "Fisher exact (Monte Carlo)"
