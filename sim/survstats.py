"""Small exact survival summaries used by the truth and the calibration (numpy only).

- ``km_median(time, event)``: Kaplan-Meier median, the smallest t with S(t) <= 0.5 (inf if never).
- ``km_rmst(time, event, horizon)``: area under the Kaplan-Meier curve up to ``horizon``.
- ``cox_loghr(time, event, x)``: Cox partial-likelihood estimate for covariates ``x`` (n, p),
  Newton-Raphson with Breslow's handling of ties (exact for continuous times), returning the
  coefficients and their model-based SE; ValueError when there is no event, the information
  is singular or Newton-Raphson does not converge (e.g. events in one arm only).
"""

from __future__ import annotations

import numpy as np

from palliasim.sim.sorting import stable_argsort


def km_curve(time: np.ndarray, event: np.ndarray):
    order = stable_argsort(time)
    t, d = time[order], event[order].astype(float)
    uniq, first = np.unique(t, return_index=True)
    deaths = np.add.reduceat(d, first)
    at_risk = t.shape[0] - first
    surv = np.cumprod(1.0 - deaths / at_risk)
    return uniq, surv


def km_median(time, event) -> float:
    t, s = km_curve(np.asarray(time, float), np.asarray(event))
    idx = np.flatnonzero(s <= 0.5)
    return float(t[idx[0]]) if idx.size else float("inf")


def km_rmst(time, event, horizon: float) -> float:
    t, s = km_curve(np.asarray(time, float), np.asarray(event))
    keep = t < horizon
    knots = np.concatenate([[0.0], t[keep], [horizon]])
    vals = np.concatenate([[1.0], s[keep]])
    return float(np.sum(vals * np.diff(knots)))


def cox_loghr(time, event, x, max_iter: int = 50, tol: float = 1e-10):
    """Breslow Cox fit; returns (beta, se). ``x`` of shape (n,) or (n, p)."""
    x = np.asarray(x, float)
    if x.ndim == 1:
        x = x[:, None]
    order = stable_argsort(-np.asarray(time, float))  # decreasing time: risk sets grow
    t = np.asarray(time, float)[order]
    d = np.asarray(event, bool)[order]
    X = x[order]
    X = X - X.mean(axis=0)
    if not d.any():
        raise ValueError("no events: the Cox partial likelihood is flat")
    # tie groups: last index of each tied block in decreasing order gives the full risk set
    _, inv_first = np.unique(-t, return_index=True)
    last = np.append(inv_first[1:] - 1, t.shape[0] - 1)
    grp_of = np.searchsorted(inv_first, np.arange(t.shape[0]), side="right") - 1
    p = X.shape[1]
    end = last[grp_of]  # row i's risk set: rows 0..end[i] (decreasing time, ties included)
    beta = np.zeros(p)
    converged = False
    for _ in range(max_iter):
        w = np.exp(X @ beta)
        s0 = np.cumsum(w)[end]
        s1 = np.cumsum(w[:, None] * X, axis=0)[end]
        xbar = s1[d] / s0[d][:, None]
        grad = (X[d] - xbar).sum(axis=0)
        # sum over events i of S2_i / S0_i = sum_j w_j c_j x_j x_j', c_j = sum of 1 / S0_i over
        # the events whose risk set holds j (end[i] >= j): a reverse cumulative sum, so no
        # (n, p, p) array is ever built
        c = np.cumsum(np.bincount(end[d], weights=1.0 / s0[d], minlength=t.shape[0])[::-1])[::-1]
        info = (X * (w * c)[:, None]).T @ X - xbar.T @ xbar
        if not np.all(np.isfinite(info)) or np.linalg.matrix_rank(info) < p:
            raise ValueError("singular information matrix in the Cox fit")
        step = np.linalg.solve(info, grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    if not converged:
        raise ValueError(f"the Cox fit did not converge in {max_iter} iterations")
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    return beta, se
