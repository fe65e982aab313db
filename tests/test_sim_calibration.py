"""The `study` preset against every calibration target of STUDY.md (one large cohort, the seed of
``palliasim task=calibrate``), and the small survival routines of sim/survstats.py against
lifelines and statsmodels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.utils import restricted_mean_survival_time

from palliasim.sim import load_scenario
from palliasim.sim.calibrate import calibration_table
from palliasim.sim.survstats import cox_loghr, km_median, km_rmst

CALIBRATE_SEED = 20261129  # conf/config.yaml `seed`, used by `palliasim task=calibrate`
CALIBRATE_N = 40_000  # conf/task/calibrate.yaml `n`


@pytest.mark.slow
def test_study_preset_meets_every_calibration_target():
    table = calibration_table(load_scenario("study"), n=CALIBRATE_N, seed=CALIBRATE_SEED)
    assert len(table) >= 60
    assert set(table.columns) >= {"quantity", "group", "target", "simulated", "tolerance", "ok"}
    assert np.isfinite(table["simulated"]).all()
    missed = table.loc[~table["ok"]]
    assert missed.empty, "calibration targets missed:\n" + missed.to_string(index=False)


# ------------------------------------------------------------------ survstats vs lifelines
def _data(seed: int, n: int = 400, ties: bool = False):
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(0, 2, n), rng.normal(size=n), rng.normal(size=n)])
    t = 10 * rng.weibull(1.3, n) * np.exp(-(x @ [0.5, -0.3, 0.2]) / 1.3)
    c = rng.uniform(2, 20, n)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    if ties:
        time = np.ceil(time)  # whole months: many ties
    return time, event, x


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cox_matches_lifelines(seed):
    time, event, x = _data(seed)  # continuous times: Breslow == Efron == exact
    beta, se = cox_loghr(time, event, x)
    df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(T=time, E=event)
    cph = CoxPHFitter().fit(df, "T", "E")
    np.testing.assert_allclose(beta, cph.params_.to_numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(se, cph.standard_errors_.to_numpy(), rtol=0, atol=1e-6)
    b1, se1 = cox_loghr(time, event, x[:, 0])  # 1-d covariate
    cph1 = CoxPHFitter().fit(df[["a", "T", "E"]], "T", "E")
    assert abs(b1[0] - cph1.params_["a"]) < 1e-6 and abs(se1[0] - cph1.standard_errors_["a"]) < 1e-6


@pytest.mark.parametrize("seed", [4, 5])
def test_cox_breslow_ties_match_statsmodels(seed):
    time, event, x = _data(seed, ties=True)
    assert len(np.unique(time)) < len(time) / 5
    beta, se = cox_loghr(time, event, x)
    fit = sm.PHReg(time, x, status=event, ties="breslow").fit()
    np.testing.assert_allclose(beta, fit.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(se, fit.bse, rtol=0, atol=1e-6)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [6, 7])
def test_km_median_and_rmst_match_lifelines(seed, ties):
    time, event, _ = _data(seed, ties=ties)
    kmf = KaplanMeierFitter().fit(time, event)
    assert km_median(time, event) == pytest.approx(kmf.median_survival_time_, abs=1e-6)
    for horizon in (1.0, 3.5, 6.0, float(np.sort(time)[len(time) // 2]), 30.0):
        expected = restricted_mean_survival_time(kmf, t=horizon)
        assert km_rmst(time, event, horizon) == pytest.approx(expected, abs=1e-6), horizon


def test_km_median_never_reached_is_inf():
    time = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    event = np.array([1, 0, 0, 0, 0, 0])
    assert km_median(time, event) == float("inf")
    assert KaplanMeierFitter().fit(time, event).median_survival_time_ == float("inf")
    assert km_rmst(time, event, 10.0) == pytest.approx(1.0 + 9.0 * (5 / 6))
