"""The generator's compiled passes (sim/covariates_kernel.py, sim/pain_kernel.py) give the same
bits as the numpy formulations they replace, for every preset scenario, the received arm and
both potential arms, sizes from 1 patient up (dtypes included)."""

from __future__ import annotations

import numpy as np
import pytest

from palliasim.sim import covariates, load_scenario, pain
from palliasim.sim.generate import constants

PRESETS = ["study", "randomized", "null", "no_effect"]
SIZES = [1, 2, 7, 205, 3000]


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", PRESETS)
def test_covariates_kernel_is_bit_identical(name):
    sc = load_scenario(name)
    k, p = constants(sc)["cov"], sc.params
    for seed, n in enumerate(SIZES):
        a = covariates.draw_covariates(p, k, np.random.default_rng(seed), n)
        b = covariates.draw_covariates_numpy(p, k, np.random.default_rng(seed), n)
        assert a.keys() == b.keys()
        for col in a:
            assert _same(a[col], b[col]), (name, n, col)


def test_covariates_kernel_keeps_numpys_signed_zero_clip():
    """np.clip keeps x when x equals a bound: a -0.0 from rint stays -0.0 (Charlson at 0)."""
    sc = load_scenario("study").with_overrides({"covariates.charlson_mean": 0.0})
    k, p = constants(sc)["cov"], sc.params
    a = covariates.draw_covariates(p, k, np.random.default_rng(3), 2000)
    b = covariates.draw_covariates_numpy(p, k, np.random.default_rng(3), 2000)
    assert np.signbit(b["charlson"][b["charlson"] == 0]).any()  # the case occurs
    assert _same(a["charlson"], b["charlson"])


@pytest.mark.parametrize("name", PRESETS)
def test_pain_kernels_are_bit_identical(name):
    sc = load_scenario(name)
    k, p = constants(sc), sc.params
    thr = pain.category_thresholds(p["response"])
    for seed, n in enumerate(SIZES):
        rng = np.random.default_rng(seed)
        cov = covariates.draw_covariates(p, k["cov"], rng, n)
        lat = pain.draw_nrs_latent(p, cov, rng, n)
        draws = pain.draw_opioid_uniforms(rng, n)
        received = (rng.random(n) < 0.5).astype(np.int64)
        alive = rng.random((n, 4)) < 0.85
        for a in (0, 1, received):
            arm = np.asarray(a)[..., None] if np.ndim(a) else a
            y = lat["Y0"] + np.asarray(p["nrs"]["effect"]) * arm
            omed = pain.omed_path(p, cov, y, a, draws)
            assert _same(omed, pain.omed_path_numpy(p, cov, y, a, draws)), (name, n)
            nrs = pain.observe_nrs(y)
            j = pain.first_progression_visit(cov["nrs0"], nrs, cov["omed0"], omed, alive, thr)
            ref = pain.first_progression_visit_numpy(
                cov["nrs0"], nrs, cov["omed0"], omed, alive, thr
            )
            assert _same(j, ref), (name, n)


def test_progression_kernel_on_every_category():
    """Hand-made visits covering each consensus category (and dead patients): the kernel's
    first progression visit equals the numpy categories'."""
    rng = np.random.default_rng(11)
    n = 4000
    nrs0 = rng.integers(4, 11, n).astype(float)
    nrs = np.clip(nrs0[:, None] + rng.integers(-6, 4, (n, 4)), 0, 10).astype(float)
    omed0 = np.where(rng.random(n) < 0.4, 0.0, np.round(rng.uniform(5, 80, n), 1))
    factor = rng.choice([0.5, 0.75, 1.0, 1.25, 1.5], (n, 4))
    omed = np.round(np.where(omed0[:, None] > 0, omed0[:, None] * factor, factor - 1.0), 1)
    omed = np.maximum(omed, 0.0)
    alive = rng.random((n, 4)) < 0.9
    thr = {"increase_threshold": 0.0, "partial_decrease": 0.25, "progression_increase": 0.25}
    cats = pain.consensus_category(nrs0[:, None], nrs, omed0[:, None], omed)
    assert set(np.unique(cats)) == {0, 1, 2, 3}
    j = pain.first_progression_visit(nrs0, nrs, omed0, omed, alive, thr)
    assert _same(j, pain.first_progression_visit_numpy(nrs0, nrs, omed0, omed, alive, thr))
    assert (j >= 0).any() and (j == -1).any()


def test_stable_argsort_equals_numpys_stable_sort():
    """Distinct keys, ties, NaN, signed zeros, infinities, empty and one-element arrays."""
    from palliasim.sim.sorting import stable_argsort

    rng = np.random.default_rng(0)
    # small arrays (the stable sort) and, every 7th trial (all kinds), the quicksort path
    for trial in range(2000):
        n = int(rng.integers(0, 60)) if trial % 7 else int(rng.integers(1024, 3000))
        kind = trial % 5
        if kind == 0:
            a = rng.random(n)
        elif kind == 1:
            a = rng.integers(0, 5, n).astype(float)
        elif kind == 2:
            a = rng.random(n)
            a[rng.random(n) < 0.2] = np.nan
        elif kind == 3:
            a = np.where(rng.random(n) < 0.5, 0.0, -0.0) + rng.integers(0, 2, n)
        else:
            a = np.round(rng.random(n), 2)
            a[rng.random(n) < 0.1] = np.inf
        assert _same(stable_argsort(a), np.argsort(a, kind="stable").astype(np.int64))
    ints = rng.integers(0, 3, 500)
    assert _same(stable_argsort(ints), np.argsort(ints, kind="stable").astype(np.int64))


def test_stable_argsort_orders_tie_runs_of_large_arrays_by_index():
    """The quicksort + tie-run path: rounded times with a few ties, a block tied at an
    administrative censoring time (a long run), signed zeros among distinct keys, ints."""
    from palliasim.sim.sorting import stable_argsort

    rng = np.random.default_rng(1)
    for trial in range(60):
        n = int(rng.integers(1024, 6000))
        a = np.round(rng.exponential(10.0, n), 4 if trial % 2 else 3)
        if trial % 3 == 0:
            a[rng.random(n) < 0.1] = 24.0
        if trial % 5 == 0:
            a[rng.integers(0, n, 20)] = rng.choice([0.0, -0.0], 20)
        if trial % 7 == 0:
            a = np.round(a * 100).astype(np.int64)
        assert _same(stable_argsort(a), np.argsort(a, kind="stable").astype(np.int64)), trial


def test_relief_times_kernel_is_bit_identical():
    """Random NRS paths with missing visits (all missing, none missing, relief regained and
    lost) and thresholds on and off the integer grid."""
    rng = np.random.default_rng(5)
    for n in (1, 3, 205, 4000):
        nrs0 = rng.integers(4, 11, n).astype(float)
        nrs = np.clip(nrs0[:, None] + rng.integers(-7, 3, (n, 4)), 0, 10).astype(float)
        nrs[rng.random((n, 4)) < 0.3] = np.nan
        nrs[: max(1, n // 10)] = np.nan  # patients with no observed visit
        for thr in (2.0, 2.5, 0.0):
            got = pain.relief_times(nrs0, nrs, thr)
            ref = pain.relief_times_numpy(nrs0, nrs, thr)
            assert all(_same(a, b) for a, b in zip(got, ref)), (n, thr)
