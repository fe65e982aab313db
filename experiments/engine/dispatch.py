"""Dispatch: the tasks of a run through a joblib pool (loky, threading) or a Dask cluster,
replies yielded as they finish; BLAS pinned to one thread in every worker; the progress bar.

Backends: ``loky`` (processes, default), ``threading`` (one process; estimator fits are
serialised because warning capture in ``Estimator.fit`` is process-global - use it for
debugging, not speed), ``dask`` (a ``dask.distributed.Client`` on ``dask_address``, or a
``LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True)`` started and closed here).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import joblib
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from palliasim.experiments.engine.records import Reply, Task

_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"depth": 0, "limiter": None}


@contextlib.contextmanager
def single_thread_blas():
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


@contextlib.contextmanager
def backend(name: str, n_jobs: int, dask_address: str | None, quiet: bool):
    """Yields the n_jobs to give Parallel, inside the right joblib configuration."""
    if name != "dask":
        with joblib.parallel_config(backend=name):
            yield n_jobs
        return
    # dask is an optional dependency (palliasim[dask]): imported only when chosen
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


def dispatch(
    worker: Callable[[Task], Reply],
    tasks: Sequence[Task],
    *,
    backend_name: str,
    n_jobs: int,
    dask_address: str | None,
    quiet: bool,
) -> Iterator[Reply]:
    """``worker(task)`` for every task in the pool, replies in completion order. An exception
    here means the pool broke (a worker died, the scheduler was lost)."""
    if not tasks:
        return
    with backend(backend_name, n_jobs, dask_address, quiet) as nj:
        par = joblib.Parallel(
            n_jobs=nj, return_as="generator_unordered", batch_size=1, pre_dispatch="2*n_jobs"
        )
        yield from par(joblib.delayed(worker)(t) for t in tasks)


def progress_bar(total: int, enabled: bool):
    """A tqdm bar over replications on stderr (disabled: a no-op bar)."""
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
