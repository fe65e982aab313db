"""Power curves: one panel per endpoint (simulated power with its CI band, formula lines,
required n marked) and a panel of type I error."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from palliasim.experiments.planning.endpoints import ENDPOINT_LABELS, ENDPOINTS
from palliasim.experiments.planning.formula_choice import Formula


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
