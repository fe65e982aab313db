"""Typed settings, built and validated once at the entry point (the CLI or the Python API):

    plain = config.compose(["reps=20"])      # or config.to_plain(cfg) under Hydra
    settings = Settings.from_config(plain)   # ConfigError naming the key, before any compute
    tasks.simulate.run(settings)

Defaults live only in ``conf/`` YAML: every field here is required, and a Python caller gets
the defaults by composing the packaged config (``palliasim.experiments.api``). Each dataclass
validates itself in ``__post_init__`` with the shared rules of :mod:`palliasim.sim.rules`, and
``from_config`` refuses unknown keys (``+task.foo=1``, ``design.sbuset``) naming the allowed
ones. Task settings follow one pattern (:class:`TaskSettings`): the fields are the task's
``task.*`` keys (``name`` aside).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import joblib

from palliasim.estimators.base import KindError, build_estimator
from palliasim.experiments.engine.design import BACKENDS
from palliasim.experiments.planning.endpoints import ENDPOINTS
from palliasim.experiments.scoring.columns import column_options
from palliasim.experiments.scoring.document import KINDS as REPORT_KINDS
from palliasim.sim.errors import ConfigError
from palliasim.sim.rules import (
    int_at_least,
    is_bool,
    number_in,
    one_of,
    open_prob,
    positive,
    reject_unknown,
    require,
    rule,
)
from palliasim.sim.scenario import SECTIONS, read_scenario_file

TASKS = ("simulate", "calibrate", "export", "analyse", "score", "power", "check", "report")
#: top-level keys besides the scenario sections (sim.scenario.SECTIONS)
TOP_KEYS = (
    "task",
    "runner",
    "design",
    "estimators",
    "seed",
    "reps",
    "alpha",
    "failures",
    "out_dir",
    "quiet",
    "data",
    "input",
    "suite",
    "solve",
    "description",
    "scenario_file",
)
FAILURE_POLICIES = ("exclude", "count")
#: tasks that run the selected estimators (``estimators`` validated for them only)
ESTIMATOR_TASKS = ("simulate", "analyse")
#: measures whose Monte Carlo SE ``task.target_mcse`` can target (scoring.performance.reps_needed)
MCSE_MEASURES = ("bias", "empse", "coverage", "becoverage", "rejection")


@rule("an integer >= 1, or -1 (all cores)")
def _n_jobs(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and (x >= 1 or x == -1)


@rule("null or a non-empty text")
def _optional_text(x: Any) -> bool:
    return x is None or (isinstance(x, str) and bool(x.strip()))


def _optional(check):
    @rule(f"null or {check.allowed}")
    def inner(x: Any) -> bool:
        return x is None or check(x)

    return inner


def _list_of(check, *, distinct: bool = False, example: str = ""):
    text = f"a non-empty list, each {check.allowed}" + (", all distinct" if distinct else "")

    @rule(text + (f", e.g. {example}" if example else ""))
    def inner(x: Any) -> bool:
        ok = isinstance(x, (list, tuple)) and bool(x) and all(check(v) for v in x)
        return ok and (not distinct or len(set(x)) == len(x))

    return inner


def _whole(v: Any) -> Any:
    """An integral float (``reps=100.0`` from a computation) as an int; anything else as is."""
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return v


def _take(cls, given: Mapping[str, Any], where: str, skip: tuple[str, ...] = ()) -> dict:
    """The values of ``cls``'s fields from ``given``; unknown or missing keys -> ConfigError."""
    names = [f.name for f in fields(cls)]
    given = {k: v for k, v in given.items() if k not in skip}
    reject_unknown(given, names, where)
    missing = [n for n in names if n not in given]
    if missing:
        raise ConfigError(
            f"config key '{where}.{missing[0]}' is missing (its default is in conf/; compose the "
            "config, e.g. palliasim.experiments.config.compose())"
        )
    return {n: given[n] for n in names}


