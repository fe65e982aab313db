"""The estimand registry (sim/estimands.py) and the response estimators' missing-data options:
every estimator names a registered estimand; missing_as / target pick the study's or the NRI
estimand; the cohort's response coding is honest in both response modes; mi_response is
reproducible and reduces to the crude analysis when nothing is missing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from palliasim.estimators import REGISTRY, build_estimator
from palliasim.sim import generate, load_scenario, rng_for
from palliasim.sim.estimands import ESTIMANDS, SUMMARIES, lookup, response_estimand

CONF = Path(__file__).resolve().parents[1] / "conf" / "estimators"
RESPONSE_KINDS = (
    "logistic",
    "logistic_adjusted",
    "logistic_study_pipeline",
    "gcomp",
    "ipw_or",
    "risk_difference",
)


def test_every_estimator_config_names_registered_estimands():
    for path in sorted(CONF.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        kind = cfg.pop("kind")
        est = build_estimator(kind, name=path.stem, **cfg)
        for name in est.targets():
            e = lookup(name)  # KeyError if unregistered
            assert e.population and e.variable and e.summary in SUMMARIES, name


def test_registry_attributes():
    study, nri = ESTIMANDS["response_logor"], ESTIMANDS["response_logor_nri"]
    assert study.depends_on == "outcome" and nri.depends_on == "dropout"
    assert "composite" in study.intercurrent["death before week 12"]
    assert "hypothetical" in study.missing
    assert any("missing week-12" in k for k in nri.intercurrent)
    assert ESTIMANDS["response_logor_adj"].scope == "conditional"
    assert ESTIMANDS["pfs_loghr"].intercurrent["death"].startswith("composite")
    with pytest.raises(KeyError, match="unknown estimand"):
        lookup("response_logor_typo")


@pytest.mark.parametrize(
    "missing_as, target, expected",
    [
        ("exclude", "auto", "response_rd"),
        ("exclude", "study", "response_rd"),
        ("nonresponse", "auto", "response_rd_nri"),
        ("nonresponse", "nri", "response_rd_nri"),
        ("nonresponse", "study", "response_rd"),
    ],
)
def test_response_estimand_mapping(missing_as, target, expected):
    assert response_estimand("response_rd", missing_as, target) == expected
    est = build_estimator("risk_difference", missing_as=missing_as, target=target)
    assert est.targets() == (expected,)


@pytest.mark.parametrize("kind", RESPONSE_KINDS)
def test_bad_response_options_name_the_key(kind):
    with pytest.raises(ValueError, match=rf"estimators\.{kind}\.missing_as.*exclude, nonresponse"):
        build_estimator(kind, missing_as="zero")
    with pytest.raises(ValueError, match=rf"estimators\.{kind}\.target"):
        build_estimator(kind, target="nri")  # NRI needs missing_as: nonresponse


@pytest.fixture(scope="module")
def mcar():
    sc = load_scenario("randomized", {"missingness.mechanism": "mcar", "cohort.n": 400})
    return generate(sc, rng_for(3, sc.key, "data", 0))


def test_response_coding_is_honest(mcar):
    P = mcar.patients
    cat = P["response_category"].astype(str)
    assert P.loc[cat == "missing", "response"].isna().all() and (cat == "missing").sum() > 5
    assert (P.loc[cat == "dead", "response"] == 0).all() and (cat == "dead").sum() > 5
    assert P.loc[~cat.isin(["missing"]), "response"].notna().all()
    # nonresponse fills exactly the missing ones with 0; exclude analyses the others
    ex = build_estimator("risk_difference").fit(mcar, np.random.default_rng(0))[0]
    nri = build_estimator("risk_difference", missing_as="nonresponse").fit(
        mcar, np.random.default_rng(0)
    )[0]
    assert ex.n_used == (cat != "missing").sum() and nri.n_used == len(P)
    assert ex.estimand == "response_rd" and nri.estimand == "response_rd_nri"


@pytest.mark.parametrize(
    "dead_as, missing_as", [("nonresponse", "missing"), ("missing", "nonresponse")]
)
def test_direct_mode_honours_dead_and_missing_coding(dead_as, missing_as):
    sc = load_scenario(
        "randomized",
        {
            "response.mode": "direct",
            "missingness.mechanism": "mcar",
            "response.dead_as": dead_as,
            "response.missing_as": missing_as,
        },
    )
    P = generate(sc, rng_for(4, sc.key, "data", 0), 2_000).patients
    cat = P["response_category"].astype(str)
    for label, how in (("dead", dead_as), ("missing", missing_as)):
        x = P.loc[cat == label, "response"]
        assert len(x) > 10
        assert x.isna().all() if how == "missing" else (x == 0).all(), label
    assert set(P.loc[cat == "direct", "response"].unique()) == {0.0, 1.0}


def test_mi_response_reproducible_and_crude_without_missing(mcar):
    est = build_estimator("mi_response", m=5)
    a = est.fit(mcar, np.random.default_rng(7))
    b = est.fit(mcar, np.random.default_rng(7))
    assert [r.estimate for r in a] == [r.estimate for r in b] and a[0].status == "ok"
    assert "imputations of" in a[0].message
    # no dropout: nothing to impute, every imputation equals the data, B = 0: the crude analysis
    sc = load_scenario("randomized", {"missingness.mechanism": "none", "cohort.n": 400})
    full = generate(sc, rng_for(3, sc.key, "data", 0))
    mi = {r.estimand: r for r in est.fit(full, np.random.default_rng(1))}
    crude = build_estimator("logistic").fit(full)[0]
    assert mi["response_logor"].estimate == pytest.approx(crude.estimate, rel=1e-10)
    assert mi["response_logor"].se == pytest.approx(crude.se, rel=1e-8)
    assert mi["response_logor"].n_used == crude.n_used


def test_mi_response_config_documents_every_option():
    cfg = yaml.safe_load((CONF / "mi_response.yaml").read_text())
    kind = cfg.pop("kind")
    cls = REGISTRY[kind]
    fields = {f.name for f in dataclasses.fields(cls)} - {"name", "options"}
    assert set(cfg) == fields
    build_estimator(kind, **cfg)
