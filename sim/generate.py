"""The data-generating model: one call draws a whole cohort, vectorized over patients.

    generate(scenario, rng) -> Cohort                           (what estimators see)
    generate_with_potential(scenario, rng, n) -> (Cohort, PotentialOutcomes)

Flow: covariates (sim/covariates) -> treatment (sim/treatment) -> both arms' outcomes from common
draws (sim/pain, sim/qol, sim/adverse, sim/markers, sim/survival) -> observed = outcome of the
received arm -> missingness (sim/missingness) -> tables (sim/cohort). Scenario constants
(propensity intercept, dropout intercept, AE 'other' rates) are solved once per scenario on a
fixed-seed sample and cached in-process by the scenario's content hash.
"""

from __future__ import annotations

import numpy as np

from palliasim.sim import (
    adverse,
    covariates,
    markers,
    missingness,
    pain,
    qol,
    schedule,
    survival,
    treatment,
)
from palliasim.sim.cohort import BASELINE_COLUMNS, Cohort, PotentialOutcomes
from palliasim.sim.scenario import Scenario
from palliasim.sim.seeding import rng_for

_CONSTANTS: dict[str, dict] = {}
SOLVE_N = 100_000

#: how much of a cohort :func:`generate` draws, smallest first. ``os``: id, group, the baseline
#: covariates of ``BASELINE_COLUMNS`` (after covariate missingness), os_months, os_event;
#: ``pfs``: also pfs_months, pfs_event (needs the pain process); ``all``: every column (baseline
#: markers and QoL included) and the visits table. The random draws come in this order
#: (covariates, treatment, covariate missingness, survival, pain, then baseline markers, QoL,
#: AEs, week-12 markers and visit missingness), so the lower levels are prefixes of the stream.
LEVELS = ("os", "pfs", "all")
_BASE = ("id", "group", *BASELINE_COLUMNS)
_LEVEL_COLUMNS = {
    "os": frozenset(_BASE + ("os_months", "os_event")),
    "pfs": frozenset(_BASE + ("pfs_months", "pfs_event", "os_months", "os_event")),
}


def level_columns(level: str) -> frozenset[str] | None:
    """The patient columns a cohort of ``level`` has (None for ``all``: every column)."""
    return _LEVEL_COLUMNS.get(level)


def level_for(columns) -> str:
    """The smallest level whose cohort has every column in ``columns`` (None: ``all``)."""
    if columns is None:
        return "all"
    need = set(columns)
    for level in LEVELS[:-1]:
        if need <= _LEVEL_COLUMNS[level]:
            return level
    return "all"


def constants(scenario: Scenario) -> dict:
    """Derived constants of a scenario (deterministic; cached by :attr:`Scenario.constants_key`,
    the content hash without ``cohort.n``: solved on fixed-seed samples of ``SOLVE_N``, the
    same for every cohort size)."""
    ck = scenario.constants_key
    k = _CONSTANTS.get(ck)
    if k is not None:
        return k
    p = scenario.params
    k = {
        "cov": covariates.covariate_constants(p["covariates"]),
        "ae": adverse.ae_constants(p["adverse_events"]),
    }
    rng = rng_for(p["truth"]["seed"], ck, "solve", 0)
    cov = covariates.draw_covariates(p, k["cov"], rng, SOLVE_N)
    k["a0"] = treatment.solve_intercept(p, treatment.propensity_score(p, cov))
    k["alpha"] = 0.0
    if p["missingness"]["mechanism"] != "none":
        arr = _simulate(p, k, rng_for(p["truth"]["seed"], ck, "solve", 1), SOLVE_N, solve=True)
        k["alpha"] = missingness.solve_dropout_intercept(
            p["missingness"],
            arr["nrs_obs_full"],
            arr["alive"],
            arr["ecog"],
            arr["nrs0"],
            arr["u_miss"],
        )
    _CONSTANTS[ck] = k
    return k


def _pick(a, x0, x1):
    return np.where(a == 1, x1, x0)


def _partial(cov, A, u_cov, C, t_death, t_pfs=None) -> dict:
    return {"cov": cov, "A": A, "u_cov": u_cov, "C": C, "t_death": t_death, "t_pfs": t_pfs}


def _survival_only(p: dict, cov: dict, A, u_cov, sv, potential: bool) -> dict:
    """Level ``os``: death and censoring times of the received arm (the arithmetic of the whole
    cohort's, on the same draws)."""
    if potential:
        raise ValueError("potential outcomes need the whole cohort (level 'all')")
    return _partial(
        cov, A, u_cov, survival.censoring_times(p, sv), survival.death_times(p, cov, sv, A)
    )


