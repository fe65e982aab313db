"""Calibration: the `study` preset against every number the study's article reports (its
Table 1 and 2 marginals, KM medians and unadjusted HRs of PFS and OS, week-12 response rates and
Table 3's responder profile, the baseline NRS distribution: :data:`TARGETS`), and solvers that
turn a marginal target into the conditional parameter that produces it.

- :func:`calibration_table` simulates one large cohort and lists, side by side, each target
  with the simulated value, the tolerance the issue sets
  (proportions 2 points, means 0.1 SD, KM medians 0.3 months, Cox HRs 0.03, response 3 points)
  and whether it is met.
- :func:`solve_parameter` finds, by bisection on a large fixed-seed potential-outcome sample
  (common random numbers, as in Austin 2013), the value of one config key that makes a marginal
  measure hit its target, e.g. ``survival.progression.log_hr`` for a marginal PFS HR of 0.68.
  Solved values are cached on disk by the scenario's content, the entry and the DGM code
  fingerprint (sim/truth.py dgm_fingerprint), so a code change never reuses a stale solve.
- :func:`fit_study` (``python -m palliasim.sim.calibrate``) re-derives the [CALIBRATED] values of
  study.yaml jointly by Gauss-Newton steps with a finite-difference Jacobian (the week-1..8
  control change and effect are kept in proportion with week 12).

The response-rate targets are computed among patients with a known response (assessed at week
12, or dead by then = non-responder), as the study's complete-data cohort had them.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd

from palliasim.sim.errors import ConfigError
from palliasim.sim.files import atomic_write_text
from palliasim.sim.generate import generate, generate_with_potential
from palliasim.sim.scenario import Scenario, content_hash, load_scenario
from palliasim.sim.seeding import rng_for
from palliasim.sim.survstats import cox_loghr, km_median
from palliasim.sim.truth import cache_dir, dgm_fingerprint

PP2, PP3 = 0.02, 0.03
T1 = {  # Table 1: (quantity, control, observation)
    "male": (0.612, 0.608),
    "ecog_0_1": (0.476, 0.500),
    "ecog_2": (0.350, 0.333),
    "ecog_3_4": (0.175, 0.167),
    "primary_breast": (0.301, 0.294),
    "primary_lung": (0.350, 0.343),
    "primary_prostate": (0.175, 0.167),
    "primary_gi": (0.097, 0.088),
    "primary_other": (0.078, 0.108),
    "lesions_gt3": (0.621, 0.637),
    "site_axial": (0.583, 0.569),
    "site_appendicular": (0.204, 0.225),
    "site_mixed": (0.214, 0.206),
    "spinal": (0.650, 0.667),
    "fracture": (0.214, 0.225),
    "visceral": (0.534, 0.529),
}
T2 = {  # Table 2 AE rates
    "ae_any": (0.796, 0.784),
    "ae_grade34": (0.233, 0.186),
    "ae_nausea": (0.369, 0.255),
    "ae_constipation": (0.427, 0.294),
    "ae_somnolence": (0.282, 0.176),
    "ae_cognitive": (0.117, 0.069),
    "ae_flare": (0.146, 0.108),
    "ae_skin": (0.204, 0.225),
    "ae_haematologic": (0.136, 0.127),
    "ae_discontinuation": (0.078, 0.059),
}


def _targets() -> list[tuple[str, str, float, float]]:
    rows = [
        ("age_mean", g, t, 0.1 * 11.45) for g, t in (("control", 62.02), ("observation", 62.25))
    ]
    for q, (c, o) in {**T1, **T2}.items():
        rows += [(q, "control", c, PP2), (q, "observation", o, PP2)]
    rows += [
        ("pfs_km_median", "control", 4.8, 0.3),
        ("pfs_km_median", "observation", 7.2, 0.3),
        ("os_km_median", "control", 9.4, 0.3),
        ("os_km_median", "observation", 12.1, 0.3),
        ("pfs_hr_unadjusted", "all", 0.68, 0.03),
        ("os_hr_unadjusted", "all", 0.73, 0.03),
        ("response_rate", "control", 52 / 96, PP3),
        ("response_rate", "observation", 80 / 109, PP3),
        ("response_rate", "all", 132 / 205, PP3),
        ("nrs0_mean", "responders", 7.08, 0.23),
        ("nrs0_mean", "non-responders", 7.96, 0.23),
        # STUDY.md asks only for "less baseline strong-opioid use" among responders (38.6 vs 57.5%):
        # the target is the difference, 18.9 points, with a 10-point tolerance (direction and size).
        ("strong_opioid_diff", "non-responders - responders", 0.189, 0.10),
        ("nrs0_mean", "all", 7.4, 0.23),
        ("nrs0_sd", "all", 2.3, 0.23),
    ]
    return rows


TARGETS = _targets()


def study_metrics(patients: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Every calibration quantity computed on one (large) simulated cohort."""
    P = patients
    g = P["group"].to_numpy()
    out: dict[tuple[str, str], float] = {}
    ecog = P["ecog"].to_numpy()
    cols = {
        "male": P["male"].to_numpy(),
        "ecog_0_1": ecog <= 1,
        "ecog_2": ecog == 2,
        "ecog_3_4": ecog >= 3,
        "lesions_gt3": P["lesions_gt3"].to_numpy(),
        "spinal": P["spinal"].to_numpy(),
        "fracture": P["fracture"].to_numpy(),
        "visceral": P["visceral"].to_numpy(),
    }
    for lab in ("breast", "lung", "prostate", "gi", "other"):
        cols[f"primary_{lab}"] = (P["primary"] == lab).to_numpy()
    for lab in ("axial", "appendicular", "mixed"):
        cols[f"site_{lab}"] = (P["site"] == lab).to_numpy()
    for k in T2:
        cols[k] = P[k].to_numpy()
    for a, name in ((0, "control"), (1, "observation")):
        m = g == a
        out[("age_mean", name)] = float(P["age"].to_numpy()[m].mean())
        for k, v in cols.items():
            out[(k, name)] = float(np.mean(v[m]))
        for ep in ("pfs", "os"):
            out[(f"{ep}_km_median", name)] = km_median(
                P[f"{ep}_months"].to_numpy()[m], P[f"{ep}_event"].to_numpy()[m]
            )
    for ep in ("pfs", "os"):
        b, _ = cox_loghr(P[f"{ep}_months"].to_numpy(), P[f"{ep}_event"].to_numpy(), g.astype(float))
        out[(f"{ep}_hr_unadjusted", "all")] = float(np.exp(b[0]))
    r = P["response"].to_numpy()
    out[("response_rate", "control")] = float(np.nanmean(r[g == 0]))
    out[("response_rate", "observation")] = float(np.nanmean(r[g == 1]))
    out[("response_rate", "all")] = float(np.nanmean(r))
    nrs0 = P["nrs0"].to_numpy()
    so = P["strong_opioid"].to_numpy()
    out[("nrs0_mean", "responders")] = float(nrs0[r == 1].mean())
    out[("nrs0_mean", "non-responders")] = float(nrs0[r == 0].mean())
    out[("strong_opioid_diff", "non-responders - responders")] = float(
        so[r == 0].mean() - so[r == 1].mean()
    )
    out[("nrs0_mean", "all")] = float(nrs0.mean())
    out[("nrs0_sd", "all")] = float(nrs0.std(ddof=1))
    return out


