"""CI checks: estimator bias, coverage, type I error, failure rate and model-SE calibration as
pass/fail verdicts, so a build fails when a change makes an estimator biased or under-covering.

    palliasim task=check suite=smoke           # exit 0: every check passed, 1: some failed,
    palliasim task=check suite=/path/my.yaml   # 2: invalid suite (the message names the key)

    from palliasim.experiments.checks.suite import run_suite   # the same from Python / pytest
    result = run_suite("smoke", out_dir=tmp_path, n_jobs=2)
    assert result.passed, result.markdown

A *suite* is YAML (``conf/checks/<name>.yaml``, or any file): scenarios x estimators x
expectations. Every key is validated before anything runs (:func:`load_suite`); the
replications go through :func:`experiments.runner.run_experiment` (parallel, resumable, bit for
bit identical whatever the number of workers), are scored by
:func:`experiments.performance.summarise` and judged here (:func:`evaluate`).

Suite keys (defaults in brackets)::

    description: free text
    imports: [my_package.estimators]   # modules to import first (registers a team's own kinds)
    seed: 1                   # root seed of every random stream
    reps: 200                 # replications per scenario
    alpha: 0.05               # nominal level of the estimators' CIs and tests (one per suite)
    error_rate: 0.01          # family-wise error rate of the suite's statistical checks
    correction: holm          # holm | bonferroni
    failures: exclude         # exclude | count (experiments.performance)
    scenarios:                # name -> a preset plus dotted overrides
      randomized: {preset: randomized, overrides: {cohort.n: 200, truth.n: 50000}}
    estimators:               # name -> {kind, options} as in conf/estimators/*.yaml
      cox: {kind: cox, endpoints: [pfs, os]}
    checks:                   # one entry per (scenario, method, estimand or list of them)
      - {scenario: randomized, method: cox, estimand: [pfs_loghr, os_loghr],
         expect: {unbiased: true, covers: true, relerror: 10, max_fail_rate: 0.01},
         note: why this check exists (shown with its verdict)}

Expectations (each is one check, one JUnit testcase). *Statistical* checks are z-tests whose
p-values are adjusted together (Holm or Bonferroni over every statistical check of the suite,
so a suite of correct estimators fails with probability <= ``error_rate``); ``z*`` below is the
critical value at a check's own level (Bonferroni: ``error_rate / m``; Holm:
``error_rate / (m - rank + 1)``, rank of its p-value), the verdict is ``adjusted p <=
error_rate``:

=================  ============  =============================================================
expectation        kind          passes when
=================  ============  =============================================================
unbiased: true     statistical   bias / MCSE is not significantly different from 0 (two-sided)
biased: true       statistical   bias / MCSE *is* significantly different from 0 (a naive
                                 method is caught)
abs_bias_max: tol  fixed         abs(bias) <= tol
covers: true       statistical   coverage inside the binomial band around 1 - alpha:
                                 1 - alpha +/- z* sqrt(alpha (1 - alpha) / n) (two-sided)
undercovers: true  statistical   coverage significantly *below* 1 - alpha (one-sided)
type1: true        statistical   rejection rate <= alpha + z* sqrt(alpha (1 - alpha) / n)
                                 (one-sided; the estimand's true value must be 0)
relerror: y        statistical   relative error of the model SE within +/- y %:
                                 abs(relerror) <= y + z* MCSE (one-sided)
max_fail_rate: x   fixed         share of failed replications <= x
=================  ============  =============================================================

The bias MCSE includes the truth's own Monte Carlo SE (MEASURES.md). A check whose figure
cannot be computed (every replication failed, no true value) fails with the reason.

Outputs in ``out_dir``: ``summary.md`` (the markdown printed by the CLI, failing checks first),
``checks.csv`` (one row per check: figure, MCSE, threshold, z, p, adjusted p, verdict, reason),
``junit.xml`` (one testcase per check), ``performance.csv`` and the runner's files under
``runs/`` (one run directory per code fingerprint, seed and scenario: re-running resumes, and a
change to the code of ``sim``, ``estimators`` or a plug-in never reuses stale replications).
"""

from __future__ import annotations

import hashlib
import importlib
import math
import re
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from palliasim.sim.errors import ConfigError

__all__ = [
    "EXPECTATIONS",
    "CheckSpec",
    "Suite",
    "SuiteResult",
    "evaluate",
    "load_suite",
    "run_suite",
    "suite_names",
]

SUITE_KEYS = (
    "description",
    "imports",
    "seed",
    "reps",
    "alpha",
    "error_rate",
    "correction",
    "failures",
    "scenarios",
    "estimators",
    "checks",
)
SUITE_DEFAULTS: dict[str, Any] = {
    "description": "",
    "imports": [],
    "seed": 1,
    "reps": 200,
    "alpha": 0.05,
    "error_rate": 0.01,
    "correction": "holm",
    "failures": "exclude",
}
CORRECTIONS = ("holm", "bonferroni")
FAILURE_POLICIES = ("exclude", "count")
SCENARIO_KEYS = ("preset", "overrides")
CHECK_KEYS = ("scenario", "method", "estimand", "expect", "note")

