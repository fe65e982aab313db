"""The parallel runner: every (design point, chunk of replications) task of a run, resumable.

    from palliasim.experiments.engine.design import expand_design
    from palliasim.experiments.engine.runner import run_experiment
    points = expand_design("study", {}, {"cohort.n": [100, 200]})
    results = run_experiment(points, {"ancova": {"kind": "ancova_w12"}}, reps=200, seed=1,
                             out_dir="outputs/run1", n_jobs=4)

What one task does (:func:`_run_chunk`, a top-level function receiving plain data only: the
:class:`sim.Scenario`, the estimator specs, the rep range and the seed), with BLAS pinned to one
thread (threadpoolctl), for each replication ``rep``:

1. ``cohort = sim.generate(scenario, rng_for(seed, scenario.key, "data", rep))`` - one data set
   shared by every estimator (common random numbers: method comparisons are paired);
2. for each estimator, in name order: ``est.fit(cohort, rng_for(seed, scenario.key, "estimator",
   rep, name_int(name)))``.

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
same call resumes.

Backends: ``loky`` (processes, default), ``threading`` (one process; estimator fits are
serialised because warning capture in ``Estimator.fit`` is process-global - use it for
debugging, not speed), ``dask`` (a ``dask.distributed.Client`` on ``dask_address``, or a
``LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True)`` started and closed here).
Estimator kinds registered outside the ``estimators`` package (user plug-ins, test toys) are
shipped to the workers with the task (pickled by reference, or by value for ``__main__``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from palliasim.estimators.base import ESTIMATE_COLUMNS, Estimate, build_estimator
from palliasim.experiments.engine import storage
from palliasim.experiments.engine.design import DesignPoint, factor_columns, validate_runner
from palliasim.sim import generate, rng_for
from palliasim.sim.files import atomic_write_text
from palliasim.sim.seeding import name_int

__all__ = ["RunIncomplete", "run_experiment", "build_estimators", "normalise_specs"]

log = logging.getLogger("palliasim.runner")

#: message prefix of rows produced by an unexpected exception in ``fit``
ERROR_PREFIX = "error: "
MAX_ERROR_SAMPLES = 3  # tracebacks kept per chunk
MANIFEST_EVERY = 5.0  # seconds between manifest updates during a run
_generate = generate  # indirection: tests replace it to simulate a crashing task


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


# --------------------------------------------------------------------------------------------
# worker side
# --------------------------------------------------------------------------------------------
_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"depth": 0, "limiter": None}
_FIT_LOCK = threading.RLock()


@contextlib.contextmanager
def _single_thread_blas():
    """threadpool_limits(1) for the process, reference-counted so concurrent threads (threading
    backend) neither race on restoring the limits nor leave them changed afterwards."""
    with _BLAS_LOCK:
        if _BLAS_STATE["depth"] == 0:
            _BLAS_STATE["limiter"] = threadpool_limits(limits=1)
        _BLAS_STATE["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["depth"] -= 1
            if _BLAS_STATE["depth"] == 0:
                limiter = _BLAS_STATE["limiter"]
                _BLAS_STATE["limiter"] = None
                if limiter is not None:
                    limiter.restore_original_limits()


def _register_extra(extra_kinds: Mapping[str, type]) -> None:
    from palliasim.estimators.base import REGISTRY

    for kind, cls in extra_kinds.items():
        REGISTRY.setdefault(kind, cls)


def _f(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _row(r: Estimate) -> dict:
    if not isinstance(r, Estimate):
        raise TypeError(
            f"fit must return a list of Estimate, got an item of type {type(r).__name__}"
        )
    return {
        "method": str(r.method),
        "estimand": str(r.estimand),
        "estimate": _f(r.estimate),
        "se": _f(r.se),
        "ci_low": _f(r.ci_low),
        "ci_high": _f(r.ci_high),
        "p_value": _f(r.p_value),
        "n_used": int(r.n_used),
        "status": str(r.status),
        "message": str(r.message),
        "seconds": _f(r.seconds),
        "engine": str(r.engine),
    }


def _error_rows(name: str, est, exc: BaseException, seconds: float) -> list[dict]:
    try:
        targets = list(est.targets()) or ["?"]
    except Exception:
        targets = ["?"]
    msg = (ERROR_PREFIX + repr(exc))[:1000]
    return [
        {
            "method": name,
            "estimand": str(e),
            "estimate": float("nan"),
            "se": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "p_value": float("nan"),
            "n_used": 0,
            "status": "failed",
            "message": msg,
            "seconds": seconds / len(targets),
            "engine": str(getattr(est, "engine", "")),
        }
        for e in targets
    ]


def _run_chunk(task: dict) -> dict:
    """Compute one chunk: reps ``first..last`` of one scenario for the listed estimators."""
    t0 = time.perf_counter()
    cid = task["chunk_id"]
    try:
        _register_extra(task.get("extra_kinds") or {})
        scenario, seed = task["scenario"], int(task["seed"])
        key = scenario.key
        specs = task["specs"]
        ests = []
        for name in task["methods"]:  # sorted by name in the parent
            opts = {k: v for k, v in specs[name].items() if k != "kind"}
            ests.append((name, build_estimator(specs[name]["kind"], name=name, **opts)))
        cols: dict[str, list] = {c: [] for c in storage.CHUNK_COLUMNS}
        errors: list[dict] = []
        errors_by_method = {name: 0 for name, _ in ests}
        fit_lock = _FIT_LOCK if task.get("serial_fits") else contextlib.nullcontext()
        with _single_thread_blas():
            for rep in range(int(task["first"]), int(task["last"]) + 1):
                cohort = _generate(scenario, rng_for(seed, key, "data", rep))
                for name, est in ests:
                    rng_e = rng_for(seed, key, "estimator", rep, name_int(name))
                    t1 = time.perf_counter()
                    try:
                        with fit_lock:
                            rows = [_row(r) for r in est.fit(cohort, rng_e)]
                    except Exception as exc:  # a programming error: record it, carry on
                        rows = _error_rows(name, est, exc, time.perf_counter() - t1)
                        errors_by_method[name] += 1
                        if len(errors) < MAX_ERROR_SAMPLES:
                            errors.append(
                                {
                                    "method": name,
                                    "rep": rep,
                                    "error": repr(exc)[:1000],
                                    "traceback": traceback.format_exc()[-4000:],
                                }
                            )
                    for r in rows:
                        cols["scenario_key"].append(key)
                        cols["rep"].append(rep)
                        for c in ESTIMATE_COLUMNS:
                            cols[c].append(r[c])
        return {
            "type": "chunk",
            "ok": True,
            "chunk_id": cid,
            "columns": cols,
            "seconds": time.perf_counter() - t0,
            "errors_by_method": errors_by_method,
            "errors": errors,
            "pid": os.getpid(),
            "host": platform.node(),
        }
    except Exception:
        return {
            "type": "chunk",
            "ok": False,
            "chunk_id": cid,
            "error": traceback.format_exc(),
            "seconds": time.perf_counter() - t0,
        }


def _run_truth(task: dict) -> dict:
    """Compute (and cache) the truth of one scenario."""
    from palliasim import sim

    t0 = time.perf_counter()
    try:
        with _single_thread_blas():
            values = sim.truth(task["scenario"]).values
        return {
            "type": "truth",
            "ok": True,
            "truth_key": task["truth_key"],
            "values": values,
            "seconds": time.perf_counter() - t0,
        }
    except Exception:
        return {
            "type": "truth",
            "ok": False,
            "truth_key": task["truth_key"],
            "error": traceback.format_exc(),
            "seconds": time.perf_counter() - t0,
        }


def _run_task(task: dict) -> dict:
    if task["type"] == "truth":
        return _run_truth(task)
    return _run_chunk(task)


# --------------------------------------------------------------------------------------------
# parent side: validation
# --------------------------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and np.ndim(v) == 0 and not isinstance(v, (str, bytes)):
        return v.item()
    return v


def normalise_specs(estimator_specs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Plain ``{name: {"kind": ..., **options}}``; ValueError naming ``estimators.<name>``."""
    if not isinstance(estimator_specs, Mapping) or not estimator_specs:
        raise ValueError("estimators: give at least one estimator as {name: {kind: ..., options}}")
    out: dict[str, dict] = {}
    for name, spec in estimator_specs.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"estimators: names must be non-empty strings; got {name!r}")
        if not isinstance(spec, Mapping):
            raise ValueError(f"estimators.{name} must be a mapping with a 'kind'; got {spec!r}")
        spec = _plain(spec)
        if "kind" not in spec:
            raise ValueError(f"estimators.{name}: missing 'kind' (the registered estimator kind)")
        if "name" in spec:
            if spec["name"] != name:
                raise ValueError(
                    f"estimators.{name}.name={spec['name']!r} differs from its key '{name}'; "
                    f"drop the 'name' option (the key names the rows)"
                )
            spec = {k: v for k, v in spec.items() if k != "name"}
        out[name] = spec
    return out


