"""Performance tables of a run: the CSV for analysis and what the terminal shows.

    from palliasim.experiments.scoring.report import performance_table, format_terminal
    perf = performance_table(results, ["cohort.n"], alpha=0.05, failures="exclude", out_dir=run)
    print(format_terminal(perf))     # the short summary (scoring/summary.py), ~30 lines
    print(format_table(perf))        # every row, fixed width (the terminal table before issue 15)

``performance_table`` scores the long results of :func:`experiments.runner.run_experiment` with
:func:`experiments.performance.summarise` grouped by ``scenario`` (the design point's label) and
the factor columns, and orders the columns for reading: group keys, ``method``, ``estimand``
(``engine``), ``n_used``, ``n_failed``, every measure next to its Monte Carlo SE, ``ci_width``,
then the rest (``n_reps``, ``fail_rate``, ``true``, ``rmse``, ``failures``, ``alpha`` ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from palliasim.experiments.scoring.performance import summarise
from palliasim.experiments.scoring.summary import MAX_LINES, format_summary
from palliasim.sim.files import atomic_write

__all__ = ["MAIN_COLUMNS", "format_table", "format_terminal", "performance_table"]

#: measure columns of performance.csv, in this order, after the group keys
MAIN_COLUMNS = (
    "n_used",
    "n_failed",
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
    "coverage",
    "coverage_mcse",
    "becoverage",
    "becoverage_mcse",
    "rejection",
    "rejection_mcse",
    "ci_width",
)


def _sort_rows(perf: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    try:
        return perf.sort_values(keys, kind="mergesort", na_position="last").reset_index(drop=True)
    except TypeError:  # mixed-type factor column: keep summarise's order
        return perf.reset_index(drop=True)


def performance_table(
    results: pd.DataFrame,
    factor_cols: Sequence[str] = (),
    alpha: float = 0.05,
    failures: str = "exclude",
    out_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Performance measures with MCSEs per (scenario, factors, method, estimand[, engine]).

    Rows are ordered by the factor levels (design order), then scenario, estimand, method.
    With ``out_dir``, the table is also written (atomically) to ``out_dir/performance.csv``.
    """
    factor_cols = [c for c in factor_cols if c != "scenario"]
    by = ["scenario", *factor_cols]
    perf = summarise(results, by=by, alpha=alpha, failures=failures)
    lead = [*by, "method", "estimand"] + (["engine"] if "engine" in perf.columns else [])
    rest = [c for c in perf.columns if c not in lead and c not in MAIN_COLUMNS]
    perf = perf[lead + list(MAIN_COLUMNS) + rest]
    perf = _sort_rows(perf, [*factor_cols, "scenario", "estimand", "method"])
    if out_dir is not None:
        text = perf.to_csv(index=False, float_format="%.10g")
        atomic_write(Path(out_dir) / "performance.csv", lambda fh: fh.write(text.encode()))
    return perf


# --------------------------------------------------------------------------------------------
# terminal summary
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


def _with_mcse(est, mcse, digits: int = 3) -> str:
    e = _num(est, digits)
    if e == "-":
        return "-"
    m = _num(mcse, digits)
    return e if m == "-" else f"{e} ({m})"


def _clip(s: str, width: int) -> str:
    s = str(s)
    return s if len(s) <= width else s[: width - 1] + "~"


def format_terminal(perf: pd.DataFrame, max_rows: int | None = None) -> str:
    """The terminal summary of a run: :func:`summary.format_summary`, headline estimands first,
    at most ``summary.MAX_LINES`` (30) lines. ``max_rows`` (the simulate task's
    ``task.max_rows``) can only shorten it; the full table is performance.csv (or
    :func:`format_table`)."""
    lines = MAX_LINES if max_rows is None else max(min(int(max_rows), MAX_LINES), 10)
    return format_summary(perf, max_lines=lines)


def format_table(perf: pd.DataFrame, max_rows: int = 60) -> str:
    """A fixed-width table of every row of a performance table, grouped by scenario.

    Columns: estimand, method, true, n used/failed, bias (MCSE), EmpSE, ModSE, coverage (MCSE),
    rejection (MCSE). At most ``max_rows`` data rows; a last line says how many were left out.
    """
    if perf is None or len(perf) == 0:
        return "(no results)"
    headers = [
        "estimand",
        "method",
        "true",
        "n used/failed",
        "bias (mcse)",
        "empse",
        "modse",
        "coverage (mcse)",
        "rejection (mcse)",
    ]
    left = {0, 1}
    groups = list(dict.fromkeys(perf["scenario"])) if "scenario" in perf else [None]
    body: list[tuple[str | None, list[list[str]]]] = []
    shown = 0
    for g in groups:
        sub = perf if g is None else perf[perf["scenario"] == g]
        rows = []
        for _, r in sub.iterrows():
            if shown >= max_rows:
                break
            method = r["method"]
            if "engine" in sub.columns and sub["engine"].nunique() > 1:
                method = f"{method} [{r['engine']}]"
            rows.append(
                [
                    _clip(r["estimand"], 28),
                    _clip(method, 28),
                    _num(r.get("true")),
                    f"{int(r['n_used'])}/{int(r['n_failed'])}",
                    _with_mcse(r["bias"], r["bias_mcse"]),
                    _num(r["empse"]),
                    _num(r["modse"]),
                    _with_mcse(r["coverage"], r["coverage_mcse"]),
                    _with_mcse(r["rejection"], r["rejection_mcse"]),
                ]
            )
            shown += 1
        if rows:
            body.append((g, rows))
        if shown >= max_rows:
            break
    widths = [len(h) for h in headers]
    for _, rows in body:
        for row in rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row)]

    def line(cells):
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    head = line(headers)
    out: list[str] = []
    for g, rows in body:
        if g is not None:
            out.append(f"== {g} ==")
        out.append(head)
        out.append("-" * len(head))
        out.extend(line(r) for r in rows)
        out.append("")
    left_out = len(perf) - shown
    if left_out > 0:
        out.append(f"... {left_out} more row(s) not shown (see performance.csv)")
    pol = perf["failures"].iloc[0] if "failures" in perf else "?"
    alpha = perf["alpha"].iloc[0] if "alpha" in perf else np.nan
    out.append(
        f"MCSE in parentheses; failures={pol}, alpha={_num(alpha, 3)}; rejection = P(p <= alpha)"
    )
    return "\n".join(out)