#: expectation -> (value type, statistical?, sidedness of its test, figure it judges)
EXPECTATIONS: dict[str, tuple[str, bool, str, str]] = {
    "unbiased": ("true", True, "two", "bias"),
    "biased": ("true", True, "two", "bias"),
    "abs_bias_max": ("nonneg", False, "", "bias"),
    "covers": ("true", True, "two", "coverage"),
    "undercovers": ("true", True, "lower", "coverage"),
    "type1": ("true", True, "upper", "rejection"),
    "relerror": ("nonneg", True, "upper", "relerror"),
    "max_fail_rate": ("rate", False, "", "fail_rate"),
}
#: checks that pass when their null hypothesis is rejected (the method is caught)
NEGATIVE = ("biased", "undercovers")
__all__ += ["NEGATIVE", "CHECK_COLUMNS", "code_fingerprint", "junit_xml", "markdown_report"]
_CONTRADICTIONS = (("unbiased", "biased"), ("covers", "undercovers"))
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# --------------------------------------------------------------------------------------------
# the suite
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckSpec:
    """One expectation on one (scenario, method, estimand): one verdict, one JUnit testcase."""

    index: int  # position of its entry in the suite's ``checks`` list
    scenario: str
    method: str
    estimand: str
    expectation: str
    value: Any
    path: str  # the suite key, e.g. "checks[3].expect.covers"
    note: str = ""

    @property
    def statistical(self) -> bool:
        return EXPECTATIONS[self.expectation][1]

    @property
    def label(self) -> str:
        if EXPECTATIONS[self.expectation][0] == "true":
            return self.expectation
        unit = "%" if self.expectation == "relerror" else ""
        return f"{self.expectation}={self.value:g}{unit}"

    @property
    def id(self) -> str:
        return f"{self.scenario}/{self.method}/{self.estimand}: {self.label}"


@dataclass(frozen=True)
class Suite:
    """A validated check suite (build it with :func:`load_suite`)."""

    name: str
    seed: int
    reps: int
    alpha: float
    error_rate: float
    correction: str
    failures: str
    scenarios: dict  # name -> sim.Scenario
    estimators: dict  # name -> {"kind": ..., **options} (alpha set to the suite's)
    checks: tuple  # CheckSpec, in suite order
    description: str = ""
    imports: tuple = ()
    source: str = ""  # the file it came from ("" for a mapping)

    @property
    def n_statistical(self) -> int:
        return sum(c.statistical for c in self.checks)

    def methods_for(self, scenario: str) -> list[str]:
        """The estimators some check needs on ``scenario`` (only those run there)."""
        return sorted({c.method for c in self.checks if c.scenario == scenario})

    def used_scenarios(self) -> list[str]:
        return [s for s in self.scenarios if any(c.scenario == s for c in self.checks)]


def _checks_dir():
    return resources.files("palliasim.conf").joinpath("checks")


def suite_names() -> list[str]:
    """Names of the suites shipped in ``conf/checks/`` (``suite=<name>``)."""
    try:
        entries = list(_checks_dir().iterdir())
    except (FileNotFoundError, NotADirectoryError):  # pragma: no cover - broken install
        return []
    return sorted(e.name[: -len(".yaml")] for e in entries if e.name.endswith(".yaml"))


def _looks_like_path(s: str) -> bool:
    return "/" in s or "\\" in s or s.endswith((".yaml", ".yml")) or s.startswith(".")


def _read_suite(source: str | Path) -> tuple[dict, str, str]:
    """(raw mapping, suite name, source description) for a suite name or a path."""
    text: str
    if isinstance(source, Path) or _looks_like_path(str(source)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"invalid value '{source}' for config key 'suite': no such file "
                f"(give a suite name: {', '.join(suite_names()) or '(none)'}, or a YAML file)"
            )
        text, name, where = path.read_text(), path.stem, str(path.resolve())
    else:
        name = str(source)
        if name not in suite_names():
            raise ConfigError(
                f"invalid value '{name}' for config key 'suite'; allowed values: "
                f"{', '.join(suite_names()) or '(none)'} (conf/checks/), or a path to a YAML file"
            )
        text, where = _checks_dir().joinpath(f"{name}.yaml").read_text(), f"conf/checks/{name}.yaml"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite {where} is not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"suite {where} must be a mapping with keys scenarios, estimators, checks; "
            f"got {type(raw).__name__}"
        )
    return dict(raw), name, where


