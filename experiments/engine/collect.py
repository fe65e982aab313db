"""Collecting a run: the truth of every design point (computed in the pool, cached, or computed
here), the rows of the planned chunks assembled with factor columns and the true values, and
the count of estimator errors."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from palliasim.estimators.base import FAILED
from palliasim.experiments.engine import storage
from palliasim.experiments.engine.design import DesignPoint, factor_columns
from palliasim.experiments.engine.dispatch import single_thread_blas
from palliasim.experiments.engine.worker import ERROR_PREFIX
from palliasim.sim.estimands import lookup
from palliasim.sim.truth import Truth, truth, truth_key

#: truth.csv; ``true_status`` / ``true_message`` say why a truth is NaN (sim.truth: failed)
TRUTH_COLUMNS = [
    "scenario_key",
    "estimand",
    "true",
    "true_mcse",
    "source",
    "true_status",
    "true_message",
]
#: the truth columns attached to every results row
RESULT_TRUTH_COLUMNS = ["true", "true_mcse", "true_status", "true_message"]


def truth_frame(points: Sequence[DesignPoint], computed: Mapping[str, dict]) -> pd.DataFrame:
    """:data:`TRUTH_COLUMNS` for every point (``computed``: truth key
    -> values from the pool; the others come from the cache, or are computed here)."""
    frames = []
    by_tkey: dict[str, pd.DataFrame] = {}
    for p in points:
        tkey = truth_key(p.scenario)
        if tkey in by_tkey:
            tf = by_tkey[tkey]
        elif tkey in computed:
            tf = Truth(computed[tkey]).to_frame()
        else:
            with single_thread_blas():
                tf = truth(p.scenario).to_frame()
        by_tkey[tkey] = tf
        frames.append(tf.assign(scenario_key=p.key))
    if not frames:
        return pd.DataFrame(columns=TRUTH_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    for c, default in (("true_status", "ok"), ("true_message", "")):
        out[c] = out[c].fillna(default).astype(str) if c in out else default
    return out[TRUTH_COLUMNS]


def _factor_series(values: list) -> pd.Series:
    vals = [
        json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else v for v in values
    ]
    present = [v for v in vals if v is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    boolean = all(isinstance(v, bool) for v in present)
    strings = all(isinstance(v, str) for v in present)
    if not (numeric or boolean or strings):
        vals = [None if v is None else str(v) for v in vals]
    return pd.Series(vals, dtype=object if not numeric else None)


def assemble(
    points: Sequence[DesignPoint],
    plans: Sequence[storage.ChunkPlan],
    names: Sequence[str],
    truth_df: pd.DataFrame,
    point_names: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Rows of the planned chunks (requested estimators only: ``names``, or per scenario key
    ``point_names``), factors and truth attached, in the canonical order (scenario_key, rep,
    method, estimand)."""
    frames = []
    for c in plans:
        df, _ = storage.read_chunk(c.path)
        wanted = (point_names or {}).get(c.scenario_key, names)
        keep = (df["rep"] >= c.first) & (df["rep"] <= c.last) & df["method"].isin(wanted)
        frames.append(df[keep])
    df = storage.sort_canonical(pd.concat(frames, ignore_index=True))
    by_key = {p.key: p for p in points}
    pos = df["scenario_key"].map({k: i for i, k in enumerate(by_key)}).to_numpy()
    front = {}
    for c in factor_columns(points):
        levels = _factor_series([p.factors.get(c) for p in points])
        front[c] = levels.iloc[pos].reset_index(drop=True)
    front["scenario"] = (
        pd.Series([p.label for p in points], dtype=object).iloc[pos].reset_index(drop=True)
    )
    out = pd.concat([pd.DataFrame(front), df], axis=1)
    t = truth_df[["scenario_key", "estimand", *RESULT_TRUTH_COLUMNS]]
    out = out.merge(t, on=["scenario_key", "estimand"], how="left", validate="many_to_one")
    for c in ("true", "true_mcse"):
        out[c] = out[c].astype(np.float64)
    # an estimand without a truth (a descriptive row) has no status to report; one that is not
    # in the estimand registry (a plug-in's typo) is flagged: it can never have a true value
    out["true_status"] = out["true_status"].fillna("").astype(str)
    out["true_message"] = out["true_message"].fillna("").astype(str)
    names = out["estimand"].unique()
    unknown = [e for e in names if not _registered(str(e))]
    if unknown:
        hit = out["estimand"].isin(unknown) & out["true"].isna()
        out.loc[hit, "true_status"] = UNREGISTERED
        out.loc[hit, "true_message"] = out.loc[hit, "estimand"].map(
            lambda e: (
                f"estimand '{e}' is not in the estimand registry (sim/estimands.py): no true value"
            )
        )
    return out


#: ``true_status`` of a row whose estimand the registry does not know
UNREGISTERED = "unregistered"


def _registered(name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def count_errors(results: pd.DataFrame) -> tuple[int, int]:
    """(fits that raised, their rows): one fit = one (scenario, rep, method), whatever its
    number of estimands."""
    err = (results["status"] == FAILED) & results["message"].str.startswith(ERROR_PREFIX)
    fits = results.loc[err, ["scenario_key", "rep", "method"]].drop_duplicates()
    return int(len(fits)), int(err.sum())
