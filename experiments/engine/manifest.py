"""The run directory's ``manifest.json`` as a dataclass: what was asked (config, seed, reps,
estimators, design), what ran (one :class:`RunRecord` per call, the chunk table, timings,
hosts) and how it ended (status, error counts and samples, the results file).

Read with :meth:`Manifest.start` (which keeps a resumed run's history) and written atomically
with :meth:`Manifest.write` (storage.write_manifest) during and after the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from palliasim.experiments.engine import storage
from palliasim.experiments.engine.design import DesignPoint
from palliasim.experiments.engine.plain import plain_value
from palliasim.experiments.engine.records import ChunkReply
from palliasim.experiments.settings import RunnerSettings

#: chunk metadata keeps at most this many traceback samples (old and new)
MAX_CHUNK_ERROR_SAMPLES = 6


@dataclass
class RunRecord:
    """One call of ``run_experiment`` on this directory (``runs[i]`` of the manifest)."""

    run: int
    started_at: str
    n_jobs: int
    backend: str
    dask_address: str | None
    chunk_size: int
    reps: int
    methods: list[str]
    status: str = "running"
    finished_at: str | None = None
    computed: list[str] = field(default_factory=list)
    n_errors: int = 0
    seconds: float | None = None
    failed_chunks: dict[str, str] | None = None
    aborted_chunks: list[str] | None = None
    pool_error: str | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("failed_chunks", "aborted_chunks", "pool_error"):
            if self.status != "incomplete":
                d.pop(k)
        return d


@dataclass
class Manifest:
    """The manifest of one run directory; ``runs`` holds earlier runs as read (dicts) and this
    call's :class:`RunRecord` last; ``chunks`` maps chunk id -> its entry (see
    :func:`chunk_entry`)."""

    out_dir: Path
    config: Any
    seed: int
    reps: int
    chunk_size: int
    runner: dict
    estimators: dict
    estimator_hashes: dict
    design: list
    versions: dict
    environment: dict
    started_at: str
    runs: list
    chunks: dict
    status: str = "running"
    finished_at: str | None = None
    n_errors: int | None = None
    n_error_rows: int | None = None
    errors: list | None = None
    failed_chunks: dict | None = None
    aborted_chunks: list | None = None
    results: dict | None = None

    @property
    def current(self) -> RunRecord:
        return self.runs[-1]

    @classmethod
    def start(
        cls,
        out_dir: Path,
        *,
        points: Sequence[DesignPoint],
        specs: Mapping[str, dict],
        hashes: Mapping[str, str],
        runner: RunnerSettings,
        n_jobs: int,
        config: Mapping[str, Any] | None,
        started_at: str,
    ) -> Manifest:
        """The manifest of a new run on ``out_dir``: earlier runs, chunks and outcome kept."""
        old = storage.read_manifest(out_dir) or {}
        runs = list(old.get("runs") or [])
        runs.append(
            RunRecord(
                run=len(runs),
                started_at=started_at,
                n_jobs=n_jobs,
                backend=runner.backend,
                dask_address=runner.dask_address,
                chunk_size=runner.chunk_size,
                reps=runner.reps,
                methods=sorted(specs),
            )
        )
        return cls(
            out_dir=out_dir,
            config=plain_value(config) if config is not None else old.get("config"),
            seed=runner.seed,
            reps=runner.reps,
            chunk_size=runner.chunk_size,
            runner=runner.manifest_entry(),
            estimators=dict(specs),
            estimator_hashes=dict(hashes),
            design=[
                {
                    "label": p.label,
                    "preset": p.scenario.name,
                    "scenario_key": p.key,
                    "n": p.scenario.n,
                    "factors": p.factors,
                }
                for p in points
            ],
            versions=storage.package_versions(),
            environment=storage.environment(),
            started_at=old.get("started_at", started_at),
            runs=runs,
            chunks=dict(old.get("chunks") or {}),
            finished_at=old.get("finished_at"),
            n_errors=old.get("n_errors"),
            n_error_rows=old.get("n_error_rows"),
            errors=old.get("errors"),
            failed_chunks=old.get("failed_chunks"),
            aborted_chunks=old.get("aborted_chunks"),
            results=old.get("results"),
        )

    def as_dict(self) -> dict:
        d = {"palliasim_manifest": storage.FORMAT_VERSION}
        for k, v in asdict(self).items():
            if k == "out_dir":
                continue
            if k == "runs":
                v = [r.as_dict() if isinstance(r, RunRecord) else r for r in self.runs]
            if v is None and k in ("finished_at", "n_errors", "n_error_rows", "errors", "results"):
                continue
            if v is None and k in ("failed_chunks", "aborted_chunks"):
                continue
            d[k] = v
        return d

    def write(self) -> Path:
        return storage.write_manifest(self.out_dir, self.as_dict())


def file_range(path: Path) -> tuple[int, int]:
    """(first, last) replication of a chunk file, from its name."""
    m = storage.CHUNK_RE.match(Path(path).name)
    return int(m.group(1)), int(m.group(2))


def chunk_entry(out_dir: Path, path: Path, meta: Mapping[str, Any]) -> dict:
    """The manifest's entry of one chunk file, from the file's metadata."""
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


def chunk_meta(
    point: DesignPoint,
    plan: storage.ChunkPlan,
    runner: RunnerSettings,
    spec_hashes: Mapping[str, str],
    old: Mapping[str, Any] | None,
    reply: ChunkReply,
    run_no: int,
) -> dict:
    """The metadata stored in a chunk file: the recomputed methods' hashes and errors replace
    the old ones, the history gets this run."""
    old = dict(old or {})
    recomputed = set(plan.methods)
    specs = {m: h for m, h in (old.get("specs") or {}).items() if m not in recomputed}
    specs.update({m: spec_hashes[m] for m in plan.methods})
    ebm = {m: n for m, n in (old.get("errors_by_method") or {}).items() if m not in recomputed}
    ebm.update(reply.errors_by_method)
    errs = [e for e in (old.get("errors") or []) if e.get("method") not in recomputed]
    errs = (errs + [e.as_dict() for e in reply.errors])[:MAX_CHUNK_ERROR_SAMPLES]
    history = list(old.get("history") or [])
    history.append(
        {
            "run": run_no,
            "methods": list(plan.methods),
            "seconds": reply.seconds,
            "finished_at": storage.utc_now(),
            "pid": reply.pid,
            "host": reply.host,
        }
    )
    return {
        "scenario_key": point.key,
        "label": point.label,
        "preset": point.scenario.name,
        "factors": point.factors,
        "first": plan.compute_first,
        "last": plan.compute_last,
        "seed": runner.seed,
        "chunk_size": runner.chunk_size,
        "specs": specs,
        "errors_by_method": ebm,
        "n_errors": int(sum(ebm.values())),
        "errors": errs,
        "history": history,
    }


def error_samples(plans: Sequence[storage.ChunkPlan], names: Sequence[str], limit: int = 10):
    """Up to ``limit`` traceback samples of the requested estimators, from the chunk files."""
    out: list[dict] = []
    for c in plans:
        if len(out) >= limit:
            break
        with contextlib.suppress(Exception):
            meta = storage.read_chunk_meta(c.path)
            for e in meta.get("errors") or []:
                if e.get("method") in names and len(out) < limit:
                    out.append(
                        {"chunk": storage.chunk_id(c.scenario_key, *file_range(c.path)), **e}
                    )
    return out