# ---- small validators: every message names the key path --------------------------------------
def _num(v: Any) -> float | None:
    """A number (YAML reads ``1e-4`` as a string: accept numeric strings too), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, str) and _FLOAT_RE.match(v.strip()):
        return float(v)
    return None


def _int(v: Any, key: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ConfigError(f"invalid value {v!r} for suite key '{key}'; allowed: an integer >= {lo}")
    return int(v)


def _prob(v: Any, key: str) -> float:
    x = _num(v)
    if x is None or not 0.0 < x < 1.0:
        raise ConfigError(f"invalid value {v!r} for suite key '{key}'; allowed: a number in (0, 1)")
    return x


def _choice(v: Any, key: str, allowed: tuple[str, ...]) -> str:
    if v not in allowed:
        raise ConfigError(
            f"invalid value {v!r} for suite key '{key}'; allowed values: {', '.join(allowed)}"
        )
    return str(v)


def _unknown(d: Mapping, allowed: tuple[str, ...], where: str) -> None:
    for k in d:
        if k not in allowed:
            key = f"{where}.{k}" if where else str(k)
            raise ConfigError(f"unknown suite key '{key}'; allowed keys: {', '.join(allowed)}")


def _flatten(d: Mapping, prefix: str = "") -> dict:
    """Nested overrides ``{cohort: {n: 200}}`` -> dotted ``{"cohort.n": 200}``."""
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _import_modules(mods: Any) -> tuple[str, ...]:
    if mods is None:
        return ()
    if isinstance(mods, str):
        mods = [mods]
    if not isinstance(mods, list):
        raise ConfigError(f"invalid value {mods!r} for suite key 'imports'; allowed: module names")
    for i, m in enumerate(mods):
        if not isinstance(m, str) or not m:
            raise ConfigError(
                f"invalid value {m!r} for suite key 'imports[{i}]'; allowed: a module"
            )
        try:
            importlib.import_module(m)
        except Exception as exc:
            raise ConfigError(f"suite key 'imports[{i}]': cannot import '{m}': {exc!r}") from None
    return tuple(mods)


def _scenarios(raw: Any) -> dict:
    from palliasim.sim.scenario import PRESETS, load_scenario

    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            "suite key 'scenarios' must be a non-empty mapping, e.g. "
            "{randomized: {preset: randomized, overrides: {cohort.n: 200}}}"
        )
    out = {}
    for name, spec in raw.items():
        where = f"scenarios.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(
                f"invalid scenario name {name!r} under suite key 'scenarios'; allowed: letters, "
                "digits, '_', '.', '-'"
            )
        if not isinstance(spec, Mapping):
            raise ConfigError(
                f"suite key '{where}' must be a mapping {{preset: ..., overrides: {{...}}}}; "
                f"got {spec!r}"
            )
        _unknown(spec, SCENARIO_KEYS, where)
        if "preset" not in spec:
            raise ConfigError(
                f"suite key '{where}.preset' is missing; allowed values: {', '.join(PRESETS)}"
            )
        preset = spec["preset"]
        if preset not in PRESETS:
            hint = " (YAML reads an unquoted null as nothing: write preset: 'null')"
            raise ConfigError(
                f"invalid value {preset!r} for suite key '{where}.preset'; allowed values: "
                f"{', '.join(PRESETS)}{hint if preset is None else ''}"
            )
        over = spec.get("overrides") or {}
        if not isinstance(over, Mapping):
            raise ConfigError(
                f"suite key '{where}.overrides' must be a mapping of dotted scenario keys to "
                f"values, e.g. {{cohort.n: 200}}; got {over!r}"
            )
        try:
            out[name] = load_scenario(str(preset), _flatten(over))
        except ConfigError as exc:
            raise ConfigError(f"suite key '{where}.overrides': {exc}") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"suite key '{where}': {exc}") from None
    return out


def _estimators(raw: Any, alpha: float) -> tuple[dict, dict]:
    from palliasim.experiments.engine.runner import build_estimators, normalise_specs

    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            "suite key 'estimators' must be a non-empty mapping, e.g. {cox: {kind: cox}}"
        )
    for name, spec in raw.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(
                f"invalid estimator name {name!r} under suite key 'estimators'; allowed: "
                "letters, digits, '_', '.', '-'"
            )
        if isinstance(spec, Mapping) and "alpha" in spec:
            a = _num(spec["alpha"])
            if a is None or not math.isclose(a, alpha):
                raise ConfigError(
                    f"invalid value {spec['alpha']!r} for suite key 'estimators.{name}.alpha': "
                    f"it must equal the suite's alpha ({alpha:g}) or be left out; set the nominal "
                    "level once, at the top of the suite"
                )
    try:
        specs = normalise_specs(raw)
        specs = {n: {**s, "alpha": alpha} for n, s in specs.items()}
        built = build_estimators(specs)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        raise ConfigError(
            msg if "estimators" in msg else f"suite key 'estimators': {msg}"
        ) from None
    return specs, built


def _expect_value(name: str, v: Any, key: str) -> Any:
    kind = EXPECTATIONS[name][0]
    if kind == "true":
        if v is not True:
            raise ConfigError(
                f"invalid value {v!r} for suite key '{key}'; allowed: true (leave the key out "
                "to skip the check)"
            )
        return True
    x = _num(v)
    if kind == "nonneg" and (x is None or not math.isfinite(x) or x < 0):
        raise ConfigError(f"invalid value {v!r} for suite key '{key}'; allowed: a number >= 0")
    if kind == "rate" and (x is None or not 0.0 <= x <= 1.0):
        raise ConfigError(f"invalid value {v!r} for suite key '{key}'; allowed: a number in [0, 1]")
    return x


def _checks(raw: Any, scenarios: dict, built: dict) -> tuple[CheckSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            "suite key 'checks' must be a non-empty list of {scenario, method, estimand, expect}"
        )
    out: list[CheckSpec] = []
    seen: dict[tuple, str] = {}
    for i, c in enumerate(raw):
        where = f"checks[{i}]"
        if not isinstance(c, Mapping):
            raise ConfigError(
                f"suite key '{where}' must be a mapping {{scenario, method, estimand, expect}}; "
                f"got {c!r}"
            )
        _unknown(c, CHECK_KEYS, where)
        for k in ("scenario", "method", "estimand", "expect"):
            if k not in c:
                raise ConfigError(f"suite key '{where}.{k}' is missing")
        sc, m = c["scenario"], c["method"]
        if sc not in scenarios:
            raise ConfigError(
                f"invalid value {sc!r} for suite key '{where}.scenario'; allowed values (the "
                f"suite's scenarios): {', '.join(scenarios)}"
            )
        if m not in built:
            raise ConfigError(
                f"invalid value {m!r} for suite key '{where}.method'; allowed values (the "
                f"suite's estimators): {', '.join(built)}"
            )
        targets = list(built[m].targets())
        ests = c["estimand"]
        ests = [ests] if isinstance(ests, str) else ests
        if not isinstance(ests, list) or not ests:
            raise ConfigError(
                f"invalid value {c['estimand']!r} for suite key '{where}.estimand'; allowed: "
                f"one of {', '.join(targets)} or a list of them"
            )
        for j, e in enumerate(ests):
            if e not in targets:
                key = f"{where}.estimand" + (f"[{j}]" if isinstance(c["estimand"], list) else "")
                raise ConfigError(
                    f"invalid value {e!r} for suite key '{key}': not reported by estimator "
                    f"'{m}' (kind {built[m].kind}); allowed values: {', '.join(targets)}"
                )
        note = c.get("note", "")
        if not isinstance(note, str):
            raise ConfigError(f"invalid value {note!r} for suite key '{where}.note'; allowed: text")
        exp = c["expect"]
        if not isinstance(exp, Mapping) or not exp:
            raise ConfigError(
                f"suite key '{where}.expect' must be a non-empty mapping; allowed keys: "
                f"{', '.join(EXPECTATIONS)}"
            )
        _unknown(exp, tuple(EXPECTATIONS), f"{where}.expect")
        for a, b in _CONTRADICTIONS:
            if a in exp and b in exp:
                raise ConfigError(
                    f"suite keys '{where}.expect.{a}' and '{where}.expect.{b}' contradict each "
                    "other; keep one"
                )
        values = {k: _expect_value(k, v, f"{where}.expect.{k}") for k, v in exp.items()}
        for e in ests:
            for k, v in values.items():
                dup = (sc, m, e, k)
                if dup in seen:
                    raise ConfigError(
                        f"suite key '{where}.expect.{k}' repeats the check of {seen[dup]} on "
                        f"{sc}/{m}/{e}"
                    )
                seen[dup] = f"{where}.expect.{k}"
                out.append(CheckSpec(i, sc, m, e, k, v, f"{where}.expect.{k}", note))
    return tuple(out)


def load_suite(source: str | Path | Mapping | Suite, name: str | None = None) -> Suite:
    """Read and validate a suite: a name in ``conf/checks/``, a YAML path, or a mapping.

    Raises :class:`sim.validation.ConfigError` naming the offending key (``checks[3].expect.
    covers``, ``scenarios.study.overrides``, ``estimators.cox.endpoints``...) before any compute.
    """
    if isinstance(source, Suite):
        return source
    if isinstance(source, Mapping):
        raw, sname, where = dict(source), name or "suite", ""
    elif isinstance(source, (str, Path)):
        raw, sname, where = _read_suite(source)
        sname = name or sname
    else:
        raise ConfigError(
            f"invalid value {source!r} for config key 'suite'; allowed: a suite name, a path to "
            "a YAML file or a mapping"
        )
    try:
        _unknown(raw, SUITE_KEYS, "")
        cfg = {**SUITE_DEFAULTS, **raw}
        for k in ("scenarios", "estimators", "checks"):
            if k not in raw:
                raise ConfigError(f"suite key '{k}' is missing")
        if not isinstance(cfg["description"], str):
            raise ConfigError(
                f"invalid value {cfg['description']!r} for suite key 'description'; allowed: text"
            )
        imports = _import_modules(cfg["imports"])
        seed = _int(cfg["seed"], "seed", 0)
        reps = _int(cfg["reps"], "reps", 2)
        alpha = _prob(cfg["alpha"], "alpha")
        error_rate = _prob(cfg["error_rate"], "error_rate")
        correction = _choice(cfg["correction"], "correction", CORRECTIONS)
        failures = _choice(cfg["failures"], "failures", FAILURE_POLICIES)
        scenarios = _scenarios(cfg["scenarios"])
        specs, built = _estimators(cfg["estimators"], alpha)
        checks = _checks(cfg["checks"], scenarios, built)
    except ConfigError as exc:
        raise ConfigError(f"suite {where or sname}: {exc}") from None
    return Suite(
        name=sname,
        seed=seed,
        reps=reps,
        alpha=alpha,
        error_rate=error_rate,
        correction=correction,
        failures=failures,
        scenarios=scenarios,
        estimators=specs,
        checks=checks,
        description=cfg["description"].strip(),
        imports=imports,
        source=where,
    )


# --------------------------------------------------------------------------------------------
# judging: performance table -> verdicts
# --------------------------------------------------------------------------------------------
def _adjust(p: np.ndarray, correction: str) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted p-values and each test's own level factor (divide error_rate by it).

    Holm: sort ascending, p_adj(i) = max_{j <= i} min(1, (m - j + 1) p_(j)); the test of rank r
    is judged at error_rate / (m - r + 1). Bonferroni: min(1, m p), level error_rate / m.
    NaN p-values (nothing to test) count as 1 (they never reject; their checks fail anyway).
    """
    m = len(p)
    if m == 0:
        return np.array([]), np.array([])
    q = np.where(np.isnan(p), 1.0, p)
    if correction == "bonferroni":
        return np.minimum(1.0, m * q), np.full(m, float(m))
    order = np.argsort(q, kind="stable")
    factors = m - np.arange(m)  # m, m-1, ..., 1
    adj_sorted = np.maximum.accumulate(np.minimum(1.0, factors * q[order]))
    adj = np.empty(m)
    adj[order] = adj_sorted
    fac = np.empty(m)
    fac[order] = factors
    return adj, fac