def _simulate(
    p: dict,
    k: dict,
    rng: np.random.Generator,
    n: int,
    solve: bool = False,
    potential: bool = False,
    level: str = "all",
) -> dict:
    """All draws of one cohort. ``potential``: outcomes under both arms (keys 0 and 1, for the
    truth); otherwise only under the received arm (key "obs", a = A elementwise: half the cost).
    The random draws are identical either way, so the observed cohort does not depend on it.

    The draws come in the order of :data:`LEVELS` (baseline, survival, pain, then the rest), so
    a cohort generated at a lower ``level`` stops drawing early and its columns are identical
    to those of the whole cohort from the same generator."""
    cov = covariates.draw_covariates(p, k["cov"], rng, n)
    A = treatment.assign(p, cov, k.get("a0", 0.0), rng, n)
    u_cov = rng.random((len(p["missingness"]["covariates"]["columns"]), n))
    sv = survival.draw_survival_uniforms(rng, n)
    if level == "os":
        return _survival_only(p, cov, A, u_cov, sv, potential)
    lat = pain.draw_nrs_latent(p, cov, rng, n)
    op_draws = pain.draw_opioid_uniforms(rng, n)
    if level == "all":
        covariates.draw_baseline_markers(p, cov, rng, n)
        qz = qol.draw_qol_noise(rng, n)
        ae_draws = adverse.draw_ae_latent(
            p["adverse_events"]["correlation"], len(k["ae"]["names"]), rng, n
        )
        mz = markers.draw_marker_noise(rng, n)
        u_miss = missingness.draw_missing_uniforms(rng, n)

    arm_values = {0: 0, 1: 1} if potential else {"obs": A}
    thresholds = pain.category_thresholds(p["response"])
    arms = {}
    for key, a in arm_values.items():
        y = lat["Y0"] + np.asarray(p["nrs"]["effect"]) * (
            np.asarray(a)[..., None] if np.ndim(a) else a
        )
        nrs = pain.observe_nrs(y)
        omed = pain.omed_path(p, cov, y, a, op_draws)
        t_death = survival.death_times(p, cov, sv, a)
        alive_a = t_death[:, None] > missingness.VISIT_MONTHS[None, :]
        j = pain.first_progression_visit(cov["nrs0"], nrs, cov["omed0"], omed, alive_a, thresholds)
        t_visit = np.where(j >= 0, missingness.VISIT_MONTHS[np.maximum(j, 0)], np.inf)
        t_pfs = survival.pfs_times(p, cov, sv, a, y[:, 3] - cov["nrs0"], t_visit, t_death)
        arms[key] = {
            "a": a,
            "Y": y,
            "nrs": nrs,
            "omed": omed,
            "alive": alive_a,
            "t_death": t_death,
            "t_pfs": t_pfs,
        }

    def view(name):
        if "obs" in arms:
            return arms["obs"][name]
        x0, x1 = arms[0][name], arms[1][name]
        return _pick(A[:, None] if np.ndim(x0) == 2 and x0.shape[0] == n else A, x0, x1)

    nrs_full = view("nrs")
    t_death = view("t_death")
    if level == "pfs":
        C = survival.censoring_times(p, sv)
        return _partial(cov, A, u_cov, C, t_death, view("t_pfs"))
    alive = t_death[:, None] > missingness.VISIT_MONTHS[None, :]
    if solve:
        return {
            "nrs_obs_full": nrs_full,
            "alive": alive,
            "ecog": cov["ecog"],
            "nrs0": cov["nrs0"],
            "u_miss": u_miss,
        }

    resp_cfg = p["response"]
    q0 = qol.qol_baseline(p, cov, qz)
    for arm in arms.values():
        a = arm["a"]
        y12 = arm["Y"][:, 3]
        arm["omed12"] = arm["omed"][:, 3]
        alive12 = arm["t_death"] > schedule.W12_MONTHS
        if resp_cfg["mode"] == "derived":
            arm["category"] = pain.consensus_category(
                cov["nrs0"], arm["nrs"][:, 3], cov["omed0"], arm["omed12"], **thresholds
            )
            arm["responder"] = (arm["category"] <= pain.PARTIAL) & alive12
        else:  # composite strategy for death here too: a patient dead by week 12 never responds
            arm["category"] = np.full(n, -1, dtype=np.int8)
            arm["responder"] = (u_miss[7] < pain.direct_response_prob(p, cov, a)) & alive12
        arm["qol12"] = qol.qol_week12(p, cov, q0, y12, a, qz)
        arm["markers12"] = markers.markers_week12(p, cov, y12, a, mz)
        arm["ae"] = adverse.adverse_events(p["adverse_events"], k["ae"], ae_draws, a)
        if potential:  # the week-12 assessment each arm would have had (NRI estimand's truth)
            st_a = missingness.visit_status(
                p["missingness"],
                k["alpha"],
                arm["nrs"],
                arm["alive"],
                cov["ecog"],
                cov["nrs0"],
                u_miss,
            )
            arm["assessed12"] = st_a[:, 3] == missingness.OBSERVED

    C = survival.censoring_times(p, sv)
    status = missingness.visit_status(
        p["missingness"], k["alpha"], nrs_full, alive, cov["ecog"], cov["nrs0"], u_miss
    )
    return {
        "cov": cov,
        "A": A,
        "arms": arms,
        "view": view,
        "q0": q0,
        "nrs_full": nrs_full,
        "t_death": t_death,
        "C": C,
        "status": status,
        "alive": alive,
        "qz": qz,
        "u_cov": u_cov,
    }


