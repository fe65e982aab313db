"""task=simulate (the default): a simulation study of the selected estimators.

Flow: settings -> design points (engine.design) -> parallel, resumable replications
(engine.runner) -> truth attached -> performance measures with Monte Carlo SE
(scoring.report / performance) -> performance.csv, comparisons.csv, reps_needed.csv, plots.
:func:`simulate` does the work (the Python API calls it, palliasim.experiments.api);
:func:`run` is the CLI's adapter (terminal table, exit code).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from palliasim.estimators.base import FAILED
from palliasim.experiments import config as C
from palliasim.experiments.engine.design import expand_design, factor_columns
from palliasim.experiments.engine.preflight import check_limits, check_scenarios
from palliasim.experiments.engine.runner import RunIncomplete, run_experiment
from palliasim.experiments.engine.storage import check_out_dir
from palliasim.experiments.scoring.document import write_report
from palliasim.experiments.scoring.performance import compare_methods, reps_needed
from palliasim.experiments.scoring.report import format_terminal, performance_table
from palliasim.experiments.settings import Settings
from palliasim.sim import generate, rng_for
from palliasim.sim.files import atomic_write_text

#: the study's headline estimands, shown first in the plots (the rest follow, then no-truth ones)
CORE = (
    "nrs_diff_w12",
    "pfs_loghr",
    "os_loghr",
    "response_logor",
    "response_rd",
    "response_logor_adj",
    "pfs_loghr_adj",
    "nrs_diff_w4",
    "pfs_median_diff",
    "pfs_rmst_diff",
    "qol_global_diff",
    "marker_log_crp_diff",
    "ae_constipation_rd",
    "balance_any",
)


def _prioritise(perf):
    """Rows ordered so the headline estimands come first (plots show the first panels)."""
    order = {e: i for i, e in enumerate(CORE)}
    key = perf["estimand"].map(
        lambda e: order.get(e, len(CORE) + (100 if e.startswith("balance") else 0))
    )
    return perf.assign(_k=key).sort_values("_k", kind="stable").drop(columns="_k")


def _plots(res, perf, fc, points, out, seed, quiet):
    # matplotlib is imported only when plots are asked for (start-up time of the CLI and API)
    from palliasim.experiments.scoring import plots

    perf = _prioritise(perf)
    pdir = out / "plots"
    pdir.mkdir(parents=True, exist_ok=True)
    made = [
        plots.plot_bias(perf, pdir / "bias.png"),
        plots.plot_rejection(perf, pdir / "rejection.png"),
    ]
    if hasattr(plots, "plot_coverage"):
        made.append(plots.plot_coverage(perf, pdir / "coverage.png"))
    with_truth = perf[perf["true"].notna() & perf["coverage"].notna()]
    if len(with_truth):
        # the zip plot of the study's own primary-scale analysis where present
        pref = [("lmm", "nrs_diff_w12"), ("cox", "pfs_loghr"), ("logistic", "response_logor")]
        pick = next(
            (
                (m, e)
                for m, e in pref
                if ((with_truth.method == m) & (with_truth.estimand == e)).any()
            ),
            (with_truth.iloc[0]["method"], with_truth.iloc[0]["estimand"]),
        )
        made.append(
            plots.plot_zip(
                res, perf, pdir / f"zip_{pick[0]}_{pick[1]}.png", pick[1], pick[0], points[0].label
            )
        )
        if fc and len(points) > 1:
            made.append(
                plots.plot_nested_loop(perf, fc, pdir / f"nested_loop_{pick[1]}.png", pick[1])
            )
    sc = points[0].scenario
    made.append(
        plots.plot_example_cohort(
            generate(sc, rng_for(seed, sc.key, "example", 0)), pdir / "example_cohort.png"
        )
    )
    return [p for p in made if p]


def comparisons(res, fc, order):
    """Paired contrasts of every method with the first-listed method of the same estimand
    (the study's own analysis comes first in the default selection), per scenario."""
    out = []
    by = ["scenario", *fc]
    for est, sub in res.groupby("estimand", sort=False):
        present = set(sub["method"])
        methods = [m for m in order if m in present]
        for other in methods[1:]:
            try:
                out.append(compare_methods(sub, methods[0], other, by=by, estimand=est))
            except ValueError:
                continue  # e.g. a method without a single usable replication
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def planning(perf, targets: dict):
    """Replications needed for each target MCSE (``task.target_mcse``) given the run's figures."""
    cols = [c for c in ("scenario", "method", "estimand") if c in perf]
    table = perf[cols].copy()
    for measure, target in (targets or {}).items():
        table[f"reps_for_{measure}_mcse_{target:g}"] = reps_needed(perf, target, measure).to_numpy()
    return table


@dataclass(frozen=True)
class SimulationResult:
    """What a simulation study returns: every replication row (``results``, as in
    results.parquet), the performance table (``performance``), the output directory and the
    plots written."""

    results: pd.DataFrame
    performance: pd.DataFrame
    out_dir: Path
    plots: tuple[Path, ...] = ()


def simulate(settings: Settings) -> SimulationResult:
    """Run (or resume) the simulation study described by ``settings`` and write its outputs;
    raises :class:`RunIncomplete` when some chunks did not finish (the others are saved)."""
    task, runner = settings.task, settings.runner
    base = C.scenario_from(settings.plain)
    specs = settings.estimators
    points = expand_design(base, None, settings.design.factors, settings.design.subset)
    out = C.output_dir(settings)
    check_out_dir(out)
    sizes = [int(p.scenario.params["cohort"]["n"]) for p in points]
    check_limits(sizes, runner.reps, runner.chunk_size, len(specs), runner.workers)
    check_scenarios(points)  # unreachable missing fraction, nobody alive at week 12: in the parent
    if not runner.quiet:
        print(
            f"palliasim: {len(points)} design point(s) x {runner.reps} replications x "
            f"{len(specs)} estimators -> {out}",
            file=sys.stderr,
        )
    res = run_experiment(points, specs, runner, out, config=settings.plain)
    fc = factor_columns(points)
    perf = performance_table(res, fc, settings.alpha, settings.failures, out_dir=out)
    comp = comparisons(res, fc, list(specs))
    if len(comp):
        atomic_write_text(out / "comparisons.csv", comp.to_csv(index=False))
    atomic_write_text(out / "reps_needed.csv", planning(perf, task.target_mcse).to_csv(index=False))
    made = _plots(res, perf, fc, points, out, runner.seed, runner.quiet) if task.plots else []
    # the ADEMP report last: it embeds the plots just written
    write_report(out, kind="simulate", config=settings.plain, results=res, perf=perf)
    return SimulationResult(results=res, performance=perf, out_dir=out, plots=tuple(made))


def run(settings: Settings) -> int:
    """task=simulate at the CLI: the study, the terminal table; exit code 1 if incomplete."""
    try:
        sim = simulate(settings)
    except RunIncomplete as exc:
        print(f"palliasim: {exc}", file=sys.stderr)
        return 1
    res, out = sim.results, sim.out_dir
    print(format_terminal(sim.performance, max_rows=settings.task.max_rows))
    n_fail = int((res["status"] == FAILED).sum())
    print(
        f"\n{len(res):,} estimate rows ({n_fail:,} failed, counted in n_failed; failure policy "
        f"'{settings.failures}')."
    )
    print(
        f"Outputs in {out}:\n  performance.csv  results.parquet  manifest.json"
        "  comparisons.csv  reps_needed.csv  report.html  report.md"
        + "".join(f"\n  plots/{p.name}" for p in sim.plots)
    )
    return 0
