"""The true value of every estimand, per scenario, with its Monte Carlo SE (cached on disk).

Each estimand is defined in the registry :mod:`palliasim.sim.estimands` (ICH E9(R1) attributes);
its truth is computed from that definition: the registry's ``outcome`` names a pair of potential
outcomes (Y(0), Y(1)) drawn for ``truth.n`` patients with common random numbers (built here by
:func:`_outcomes`), and its ``summary`` the population summary applied to them:

- ``mean_diff``, ``risk_0``, ``risk_1``, ``risk_diff``: E[Y(1) - Y(0)], E[Y(a)] (paired MC SE);
- ``log_or``: logit E[R(1)] - logit E[R(0)] (marginal); ``log_or_adjusted``: the arm coefficient
  of the logistic model with ADJUSTMENT_SET fitted to both arms' potential outcomes (conditional);
- ``log_hr``: the Cox coefficient fitted to both arms' potential times, each censored by the
  scenario's own censoring time (marginal); ``log_hr_adjusted``: the same with ADJUSTMENT_SET
  (what a correctly specified adjusted Cox targets when U is unmeasured);
- ``median_{0,1}``, ``median_diff``: medians of T(a) (months); ``rmst_diff``:
  E[min(T(1), tau)] - E[min(T(0), tau)], tau = truth.rmst_horizon;
- ``*_config``: a parameter of the DGM itself (conditional log HR of death, direct-mode
  conditional log OR, AE rate differences), exact (MC SE 0).
"Hypothetical" variables are the potential outcomes had every patient lived and been assessed.
MC SE from paired differences where the estimand is a mean, else by batch means over 20 batches.

Every entry is ``{value, mcse, source, status, message}``; a truth that cannot be computed (no
events, singular information, non-convergence) is NaN with ``status: failed`` and the reason,
never an exception. The cache key (:func:`truth_key`) is the content hash of what the values
depend on: the outcome sections of the scenario, the DGM code fingerprint (:func:`dgm_fingerprint`:
SHA-256 of the bytes of the sim/*.py files that generate data and truth) and, for the estimands
whose ``depends_on`` is ``dropout`` (the NRI estimand), every scenario section except the name and
the cohort size. Parts are cached separately so design points sharing an outcome model share it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from palliasim.sim import covariates as cv
from palliasim.sim.estimands import ESTIMANDS, Estimand, lookup
from palliasim.sim.files import atomic_write_text
from palliasim.sim.generate import generate_with_potential
from palliasim.sim.qol import DOMAINS
from palliasim.sim.scenario import Scenario, content_hash
from palliasim.sim.seeding import rng_for
from palliasim.sim.survstats import cox_loghr

TRUTH_VERSION = "2"
ADJUSTMENT_SET = (
    "age",
    "male",
    "ecog",
    "visceral",
    "lesions_gt3",
    "charlson",
    "nrs0",
    "strong_opioid",
)
#: sections the outcome-model truths do not depend on
OUTCOME_SECTIONS_EXCLUDED = ("scenario_name", "cohort", "missingness", "treatment", "confounding")
#: sections the dropout-dependent truths do not depend on (nor on missingness.covariates)
DROPOUT_SECTIONS_EXCLUDED = ("scenario_name", "cohort")
#: sim/ files that do not generate data or truth (left out of the fingerprint)
NOT_DGM = ("calibrate.py", "files.py")
BATCHES = 20


@dataclass(frozen=True)
class Truth:
    """Estimand name -> (value, Monte Carlo SE, how it was obtained, status, message)."""

    values: dict

    def __getitem__(self, name: str) -> float:
        return self.values[name]["value"]

    def mcse(self, name: str) -> float:
        return self.values[name]["mcse"]

    def status(self, name: str) -> str:
        return self.values[name].get("status", "ok")

    def message(self, name: str) -> str:
        return self.values[name].get("message", "")

    def failed(self) -> list[str]:
        """Names whose truth could not be computed (NaN value)."""
        return [k for k in self.values if self.status(k) != "ok"]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "estimand": k,
                "true": v["value"],
                "true_mcse": v["mcse"],
                "source": v["source"],
                "true_status": v.get("status", "ok"),
                "true_message": v.get("message", ""),
            }
            for k, v in self.values.items()
        ]
        return pd.DataFrame(rows)


@lru_cache(maxsize=1)
def dgm_fingerprint() -> str:
    """SHA-256 of the names and bytes of the sim/*.py files that generate data and truth."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name in NOT_DGM:
            continue
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _dropout_free(scenario: Scenario) -> bool:
    m = scenario.params["missingness"]
    return m["mechanism"] == "none" or m["target_week12"] <= 0


def stream_key(scenario: Scenario) -> str:
    """Key of the truth's random stream: the outcome sections' content only (not the code
    fingerprint, so an edit of a comment in sim/ changes the cache key but not the values)."""
    p = scenario.params
    return content_hash({k: v for k, v in p.items() if k not in OUTCOME_SECTIONS_EXCLUDED})


def part_keys(scenario: Scenario) -> dict[str, str]:
    """Cache key of each part of the truth: ``outcome`` and ``dropout`` (see module doc)."""
    p = scenario.params
    base = {"version": TRUTH_VERSION, "dgm": dgm_fingerprint()}
    outcome = {k: v for k, v in p.items() if k not in OUTCOME_SECTIONS_EXCLUDED}
    keys = {"outcome": content_hash({**base, "part": "outcome", "params": outcome})}
    if _dropout_free(scenario):  # the NRI estimand equals the study's: no dependence on dropout
        keys["dropout"] = content_hash({**base, "part": "no-dropout", "outcome": keys["outcome"]})
    else:
        full = {k: v for k, v in p.items() if k not in DROPOUT_SECTIONS_EXCLUDED}
        # missing baseline covariates do not change who is assessed at week 12
        full["missingness"] = {k: v for k, v in p["missingness"].items() if k != "covariates"}
        keys["dropout"] = content_hash({**base, "part": "dropout", "params": full})
    return keys


def truth_key(scenario: Scenario) -> str:
    """Content key of the whole truth of ``scenario`` (two scenarios with the same key have the
    same truth)."""
    return content_hash(part_keys(scenario))


def cache_dir() -> Path:
    base = os.environ.get("PALLIASIM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "palliasim"
    )
    return Path(base) / "truth"


def _read(path: Path) -> dict | None:
    """A cached {name: entry} (entries without status read as ok), or None to recompute."""
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, corrupt or malformed: recomputed
    if isinstance(values, dict) and all(
        isinstance(v, dict) and {"value", "mcse", "source"} <= set(v) for v in values.values()
    ):
        return {k: {"status": "ok", "message": "", **v} for k, v in values.items()}
    return None


def _write(path: Path, values: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(values, indent=1))


def _split(values: dict) -> dict[str, dict]:
    """{part: {name: entry}} by the registry's ``depends_on`` (unregistered names: outcome)."""
    out: dict[str, dict] = {"outcome": {}, "dropout": {}}
    for k, v in values.items():
        out[ESTIMANDS[k].depends_on if k in ESTIMANDS else "outcome"][k] = v
    return out


def truth(scenario: Scenario, use_cache: bool = True) -> Truth:
    """True values for ``scenario`` (Monte Carlo on ``truth.n`` potential outcomes; cached)."""
    key = truth_key(scenario)
    path = cache_dir() / f"{key}.json"
    if use_cache:
        values = _read(path)
        if values is not None and "nrs_diff_w12" in values:
            return Truth(values)
    keys = part_keys(scenario)
    parts = {}
    if use_cache:
        for part, k in keys.items():
            v = _read(cache_dir() / "parts" / f"{k}.json")
            if v is not None:
                parts[part] = v
    missing = [part for part in keys if part not in parts]
    if len(missing) == len(keys):
        parts = _split(compute_truth(scenario))
    elif missing:
        parts.update(compute_parts(scenario, missing))
    values = {**parts["outcome"], **parts["dropout"]}
    if use_cache:
        for part in missing:
            _write(cache_dir() / "parts" / f"{keys[part]}.json", parts[part])
        _write(path, values)
    return Truth(values)


# ------------------------------------------------------------------ entries and summaries
def _entry(value, mcse, source, status="ok", message=""):
    value, mcse = float(value), float(mcse)
    if status == "ok" and not np.isfinite(value):
        status, message = "failed", message or "non-finite value"
    return {"value": value, "mcse": mcse, "source": source, "status": status, "message": message}


def _failed(message: str) -> dict:
    return _entry(np.nan, np.nan, "monte_carlo", "failed", message)


def _mean_diff(d):
    d = np.asarray(d, float)
    return _entry(d.mean(), d.std(ddof=1) / np.sqrt(d.size), "monte_carlo")


def _batched(fn, n):
    full = fn(np.arange(n))
    idx = np.array_split(np.arange(n), BATCHES)
    reps = np.array([fn(i) for i in idx])
    return _entry(full, reps.std(ddof=1) / np.sqrt(BATCHES), "monte_carlo")


def _logistic(y, X, iters=50):
    """Logistic MLE by Newton-Raphson (ValueError when it does not converge)."""
    X = np.column_stack([np.ones(len(y)), X])
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        mu = expit(X @ beta)
        w = mu * (1 - mu)
        step = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (y - mu))
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            return beta
    raise ValueError(f"logistic fit did not converge in {iters} iterations")


def _logit_risk(r):
    if not 0 < r < 1:
        raise ValueError(f"a risk of {r:g}: the log odds ratio is infinite")
    return np.log(r / (1 - r))


def _summary(e: Estimand, y, ctx) -> dict:
    """The truth of estimand ``e`` from its potential outcomes ``y = (Y(0), Y(1))``."""
    s, n = e.summary, ctx["n"]
    y0, y1 = y
    if s == "mean_diff":
        return _mean_diff(y1 - y0)
    if s in ("risk_0", "risk_1"):
        return _mean_diff(y1 if s == "risk_1" else y0)
    if s == "risk_diff":
        return _mean_diff(y1 - y0)
    if s == "log_or":
        return _batched(lambda i: _logit_risk(y1[i].mean()) - _logit_risk(y0[i].mean()), n)
    arm, X2 = ctx["arm"], ctx["X2"]
    if s == "log_or_adjusted":
        yy = np.concatenate([y0, y1])

        def adj(i):
            ii = np.concatenate([i, i + n])
            return _logistic(yy[ii], np.column_stack([arm[ii], X2[ii]]))[1]

        return _batched(adj, n)
    C = ctx["C"]
    if s in ("log_hr", "log_hr_adjusted"):
        tt = np.concatenate([np.minimum(y0, C), np.minimum(y1, C)])
        ev = np.concatenate([y0 <= C, y1 <= C])
        if s == "log_hr":
            return _batched(lambda i: cox_loghr(tt[i2(i, n)], ev[i2(i, n)], arm[i2(i, n)])[0][0], n)
        return _batched(
            lambda i: cox_loghr(
                tt[i2(i, n)], ev[i2(i, n)], np.column_stack([arm[i2(i, n)], X2[i2(i, n)]])
            )[0][0],
            n,
        )
    if s in ("median_0", "median_1"):
        t = y1 if s == "median_1" else y0
        return _batched(lambda i: np.median(t[i]), n)
    if s == "median_diff":
        return _batched(lambda i: np.median(y1[i]) - np.median(y0[i]), n)
    if s == "rmst_diff":
        tau = ctx["tau"]
        return _mean_diff(np.minimum(y1, tau) - np.minimum(y0, tau))
    raise ValueError(f"summary {s!r} has no Monte Carlo truth")  # pragma: no cover


def i2(i, n):
    """Rows of both arms' stacked copies for patient indices ``i``."""
    return np.concatenate([i, i + n])


def _config_truth(e: Estimand, p: dict) -> dict | None:
    """Truths that are DGM parameters (None where the estimand does not apply)."""
    if e.name == "os_loghr_cond":
        return _entry(p["survival"]["os"]["log_hr"], 0.0, "config")
    if e.name == "response_logor_cond":
        if p["response"]["mode"] != "direct":
            return None
        return _entry(p["response"]["direct"]["log_or"], 0.0, "config")
    raise ValueError(f"no config truth for {e.name}")  # pragma: no cover


def _outcomes(po, p) -> dict:
    """Potential-outcome pairs by the registry's ``outcome`` names."""
    out = {}
    nrs0, nrs1 = po["nrs"]
    for j, w in enumerate((1, 4, 8, 12)):
        out[f"nrs_w{w}"] = (nrs0[:, j], nrs1[:, j])
    out["pfs"] = po["t_pfs"]
    out["os"] = po["t_death"]
    r0, r1 = (x.astype(float) for x in po["responder"])
    out["responder"] = (r0, r1)
    a0, a1 = po["assessed12"]
    out["responder_nri"] = (r0 * a0, r1 * a1)
    q0, q1 = po["qol12"]
    for i, d in enumerate(DOMAINS):
        out[f"qol_{d}"] = (q0[i], q1[i])
    m0, m1 = po["markers12"]
    for m in cv.INFLAMMATORY:
        out[f"marker_log_{m}"] = (m0[f"log_{m}12"], m1[f"log_{m}12"])
    for m in cv.NUTRITIONAL:
        out[f"marker_{m}"] = (m0[f"{m}12"], m1[f"{m}12"])
    return out


TRUTH_ERRORS = (np.linalg.LinAlgError, ValueError, FloatingPointError, ZeroDivisionError)


def compute_parts(scenario: Scenario, parts=("outcome", "dropout")) -> dict[str, dict]:
    """The requested parts of the truth (``outcome``, ``dropout``), each {name: entry}."""
    p = scenario.params
    n = p["truth"]["n"]
    _, po = generate_with_potential(
        scenario, rng_for(p["truth"]["seed"], stream_key(scenario), "truth"), n
    )
    cov = po.shared["cov"]
    X = np.column_stack([cov[c] for c in ADJUSTMENT_SET]).astype(float)
    ctx = {
        "n": n,
        "C": po.shared["C"],
        "arm": np.repeat([0.0, 1.0], n),
        "X2": np.vstack([X, X]),
        "tau": p["truth"]["rmst_horizon"],
    }
    ys = _outcomes(po, p)
    out: dict[str, dict] = {part: {} for part in parts}
    for e in ESTIMANDS.values():
        if not e.has_truth or e.depends_on not in out or e.summary == "rate_diff_config":
            continue
        with np.errstate(all="ignore"):
            try:
                if e.summary.endswith("_config"):
                    v = _config_truth(e, p)
                    if v is None:
                        continue
                else:
                    v = _summary(e, ys[e.outcome], ctx)
            except TRUTH_ERRORS as exc:
                v = _failed(f"{type(exc).__name__}: {exc}")
        out[e.depends_on][e.name] = v
    if "outcome" in out:
        ae = p["adverse_events"]
        rates = {**ae["types"], **{k: ae[k] for k in ("any", "grade34", "discontinuation")}}
        for name, (a0, a1) in rates.items():
            e = lookup(f"ae_{name}_rd")
            out["outcome"][e.name] = _entry(a1 - a0, 0.0, "config")
    return out


def compute_truth(scenario: Scenario) -> dict:
    """Every truth of ``scenario`` (not cached): {estimand: {value, mcse, source, status,
    message}}."""
    parts = compute_parts(scenario)
    return {**parts["outcome"], **parts["dropout"]}