def calibration_table(scenario: Scenario, n: int = 40_000, seed: int = 2026) -> pd.DataFrame:
    """Columns quantity, group, target, simulated, tolerance, ok (one large cohort)."""
    cohort = generate(scenario, rng_for(seed, scenario.key, "example", 1), n)
    sim = study_metrics(cohort.patients)
    rows = []
    for q, g, target, tol in TARGETS:
        v = sim[(q, g)]
        rows.append(
            {
                "quantity": q,
                "group": g,
                "target": target,
                "simulated": round(v, 4),
                "tolerance": tol,
                "ok": bool(abs(v - target) <= tol),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ marginal-target solvers
def _po_sample(scenario: Scenario, n: int, seed: int, key: str | None = None):
    """Potential outcomes of ``n`` patients; ``key`` fixes the stream (common random numbers)."""
    return generate_with_potential(scenario, rng_for(seed, key or scenario.key, "solve", 7), n)


def marginal_measures() -> dict[str, Callable]:
    """Named marginal measures of a potential-outcome sample (used by solve_parameter)."""

    def hr(key):
        def f(po):
            t0, t1 = po[key]
            C = po.shared["C"]
            tt = np.concatenate([np.minimum(t0, C), np.minimum(t1, C)])
            ev = np.concatenate([t0 <= C, t1 <= C])
            arm = np.repeat([0.0, 1.0], t0.shape[0])
            return float(np.exp(cox_loghr(tt, ev, arm)[0][0]))

        return f

    def risk(a):
        return lambda po: float(np.mean(po["responder"][a]))

    return {
        "marginal_hr_pfs": hr("t_pfs"),
        "marginal_hr_os": hr("t_death"),
        "response_risk_0": risk(0),
        "response_risk_1": risk(1),
        "response_rd": lambda po: float(np.mean(po["responder"][1]) - np.mean(po["responder"][0])),
    }


def solve_parameter(
    scenario: Scenario,
    key: str,
    measure: str,
    target: float,
    bracket: tuple[float, float],
    n: int = 50_000,
    seed: int = 1,
    tol: float = 1e-4,
    max_iter: int = 40,
) -> float:
    """Value of config ``key`` in ``bracket`` at which ``measure`` equals ``target`` (bisection).

    The measure must be monotone in the parameter over the bracket; the same fixed-seed sample
    is drawn at every step (common random numbers), so the function is deterministic.
    """
    fns = marginal_measures()
    if measure not in fns:
        raise ValueError(f"unknown measure '{measure}'; allowed values: {', '.join(fns)}")
    f = fns[measure]

    def at(x):
        sc = scenario.with_overrides({key: float(x)})
        return f(_po_sample(sc, n, seed, key=scenario.key)[1]) - target

    lo, hi = bracket
    flo, fhi = at(lo), at(hi)
    if np.sign(flo) == np.sign(fhi):
        raise ValueError(
            f"target {measure} = {target} not bracketed by {key} in {bracket} "
            f"(values {flo + target:.4f}, {fhi + target:.4f})"
        )
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        fm = at(mid)
        if abs(hi - lo) < tol:
            break
        if np.sign(fm) == np.sign(flo):
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------ joint fit of study.yaml
FIT_KEYS = [
    ("survival.os.scale", ("os_km_median", "control"), 0.3),
    ("survival.os.log_hr", ("os_hr_unadjusted", "all"), 0.03),
    ("survival.os.shape", ("os_km_median", "observation"), 0.05),
    ("survival.progression.scale", ("pfs_km_median", "control"), 0.3),
    ("survival.progression.log_hr", ("pfs_hr_unadjusted", "all"), 0.03),
    ("survival.progression.shape", ("pfs_km_median", "observation"), 0.05),
    ("nrs.mean_change_control.3", ("response_rate", "control"), 0.1),
    ("nrs.effect.3", ("response_rate", "observation"), 0.1),
    ("nrs.baseline_slope", ("nrs0_mean", "responders"), 0.05),
]


def _get(params, dotted):
    node = params
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _with(scenario: Scenario, values) -> Scenario:
    """``scenario`` with FIT_KEYS set to ``values``; a week-12 NRS entry scales the earlier
    visits' entries in proportion (the trajectory keeps its shape)."""
    params = copy.deepcopy(scenario.params)
    for (key, _, _), v in zip(FIT_KEYS, values):
        parts = key.split(".")
        node = params
        for part in parts[:-1]:
            node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            old = node[int(last)]
            if old != 0:
                node[:] = [float(x * v / old) for x in node]
            node[int(last)] = float(v)
        else:
            node[last] = float(v)
    return Scenario.from_dict(params)


def fit_study(n: int = 60_000, seed: int = 11, iters: int = 4, verbose: bool = True) -> dict:
    """Newton iterations on FIT_KEYS so the study targets are met on a fixed-seed sample."""
    sc = load_scenario("study")
    target = {(q, g): t for q, g, t, _ in TARGETS}
    x = np.array([_get(sc.params, k) for k, _, _ in FIT_KEYS], float)

    def resid(vals):
        s = _with(sc, vals)
        m = study_metrics(generate(s, rng_for(seed, "0" * 16, "solve", 3), n).patients)
        return np.array([m[q] - target[q] for _, q, _ in FIT_KEYS])

    r = resid(x)
    for it in range(iters):
        if verbose:
            print(f"iter {it}: max |resid| = {np.max(np.abs(r)):.4f}", file=sys.stderr)
        J = np.empty((len(x), len(x)))
        for j, (_, _, h) in enumerate(FIT_KEYS):
            xh = x.copy()
            xh[j] += h
            J[:, j] = (resid(xh) - r) / h
        x = x - np.linalg.lstsq(J, r, rcond=None)[0]
        r = resid(x)
    if verbose:
        print(f"final: max |resid| = {np.max(np.abs(r)):.4f}", file=sys.stderr)
    return {k: round(float(v), 4) for (k, _, _), v in zip(FIT_KEYS, x)}


if __name__ == "__main__":  # pragma: no cover
    print(fit_study())


# ------------------------------------------------------------------ solves declared in config
SOLVE_KEYS = {"key", "measure", "target", "bracket", "n"}


def apply_solves(scenario: Scenario, solves: list | None, seed: int = 1) -> Scenario:
    """Apply ``solve:`` entries of a config: each sets one scenario key to the value at which a
    named marginal measure hits its target, e.g.
    ``{key: survival.progression.log_hr, measure: marginal_hr_pfs, target: 0.68,
    bracket: [-1.0, 0.5], n: 50000}``. Entries are validated before any compute (ConfigError
    naming ``solve[i].<field>``); solved values are cached on disk by content hash (scenario,
    entry, seed, n and the DGM code fingerprint)."""
    if not solves:
        return scenario
    if not isinstance(solves, list):
        raise ConfigError("config key 'solve' must be a list of {key, measure, target, bracket}")
    measures = marginal_measures()
    for i, entry in enumerate(solves):
        where = f"solve[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(
                f"config key '{where}' must be a mapping with key, measure, target, bracket"
            )
        unknown = sorted(set(entry) - SOLVE_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown config key '{where}.{unknown[0]}'; allowed: {', '.join(sorted(SOLVE_KEYS))}"
            )
        for req in ("key", "measure", "target", "bracket"):
            if req not in entry:
                raise ConfigError(f"missing config key '{where}.{req}'")
        if entry["measure"] not in measures:
            raise ConfigError(
                f"invalid value {entry['measure']!r} for config key '{where}.measure'; "
                f"allowed values: {', '.join(measures)}"
            )
        br = entry["bracket"]
        if not (
            isinstance(br, list)
            and len(br) == 2
            and all(isinstance(b, (int, float)) for b in br)
            and br[0] < br[1]
        ):
            raise ConfigError(
                f"invalid value {br!r} for config key '{where}.bracket'; allowed: [low, high] with low < high"
            )
        if not isinstance(entry["target"], (int, float)):
            raise ConfigError(
                f"invalid value {entry['target']!r} for config key '{where}.target'; allowed: a number"
            )
        scenario.with_overrides(
            {entry["key"]: float(br[0])}
        )  # the key exists and the bracket is valid
    for entry in solves:
        n = int(entry.get("n", 50_000))
        tag = content_hash(
            {
                "scenario": scenario.key,
                "entry": entry,
                "seed": seed,
                "n": n,
                "dgm": dgm_fingerprint(),
            }
        )
        path = cache_dir().parent / "solve" / f"{tag}.json"
        value = None
        if path.exists():
            try:
                value = float(json.loads(path.read_text())["value"])
            except (OSError, ValueError, KeyError, TypeError):
                value = None
        if value is None:
            value = solve_parameter(
                scenario,
                entry["key"],
                entry["measure"],
                float(entry["target"]),
                tuple(float(b) for b in entry["bracket"]),
                n=n,
                seed=seed,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps({"value": value, "entry": entry}))
        scenario = scenario.with_overrides({entry["key"]: value})
    return scenario
