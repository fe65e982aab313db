"""The estimator contract: ``Estimator.fit(cohort, rng) -> list[Estimate]``.

1. ``__init__`` stores options only; every option is a config key (conf/estimators/*.yaml).
2. ``fit`` is deterministic given (cohort, rng) and never touches global RNG state.
3. Statistical trouble (non-convergence, singular matrix, separation, no events, boundary variance)
   never raises: rows come back with status ``failed`` or ``warning`` and the library's message.
   Library warnings are captured per fit, never printed. Only programming errors raise.
4. Estimates are plain floats on the inference scale (log HR, log OR, mean or risk difference),
   CIs computed from ``alpha`` by the estimator itself; no library Results object leaves ``fit``.
5. Each estimator states its target estimands (names as in sim/truth.py) and, in its docstring,
   whether they are conditional or marginal.
6. ``engine`` selects the numerical engine among the class's ``engines``: ``reference`` (the
   libraries: statsmodels, lifelines, scipy) or ``fast`` (the numpy kernels of
   :mod:`estimators.fast`, same rows as the reference). Left unset ("" or None) it is ``fast``
   where the class has it, else ``reference``; an engine the class lacks is a ValueError.
   ``fit`` labels every row with the estimator's engine (``Estimate.engine``).
Subclasses implement ``_fit(cohort, rng) -> list[Estimate]`` and raise :class:`StatisticalTrouble`
(or let a LinAlgError / library convergence error propagate) for statistical failures.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from palliasim.sim.estimands import plausible_bound

OK, WARNING, FAILED = "ok", "warning", "failed"
ESTIMATE_COLUMNS = (
    "method",
    "estimand",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "ci_level",
    "p_value",
    "n_used",
    "status",
    "message",
    "seconds",
    "engine",
)
ENGINES = ("reference", "fast")
NAN = float("nan")


class StatisticalTrouble(Exception):
    """Raised inside ``_fit`` for data-driven failures (reported as status=failed, never raised)."""


@dataclass
class Estimate:
    """One row of results: one method, one estimand, one replication."""

    method: str
    estimand: str
    estimate: float = NAN
    se: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    p_value: float = NAN
    n_used: int = 0
    status: str = OK
    message: str = ""
    seconds: float = 0.0
    engine: str = "reference"
    #: nominal coverage of [ci_low, ci_high]: 1 - alpha unless the estimator widened it (e.g. a
    #: Bonferroni-simultaneous interval, 1 - alpha / k); NaN until ``Estimator.fit`` sets it
    ci_level: float = NAN

    def as_dict(self) -> dict:
        return asdict(self)


#: the numerical errors every fit reports as a status (never raised past ``fit``)
_BASE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    StatisticalTrouble,
    np.linalg.LinAlgError,
    ZeroDivisionError,
    FloatingPointError,
    OverflowError,
)
#: the reference libraries' own (module, class): caught once the library is loaded. Read from
#: ``sys.modules``, not imported: a library that was never imported cannot have raised, and
#: importing lifelines only to name its exception costs each worker ~1 s of start-up.
_LIBRARY_EXCEPTIONS = (
    ("lifelines.exceptions", "ConvergenceError"),
    ("statsmodels.tools.sm_exceptions", "PerfectSeparationError"),
)


def statistical_exceptions() -> tuple[type[BaseException], ...]:
    """The exception types a fit turns into a status row: the numerical errors, plus
    lifelines' ConvergenceError and statsmodels' PerfectSeparationError when loaded."""
    extra = tuple(
        getattr(mod, name)
        for modname, name in _LIBRARY_EXCEPTIONS
        if (mod := sys.modules.get(modname)) is not None and hasattr(mod, name)
    )
    return _BASE_EXCEPTIONS + extra if extra else _BASE_EXCEPTIONS


REGISTRY: dict[str, type[Estimator]] = {}


def register(kind: str):
    """Class decorator: make an estimator selectable from config as ``kind``."""

    def deco(cls):
        if kind in REGISTRY:
            raise ValueError(f"estimator kind '{kind}' registered twice")
        cls.kind = kind
        REGISTRY[kind] = cls
        return cls

    return deco


@dataclass
class Estimator:
    """Base class. Options are dataclass fields of subclasses; ``name`` labels the rows."""

    name: str = ""
    alpha: float = 0.05
    engine: str = ""  # "" (or None) = "fast" where the class has it, else "reference"
    kind: ClassVar[str] = ""
    estimands: ClassVar[tuple[str, ...]] = ()
    engines: ClassVar[tuple[str, ...]] = ("reference",)
    options: dict = field(default_factory=dict, repr=False)
    #: whether ``fit`` draws random numbers (bootstrap, imputation, Monte Carlo tests); True
    #: (safe) unless a class knows better: see :meth:`uses_rng`
    draws_random: ClassVar[bool] = True

    def __post_init__(self):
        if not self.name:
            self.name = self.kind
        if not (0 < self.alpha < 1):
            raise ValueError(f"estimators.{self.name}.alpha must be in (0, 1); got {self.alpha}")
        if self.engine is None or self.engine == "":
            self.engine = "fast" if "fast" in self.engines else "reference"
        if self.engine not in self.engines:
            raise ValueError(
                f"estimators.{self.name}.engine='{self.engine}' is not available for kind "
                f"'{self.kind}'; allowed values: {', '.join(self.engines)}"
            )

    def targets(self) -> tuple[str, ...]:
        """Estimand names this estimator reports (may depend on options)."""
        return self.estimands

    def uses_rng(self) -> bool:
        """Whether ``fit`` with these options draws from its ``rng``. When False the runner
        passes ``rng=None`` and skips building the replication's estimator Generator
        (SeedSequence + PCG64, 25-50 us: about 1 ms over a default replication's 21 fits). The
        other streams are unaffected (each cell has its own SeedSequence)."""
        return self.draws_random

    def needs(self) -> frozenset[str] | None:
        """The patient columns ``fit`` reads with these options, or None (the default: the whole
        cohort, visits included). The runner generates only what a replication's estimators
        need (``sim.generate.level_for``): a column read but not listed is a KeyError that says
        so, and tests/test_needs.py checks every configured estimator against the whole cohort."""
        return None

    def _fit(self, cohort, rng) -> list[Estimate]:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, cohort, rng: np.random.Generator | None = None) -> list[Estimate]:
        """Run the estimator; statistical trouble becomes status rows, warnings are captured."""
        t0 = time.perf_counter()
        with capture() as msgs, fp_errors_ignored():
            try:
                rows = self._fit(cohort, rng)
            except statistical_exceptions() as exc:
                msg = f"{type(exc).__name__}: {exc}".strip()
                rows = [Estimate(self.name, e, status=FAILED, message=msg) for e in self.targets()]
        dt = (time.perf_counter() - t0) / max(len(rows), 1)
        if msgs:
            add_messages(rows, msgs)
        name, engine, level = self.name, self.engine, 1.0 - self.alpha
        for r in rows:
            r.method = name
            r.engine = engine
            r.seconds = dt
            if not r.ci_level == r.ci_level:  # NaN: the estimator kept the nominal level
                r.ci_level = level
            status = r.status
            if status == FAILED:
                continue
            if not _finite(r.estimate):
                r.status = FAILED
                r.message = r.message or "non-finite estimate"
            elif status == OK and (why := implausible(r)):
                r.status = WARNING
                r.message = f"{r.message}; {why}" if r.message else why
        return rows


def _finite(x) -> bool:
    """math.isfinite for a number (what rows hold), numpy's test for anything else."""
    try:
        return math.isfinite(x)
    except TypeError:
        return bool(np.all(np.isfinite(x)))


def implausible(r: Estimate) -> str:
    """Why row ``r``'s estimate or SE is implausible for its estimand's scale ('' if it is not):
    an infinite or negative SE, or |estimate| or SE beyond ``sim.estimands.plausible_bound``."""
    se = r.se
    if se == se and (not _finite(se) or se < 0):
        return f"implausible SE {se!r}"
    bound = plausible_bound(r.estimand)
    if bound is None:
        return ""
    if -bound <= r.estimate <= bound and not se > bound:  # (the usual case; NaN SE passes)
        return ""
    if abs(r.estimate) > bound:
        return f"implausible estimate {r.estimate:.4g} (|estimate| > {bound:g} on this scale)"
    if se == se and se > bound:
        return f"implausible SE {se:.4g} (> {bound:g}, the scale of the estimand)"
    return ""


_IGNORED_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def warning_texts(caught, drop=()) -> list[str]:
    """``"Category: first line"`` of each caught warning, once each, in order.

    Deprecation-type warnings are ignored, and so is any whose text contains one of ``drop``.
    """
    seen: list[str] = []
    for w in caught:
        if issubclass(w.category, _IGNORED_WARNINGS):
            continue
        first = str(w.message).strip().splitlines()
        first = first[0][:200] if first else ""
        if any(d in first for d in drop):
            continue
        text = f"{w.category.__name__}: {first}"
        if text not in seen:
            seen.append(text)
    return seen


class Captured(list):
    """What :func:`capture` caught: the list of :func:`warning_texts` (filled on exit) and, in
    ``records``, the warnings themselves (for callers that act on a category or text)."""

    records: list


_ALWAYS = ("always", None, Warning, None, 0)  # = warnings.simplefilter("always")
# catch_warnings' own steps, by the same module attributes (CPython 3.10-3.12); elsewhere
# catch_warnings itself (3.13+ locks the filters and renames the mutation hook)
_SWAP_FILTERS = all(
    hasattr(warnings, a) for a in ("_filters_mutated", "_showwarnmsg_impl", "_showwarning_orig")
)


class capture:  # noqa: N801 - used as a function: ``with capture() as msgs:``
    """The one warning-capture helper: ``with capture() as msgs:`` records every warning raised
    inside (never printed); on exit ``msgs`` holds their :func:`warning_texts` and
    ``msgs.records`` the warning objects. Used by ``Estimator.fit`` (every estimator), per
    endpoint by the survival family and around library calls in :mod:`estimators.engines`.

    The same as ``warnings.catch_warnings(record=True)`` + ``simplefilter("always")`` (which it
    uses where the interpreter's warnings module differs), done as catch_warnings does it but
    with the one filter that matters: the filters list becomes ``[always]`` (an "always" filter
    for Warning in front matches every warning, so the rest are never consulted) instead of a
    copy with it inserted. It runs once per fit: 0.3 instead of 1.9 us.
    (A class, not a generator context manager, for the same reason.)"""

    __slots__ = ("_drop", "_saved", "_msgs")

    def __init__(self, drop=()):
        self._drop = drop

    def __enter__(self) -> Captured:
        msgs = self._msgs = Captured()
        if _SWAP_FILTERS:
            w = warnings
            self._saved = (w.filters, w.showwarning, w._showwarnmsg_impl)
            w.filters = [_ALWAYS]
            w._filters_mutated()
            w.showwarning = w._showwarning_orig
            msgs.records = []
            w._showwarnmsg_impl = msgs.records.append
        else:
            self._saved = warnings.catch_warnings(record=True)
            msgs.records = self._saved.__enter__()
            warnings.simplefilter("always")
        return msgs

    def __exit__(self, *exc) -> None:
        try:
            if self._msgs.records:
                self._msgs.extend(warning_texts(self._msgs.records, self._drop))
        finally:
            if _SWAP_FILTERS:
                w = warnings
                w.filters, w.showwarning, w._showwarnmsg_impl = self._saved
                w._filters_mutated()
            else:
                self._saved.__exit__(*exc)


# numpy's floating-point error state is a context variable holding an "extobj" (numpy >= 2):
# setting a prebuilt one is what np.errstate(all="ignore") does on entry, without building it
try:
    from numpy._core._ufunc_config import _extobj_contextvar as _FP_STATE
    from numpy._core._ufunc_config import _make_extobj

    _FP_IGNORE = _make_extobj(all="ignore")
except (ImportError, AttributeError, TypeError):  # another numpy: np.errstate itself
    _FP_STATE = None


class fp_errors_ignored:  # noqa: N801 - used as a function: ``with fp_errors_ignored():``
    """``np.errstate(all="ignore")`` with the error state built once (0.2 instead of 1.2 us per
    fit: numpy's buffer size and error callback as at import, which palliasim never changes);
    np.errstate itself where numpy's internals differ."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        if _FP_STATE is not None:
            self._token = _FP_STATE.set(_FP_IGNORE)
        else:
            self._token = np.errstate(all="ignore")
            self._token.__enter__()

    def __exit__(self, *exc) -> None:
        if _FP_STATE is not None:
            _FP_STATE.reset(self._token)
        else:
            self._token.__exit__(*exc)


def add_messages(rows: list[Estimate], msgs: list[str]) -> None:
    """Append captured warning texts to the rows' messages; an ``ok`` row becomes ``warning``."""
    if not msgs:
        return
    text = "; ".join(msgs)
    for r in rows:
        if r.status == OK:
            r.status = WARNING
        r.message = "; ".join(filter(None, [r.message, text]))


def wald_row(
    method: str,
    estimand: str,
    est: float,
    se: float,
    alpha: float,
    n_used: int,
    p_value: float | None = None,
    df: float | None = None,
    n_family: int = 0,
    **kw: Any,
) -> Estimate:
    """An Estimate with a Wald (normal, or t with ``df``) CI and two-sided p-value.

    ``n_family`` = k > 0: Bonferroni over k tests, coherently: p = min(1, k p) and the CI is the
    simultaneous interval at level 1 - alpha / k (recorded in ``ci_level``), so the CI excludes
    0 exactly when p <= alpha. Quantiles and tail areas come from the scipy.special ufuncs that
    scipy.stats.norm / t call internally (identical numbers, less overhead).
    """
    a = alpha / n_family if n_family else alpha
    if df is None:
        q = _normal_quantile(a)
        p = 2.0 * float(ndtr(-abs(est / se))) if se > 0 else NAN
    else:
        q = stdtrit(df, 1 - a / 2)
        p = 2 * stdtr(df, -abs(est / se)) if se > 0 else NAN
    if n_family:
        p = min(1.0, n_family * p) if p == p else p
        kw.setdefault("ci_level", 1.0 - a)
    return Estimate(
        method,
        estimand,
        float(est),
        float(se),
        float(est - q * se),
        float(est + q * se),
        float(p if p_value is None else p_value),
        int(n_used),
        **kw,
    )


_QUANTILES: dict[float, float] = {}


def _normal_quantile(a: float) -> float:
    """ndtri(1 - a / 2), remembered per level (a run uses one or two)."""
    q = _QUANTILES.get(a)
    if q is None:
        q = float(ndtri(1 - a / 2))
        if len(_QUANTILES) < 64:
            _QUANTILES[a] = q
    return q


def failed_rows(method: str, estimands, message: str, n_used: int = 0) -> list[Estimate]:
    return [Estimate(method, e, status=FAILED, message=message, n_used=n_used) for e in estimands]


class KindError(ValueError):
    """An estimator ``kind`` that names no usable class: ``reason`` says why (the callers name
    the config key, e.g. ``estimators.myest.kind``)."""

    def __init__(self, kind: Any, reason: str):
        super().__init__(f"invalid value {kind!r} for key 'kind': {reason}")
        self.kind, self.reason = kind, reason


def is_import_path(kind: Any) -> bool:
    """Whether ``kind`` names a class by import path (``"package.module:Class"``)."""
    return isinstance(kind, str) and ":" in kind


def _importable(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def import_class(path: str) -> type[Estimator]:
    """The class an import path ``"package.module:Class"`` names (KindError saying why not:
    module not importable, attribute missing, not a subclass of palliasim.Estimator).

    The module is found as Python finds it (``sys.path``, ``PYTHONPATH``); when it is not, the
    current directory is searched too, as ``python -m`` would (the console script's own
    ``sys.path`` lacks it); no bytecode is written next to it. The class need not be
    ``@register``-ed; one without a ``kind`` of its own gets the import path as its kind."""
    mod_name, _, qual = path.partition(":")
    mod_name, qual = mod_name.strip(), qual.strip()
    parts = mod_name.split(".")
    if not mod_name or not qual or not all(p.isidentifier() for p in parts):
        raise KindError(path, "an import path must read 'package.module:Class'")
    if not _importable(parts[0]):
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)
            importlib.invalidate_caches()
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in cwd
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:
        raise KindError(
            path,
            f"cannot import module '{mod_name}' ({type(exc).__name__}: {exc}); it is searched "
            "on sys.path (PYTHONPATH) and in the current directory",
        ) from None
    finally:
        sys.dont_write_bytecode = saved
    obj: Any = module
    for attr in qual.split("."):
        if not hasattr(obj, attr):
            found = sorted(
                n
                for n, v in vars(module).items()
                if isinstance(v, type) and issubclass(v, Estimator) and v is not Estimator
            )
            raise KindError(
                path,
                f"module '{mod_name}' has no attribute '{qual}'; its Estimator subclasses: "
                f"{', '.join(found) or '(none)'}",
            )
        obj = getattr(obj, attr)
    if not (isinstance(obj, type) and issubclass(obj, Estimator)) or obj is Estimator:
        raise KindError(path, f"'{qual}' is not a subclass of palliasim.Estimator (got {obj!r})")
    own = [
        a
        for a, t in obj.__dict__.get("__annotations__", {}).items()
        if "ClassVar" not in str(t) and not a.startswith("_")
    ]
    if own and "__dataclass_fields__" not in obj.__dict__:
        raise KindError(
            path,
            f"'{qual}' declares options ({', '.join(own)}) but is not a dataclass; decorate it "
            "with @dataclass",
        )
    if "kind" not in obj.__dict__:
        obj.kind = path
    return obj


def resolve_kind(kind: Any) -> type[Estimator]:
    """The estimator class of ``kind``: a registered kind, or an import path
    (:func:`import_class`); KindError naming the allowed values otherwise."""
    import palliasim.estimators  # noqa: F401  (registers all families)

    if isinstance(kind, str) and kind in REGISTRY:
        return REGISTRY[kind]
    if is_import_path(kind):
        return import_class(kind)
    raise KindError(
        kind,
        f"unknown estimator kind '{kind}'; allowed values: {', '.join(sorted(REGISTRY))}, or a class "
        "by import path 'package.module:Class' (a subclass of palliasim.Estimator)",
    )


def _check_targets(est: Estimator, kind: str) -> None:
    """A plug-in's estimands must be registered (sim/estimands.py): the truth is looked up by
    name, so a misspelt estimand would be scored against nothing."""
    from palliasim.sim.estimands import ESTIMANDS, lookup

    targets = list(est.targets())
    if not targets:
        raise KindError(
            kind, "the class reports no estimands (set its class attribute `estimands`)"
        )
    for e in targets:
        try:
            lookup(str(e))
        except KeyError:
            raise KindError(
                kind,
                f"its estimand {e!r} is not in the estimand registry (sim/estimands.py); "
                f"allowed values: {', '.join(sorted(ESTIMANDS))}",
            ) from None


def module_root(cls: type) -> str | None:
    """The ``sys.path`` entry a class's module was imported from (None for palliasim's own
    classes, or a module without a file): shipped to worker processes so that they import a
    plug-in found in the current directory the same way."""
    mod = sys.modules.get(cls.__module__)
    f = getattr(mod, "__file__", None)
    if not f or cls.__module__.startswith("palliasim.") or cls.__module__ == "__main__":
        return None
    root = os.path.dirname(os.path.abspath(f))
    depth = cls.__module__.count(".") + (os.path.basename(f) == "__init__.py")
    for _ in range(depth):
        root = os.path.dirname(root)
    return root


def build_estimator(kind: str, **options) -> Estimator:
    """Instantiate an estimator: a registered ``kind``, or a subclass of Estimator named by
    import path ``"package.module:Class"``. An unknown kind or option raises ValueError naming
    the allowed values (a :class:`KindError` for the kind itself); so does a plug-in class
    whose estimands are not registered."""
    cls = resolve_kind(kind)
    allowed = {f.name for f in dataclasses.fields(cls) if f.name != "options"}
    bad = sorted(set(options) - allowed)
    if bad:
        raise ValueError(
            f"unknown option '{bad[0]}' for estimator kind '{kind}'; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    est = cls(**options)
    if is_import_path(kind):
        _check_targets(est, kind)
    return est