CATEGORY_LABELS = (
    "complete",
    "partial",
    "indeterminate",
    "progression",
    "dead",
    "missing",
    "direct",
)
DEAD_CODE = CATEGORY_LABELS.index("dead")
MISSING_CODE = CATEGORY_LABELS.index("missing")


def _baseline_columns(cov: dict, A: np.ndarray) -> dict:
    """id, group, the baseline covariates and (when drawn) the baseline markers (before
    covariate masking)."""
    pa: dict = {"id": np.arange(1, A.shape[0] + 1), "group": A}
    for c in BASELINE_COLUMNS:
        pa[c] = cov[c]
    if f"log_{covariates.INFLAMMATORY[0]}0" not in cov:  # below level all: markers not drawn
        return pa
    # markers: every marker of a kind in one array (rows), the same elementwise arithmetic
    infl, nutr = covariates.INFLAMMATORY, covariates.NUTRITIONAL
    w0 = np.round(np.exp(np.array([cov[f"log_{m}0"] for m in infl])), 3)
    pa.update({f"{m}_w0": w0[i] for i, m in enumerate(infl)})
    w0 = np.round(np.array([cov[f"{m}0"] for m in nutr]), 2)
    pa.update({f"{m}_w0": w0[j] for j, m in enumerate(nutr)})
    return pa


def _survival_columns(pa: dict, t_pfs, t_death, C) -> None:
    """pfs_* (when ``t_pfs`` is given) and os_*: min(T, C) rounded to 1e-4 months, T <= C."""
    if t_pfs is not None:
        pa["pfs_months"] = np.round(np.minimum(t_pfs, C), 4)
        pa["pfs_event"] = (t_pfs <= C).astype(np.int8)
    pa["os_months"] = np.round(np.minimum(t_death, C), 4)
    pa["os_event"] = (t_death <= C).astype(np.int8)


def _mask_covariates(p: dict, pa: dict, cov: dict, u_cov: np.ndarray) -> None:
    """Missing baseline covariates (``missingness.covariates``): NaN where masked."""
    mc = p["missingness"]["covariates"]
    for i, col in enumerate(mc["columns"]):
        mask = missingness.covariate_missing(p["missingness"], cov["age"], u_cov[i])
        if col in pa and mask.any():  # (markers are absent below level all)
            pa[col] = np.where(mask, np.nan, pa[col].astype(float))


def _partial_tables(p: dict, draws: dict) -> tuple[dict, None, dict]:
    """The patients columns of a cohort generated below level ``all`` (no visits table)."""
    pa = _baseline_columns(draws["cov"], draws["A"])
    _survival_columns(pa, draws["t_pfs"], draws["t_death"], draws["C"])
    _mask_covariates(p, pa, draws["cov"], draws["u_cov"])
    return pa, None, {"primary": covariates.PRIMARIES, "site": covariates.SITES}


