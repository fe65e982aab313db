"""A small declarative schema for users' tables: every violation is listed at once.

A :class:`Column` states a column's kind (number, integer, binary, text), whether it is
required, whether it may be missing (NA), its range or allowed codes and uniqueness;
:func:`check_table` returns one :class:`Violation` per (column, rule) with the number of rows and
the first offending ids, and :func:`raise_violations` turns them into one ConfigError.

Why not pandera: its reports name row positions, not the patient ids users look up, the
cross-table rules of a cohort (ids, arms, the visit schedule) need code around it anyway, and
the same thirty lines serve the results files of ``task=score``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from palliasim.sim.errors import ConfigError

KINDS = ("number", "integer", "binary", "text")
MAX_LISTED = 5


@dataclass(frozen=True)
class Column:
    """Rules for one column. ``lo``/``hi`` are inclusive; ``choices`` lists the allowed codes."""

    name: str
    kind: str = "number"
    required: bool = False
    nullable: bool = True
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    unique: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:  # pragma: no cover - programming error
            raise ValueError(f"Column kind {self.kind!r} not in {KINDS}")

    def allowed(self) -> str:
        if self.kind == "binary":
            return "0 or 1"
        if self.choices is not None:
            return ", ".join(map(str, self.choices))
        what = "an integer" if self.kind == "integer" else "a number"
        if self.lo is not None and self.hi is not None:
            return f"{what} in [{self.lo:g}, {self.hi:g}]"
        if self.lo is not None:
            return f"{what} >= {self.lo:g}"
        if self.hi is not None:
            return f"{what} <= {self.hi:g}"
        return what


@dataclass(frozen=True)
class Violation:
    """One broken rule: where, what, how many rows and the first offending ids or values."""

    table: str
    column: str
    rule: str
    n_rows: int = 0
    first: tuple = ()

    def __str__(self) -> str:
        where = f"{self.table} column '{self.column}'" if self.column else self.table
        rows = ""
        if self.n_rows:
            listed = ", ".join(map(str, self.first))
            rows = f" ({self.n_rows} row{'s' if self.n_rows != 1 else ''}; first: {listed})"
        return f"{where}: {self.rule}{rows}"


def _first(labels: pd.Series, mask: np.ndarray) -> tuple:
    return tuple(labels[mask].head(MAX_LISTED).tolist())


def _labels(df: pd.DataFrame, id_col: str | None) -> pd.Series:
    """How a row is named in messages: ``id=<id>`` where an id column exists, else the line."""
    if id_col and id_col in df.columns:
        return "id=" + df[id_col].astype(str)
    return "line " + pd.Series(np.arange(len(df)) + 2, index=df.index).astype(str)


def check_column(df: pd.DataFrame, table: str, col: Column, labels: pd.Series) -> list[Violation]:
    """The violations of one column's rules (type first: range rules need numbers)."""
    if col.name not in df.columns:
        return [Violation(table, col.name, "required column is missing")] if col.required else []
    s = df[col.name]
    out: list[Violation] = []
    na = s.isna().to_numpy()
    if not col.nullable and na.any():
        out.append(
            Violation(
                table,
                col.name,
                "missing values (NA) not allowed",
                int(na.sum()),
                _first(labels, na),
            )
        )
    if col.kind == "text":
        if col.choices is not None:
            bad = ~na & ~s.astype(str).isin([str(c) for c in col.choices]).to_numpy()
            if bad.any():
                vals = sorted(set(s[bad].astype(str)))[:MAX_LISTED]
                out.append(
                    Violation(
                        table,
                        col.name,
                        f"values {vals} not allowed; allowed: {col.allowed()}",
                        int(bad.sum()),
                        _first(labels, bad),
                    )
                )
        return out
    num = pd.to_numeric(s, errors="coerce")
    nonnum = ~na & num.isna().to_numpy()
    if nonnum.any():
        vals = sorted(set(s[nonnum].astype(str)))[:MAX_LISTED]
        out.append(
            Violation(
                table,
                col.name,
                f"non-numeric values {vals}; allowed: {col.allowed()}",
                int(nonnum.sum()),
                _first(labels, nonnum),
            )
        )
    x = num.to_numpy(dtype=float)
    ok = ~np.isnan(x)
    inf = ok & ~np.isfinite(x)
    if inf.any():
        out.append(
            Violation(
                table, col.name, "infinite values not allowed", int(inf.sum()), _first(labels, inf)
            )
        )
    fin = ok & ~inf
    if col.kind in ("integer", "binary"):
        frac = fin & (x != np.round(x))
        if frac.any():
            out.append(
                Violation(
                    table,
                    col.name,
                    f"non-integer values; allowed: {col.allowed()}",
                    int(frac.sum()),
                    _first(labels, frac),
                )
            )
    if col.kind == "binary" or col.choices is not None:
        allowed = (0, 1) if col.kind == "binary" else col.choices
        bad = fin & ~np.isin(x, np.asarray(allowed, dtype=float))
        if bad.any():
            vals = sorted(set(x[bad].tolist()))[:MAX_LISTED]
            out.append(
                Violation(
                    table,
                    col.name,
                    f"values {[f'{v:g}' for v in vals]} not allowed; allowed: {col.allowed()}",
                    int(bad.sum()),
                    _first(labels, bad),
                )
            )
    else:
        bad = np.zeros(len(x), bool)
        if col.lo is not None:
            bad |= fin & (x < col.lo)
        if col.hi is not None:
            bad |= fin & (x > col.hi)
        if bad.any():
            out.append(
                Violation(
                    table,
                    col.name,
                    f"values out of range; allowed: {col.allowed()}",
                    int(bad.sum()),
                    _first(labels, bad),
                )
            )
    if col.unique:
        dup = s.duplicated(keep=False).to_numpy() & ~na
        if dup.any():
            out.append(
                Violation(table, col.name, "duplicated values", int(dup.sum()), _first(labels, dup))
            )
    return out


def check_table(
    df: pd.DataFrame, table: str, columns: Sequence[Column], id_col: str | None = "id"
) -> list[Violation]:
    """Every violation of ``columns``' rules in ``df``."""
    labels = _labels(df, id_col)
    out: list[Violation] = []
    for col in columns:
        out += check_column(df, table, col, labels)
    return out


def raise_violations(violations: Iterable[Violation], where: str) -> None:
    """One ConfigError listing every violation (nothing when there is none)."""
    v = list(violations)
    if v:
        lines = "\n".join(f"  - {x}" for x in v)
        raise ConfigError(f"{where}: {len(v)} problem{'s' if len(v) != 1 else ''} found\n{lines}")
