"""Validation of scenario parameters, before anything is computed.

The `study` preset (conf/scenario/study.yaml) is the schema: every scenario must have exactly its
keys (no unknown key, none missing) with values of the same kind, and every value must lie in the
range given by RULES. Errors are :class:`ConfigError` naming the dotted key and the allowed values.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from palliasim.sim import rules
from palliasim.sim.adverse import ae_constants
from palliasim.sim.errors import ConfigError

COVARIATE_MISSING_ALLOWED = (
    "ecog",
    "charlson",
    "visceral",
    "lesions_gt3",
    "strong_opioid",
    "albumin_w0",
    "crp_w0",
    "hb_w0",
)


_num = rules.number
_prob = rules.prob
_open_prob = rules.open_prob
_pos = rules.positive
_nonneg = rules.nonnegative
_one_of = rules.one_of
_int_at_least = rules.int_at_least
_probs_vector = rules.probs_vector
_pair_prob = rules.pair_prob
_list_len = rules.list_of


#: (glob over dotted keys, check). The first matching rule applies; keys with no rule only need
#: the same kind of value as in the `study` schema.
RULES: list[tuple[str, Any]] = [
    ("cohort.n", _int_at_least(10)),
    ("treatment.allocation", _open_prob),
    ("treatment.scheme", _one_of("complete", "bernoulli")),
    ("confounding.strength", _nonneg),
    ("covariates.age_sd", _pos),
    ("covariates.age_min", _nonneg),
    ("covariates.ecog_probs", lambda x: _probs_vector(x) and len(x) == 5),
    ("covariates.nrs0_probs", lambda x: _probs_vector(x) and len(x) == 7),
    ("covariates.strong_opioid_nrs_loading", lambda x: _num(x) and -0.95 <= x <= 0.95),
    ("covariates.spinal_axial_or", _pos),
    ("covariates.primary_probs", _probs_vector),
    ("covariates.site_probs", _probs_vector),
    ("covariates.rt_probs", _probs_vector),
    ("covariates.burden_loading.*", lambda x: _num(x) and -0.95 <= x <= 0.95),
    ("covariates.inflammation_loading", lambda x: _num(x) and -0.95 <= x <= 0.95),
    ("covariates.nutrition_inflammation_corr", lambda x: _num(x) and -0.95 <= x <= 0.95),
    ("covariates.*_prob", _prob),
    ("covariates.*_prob_*", _prob),
    ("covariates.*_median", _pos),
    ("covariates.*.median", _pos),
    ("covariates.*sd*", _pos),
    ("covariates.*.sd", _pos),
    ("covariates.charlson_sd", _pos),
    ("frailty.u_sd", _nonneg),
    ("nrs.visits", lambda x: x == [0, 1, 4, 8, 12]),
    ("nrs.mean_change_control", _list_len(4)),
    ("nrs.effect", _list_len(4)),
    ("nrs.sd_*", _nonneg),
    ("opioid.p_unchanged", _prob),
    ("opioid.start_prob_control", _prob),
    ("opioid.sd", _nonneg),
    ("response.mode", _one_of("derived", "direct")),
    ("response.increase_threshold", _nonneg),
    ("response.partial_omed_decrease", lambda x: _num(x) and 0.0 < x < 1.0),
    ("response.progression_omed_increase", _pos),
    ("response.dead_as", _one_of("nonresponse", "missing")),
    ("response.missing_as", _one_of("nonresponse", "missing")),
    ("relief.threshold", lambda x: _num(x) and 1 <= x <= 10),
    ("qol.domains", lambda x: x == ["global", "physical", "role", "emotional", "social"]),
    ("qol.baseline_mean", _list_len(5, lambda v: _num(v) and 0 <= v <= 100)),
    ("qol.effect", _list_len(5)),
    ("qol.persistence", _prob),
    ("qol.*sd*", _nonneg),
    ("adverse_events.types.*", _pair_prob),
    ("adverse_events.any", _pair_prob),
    ("adverse_events.grade34", _pair_prob),
    ("adverse_events.discontinuation", _pair_prob),
    ("adverse_events.correlation", lambda x: _num(x) and 0.0 <= x < 1.0),
    ("survival.*.shape", _pos),
    ("survival.*.scale", _pos),
    ("survival.censoring.accrual_months", _nonneg),
    ("survival.censoring.min_followup_months", _nonneg),
    ("survival.censoring.ltfu_rate", _nonneg),
    ("markers.persistence", _prob),
    ("markers.noise_sd_fraction", _nonneg),
    ("missingness.mechanism", _one_of("none", "mcar", "mar", "mnar")),
    ("missingness.target_week12", lambda x: _num(x) and 0.0 <= x <= 0.95),
    ("missingness.intermittent", lambda x: _num(x) and 0.0 <= x < 1.0),
    ("missingness.covariates.mechanism", _one_of("none", "mcar", "mar")),
    ("missingness.covariates.fraction", lambda x: _num(x) and 0.0 <= x < 1.0),
    (
        "missingness.covariates.columns",
        lambda x: isinstance(x, list) and set(x) <= set(COVARIATE_MISSING_ALLOWED),
    ),
    ("truth.n", _int_at_least(1000)),
    ("truth.rmst_horizon", _pos),
    ("truth.seed", _int_at_least(0)),
]
_ALLOWED_TEXT = {
    "covariates.ecog_probs": "5 probabilities (ECOG 0..4) summing to 1",
    "covariates.nrs0_probs": "7 probabilities (NRS 4..10) summing to 1",
    "covariates.strong_opioid_nrs_loading": "a correlation in [-0.95, 0.95]",
    "nrs.visits": "[0, 1, 4, 8, 12] (fixed visit schedule of the study)",
    "qol.domains": "[global, physical, role, emotional, social]",
    "missingness.target_week12": "a fraction in [0, 0.95]",
    "missingness.intermittent": "a probability in [0, 1)",
    "missingness.covariates.fraction": "a fraction in [0, 1)",
    "missingness.covariates.columns": "a subset of [" + ", ".join(COVARIATE_MISSING_ALLOWED) + "]",
    "adverse_events.correlation": "a number in [0, 1)",
    "relief.threshold": "a number in [1, 10]",
    "covariates.burden_loading.*": "a correlation in [-0.95, 0.95]",
    "covariates.inflammation_loading": "a correlation in [-0.95, 0.95]",
    "covariates.nutrition_inflammation_corr": "a correlation in [-0.95, 0.95]",
    "qol.baseline_mean": "a list of 5 numbers in [0, 100]",
    "response.partial_omed_decrease": "a fraction in (0, 1)",
}


@lru_cache(maxsize=1)
def schema() -> dict:
    """The `study` preset: the reference structure every scenario must have."""
    text = resources.files("palliasim.conf").joinpath("scenario", "study.yaml").read_text()
    raw = yaml.safe_load(text)
    raw.pop("defaults", None)
    return raw


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, (int, float)):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, list):
        return "list"
    if isinstance(x, dict):
        return "mapping"
    return type(x).__name__


def _walk(params: Any, ref: Any, path: str):
    if (
        isinstance(ref, dict)
        and not path.endswith("_probs")
        and not path.startswith("adverse_events.types")
    ):
        if not isinstance(params, dict):
            raise ConfigError(f"config key '{path}' must be a mapping with keys: {', '.join(ref)}")
        unknown = sorted(set(params) - set(ref))
        if unknown:
            where = f" under '{path}'" if path else ""
            raise ConfigError(
                f"unknown config key '{(path + '.') if path else ''}{unknown[0]}'{where}; "
                f"allowed keys: {', '.join(sorted(ref))}"
            )
        missing = sorted(set(ref) - set(params))
        if missing:
            raise ConfigError(f"missing config key '{(path + '.') if path else ''}{missing[0]}'")
        for k in ref:
            yield from _walk(params[k], ref[k], f"{path}.{k}" if path else k)
        return
    yield path, params, ref


def _rule_for(path: str):
    for pattern, check in RULES:
        if fnmatch.fnmatchcase(path, pattern):
            return pattern, check
    return None, None


def validate_params(params: dict) -> None:
    """Raise :class:`ConfigError` for the first invalid key (structure first, then ranges)."""
    if "scenario_name" not in params:
        params = {"scenario_name": "custom", **params}
    for path, value, ref in _walk(params, schema(), ""):
        if path == "scenario_name":
            if not isinstance(value, str):
                raise ConfigError("config key 'scenario_name' must be a string")
            continue
        if path == "adverse_events.types":
            if not isinstance(value, dict) or not value:
                raise ConfigError("config key 'adverse_events.types' must map event names to pairs")
            for name, pair in value.items():
                if not _pair_prob(pair):
                    raise ConfigError(
                        f"invalid value {pair!r} for config key 'adverse_events.types.{name}'; "
                        f"allowed: {_pair_prob.allowed}"
                    )
            continue
        if _kind(value) != _kind(ref) and not (_kind(ref) == "mapping" and path.endswith("_probs")):
            raise ConfigError(
                f"invalid value {value!r} for config key '{path}'; expected a {_kind(ref)} "
                f"like {ref!r}"
            )
        pattern, check = _rule_for(path)
        if check is None:
            if _kind(value) == "number" and not _num(value):
                raise ConfigError(
                    f"invalid value {value!r} for config key '{path}'; allowed: a finite number"
                )
            continue
        if not check(value):
            allowed = _ALLOWED_TEXT.get(pattern) or getattr(check, "allowed", "see study.yaml")
            raise ConfigError(
                f"invalid value {value!r} for config key '{path}'; allowed: {allowed}"
            )
        if path.endswith("_probs") and isinstance(ref, dict) and set(value) != set(ref):
            raise ConfigError(
                f"config key '{path}' must have the categories {', '.join(ref)}; got {', '.join(value)}"
            )
    r = params["response"]
    if r["increase_threshold"] >= r["progression_omed_increase"]:
        raise ConfigError(
            f"invalid value {r['increase_threshold']!r} for config key "
            "'response.increase_threshold'; allowed: a number >= 0 below "
            f"'response.progression_omed_increase' ({r['progression_omed_increase']})"
        )
    age = params["covariates"]
    if age["age_min"] >= age["age_max"]:
        raise ConfigError("config key 'covariates.age_min' must be < 'covariates.age_max'")
    ae_constants(params["adverse_events"])  # reachable 'any', grade34/discontinuation <= any