def build_estimators(specs: Mapping[str, Mapping[str, Any]]) -> dict:
    """Build every estimator (in the parent, before any compute); errors name the estimator."""
    built = {}
    for name, spec in normalise_specs(specs).items():
        opts = {k: v for k, v in spec.items() if k != "kind"}
        try:
            built[name] = build_estimator(spec["kind"], name=name, **opts)
        except (ValueError, TypeError) as exc:
            msg = str(exc)
            if f"estimators.{name}" not in msg:
                msg = f"estimators.{name}: {msg}"
            raise ValueError(msg) from None
    return built


def _extra_kinds(built: Mapping[str, Any]) -> dict[str, type]:
    """Kinds registered outside the ``estimators`` package (shipped to workers)."""
    out = {}
    for est in built.values():
        cls = type(est)
        if not (cls.__module__ == "estimators" or cls.__module__.startswith("estimators.")):
            out[cls.kind] = cls
    return out


def _check_points(points: Sequence[DesignPoint]) -> list[DesignPoint]:
    points = list(points)
    if not points:
        raise ValueError("run_experiment: no design points")
    keys: dict[str, str] = {}
    labels: dict[str, str] = {}
    for p in points:
        if not isinstance(p, DesignPoint):
            raise TypeError(f"run_experiment: points must be DesignPoint, got {type(p).__name__}")
        if p.key in keys:
            raise ValueError(f"design points '{keys[p.key]}' and '{p.label}' are the same scenario")
        if p.label in labels:
            raise ValueError(f"two design points share the label '{p.label}'")
        keys[p.key] = p.label
        labels[p.label] = p.key
    return points


