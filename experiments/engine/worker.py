"""What one task does in a worker: a chunk of replications, or the truth of one scenario.

For each replication ``rep`` of a :class:`ChunkTask`, with BLAS pinned to one thread:

1. ``cohort = sim.generate(scenario, rng_for(seed, scenario.key, "data", rep), level=level)`` -
   one data set shared by every estimator (common random numbers: method comparisons are
   paired); ``level`` is the smallest ``sim.generate.LEVELS`` that has every column the chunk's
   estimators read (:func:`chunk_level`: ``os`` for survival tests of OS alone), whose columns
   equal the whole cohort's;
2. for each estimator, in name order: ``est.fit(cohort, rng_for(seed, scenario.key, "estimator",
   rep, name_int(name)))``, or ``est.fit(cohort, None)`` when ``est.uses_rng()`` is False (a
   deterministic fit: the Generator would be built for nothing).

An unexpected exception inside ``fit`` (a programming error) becomes rows with
``status="failed"``, ``message="error: <repr>"`` and a traceback sample; an exception outside a
fit makes the reply ``ok=False`` with the traceback. Workers never raise.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Mapping

from palliasim.estimators.base import ESTIMATE_COLUMNS, FAILED, REGISTRY, Estimate, build_estimator
from palliasim.experiments.engine import constants, storage
from palliasim.experiments.engine.dispatch import single_thread_blas
from palliasim.experiments.engine.records import (
    ChunkReply,
    ChunkTask,
    ConstantsReply,
    ConstantsTask,
    FitError,
    Reply,
    Task,
    TruthReply,
    TruthTask,
)
from palliasim.sim import generate, rng_for, truth
from palliasim.sim.generate import level_for
from palliasim.sim.seeding import name_int

#: message prefix of rows produced by an unexpected exception in ``fit``
ERROR_PREFIX = "error: "
MAX_ERROR_SAMPLES = 3  # tracebacks kept per chunk
_generate = generate  # indirection: tests replace it to simulate a crashing task
_FIT_LOCK = threading.RLock()
PARENT_POLL = 0.5  # seconds between checks that the run's process is alive
_WATCHED: dict[str, int | None] = {"pid": None}


def _register_extra(extra_kinds: Mapping[str, type], paths=()) -> None:
    """Kinds registered outside the package, and the directories of plug-in modules named by
    import path (appended to sys.path when missing, so the worker imports them as the parent
    did, whatever its own start-up path)."""
    for kind, cls in extra_kinds.items():
        REGISTRY.setdefault(kind, cls)
    for p in paths:
        if p not in sys.path:
            sys.path.append(p)


def _f(x) -> float:
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
        "ci_level": _f(r.ci_level),
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
            "ci_level": float("nan"),
            "p_value": float("nan"),
            "n_used": 0,
            "status": FAILED,
            "message": msg,
            "seconds": seconds / len(targets),
            "engine": str(getattr(est, "engine", "")),
        }
        for e in targets
    ]


def chunk_level(ests) -> str:
    """The generation level a chunk's estimators need: the smallest of ``sim.generate.LEVELS``
    with every column of their ``needs()`` (``all`` as soon as one needs the whole cohort)."""
    cols: set[str] = set()
    for _name, est in ests:
        need = est.needs()
        if need is None:
            return "all"
        cols.update(need)
    return level_for(cols)


def run_chunk(task: ChunkTask) -> ChunkReply:
    """Compute one chunk: reps ``first..last`` of one scenario for the listed estimators."""
    t0 = time.perf_counter()
    try:
        _register_extra(task.extra_kinds, task.sys_path)
        scenario, seed = task.scenario, int(task.seed)
        key = scenario.key
        if task.constants is not None:
            constants.prime({scenario.constants_key: task.constants})
        ests = []
        for name in task.methods:  # sorted by name in the parent
            opts = {k: v for k, v in task.specs[name].items() if k != "kind"}
            ests.append((name, build_estimator(task.specs[name]["kind"], name=name, **opts)))
        cols: dict[str, list] = {c: [] for c in storage.CHUNK_COLUMNS}
        errors: list[FitError] = []
        errors_by_method = {name: 0 for name, _ in ests}
        fit_lock = _FIT_LOCK if task.serial_fits else contextlib.nullcontext()
        level = chunk_level(ests)
        gen_kw = {} if level == "all" else {"level": level}
        with single_thread_blas():
            for rep in range(int(task.first), int(task.last) + 1):
                cohort = _generate(scenario, rng_for(seed, key, "data", rep), **gen_kw)
                for name, est in ests:
                    rng_e = (
                        rng_for(seed, key, "estimator", rep, name_int(name))
                        if est.uses_rng()
                        else None
                    )
                    t1 = time.perf_counter()
                    try:
                        with fit_lock:
                            rows = [_row(r) for r in est.fit(cohort, rng_e)]
                    except Exception as exc:  # a programming error: record it, carry on
                        rows = _error_rows(name, est, exc, time.perf_counter() - t1)
                        errors_by_method[name] += 1
                        if len(errors) < MAX_ERROR_SAMPLES:
                            errors.append(
                                FitError(
                                    name, rep, repr(exc)[:1000], traceback.format_exc()[-4000:]
                                )
                            )
                    for r in rows:
                        cols["scenario_key"].append(key)
                        cols["rep"].append(rep)
                        for c in ESTIMATE_COLUMNS:
                            cols[c].append(r[c])
        return ChunkReply(
            chunk_id=task.chunk_id,
            ok=True,
            seconds=time.perf_counter() - t0,
            columns=cols,
            errors_by_method=errors_by_method,
            errors=tuple(errors),
            pid=os.getpid(),
            host=platform.node(),
        )
    except Exception:
        return ChunkReply(
            chunk_id=task.chunk_id,
            ok=False,
            seconds=time.perf_counter() - t0,
            error=traceback.format_exc(),
        )


def run_truth(task: TruthTask) -> TruthReply:
    """Compute (and cache) the truth of one scenario."""
    t0 = time.perf_counter()
    try:
        with single_thread_blas():
            values = truth(task.scenario).values
        return TruthReply(task.truth_key, True, time.perf_counter() - t0, values=values)
    except Exception:
        return TruthReply(
            task.truth_key, False, time.perf_counter() - t0, error=traceback.format_exc()
        )


def run_constants(task: ConstantsTask) -> ConstantsReply:
    """Solve the constants of one scenario (an error is left to the chunks, which report it)."""
    t0 = time.perf_counter()
    try:
        with single_thread_blas():
            values = constants.solve(task.scenario)
        return ConstantsReply(
            task.scenario.constants_key, True, time.perf_counter() - t0, values=values
        )
    except Exception:
        return ConstantsReply(
            task.scenario.constants_key,
            False,
            time.perf_counter() - t0,
            error=traceback.format_exc(),
        )


def watch_parent(pid: int | None) -> None:
    """In a worker process spawned by the run's process ``pid``: a daemon thread that ends this
    worker (``os._exit``) within :data:`PARENT_POLL` seconds of the parent's death (its parent
    pid changes), so a SIGKILLed run leaves no worker computing. Started once per process; a
    no-op in the run's own process (threading backend) or one not spawned by ``pid`` (dask)."""
    if pid is None or pid == os.getpid() or _WATCHED["pid"] == pid or os.getppid() != pid:
        return
    _WATCHED["pid"] = pid

    def loop() -> None:
        while os.getppid() == pid:
            time.sleep(PARENT_POLL)
        os._exit(1)

    threading.Thread(target=loop, name="palliasim-parent-watch", daemon=True).start()


def run_task(task: Task) -> Reply:
    """The worker entry point (a top-level function: picklable by reference)."""
    watch_parent(task.parent_pid)
    if isinstance(task, TruthTask):
        return run_truth(task)
    if isinstance(task, ConstantsTask):
        return run_constants(task)
    return run_chunk(task)
