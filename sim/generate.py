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


def constants(scenario: Scenario) -> dict:
    """Derived constants of a scenario (cached by content hash; deterministic)."""
    k = _CONSTANTS.get(scenario.key)
    if k is not None:
        return k
    p = scenario.params
    k = {
        "cov": covariates.covariate_constants(p["covariates"]),
        "ae": adverse.ae_constants(p["adverse_events"]),
    }
    rng = rng_for(p["truth"]["seed"], scenario.key, "solve", 0)
    cov = covariates.draw_covariates(p, k["cov"], rng, SOLVE_N)
    k["a0"] = treatment.solve_intercept(p, treatment.propensity_score(p, cov))
    k["alpha"] = 0.0
    if p["missingness"]["mechanism"] != "none":
        arr = _simulate(
            p, k, rng_for(p["truth"]["seed"], scenario.key, "solve", 1), SOLVE_N, solve=True
        )
        k["alpha"] = missingness.solve_dropout_intercept(
            p["missingness"],
            arr["nrs_obs_full"],
            arr["alive"],
            arr["ecog"],
            arr["nrs0"],
            arr["u_miss"],
        )
    _CONSTANTS[scenario.key] = k
    return k


def _pick(a, x0, x1):
    return np.where(a == 1, x1, x0)


def _simulate(
    p: dict, k: dict, rng: np.random.Generator, n: int, solve: bool = False, potential: bool = False
) -> dict:
    """All draws of one cohort. ``potential``: outcomes under both arms (keys 0 and 1, for the
    truth); otherwise only under the received arm (key "obs", a = A elementwise: half the cost).
    The random draws are identical either way, so the observed cohort does not depend on it."""
    cov = covariates.draw_covariates(p, k["cov"], rng, n)
    A = treatment.assign(p, cov, k.get("a0", 0.0), rng, n)
    lat = pain.draw_nrs_latent(p, cov, rng, n)
    op_draws = pain.draw_opioid_uniforms(rng, n)
    qz = qol.draw_qol_noise(rng, n)
    ae_draws = adverse.draw_ae_latent(
        p["adverse_events"]["correlation"], len(k["ae"]["names"]), rng, n
    )
    mz = markers.draw_marker_noise(rng, n)
    sv = survival.draw_survival_uniforms(rng, n)
    u_miss = missingness.draw_missing_uniforms(rng, n)
    u_cov = rng.random((len(p["missingness"]["covariates"]["columns"]), n))

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
    pa: dict = {"id": np.arange(1, n + 1), "group": A}
    for c in BASELINE_COLUMNS:
        pa[c] = cov[c]
    # markers: every marker of a kind in one array (rows), the same elementwise arithmetic
    infl, nutr = covariates.INFLAMMATORY, covariates.NUTRITIONAL
    w0 = np.round(np.exp(np.array([cov[f"log_{m}0"] for m in infl])), 3)
    pa.update({f"{m}_w0": w0[i] for i, m in enumerate(infl)})
    w0 = np.round(np.array([cov[f"{m}0"] for m in nutr]), 2)
    pa.update({f"{m}_w0": w0[j] for j, m in enumerate(nutr)})
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
    C = draws["C"]
    t_pfs = received(lambda x: x["t_pfs"])
    t_death = draws["t_death"]
    pa["pfs_months"] = np.round(np.minimum(t_pfs, C), 4)
    pa["pfs_event"] = (t_pfs <= C).astype(np.int8)
    pa["os_months"] = np.round(np.minimum(t_death, C), 4)
    pa["os_event"] = (t_death <= C).astype(np.int8)
    # missing baseline covariates
    mc = p["missingness"]["covariates"]
    for i, col in enumerate(mc["columns"]):
        mask = missingness.covariate_missing(p["missingness"], cov["age"], draws["u_cov"][i])
        if mask.any():
            pa[col] = np.where(mask, np.nan, pa[col].astype(float))
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


def generate(scenario: Scenario, rng: np.random.Generator, n: int | None = None) -> Cohort:
    """Draw one cohort of ``n`` (default ``cohort.n``) patients."""
    k = constants(scenario)
    draws = _simulate(scenario.params, k, rng, n or scenario.n)
    pa, va, cats = _tables(scenario.params, draws)
    return Cohort(pa, va, cats)


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