# --------------------------------------------------------------------------------------------
# parent side: truth
# --------------------------------------------------------------------------------------------
def _truth_key(scenario) -> str | None:
    try:
        from palliasim.sim.truth import truth_key

        return truth_key(scenario)
    except Exception:  # pragma: no cover - sim internals changed
        return None


def _truth_cached(scenario) -> bool:
    try:
        from palliasim.sim.truth import cache_dir, truth_key

        return (cache_dir() / f"{truth_key(scenario)}.json").exists()
    except Exception:  # pragma: no cover
        return True  # unknown: let the parent compute it at the end


def _truth_frame(points: Sequence[DesignPoint], computed: Mapping[str, dict]) -> pd.DataFrame:
    """scenario_key, estimand, true, true_mcse, source for every point."""
    from palliasim import sim

    frames = []
    by_tkey: dict[str, pd.DataFrame] = {}
    for p in points:
        tkey = _truth_key(p.scenario)
        if tkey is not None and tkey in by_tkey:
            tf = by_tkey[tkey]
        elif tkey is not None and tkey in computed:
            tf = sim.Truth(computed[tkey]).to_frame()
        else:
            with _single_thread_blas():
                tf = sim.truth(p.scenario).to_frame()
        if tkey is not None:
            by_tkey[tkey] = tf
        frames.append(tf.assign(scenario_key=p.key))
    cols = ["scenario_key", "estimand", "true", "true_mcse", "source"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


# --------------------------------------------------------------------------------------------
# parent side: assembly
# --------------------------------------------------------------------------------------------
def _factor_series(values: list) -> pd.Series:
    vals = [
        json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else v for v in values
    ]
    present = [v for v in vals if v is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    boolean = all(isinstance(v, bool) for v in present)
    strings = all(isinstance(v, str) for v in present)
    if not (numeric or boolean or strings):
        vals = [None if v is None else str(v) for v in vals]
    return pd.Series(vals, dtype=object if not numeric else None)


def _assemble(points, plans, specs_names, out_dir, truth_df) -> pd.DataFrame:
    """Rows of the planned chunks (requested estimators only), factors and truth attached."""
    frames = []
    for c in plans:
        df, _ = storage.read_chunk(c.path)
        keep = (df["rep"] >= c.first) & (df["rep"] <= c.last) & df["method"].isin(specs_names)
        frames.append(df[keep])
    df = storage.sort_canonical(pd.concat(frames, ignore_index=True))
    by_key = {p.key: p for p in points}
    fcols = factor_columns(points)
    pos = df["scenario_key"].map({k: i for i, k in enumerate(by_key)}).to_numpy()
    front = {}
    for c in fcols:
        levels = _factor_series([p.factors.get(c) for p in points])
        front[c] = levels.iloc[pos].reset_index(drop=True)
    front["scenario"] = (
        pd.Series([p.label for p in points], dtype=object).iloc[pos].reset_index(drop=True)
    )
    out = pd.concat([pd.DataFrame(front), df], axis=1)
    t = truth_df[["scenario_key", "estimand", "true", "true_mcse"]]
    out = out.merge(t, on=["scenario_key", "estimand"], how="left", validate="many_to_one")
    for c in ("true", "true_mcse"):
        out[c] = out[c].astype(np.float64)
    return out


# --------------------------------------------------------------------------------------------
# parent side: execution
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _backend(backend: str, n_jobs: int, dask_address: str | None, quiet: bool):
    """Yields the n_jobs to give Parallel, inside the right joblib configuration."""
    if backend != "dask":
        with joblib.parallel_config(backend=backend):
            yield n_jobs
        return
    from dask.distributed import Client, LocalCluster

    cluster = None
    if dask_address:
        client = Client(dask_address)
    else:
        cluster = LocalCluster(
            n_workers=n_jobs,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR if quiet else logging.WARNING,
        )
        client = Client(cluster)
    try:
        with joblib.parallel_config(backend="dask"):
            yield -1
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit="rep",
        desc="palliasim",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=0.5,
        smoothing=0.1,
    )


def _chunk_meta(
    point: DesignPoint,
    plan: storage.ChunkPlan,
    seed: int,
    chunk_size: int,
    spec_hashes: Mapping[str, str],
    old: Mapping[str, Any] | None,
    res: Mapping[str, Any],
    run_no: int,
) -> dict:
    old = dict(old or {})
    recomputed = set(plan.methods)
    specs = {m: h for m, h in (old.get("specs") or {}).items() if m not in recomputed}
    specs.update({m: spec_hashes[m] for m in plan.methods})
    ebm = {m: n for m, n in (old.get("errors_by_method") or {}).items() if m not in recomputed}
    ebm.update(res["errors_by_method"])
    errs = [e for e in (old.get("errors") or []) if e.get("method") not in recomputed]
    errs = (errs + list(res["errors"]))[: 2 * MAX_ERROR_SAMPLES]
    history = list(old.get("history") or [])
    history.append(
        {
            "run": run_no,
            "methods": list(plan.methods),
            "seconds": res["seconds"],
            "finished_at": storage.utc_now(),
            "pid": res.get("pid"),
            "host": res.get("host"),
        }
    )
    return {
        "scenario_key": point.key,
        "label": point.label,
        "preset": point.scenario.name,
        "factors": point.factors,
        "first": plan.compute_first,
        "last": plan.compute_last,
        "seed": seed,
        "chunk_size": chunk_size,
        "specs": specs,
        "errors_by_method": ebm,
        "n_errors": int(sum(ebm.values())),
        "errors": errs,
        "history": history,
    }


def run_experiment(
    points: Sequence[DesignPoint],
    estimator_specs: Mapping[str, Mapping[str, Any]],
    reps: int,
    seed: int,
    out_dir: str | os.PathLike,
    n_jobs: int = 1,
    backend: str = "loky",
    chunk_size: int = 25,
    dask_address: str | None = None,
    quiet: bool = False,
    progress: bool = True,
    config: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Run (or resume) a simulation study; returns the results with the truth attached.

    Parameters
    ----------
    points
        Design points (:func:`experiments.design.expand_design`; lists from several calls may
        be concatenated, labels and scenarios must be unique).
    estimator_specs
        ``{name: {"kind": <registered kind>, **options}}``; ``name`` labels the rows (column
        ``method``) and seeds the estimator's random stream.
    reps, seed
        Replications per design point (0 .. reps - 1) and the root seed.
    out_dir
        Run directory (created). Re-running with the same directory computes only what is
        missing (see :mod:`experiments.storage` for the resume rules).
    n_jobs, backend, chunk_size, dask_address
        As in the ``runner`` config group (:func:`experiments.design.validate_runner`).
    quiet, progress
        ``quiet`` silences the progress bar and info logging; ``progress=False`` only the bar.
    config
        The resolved configuration (plain dict) to record in the manifest.

    Returns
    -------
    DataFrame, one row per (design point, rep, estimator, estimand) sorted by (scenario_key, rep,
    method, estimand): factor columns (named by dotted key), ``scenario`` (the point's label),
    ``scenario_key``, ``rep``, ``ESTIMATE_COLUMNS``, ``true``, ``true_mcse``. Also written to
    ``out_dir/results.parquet``; ``df.attrs`` holds ``n_errors``, ``n_computed`` (chunks computed
    by this call) and ``out_dir``.

    Raises
    ------
    ValueError
        Invalid runner settings, estimator kinds or options (before any compute), or a run
        directory holding another seed / chunk grid.
    RunIncomplete
        Some chunks failed or were aborted (completed ones are saved; re-run to resume).
    """
    t_start = time.perf_counter()
    started_at = storage.utc_now()
    points = _check_points(points)
    runner = validate_runner(
        {
            "n_jobs": n_jobs,
            "backend": backend,
            "chunk_size": chunk_size,
            "reps": reps,
            "seed": seed,
            "dask_address": dask_address,
            "quiet": bool(quiet),
            "progress": bool(progress),
        }
    )
    n_jobs, reps, seed, chunk_size = (
        runner["n_jobs"],
        runner["reps"],
        runner["seed"],
        runner["chunk_size"],
    )
    if n_jobs == -1:
        n_jobs = joblib.cpu_count()
    specs = normalise_specs(estimator_specs)
    built = build_estimators(specs)  # raises before any compute
    extra = _extra_kinds(built)
    names = sorted(specs)
    hashes = {m: storage.spec_hash(specs[m]) for m in names}
    out_dir = Path(out_dir).resolve()
    by_key = {p.key: p for p in points}
    show = not quiet

    with storage.run_lock(out_dir):
        storage.clean_tmp(out_dir)
        storage.check_resume(out_dir, seed, chunk_size)
        plans = storage.plan_chunks(out_dir, list(by_key), reps, chunk_size, hashes, seed=seed)
        todo = [c for c in plans if c.methods]

        # truth: compute uncached ones in the same pool (they are the longest tasks: first)
        truth_tasks, seen = [], set()
        for p in points:
            tkey = _truth_key(p.scenario)
            if tkey and tkey not in seen and not _truth_cached(p.scenario):
                seen.add(tkey)
                truth_tasks.append({"type": "truth", "truth_key": tkey, "scenario": p.scenario})

        manifest = storage.read_manifest(out_dir) or {}
        runs = list(manifest.get("runs") or [])
        run_no = len(runs)
        this_run = {
            "run": run_no,
            "started_at": started_at,
            "finished_at": None,
            "status": "running",
            "n_jobs": n_jobs,
            "backend": backend,
            "dask_address": dask_address,
            "chunk_size": chunk_size,
            "reps": reps,
            "methods": names,
            "computed": [],
            "n_errors": 0,
            "seconds": None,
        }
        runs.append(this_run)
        manifest.update(
            {
                "palliasim_manifest": storage.FORMAT_VERSION,
                "status": "running",
                "config": _plain(config) if config is not None else manifest.get("config"),
                "seed": seed,
                "reps": reps,
                "chunk_size": chunk_size,
                "runner": {
                    k: runner[k]
                    for k in ("n_jobs", "backend", "chunk_size", "reps", "seed", "dask_address")
                },
                "estimators": specs,
                "estimator_hashes": hashes,
                "design": [
                    {
                        "label": p.label,
                        "preset": p.scenario.name,
                        "scenario_key": p.key,
                        "n": p.scenario.n,
                        "factors": p.factors,
                    }
                    for p in points
                ],
                "versions": storage.package_versions(),
                "environment": storage.environment(),
                "started_at": manifest.get("started_at", started_at),
                "runs": runs,
            }
        )
        chunks_info: dict[str, dict] = dict(manifest.get("chunks") or {})
        manifest["chunks"] = chunks_info
        storage.write_manifest(out_dir, manifest)

        total = sum(c.n_compute for c in todo)
        if show:
            log.info(
                "palliasim: %d design point(s) x %d reps x %d estimator(s): %d chunk(s) "
                "of %d on disk, %d to compute (%d reps), %d truth(s) to compute; "
                "n_jobs=%d backend=%s",
                len(points),
                reps,
                len(names),
                len(plans) - len(todo),
                len(plans),
                len(todo),
                total,
                len(truth_tasks),
                n_jobs,
                backend,
            )

        tasks: list[dict] = list(truth_tasks)
        plan_by_id = {}
        for c in todo:
            plan_by_id[c.chunk_id] = c
            tasks.append(
                {
                    "type": "chunk",
                    "chunk_id": c.chunk_id,
                    "scenario": by_key[c.scenario_key].scenario,
                    "specs": {m: specs[m] for m in c.methods},
                    "methods": list(c.methods),
                    "first": c.compute_first,
                    "last": c.compute_last,
                    "seed": seed,
                    "extra_kinds": extra,
                    "serial_fits": backend == "threading",
                }
            )

        failed: dict[str, str] = {}
        aborted: list[str] = []
        pool_error = None
        computed_truth: dict[str, dict] = {}
        done: set[str] = set()
        n_errors_run = 0
        last_manifest = time.monotonic()
        bar = _progress(total, show and progress and total > 0)
        try:
            if tasks:
                with _backend(backend, n_jobs, dask_address, quiet) as nj:
                    par = joblib.Parallel(
                        n_jobs=nj,
                        return_as="generator_unordered",
                        batch_size=1,
                        pre_dispatch="2*n_jobs",
                    )
                    for res in par(joblib.delayed(_run_task)(t) for t in tasks):
                        if res["type"] == "truth":
                            if res["ok"]:
                                computed_truth[res["truth_key"]] = res["values"]
                            else:
                                log.warning(
                                    "truth failed in a worker (retried at the end):\n%s",
                                    res["error"],
                                )
                            continue
                        cid = res["chunk_id"]
                        plan = plan_by_id[cid]
                        if not res["ok"]:
                            failed[cid] = res["error"]
                            log.error("chunk %s failed:\n%s", cid, res["error"])
                            bar.update(plan.n_compute)
                            continue
                        new = storage.rows_frame(res["columns"])
                        old_meta = None
                        if plan.merge:
                            old, old_meta = storage.read_chunk(plan.path)
                            new = pd.concat(
                                [old[~old["method"].isin(plan.methods)], new], ignore_index=True
                            )
                        meta = _chunk_meta(
                            by_key[plan.scenario_key],
                            plan,
                            seed,
                            chunk_size,
                            hashes,
                            old_meta,
                            res,
                            run_no,
                        )
                        storage.write_chunk(plan.path, new, meta)
                        done.add(cid)
                        n_err = int(sum(res["errors_by_method"].values()))
                        n_errors_run += n_err
                        this_run["computed"].append(cid)
                        chunks_info[cid] = _chunk_entry(out_dir, plan.path, meta)
                        bar.update(plan.n_compute)
                        if n_errors_run:
                            bar.set_postfix(errors=n_errors_run, refresh=False)
                        if time.monotonic() - last_manifest > MANIFEST_EVERY:
                            this_run["n_errors"] = n_errors_run
                            storage.write_manifest(out_dir, manifest)
                            last_manifest = time.monotonic()
        except KeyboardInterrupt:
            this_run.update(
                status="interrupted", finished_at=storage.utc_now(), n_errors=n_errors_run
            )
            manifest["status"] = "interrupted"
            storage.write_manifest(out_dir, manifest)
            raise
        except Exception as exc:  # the pool broke (worker died, scheduler lost, ...)
            pool_error = f"{type(exc).__name__}: {exc}"
            log.error("the run stopped (a worker died or the pool failed): %s", pool_error)
        finally:
            bar.close()
        aborted = [c.chunk_id for c in todo if c.chunk_id not in done and c.chunk_id not in failed]
        this_run["n_errors"] = n_errors_run

        if failed or aborted:
            this_run.update(
                status="incomplete",
                finished_at=storage.utc_now(),
                seconds=time.perf_counter() - t_start,
                failed_chunks=failed,
                aborted_chunks=aborted,
                pool_error=pool_error,
            )
            manifest.update(status="incomplete", failed_chunks=failed, aborted_chunks=aborted)
            storage.write_manifest(out_dir, manifest)
            ids = list(failed) + aborted
            why = f"the run stopped: {pool_error}; " if pool_error else ""
            raise RunIncomplete(
                f"{len(ids)} of {len(plans)} chunk(s) did not finish: {why}"
                f"failed: {', '.join(failed) or '-'}; not run: {', '.join(aborted[:20]) or '-'}"
                f"{' ...' if len(aborted) > 20 else ''}. The {len(plans) - len(ids)} other "
                f"chunks are saved in {out_dir}; re-run the same command to resume "
                f"(tracebacks in manifest.json).",
                failed,
                aborted,
                out_dir,
            )

        # ---- assemble, attach the truth, write -------------------------------------------------
        truth_df = _truth_frame(points, computed_truth)
        results = _assemble(points, plans, names, out_dir, truth_df)
        storage.write_parquet(out_dir / storage.RESULTS_NAME, results)
        text = truth_df.to_csv(index=False, float_format="%.17g")
        atomic_write_text(out_dir / "truth.csv", text)

        # the manifest's chunk table covers the planned chunks (metadata read from each file)
        for c in plans:
            cid = storage.chunk_id(c.scenario_key, *_file_range(c.path))
            if cid not in chunks_info or cid not in done:
                with contextlib.suppress(Exception):
                    chunks_info[cid] = _chunk_entry(
                        out_dir, c.path, storage.read_chunk_meta(c.path)
                    )
        err_rows = (results["status"] == "failed") & results["message"].str.startswith(ERROR_PREFIX)
        n_error_rows = int(err_rows.sum())
        # one fit that raised = one (scenario, rep, method), whatever its number of estimands
        errors_total = int(
            len(results.loc[err_rows, ["scenario_key", "rep", "method"]].drop_duplicates())
        )
        finished = storage.utc_now()
        elapsed = time.perf_counter() - t_start
        this_run.update(status="complete", finished_at=finished, seconds=elapsed)
        manifest.update(
            status="complete",
            finished_at=finished,
            n_errors=errors_total,
            n_error_rows=n_error_rows,
            errors=_error_samples(plans, names),
            failed_chunks={},
            aborted_chunks=[],
            results={
                "path": storage.RESULTS_NAME,
                "rows": len(results),
                "design_points": len(points),
                "reps": reps,
                "methods": names,
            },
        )
        storage.write_manifest(out_dir, manifest)

    if show:
        log.info(
            "palliasim: done in %.1f s (%d chunk(s) computed, %d estimator error(s)); "
            "results in %s",
            elapsed,
            len(done),
            errors_total,
            out_dir / storage.RESULTS_NAME,
        )
    results.attrs.update(n_errors=errors_total, n_computed=len(done), out_dir=str(out_dir))
    return results


def _file_range(path: Path) -> tuple[int, int]:
    m = storage.CHUNK_RE.match(Path(path).name)
    return int(m.group(1)), int(m.group(2))


def _chunk_entry(out_dir: Path, path: Path, meta: Mapping[str, Any]) -> dict:
    hist = meta.get("history") or []
    return {
        "path": str(Path(path).relative_to(out_dir)),
        "label": meta.get("label"),
        "first": meta.get("first"),
        "last": meta.get("last"),
        "seconds": float(sum(h.get("seconds", 0.0) for h in hist)),
        "n_errors": meta.get("n_errors", 0),
        "errors_by_method": meta.get("errors_by_method", {}),
        "history": hist,
    }


def _error_samples(plans, names, limit: int = 10) -> list[dict]:
    out: list[dict] = []
    for c in plans:
        if len(out) >= limit:
            break
        with contextlib.suppress(Exception):
            meta = storage.read_chunk_meta(c.path)
            for e in meta.get("errors") or []:
                if e.get("method") in names and len(out) < limit:
                    out.append(
                        {"chunk": storage.chunk_id(c.scenario_key, *_file_range(c.path)), **e}
                    )
    return out