def _set(obj, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunnerSettings:
    """How replications run: the ``runner`` group plus the top-level ``seed``, ``reps``, ``quiet``.
    Results depend only on ``seed`` and ``reps`` (and the design), never on the others."""

    n_jobs: int
    backend: str
    chunk_size: int
    dask_address: str | None
    seed: int
    reps: int
    quiet: bool

    def __post_init__(self) -> None:
        for name in ("n_jobs", "chunk_size", "seed", "reps"):
            _set(self, name, _whole(getattr(self, name)))
        require(self.n_jobs, "runner.n_jobs", _n_jobs)
        require(self.backend, "runner.backend", one_of(*BACKENDS))
        require(self.chunk_size, "runner.chunk_size", int_at_least(1))
        require(self.seed, "seed", int_at_least(0))
        require(self.reps, "reps", int_at_least(1))
        require(self.quiet, "quiet", is_bool)
        require(self.dask_address, "runner.dask_address", _optional_text)
        if self.dask_address is not None and self.backend != "dask":
            raise ConfigError(
                f"invalid value {self.dask_address!r} for config key 'runner.dask_address': "
                f"an address needs runner.backend=dask (runner.backend={self.backend!r}); "
                "allowed: null"
            )
        if self.backend == "dask":
            try:  # dask is optional (palliasim[dask]): checked only when chosen
                import dask.distributed  # noqa: F401
            except ImportError as exc:  # pragma: no cover - dask is installed in dev
                raise ConfigError(
                    "invalid value 'dask' for config key 'runner.backend': it needs "
                    "dask[distributed] (pip install 'palliasim[dask]'); allowed values without "
                    f"it: loky, threading ({exc})"
                ) from None

    @classmethod
    def from_config(cls, plain: Mapping[str, Any]) -> RunnerSettings:
        runner = dict(plain.get("runner") or {})
        return cls(
            **_take(_RunnerGroup, runner, "runner"),
            seed=plain.get("seed"),
            reps=plain.get("reps"),
            quiet=plain.get("quiet"),
        )

    @property
    def workers(self) -> int:
        """The number of workers (``n_jobs=-1``: every core)."""
        return joblib.cpu_count() if self.n_jobs == -1 else self.n_jobs

    def manifest_entry(self) -> dict:
        return {
            "n_jobs": self.n_jobs,
            "backend": self.backend,
            "chunk_size": self.chunk_size,
            "reps": self.reps,
            "seed": self.seed,
            "dask_address": self.dask_address,
        }


@dataclass(frozen=True)
class _RunnerGroup:
    """The keys of conf/runner/*.yaml (used to check them; RunnerSettings holds the values)."""

    n_jobs: Any
    backend: Any
    chunk_size: Any
    dask_address: Any


@dataclass(frozen=True)
class DesignSettings:
    """The ``design`` group: factors (dotted scenario key -> levels) and an optional subset;
    their content is checked by engine.design.expand_design (it needs the scenario)."""

    factors: dict
    subset: list | None

    @classmethod
    def from_config(cls, plain: Mapping[str, Any]) -> DesignSettings:
        design = plain.get("design") or {}
        if not isinstance(design, Mapping):
            raise ConfigError(
                f"invalid value {design!r} for config key 'design'; allowed: a mapping with "
                "factors and subset (conf/design/)"
            )
        got = _take(cls, {"factors": {}, "subset": None, **design}, "design")
        return cls(factors=dict(got["factors"] or {}), subset=got["subset"])


# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSettings:
    """Base of the task settings: the fields are the task's ``task.*`` keys. A subclass
    validates its fields in ``__post_init__`` (rules of sim.rules, key ``task.<field>``)."""

    name: ClassVar[str] = ""

    @classmethod
    def from_config(cls, task: Mapping[str, Any]) -> TaskSettings:
        return cls(**_take(cls, task, "task", skip=("name",)))


@dataclass(frozen=True)
class SimulateSettings(TaskSettings):
    name: ClassVar[str] = "simulate"
    plots: bool
    max_rows: int
    target_mcse: dict

    def __post_init__(self) -> None:
        require(self.plots, "task.plots", is_bool)
        require(self.max_rows, "task.max_rows", int_at_least(1))
        targets = self.target_mcse if self.target_mcse is not None else {}
        if not isinstance(targets, Mapping):
            raise ConfigError(
                f"invalid value {targets!r} for config key 'task.target_mcse'; allowed: a "
                f"mapping measure -> target MCSE, measures: {', '.join(MCSE_MEASURES)}"
            )
        reject_unknown(targets, MCSE_MEASURES, "task.target_mcse")
        for measure, target in targets.items():
            require(target, f"task.target_mcse.{measure}", positive)
        _set(self, "target_mcse", dict(targets))


@dataclass(frozen=True)
class CalibrateSettings(TaskSettings):
    name: ClassVar[str] = "calibrate"
    n: int

    def __post_init__(self) -> None:
        require(self.n, "task.n", int_at_least(1000))


@dataclass(frozen=True)
class ExportSettings(TaskSettings):
    name: ClassVar[str] = "export"
    format: str

    def __post_init__(self) -> None:
        require(self.format, "task.format", one_of("csv", "parquet"))


@dataclass(frozen=True)
class AnalyseSettings(TaskSettings):
    name: ClassVar[str] = "analyse"


@dataclass(frozen=True)
class ScoreSettings(TaskSettings):
    """task=score: the column playing each role (a name; ``true`` may be a number; None = no
    such column) and ``by`` (None = every other column), rules in scoring/columns.py."""

    name: ClassVar[str] = "score"
    estimate: Any
    se: Any
    true: Any
    method: Any
    estimand: Any
    rep: Any
    status: Any
    ci_low: Any
    ci_high: Any
    p_value: Any
    true_mcse: Any
    by: Any

    def __post_init__(self) -> None:
        cols, by = column_options({f.name: getattr(self, f.name) for f in fields(self)})
        for role, value in cols.items():
            _set(self, role, value)
        _set(self, "by", by)


@dataclass(frozen=True)
class ReportSettings(TaskSettings):
    """task=report: ``kind`` of the run directory (None: from its manifest / files)."""

    name: ClassVar[str] = "report"
    kind: str | None

    def __post_init__(self) -> None:
        require(self.kind, "task.kind", _optional(one_of(*REPORT_KINDS)))


@dataclass(frozen=True)
class CheckSettings(TaskSettings):
    """The run options of a check suite: ``seed`` / ``reps`` (None: the suite's own) and the
    JUnit file (relative to the output directory, or absolute; None: not written)."""

    name: ClassVar[str] = "check"
    junit: str | None
    seed: int | None
    reps: int | None

    def __post_init__(self) -> None:
        require(self.junit, "task.junit", _optional_text)
        require(self.seed, "task.seed", _optional(int_at_least(0)))
        require(self.reps, "task.reps", _optional(int_at_least(2)))


_SIZE = int_at_least(10)
_GRID = _list_of(_SIZE, distinct=True, example="[100, 200, 300]")


@rule("a mapping endpoint -> null | auto | a list of sizes")
def _mapping(x: Any) -> bool:
    return isinstance(x, Mapping)


@dataclass(frozen=True)
class PowerSettings(TaskSettings):
    """task=power (conf/task/power.yaml documents every key). Grids come back sorted,
    ``target_power`` sorted, ``endpoints`` in the canonical order of planning.ENDPOINTS."""

    name: ClassVar[str] = "power"
    scenario: str | None
    scenario_null: str | None
    type1: bool
    n_grid: list
    n_grid_by_endpoint: dict
    allocation: float | None
    target_power: list
    endpoints: list
    ci_halfwidth: float
    precision_band: list | None
    reps_start: int
    reps_step: int
    reps_max: int
    reps_growth: float
    include_lmm: bool
    methods: dict
    chunk_size: int | None
    analytic_n: int
    projection_n: int
    n_boot: int
    plots: bool
    max_rows: int

    def __post_init__(self) -> None:
        for key in ("scenario", "scenario_null"):
            require(getattr(self, key), f"task.{key}", _optional_text)
        for key in ("type1", "include_lmm", "plots"):
            require(getattr(self, key), f"task.{key}", is_bool)
        _set(self, "n_grid", sorted(require(self.n_grid, "task.n_grid", _GRID)))
        byep = self.n_grid_by_endpoint or {}
        require(byep, "task.n_grid_by_endpoint", _mapping)
        reject_unknown(byep, ENDPOINTS, "task.n_grid_by_endpoint")
        clean = {}
        for ep, v in byep.items():
            if v is None or v == "auto":
                clean[ep] = v
            else:
                clean[ep] = sorted(require(v, f"task.n_grid_by_endpoint.{ep}", _GRID))
        _set(self, "n_grid_by_endpoint", clean)
        require(self.allocation, "task.allocation", _optional(open_prob))
        tp = self.target_power
        tp = [tp] if isinstance(tp, (int, float)) and not isinstance(tp, bool) else tp
        require(tp, "task.target_power", _list_of(open_prob))
        _set(self, "target_power", sorted(float(x) for x in tp))
        eps = [self.endpoints] if isinstance(self.endpoints, str) else self.endpoints
        require(eps, "task.endpoints", _list_of(one_of(*ENDPOINTS)))
        _set(self, "endpoints", [e for e in ENDPOINTS if e in eps])
        require(
            self.ci_halfwidth, "task.ci_halfwidth", number_in(0, 0.5, open_lo=True, open_hi=True)
        )
        band = self.precision_band
        if band is not None:
            require(band, "task.precision_band", _list_of(number_in(0, 1)))
            if len(band) != 2 or band[0] > band[1]:
                raise ConfigError(
                    f"invalid value {band!r} for config key 'task.precision_band'; allowed: "
                    "[lo, hi] with 0 <= lo <= hi <= 1, or null (ci_halfwidth everywhere)"
                )
            _set(self, "precision_band", [float(x) for x in band])
        for key in ("reps_start", "reps_step", "reps_max", "n_boot", "max_rows"):
            require(getattr(self, key), f"task.{key}", int_at_least(1))
        require(self.reps_growth, "task.reps_growth", number_in(1, 10))
        _set(self, "reps_growth", float(self.reps_growth))
        require(self.chunk_size, "task.chunk_size", _optional(int_at_least(1)))
        require(self.analytic_n, "task.analytic_n", int_at_least(1000))
        require(self.projection_n, "task.projection_n", int_at_least(100))
        if self.reps_start > self.reps_max:
            raise ConfigError(
                f"invalid value {self.reps_start} for config key 'task.reps_start': it exceeds "
                f"task.reps_max={self.reps_max}; allowed: reps_start <= reps_max"
            )
        methods = self.methods
        if not isinstance(methods, Mapping):
            raise ConfigError(
                f"invalid value {methods!r} for config key 'task.methods'; allowed: a mapping "
                "name -> {kind: ..., options} (null drops a method)"
            )
        for m, spec in methods.items():
            if spec is None:
                continue
            if not isinstance(spec, Mapping) or "kind" not in spec:
                raise ConfigError(
                    f"invalid value {spec!r} for config key 'task.methods.{m}'; allowed: a "
                    "mapping with a 'kind' (and options), or null"
                )
            require(spec.get("reps_max"), f"task.methods.{m}.reps_max", _optional(int_at_least(1)))
        _set(self, "methods", {m: (dict(s) if s is not None else None) for m, s in methods.items()})


TASK_SETTINGS: dict[str, type[TaskSettings]] = {
    cls.name: cls
    for cls in (
        SimulateSettings,
        CalibrateSettings,
        ExportSettings,
        AnalyseSettings,
        ScoreSettings,
        ReportSettings,
        CheckSettings,
        PowerSettings,
    )
}


def estimator_specs(specs: Any, alpha: float) -> dict[str, dict]:
    """``estimators.<name>: {kind: ..., options...}`` -> {name: {kind, **options}} with the run's
    one ``alpha``; every estimator built once to check its options (ConfigError naming it)."""
    if not isinstance(specs, Mapping) or not specs:
        raise ConfigError("no estimators selected; choose some, e.g. estimators=[lmm,cox]")
    out = {}
    for name, spec in specs.items():
        if not isinstance(spec, Mapping) or "kind" not in spec:
            raise ConfigError(f"config key 'estimators.{name}' must be a mapping with a 'kind'")
        spec = dict(spec)
        kind = spec.pop("kind")
        spec["alpha"] = alpha  # one global alpha per run
        try:
            build_estimator(kind, name=name, **spec)
        except KindError as exc:
            raise ConfigError(
                f"invalid value {kind!r} for config key 'estimators.{name}.kind': {exc.reason}"
            ) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"estimators.{name}: {exc}") from exc
        out[name] = {"kind": kind, **spec}
    return out


