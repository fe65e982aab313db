"""Agreement with R: every deterministic estimator against committed R refits (issue 12, item 2).

tests/fixtures/r/refit.R refitted palliasim's models in R (lme4, survival, nlme, stats, geepack)
on the committed cohorts of tests/fixtures/cohorts/ (exported by tests/fixtures/make_cohorts.py)
and wrote tests/fixtures/r/r_reference.csv. Here each palliasim estimator runs with the options
of its default config (conf/estimators/<name>.yaml; option variants in VARIANTS) on the same
cohorts, read as ``task=analyse`` reads them, with every engine the class has (see
REFERENCE_ENGINE_COHORTS), and each reported field (NA in the CSV = not comparable, e.g. a
bootstrap SE) must agree: estimate, se and p_value within RTOL relative (ATOL absolute near
zero); ci_low / ci_high (= estimate -/+ q se) within
RTOL relative to max(|limit|, se), the scale of their error, so a limit near 0 is not held to a
tighter standard than the estimate and SE it is made of. CI reads the CSV; R is not needed.

Known disagreements are listed in KNOWN_GAPS (xfail with the measured difference), to be emptied
as the estimators become exact; ``test_known_gaps_are_still_gaps`` fails for an entry that no
longer disagrees anywhere, so the list cannot go stale.
"""

from __future__ import annotations

import math
from fnmatch import fnmatch
from functools import cache
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

from palliasim.estimators.base import REGISTRY, build_estimator
from palliasim.experiments.tasks.analyse import DATA_KEY, read_cohort
from palliasim.sim.seeding import name_int, rng_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = FIXTURES / "r" / "r_reference.csv"
COHORTS = ("study_n205", "randomized_n205", "study_n1000_ties", "randomized_n204_missing")
FIELDS = ("estimate", "se", "ci_low", "ci_high", "p_value")
#: cohorts on which a class's reference engine is compared too when it also has a fast engine
#: (the fast engine is compared on every cohort, and test_engine_agreement ties the two engines
#: together; statsmodels' MixedLM on n = 1,000 would add ~10 s here)
REFERENCE_ENGINE_COHORTS = ("study_n205", "randomized_n204_missing")
#: methods whose reference engine takes seconds a fit (mmrm/clda's scipy formulation): compared
#: on the first of REFERENCE_ENGINE_COHORTS only
SLOW_REFERENCE = ("mmrm", "clda", "mmrm_kr", "clda_kr")
RTOL = 1e-6  # relative
ATOL = 1e-9  # absolute floor for values near zero

#: r_reference.csv method -> (conf/estimators/<file>.yaml, option overrides)
VARIANTS = {
    "lmm_ml": ("lmm", {"reml": False}),
    "ipw_or_stacked": ("ipw_or", {"se": "stacked"}),
    "mmrm_kr": ("mmrm", {"df": "kenward-roger"}),
    "clda_kr": ("clda", {"df": "kenward-roger"}),
}
#: reference rows that are not a palliasim method: reported for information, never compared
INFORMATION_ONLY = {
    "gee[geepack]": "geepack's moment estimators of the scale and exchangeable correlation "
    "differ from statsmodels' (ddof = p); palliasim's gee is compared with the R GEE solved at "
    "statsmodels' documented conventions (method 'gee')",
}
#: default estimator configs without an R reference: their numbers depend on random draws
STOCHASTIC = {
    "mi_ancova": "multiple imputation draws (no deterministic R counterpart)",
    "mi_response": "multiple imputation draws (no deterministic R counterpart)",
}

