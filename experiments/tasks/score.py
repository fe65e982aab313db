"""task=score input=FILE: performance measures of any long results table (ours or foreign).

The columns are named by options (``conf/task/score.yaml``): ``task.estimate``, ``task.se``,
``task.true`` (a column or a number), ``task.method``, ``task.estimand``, ``task.rep``,
``task.status``, ``task.ci_low``, ``task.ci_high``, ``task.p_value``, ``task.true_mcse``; ``null``
(or a default name that is absent) marks an optional column as absent (see
:func:`palliasim.experiments.scoring.performance.canonical_results`). ``task.by`` lists the
scenario factors; ``null`` = every other column except the known bookkeeping ones.

The file is checked before anything is scored or written; each problem is a ConfigError (exit
2) naming the column, the rule, the number of offending rows and the first of them (data row
numbers, 1 = the first row under the header). CSV labels stay strings: a method called ``NA`` or
``null`` or an estimand called ``None`` is a label, not a missing value; in numeric columns the
usual missing-value spellings (empty, NA, NaN, null, None) are NaN.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from palliasim.experiments import config as C
from palliasim.experiments.scoring.columns import LABEL_ROLES, ROLES, column_options
from palliasim.experiments.scoring.performance import FAILURE_POLICIES, summarise
from palliasim.experiments.scoring.summary import format_summary
from palliasim.sim.errors import ConfigError
from palliasim.sim.files import atomic_write_text

#: bookkeeping columns of palliasim's own results.parquet that are never scenario factors
BOOKKEEPING = ("engine", "message", "seconds", "n_used", "scenario_key", "source")
#: spellings of a missing number in a CSV file (numeric columns only)
NA_NUMBERS = ("", "NA", "N/A", "NaN", "nan", "NAN", "null", "NULL", "None", ".")
#: how many offending rows a message shows
SHOW_ROWS = 5


@dataclass(frozen=True)
class ScoreJob:
    """What one task=score invocation scores: the file, the column roles, the by-columns, alpha
    and the failure policy (validated before the file is read)."""

    input: Path
    columns: dict  # role -> column name, or None (absent); "true" may be a float
    by: tuple | None
    alpha: float
    failures: str


def settings_from(plain: dict) -> ScoreJob:
    """Validate task=score's options once, before reading anything."""
    if not plain.get("input"):
        raise ConfigError(
            "task=score needs input=FILE (a long results table, .parquet or .csv); "
            "config key 'input' is empty"
        )
    cols, by = column_options(plain.get("task") or {})
    if plain.get("failures") not in FAILURE_POLICIES:
        raise ConfigError(
            f"invalid value {plain.get('failures')!r} for config key 'failures'; "
            f"allowed values: {', '.join(FAILURE_POLICIES)}"
        )
    path = Path(plain["input"]).expanduser().resolve()
    return ScoreJob(path, cols, by, float(plain["alpha"]), plain["failures"])


# --------------------------------------------------------------------------------------------
# reading and checking the file
# --------------------------------------------------------------------------------------------
def _where(mask: np.ndarray, values: pd.Series) -> str:
    """'n row(s), first: row 3 (value), ...' for the offending rows of ``mask``."""
    idx = np.flatnonzero(mask)
    shown = [values.iloc[i] for i in idx[:SHOW_ROWS]]
    shown = [v.item() if isinstance(v, np.generic) else v for v in shown]  # 2.5, not np.float64
    first = ", ".join(f"row {i + 1} ({v!r})" for i, v in zip(idx, shown))
    more = f", ... ({len(idx) - SHOW_ROWS} more)" if len(idx) > SHOW_ROWS else ""
    return f"{len(idx)} of {len(mask)} row(s); first: {first}{more}"


def _bad(col: str, rule: str, mask: np.ndarray, values: pd.Series, where: str) -> ConfigError:
    return ConfigError(f"input={where}: column '{col}' must be {rule}: {_where(mask, values)}")