def _check_scenario_file(plain: Mapping[str, Any]) -> None:
    """``scenario_file`` records the file of ``scenario=PATH`` (config.scenario_files); set by
    hand it must name the file the scenario sections came from."""
    given = plain.get("scenario_file")
    if given is None:
        return
    name = plain.get("scenario_name")
    try:
        ok = read_scenario_file(given).name == name
    except ConfigError:
        ok = False
    if not ok:
        raise ConfigError(
            f"invalid value {given!r} for config key 'scenario_file': it records the file given "
            f"as scenario=PATH (scenario '{name}' is not that file's); allowed: null, or give "
            "scenario=PATH instead"
        )


# --------------------------------------------------------------------------------------------
# the whole configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Every setting of one invocation. ``plain`` is the resolved config (recorded in the
    manifest; the scenario sections are turned into a ``sim.Scenario`` by config.scenario_from,
    which validates them)."""

    task: TaskSettings
    runner: RunnerSettings
    design: DesignSettings
    alpha: float
    failures: str
    out_dir: str | None
    data: str | None
    input: str | None
    suite: str | None
    estimators: dict | None
    plain: dict

    @property
    def task_name(self) -> str:
        return self.task.name

    @classmethod
    def from_config(cls, plain: Mapping[str, Any]) -> Settings:
        """Validate a composed, resolved config (ConfigError naming the key)."""
        reject_unknown(plain, (*TOP_KEYS, *SECTIONS), "")
        task = plain.get("task")
        if not isinstance(task, Mapping) or "name" not in task:
            raise ConfigError(
                f"invalid value {task!r} for config key 'task'; allowed values: {', '.join(TASKS)}"
            )
        name = require(task["name"], "task.name", one_of(*TASKS))
        alpha = require(plain.get("alpha"), "alpha", open_prob)
        for key in ("out_dir", "data", "input", "suite", "scenario_file"):
            require(plain.get(key), key, _optional_text)
        _check_scenario_file(plain)
        return cls(
            task=TASK_SETTINGS[name].from_config(task),
            runner=RunnerSettings.from_config(plain),
            design=DesignSettings.from_config(plain),
            alpha=alpha,
            failures=require(plain.get("failures"), "failures", one_of(*FAILURE_POLICIES)),
            out_dir=plain.get("out_dir"),
            data=plain.get("data"),
            input=plain.get("input"),
            suite=plain.get("suite"),
            estimators=(
                estimator_specs(plain.get("estimators"), alpha) if name in ESTIMATOR_TASKS else None
            ),
            plain=dict(plain),
        )
