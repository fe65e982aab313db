"""Reading a user's table: CSV (UTF-8, with or without BOM, comma-separated) or Parquet.

Why our own reader and not a bare ``pd.read_csv``: pandas decodes a Latin-1 file with a
traceback, reads a semicolon-separated file as one column (so the message says "missing
columns"), and returns an empty frame for a header-only file. Here each of those is a
:class:`ConfigError` that says what is wrong with the file and how to fix it.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from palliasim.sim.errors import ConfigError

_BOM = b"\xef\xbb\xbf"
_OTHER_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def _decode(path: Path, raw: bytes) -> str:
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path.name} is not UTF-8 text (byte 0x{bad} on line {line}); save it as UTF-8 "
            "(e.g. 'CSV UTF-8' in a spreadsheet program)"
        ) from None


def read_csv_text(path: Path) -> pd.DataFrame:
    """A comma-separated UTF-8 file as a DataFrame, or ConfigError naming the problem."""
    raw = path.read_bytes()
    if not raw.strip():
        raise ConfigError(f"{path.name} is empty; expected a header line and one row per record")
    text = _decode(path, raw)
    header = text.splitlines()[0] if text.splitlines() else ""
    if "," not in header:
        for sep, name in _OTHER_SEPARATORS.items():
            if sep in header:
                raise ConfigError(
                    f"{path.name} uses {name} to separate columns; palliasim reads "
                    "comma-separated files (save as CSV with ',' as the separator)"
                )
    try:
        df = pd.read_csv(io.StringIO(text))
    except pd.errors.ParserError as exc:
        raise ConfigError(f"{path.name} is not a well-formed CSV file: {exc}") from None
    if df.empty:
        raise ConfigError(f"{path.name} has a header but no rows")
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed:")]
    if unnamed:
        raise ConfigError(
            f"{path.name} has {len(unnamed)} column(s) without a name in its header "
            "(a trailing comma or an index column?); give every column a name"
        )
    return df


def read_table(directory: Path, name: str) -> pd.DataFrame:
    """``<name>.csv`` or ``<name>.parquet`` from ``directory``."""
    csv, pq = directory / f"{name}.csv", directory / f"{name}.parquet"
    if csv.is_file():
        return read_csv_text(csv)
    if pq.is_file():
        try:
            df = pd.read_parquet(pq)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ConfigError(f"{pq.name} is not a readable Parquet file: {exc}") from None
        if df.empty:
            raise ConfigError(f"{pq.name} has no rows")
        return df
    raise ConfigError(f"data={directory}: {name}.csv (or {name}.parquet) not found")