def _numeric(raw: pd.Series, col: str, where: str) -> pd.Series:
    """Numbers from a column (strings in a CSV); unparseable entries are a ConfigError."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.astype(float)
    text = raw.astype("string")
    missing = raw.isna().to_numpy() | text.str.strip().isin(NA_NUMBERS).fillna(True).to_numpy()
    num = pd.to_numeric(text.where(~missing), errors="coerce").astype(float)
    bad = ~missing & num.isna().to_numpy()
    if bad.any():
        raise _bad(col, "a number (or empty / NA for missing)", bad, raw, where)
    return num


def read_results(path: Path, label_cols: tuple[str, ...] = ()) -> pd.DataFrame:
    """The table in ``path`` (.parquet, or .csv / .txt read with every column as text so that
    labels stay labels; numeric columns are converted by :func:`check_results`)."""
    if not path.exists():
        raise ConfigError(f"input={path} does not exist")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            for c in label_cols:  # labels as strings whatever the writer's type (1 -> "1")
                if c in df.columns and not pd.api.types.is_string_dtype(df[c]):
                    df[c] = df[c].where(df[c].isna(), df[c].astype(str))
            return df
        if path.suffix in (".csv", ".txt"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"input={path} is empty: no header and no rows") from None
    raise ConfigError(f"input={path}: unsupported file type; allowed: .parquet, .csv")


def check_results(df: pd.DataFrame, s: ScoreJob) -> pd.DataFrame:
    """Numeric columns as numbers and every value rule checked; returns the cleaned table."""
    where = str(s.input)
    if len(df) == 0:
        raise ConfigError(
            f"input={where} has no rows (columns: {', '.join(map(str, df.columns)) or 'none'}); "
            "a results table needs one row per replication, method and estimand"
        )
    cols = s.columns
    need = [cols[r] for r in ("estimate", "se") if cols[r] not in df.columns]
    if isinstance(cols["true"], str) and cols["true"] not in df.columns:
        need.append(cols["true"])
    for role in ("method", "estimand", "rep", "status", "ci_low", "ci_high", "p_value"):
        name = cols[role]
        if name is not None and name != ROLES[role] and name not in df.columns:
            need.append(name)  # named explicitly: must be there
    if need:
        raise ConfigError(
            f"input={where}: missing column(s) {', '.join(map(repr, need))} (named by "
            f"task.<role>; columns in the file: {', '.join(map(str, df.columns))})"
        )
    df = df.copy()
    present = {r: c for r, c in cols.items() if isinstance(c, str) and c in df.columns}
    numeric_roles = ("estimate", "se", "true", "ci_low", "ci_high", "p_value", "true_mcse", "rep")
    for role in numeric_roles:
        if role in present:
            df[present[role]] = _numeric(df[present[role]], present[role], where)
    for role in LABEL_ROLES:
        if role in present:
            df[present[role]] = df[present[role]].astype(str)

    def rule(role, rule_text, bad):
        if role in present and bad.any():
            raise _bad(present[role], rule_text, bad, df[present[role]], where)

    for role in ("se", "true_mcse"):
        if role in present:
            rule(role, "a number >= 0 (or missing)", (df[present[role]] < 0).to_numpy())
    if "p_value" in present:
        p = df[present["p_value"]]
        rule("p_value", "a probability in [0, 1] (or missing)", ((p < 0) | (p > 1)).to_numpy())
    if "ci_low" in present and "ci_high" in present:
        lo, hi = df[present["ci_low"]], df[present["ci_high"]]
        bad = (lo > hi).to_numpy()
        if bad.any():
            shown = lo.astype(str) + " > " + hi.astype(str)
            raise _bad(
                f"{present['ci_low']}' <= '{present['ci_high']}",
                "ordered (ci_low <= ci_high)",
                bad,
                shown,
                where,
            )
    if "rep" in present:
        r = df[present["rep"]]
        rule(
            "rep", "a whole number (replication index)", (r.isna() | (r != np.floor(r))).to_numpy()
        )
    if "status" in present:
        allowed = ("ok", "warning", "failed")
        rule("status", f"one of {', '.join(allowed)}", ~df[present["status"]].isin(allowed))
    return df


def _factors(df: pd.DataFrame, s: ScoreJob) -> list[str]:
    """The by-columns: task.by, or every column that is neither a role nor bookkeeping; a factor
    read from a CSV whose values are all numbers becomes numeric (numeric sort order)."""
    if s.by is not None:
        missing = [c for c in s.by if c not in df.columns]
        if missing:
            raise ConfigError(
                f"task.by names column(s) {', '.join(map(repr, missing))} not in input="
                f"{s.input} (columns: {', '.join(map(str, df.columns))})"
            )
        by = list(s.by)
    else:
        roles = {c for c in s.columns.values() if isinstance(c, str)}
        by = [c for c in df.columns if c not in roles and c not in BOOKKEEPING]
        by = [c for c in by if c not in ROLES]  # default names of absent roles
    for c in by:
        if df[c].dtype == object:
            num = pd.to_numeric(df[c], errors="coerce")
            if num.notna().all():
                df[c] = num
    return by


def score(s: ScoreJob) -> tuple[pd.DataFrame, list[str]]:
    """Read, check and score the file; nothing is written."""
    df = check_results(
        read_results(s.input, tuple(s.columns[r] for r in LABEL_ROLES if s.columns[r])), s
    )
    by = _factors(df, s)
    roles = {r: c for r, c in s.columns.items() if r != "true_mcse"}
    tm = s.columns["true_mcse"]
    if tm is None:  # task.true_mcse=null: the truth is exact, whatever the file holds
        df = df.drop(columns=[c for c in ("true_mcse",) if c in df.columns])
        tm = "true_mcse"
    try:
        perf = summarise(
            df, by=by or None, alpha=s.alpha, failures=s.failures, truth_mcse_col=tm, **roles
        )
    except ValueError as exc:
        raise ConfigError(f"input={s.input}: {exc}") from exc
    return perf, by


def run(settings) -> int:
    """``settings``: the run's ``experiments.settings.Settings`` (its resolved config is
    ``settings.plain``) or the resolved config itself (then ``out_dir`` or Hydra's directory)."""
    plain = getattr(settings, "plain", settings)
    s = settings_from(plain)
    perf, by = score(s)
    given = plain.get("out_dir")
    out = Path(given).expanduser().resolve() if given else C.output_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "performance.csv", perf.to_csv(index=False, float_format="%.10g"))
    print(format_summary(perf, by=by))
    print(
        f"Written: {out / 'performance.csv'} ({len(perf)} row(s), every measure with its MCSE)",
        file=sys.stdout,
    )
    return 0
