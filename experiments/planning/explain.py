"""Where simulation and formula disagree, which assumption explains it and by how much (each
assumption's effect on the formula's power, averaged over the grid)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from palliasim.experiments.planning.formula_choice import Formula


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


def explain_table(tab, formulas, projections, truth_alt, extra, alt_name: str, note: str = ""):
    """Fill the ``explanation`` column of the power table in place: per (endpoint, method) curve
    of the alternative, :func:`explain` (with ``note`` appended); for formula-only rows, each
    assumption's effect on the formula's power."""
    curves = tab[(tab["scenario"] == alt_name) & (tab["reps"] > 0)]
    for _key, d in curves.groupby(["endpoint", "method"], sort=False):
        key = (d["method_name"].iloc[0], d["estimand"].iloc[0])
        f = formulas.get(key)
        if f is None:
            continue
        tv = float(truth_alt[key[1]]) if key[1] in truth_alt else None
        text, _ = explain(d, f, projections.get(key), tv)
        tab.loc[d.index, "explanation"] = text + (f". {note}" if note else "")
    for label, ep, f, _ns in extra:
        idx = tab.index[(tab["method"] == label) & (tab["endpoint"] == ep)]
        eff = {
            nm: float(np.nanmean(f.power(tab.loc[idx, "n"], inp) - f.power(tab.loc[idx, "n"])))
            for nm, (_t, inp) in f.variants.items()
        }
        tab.loc[idx, "explanation"] = "formula only (no simulated method); " + "; ".join(
            f"[{nm}, {eff[nm]:+.3f} power] {t}" for nm, (t, _i) in f.variants.items()
        )
    return tab