#: Known disagreements with R, measured on the committed fixtures (the worst relative
#: difference over cohorts and engines in the reason). Each entry: (method, estimand glob,
#: cohort glob, fields, reason). To be emptied after the exact engines land (branch `engines`).
_COX = (
    "lifelines stops Newton-Raphson early (decrement < 1e-7 after 0.95-damped steps) and the fast "
    "engine replays that path; R's coxph converged to 1e-13"
)
_IPTW = (
    "lifelines' robust (sandwich) SE ignores Efron ties (SE 2.9e-3 relative off on the tied "
    "n = 1,000 cohort) and stops Newton-Raphson early"
)
_LMM = (
    "statsmodels MixedLM stops BFGS at gtol 1e-5 and its fixed-effect covariance inverts the "
    "joint Hessian in (beta, gamma), not sigma^2 (X'V^-1 X)^-1 as lme4 (SE up to 3.6e-5 "
    "relative, estimate 4.6e-7)"
)
_KM = (
    "S(t) = 51/102 is 0.5000000000000003 in floating point, so palliasim returns the next event "
    "time; survival's quantile() takes the midpoint of a flat S = 0.5 stretch (median 1.4e-2, "
    "difference 1.7e-1 relative)"
)
CI_P = ("ci_low", "ci_high", "p_value")
#: empty since both engines converge to the optimum (Cox Newton-Raphson, exact profiled (RE)ML
#: with sigma^2 (X'V^-1 X)^-1, survfit's median rule, the Efron-tie robust Cox SE); an entry is
#: (method, estimand or *, cohort or *, fields, the measured reason)
KNOWN_GAPS: list[tuple[str, str, str, tuple[str, ...], str]] = []


def _reference() -> pd.DataFrame:
    return pd.read_csv(REFERENCE, keep_default_na=True)


def _config(method: str) -> tuple[str, dict] | None:
    """(kind, options) of a reference method, or None when its config does not exist yet."""
    file, overrides = VARIANTS.get(method, (method, {}))
    path = resources.files("palliasim.conf").joinpath("estimators", f"{file}.yaml")
    if not path.is_file():
        return None
    spec = dict(yaml.safe_load(path.read_text()))
    kind = spec.pop("kind")
    spec.pop("engine", None)
    spec.update(overrides)
    return kind, spec


def _engines(method: str) -> tuple[str, ...]:
    cfg = _config(method)
    if cfg is None or cfg[0] not in REGISTRY:
        return ("unavailable",)
    return tuple(REGISTRY[cfg[0]].engines)


@cache
def _cases() -> tuple[tuple[str, str, str, str], ...]:
    """(cohort, method, estimand, engine) of every comparison."""
    import palliasim.estimators  # noqa: F401  (registers every estimator family)

    ref = _reference()
    ref = ref[~ref.method.isin(list(INFORMATION_ONLY))]
    out = []
    for r in ref.itertuples(index=False):
        engines = _engines(r.method)
        for engine in engines:
            if engine == "reference" and "fast" in engines:
                cohorts = REFERENCE_ENGINE_COHORTS
                if r.method in SLOW_REFERENCE:
                    cohorts = cohorts[:1]
                if r.cohort not in cohorts:
                    continue
            out.append((r.cohort, r.method, r.estimand, engine))
    return tuple(out)


def _params():
    return [pytest.param(*c, id=f"{c[1]}-{c[2]}-{c[0]}-{c[3]}") for c in _cases()]


@cache
def _cohort(name: str):
    return read_cohort(FIXTURES / "cohorts" / name)


@cache
def _fit(cohort: str, method: str, engine: str) -> dict:
    """palliasim's rows (estimand -> Estimate) for one reference method on one cohort."""
    kind, spec = _config(method)
    est = build_estimator(kind, name=method, engine=engine, **spec)
    rng = rng_for(0, DATA_KEY, "estimator", 0, name_int(method))  # as task=analyse seeds it
    return {r.estimand: r for r in est.fit(_cohort(cohort), rng)}


@cache
def _reference_rows() -> dict:
    ref = _reference()
    return {(r.cohort, r.method, r.estimand): r for r in ref.itertuples(index=False)}


def _rel_diff(ours: float, theirs: float, scale: float = 0.0) -> float:
    """|ours - theirs| / max(|theirs|, scale, ATOL / RTOL); inf if palliasim has no number."""
    if not math.isfinite(ours):
        return math.inf
    return abs(ours - theirs) / max(abs(theirs), scale, ATOL / RTOL)


