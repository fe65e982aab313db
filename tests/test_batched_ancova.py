"""The batched OLS of ``ancova_w12``'s fast engine (estimators.fast.ols_batch): each clean fit is
ols_fit's, every fit needing a decision goes one by one, so rows, statuses and messages are the
one-by-one engine's."""

from __future__ import annotations

import numpy as np
import pytest

from palliasim.estimators import build_estimator
from palliasim.estimators.continuous import AncovaW12
from palliasim.estimators.design import W12_OUTCOMES
from palliasim.estimators.fast.ols import ols_batch, ols_fit
from palliasim.sim import Cohort, generate, load_scenario, rng_for


def test_ols_batch_equals_ols_fit():
    rng = np.random.default_rng(4)
    T, n = 7, 80
    X = np.stack([np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.normal(50, 9, n)])] * T)
    X = X.copy()
    X[1, :, 2] = rng.normal(1500, 300, n)  # badly scaled (calories-like)
    X[2, :, 2] = 0.0  # all-zero column
    X[3, :, 2] = 2 * X[3, :, 1]  # collinear
    Y = X[:, :, 2] * 0.3 + rng.normal(0, 1, (T, n))
    ok = rng.random((T, n)) > 0.15
    ok[4, 3:] = False  # 3 rows for 3 parameters: no residual df
    X[5, ~ok[5], 2] = np.nan  # NaN where not used
    params, cov, df, scale, clean = ols_batch(Y, X, ok)
    assert list(clean) == [True, True, False, False, False, True, True]
    for t in np.flatnonzero(clean):
        r = ols_fit(Y[t, ok[t]], X[t, ok[t]])
        assert r.status == "ok" and df[t] == r.df_resid
        # both solve the normal equations, rounded in another order: on the badly scaled model
        # (calories-like, mean 1,500) each is ~1e-11 SE from the exact least-squares solution
        # (measured with rational arithmetic), elsewhere ~5e-13 SE
        assert np.all(np.abs(params[t] - r.params) <= 1e-10 * r.bse)
        np.testing.assert_allclose(cov[t], r.cov_params, rtol=1e-11)
        assert scale[t] == pytest.approx(r.scale, rel=1e-12)


def _edited(c: Cohort, **cols) -> Cohort:
    return Cohort({**c.arrays, **cols}, dict(c.visit_arrays), dict(c._cats))


def _cohorts():
    sc = load_scenario(
        "study",
        {"missingness.covariates.mechanism": "mcar", "missingness.covariates.fraction": 0.1},
    )
    for i in range(4):
        c = generate(sc, rng_for(3, sc.key, "data", i), n=(205, 30, 14, 205)[i])
        yield c if i % 2 == 0 else Cohort.from_frames(c.patients.copy(), c.visits.copy())
    c = generate(sc, rng_for(3, sc.key, "data", 9), n=120)
    a = c.arrays
    g = np.asarray(a["group"], float)
    yield _edited(
        c,
        qol_global_w12=np.where(np.isfinite(a["qol_global_w12"]), 50.0, np.nan),  # constant
        qol_role_w12=np.where(g == 1, np.nan, a["qol_role_w12"]),  # no complete case in an arm
        qol_social_w12=np.asarray(a["qol_social_w0"], float) + 3 * g,  # perfect fit
        crp_w12=np.where(np.arange(c.n) % 9 == 0, -1.0, a["crp_w12"]),  # non-positive values
    )


@pytest.mark.parametrize("covariates", [[], ["age", "ecog", "primary"]])
def test_batched_ancova_gives_the_one_by_one_rows(covariates, monkeypatch):
    for c in _cohorts():
        fast = build_estimator("ancova_w12", covariates=covariates, outcomes=list(W12_OUTCOMES))
        ref = build_estimator(
            "ancova_w12", covariates=covariates, outcomes=list(W12_OUTCOMES), engine="reference"
        )
        rows_batch = fast.fit(c)
        rows_ref = ref.fit(c)
        with monkeypatch.context() as mp:
            mp.setattr(AncovaW12, "_batch", staticmethod(lambda *a: {}))
            rows_one = fast.fit(c)
        for a, b, r in zip(rows_batch, rows_one, rows_ref, strict=True):
            assert (a.estimand, a.status, a.message, a.n_used) == (
                b.estimand,
                b.status,
                b.message,
                b.n_used,
            )
            assert (a.status, a.message, a.n_used) == (r.status, r.message, r.n_used)
            if a.status == "failed":
                continue
            for other in (b, r):  # (normal-equation rounding: ~4e-13 SE measured on calories)
                assert abs(a.estimate - other.estimate) <= 1e-11 * other.se
                assert a.se == pytest.approx(other.se, rel=1e-12)
                assert a.p_value == pytest.approx(other.p_value, rel=1e-10, abs=1e-15)
    statuses = {r.status for r in rows_batch}
    assert statuses == {"ok", "failed"}