def _crit(level: float, side: str) -> float:
    return float(stats.norm.isf(level / 2.0 if side == "two" else level))


def _g(x: float, digits: int = 4) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def _p(x: float) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.2g}"


def _coverage_counts(results: pd.DataFrame, failures: str) -> pd.DataFrame:
    """Replications behind coverage (n_cov) and rejection (n_rej), as in ``summarise``."""
    r = results
    used = (r["status"] != "failed").to_numpy() & r["estimate"].notna().to_numpy()
    has_true = r["true"].notna().to_numpy()
    if failures == "count":
        n_cov = has_true.astype(float)
        n_rej = np.ones(len(r))
    else:
        ci = r["ci_low"].notna().to_numpy() & r["ci_high"].notna().to_numpy()
        n_cov = (used & ci & has_true).astype(float)
        n_rej = (used & r["p_value"].notna().to_numpy()).astype(float)
    df = r[["scenario", "method", "estimand"]].assign(n_cov=n_cov, n_rej=n_rej)
    return df.groupby(["scenario", "method", "estimand"], sort=True).sum().reset_index()


def _first_failure(results: pd.DataFrame) -> dict:
    """(scenario, method, estimand) -> the first failure message (in rep order)."""
    if "message" not in results.columns:
        return {}
    f = results[results["status"] == "failed"]
    if f.empty:
        return {}
    f = f.sort_values(["scenario", "method", "estimand", "rep"], kind="stable")
    first = f.groupby(["scenario", "method", "estimand"], sort=False)["message"].first()
    return {k: str(v) for k, v in first.items()}


