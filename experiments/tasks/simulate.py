"""task=simulate (the default): a simulation study of the selected estimators.

Flow: config -> design points (experiments.design) -> parallel, resumable replications
(experiments.runner) -> truth attached -> performance measures with Monte Carlo SE
(experiments.report / performance) -> terminal table, performance.csv, plots.
"""

from __future__ import annotations

import sys

from palliasim.experiments import config as C
from palliasim.experiments.engine.design import expand_design, factor_columns, validate_runner
from palliasim.sim.errors import ConfigError

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
    from palliasim.experiments.scoring import plots
    from palliasim.sim.generate import generate
    from palliasim.sim.seeding import rng_for

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
    import pandas as pd

    from palliasim.experiments.scoring.performance import compare_methods

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
    from palliasim.experiments.scoring.performance import reps_needed

    cols = [c for c in ("scenario", "method", "estimand") if c in perf]
    table = perf[cols].copy()
    for measure, target in (targets or {}).items():
        table[f"reps_for_{measure}_mcse_{target:g}"] = reps_needed(perf, target, measure).to_numpy()
    return table


def run(plain: dict) -> int:
    from palliasim.experiments.engine.runner import RunIncomplete, run_experiment
    from palliasim.experiments.scoring.report import format_terminal, performance_table

    base = C.scenario_from(plain)
    specs = C.estimator_specs(plain)
    design = plain.get("design") or {}
    runner = dict(plain.get("runner") or {})
    try:
        rcfg = validate_runner(
            {
                **runner,
                "reps": plain["reps"],
                "seed": plain["seed"],
                "quiet": bool(plain.get("quiet")),
            }
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    points = expand_design(base, None, design.get("factors") or {}, design.get("subset"))
    out = C.output_dir(plain)
    quiet = bool(plain.get("quiet"))
    if not quiet:
        print(
            f"palliasim: {len(points)} design point(s) x {plain['reps']} replications x "
            f"{len(specs)} estimators -> {out}",
            file=sys.stderr,
        )
    try:
        res = run_experiment(
            points,
            specs,
            rcfg["reps"],
            rcfg["seed"],
            out,
            n_jobs=rcfg["n_jobs"],
            backend=rcfg["backend"],
            chunk_size=rcfg["chunk_size"],
            dask_address=rcfg["dask_address"],
            quiet=quiet,
            config=plain,
        )
    except RunIncomplete as exc:
        print(f"palliasim: {exc}", file=sys.stderr)
        return 1
    fc = factor_columns(points)
    perf = performance_table(res, fc, plain["alpha"], plain["failures"], out_dir=out)
    print(format_terminal(perf, max_rows=int(C.get(plain, "task.max_rows", 60))))
    from palliasim.sim.files import atomic_write_text

    comp = comparisons(res, fc, list(specs))
    if len(comp):
        atomic_write_text(out / "comparisons.csv", comp.to_csv(index=False))
    targets = C.get(plain, "task.target_mcse", {}) or {}
    atomic_write_text(out / "reps_needed.csv", planning(perf, targets).to_csv(index=False))
    made = []
    if C.get(plain, "task.plots", True):
        made = _plots(res, perf, fc, points, out, plain["seed"], quiet)
    n_fail = int((res["status"] == "failed").sum())
    print(
        f"\n{len(res):,} estimate rows ({n_fail:,} failed, counted in n_failed; failure policy "
        f"'{plain['failures']}')."
    )
    print(
        f"Outputs in {out}:\n  performance.csv  results.parquet  manifest.json"
        "  comparisons.csv  reps_needed.csv"
        + ("".join(f"\n  plots/{p.name}" for p in made) if made else "")
    )
    return 0
