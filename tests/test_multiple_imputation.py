"""Multiple imputation with the m imputations side by side (mi_ancova, mi_response).

- The monotone / chained split of :func:`mice_impute`: a monotone pattern (dropout only) is
  imputed by sequential regressions in one pass (``cycles`` has no effect), an intermittent
  miss switches to chained equations (``cycles`` matters); observed cells are never changed.
- Both engines give the same rows on monotone and non-monotone patterns and fail alike when an
  imputation model is rank deficient (the batched Cholesky hands it to the QR path).
- The predictive-mean-matching donor runs equal the d nearest donors found by brute force.
- Monte Carlo: mi_ancova on a multivariate-normal model with MAR dropout, where the imputation
  model is correct, is unbiased and covers at the nominal level, with tolerances from the
  Monte Carlo SE (R replications); mi_response on the ``randomized`` preset (MCAR dropout)
  recovers the study's response estimand with nominal coverage.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from palliasim.estimators import build_estimator
from palliasim.estimators.longitudinal import is_monotone, mice_impute, nrs_wide
from palliasim.estimators.response_mi import _nearest_runs
from palliasim.sim import generate, load_scenario, rng_for, truth
from palliasim.sim.cohort import Cohort
from tests.test_engine_agreement import compare_rows

LABELS = tuple(f"week-{w} NRS" for w in (1, 4, 8, 12))


def _study(intermittent: float, n: int = 205, seed: int = 0, **extra) -> Cohort:
    sc = load_scenario("study", {"cohort.n": n, "missingness.intermittent": intermittent, **extra})
    return generate(sc, rng_for(11, sc.key, "data", seed))


def _fit(cohort, seed=0, **opts):
    return build_estimator("mi_ancova", **opts).fit(cohort, np.random.default_rng(seed))


def _same(a, b) -> bool:
    keep = ("estimate", "se", "ci_low", "ci_high", "p_value", "status", "message", "n_used")
    return all(getattr(x, k) == getattr(y, k) for x, y in zip(a, b) for k in keep)


def test_monotone_pattern_is_imputed_in_one_pass_without_cycles():
    mono, inter = _study(0.0), _study(0.2)
    assert is_monotone(np.isnan(nrs_wide(mono).nrs[:, 1:]))
    assert not is_monotone(np.isnan(nrs_wide(inter).nrs[:, 1:]))
    assert _same(_fit(mono, cycles=1), _fit(mono, cycles=7))
    assert not _same(_fit(inter, cycles=1), _fit(inter, cycles=7))
    r = _fit(mono)[0]
    assert r.status == "ok" and np.isfinite(r.se) and r.se > 0


@pytest.mark.parametrize("intermittent", [0.0, 0.2])
def test_mice_impute_fills_only_the_missing_cells(intermittent):
    w = nrs_wide(_study(intermittent))
    Y = w.nrs[:, 1:]
    P = np.column_stack([np.ones(len(Y)), w.group, w.nrs0])
    miss = np.isnan(Y)
    assert miss.any()
    Yc = mice_impute(Y, P, np.random.default_rng(3), 6, 2, LABELS)
    assert Yc.shape == (6,) + Y.shape and np.isfinite(Yc).all()
    assert (Yc[:, ~miss] == Y[~miss]).all()
    assert np.ptp(Yc[:, miss], axis=0).min() > 0  # every imputed cell differs between chains
    again = mice_impute(Y, P, np.random.default_rng(3), 6, 2, LABELS)
    assert np.array_equal(Yc, again)
    ref = mice_impute(Y, P, np.random.default_rng(3), 6, 2, LABELS, engine="reference")
    np.testing.assert_allclose(ref, Yc, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "intermittent,n,opts",
    [
        (0.0, 205, {}),
        (0.0, 40, {"impute_dead": True}),
        (0.1, 205, {"covariates": ["age", "ecog"]}),
        (0.3, 45, {"impute_dead": True, "cycles": 2}),
    ],
)
def test_engines_agree_on_monotone_and_chained_patterns(intermittent, n, opts):
    for seed in range(2):
        c = _study(intermittent, n=n, seed=seed)
        kw = {"m": 5, **opts}
        rf = build_estimator("mi_ancova", engine="fast", **kw).fit(c, np.random.default_rng(seed))
        rr = build_estimator("mi_ancova", engine="reference", **kw).fit(
            c, np.random.default_rng(seed)
        )
        assert rf[0].status == "ok"
        assert compare_rows(rf, rr, f"n={n} intermittent={intermittent} {opts}") == []


@pytest.mark.parametrize("intermittent", [0.0, 0.2])
def test_rank_deficient_imputation_model_fails_alike_in_both_engines(intermittent):
    # nrs0 as a covariate duplicates the baseline column of every imputation model
    c = _study(intermittent)
    rows = [
        build_estimator("mi_ancova", engine=e, m=4, covariates=["nrs0"]).fit(
            c, np.random.default_rng(0)
        )[0]
        for e in ("fast", "reference")
    ]
    assert [r.status for r in rows] == ["failed", "failed"]
    assert rows[0].message == rows[1].message
    assert "imputation model for week-" in rows[0].message and "rank-deficient" in rows[0].message


def test_pmm_runs_hold_the_nearest_donors():
    rng = np.random.default_rng(0)
    for t in range(400):
        n = int(rng.integers(1, 40))
        m, nr, d = int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 7))
        d = min(d, n)
        shared = t % 2 == 0
        if t % 3 == 0:  # integer predictions: many ties
            pd_ = rng.integers(0, 8, size=(1 if shared else m, n)).astype(float)
            pr = rng.integers(0, 8, size=(m, nr)) + 0.5 * rng.integers(0, 2, size=(m, nr))
        else:
            pd_ = rng.normal(size=(1 if shared else m, n))
            pr = 1.5 * rng.normal(size=(m, nr))
        order, start = _nearest_runs(pd_, pr, d)
        for i in range(m):
            p = pd_[0 if shared else i]
            assert np.array_equal(order[i], np.argsort(p, kind="stable"))
            sd = p[order[i]]
            for r in range(nr):
                dist = np.abs(sd - pr[i, r])
                run = dist[start[i, r] : start[i, r] + d]
                assert run.size == d
                np.testing.assert_array_equal(np.sort(run), np.sort(dist)[:d])


# ------------------------------------------------------------------ Monte Carlo


def _mvn_cohort(rng, n: int, intermittent: float) -> tuple[Cohort, float]:
    """NRS-like visits from a random-intercept normal model with MAR monotone dropout (on the
    last observed value) and optional MCAR intermittent misses at weeks 1-8. Given (group,
    baseline) the visits are jointly normal, so the imputation models are correct; the week-12
    ANCOVA coefficient of group is DELTA exactly."""
    g = (rng.random(n) < 0.5).astype(float)
    y0 = 6.0 + 1.5 * rng.standard_normal(n)
    b = rng.standard_normal(n)
    effect = np.array([-0.3, -0.6, -0.8, -1.0])
    Y = (
        5.8
        - 0.2 * np.arange(4)
        + effect * g[:, None]
        + 0.5 * (y0[:, None] - 6.0)
        + b[:, None]
        + rng.standard_normal((n, 4))
    )
    status = np.zeros((n, 4))
    last, in_study = y0.copy(), np.ones(n, bool)
    for j in range(4):
        in_study &= rng.random(n) >= expit(-2.6 + 0.6 * (last - 6.0))
        missed = (rng.random(n) < intermittent) if j < 3 else np.zeros(n, bool)
        status[:, j] = np.where(~in_study, 2, np.where(missed, 1, 0))
        last = np.where(status[:, j] == 0, Y[:, j], last)
    nrs = np.where(status == 0, Y, np.nan)
    ids = np.arange(n)
    va = {
        "id": np.repeat(ids, 5),
        "group": np.repeat(g, 5),
        "week": np.tile([0, 1, 4, 8, 12], n),
        "nrs": np.column_stack([y0, nrs]).ravel(),
        "status": np.column_stack([np.zeros(n), status]).ravel(),
    }
    return Cohort({"id": ids, "group": g, "nrs0": y0}, va), float(effect[-1])


@pytest.mark.slow
@pytest.mark.parametrize("intermittent", [0.0, 0.1])
def test_mi_ancova_unbiased_and_covers_under_mar_dropout(intermittent):
    R, n = 400, 200
    rng = np.random.default_rng(20261202 + int(intermittent * 10))
    est = build_estimator("mi_ancova", m=10)
    rows, miss12 = [], []
    for _ in range(R):
        c, delta = _mvn_cohort(rng, n, intermittent)
        miss12.append(np.isnan(nrs_wide(c).nrs[:, -1]).mean())
        (r,) = est.fit(c, rng)
        assert r.status == "ok", r.message
        rows.append((r.estimate, r.se, r.ci_low <= delta <= r.ci_high))
    e, se, cover = (np.array(x) for x in zip(*rows))
    assert 0.2 < np.mean(miss12) < 0.45  # a substantial share of week-12 values imputed
    mcse = e.std(ddof=1) / np.sqrt(R)
    assert abs(e.mean() - delta) < 3.5 * mcse, (e.mean(), mcse)
    assert abs(cover.mean() - 0.95) < 3.5 * np.sqrt(0.95 * 0.05 / R), cover.mean()
    # model SE (Rubin's total variance) against the empirical SE: relative MCSE 1/sqrt(2(R-1))
    assert abs(np.sqrt(np.mean(se**2)) / e.std(ddof=1) - 1) < 3.5 / np.sqrt(2 * (R - 1))


@pytest.mark.slow
def test_mi_response_recovers_the_response_estimand_and_covers():
    R = 150
    sc = load_scenario(
        "randomized", {"cohort.n": 205, "missingness.mechanism": "mcar", "truth.n": 40_000}
    )
    tr = truth(sc)
    est = build_estimator("mi_response", m=10)
    out = {"response_logor": [], "response_rd": []}
    for rep in range(R):
        c = generate(sc, rng_for(5, sc.key, "data", rep))
        for r in est.fit(c, rng_for(5, sc.key, "estimator", rep)):
            assert r.status == "ok", r.message
            out[r.estimand].append((r.estimate, r.ci_low <= tr[r.estimand] <= r.ci_high))
    for name, rows in out.items():
        e, cover = (np.array(x) for x in zip(*rows))
        mcse = np.hypot(e.std(ddof=1) / np.sqrt(R), tr.mcse(name))
        assert abs(e.mean() - tr[name]) < 3.5 * mcse, (name, e.mean(), tr[name], mcse)
        assert abs(cover.mean() - 0.95) < 3.5 * np.sqrt(0.95 * 0.05 / R), (name, cover.mean())
