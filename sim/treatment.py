"""Treatment assignment: confounding by indication through a propensity model.

logit P(A = 1 | x, U) = a0 + strength * (u_effect * U + sum_k gamma_k * x_k), x centred.
``a0`` is solved (bisection on a fixed large covariate sample) so that E[P(A = 1)] equals
``treatment.allocation``. With ``strength == 0`` the design is randomized with that allocation:
``scheme: complete`` treats exactly round(n * allocation) patients, ``bernoulli`` each with
probability ``allocation``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from palliasim.sim.covariates import ECOG_CENTRE, NRS_CENTRE


def propensity_score(p: dict, cov: dict) -> np.ndarray:
    """The confounding part of the propensity log-odds (without the intercept)."""
    c = p["confounding"]
    m = c["measured"]
    lp = c["u_effect"] * cov["U"]
    lp = lp + m["ecog"] * (cov["ecog"] - ECOG_CENTRE) + m["visceral"] * cov["visceral"]
    lp = lp + m["nrs0"] * (cov["nrs0"] - NRS_CENTRE) + m["strong_opioid"] * cov["strong_opioid"]
    return c["strength"] * lp


def solve_intercept(p: dict, score_sample: np.ndarray) -> float:
    """a0 with mean(expit(a0 + score)) == allocation on the given sample."""
    target = p["treatment"]["allocation"]
    if not np.any(score_sample):
        return float(logit(target))
    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if expit(mid + score_sample).mean() > target:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def _smallest(u: np.ndarray, k: int) -> np.ndarray:
    """int8 indicator of the ``k`` smallest ``u`` (ties by position: the first ``k`` of a stable
    argsort), by an O(n) partition unless the k-th value is tied (then the stable sort)."""
    n = u.shape[0]
    a = np.zeros(n, dtype=np.int8)
    if k <= 0:
        return a
    if k >= n:
        a[:] = 1
        return a
    kth = np.partition(u, k - 1)[k - 1]
    below = u <= kth
    if np.count_nonzero(below) == k:
        a[below] = 1
    else:
        a[np.argsort(u, kind="stable")[:k]] = 1
    return a


def assign(p: dict, cov: dict, a0: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """Treatment indicator (1 = observation group), int8."""
    t = p["treatment"]
    u = rng.random(n)
    if p["confounding"]["strength"] == 0 and t["scheme"] == "complete":
        n1 = int(round(n * t["allocation"]))
        return _smallest(u, n1)
    prob = expit(a0 + propensity_score(p, cov))
    return (u < prob).astype(np.int8)
