"""task=power: trial planning. Power curves and required sample sizes by simulation, next to the
closed-form formulas, for every endpoint (``palliasim task=power``; options in conf/task/power.yaml).

Flow: settings -> the alternative scenario and its null twin (planning.scenarios) -> formula
inputs measured on a large simulated cohort (planning.inputs) -> one design point per total
sample size (planning.methods.grids) -> adaptive replication of every (point, method)
(planning.adaptive, resumable through the runner) -> the power table (planning.table), required
n with its CI (planning.sample_size), the explanation of every gap (planning.explain) ->
power.csv, sample_size.csv, power_curves.png, power_inputs.json, results.parquet and a terminal
summary (planning.summary).
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from palliasim.experiments import config as C
from palliasim.experiments.engine import storage
from palliasim.experiments.engine.design import DesignPoint, expand_design
from palliasim.experiments.engine.plan import uncached_truths
from palliasim.experiments.engine.runner import RunIncomplete, prepare
from palliasim.experiments.planning.adaptive import adaptive_power
from palliasim.experiments.planning.endpoints import endpoint_of
from palliasim.experiments.planning.explain import explain_table
from palliasim.experiments.planning.formula_choice import analytic_table, rm_formula
from palliasim.experiments.planning.inputs import design_inputs, method_projection
from palliasim.experiments.planning.methods import grids, methods
from palliasim.experiments.planning.plots import plot_power_curves
from palliasim.experiments.planning.sample_size import sample_sizes
from palliasim.experiments.planning.scenarios import scenarios
from palliasim.experiments.planning.summary import (
    disagreements,
    format_table,
    summary_lines,
    type1_line,
)
from palliasim.experiments.planning.table import EXTRA_COLUMNS, POWER_COLUMNS, build_power_table
from palliasim.experiments.scoring.document import write_report
from palliasim.experiments.settings import Settings
from palliasim.sim import truth
from palliasim.sim.files import atomic_write_text


def run(settings: Settings) -> int:
    t_start = time.perf_counter()
    cfg = settings.task
    plain = settings.plain
    alpha = settings.alpha
    seed = settings.runner.seed
    quiet = settings.runner.quiet
    runner = replace(
        settings.runner,
        reps=cfg.reps_start,
        chunk_size=cfg.chunk_size if cfg.chunk_size is not None else settings.runner.chunk_size,
    )
    alt, null, notes = scenarios(plain, cfg, C.command_line_choice("scenario"))
    specs, info, caps = methods(cfg, alpha)
    out = C.output_dir(settings)

    def say(msg: str) -> None:
        if not quiet:
            print(f"palliasim power: {msg}", file=sys.stderr, flush=True)

    for n in notes:
        say(n)
    say(f"truth and formula inputs of '{alt.name}' (first run of a scenario: ~10 s) ...")
    # the truths (when not cached) of both scenarios and the null scenario's constants, in the
    # pool (its workers start and import meanwhile); this process solves the alternative's
    # constants itself (the formula inputs need them) and ships them with the chunk tasks; the
    # grid points share both (cohort.n is not part of the constants key). With the truths
    # cached, the pool works while this process measures the formula inputs and projections.
    alt_point = DesignPoint({}, alt, "alt")
    first = [alt_point] + ([DesignPoint({}, null, "null")] if null else [])
    with ThreadPoolExecutor(max_workers=1) as pool:
        warm = pool.submit(prepare, first[1:], runner, [alt_point])
        if uncached_truths(first):
            warm.result()
        truth_alt = truth(alt)
        inputs = design_inputs(alt, truth_alt, n_big=cfg.analytic_n, seed=seed)
        formulas = analytic_table(info, inputs, alpha)
        say(f"each method once on {cfg.projection_n:,} patients (its large-sample projection) ...")
        projections = method_projection(alt, specs, cfg.projection_n, seed)
        warm.result()
    inputs["projection"] = {f"{m}:{e}": v for (m, e), v in projections.items()}
    gr = grids(cfg, info, formulas, inputs)
    extra = []
    if "nrs" in cfg.endpoints:
        extra.append(("rm_mean4 (formula)", "nrs", rm_formula(inputs, alpha), gr["nrs"]))
    n_all = sorted({n for ep in cfg.endpoints for n in gr[ep]})
    points = list(expand_design(alt, None, {"cohort.n": n_all}))
    if null is not None:
        points += expand_design(null, None, {"cohort.n": n_all})
    pinfo = {p.key: (p.scenario.name, int(p.scenario.n)) for p in points}
    prepare(points, runner)  # every point's scenario constants, solved once, in parallel
    needed, own_specs = {}, {}
    for p in points:
        n = int(p.scenario.n)
        for m, i in info.items():
            ests = tuple(e for e in i["estimands"] if n in gr[endpoint_of(e)])
            if ests:
                needed[(p.key, m)] = ests
                eps = {endpoint_of(e) for e in ests}
                if isinstance(specs[m].get("endpoints"), list) and eps < set(specs[m]["endpoints"]):
                    # a survival test fits its endpoints independently: only the one(s) of
                    # this point's grid (PFS and OS grids differ; same rows, half the fits)
                    own = [ep for ep in specs[m]["endpoints"] if ep in eps]
                    own_specs[(p.key, m)] = {**specs[m], "endpoints": own}
    say(
        f"scenario '{alt.name}'"
        + (f" (type I error: '{null.name}')" if null is not None else "")
        + f", allocation {inputs['allocation']:.3g}, alpha {alpha:g}; n = "
        + "; ".join(f"{ep}: {','.join(map(str, gr[ep]))}" for ep in cfg.endpoints)
        + f"; methods: {', '.join(specs)}; reps {cfg.reps_start} + {cfg.reps_step} "
        + (f"(or x{cfg.reps_growth:g}) " if cfg.reps_growth > 1 else "")
        + f"until the 95% CI half-width <= {cfg.ci_halfwidth:g} (max {cfg.reps_max}"
        + (f"; {', '.join(f'{m} {c}' for m, c in caps.items())}" if caps else "")
        + (
            f"; no more reps once the CI is outside {cfg.precision_band[0]:g}-"
            f"{cfg.precision_band[1]:g}"
            if cfg.precision_band is not None
            else ""
        )
        + f") -> {out}"
    )
    try:
        prun = adaptive_power(
            points,
            specs,
            alpha=alpha,
            out_dir=out,
            needed=needed,
            ci_halfwidth=float(cfg.ci_halfwidth),
            reps_start=cfg.reps_start,
            reps_step=cfg.reps_step,
            reps_growth=cfg.reps_growth,
            reps_max=cfg.reps_max,
            method_reps_max={m: c for m, c in caps.items() if m in specs},
            precision_band=cfg.precision_band,
            point_specs=own_specs,
            runner=runner,
            config=plain,
            log=say,
        )
    except RunIncomplete as exc:
        print(f"palliasim: {exc}", file=sys.stderr)
        return 1
    tab = build_power_table(prun, pinfo, info, formulas, alpha, alt.name, extra, projections)
    strength = float(alt.get("confounding.strength") or 0.0)
    confounded = (
        f"Not randomized (confounding.strength = {strength:g}): crude analyses also carry the "
        "confounding by indication, so their power is not the trial's; compare the projection's "
        "estimate with the true effect"
        if strength != 0 and alt.get("treatment.scheme") != "complete"
        else ""
    )
    if confounded:
        say(confounded)
    explain_table(tab, formulas, projections, truth_alt, extra, alt.name, confounded)
    sizes = sample_sizes(tab, formulas, extra, alt.name, cfg.target_power, cfg.n_boot, seed, alpha)
    # ---- write
    out.mkdir(parents=True, exist_ok=True)
    cols = POWER_COLUMNS + [c for c in EXTRA_COLUMNS if c in tab.columns]
    atomic_write_text(out / "power.csv", tab[cols].to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "sample_size.csv", sizes.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "power_inputs.json", json.dumps(inputs, indent=1, default=float))
    res = prun.results.copy()
    res.insert(0, "n", res["scenario_key"].map(lambda k: pinfo[k][1]))
    storage.write_parquet(out / storage.RESULTS_NAME, storage.sort_canonical(res))
    made = []
    if cfg.plots:
        made.append(
            plot_power_curves(
                tab,
                sizes,
                formulas | {(lab, ""): f for lab, _e, f, _n in extra},
                out / "power_curves.png",
                alpha,
                cfg.target_power,
                scenario=alt.name,
            )
        )
    write_report(out, kind="power", config=settings.plain)  # ADEMP report.html / report.md
    # ---- terminal
    print(format_table(tab, cfg.max_rows))
    print(
        "\nRequired total sample size (simulation: monotone fit of rejection on n, 95% CI by "
        "bootstrap; formula: closed form with the scenario's inputs):"
    )
    for line in summary_lines(sizes, tab, alt.name, info):
        print(f"  {line}")
    bad = disagreements(tab, sizes, alt.name, cfg.target_power[0])
    if bad:
        print(
            "\nWhere simulation and formula disagree (at the grid points, or the formula's n outside "
            "the simulated n's CI; details in power.csv, column explanation):"
        )
        for line in bad:
            print(f"  {line}")
    if null is not None and (line := type1_line(tab, null.name)):
        print(f"\n{line}")
    n_fail = int(tab.loc[tab["reps"] > 0, "n_failed"].sum())
    print(
        f"\n{int(prun.results.shape[0]):,} replication rows ({n_fail:,} failed fits, counted as "
        f"non-rejections) in {time.perf_counter() - t_start:.0f} s."
    )
    print(
        f"Outputs in {out}:\n  power.csv  sample_size.csv  power_inputs.json  results.parquet  "
        "manifest.json  report.html  report.md" + "".join(f"\n  {p.name}" for p in made)
    )
    return 0
