"""The parallel runner: every (design point, chunk of replications) task of a run, resumable.

    from palliasim.experiments.api import runner_settings
    from palliasim.experiments.engine.design import expand_design
    from palliasim.experiments.engine.runner import run_experiment
    points = expand_design("study", {}, {"cohort.n": [100, 200]})
    results = run_experiment(points, {"ancova": {"kind": "ancova_w12"}},
                             runner_settings(reps=200, seed=1, n_jobs=4), "outputs/run1")

:func:`run_experiment` reads as plan -> dispatch -> collect: :mod:`.plan` (what is left to
compute in the run directory, the uncached truths), :mod:`.dispatch` (the pool; tasks and
replies are the frozen records of :mod:`.records`, computed by :mod:`.worker`), each reply
written as a chunk file (:mod:`.storage`) and recorded in the manifest (:mod:`.manifest`), then
:mod:`.collect` (truth attached, results assembled).

Seeds come from content (scenario hash, estimator name), never from positions, so the rows are
bit-for-bit identical whatever ``n_jobs``, ``chunk_size``, backend, order of design points, or
resume; adding an estimator or a design point leaves every other row unchanged. Only the
``seconds`` column (timing) differs between runs.

Failures. Statistical trouble is the estimator's business (status rows, see estimators.base).
An *unexpected* exception inside ``fit`` (a programming error) does not stop the run: it becomes
rows with ``status="failed"``, ``message="error: <repr>"``, counted in the manifest's
``n_errors`` (with a traceback sample under ``errors``). A task that raises outside a fit (e.g.
in data generation) is reported by chunk id and the other chunks go on; a worker that dies
(segfault, out of memory) aborts the pool: the chunks not yet finished are reported by id.
Either way completed chunks are on disk, :class:`RunIncomplete` is raised, and re-running the
same call resumes. Estimator kinds registered outside the ``estimators`` package (user
plug-ins, test toys) are shipped to the workers with the task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from palliasim.experiments.engine import constants, storage
from palliasim.experiments.engine.collect import assemble, count_errors, truth_frame
from palliasim.experiments.engine.design import DesignPoint
from palliasim.experiments.engine.dispatch import dispatch, progress_bar
from palliasim.experiments.engine.manifest import (
    Manifest,
    chunk_entry,
    chunk_meta,
    error_samples,
    file_range,
)
from palliasim.experiments.engine.plan import (
    RunPlan,
    build_estimators,
    check_points,
    extra_kinds,
    normalise_specs,
    plan_run,
    plugin_paths,
    uncached_truths,
)
from palliasim.experiments.engine.preflight import check_dask, check_limits
from palliasim.experiments.engine.records import (
    ChunkReply,
    ConstantsReply,
    ConstantsTask,
    TruthReply,
)
from palliasim.experiments.engine.worker import run_task
from palliasim.experiments.settings import RunnerSettings
from palliasim.sim.files import atomic_write_text

__all__ = ["RunIncomplete", "run_experiment", "prepare", "build_estimators", "normalise_specs"]

log = logging.getLogger("palliasim.runner")
MANIFEST_EVERY = 5.0  # seconds between manifest updates during a run


class RunIncomplete(RuntimeError):
    """Some chunks did not finish; the others are saved. Re-run the same call to resume.

    Attributes: ``failed`` (chunk id -> traceback of a task that raised), ``aborted`` (chunk
    ids not run because the worker pool broke), ``out_dir``.
    """

    def __init__(self, message: str, failed: dict[str, str], aborted: list[str], out_dir: Path):
        super().__init__(message)
        self.failed = failed
        self.aborted = aborted
        self.out_dir = out_dir


def run_experiment(
    points: Sequence[DesignPoint],
    estimator_specs: Mapping[str, Mapping[str, Any]],
    runner: RunnerSettings,
    out_dir: str | os.PathLike,
    *,
    progress: bool = True,
    config: Mapping[str, Any] | None = None,
    point_specs: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    point_reps: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Run (or resume) a simulation study; returns the results with the truth attached.

    ``points``: design points (engine.design.expand_design; labels and scenarios unique).
    ``estimator_specs``: ``{name: {"kind": <registered kind>, **options}}``; ``name`` labels the
    rows (column ``method``) and seeds the estimator's random stream. ``runner``: validated
    :class:`RunnerSettings` (reps 0 .. reps - 1 per point, the root seed, the pool). ``out_dir``:
    the run directory (created; re-running with it computes only what is missing). ``progress``:
    False hides the bar (``runner.quiet`` also silences info logging). ``config``: the resolved
    configuration to record in the manifest. ``point_specs`` / ``point_reps``: scenario key ->
    the estimator specs / the replications at that point instead of ``estimator_specs`` /
    ``runner.reps`` (several groups of points with their own estimators and replications in one
    pool, as task=power's adaptive steps run them; a name may have another spec at another
    point: rows are labelled by name, seeded by name, one spec per point). The manifest records
    the union of the specs (the last point's spec where a name has several).

    Returns one row per (design point, rep, estimator, estimand) sorted by (scenario_key, rep,
    method, estimand): factor columns (named by dotted key), ``scenario`` (the point's label),
    ``scenario_key``, ``rep``, ``ESTIMATE_COLUMNS``, ``true``, ``true_mcse``; also written to
    ``out_dir/results.parquet``; ``df.attrs`` holds ``n_errors``, ``n_computed`` (chunks
    computed by this call) and ``out_dir``.

    Raises ValueError for invalid estimator kinds or options, ConfigError (a ValueError) for a
    run beyond the size limits, an unreachable dask scheduler (engine.preflight), a run
    directory that cannot be written, is locked by another run or holds another seed / chunk
    grid (all before any compute); :class:`RunIncomplete` when some chunks failed
    or were aborted (completed ones are saved; re-run to resume).
    """
    t_start = time.perf_counter()
    started_at = storage.utc_now()
    points = check_points(points)
    specs = normalise_specs(estimator_specs)
    pspecs = {p.key: normalise_specs((point_specs or {}).get(p.key, specs)) for p in points}
    preps = {p.key: int((point_reps or {}).get(p.key, runner.reps)) for p in points}
    if any(r < 1 for r in preps.values()):
        raise ValueError(f"point_reps must be >= 1; got {sorted(set(preps.values()))}")
    variants: dict[tuple[str, str], dict] = {}  # (name, spec hash) -> spec, built once each
    for ps in [specs, *pspecs.values()]:
        for m, spec in ps.items():
            variants.setdefault((m, storage.spec_hash(spec)), spec)
    built = {}
    for (m, _h), spec in variants.items():
        built[(m, _h)] = build_estimators({m: spec})[m]  # raises before any compute
    by_name = {m: est for (m, _h), est in built.items()}
    union = {m: spec for ps in [specs, *pspecs.values()] for m, spec in ps.items()}
    kinds, paths = extra_kinds(by_name, union), plugin_paths(by_name)
    sizes = [int(p.scenario.params["cohort"]["n"]) for p in points]
    n_est = max(len(ps) for ps in pspecs.values())
    check_limits(sizes, max(preps.values()), runner.chunk_size, n_est, runner.workers)
    check_dask(runner.dask_address if runner.backend == "dask" else None)
    names = sorted(union)
    hashes = {m: storage.spec_hash(union[m]) for m in names}
    point_hashes = {k: {m: storage.spec_hash(ps[m]) for m in ps} for k, ps in pspecs.items()}
    per_point = (
        {k: (point_hashes[k], preps[k]) for k in pspecs}
        if point_specs is not None or point_reps is not None
        else None
    )
    out_dir = Path(out_dir).resolve()
    n_jobs = runner.workers
    show = not runner.quiet

    with storage.run_lock(out_dir):
        plan = plan_run(out_dir, points, hashes, runner, per_point)
        manifest = Manifest.start(
            out_dir,
            points=points,
            specs=union,
            hashes=hashes,
            runner=runner
            if per_point is None
            else dataclasses.replace(runner, reps=max(preps.values())),
            n_jobs=n_jobs,
            config=config,
            started_at=started_at,
        )
        manifest.write()
        if show:
            log.info(
                "palliasim: %d design point(s) x %d reps x %d estimator(s): %d chunk(s) "
                "of %d on disk, %d to compute (%d reps), %d truth(s) to compute; "
                "n_jobs=%d backend=%s",
                len(points),
                runner.reps,
                len(names),
                len(plan.chunks) - len(plan.todo),
                len(plan.chunks),
                len(plan.todo),
                plan.n_compute,
                len(plan.truths),
                n_jobs,
                runner.backend,
            )
        done, failed, computed_truth = _dispatch(
            plan, points, pspecs, (kinds, paths), point_hashes, runner, manifest, progress and show
        )
        _raise_if_incomplete(plan, done, failed, manifest, out_dir, t_start)
        point_names = {k: sorted(ps) for k, ps in pspecs.items()}
        results = _collect(
            plan, points, names, computed_truth, done, manifest, out_dir, t_start, point_names
        )

    if show:
        log.info(
            "palliasim: done in %.1f s (%d chunk(s) computed, %d estimator error(s)); "
            "results in %s",
            manifest.current.seconds,
            len(done),
            manifest.n_errors,
            out_dir / storage.RESULTS_NAME,
        )
    results.attrs.update(n_errors=manifest.n_errors, n_computed=len(done), out_dir=str(out_dir))
    return results


