"""The terminal text of a power study: the power table and one line per (endpoint, method,
target power) with the required n next to the formula's."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from palliasim.experiments.planning.table import pretty


def _fmt_n(x) -> str:
    if x is None or not np.isfinite(x):
        return "not reached" if x == np.inf else "n/a"
    return f"{math.ceil(x):,}"


def summary_lines(sizes, tab, alt_name, info) -> list[str]:
    lines = []
    kinds = {m: i["kind"] for m, i in info.items()}
    for _, r in sizes.iterrows():
        mn = tab.loc[
            (tab["method"] == r["method"]) & (tab["endpoint"] == r["endpoint"]), "method_name"
        ]
        mname = mn.iloc[0] if len(mn) else r["method"]
        lab = pretty(r["endpoint"], r["method"], kinds.get(mname), r["estimand"] or None)
        pct = f"{round(r['target_power'] * 100):d}%"
        fn = r["formula_method"].split(" (")[0] if r["formula_method"] else "formula"
        if r["how"] == "formula only":
            lines.append(f"{lab}: {pct} power at n = {_fmt_n(r['formula_n'])} (formula only: {fn})")
            continue
        where = ""
        if str(r["how"]).startswith("extrapolated"):
            where = f"; {r['how']} {r['grid_min']:,}-{r['grid_max']:,}"
        elif str(r["how"]).startswith("not"):
            where = f"; {r['how']}"
        ci = f"95% CI {_fmt_n(r['ci_low'])}-{_fmt_n(r['ci_high'])}"
        lines.append(
            f"{lab}: {pct} power at n = {_fmt_n(r['n_required'])} ({ci}{where}); "
            f"{fn}: {_fmt_n(r['formula_n'])}"
        )
    return lines


def _num(x, d=3):
    return "" if x is None or not np.isfinite(x) else f"{x:.{d}f}"


def format_table(tab: pd.DataFrame, max_rows: int) -> str:
    d = tab[tab["reps"] > 0]
    cols = ["scenario", "endpoint", "method", "n", "reps", "power", "95% CI", "formula", "type I"]
    rows = []
    for _, r in d.iterrows():
        rows.append(
            [
                r["scenario"],
                r["endpoint"],
                r["method"],
                f"{int(r['n'])}",
                f"{int(r['reps'])}",
                _num(r["power"]),
                f"{_num(r['ci_low'])}-{_num(r['ci_high'])}",
                _num(r["analytic_power"]),
                _num(r.get("type1", np.nan)),
            ]
        )
    w = [max(len(c), *(len(x[i]) for x in rows)) if rows else len(c) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w[i]) for i, c in enumerate(cols))]
    for x in rows[:max_rows]:
        out.append("  ".join(v.ljust(w[i]) for i, v in enumerate(x)))
    if len(rows) > max_rows:
        out.append(f"... {len(rows) - max_rows} more rows in power.csv")
    return "\n".join(out)


def disagreements(tab, sizes, alt_name: str, first_target: float) -> list[str]:
    """One line per curve where simulation and formula disagree at the grid points, or where
    the formula's n lies outside the simulated n's CI (at the first target power)."""
    dis = tab[(tab["scenario"] == alt_name) & (tab["reps"] > 0)].drop_duplicates(
        ["endpoint", "method"]
    )
    s0 = sizes[sizes["target_power"] == first_target].set_index(["endpoint", "method"])
    lines = []
    for _, r in dis.iterrows():
        grid_gap = "they disagree" in r["explanation"]
        n_gap = False
        if (r["endpoint"], r["method"]) in s0.index:
            z = s0.loc[(r["endpoint"], r["method"])]
            n_gap = bool(
                np.isfinite(z["formula_n"]) and not z["ci_low"] <= z["formula_n"] <= z["ci_high"]
            )
        if grid_gap or n_gap:
            first = r["explanation"].split(". Assumptions: ")[0]
            flag = " [required n differs]" if n_gap else ""
            lines.append(f"{r['endpoint']}, {r['method']}{flag}: {first}")
    return lines


def type1_line(tab, null_name: str) -> str:
    """The range of the simulated type I error and the cell farthest from the nominal level."""
    t1 = tab[tab["scenario"] == null_name]
    if not len(t1):
        return ""
    worst = t1.loc[(t1["power"] - t1["analytic_power"]).abs().idxmax()]
    return (
        f"Type I error ('{null_name}'): {t1['power'].min():.3f}-{t1['power'].max():.3f} "
        f"over {len(t1)} (method, n) cells; farthest from the nominal level: "
        f"{worst['endpoint']}, {worst['method']}, n = {int(worst['n'])}: "
        f"{worst['power']:.3f} (95% CI {worst['ci_low']:.3f}-{worst['ci_high']:.3f}) vs "
        f"{worst['analytic_power']:.4g}"
    )
