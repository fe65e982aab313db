"""Benchmark: the power of the smoke suite (conf/checks/smoke.yaml) to catch a defective estimator.

A toy estimator (:class:`ToyNormalMean`, a registered Estimator) is added to the smoke suite on
the `randomized` scenario with the expectations of the suite's correctly specified rows
(``unbiased, covers, relerror: 10, max_fail_rate: 0.01`` on ``nrs_diff_w12``), with one
planted defect at a time:

    clean       estimate ~ N(theta, s^2), model SE s, 95% Wald CI
    bias        estimate ~ N(theta + 0.3 s, s^2)           (bias 0.3 EmpSE)
    se_low      model SE 0.8 s (20% too small), CI from s  (SE-only defect)
    se_high     model SE 1.2 s (20% too large), CI from s
    coverage    CI estimate +/- z_0.96 s: coverage 0.92, SE s

(s = the measured EmpSE of ``ancova_cc``, theta its truth, with the truth's own MCSE). Each
Monte Carlo repeat draws the toy's ``reps`` (300, the suite's) replications directly from that
sampling model (:func:`simulate_replications`; the Estimator implements the same model on a
cohort, tests/test_check_power.py checks it), joins them to the smoke suite's real replications
(one run at the suite's seed, as CI runs it) and judges the whole suite with
:func:`experiments.checks.judging.evaluate` - the same statistics and the same Holm family as
``task=check``. The estimate is P(the suite fails), with MCSE sqrt(P (1 - P) / R).

    python benchmarks/bench_check_power.py [--repeats 1000] [--seed 1] [--out-dir DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.special import ndtr, ndtri

from palliasim.estimators.base import Estimator, register, wald_row
from palliasim.experiments.checks.judging import evaluate
from palliasim.experiments.checks.running import run_suite
from palliasim.experiments.checks.schema import load_suite
from palliasim.experiments.scoring.performance import summarise

ROOT = Path(__file__).resolve().parents[1]

#: defect name -> (bias in EmpSE, model SE / EmpSE, CI coverage)
DEFECTS: dict[str, tuple[float, float, float]] = {
    "clean": (0.0, 1.0, 0.95),
    "bias": (0.3, 1.0, 0.95),
    "se_low": (0.0, 0.8, 0.95),
    "se_high": (0.0, 1.2, 0.95),
    "coverage": (0.0, 1.0, 0.92),
}

TOY_EXPECT = {"unbiased": True, "covers": True, "relerror": 10, "max_fail_rate": 0.01}


@register("toy_normal_mean")
@dataclass
class ToyNormalMean(Estimator):
    """Difference in mean week-12 NRS (observation - control) among the observed patients, d,
    with SE s = sqrt(v1 / n1 + v0 / n0), and planted defects: estimate d + ``bias`` s, model
    SE ``se_scale`` s, CI estimate +/- z_{(1 + coverage) / 2} s. Unbiased, honest and 95%
    covering with the defaults in a randomized trial without dropout."""

    estimands = ("nrs_diff_w12",)
    bias: float = 0.0
    se_scale: float = 1.0
    coverage: float = 0.95

    def _fit(self, cohort, rng):
        p = cohort.patients
        y = p["nrs12"].to_numpy(float)
        g = p["group"].to_numpy()
        a, b = y[(g == 1) & ~np.isnan(y)], y[(g == 0) & ~np.isnan(y)]
        s = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
        est = float(a.mean() - b.mean()) + self.bias * s
        row = wald_row(
            self.name, "nrs_diff_w12", est, self.se_scale * s, self.alpha, len(a) + len(b)
        )
        half = float(ndtri((1.0 + self.coverage) / 2.0)) * s
        row.ci_low, row.ci_high = est - half, est + half
        return [row]


def simulate_replications(
    reps: int,
    theta: float,
    true_mcse: float,
    s: float,
    defect: tuple[float, float, float],
    rng: np.random.Generator,
    *,
    method: str = "toy",
    scenario: str = "randomized",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """``reps`` result rows of the toy's sampling model (see :class:`ToyNormalMean`):
    estimate ~ N(theta + bias s, s^2), SE se_scale s, CI estimate +/- z_{(1+cov)/2} s,
    Wald p-value from the model SE."""
    bias, se_scale, cov = defect
    est = theta + bias * s + s * rng.standard_normal(reps)
    se = np.full(reps, se_scale * s)
    half = float(ndtri((1.0 + cov) / 2.0)) * s
    z = np.abs(est / se)

    return pd.DataFrame(
        {
            "scenario": scenario,
            "rep": np.arange(reps),
            "method": method,
            "estimand": "nrs_diff_w12",
            "estimate": est,
            "se": se,
            "ci_low": est - half,
            "ci_high": est + half,
            "p_value": 2.0 * ndtr(-z),
            "n_used": 200,
            "status": "ok",
            "message": "",
            "true": theta,
            "true_mcse": true_mcse,
        }
    )


def smoke_with_toy(toy_options: dict | None = None) -> dict:
    """The smoke suite as a mapping, plus the toy estimator and its checks on `randomized`."""
    raw = yaml.safe_load((ROOT / "conf" / "checks" / "smoke.yaml").read_text())
    raw["estimators"]["toy"] = {"kind": "toy_normal_mean", **(toy_options or {})}
    raw["checks"].append(
        {
            "scenario": "randomized",
            "method": "toy",
            "estimand": "nrs_diff_w12",
            "expect": TOY_EXPECT,
        }
    )
    return raw


def power(
    suite, base: pd.DataFrame, defect, repeats: int, rng, s: float, theta: float, tm: float
) -> dict:
    """P(the suite fails) and P(a toy check fails), each with its MCSE, over ``repeats``."""
    base_perf = summarise(base, by=["scenario"], alpha=suite.alpha, failures=suite.failures)
    fails, toy_fails, other_fails = 0, {}, 0
    for _ in range(repeats):
        toy = simulate_replications(suite.reps, theta, tm, s, defect, rng, alpha=suite.alpha)
        perf = pd.concat(
            [
                base_perf,
                summarise(toy, by=["scenario"], alpha=suite.alpha, failures=suite.failures),
            ],
            ignore_index=True,
        )
        t = evaluate(suite, perf, pd.concat([base, toy], ignore_index=True))
        bad = t[t["verdict"] == "FAIL"]
        fails += bool(len(bad))
        other_fails += bool((bad["method"] != "toy").any())
        for e in bad.loc[bad["method"] == "toy", "expectation"]:
            toy_fails[e] = toy_fails.get(e, 0) + 1

    def est(k: int) -> dict:
        p = k / repeats
        return {"p": p, "mcse": float(np.sqrt(p * (1 - p) / repeats))}

    return {
        "suite_fails": est(fails),
        "other_checks_fail": est(other_fails),
        "by_check": {e: est(k) for e, k in sorted(toy_fails.items())},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out-dir", default=None, help="the smoke run's directory (resumed)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out = Path(args.out_dir or tempfile.mkdtemp(prefix="bench-check-power-"))
    t0 = time.perf_counter()
    smoke = run_suite("smoke", out_dir=out, n_jobs=2)
    print(
        f"smoke suite at its seed: {'passed' if smoke.passed else 'FAILED'} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    base = smoke.results
    suite = load_suite(smoke_with_toy(), name="smoke+toy")
    perf = smoke.performance.set_index(["scenario", "method", "estimand"])
    ref = perf.loc[("randomized", "ancova_cc", "nrs_diff_w12")]
    s, theta, tm = float(ref["empse"]), float(ref["true"]), float(ref["true_mcse"])
    print(
        f"toy: theta {theta:.4g}, EmpSE s {s:.4g}, truth MCSE {tm:.2g}; {suite.reps} reps, "
        f"{args.repeats} repeats per defect"
    )
    rng = np.random.default_rng(args.seed)
    res = {}
    for name, d in DEFECTS.items():
        t1 = time.perf_counter()
        res[name] = power(suite, base, d, args.repeats, rng, s, theta, tm)
        r = res[name]
        checks = ", ".join(f"{e} {v['p']:.3f}" for e, v in r["by_check"].items()) or "none"
        print(
            f"{name:9s} P(suite fails) = {r['suite_fails']['p']:.3f} "
            f"(MCSE {r['suite_fails']['mcse']:.3f}); toy checks failing: {checks}; "
            f"other checks failing {r['other_checks_fail']['p']:.3f} "
            f"[{time.perf_counter() - t1:.0f} s]"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