def _compare(cohort: str, method: str, estimand: str, engine: str) -> dict[str, float]:
    """Relative difference per comparable field (inf where palliasim reports no number)."""
    ref = _reference_rows()[(cohort, method, estimand)]
    row = _fit(cohort, method, engine)[estimand]
    se = float(ref.se) if math.isfinite(float(ref.se)) else 0.0
    return {
        f: _rel_diff(
            float(getattr(row, f)), float(getattr(ref, f)), se if f.startswith("ci_") else 0.0
        )
        for f in FIELDS
        if math.isfinite(float(getattr(ref, f)))
    }


def _gap(method: str, estimand: str, cohort: str, field: str) -> str | None:
    for m, e, c, fields, reason in KNOWN_GAPS:
        if m == method and fnmatch(estimand, e) and fnmatch(cohort, c) and field in fields:
            return reason
    return None


def _skip_unavailable(method: str, engine: str) -> None:
    if engine == "unavailable":
        cfg = _config(method)
        what = (
            f"no conf/estimators config for '{method}'"
            if cfg is None
            else f"estimator kind '{cfg[0]}' is not registered"
        )
        pytest.skip(f"{what} yet (being written on branch `mmrm`); the R reference is ready")


@pytest.mark.parametrize("cohort,method,estimand,engine", _params())
def test_agrees_with_r(cohort, method, estimand, engine):
    _skip_unavailable(method, engine)
    row = _fit(cohort, method, engine)[estimand]
    assert row.status != "failed", f"palliasim failed where R fitted: {row.message}"
    diffs = _compare(cohort, method, estimand, engine)
    bad = {f: d for f, d in diffs.items() if not d <= RTOL}
    known = {f: d for f, d in bad.items() if _gap(method, estimand, cohort, f)}
    unknown = {f: d for f, d in bad.items() if f not in known}
    ref = _reference_rows()[(cohort, method, estimand)]
    detail = ", ".join(
        f"{f}: palliasim {float(getattr(row, f))!r} vs R {float(getattr(ref, f))!r} (rel {d:.2e})"
        for f, d in bad.items()
    )
    assert not unknown, f"disagrees with R beyond {RTOL:g}: {detail}"
    if known:
        pytest.xfail(f"KNOWN_GAPS ({_gap(method, estimand, cohort, next(iter(known)))}): {detail}")


def test_known_gaps_are_still_gaps():
    """Every KNOWN_GAPS entry still covers at least one comparison that disagrees with R."""
    stale = []
    for m, e, c, fields, _reason in KNOWN_GAPS:
        covered = [
            case
            for case in _cases()
            if case[1] == m and fnmatch(case[2], e) and fnmatch(case[0], c)
        ]
        assert covered, f"KNOWN_GAPS entry {m, e, c} matches no comparison"
        if covered[0][3] == "unavailable":
            continue
        worst = max(_compare(*case).get(f, 0.0) for case in covered for f in fields)
        if worst <= RTOL:
            stale.append(f"{m} {e} {c} {fields}: now agrees (worst {worst:.1e}): remove it")
    assert not stale, "; ".join(stale)


def test_reference_covers_every_deterministic_estimator():
    """Each default estimator config has R reference rows for every estimand it reports."""
    ref = _reference()
    names = sorted(
        p.name[: -len(".yaml")]
        for p in resources.files("palliasim.conf").joinpath("estimators").iterdir()
        if p.name.endswith(".yaml")
    )
    missing = []
    for name in names:
        if name in STOCHASTIC:
            continue
        kind, spec = _config(name)
        targets = set(build_estimator(kind, name=name, **spec).targets())
        for cohort in COHORTS:
            have = set(ref.estimand[(ref.method == name) & (ref.cohort == cohort)])
            if targets - have:
                missing.append(f"{name} on {cohort}: {sorted(targets - have)}")
    assert not missing, "no R reference for: " + "; ".join(missing)


def test_reference_is_complete_and_precise():
    """The CSV has one row per (cohort, method, estimand), 17 significant digits, a source."""
    ref = _reference()
    assert set(ref.cohort) == set(COHORTS)
    assert not ref.duplicated(["cohort", "method", "estimand"]).any()
    assert ref.estimate.notna().all() and ref.source.notna().all()
    raw = pd.read_csv(REFERENCE, dtype=str, keep_default_na=False)
    assert raw.estimate.str.len().median() >= 17  # written with %.17g (round-trip exact)