def _dispatch(plan: RunPlan, points, specs, kinds, hashes, runner, manifest: Manifest, bar_on):
    """Run the plan's tasks (``specs`` / ``hashes``: scenario key -> that point's specs / spec
    hashes; ``kinds``: the plug-in classes to ship and the module paths the workers need,
    plan.extra_kinds / plan.plugin_paths); each finished chunk is written at once and recorded in the
    manifest (rewritten every MANIFEST_EVERY seconds). Returns (chunk ids written, failed chunk
    id -> traceback, computed truths); ``manifest.current.pool_error`` is set if the pool broke."""
    by_key = {p.key: p for p in points}
    plan_by_id = {c.chunk_id: c for c in plan.todo}
    this_run = manifest.current
    done: set[str] = set()
    failed: dict[str, str] = {}
    computed_truth: dict[str, dict] = {}
    last_write = time.monotonic()
    bar = progress_bar(plan.n_compute, bar_on and plan.n_compute > 0)
    try:
        solved = _solve_constants(plan, by_key, runner)
        tasks = plan.tasks(points, {}, runner, *kinds, constants=solved, point_specs=specs)
        replies = _run_in_pool(tasks, runner)
        for reply in replies:
            if isinstance(reply, TruthReply):
                if reply.ok:
                    computed_truth[reply.truth_key] = reply.values
                else:
                    log.warning("truth failed in a worker (retried at the end):\n%s", reply.error)
                continue
            chunk = plan_by_id[reply.chunk_id]
            bar.update(chunk.n_compute)
            if not reply.ok:
                failed[reply.chunk_id] = reply.error
                log.error("chunk %s failed:\n%s", reply.chunk_id, reply.error)
                continue
            key = chunk.scenario_key
            _write_chunk(chunk, reply, by_key[key], runner, hashes[key], manifest)
            done.add(reply.chunk_id)
            this_run.n_errors += reply.n_errors
            if this_run.n_errors:
                bar.set_postfix(errors=this_run.n_errors, refresh=False)
            if time.monotonic() - last_write > MANIFEST_EVERY:
                manifest.write()
                last_write = time.monotonic()
    except KeyboardInterrupt:
        this_run.status, this_run.finished_at = "interrupted", storage.utc_now()
        manifest.status = "interrupted"
        manifest.write()
        raise
    except Exception as exc:  # the pool broke (worker died, scheduler lost, ...)
        this_run.pool_error = f"{type(exc).__name__}: {exc}"
        log.error("the run stopped (a worker died or the pool failed): %s", this_run.pool_error)
    finally:
        bar.close()
    return done, failed, computed_truth


