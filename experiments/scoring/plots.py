"""Plots of a simulation study (PNG files, Agg canvas, no display and no pyplot state).

Every function draws on its own :class:`matplotlib.figure.Figure` (never the global pyplot
state, so it is safe in threads and never changes the user's backend), writes a PNG to ``out``
and returns its :class:`~pathlib.Path`.

* :func:`plot_bias` - bias +/- 1.96 MCSE per scenario and method, one panel per estimand;
* :func:`plot_rejection` - rejection rate (type I error / power) +/- 1.96 MCSE, line at alpha;
* :func:`plot_coverage` - coverage +/- 1.96 MCSE, line at 1 - alpha;
* :func:`plot_zip` - the zip plot of Morris, White & Crowther (2019): each replication's CI,
  ranked by the fractional centile of |z| = |est - true| / se, coloured by coverage, with the
  nominal level and the Monte Carlo 95% interval of the estimated coverage;
* :func:`plot_nested_loop` - the nested-loop plot of Rücker & Schwarzer (2014): scenarios
  ordered lexicographically by the factors on the x axis, one step line per method, the factor
  levels as step lines underneath;
* :func:`plot_example_cohort` - Kaplan-Meier curves of PFS and OS by group and NRS trajectories
  (30 patients + group means by week) of one simulated cohort.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

__all__ = [
    "plot_bias",
    "plot_coverage",
    "plot_example_cohort",
    "plot_nested_loop",
    "plot_rejection",
    "plot_zip",
]

Z95 = 1.959963984540054
GROUP_LABELS = {0: "control", 1: "observation"}
GROUP_COLORS = {0: "tab:blue", 1: "tab:orange"}
MAX_PANELS = 12


def _save(fig: Figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _alpha_of(perf: pd.DataFrame, default: float = 0.05) -> float:
    if "alpha" in perf.columns and len(perf) and np.isfinite(perf["alpha"].iloc[0]):
        return float(perf["alpha"].iloc[0])
    return default


def _empty(out: str | Path, message: str) -> Path:
    fig = Figure(figsize=(6, 2))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return _save(fig, out)


# --------------------------------------------------------------------------------------------
# dot plots with MCSE bars (bias, rejection, coverage)
# --------------------------------------------------------------------------------------------
def _dot_panels(
    perf: pd.DataFrame, out, measure: str, ref, xlabel: str, title: str, max_panels: int, xlim=None
) -> Path:
    mcse = f"{measure}_mcse"
    d = perf[np.isfinite(pd.to_numeric(perf[measure], errors="coerce"))]
    if d.empty:
        return _empty(out, f"no finite {measure} to plot")
    estimands = list(dict.fromkeys(d["estimand"]))
    shown = estimands[:max_panels]
    scen = list(dict.fromkeys(d["scenario"])) if "scenario" in d else ["all"]
    methods = list(dict.fromkeys(d["method"]))
    colors = dict(zip(methods, _colors(len(methods))))
    ncols = min(3, len(shown))
    nrows = int(np.ceil(len(shown) / ncols))
    height = max(2.2, 0.32 * len(scen) * max(1, len(methods)) ** 0.5 + 1.2)
    fig = Figure(figsize=(4.6 * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    step = 0.8 / max(len(methods), 1)
    labelled: set = set()
    for i, est in enumerate(shown):
        ax = axes[i // ncols][i % ncols]
        sub = d[d["estimand"] == est]
        for j, m in enumerate(methods):
            sm = sub[sub["method"] == m]
            if sm.empty:
                continue
            y = (
                np.array([scen.index(s) for s in sm["scenario"]])
                if "scenario" in sm
                else np.zeros(len(sm))
            )
            y = y - 0.4 + step * (j + 0.5)
            x = sm[measure].to_numpy(float)
            err = Z95 * sm[mcse].to_numpy(float) if mcse in sm else None
            if err is not None:
                err = np.where(np.isfinite(err), err, 0.0)
            ax.errorbar(
                x,
                y,
                xerr=err,
                fmt="o",
                ms=4,
                capsize=2,
                color=colors[m],
                label=None if m in labelled else m,
            )
            labelled.add(m)
        for r in np.atleast_1d(ref if ref is not None else []):
            ax.axvline(r, color="0.4", lw=0.9, ls="--")
        ax.set_yticks(range(len(scen)))
        ax.set_yticklabels(scen if (i % ncols == 0) else [""] * len(scen), fontsize=8)
        ax.set_ylim(len(scen) - 0.5, -0.5)
        ax.set_title(est, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.grid(axis="x", color="0.9")
    for k in range(len(shown), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    more = (
        f" (first {max_panels} of {len(estimands)} estimands)"
        if len(estimands) > max_panels
        else ""
    )
    fig.suptitle(title + more, fontsize=10)
    fig.legend(loc="outside lower center", ncols=min(len(methods), 5), fontsize=8, frameon=False)
    return _save(fig, out)


def plot_bias(perf: pd.DataFrame, out: str | Path, max_panels: int = MAX_PANELS) -> Path:
    """Bias with +/- 1.96 MCSE bars, per scenario (rows) and method (colours), one panel per
    estimand (at most ``max_panels``)."""
    return _dot_panels(
        perf,
        out,
        "bias",
        0.0,
        "bias (est - true), +/- 1.96 MCSE",
        "Bias by scenario and method",
        max_panels,
    )


def plot_rejection(perf: pd.DataFrame, out: str | Path, max_panels: int = MAX_PANELS) -> Path:
    """Rejection rate (type I error where the truth is 0, power otherwise) +/- 1.96 MCSE, with
    a dashed line at alpha."""
    a = _alpha_of(perf)
    return _dot_panels(
        perf,
        out,
        "rejection",
        a,
        f"rejection rate P(p <= {a:g}), +/- 1.96 MCSE",
        "Rejection rate by scenario and method",
        max_panels,
        xlim=(-0.03, 1.03),
    )


def plot_coverage(perf: pd.DataFrame, out: str | Path, max_panels: int = MAX_PANELS) -> Path:
    """Coverage of the CIs +/- 1.96 MCSE, with a dashed line at the nominal 1 - alpha."""
    a = _alpha_of(perf)
    return _dot_panels(
        perf,
        out,
        "coverage",
        1 - a,
        "coverage, +/- 1.96 MCSE",
        "Coverage by scenario and method",
        max_panels,
    )


# --------------------------------------------------------------------------------------------
# zip plot
# --------------------------------------------------------------------------------------------
def plot_zip(
    results: pd.DataFrame,
    perf: pd.DataFrame | None,
    out: str | Path,
    estimand: str,
    method: str,
    scenario: str | None = None,
) -> Path:
    """Zip plot (Morris et al. 2019, Fig. 4) of one method, estimand and scenario.

    Each usable replication's CI is a horizontal line at the fractional centile of its |z|,
    ``z = (est - true) / se`` (rank / n x 100): intervals that cover the truth in blue, the others
    in red. The vertical line is the truth; the dashed horizontal line is the nominal
    100 (1 - alpha); the grey band is the estimated coverage +/- 1.96 MCSE (from ``perf`` when
    it has the row, else from the replications). Failed replications are left out.
    """
    sel = (results["estimand"] == estimand) & (results["method"] == method)
    if scenario is not None and "scenario" in results:
        sel &= results["scenario"] == scenario
    r = results[sel]
    ok = (
        (r["status"] != "failed")
        & np.isfinite(r["estimate"])
        & np.isfinite(r["se"])
        & (r["se"] > 0)
        & np.isfinite(r["ci_low"])
        & np.isfinite(r["ci_high"])
    )
    r = r[ok]
    if r.empty or not np.isfinite(r["true"]).any():
        return _empty(
            out, f"zip plot: no usable replications (or no truth) for {method} / {estimand}"
        )
    theta = float(r["true"].dropna().iloc[0])
    z = ((r["estimate"] - theta) / r["se"]).abs().to_numpy(float)
    order = np.argsort(z, kind="mergesort")
    n = len(z)
    centile = np.empty(n)
    centile[order] = 100.0 * np.arange(1, n + 1) / n
    lo, hi = r["ci_low"].to_numpy(float), r["ci_high"].to_numpy(float)
    covers = (lo <= theta) & (theta <= hi)

    alpha = 0.05
    cov = mc = None
    if perf is not None and len(perf):
        p = perf[(perf["estimand"] == estimand) & (perf["method"] == method)]
        if scenario is not None and "scenario" in p:
            p = p[p["scenario"] == scenario]
        if len(p):
            cov, mc = float(p["coverage"].iloc[0]), float(p["coverage_mcse"].iloc[0])
            alpha = _alpha_of(p)
    if cov is None or not np.isfinite(cov):
        cov = float(covers.mean())
        mc = float(np.sqrt(cov * (1 - cov) / n))

    fig = Figure(figsize=(5.5, 6), layout="constrained")
    ax = fig.add_subplot()
    segs = np.stack([np.column_stack([lo, centile]), np.column_stack([hi, centile])], axis=1)
    colors = np.where(covers, "tab:blue", "tab:red")
    lw = 1.2 if n <= 200 else 0.6
    ax.add_collection(LineCollection(segs, colors=list(colors), linewidths=lw))
    if np.isfinite(mc):
        ax.axhspan(
            100 * (cov - Z95 * mc),
            100 * min(cov + Z95 * mc, 1.0),
            color="0.6",
            alpha=0.35,
            lw=0,
            label=f"coverage {100 * cov:.1f}% +/- 1.96 MCSE",
        )
    ax.axhline(100 * (1 - alpha), color="k", ls="--", lw=1, label=f"nominal {100 * (1 - alpha):g}%")
    ax.axvline(theta, color="k", lw=1, label=f"true = {theta:.4g}")
    qlo, qhi = np.quantile(lo, 0.005), np.quantile(hi, 0.995)
    pad = 0.05 * (qhi - qlo if qhi > qlo else 1.0)
    ax.set_xlim(min(qlo, theta) - pad, max(qhi, theta) + pad)
    ax.set_ylim(0, 100.5)
    ax.set_xlabel(f"{int(round(100 * (1 - alpha)))}% confidence interval")
    ax.set_ylabel("fractional centile of |z|")
    ax.set_title(
        f"Zip plot: {method} / {estimand}" + (f"\n{scenario}" if scenario else ""), fontsize=9
    )
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, out)


# --------------------------------------------------------------------------------------------
# nested-loop plot
# --------------------------------------------------------------------------------------------
_REFERENCE = {"bias": 0.0, "rel_bias": 0.0, "relerror": 0.0}


def _levels(values: pd.Series) -> list:
    u = list(dict.fromkeys(values.tolist()))
    try:
        return sorted(u)
    except TypeError:
        return sorted(u, key=str)


def plot_nested_loop(
    perf: pd.DataFrame,
    factor_cols: Sequence[str],
    out: str | Path,
    estimand: str,
    measure: str = "bias",
) -> Path:
    """Nested-loop plot (Rücker & Schwarzer 2014) of one measure for one estimand.

    The x axis runs over the scenarios ordered lexicographically by ``factor_cols`` (first
    factor outermost); each method is a step line (with a +/- 1.96 MCSE band when the measure
    has one); below, one step line per factor shows its level in each scenario.
    """
    d = perf[perf["estimand"] == estimand].copy()
    if d.empty:
        return _empty(out, f"nested-loop plot: no rows for estimand {estimand}")
    factor_cols = [c for c in factor_cols if c in d.columns]
    levels = {c: _levels(d[c]) for c in factor_cols}
    keys = list(factor_cols) + (["scenario"] if "scenario" in d else [])
    sc = d[keys].drop_duplicates()
    for c in factor_cols:
        sc[f"_l_{c}"] = [levels[c].index(v) for v in sc[c]]
    sc = sc.sort_values(
        [f"_l_{c}" for c in factor_cols] + (["scenario"] if "scenario" in sc else []),
        kind="mergesort",
    ).reset_index(drop=True)
    K = len(sc)
    pos_key = keys
    sc["_x"] = np.arange(K)
    d = d.merge(sc[[*pos_key, "_x"]], on=pos_key, how="left")

    methods = list(dict.fromkeys(d["method"]))
    colors = dict(zip(methods, _colors(len(methods))))
    fig = Figure(figsize=(max(6.0, min(16.0, 0.35 * K + 4)), 5.5), layout="constrained")
    ax = fig.add_subplot()
    xs = np.arange(K + 1)
    vals_all = []
    band_all = []
    mcse_col = f"{measure}_mcse"
    for m in methods:
        sm = d[d["method"] == m].sort_values("_x")
        y = np.full(K, np.nan)
        y[sm["_x"].to_numpy(int)] = sm[measure].to_numpy(float)
        yy = np.append(y, y[-1])
        ax.step(xs, yy, where="post", color=colors[m], lw=1.6, label=m)
        vals_all.append(y)
        if mcse_col in sm:
            e = np.full(K, np.nan)
            e[sm["_x"].to_numpy(int)] = Z95 * sm[mcse_col].to_numpy(float)
            ee = np.append(e, e[-1])
            ax.fill_between(xs, yy - ee, yy + ee, step="post", color=colors[m], alpha=0.15, lw=0)
            band_all += [y - e, y + e]
    ref = _REFERENCE.get(measure)
    if measure == "coverage":
        ref = 1 - _alpha_of(d)
    elif measure == "rejection":
        ref = _alpha_of(d)
    if ref is not None:
        ax.axhline(ref, color="0.3", ls="--", lw=0.9)
    v = np.concatenate(vals_all + band_all) if vals_all else np.array([0.0])
    v = v[np.isfinite(v)]
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
    if ref is not None:
        lo, hi = min(lo, ref), max(hi, ref)
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    band, gap = 0.22 * span, 0.1 * span
    top = lo - gap
    for c in factor_cols:
        L = len(levels[c])
        base = top - band
        y = base + (sc[f"_l_{c}"].to_numpy(float) / max(L - 1, 1)) * band * 0.8
        ax.step(xs, np.append(y, y[-1]), where="post", color="0.35", lw=1.0)
        lv = ", ".join(str(x) for x in levels[c][:6]) + (" ..." if L > 6 else "")
        ax.text(0.0, top - 0.05 * band, f"{c}: {lv}", fontsize=7, va="top", ha="left", color="0.2")
        top = base - gap
    ax.set_ylim(top, hi + 0.08 * span)
    ax.set_yticks([t for t in ax.get_yticks() if lo - 0.5 * gap <= t <= hi + 0.08 * span])
    ax.set_xlim(0, K)
    ax.set_xticks([])
    ax.set_xlabel(f"{K} scenarios, ordered by " + (" > ".join(factor_cols) or "label"))
    ax.set_ylabel(measure)
    ax.set_title(f"Nested-loop plot: {measure} of {estimand}", fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, out)


# --------------------------------------------------------------------------------------------
# example cohort
# --------------------------------------------------------------------------------------------
def _km_panel(ax, patients: pd.DataFrame, time_col: str, event_col: str, title: str) -> None:
    from lifelines import KaplanMeierFitter

    for g in sorted(pd.unique(patients["group"])):
        sub = patients[patients["group"] == g]
        t = sub[time_col].to_numpy(float)
        e = sub[event_col].to_numpy(float)
        keep = np.isfinite(t) & np.isfinite(e)
        if keep.sum() == 0:
            continue
        kmf = KaplanMeierFitter().fit(t[keep], e[keep].astype(bool))
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_survival_function_
        col = GROUP_COLORS.get(int(g), None)
        ax.step(
            sf.index,
            sf.to_numpy(),
            where="post",
            color=col,
            label=f"{GROUP_LABELS.get(int(g), g)} (n={int(keep.sum())})",
        )
        ax.fill_between(
            ci.index, ci.iloc[:, 0], ci.iloc[:, 1], step="post", color=col, alpha=0.15, lw=0
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("months")
    ax.set_ylabel("survival probability")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def plot_example_cohort(cohort, out: str | Path, n_patients: int = 30, seed: int = 0) -> Path:
    """Kaplan-Meier curves of PFS and OS by group and NRS trajectories of one cohort.

    The NRS panel shows ``n_patients`` randomly chosen patients (thin lines, observed visits
    only) and the mean observed NRS per group and week (thick lines).
    """
    patients, visits = cohort.patients, cohort.visits
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    axes = fig.subplots(1, 3)
    _km_panel(axes[0], patients, "pfs_months", "pfs_event", "Progression-free survival")
    _km_panel(axes[1], patients, "os_months", "os_event", "Overall survival")
    ax = axes[2]
    ids = pd.unique(visits["id"])
    rng = np.random.default_rng(seed)
    pick = set(rng.choice(ids, size=min(n_patients, len(ids)), replace=False).tolist())
    sub = visits[visits["id"].isin(pick) & visits["nrs"].notna()]
    for _, v in sub.groupby("id", sort=True):
        g = int(v["group"].iloc[0])
        ax.plot(v["week"], v["nrs"], color=GROUP_COLORS.get(g), alpha=0.3, lw=0.8)
    means = visits[visits["nrs"].notna()].groupby(["group", "week"])["nrs"].mean().reset_index()
    for g, m in means.groupby("group"):
        ax.plot(
            m["week"],
            m["nrs"],
            color=GROUP_COLORS.get(int(g)),
            lw=2.6,
            marker="o",
            label=f"{GROUP_LABELS.get(int(g), g)}: mean of observed",
        )
    ax.set_ylim(-0.3, 10.3)
    ax.set_xlabel("week")
    ax.set_ylabel("NRS pain (0-10)")
    ax.set_title(f"NRS trajectories ({len(pick)} patients) and group means", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(f"Example cohort (n={len(patients)})", fontsize=11)
    return _save(fig, out)
