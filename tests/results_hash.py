"""Canonical SHA-256 of a results file (used to check bit-identical reruns)."""

from __future__ import annotations

import hashlib

import pandas as pd


def canonical_hash(path) -> str:
    """SHA-256 of a results file: rows in canonical order, columns sorted, timings dropped,
    every float written with 17 significant digits (exact for doubles)."""
    d = pd.read_parquet(path).drop(columns=["seconds"])
    d = d.sort_values(["scenario_key", "rep", "method", "estimand"], kind="stable")
    d = d.reset_index(drop=True)[sorted(d.columns)]
    return hashlib.sha256(d.to_csv(index=False, float_format="%.17g").encode()).hexdigest()