def prepare(
    points: Sequence[DesignPoint],
    runner: RunnerSettings,
    truths_only: Sequence[DesignPoint] = (),
) -> None:
    """Before several :func:`run_experiment` calls over ``points`` (e.g. the adaptive power
    loop): the truths not yet cached (also of ``truths_only``) and the scenario constants not
    yet solved in this process, all in one parallel pool (truths go to the cache, constants
    into this process's cache, shipped from there). A failure is left to the run, which
    reports it."""
    points = list(points)
    parent = os.getpid() if runner.backend == "loky" else None
    seen: set[str] = set()
    tasks: list = [
        dataclasses.replace(t, parent_pid=parent) for t in uncached_truths([*points, *truths_only])
    ]
    for p in points:  # one solve per constants key (the sizes of a grid share it)
        ck = p.scenario.constants_key
        if ck not in seen and constants.known(p.scenario) is None:
            seen.add(ck)
            tasks.append(ConstantsTask(p.scenario, parent_pid=parent))
    if not tasks:
        return
    with contextlib.suppress(Exception):
        replies = _run_in_pool(tasks, runner)
        constants.prime(
            {r.key: r.values for r in replies if isinstance(r, ConstantsReply) and r.ok}
        )


def _run_in_pool(tasks, runner: RunnerSettings):
    """``run_task`` over ``tasks`` in the run's pool (backend, workers, dask address and
    quietness from ``runner``); yields the replies as they finish."""
    return dispatch(
        run_task,
        tasks,
        backend_name=runner.backend,
        n_jobs=runner.workers,
        dask_address=runner.dask_address,
        quiet=runner.quiet,
    )