def evaluate(
    suite: Suite, performance: pd.DataFrame, results: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Judge every check of ``suite`` on a performance table (``summarise(results, by=
    "scenario")``, with the suite's scenario names in the ``scenario`` column).

    ``results`` (the long table the performance came from) gives the exact number of
    replications behind coverage and rejection and the first failure message; without it
    ``n_used`` is used. Returns one row per check in suite order (see ``CHECK_COLUMNS``).
    """
    perf = performance.set_index(["scenario", "method", "estimand"]).sort_index()
    counts = None
    first_fail: dict = {}
    if results is not None and len(results):
        counts = _coverage_counts(results, suite.failures).set_index(
            ["scenario", "method", "estimand"]
        )
        first_fail = _first_failure(results)
    nominal = 1.0 - suite.alpha
    rows = []
    for c in suite.checks:
        key = (c.scenario, c.method, c.estimand)
        _, _, side, fig_name = EXPECTATIONS[c.expectation]
        row: dict[str, Any] = {
            "check": c.id,
            "scenario": c.scenario,
            "method": c.method,
            "estimand": c.estimand,
            "expectation": c.label,
            "statistical": c.statistical,
            "side": side,
            "figure_name": fig_name,
            "figure": np.nan,
            "mcse": np.nan,
            "true": np.nan,
            "n_reps": 0,
            "n_used": 0,
            "n_failed": 0,
            "z": np.nan,
            "p_value": np.nan,
            "se0": np.nan,
            "key": c.path,
            "note": c.note,
            "_problem": "",
        }
        if key not in perf.index:
            row["_problem"] = "no result rows for this method and estimand"
            rows.append(row)
            continue
        pr = perf.loc[key]
        if isinstance(pr, pd.DataFrame):  # several engines: judge the first (sorted)
            pr = pr.iloc[0]
        n_used = int(pr["n_used"])
        row.update(
            n_reps=int(pr["n_reps"]),
            n_used=n_used,
            n_failed=int(pr["n_failed"]),
            true=float(pr["true"]),
        )
        fig = float(pr[fig_name])
        mcse = float(pr[f"{fig_name}_mcse"]) if f"{fig_name}_mcse" in pr else np.nan
        row.update(figure=fig, mcse=mcse)
        ff = first_fail.get(key, "")
        failed_note = f"{row['n_failed']} of {row['n_reps']} replications failed" + (
            f" (first: {ff[:160]})" if ff else ""
        )
        if fig_name in ("bias", "coverage") and not np.isfinite(row["true"]):
            row["_problem"] = (
                f"no true value of '{c.estimand}' in scenario '{c.scenario}' (needed for "
                f"{fig_name})"
            )
        elif not np.isfinite(fig):
            row["_problem"] = f"no usable replications: {failed_note}"
        elif c.expectation in ("unbiased", "biased"):
            if mcse > 0:
                row["z"] = fig / mcse
            elif mcse == 0:
                row["z"] = 0.0 if fig == 0 else math.copysign(np.inf, fig)
        elif c.expectation in ("covers", "undercovers", "type1"):
            p0 = nominal if fig_name == "coverage" else suite.alpha
            col = "n_cov" if fig_name == "coverage" else "n_rej"
            n = (
                float(counts.loc[key, col])
                if counts is not None and key in counts.index
                else n_used
            )
            if n > 0:
                row["se0"] = math.sqrt(p0 * (1 - p0) / n)
                row["z"] = (fig - p0) / row["se0"]
            else:
                row["_problem"] = f"no replications with a {'CI' if col == 'n_cov' else 'p-value'}"
            if c.expectation == "type1" and np.isfinite(row["true"]):
                tm = float(pr["true_mcse"]) if np.isfinite(pr["true_mcse"]) else 0.0
                if abs(row["true"]) > max(1e-9, 4.0 * tm):
                    row["_problem"] = (
                        f"the true value of '{c.estimand}' in scenario '{c.scenario}' is "
                        f"{_g(row['true'])}, not 0: its rejection rate is power, not type I "
                        "error (point type1 checks at a null scenario)"
                    )
        elif c.expectation == "relerror":
            if np.isfinite(mcse) and mcse > 0:
                row["z"] = (abs(fig) - float(c.value)) / mcse
            else:
                row["_problem"] = "relative error without a Monte Carlo SE (fewer than 2 reps?)"
        z = row["z"]
        if c.statistical and not np.isnan(z):
            if side == "two":
                row["p_value"] = float(2.0 * stats.norm.sf(abs(z)))
            elif side == "upper":
                row["p_value"] = float(stats.norm.sf(z))
            else:
                row["p_value"] = float(stats.norm.cdf(z))
        elif c.statistical and not row["_problem"]:
            row["_problem"] = (
                f"{fig_name} {_g(fig)} has no Monte Carlo SE (fewer than 2 usable replications?)"
            )
        row["_failed_note"] = failed_note if row["n_failed"] else ""
        row["_first"] = ff
        rows.append(row)

    table = pd.DataFrame(rows)
    stat = table["statistical"].to_numpy(bool)
    p_adj = np.full(len(table), np.nan)
    level = np.full(len(table), np.nan)
    adj, fac = _adjust(table.loc[stat, "p_value"].to_numpy(float), suite.correction)
    p_adj[stat] = adj
    level[stat] = suite.error_rate / fac
    table["p_adjusted"] = p_adj
    table["level"] = level
    verdicts, thresholds, reasons = [], [], []
    for c, r in zip(suite.checks, table.to_dict("records")):
        ok, thr, why = _judge(c, r, suite)
        verdicts.append("PASS" if ok else "FAIL")
        thresholds.append(thr)
        if r.get("_failed_note") and not ok and "failed" not in why:
            why += f"; {r['_failed_note']}"
        if c.note and not ok:
            why += f" [{c.note}]"
        reasons.append(why)
    table["verdict"] = verdicts
    table["threshold"] = thresholds
    table["reason"] = reasons
    return table[list(CHECK_COLUMNS)]


CHECK_COLUMNS = (
    "verdict",
    "check",
    "scenario",
    "method",
    "estimand",
    "expectation",
    "figure_name",
    "figure",
    "mcse",
    "threshold",
    "true",
    "n_reps",
    "n_used",
    "n_failed",
    "statistical",
    "z",
    "p_value",
    "p_adjusted",
    "level",
    "reason",
    "key",
    "note",
)


def _judge(c: CheckSpec, r: dict, suite: Suite) -> tuple[bool, str, str]:
    """(passed, threshold text, reason text) of one check."""
    e = suite.error_rate
    fig, mcse, z, padj = r["figure"], r["mcse"], r["z"], r["p_adjusted"]
    side = r["side"]
    zc = _crit(r["level"], side) if c.statistical else np.nan
    reject = bool(np.isfinite(padj) and padj <= e)
    sig = f"adjusted p = {_p(padj)} {'<=' if reject else '>'} {e:g}"
    nominal = 1.0 - suite.alpha
    x = c.expectation

    if x in ("unbiased", "biased"):
        thr = f"abs(bias)/MCSE {'<=' if x == 'unbiased' else '>'} {zc:.2f}"
    elif x == "abs_bias_max":
        thr = f"abs(bias) <= {c.value:g}"
    elif x == "covers":
        half = zc * r["se0"] if np.isfinite(r["se0"]) else np.nan
        lo, hi = (
            (max(0.0, nominal - half), min(1.0, nominal + half)) if half >= 0 else (np.nan,) * 2
        )
        thr = f"in [{_g(lo)}, {_g(hi)}] ({nominal:g} +/- {zc:.2f} x {_g(r['se0'], 3)})"
    elif x == "undercovers":
        lo = nominal - zc * r["se0"] if np.isfinite(r["se0"]) else np.nan
        thr = f"< {_g(lo)} ({nominal:g} - {zc:.2f} x {_g(r['se0'], 3)})"
    elif x == "type1":
        hi = suite.alpha + zc * r["se0"] if np.isfinite(r["se0"]) else np.nan
        thr = f"<= {_g(hi)} ({suite.alpha:g} + {zc:.2f} x {_g(r['se0'], 3)})"
    elif x == "relerror":
        lim = c.value + zc * mcse if np.isfinite(mcse) else np.nan
        thr = f"abs <= {c.value:g}% + {zc:.2f} x MCSE = {_g(lim, 3)}%"
    else:  # max_fail_rate
        thr = f"<= {c.value:g}"

    if r["_problem"]:
        return False, thr, r["_problem"]

    if x == "unbiased":
        why = f"bias {_g(fig)} (MCSE {_g(mcse, 2)}) is {abs(z):.2f} MCSE from 0 ({sig})"
        if reject:
            why = f"biased: {why}; true {_g(r['true'])}, mean estimate {_g(r['true'] + fig)}"
        return not reject, thr, why
    if x == "biased":
        why = f"bias {_g(fig)} (MCSE {_g(mcse, 2)}) is {abs(z):.2f} MCSE from 0 ({sig})"
        if reject:
            return True, thr, f"caught as biased: {why}"
        return False, thr, f"not caught as biased (a naive method should be): {why}"
    if x == "abs_bias_max":
        ok = abs(fig) <= c.value
        why = f"abs(bias) = {_g(abs(fig))} {'<=' if ok else '>'} {c.value:g} (MCSE {_g(mcse, 2)})"
        return ok, thr, why if ok else f"too biased: {why}"
    if x == "covers":
        why = f"coverage {_g(fig)} (MCSE {_g(mcse, 2)}, nominal {nominal:g}; {sig})"
        if reject:
            kind = "under-covers" if fig < nominal else "over-covers"
            return False, thr, f"{kind}: {why}, outside the binomial band"
        return True, thr, why
    if x == "undercovers":
        why = f"coverage {_g(fig)} (MCSE {_g(mcse, 2)}, nominal {nominal:g}; {sig})"
        if reject:
            return True, thr, f"caught under-covering: {why}"
        return False, thr, f"not caught under-covering (a naive method should be): {why}"
    if x == "type1":
        why = f"rejection rate {_g(fig)} (MCSE {_g(mcse, 2)}, alpha {suite.alpha:g}; {sig})"
        if reject:
            return False, thr, f"inflated type I error: {why}"
        return True, thr, why
    if x == "relerror":
        why = (
            f"model SE off by {_g(fig, 3)}% of the empirical SE (MCSE {_g(mcse, 2)}%; "
            f"allowed +/-{c.value:g}%; {sig})"
        )
        if reject:
            kind = "over" if fig > 0 else "under"
            return False, thr, f"model SE {kind}states the empirical SE: {why}"
        return True, thr, why
    # max_fail_rate
    ok = fig <= c.value
    if ok:
        return True, thr, f"fail rate {_g(fig)}: {r['n_failed']} of {r['n_reps']} replications"
    why = (
        f"too many failures: {r['n_failed']} of {r['n_reps']} replications failed (fail rate "
        f"{_g(fig)} > {c.value:g})"
    )
    if r.get("_first"):
        why += f"; first: {r['_first'][:160]}"
    return ok, thr, why


# --------------------------------------------------------------------------------------------
# reports
# --------------------------------------------------------------------------------------------
def _cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown_report(suite: Suite, table: pd.DataFrame, reps: int, seed: int) -> str:
    """The summary: verdict line, settings, then one table row per check, failing first."""
    n_fail = int((table["verdict"] == "FAIL").sum())
    n = len(table)
    head = f"## palliasim checks: suite `{suite.name}` " + (
        f"FAILED: {n_fail} of {n} check(s) failed" if n_fail else f"passed: all {n} check(s)"
    )
    lines = [head, ""]
    if suite.description:
        lines += [suite.description.splitlines()[0], ""]
    lines += [
        f"seed {seed}, {reps} replications per scenario, {len(suite.used_scenarios())} "
        f"scenario(s), CI level {1 - suite.alpha:g} (alpha {suite.alpha:g}), family-wise error "
        f"rate {suite.error_rate:g} over {suite.n_statistical} statistical checks "
        f"({suite.correction}), failures: {suite.failures}",
        "",
        "| verdict | check | figure | value | MCSE | threshold | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    order = table.assign(_f=(table["verdict"] != "FAIL").astype(int)).sort_values(
        "_f", kind="stable"
    )
    for r in order.to_dict("records"):
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    f"**{r['verdict']}**" if r["verdict"] == "FAIL" else r["verdict"],
                    r["check"],
                    r["figure_name"],
                    _g(r["figure"]),
                    _g(r["mcse"], 2),
                    r["threshold"],
                    r["reason"],
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def junit_xml(suite: Suite, table: pd.DataFrame, seconds: float, reps: int, seed: int) -> str:
    """JUnit XML: one ``<testsuite>``, one ``<testcase>`` per check (a ``<failure>`` if failed)."""
    n_fail = int((table["verdict"] == "FAIL").sum())
    attrs = {
        "tests": str(len(table)),
        "failures": str(n_fail),
        "errors": "0",
        "skipped": "0",
        "time": f"{seconds:.3f}",
    }
    root = ET.Element("testsuites", {"name": "palliasim checks", **attrs})
    ts = ET.SubElement(root, "testsuite", {"name": f"palliasim.checks.{suite.name}", **attrs})
    props = ET.SubElement(ts, "properties")
    for k, v in (
        ("suite", suite.source or suite.name),
        ("seed", seed),
        ("reps", reps),
        ("alpha", suite.alpha),
        ("error_rate", suite.error_rate),
        ("correction", suite.correction),
        ("failures", suite.failures),
    ):
        ET.SubElement(props, "property", {"name": k, "value": str(v)})
    for r in table.to_dict("records"):
        tc = ET.SubElement(
            ts,
            "testcase",
            {
                "classname": f"palliasim.checks.{suite.name}.{r['scenario']}.{r['method']}",
                "name": f"{r['estimand']}: {r['expectation']}",
                "time": "0",
            },
        )
        detail = (
            f"{r['check']}\n{r['figure_name']} = {_g(r['figure'])} (MCSE {_g(r['mcse'], 2)}); "
            f"threshold: {r['threshold']}\ntrue {_g(r['true'])}; n_used {r['n_used']} of "
            f"{r['n_reps']} ({r['n_failed']} failed); z {_g(r['z'], 3)}, p {_p(r['p_value'])}, "
            f"adjusted p {_p(r['p_adjusted'])}\nsuite key: {r['key']}\n{r['reason']}"
        )
        if r["verdict"] == "FAIL":
            f = ET.SubElement(tc, "failure", {"message": r["reason"], "type": "CheckFailed"})
            f.text = detail
        else:
            ET.SubElement(tc, "system-out").text = detail
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
@dataclass
class SuiteResult:
    """The outcome of :func:`run_suite`.

    ``passed`` (bool), ``table`` (one row per check, suite order; ``CHECK_COLUMNS``),
    ``failures`` (the failing rows), ``markdown`` (the summary, failing checks first),
    ``junit`` (JUnit XML text), ``performance`` and ``results`` (the scored and raw tables),
    ``out_dir`` (where summary.md, checks.csv, junit.xml, performance.csv were written).
    """

    suite: Suite
    table: pd.DataFrame
    markdown: str
    junit: str
    performance: pd.DataFrame
    results: pd.DataFrame
    out_dir: Path
    seconds: float = 0.0
    files: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool((self.table["verdict"] == "PASS").all())

    @property
    def failures(self) -> pd.DataFrame:
        return self.table[self.table["verdict"] == "FAIL"]

    def assert_passed(self) -> None:
        """Raise AssertionError with the markdown summary if any check failed (for pytest)."""
        if not self.passed:
            raise AssertionError(
                f"{len(self.failures)} check(s) of suite '{self.suite.name}' failed:\n"
                + self.markdown
            )


def _module_files(mod_name: str) -> list[Path]:
    mod = sys.modules.get(mod_name) or importlib.import_module(mod_name)
    f = getattr(mod, "__file__", None)
    if not f:
        return []
    p = Path(f)
    if p.name == "__init__.py":
        return sorted(p.parent.rglob("*.py"))
    return [p]


def code_fingerprint(suite: Suite) -> str:
    """sha256 (12 hex) of the code behind the replications: the sources of ``sim``,
    ``estimators``, the runner, the modules defining the suite's estimator kinds (plug-ins),
    and the versions of the numerical libraries. A change to any of them gives a new run
    directory, so a resumed run never scores replications of older code."""
    from palliasim.estimators.base import REGISTRY
    from palliasim.experiments.engine import storage

    h = hashlib.sha256()
    mods = {
        "palliasim.sim",
        "palliasim.estimators",
        "palliasim.experiments.engine.runner",
        "palliasim.experiments.engine.storage",
    }
    for spec in suite.estimators.values():
        cls = REGISTRY.get(spec["kind"])
        if cls is not None:
            mods.add(cls.__module__)
    files: set[Path] = set()
    for m in sorted(mods):
        try:
            files.update(_module_files(m))
        except Exception:  # pragma: no cover - e.g. a class defined in __main__
            h.update(m.encode())
    for f in sorted(files):
        h.update(f.name.encode())
        try:
            h.update(f.read_bytes())
        except OSError:  # pragma: no cover
            pass
    versions = storage.package_versions()
    h.update(repr(sorted((str(k), str(v)) for k, v in versions.items())).encode())
    return h.hexdigest()[:12]


def run_suite(
    suite: str | Path | Mapping | Suite,
    *,
    out_dir: str | Path | None = None,
    n_jobs: int = 1,
    backend: str = "loky",
    chunk_size: int = 25,
    dask_address: str | None = None,
    seed: int | None = None,
    reps: int | None = None,
    junit: str | Path | None = "junit.xml",
    quiet: bool = True,
) -> SuiteResult:
    """Run a check suite and judge it; writes summary.md, checks.csv, junit.xml,
    performance.csv into ``out_dir`` (a new temporary directory when None).

    ``suite``: a name in ``conf/checks/`` (e.g. ``"smoke"``), a YAML path, a mapping or a
    :class:`Suite`. ``seed`` / ``reps`` override the suite's. The verdicts depend only on the
    suite, the seed and the code: never on ``n_jobs``, ``backend`` or ``chunk_size``.

    Raises ConfigError for an invalid suite or runner setting (before any compute),
    :class:`experiments.runner.RunIncomplete` when replications could not be completed.
    """
    from palliasim.experiments.engine.design import DesignPoint, validate_runner
    from palliasim.experiments.engine.runner import run_experiment
    from palliasim.experiments.scoring.performance import summarise
    from palliasim.sim.files import atomic_write_text

    t0 = time.perf_counter()
    suite = load_suite(suite)
    seed = suite.seed if seed is None else seed
    reps = suite.reps if reps is None else reps
    try:
        rcfg = validate_runner(
            {
                "n_jobs": n_jobs,
                "backend": backend,
                "chunk_size": chunk_size,
                "dask_address": dask_address,
                "seed": seed,
                "reps": reps,
                "quiet": bool(quiet),
            }
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if rcfg["reps"] < 2:
        raise ConfigError(f"invalid value {reps!r} for 'reps'; allowed: an integer >= 2")
    out = (
        Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="palliasim-check-"))
    )
    out = out.expanduser().resolve()
    base = out / "runs" / code_fingerprint(suite) / f"seed{rcfg['seed']}"
    frames = []
    for name in suite.used_scenarios():
        methods = suite.methods_for(name)
        point = DesignPoint(factors={}, scenario=suite.scenarios[name], label=name)
        try:
            res = run_experiment(
                [point],
                {m: suite.estimators[m] for m in methods},
                rcfg["reps"],
                rcfg["seed"],
                base / name,
                n_jobs=rcfg["n_jobs"],
                backend=rcfg["backend"],
                chunk_size=rcfg["chunk_size"],
                dask_address=rcfg["dask_address"],
                quiet=bool(quiet),
                progress=not quiet,
                config={"suite": suite.source or suite.name, "scenario": name},
            )
        except ValueError as exc:  # e.g. a run directory of another grid
            raise ConfigError(f"scenario '{name}': {exc}") from None
        frames.append(res)
    results = pd.concat(frames, ignore_index=True)
    perf = summarise(results, by=["scenario"], alpha=suite.alpha, failures=suite.failures)
    table = evaluate(suite, perf, results)
    seconds = time.perf_counter() - t0
    md = markdown_report(suite, table, rcfg["reps"], rcfg["seed"])
    xml = junit_xml(suite, table, seconds, rcfg["reps"], rcfg["seed"])
    files = {
        "summary": atomic_write_text(out / "summary.md", md),
        "checks": atomic_write_text(out / "checks.csv", table.to_csv(index=False)),
        "performance": atomic_write_text(out / "performance.csv", perf.to_csv(index=False)),
    }
    if junit:
        jp = Path(junit)
        files["junit"] = atomic_write_text(jp if jp.is_absolute() else out / jp, xml)
    return SuiteResult(
        suite=suite,
        table=table,
        markdown=md,
        junit=xml,
        performance=perf,
        results=results,
        out_dir=out,
        seconds=seconds,
        files=files,
    )
