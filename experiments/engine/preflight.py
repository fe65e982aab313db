"""Pre-flight: what can be checked before any worker starts, in the parent process, each
failure a ConfigError naming the key (exit code 2 at the CLI), nothing written:

* size limits: the estimated memory of one cohort per worker (``BYTES_PER_PATIENT x cohort.n x
  workers`` against the machine's physical memory), the number of chunk tasks
  (``design points x ceil(reps / chunk_size)``, before the chunk list is built) and the
  estimated compute time (``points x reps x cohort.n x (SECONDS_PER_PATIENT_DRAW +
  estimators x SECONDS_PER_PATIENT_FIT) / workers``); the estimate is in the message;
* the scenario constants of every design point (sim.generate.constants: the propensity and
  dropout intercepts solved on the DGM's fixed-seed sample), so an unreachable missing fraction
  (e.g. strong MAR) or nobody alive at week 12 is refused here, not inside the workers;
* a dask scheduler address, probed with a short TCP connect.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from palliasim.sim.errors import ConfigError
from palliasim.sim.generate import constants

#: memory of one replication per patient in a worker: the cohort's arrays and tables plus the
#: estimators' long-format frames and design matrices (generous: the cohort alone is ~0.6 kB)
BYTES_PER_PATIENT = 10_000
#: seconds to draw one patient (measured: 200,000 patients in ~5 s on one core)
SECONDS_PER_PATIENT_DRAW = 2.5e-5
#: seconds per patient and estimator fit (a lower estimate: the cheap tests are faster, MI and
#: MMRM much slower)
SECONDS_PER_PATIENT_FIT = 1e-5
#: at most this many chunk tasks in one run (each is a planned record in memory)
MAX_CHUNKS = 2_000_000
#: refuse runs estimated to need more wall time than this with the chosen workers
MAX_SECONDS = 30 * 24 * 3600.0
#: seconds to wait for a dask scheduler to accept a connection
DASK_TIMEOUT = 3.0


def physical_memory() -> int | None:
    """Bytes of physical memory (None where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return None


def _human_bytes(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if b < 1000 or unit == "PB":
            return f"{b:,.0f} {unit}" if unit == "B" else f"{b:,.1f} {unit}"
        b /= 1000
    return f"{b:.1f} PB"  # pragma: no cover


def _human_seconds(s: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if s >= size:
            return f"{s / size:,.1f} {unit}"
    return f"{s:,.0f} s"


def check_limits(
    sizes: Sequence[int], reps: int, chunk_size: int, n_estimators: int, workers: int
) -> None:
    """Refuse a run whose cohorts do not fit in memory, whose chunk list is too long or whose
    estimated compute time is beyond :data:`MAX_SECONDS` (``sizes``: cohort.n of each point)."""
    biggest = max(sizes)
    mem = physical_memory()
    need = BYTES_PER_PATIENT * biggest * workers
    if mem is not None and need > mem:
        raise ConfigError(
            f"invalid value {biggest} for config key 'cohort.n': one replication per worker "
            f"needs about {_human_bytes(need)} ({BYTES_PER_PATIENT:,} bytes per patient x "
            f"{biggest:,} patients x {workers} worker(s)), more than this machine's "
            f"{_human_bytes(mem)}; allowed: cohort.n <= {mem // (BYTES_PER_PATIENT * workers):,} "
            "with these workers (or fewer runner.n_jobs)"
        )
    n_chunks = sum(math.ceil(reps / chunk_size) for _ in sizes)
    if n_chunks > MAX_CHUNKS:
        raise ConfigError(
            f"invalid value {reps} for config key 'reps': {len(sizes)} design point(s) x "
            f"ceil({reps:,} / runner.chunk_size={chunk_size}) = {n_chunks:,} chunk tasks, more "
            f"than {MAX_CHUNKS:,}; allowed: fewer reps or a larger runner.chunk_size "
            "(re-running with more reps in the same out_dir adds only the new ones)"
        )
    per_patient = SECONDS_PER_PATIENT_DRAW + n_estimators * SECONDS_PER_PATIENT_FIT
    seconds = reps * sum(sizes) * per_patient / max(workers, 1)
    if seconds > MAX_SECONDS:
        raise ConfigError(
            f"invalid value {reps} for config key 'reps': the run would take about "
            f"{_human_seconds(seconds)} with {workers} worker(s) ({len(sizes)} point(s) x "
            f"{reps:,} reps x {sum(sizes) // len(sizes):,} patients x "
            f"{per_patient:.1e} s per patient with {n_estimators} estimator(s)), beyond the "
            f"limit of {_human_seconds(MAX_SECONDS)}; allowed: fewer reps, a smaller "
            "cohort.n or grid, or more workers (more reps can be added later by re-running "
            "in the same out_dir)"
        )


def check_scenarios(points) -> None:
    """Solve every design point's scenario constants in the parent (ConfigError naming the
    key, e.g. ``missingness.target_week12`` unreachable, with the point's label)."""
    for p in points:
        try:
            constants(p.scenario)
        except ConfigError as exc:
            where = f" (design point {p.label})" if len(points) > 1 else ""
            raise ConfigError(f"{exc}{where}") from None


def check_dask(address: str | None) -> None:
    """A dask scheduler address must accept a TCP connection within :data:`DASK_TIMEOUT` s."""
    if not address:
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if parts.scheme not in ("tcp", "tls") or not host or not port:
        raise ConfigError(
            f"invalid value {address!r} for config key 'runner.dask_address'; allowed: a "
            "scheduler address tcp://host:port (or null: a local cluster)"
        )
    try:
        with socket.create_connection((host, port), timeout=DASK_TIMEOUT):
            pass
    except OSError as exc:
        raise ConfigError(
            f"invalid value {address!r} for config key 'runner.dask_address': no dask "
            f"scheduler answers there within {DASK_TIMEOUT:g} s ({exc}); start one "
            "(dask scheduler) or use runner.dask_address=null for a local cluster"
        ) from None