def _solve_constants(plan: RunPlan, by_key, runner) -> dict[str, dict]:
    """The scenario constants of every point with chunks to compute: those this process
    solved before (an earlier call, e.g. an adaptive step), the others solved in the pool, one
    task per constants key (in parallel; a scenario whose solve fails gets None, and its chunks
    report the error). Returns scenario key -> constants, shipped with the chunk tasks."""
    keys = list(dict.fromkeys(c.scenario_key for c in plan.todo))
    scen = {k: by_key[k].scenario for k in keys}
    out = {k: v for k in keys if (v := constants.known(scen[k])) is not None}
    missing = [k for k in keys if k not in out]
    if not missing:
        return out
    parent = os.getpid() if runner.backend == "loky" else None
    by_ck = {scen[k].constants_key: scen[k] for k in reversed(missing)}  # first scenario wins
    todo = [ConstantsTask(s, parent_pid=parent) for s in reversed(by_ck.values())]
    if len(todo) == 1 or runner.workers == 1:  # no pool round trip for one solve
        replies = map(run_task, todo)
    else:
        replies = _run_in_pool(todo, runner)
    solved = {reply.key: reply.values for reply in replies if reply.ok}
    constants.prime(solved)
    out.update(
        {k: solved[scen[k].constants_key] for k in missing if scen[k].constants_key in solved}
    )
    return out


def _write_chunk(chunk, reply: ChunkReply, point, runner, hashes, manifest: Manifest) -> None:
    """Write one computed chunk (merged into its file when only some methods were computed)."""
    new = storage.rows_frame(reply.columns)
    old_meta = None
    if chunk.merge:
        old, old_meta = storage.read_chunk(chunk.path)
        new = pd.concat([old[~old["method"].isin(chunk.methods)], new], ignore_index=True)
    run_no = manifest.current.run
    meta = chunk_meta(point, chunk, runner, hashes, old_meta, reply, run_no)
    storage.write_chunk(chunk.path, new, meta)
    manifest.current.computed.append(reply.chunk_id)
    manifest.chunks[reply.chunk_id] = chunk_entry(manifest.out_dir, chunk.path, meta)


def _raise_if_incomplete(plan, done, failed, manifest: Manifest, out_dir, t_start) -> None:
    aborted = [c.chunk_id for c in plan.todo if c.chunk_id not in done and c.chunk_id not in failed]
    if not (failed or aborted):
        return
    this_run = manifest.current
    this_run.status, this_run.finished_at = "incomplete", storage.utc_now()
    this_run.seconds = time.perf_counter() - t_start
    this_run.failed_chunks, this_run.aborted_chunks = failed, aborted
    manifest.status, manifest.failed_chunks, manifest.aborted_chunks = "incomplete", failed, aborted
    manifest.write()
    ids = list(failed) + aborted
    pool_error = this_run.pool_error
    why = f"the run stopped: {pool_error}; " if pool_error else ""
    raise RunIncomplete(
        f"{len(ids)} of {len(plan.chunks)} chunk(s) did not finish: {why}"
        f"failed: {', '.join(failed) or '-'}; not run: {', '.join(aborted[:20]) or '-'}"
        f"{' ...' if len(aborted) > 20 else ''}. The {len(plan.chunks) - len(ids)} other "
        f"chunks are saved in {out_dir}; re-run the same command to resume "
        f"(tracebacks in manifest.json).",
        failed,
        aborted,
        out_dir,
    )


def _collect(
    plan, points, names, computed_truth, done, manifest: Manifest, out_dir, t_start, point_names
):
    """Truth attached, results and truth.csv written, the manifest completed."""
    truth_df = truth_frame(points, computed_truth)
    results = assemble(points, plan.chunks, names, truth_df, point_names)
    storage.write_parquet(out_dir / storage.RESULTS_NAME, results)
    atomic_write_text(out_dir / "truth.csv", truth_df.to_csv(index=False, float_format="%.17g"))
    # the manifest's chunk table covers the planned chunks (metadata read from each file)
    for c in plan.chunks:
        cid = storage.chunk_id(c.scenario_key, *file_range(c.path))
        if cid not in manifest.chunks or cid not in done:
            with contextlib.suppress(Exception):
                manifest.chunks[cid] = chunk_entry(out_dir, c.path, storage.read_chunk_meta(c.path))
    n_errors, n_error_rows = count_errors(results)
    finished = storage.utc_now()
    this_run = manifest.current
    this_run.status, this_run.finished_at = "complete", finished
    this_run.seconds = time.perf_counter() - t_start
    manifest.status, manifest.finished_at = "complete", finished
    manifest.n_errors, manifest.n_error_rows = n_errors, n_error_rows
    manifest.errors = error_samples(plan.chunks, names)
    manifest.failed_chunks, manifest.aborted_chunks = {}, []
    manifest.results = {
        "path": storage.RESULTS_NAME,
        "rows": len(results),
        "design_points": len(points),
        "reps": manifest.reps,
        "methods": list(names),
    }
    manifest.write()
    return results
