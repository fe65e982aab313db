"""The methods of a power study (``task.methods``, built once: errors name the key) and the
sample-size grid of each endpoint (``task.n_grid``, ``task.n_grid_by_endpoint``, ``auto``)."""

from __future__ import annotations

import math

import numpy as np

from palliasim.experiments.engine.plan import build_estimators
from palliasim.experiments.planning.endpoints import (
    endpoint_of,
)
from palliasim.experiments.planning.formula_choice import formula_n
from palliasim.experiments.settings import PowerSettings
from palliasim.sim.errors import ConfigError


def methods(cfg: PowerSettings, alpha: float):
    """(runner specs, info, per-method reps_max) of the methods that test a selected endpoint
    (``task.methods``; null drops a method, ``include_lmm=false`` drops the mixed models); every
    spec gets the run's ``alpha``."""
    specs, info, caps = {}, {}, {}
    for name, spec in cfg.methods.items():
        if spec is None:
            continue
        spec = dict(spec)
        cap = spec.pop("reps_max", None)  # validated by PowerSettings
        if spec["kind"] == "lmm" and not cfg.include_lmm:
            continue
        spec["alpha"] = alpha
        try:
            est = build_estimators({name: spec}, where="task.methods")[name]
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        ests = [e for e in est.targets() if endpoint_of(e) in cfg.endpoints]
        if not ests:
            continue
        specs[name] = spec
        opts = {k: v for k, v in spec.items() if k not in ("kind",)}
        info[name] = {"kind": spec["kind"], "options": opts, "estimands": ests}
        if cap is not None:
            caps[name] = int(cap)
    if not specs:
        raise ConfigError(
            "task.methods: no method tests the selected endpoints "
            f"({', '.join(cfg.endpoints)}); add one, e.g. task.methods.logrank="
            "{kind:logrank}"
        )
    return specs, info, caps


def _nice(x: float) -> int:
    if x <= 0 or not math.isfinite(x):
        return 10
    mag = 10 ** max(int(math.floor(math.log10(x))) - 1, 1)
    return int(max(10, round(x / mag) * mag))


def grids(cfg, info, formulas, inputs) -> dict[str, list[int]]:
    """endpoint -> sizes (``auto``: 5 sizes from 0.6 x the formula's n at the lowest target
    power to 1.3 x the n at the highest, over the endpoint's methods)."""

    out = {}
    for ep in cfg.endpoints:
        v = cfg.n_grid_by_endpoint.get(ep)
        if v is None:
            out[ep] = list(cfg.n_grid)
            continue
        if v != "auto":
            out[ep] = list(v)
            continue
        lo, hi = [], []
        for (_m, e), f in formulas.items():
            if endpoint_of(e) != ep:
                continue
            lo.append(formula_n(f, cfg.target_power[0]))
            hi.append(formula_n(f, cfg.target_power[-1]))
        lo = [x for x in lo if math.isfinite(x)]
        hi = [x for x in hi if math.isfinite(x)]
        if not lo or not hi:
            out[ep] = list(cfg.n_grid)
            continue
        a, b = 0.6 * min(lo), 1.3 * max(hi)
        out[ep] = sorted({_nice(x) for x in np.linspace(a, b, 5)})
    return out
