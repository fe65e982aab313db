"""The schema of a CI check suite (:func:`load_suite`, :class:`Suite`, :class:`CheckSpec`). CI checks: estimator bias, coverage, type I error, failure rate and model-SE calibration as
pass/fail verdicts, so a build fails when a change makes an estimator biased or under-covering.

    palliasim task=check suite=smoke           # exit 0: every check passed, 1: some failed,
    palliasim task=check suite=/path/my.yaml   # 2: invalid suite (the message names the key)

    from palliasim.experiments.checks import run_suite   # the same from Python / pytest
    result = run_suite("smoke", out_dir=tmp_path, n_jobs=2)
    assert result.passed, result.markdown

A *suite* is YAML (``conf/checks/<name>.yaml``, or any file): scenarios x estimators x
expectations.

Trust: a suite file is code. Its ``imports:`` are imported with ``importlib.import_module``
while the suite is validated, before any check runs, and importing a module runs that
module's code with your permissions. Run only suites you would run as a Python script: your
own, or reviewed like code (the same for the modules they name). Every key is validated before anything runs (:func:`load_suite`); the
replications go through :func:`engine.runner.run_experiment` (parallel, resumable, bit for
bit identical whatever the number of workers), are scored by
:func:`scoring.performance.summarise` and judged (:func:`checks.judging.evaluate`).

Suite keys (defaults in brackets)::

    description: free text
    imports: [my_package.estimators]   # modules to import first (registers a team's own kinds)
    seed: 1                   # root seed of every random stream
    reps: 200                 # replications per scenario
    alpha: 0.05               # nominal level of the estimators' CIs and tests (one per suite)
    error_rate: 0.01          # family-wise error rate of the suite's statistical checks
    correction: holm          # holm | bonferroni
    failures: exclude         # exclude | count (scoring.performance)
    scenarios:                # name -> a preset (or a scenario file) plus dotted overrides
      randomized: {preset: randomized, overrides: {cohort.n: 200, truth.n: 50000}}
      mine: {preset: scenarios/mine.yaml}   # a file, relative to the suite file's directory
    estimators:               # name -> {kind, options} as in conf/estimators/*.yaml
      cox: {kind: cox, endpoints: [pfs, os]}
      mine: {kind: "my_package.module:MyEstimator"}  # a subclass of palliasim.Estimator
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

import importlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from palliasim.experiments.engine.plan import build_estimators, normalise_specs
from palliasim.sim.errors import ConfigError
from palliasim.sim.rules import (
    int_at_least,
    nonnegative,
    one_of,
    open_prob,
    prob,
    reject_unknown,
    require,
)
from palliasim.sim.scenario import PRESETS, is_scenario_path, load_scenario, read_scenario_file

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


_CONTRADICTIONS = (("unbiased", "biased"), ("covers", "undercovers"))


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


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


def _num(v: Any) -> float | None:
    """A number (YAML reads ``1e-4`` as a string: accept numeric strings too), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, str) and _FLOAT_RE.match(v.strip()):
        return float(v)
    return None


def _prob(v: Any, key: str) -> float:
    """A number in (0, 1) (numeric strings accepted, see :func:`_num`)."""
    x = _num(v)
    require(v if x is None else x, key, open_prob)
    return x


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
    """Import the suite's ``imports:`` (this RUNS their code: a suite file is trusted like code,
    see the module docstring)."""
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


def _scenarios(raw: Any, base_dir: Path | None = None) -> dict:
    """name -> Scenario: a preset, or a scenario file (``preset: path/to/x.yaml``, relative to
    ``base_dir``, the suite file's directory; the current directory for a mapping)."""
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
        reject_unknown(spec, SCENARIO_KEYS, where)
        if "preset" not in spec:
            raise ConfigError(
                f"suite key '{where}.preset' is missing; allowed values: {', '.join(PRESETS)}"
            )
        preset = spec["preset"]
        if is_scenario_path(preset):
            try:  # a scenario file: validated like a preset, relative to the suite file
                preset = str(read_scenario_file(preset, relative_to=base_dir).path)
            except ConfigError as exc:
                raise ConfigError(f"suite key '{where}.preset': {exc}") from None
        elif preset not in PRESETS:
            hint = " (YAML reads an unquoted null as nothing: write preset: 'null')"
            raise ConfigError(
                f"invalid value {preset!r} for suite key '{where}.preset'; allowed values: "
                f"{', '.join(PRESETS)}{hint if preset is None else ''}, or a scenario file "
                "path/to/x.yaml (relative to the suite file)"
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
    require(v if x is None else x, key, nonnegative if kind == "nonneg" else prob)
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
        reject_unknown(c, CHECK_KEYS, where)
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
        reject_unknown(exp, tuple(EXPECTATIONS), f"{where}.expect")
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
        reject_unknown(raw, SUITE_KEYS, "")
        cfg = {**SUITE_DEFAULTS, **raw}
        for k in ("scenarios", "estimators", "checks"):
            if k not in raw:
                raise ConfigError(f"suite key '{k}' is missing")
        if not isinstance(cfg["description"], str):
            raise ConfigError(
                f"invalid value {cfg['description']!r} for suite key 'description'; allowed: text"
            )
        imports = _import_modules(cfg["imports"])
        seed = require(cfg["seed"], "seed", int_at_least(0))
        reps = require(cfg["reps"], "reps", int_at_least(2))
        alpha = _prob(cfg["alpha"], "alpha")
        error_rate = _prob(cfg["error_rate"], "error_rate")
        correction = require(cfg["correction"], "correction", one_of(*CORRECTIONS))
        failures = require(cfg["failures"], "failures", one_of(*FAILURE_POLICIES))
        base_dir = Path(where).parent if Path(where).is_absolute() else None  # a suite file
        scenarios = _scenarios(cfg["scenarios"], base_dir)
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
