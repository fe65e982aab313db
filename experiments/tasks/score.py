"""task=score input=FILE: performance measures of any long results table (ours or foreign).

Required columns: rep, method, estimand, estimate, se, ci_low, ci_high, p_value, status, true;
every other column except the known optional ones is treated as a scenario factor (``by``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from palliasim.experiments import config as C
from palliasim.experiments.scoring.performance import summarise
from palliasim.sim.errors import ConfigError
from palliasim.sim.files import atomic_write_text

KNOWN = {
    "rep",
    "method",
    "estimand",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "status",
    "true",
    "true_mcse",
    "engine",
    "message",
    "seconds",
    "n_used",
    "scenario_key",
    "source",
}


def read_results(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ConfigError(f"input={path} does not exist")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    raise ConfigError(f"input={path}: unsupported file type; allowed: .parquet, .csv")


def run(settings) -> int:
    plain = settings.plain  # the resolved config (experiments.settings.Settings)
    if not plain.get("input"):
        raise ConfigError("task=score needs input=FILE (a long results table, parquet or csv)")
    res = read_results(Path(plain["input"]).expanduser().resolve())
    by = [c for c in res.columns if c not in KNOWN]
    try:
        perf = summarise(res, by=by or None, alpha=plain["alpha"], failures=plain["failures"])
    except ValueError as exc:
        raise ConfigError(f"input={plain['input']}: {exc}") from exc
    out = C.output_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "performance.csv", perf.to_csv(index=False))
    cols = [
        *by,
        "method",
        "estimand",
        "n_used",
        "n_failed",
        "bias",
        "bias_mcse",
        "coverage",
        "coverage_mcse",
        "rejection",
        "rejection_mcse",
    ]
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(perf[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"Written: {out / 'performance.csv'}")
    return 0
