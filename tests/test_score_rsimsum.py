"""summarise on a results table in rsimsum's layout (MIsim-like: dataset, method, b, se, a
``dgm`` by-factor, true = 0.5), checked against the Morris, White & Crowther (2019) Table 6
formulas computed here from scratch, row by row (MEASURES.md)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from palliasim.experiments.scoring.performance import OUTPUT_COLUMNS, summarise

TRUE = 0.5
Z = 1.959963984540054  # qnorm(0.975)


@pytest.fixture(scope="module")
def misim() -> pd.DataFrame:
    """2 DGMs x 3 methods x 150 data sets; MI_T has a bias, CC a too-small SE, and two CC
    estimates are missing (failed fits, as NA in R)."""
    rng = np.random.default_rng(2019)
    rows = []
    for dgm in (1, 2):
        for method, shift, se_scale in (("CC", 0.0, 0.7), ("MI_T", 0.05, 1.0), ("MI_LOGT", 0, 1)):
            for dataset in range(1, 151):
                sd = 0.03 * dgm
                b = TRUE + shift * dgm + rng.normal(0, sd)
                se = se_scale * sd * math.exp(rng.normal(0, 0.1))
                if method == "CC" and dataset in (7, 99):
                    b = float("nan")
                rows.append(dict(dataset=dataset, method=method, b=b, se=se, dgm=dgm))
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


def morris(b: list[float], se: list[float], theta: float, alpha: float = 0.05) -> dict:
    """Table 6 of Morris et al. (2019), with the Wald CI and |b/se| >= z test rsimsum uses."""
    pairs = [(x, s) for x, s in zip(b, se) if not math.isnan(x)]
    n = len(pairs)
    x = [p[0] for p in pairs]
    v = [p[1] ** 2 for p in pairs]
    mean = sum(x) / n
    empse = math.sqrt(sum((xi - mean) ** 2 for xi in x) / (n - 1))
    modse = math.sqrt(sum(v) / n)
    var_v = statistics.variance(v)
    mse = sum((xi - theta) ** 2 for xi in x) / n
    cover = [abs(xi - theta) <= Z * s for xi, s in pairs]
    reject = [abs(xi / s) >= Z for xi, s in pairs]
    c, p = sum(cover) / n, sum(reject) / n
    ratio = modse / empse
    return {
        "n_used": n,
        "bias": mean - theta,
        "bias_mcse": empse / math.sqrt(n),
        "empse": empse,
        "empse_mcse": empse / math.sqrt(2 * (n - 1)),
        "modse": modse,
        "modse_mcse": math.sqrt(var_v / (4 * n * modse**2)),
        "relerror": 100 * (ratio - 1),
        "relerror_mcse": 100 * ratio * math.sqrt(var_v / (4 * n * modse**4) + 1 / (2 * (n - 1))),
        "mse": mse,
        "mse_mcse": math.sqrt(sum(((xi - theta) ** 2 - mse) ** 2 for xi in x) / (n * (n - 1))),
        "coverage": c,
        "coverage_mcse": math.sqrt(c * (1 - c) / n),
        "rejection": p,
        "rejection_mcse": math.sqrt(p * (1 - p) / n),
    }


def test_rsimsum_layout_matches_morris_formulas(misim):
    perf = summarise(
        misim, by="dgm", estimate="b", se="se", true=TRUE, method="method", rep="dataset"
    )
    assert list(perf.columns) == ["dgm", "method", "estimand", *OUTPUT_COLUMNS]
    assert len(perf) == 6 and set(perf["estimand"]) == {"b"}  # one estimand, named after b
    for (dgm, method), sub in misim.groupby(["dgm", "method"]):
        want = morris(list(sub["b"]), list(sub["se"]), TRUE)
        got = perf[(perf.dgm == dgm) & (perf.method == method)].iloc[0]
        assert got["n_reps"] == 150 and got["n_failed"] == 150 - want["n_used"]
        for k, v in want.items():
            assert got[k] == pytest.approx(v, rel=1e-10, abs=1e-14), (dgm, method, k)
    # the planted problems show up: MI_T biased, CC's model SE too small
    cc = perf[(perf.method == "CC")]
    assert (cc["relerror"] < -20).all()
    mit = perf[(perf.method == "MI_T")]
    assert (mit["bias"].abs() > 5 * mit["bias_mcse"]).all()


def test_true_as_column_and_row_order_reps(misim):
    df = misim.rename(columns={"b": "theta_hat"}).assign(truth=TRUE)
    a = summarise(misim, by="dgm", estimate="b", true=TRUE, rep="dataset")
    # no rep column: replications are the rows in order; the measures do not depend on it
    b = summarise(df.drop(columns="dataset"), by="dgm", estimate="theta_hat", true="truth")
    assert set(b["estimand"]) == {"theta_hat"}
    cols = ["bias", "empse", "modse", "coverage", "rejection", "mse", "n_used", "n_failed"]
    np.testing.assert_allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), rtol=1e-12)


def test_single_method_and_estimand_column(misim):
    one = misim[misim.method == "MI_LOGT"].drop(columns="method")
    one = one.assign(target="beta_x")
    perf = summarise(
        one, by="dgm", estimate="b", true=TRUE, method=None, estimand="target", rep="dataset"
    )
    assert list(perf["method"]) == ["all", "all"] and list(perf["estimand"]) == ["beta_x"] * 2


def test_status_column_under_another_name(misim):
    df = misim.assign(fit=np.where(misim["dataset"] == 3, "failed", "ok"))
    perf = summarise(df, by="dgm", estimate="b", true=TRUE, rep="dataset", status="fit")
    ok = perf[perf.method == "MI_T"]
    assert (ok["n_failed"] == 1).all() and (ok["n_used"] == 149).all()


def test_named_column_missing_is_an_error(misim):
    with pytest.raises(ValueError, match="'dataset_id'"):
        summarise(misim, estimate="b", true=TRUE, rep="dataset_id")
    with pytest.raises(ValueError, match="'beta'"):
        summarise(misim, estimate="beta", true=TRUE)
    with pytest.raises(ValueError, match="true="):
        summarise(misim, estimate="b", true=[0.5])
    with pytest.raises(ValueError, match="both"):
        summarise(misim.assign(lo=0.0), estimate="b", true=TRUE, ci_low="lo")