def _tables(p: dict, draws: dict) -> tuple[dict, dict, dict]:
    cov, A, arms, st = draws["cov"], draws["A"], draws["arms"], draws["status"]
    n = A.shape[0]

    def received(getter):
        """The received arm's value of ``getter(arm)`` (arrays of shape (n,) or (k, n))."""
        if "obs" in arms:
            return getter(arms["obs"])
        x0, x1 = getter(arms[0]), getter(arms[1])
        return np.where(A == 1, x1, x0)

    obs = st == missingness.OBSERVED
    nrs_obs = np.where(obs, draws["nrs_full"], np.nan)
    obs12 = obs[:, 3]
    dead12 = st[:, 3] == missingness.DEAD
    pa = _baseline_columns(cov, A)
    infl, nutr = covariates.INFLAMMATORY, covariates.NUTRITIONAL
    q0 = draws["q0"]
    for i, d in enumerate(qol.DOMAINS):
        pa[f"qol_{d}_w0"] = q0[i]
    pa["nrs12"] = nrs_obs[:, 3]
    pa["omed12"] = np.where(obs12, received(lambda x: x["omed12"]), np.nan)
    q12 = received(lambda x: x["qol12"])
    for i, d in enumerate(qol.DOMAINS):
        pa[f"qol_{d}_w12"] = np.where(obs12, q12[i], np.nan)
    v = received(lambda x: np.array([x["markers12"][f"log_{m}12"] for m in infl]))
    w12 = np.where(obs12, np.round(np.exp(v), 3), np.nan)
    pa.update({f"{m}_w12": w12[i] for i, m in enumerate(infl)})
    v = received(lambda x: np.array([x["markers12"][f"{m}12"] for m in nutr]))
    w12 = np.where(obs12, np.round(v, 2), np.nan)
    pa.update({f"{m}_w12": w12[j] for j, m in enumerate(nutr)})
    # response: 1/0 for a patient assessed at week 12; dead by week 12 -> response.dead_as
    # (0 by default: composite strategy); alive but not assessed -> response.missing_as (NaN by
    # default: missing data, for the analysis to handle)
    r = p["response"]
    if r["mode"] == "derived":
        cat = received(lambda x: x["category"]).astype(np.int8)
    else:
        cat = np.full(n, CATEGORY_LABELS.index("direct"), dtype=np.int8)
    resp = received(lambda x: x["responder"]).astype(float)
    cat = np.where(dead12, DEAD_CODE, np.where(~obs12, MISSING_CODE, cat)).astype(np.int8)
    resp = np.where(dead12, np.nan if r["dead_as"] == "missing" else 0.0, resp)
    resp = np.where(~dead12 & ~obs12, np.nan if r["missing_as"] == "missing" else 0.0, resp)
    pa["response"] = resp
    pa["response_category"] = cat
    onset, onset_ev, dur, dur_ev = pain.relief_times(cov["nrs0"], nrs_obs, p["relief"]["threshold"])
    pa["relief_onset_weeks"] = onset
    pa["relief_onset_event"] = onset_ev
    pa["relief_duration_weeks"] = dur
    pa["relief_duration_event"] = dur_ev
    for key in next(iter(arms.values()))["ae"]:
        pa[key] = received(lambda x, key=key: x["ae"][key])
    _survival_columns(pa, received(lambda x: x["t_pfs"]), draws["t_death"], draws["C"])
    _mask_covariates(p, pa, cov, draws["u_cov"])
    # visits, long: patient-major, weeks 0, 1, 4, 8, 12
    nrs_all = np.column_stack([cov["nrs0"], nrs_obs])
    st_all = np.column_stack([np.zeros(n, dtype=np.int8), st])
    va = {
        "id": np.repeat(pa["id"], 5),
        "group": np.repeat(A, 5),
        "week": np.tile(pain.WEEKS, n),
        "nrs": nrs_all.ravel(),
        "status": st_all.ravel(),
    }
    cats = {
        "primary": covariates.PRIMARIES,
        "site": covariates.SITES,
        "response_category": CATEGORY_LABELS,
        "status": schedule.STATUS_LABELS,
    }
    return pa, va, cats


def generate(
    scenario: Scenario, rng: np.random.Generator, n: int | None = None, level: str = "all"
) -> Cohort:
    """Draw one cohort of ``n`` (default ``cohort.n``) patients, up to ``level`` (:data:`LEVELS`:
    ``all`` the whole cohort; ``os`` / ``pfs`` only the columns of :func:`level_columns`, equal
    to the whole cohort's from the same generator state, at a fraction of the cost)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
    k = constants(scenario)
    draws = _simulate(scenario.params, k, rng, n or scenario.n, level=level)
    if level == "all":
        return Cohort(*_tables(scenario.params, draws))
    pa, va, cats = _partial_tables(scenario.params, draws)
    return Cohort(pa, va, cats, level=level)


def generate_with_potential(scenario: Scenario, rng: np.random.Generator, n: int | None = None):
    """Draw a cohort and its potential outcomes under both arms (for the truth)."""
    k = constants(scenario)
    p = scenario.params
    draws = _simulate(p, k, rng, n or scenario.n, potential=True)
    pa, va, cats = _tables(p, draws)
    arms = draws["arms"]
    po = {
        "nrs": (arms[0]["nrs"], arms[1]["nrs"]),
        "responder": (arms[0]["responder"], arms[1]["responder"]),
        "assessed12": (arms[0]["assessed12"], arms[1]["assessed12"]),
        "t_death": (arms[0]["t_death"], arms[1]["t_death"]),
        "t_pfs": (arms[0]["t_pfs"], arms[1]["t_pfs"]),
        "qol12": (arms[0]["qol12"], arms[1]["qol12"]),
        "markers12": (arms[0]["markers12"], arms[1]["markers12"]),
        "ae": (arms[0]["ae"], arms[1]["ae"]),
    }
    shared = {"C": draws["C"], "A": draws["A"], "cov": draws["cov"]}
    return Cohort(pa, va, cats), PotentialOutcomes(po, shared)
