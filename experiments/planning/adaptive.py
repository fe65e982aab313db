"""Adaptive replication: replications are added to each (grid point, method) in steps until the
widest CI half-width of its estimands is at most ``ci_halfwidth`` or ``reps_max`` is reached.
Runs through :func:`engine.runner.run_experiment` in one run directory, so each step computes
only the new chunks (and an interrupted run resumes)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from palliasim.experiments.engine import storage
from palliasim.experiments.engine.runner import run_experiment
from palliasim.experiments.planning.rejection import rejection_table
from palliasim.experiments.settings import RunnerSettings


@dataclass
class PowerRun:
    """What :func:`adaptive_power` returns.

    ``results``: every replication row used (runner columns); ``reps``: (scenario_key, method)
    -> replications used; ``stopped``: (scenario_key, method) -> "target" (CI half-width reached),
    "outside band" (every estimand's CI half-width reached or its CI outside the precision band)
    or "reps_max"; ``rounds``: one dict per step (reps, pairs run, seconds).
    """

    results: pd.DataFrame
    reps: dict = field(default_factory=dict)
    stopped: dict = field(default_factory=dict)
    rounds: list = field(default_factory=list)


def adaptive_power(
    points,
    specs: Mapping[str, Mapping[str, Any]],
    *,
    alpha: float,
    out_dir,
    needed: Mapping[tuple[str, str], Sequence[str]] | None = None,
    ci_halfwidth: float = 0.01,
    reps_start: int = 200,
    reps_step: int = 200,
    reps_max: int = 2000,
    reps_growth: float = 1.0,
    method_reps_max: Mapping[str, int] | None = None,
    precision_band: Sequence[float] | None = None,
    point_specs: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    runner: RunnerSettings,
    config: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> PowerRun:
    """Rejection rates with replications added until the CI is narrow enough.

    Every (design point, method) pair in ``needed`` (default: every method at every point, all
    its estimands) starts with ``reps_start`` replications; after each step, a pair whose widest
    Clopper-Pearson half-width over its estimands (``needed[pair]``) exceeds ``ci_halfwidth``
    gets more, up to ``reps_max`` (or ``method_reps_max[method]``): ``reps_step`` more, or with
    ``reps_growth`` g > 1 up to g times its reps (rounded up to a multiple of ``reps_step``), so
    a pair far from its target takes few, growing steps (:func:`next_reps`). With
    ``precision_band = (lo, hi)``, an estimand whose exact 95% CI lies entirely below ``lo`` or
    above ``hi`` needs no more replications (it is far from the powers that decide the required
    n; its precision is what it has, reported as power_mcse): a pair stops when each of its
    estimands reached the half-width or left the band ("outside band"). ``point_specs``:
    (point key, method) -> the spec used there instead of ``specs[method]`` (e.g. a survival
    test restricted to the endpoint of that point's grid; same name, same random stream). Pairs
    needing the same replications and methods form a group, and the groups of a step run in as
    few :func:`run_experiment` calls as possible (one pool over their chunks, each point with its
    own methods and replications; a point in two groups waits for the next call, :func:`_waves`);
    the run directory ``out_dir`` is shared, so a step computes only the new chunks and rerunning
    the same call resumes. Deterministic: the rows depend only on (seed, scenario, method, rep),
    never on the stopping path or the grouping.
    """

    points = list(points)
    by_key = {p.key: p for p in points}
    specs = {m: dict(s) for m, s in specs.items()}
    if needed is None:
        needed = {(p.key, m): () for p in points for m in specs}
    needed = {tuple(k): tuple(v) for k, v in needed.items()}
    for key, m in needed:
        if key not in by_key or m not in specs:
            raise ValueError(f"needed names an unknown point or method: {(key, m)}")
    for name, v in (("reps_start", reps_start), ("reps_step", reps_step), ("reps_max", reps_max)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    if isinstance(reps_growth, bool) or not (
        isinstance(reps_growth, (int, float)) and 1 <= reps_growth <= 10
    ):
        raise ValueError(f"reps_growth must be a number in [1, 10]; got {reps_growth!r}")
    if not 0 < ci_halfwidth < 0.5:
        raise ValueError(f"ci_halfwidth must be in (0, 0.5); got {ci_halfwidth!r}")
    band = None
    if precision_band is not None:
        band = tuple(float(x) for x in precision_band)
        if len(band) != 2 or not 0 <= band[0] <= band[1] <= 1:
            raise ValueError(f"precision_band must be (lo, hi) in [0, 1]; got {precision_band!r}")
    caps = {m: int((method_reps_max or {}).get(m) or reps_max) for m in specs}
    own = {tuple(k): dict(v) for k, v in (point_specs or {}).items()}
    variants: dict[tuple[str, str], tuple[str, dict]] = {}  # (method, spec JSON) -> spec

    def variant(pair) -> tuple[str, str]:
        spec = own.get(pair, specs[pair[1]])
        v = (pair[1], json.dumps(spec, sort_keys=True, default=str))
        variants.setdefault(v, spec)
        return v

    target = {pair: min(reps_start, caps[pair[1]]) for pair in needed}
    rows: dict[tuple[str, str], pd.DataFrame] = {}
    run = PowerRun(results=pd.DataFrame())
    active = set(needed)
    say = log or (lambda s: None)
    step = 0
    with storage.caching_reads():  # every step re-reads the chunk files of its points
        while active:
            step += 1
            t0 = _now()
            groups: dict[tuple[int, frozenset], list[str]] = {}
            per_point: dict[tuple[int, str], set] = {}
            for key, m in active:
                per_point.setdefault((target[(key, m)], key), set()).add(variant((key, m)))
            for (reps, key), vs in per_point.items():
                groups.setdefault((reps, frozenset(vs)), []).append(key)
            order = sorted(groups.items(), key=lambda t: (t[0][0], sorted(t[0][1])))
            say(
                f"step {step}: {len(active)} (grid point, method) pair(s) -> "
                + ", ".join(
                    f"{reps} reps x {len(keys)} point(s) x [{', '.join(sorted(m for m, _ in vs))}]"
                    for (reps, vs), keys in order
                )
            )
            for wave in _waves(order):
                _run_wave(wave, variants, by_key, points, runner, out_dir, config, rows)
            finished = _stopping_rule(
                sorted(active), rows, needed, alpha, ci_halfwidth, band, caps, target, run,
                reps_step, reps_growth,
            )  # fmt: skip
            active -= set(finished)
            run.rounds.append(
                {"step": step, "pairs": len(finished) + len(active), "seconds": _now() - t0}
            )
    frames = []
    for (key, m), df in rows.items():
        ests = needed[(key, m)]
        frames.append(df[df["estimand"].isin(ests)] if ests else df)
    run.results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return run


def _run_wave(wave, variants, by_key, points, runner, out_dir, config, rows) -> None:
    """One :func:`run_experiment` call for the groups of a wave (one pool; each point with its
    own estimators and replications: no worker idles at the end of each group); each (point,
    method) pair's rows go into ``rows``."""
    pspecs, preps = {}, {}
    for (reps, vs), keys in wave:
        for k in keys:
            pspecs[k] = {m: variants[(m, j)] for m, j in sorted(vs)}
            preps[k] = reps
    pts = [by_key[k] for k in sorted(pspecs, key=lambda k: points.index(by_key[k]))]
    res = run_experiment(
        pts,
        pspecs[pts[0].key],
        replace(runner, reps=max(preps.values())),
        out_dir,
        config=config,
        point_specs=pspecs,
        point_reps=preps,
    )
    for (_reps, vs), keys in wave:
        for key in keys:
            sub = res[res["scenario_key"] == key]
            for m, _ in vs:
                rows[(key, m)] = sub[sub["method"] == m]


def _stopping_rule(
    pairs, rows, needed, alpha, ci_halfwidth, band, caps, target, run, reps_step, reps_growth
) -> list:
    """The pairs that stop after this step (their reason in ``run.stopped``); the others get
    their next target replications (:func:`next_reps`). Every pair's rejection table comes
    from one grouped pass."""
    finished = []
    for pair, tab in zip(pairs, _rejection_tables(pairs, rows, needed, alpha)):
        m = pair[1]
        hw = tab["ci_halfwidth"].to_numpy(float)
        reps_now = target[pair]
        run.reps[pair] = reps_now
        if not np.any(hw > ci_halfwidth):
            run.stopped[pair] = "target"
            finished.append(pair)
        elif band is not None and np.all(
            (hw <= ci_halfwidth)
            | (tab["ci_high"].to_numpy(float) < band[0])
            | (tab["ci_low"].to_numpy(float) > band[1])
        ):
            run.stopped[pair] = "outside band"
            finished.append(pair)
        elif reps_now >= caps[m]:
            run.stopped[pair] = "reps_max"
            finished.append(pair)
        else:
            target[pair] = next_reps(reps_now, reps_step, reps_growth, caps[m])
    return finished


def _waves(groups) -> list[list]:
    """The step's groups ((reps, variants), point keys) in as few waves as possible, each
    point at most once per wave (a point whose methods need different replications is in two
    groups: its chunk files are written by one call at a time), in group order."""
    waves: list[list] = []
    seen: list[set] = []
    for group in groups:
        keys = set(group[1])
        for wave, used in zip(waves, seen):
            if not used & keys:
                wave.append(group)
                used |= keys
                break
        else:
            waves.append([group])
            seen.append(set(keys))
    return waves


def _rejection_tables(pairs, rows, needed, alpha) -> list[pd.DataFrame]:
    """:func:`rejection_table` by estimand of each pair's rows (its ``needed`` estimands, or all
    it has), computed in one grouped pass over the pairs."""
    frames = []
    for i, pair in enumerate(pairs):
        df = rows[pair]
        ests = needed[pair] or tuple(sorted(df["estimand"].unique()))
        df = df.loc[df["estimand"].isin(ests), ["estimand", "p_value", "status"]]
        frames.append(df.assign(_pair=i))
    tab = rejection_table(pd.concat(frames, ignore_index=True), alpha, by=("_pair", "estimand"))
    parts = {i: t.drop(columns="_pair").reset_index(drop=True) for i, t in tab.groupby("_pair")}
    empty = tab.iloc[0:0].drop(columns="_pair")  # a pair without rows: no estimand to wait for
    return [parts.get(i, empty) for i in range(len(pairs))]


def next_reps(reps: int, step: int, growth: float, cap: int) -> int:
    """The replications of a pair's next step: ``max(reps + step, growth x reps rounded up to a
    multiple of step)``, at most ``cap``."""
    grown = -(-math.ceil(reps * growth - 1e-9) // step) * step
    return int(min(cap, max(reps + step, grown)))


def _now() -> float:
    return time.perf_counter()
