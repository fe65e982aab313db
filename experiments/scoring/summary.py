"""The terminal summary of a performance table: headline estimands first, flags, ~30 lines.

Sections follow the study's endpoints (:data:`ENDPOINTS`: week-12 NRS, PFS HR, OS HR, week-12
response), then every other estimand; one line per method with bias (MCSE), coverage (MCSE),
empirical / model SE, rejection and the number of failed replications. The other estimands are
listed while the line budget lasts, flagged rows first; the rest is counted on one line (the full
table is performance.csv). Flags (:func:`flag_table`), each a Monte Carlo test at about 2 MCSE
*and* a practical tolerance, so that 10,000 replications do not flag a negligible bias:

* ``biased``: |bias| > 2 bias MCSE and |bias| > ``rel_tol`` x max(|true|, EmpSE);
* ``under-covers``: coverage < 1 - alpha - 2 sqrt(alpha (1 - alpha) / n) (the MCSE at the nominal
  level) and coverage < 1 - alpha - ``cover_tol``;
* ``model SE off``: |relative error of ModSE| > 2 MCSE and > ``se_tol`` percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["ENDPOINTS", "FLAG_NAMES", "flag_table", "format_summary", "order_rows"]

#: the study's headline estimands, grouped by endpoint, in reading order
ENDPOINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Pain NRS at week 12 (difference in means)", ("nrs_diff_w12",)),
    ("Progression-free survival (log hazard ratio)", ("pfs_loghr", "pfs_loghr_adj")),
    ("Overall survival (log hazard ratio)", ("os_loghr", "os_loghr_adj")),
    (
        "Pain response at week 12 (log odds ratio, risk difference)",
        (
            "response_logor",
            "response_rd",
            "response_logor_adj",
            "response_logor_nri",
            "response_rd_nri",
        ),
    ),
)
HEADLINE = tuple(e for _, names in ENDPOINTS for e in names)
FLAG_NAMES = ("biased", "under-covers", "model SE off")
REL_TOL = 0.10
COVER_TOL = 0.01
SE_TOL = 10.0
MAX_LINES = 30


def _f(df: pd.DataFrame, col: str) -> np.ndarray:
    return df[col].to_numpy(float) if col in df.columns else np.full(len(df), np.nan)


def flag_table(
    perf: pd.DataFrame,
    rel_tol: float = REL_TOL,
    cover_tol: float = COVER_TOL,
    se_tol: float = SE_TOL,
) -> pd.DataFrame:
    """Boolean columns ``biased``, ``under-covers``, ``model SE off`` aligned with ``perf``
    (NaN measures never flag); see the module docstring for the rules."""
    bias, mcse, true, empse = (_f(perf, c) for c in ("bias", "bias_mcse", "true", "empse"))
    cov = _f(perf, "coverage")
    alpha = _f(perf, "alpha")
    alpha = np.where(np.isnan(alpha), 0.05, alpha)
    count = perf["failures"].eq("count").to_numpy() if "failures" in perf else False
    n = np.where(count, _f(perf, "n_reps"), _f(perf, "n_used"))
    rel, rel_mcse = _f(perf, "relerror"), _f(perf, "relerror_mcse")
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.fmax(np.abs(true), empse)
        biased = (np.abs(bias) > 2 * mcse) & (np.abs(bias) > rel_tol * scale)
        # each row's own nominal level (a simultaneous CI has 1 - alpha / k), else 1 - alpha
        level = _f(perf, "ci_level")
        nominal = np.where(np.isnan(level), 1.0 - alpha, level)
        band = 2.0 * np.sqrt((1.0 - nominal) * nominal / n)
        under = (cov < nominal - band) & (cov < nominal - cover_tol)
        se_off = (np.abs(rel) > 2 * rel_mcse) & (np.abs(rel) > se_tol)
    return pd.DataFrame(
        {"biased": biased, "under-covers": under, "model SE off": se_off}, index=perf.index
    )


def order_rows(perf: pd.DataFrame) -> pd.DataFrame:
    """Rows with the headline estimands first (in :data:`ENDPOINTS` order), then the others in
    their order, methods in their order of appearance."""
    rank = {e: i for i, e in enumerate(HEADLINE)}
    key = perf["estimand"].map(lambda e: rank.get(e, len(HEADLINE)))
    return perf.assign(_k=key.to_numpy()).sort_values("_k", kind="stable").drop(columns="_k")


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------
def _num(x, digits: int = 3) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(x):
        return "-"
    if x != 0 and (abs(x) >= 10**5 or abs(x) < 10 ** (-digits)):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def _pm(est, mcse) -> str:
    e = _num(est)
    if e == "-":
        return "-"
    m = _num(mcse)
    return e if m == "-" else f"{e} ({m})"


def _clip(s, width: int) -> str:
    s = str(s)
    return s if len(s) <= width else s[: width - 1] + "~"


HEADERS = (
    "estimand",
    "method",
    "true",
    "bias (mcse)",
    "cover (mcse)",
    "emp/mod SE",
    "rej",
    "fail",
    "flags",
)
LEFT = {0, 1, 8}


def _cells(r: pd.Series, flags: pd.Series, method_label: str, first: bool) -> list[str]:
    return [
        _clip(r["estimand"], 22) if first else "",
        _clip(method_label, 26),
        _num(r.get("true")) if first else "",
        _pm(r.get("bias"), r.get("bias_mcse")),
        _pm(r.get("coverage"), r.get("coverage_mcse")),
        f"{_num(r.get('empse'))}/{_num(r.get('modse'))}",
        _num(r.get("rejection")),
        str(int(r["n_failed"])) if pd.notna(r.get("n_failed")) else "-",
        ", ".join(f for f in FLAG_NAMES if bool(flags[f])),
    ]


def _table_lines(rows: list[list[str] | str]) -> list[str]:
    """Fixed-width lines; a str entry is a section title printed as is."""
    widths = [len(h) for h in HEADERS]
    for row in rows:
        if not isinstance(row, str):
            widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def line(cells):
        return "  ".join(
            c.ljust(w) if i in LEFT else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    head = line(HEADERS)
    out = []
    for row in rows:
        if isinstance(row, str) and row.startswith("== ") and head not in out:
            out.append(row)  # the first scenario's title above the column headers
            continue
        if head not in out:
            out.append(head)
        out.append(row if isinstance(row, str) else line(row))
    return out


def _block(sub: pd.DataFrame, flags: pd.DataFrame, budget: int) -> tuple[list, int, int]:
    """Rows of one scenario within ``budget`` lines: headline sections, then the others
    (flagged first). Returns (rows, rows shown, flagged rows not shown)."""
    multi_engine = "engine" in sub.columns and sub.groupby("method")["engine"].nunique().gt(1).any()

    def label(r):
        return f"{r['method']} [{r['engine']}]" if multi_engine else str(r["method"])

    rows: list = []
    shown = 0
    for title, names in ENDPOINTS:
        part = sub[sub["estimand"].isin(names)]
        if part.empty:
            continue
        if len(rows) + 2 > budget:
            break
        rows.append(f"-- {title}")
        for est in names:
            first = True
            for i, r in part[part["estimand"] == est].iterrows():
                if len(rows) >= budget:
                    break
                rows.append(_cells(r, flags.loc[i], label(r), first))
                first = False
                shown += 1
    rest = sub[~sub["estimand"].isin(HEADLINE)]
    hidden_flagged = 0
    if len(rest):
        any_flag = flags.loc[rest.index].any(axis=1)
        order = list(rest.index[any_flag.to_numpy()]) + list(rest.index[~any_flag.to_numpy()])
        room = budget - len(rows) - 1
        if room >= 1:
            if len(rest) > room:
                room -= 1  # keep a line for the count of the rows left out
            take = order[: max(room, 0)]
            if take:
                title = "-- other estimands" if len(rest) < len(sub) else "-- estimands"
                rows.append(title + (" (flagged first)" if any_flag.any() else ""))
                prev = None
                for i in sorted(take, key=order.index):
                    r = sub.loc[i]
                    rows.append(_cells(r, flags.loc[i], label(r), r["estimand"] != prev))
                    prev = r["estimand"]
                    shown += 1
        hidden = [i for i in order if i not in set(order[: max(room, 0)])]
        hidden_flagged = int(flags.loc[hidden].any(axis=1).sum()) if hidden else 0
    return rows, shown, hidden_flagged


def format_summary(
    perf: pd.DataFrame,
    by: Sequence[str] | None = None,
    max_lines: int = MAX_LINES,
    rel_tol: float = REL_TOL,
    cover_tol: float = COVER_TOL,
    se_tol: float = SE_TOL,
) -> str:
    """The short terminal summary of ``perf`` (the output of ``summarise``), at most about
    ``max_lines`` lines, grouped by scenario (``scenario`` or the ``by`` columns)."""
    if perf is None or len(perf) == 0:
        return "(no results)"
    perf = perf.reset_index(drop=True)
    flags = flag_table(perf, rel_tol, cover_tol, se_tol)
    if "scenario" in perf.columns:
        group_cols = ["scenario"]
    else:
        group_cols = [c for c in (by or []) if c in perf.columns]
    if group_cols:
        labels = perf[group_cols].astype(str).agg(", ".join, axis=1)
    else:
        labels = pd.Series("", index=perf.index)
    groups = list(dict.fromkeys(labels))
    footer = 4  # the column headers and three lines of totals and legend
    budget = max(max_lines - footer, 6)
    rows: list = []
    shown = hidden_flagged = 0
    for gi, g in enumerate(groups):
        sub = order_rows(perf[labels == g])
        room = budget - len(rows) - (1 if g else 0)
        if room < 4:
            rest = perf[labels.isin(groups[gi:])]
            hidden_flagged += int(flags.loc[rest.index].any(axis=1).sum())
            rows.append(f"== {len(groups) - gi} more scenario(s) not shown ==")
            break
        if g:
            rows.append(f"== {g} ==")
        block, n_shown, n_hf = _block(sub, flags, room)
        rows.extend(block)
        shown += n_shown
        hidden_flagged += n_hf
    lines = _table_lines(rows)
    n_flag = flags.sum()
    left = len(perf) - shown
    total = ", ".join(f"{int(n_flag[f])} {f}" for f in FLAG_NAMES)
    lines.append(
        f"{len(perf)} rows: {total}"
        + (
            f"; {left} row(s) not shown ({hidden_flagged} flagged): see performance.csv"
            if left
            else ""
        )
    )
    pol = perf["failures"].iloc[0] if "failures" in perf else "?"
    alpha = float(perf["alpha"].iloc[0]) if "alpha" in perf else 0.05
    lines.append(
        f"MCSE in (); cover = CI coverage (nominal {1 - alpha:g}); rej = P(p <= {alpha:g}); "
        f"fail = failed reps (failures={pol})"
    )
    lines.append(
        f"flags at > 2 MCSE and: biased > {rel_tol:g} max(|true|, EmpSE); under-covers > "
        f"{cover_tol:g} below nominal; model SE off > {se_tol:g}%"
    )
    return "\n".join(lines)
