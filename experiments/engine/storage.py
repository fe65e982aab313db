"""Run-directory storage: atomic per-chunk Parquet files, resume planning, the manifest.

Layout of a run directory ``out_dir``::

    out_dir/
      manifest.json                       resolved config, seed, versions, timings, n_errors, runs
      results/<scenario_key[:16]>/chunk_<first>-<last>.parquet
      results.parquet                     all rows of the last run, truth attached (runner)
      truth.csv                           the truth used, per scenario (runner)

Chunks. Replications of one design point are cut on a *canonical grid*: chunk k holds reps
``[k * chunk_size, min((k + 1) * chunk_size, reps) - 1]``, whatever the number of workers, so a
resume with the same ``chunk_size`` recomputes exactly the missing chunks. A chunk file holds the
columns ``scenario_key, rep`` + ``estimators.base.ESTIMATE_COLUMNS`` (sorted canonically) and, in
its Parquet schema metadata (key ``palliasim``), the point's label and factors, the seed, the
content hash of each estimator's spec, error counts and the timing of every computation.

Resume rules (see :func:`plan_chunks`):

* a planned chunk whose file exists and holds every requested estimator with the same spec hash
  is reused as is (an existing file of a *longer* range starting at the same rep also serves:
  its rows are filtered to the planned reps);
* an estimator missing from a chunk file, or whose options changed, is computed for that chunk
  alone and merged into the file (other estimators' rows are kept: adding an estimator to a
  finished study costs only the new estimator);
* more replications than before: the new chunks are computed; a previous partial last chunk
  (e.g. ``chunk_75-89`` when going from 90 to 100 reps with chunk_size 25) is superseded by the
  full one (``chunk_75-99``) and left in place (:func:`load_results` drops overlapping rows);
* a different ``chunk_size`` whose grid does not match the files on disk is **refused** with a
  message naming the chunk size on disk (:func:`check_resume`): mixing grids would recompute or
  double-count replications silently. A different seed is refused as well.

Writes are atomic: a temporary file (suffix ``.tmp``) in the same directory, flushed and
fsync'ed, then ``os.replace``; a killed run leaves at most stale ``*.tmp`` files, never a partial
``*.parquet``; they are removed by the next run. One run at a time may write to a directory
(an advisory ``fcntl`` lock on ``out_dir/.lock``, released by the OS if the process dies).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from palliasim.estimators.base import ESTIMATE_COLUMNS
from palliasim.sim.errors import ConfigError
from palliasim.sim.files import TMP_SUFFIX, atomic_write, is_our_tmp

__all__ = [
    "CHUNK_COLUMNS",
    "ChunkPlan",
    "MANIFEST_NAME",
    "RESULTS_NAME",
    "check_out_dir",
    "check_resume",
    "chunk_grid",
    "chunk_id",
    "chunk_path",
    "clean_tmp",
    "load_results",
    "missing_chunks",
    "package_versions",
    "plan_chunks",
    "read_chunk",
    "read_chunk_meta",
    "read_manifest",
    "rows_frame",
    "run_lock",
    "sort_canonical",
    "spec_hash",
    "utc_now",
    "write_chunk",
    "write_manifest",
    "write_parquet",
]

RESULTS_DIR = "results"
MANIFEST_NAME = "manifest.json"
RESULTS_NAME = "results.parquet"
LOCK_NAME = ".lock"
META_KEY = b"palliasim"
FORMAT_VERSION = 1
CHUNK_RE = re.compile(r"^chunk_(\d+)-(\d+)\.parquet$")
SORT_KEYS = ["scenario_key", "rep", "method", "estimand"]

#: columns of a chunk file, in order
CHUNK_COLUMNS = ("scenario_key", "rep", *ESTIMATE_COLUMNS)
_FLOAT = ("estimate", "se", "ci_low", "ci_high", "ci_level", "p_value", "seconds")
_INT = ("rep", "n_used")
_STR = ("scenario_key", "method", "estimand", "status", "message", "engine")

#: packages whose versions go into the manifest
VERSION_PACKAGES = (
    "palliasim",
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "lifelines",
    "joblib",
    "pyarrow",
    "threadpoolctl",
    "dask",
    "distributed",
)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def utc_now() -> str:
    """ISO 8601 UTC time stamp with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that determine the results (None if absent)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except Exception:  # not installed, or metadata unreadable (e.g. a build in progress)
            out[name] = None
    out["python"] = sys.version.split()[0]
    return out


def environment() -> dict[str, Any]:
    return {
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Content hash (16 hex digits) of one estimator spec (kind + options)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def chunk_grid(reps: int, chunk_size: int) -> list[tuple[int, int]]:
    """Canonical chunks ``(first, last)`` (inclusive) covering reps 0 .. reps - 1."""
    if reps < 1 or chunk_size < 1:
        raise ValueError(
            f"reps and chunk_size must be >= 1; got reps={reps}, chunk_size={chunk_size}"
        )
    return [(a, min(a + chunk_size, reps) - 1) for a in range(0, reps, chunk_size)]


def key_dir(out_dir: Path | str, scenario_key: str) -> Path:
    return Path(out_dir) / RESULTS_DIR / scenario_key[:16]


def chunk_id(scenario_key: str, first: int, last: int) -> str:
    """Stable id of a chunk: ``<scenario_key[:16]>/chunk_<first>-<last>``."""
    return f"{scenario_key[:16]}/chunk_{first}-{last}"


def chunk_path(out_dir: Path | str, scenario_key: str, first: int, last: int) -> Path:
    return key_dir(out_dir, scenario_key) / f"chunk_{first}-{last}.parquet"


def clean_tmp(out_dir: Path | str) -> int:
    """Remove temp files left by a killed run (call only while holding :func:`run_lock`)."""
    out_dir = Path(out_dir)
    n = 0
    if not out_dir.exists():
        return 0
    for p in [*out_dir.glob(f".*{TMP_SUFFIX}"), *(out_dir / RESULTS_DIR).glob(f"*/.*{TMP_SUFFIX}")]:
        if not is_our_tmp(p):
            continue  # a user's own file
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_out_dir(out_dir: Path | str, *, key: str = "out_dir") -> None:
    """Refuse (ConfigError naming ``key``, saying what to do) a run directory that cannot be
    written: a file, a read-only directory, or a missing one whose nearest existing parent is
    not writable. Creates nothing."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(
            f"invalid value '{out_dir}' for config key '{key}': it is a file, not a directory; "
            f"give a directory path, e.g. {key}={out_dir.with_name(out_dir.name + '_run')}"
        )
    if out_dir.is_dir():
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise ConfigError(
                f"invalid value '{out_dir}' for config key '{key}': the directory is not "
                f"writable; give a writable {key} (a finished run there can still be re-scored "
                f"with task=score input={out_dir / RESULTS_NAME} out_dir=<another directory>)"
            )
        return
    parent = _existing_parent(out_dir.parent)
    if not parent.is_dir():
        raise ConfigError(
            f"invalid value '{out_dir}' for config key '{key}': {parent} is a file, so the "
            f"directory cannot be created; give a path under a directory"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"invalid value '{out_dir}' for config key '{key}': cannot create it, {parent} is "
            f"not writable; give an {key} under a directory you can write to"
        )


@contextlib.contextmanager
def run_lock(out_dir: Path | str):
    """Exclusive advisory lock on ``out_dir`` (one writer per run directory).

    Raises ConfigError (key ``out_dir``) when another live process holds it. The OS releases
    the lock when the holder dies (even by SIGKILL), so a killed run never blocks a resume.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    fh = open(out_dir / LOCK_NAME, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(
                f"invalid value '{out_dir}' for config key 'out_dir': another palliasim run is "
                "writing to it (it holds out_dir/.lock); wait for that run to finish, then "
                "re-run the same command to resume, or give another out_dir"
            ) from None
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


# --------------------------------------------------------------------------------------------
# chunk frames and files
# --------------------------------------------------------------------------------------------
def rows_frame(columns: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """A chunk DataFrame with the canonical columns and dtypes from a dict of lists."""
    n = len(columns.get("rep", ()))
    data = {}
    for c in CHUNK_COLUMNS:
        v = columns.get(c)
        if v is None:
            v = [None] * n
        if c in _FLOAT:
            data[c] = np.asarray([np.nan if x is None else x for x in v], dtype=np.float64)
        elif c in _INT:
            data[c] = np.asarray(v, dtype=np.int64)
        else:
            data[c] = pd.Series(["" if x is None else str(x) for x in v], dtype=object).to_numpy()
    return pd.DataFrame(data, columns=list(CHUNK_COLUMNS))


def sort_canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by (scenario_key, rep, method, estimand), stable, fresh RangeIndex."""
    return df.sort_values(SORT_KEYS, kind="mergesort").reset_index(drop=True)


def write_parquet(
    path: Path | str, df: pd.DataFrame, meta: Mapping[str, Any] | None = None
) -> Path:
    """Atomically write ``df`` (no index) with optional JSON ``meta`` in the schema metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if meta is not None:
        md = dict(table.schema.metadata or {})
        md[META_KEY] = json.dumps(meta, default=_json_default).encode()
        table = table.replace_schema_metadata(md)
    return atomic_write(path, lambda fh: pq.write_table(table, fh))


def write_chunk(path: Path | str, df: pd.DataFrame, meta: Mapping[str, Any]) -> Path:
    """Atomically write one chunk (canonical columns, sorted) with its metadata."""
    df = sort_canonical(df[list(CHUNK_COLUMNS)])
    return write_parquet(path, df, {"format": FORMAT_VERSION, **meta})


#: chunk files read in this process inside :func:`caching_reads`, keyed by (path, inode,
#: mtime, size): an atomic rewrite (a new inode) or any change misses. The adaptive power loop
#: reads the same files at every step; a plain run reads each file once, so outside the context
#: nothing is kept (a copy of every row would grow with the replications). Bounded by rows held.
_READ_CACHE: dict[tuple, tuple[pd.DataFrame, str]] = {}
_META_CACHE: dict[tuple, str] = {}
READ_CACHE_ROWS = 500_000
_CACHING = {"depth": 0}


@contextlib.contextmanager
def caching_reads():
    """Keep the chunk frames read in this process until the outermost context
    exits, for callers that read the same files repeatedly (task=power's adaptive steps)."""
    _CACHING["depth"] += 1
    try:
        yield
    finally:
        _CACHING["depth"] -= 1
        if _CACHING["depth"] == 0:
            _READ_CACHE.clear()


def _file_id(path: Path | str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.fspath(path), st.st_ino, st.st_mtime_ns, st.st_size)


def read_chunk_meta(path: Path | str) -> dict:
    """The ``palliasim`` metadata of a chunk file (reads the footer only)."""
    fid = _file_id(path)
    text = _META_CACHE.get(fid) if fid is not None else None
    if text is None:
        md = pq.read_schema(path).metadata or {}
        if META_KEY not in md:
            raise ValueError(
                f"{path} is not a palliasim chunk file (no '{META_KEY.decode()}' metadata)"
            )
        text = md[META_KEY].decode()
        if fid is not None:
            if len(_META_CACHE) > 100_000:
                _META_CACHE.clear()
            _META_CACHE[fid] = text
    return json.loads(text)


def read_chunk(path: Path | str) -> tuple[pd.DataFrame, dict]:
    """A chunk's rows (canonical dtypes) and metadata (a copy: callers may change them)."""
    fid = _file_id(path) if _CACHING["depth"] else None
    hit = _READ_CACHE.get(fid) if fid is not None else None
    if hit is None:
        table = pq.read_table(path)
        md = table.schema.metadata or {}
        text = md[META_KEY].decode() if META_KEY in md else "{}"
        df = table.to_pandas()
        df = rows_frame({c: df[c].tolist() for c in CHUNK_COLUMNS if c in df})
        if fid is None:
            return df, json.loads(text)  # not kept: the caller owns the only copy
        if sum(len(f) for f, _ in _READ_CACHE.values()) + len(df) > READ_CACHE_ROWS:
            _READ_CACHE.clear()
        _READ_CACHE[fid] = hit = (df, text)
    return hit[0].copy(), json.loads(hit[1])


def _scan(out_dir: Path | str, scenario_key: str | None = None) -> list[tuple[str, int, int, Path]]:
    """(key16 dir, first, last, path) of every chunk file (optionally of one scenario)."""
    root = Path(out_dir) / RESULTS_DIR
    if not root.exists():
        return []
    dirs = [key_dir(out_dir, scenario_key)] if scenario_key else sorted(root.iterdir())
    out = []
    for d in dirs:
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            m = CHUNK_RE.match(p.name)
            if m:
                out.append((d.name, int(m.group(1)), int(m.group(2)), p))
    return out


# --------------------------------------------------------------------------------------------
# resume planning
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkPlan:
    """One planned chunk of one design point.

    ``first``/``last``: the planned reps; ``path``: the file to read (and to write if anything
    is computed); ``compute_first``/``compute_last``: reps to compute (the file's whole range);
    ``methods``: estimators to compute (empty = complete on disk); ``merge``: True when the file
    exists and the computed rows are merged into it.
    """

    scenario_key: str
    first: int
    last: int
    path: Path
    compute_first: int
    compute_last: int
    methods: tuple[str, ...]
    merge: bool = False

    @property
    def chunk_id(self) -> str:
        return chunk_id(self.scenario_key, self.compute_first, self.compute_last)

    @property
    def n_compute(self) -> int:
        return self.compute_last - self.compute_first + 1 if self.methods else 0


def check_resume(out_dir: Path | str, seed: int, chunk_size: int) -> None:
    """Refuse to resume a run directory with another seed or an incompatible chunk grid.

    Raises ConfigError with the setting on disk and the override that resumes it (``seed=``
    is the top-level key: ``runner.seed`` does not exist).
    """
    out_dir = Path(out_dir)
    files = _scan(out_dir)
    if not files:
        return
    manifest = read_manifest(out_dir) or {}
    old_seed = manifest.get("seed")
    if old_seed is not None and int(old_seed) != int(seed):
        raise ConfigError(
            f"invalid value {seed} for config key 'seed': {out_dir} holds results for "
            f"seed={old_seed}, not this run's seed={seed}. Re-run with seed={old_seed} to resume "
            "that run, or give a new out_dir for this seed"
        )
    off = [(d, a, b) for d, a, b, _ in files if a % chunk_size != 0 or (b - a + 1) > chunk_size]
    if off:
        d, a, b = off[0]
        old = manifest.get("chunk_size")
        hint = f"runner.chunk_size={old}" if old else "the runner.chunk_size used before"
        raise ConfigError(
            f"invalid value {chunk_size} for config key 'runner.chunk_size': {out_dir} holds "
            f"chunks of another grid (e.g. {d}/chunk_{a}-{b}) than runner.chunk_size="
            f"{chunk_size}: resuming would recompute or "
            f"double-count replications. Re-run with {hint} to resume, or give a new out_dir"
        )


def plan_chunks(
    out_dir: Path | str,
    scenario_keys: Iterable[str],
    reps: int,
    chunk_size: int,
    spec_hashes: Mapping[str, str],
    seed: int | None = None,
) -> list[ChunkPlan]:
    """Every planned chunk of every design point, with what (if anything) is left to compute.

    ``spec_hashes``: estimator name -> :func:`spec_hash` of its spec. A chunk file that cannot be
    read is recomputed. A chunk file written with another seed raises ValueError.
    """
    plans: list[ChunkPlan] = []
    wanted = dict(spec_hashes)
    for key in scenario_keys:
        by_first: dict[int, list[tuple[int, Path]]] = {}
        for _, a, b, p in _scan(out_dir, key):
            by_first.setdefault(a, []).append((b, p))
        for first, last in chunk_grid(reps, chunk_size):
            cands = sorted(c for c in by_first.get(first, []) if c[0] >= last)
            new = ChunkPlan(
                key,
                first,
                last,
                chunk_path(out_dir, key, first, last),
                first,
                last,
                tuple(sorted(wanted)),
            )
            if not cands:
                plans.append(new)
                continue
            file_last, path = cands[0]
            try:
                meta = read_chunk_meta(path)
            except Exception:  # unreadable / foreign file: recompute it
                plans.append(
                    ChunkPlan(key, first, last, path, first, file_last, tuple(sorted(wanted)))
                )
                continue
            if seed is not None and meta.get("seed") is not None and int(meta["seed"]) != int(seed):
                raise ConfigError(
                    f"invalid value {seed} for config key 'seed': {path} was computed with "
                    f"seed={meta['seed']}, not this run's seed={seed}. Re-run with "
                    f"seed={meta['seed']} to resume, or give a new out_dir"
                )
            have = meta.get("specs", {})
            todo = tuple(sorted(m for m, h in wanted.items() if have.get(m) != h))
            plans.append(
                ChunkPlan(key, first, last, path, first, file_last, todo, merge=bool(todo))
            )
    return plans


def missing_chunks(
    out_dir: Path | str,
    scenario_keys: Iterable[str],
    reps: int,
    chunk_size: int,
    spec_hashes: Mapping[str, str],
    seed: int | None = None,
) -> list[ChunkPlan]:
    """The planned chunks with something left to compute (see :func:`plan_chunks`)."""
    return [
        p
        for p in plan_chunks(out_dir, scenario_keys, reps, chunk_size, spec_hashes, seed)
        if p.methods
    ]


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def _factor_value(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return v


def load_results(
    out_dir: Path | str,
    scenario_keys: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    reps: int | None = None,
) -> pd.DataFrame:
    """All replication rows stored under ``out_dir/results`` (without the truth).

    Columns: one per factor (dotted key, from each chunk's metadata), ``scenario`` (the design
    point's label), ``scenario_key``, ``rep`` and ``ESTIMATE_COLUMNS``; sorted canonically.
    Rows held by two overlapping files (a superseded partial last chunk) appear once. Optional
    filters: scenario keys, estimator names, replications ``< reps``. The final table of a run,
    with ``true`` / ``true_mcse`` attached, is ``out_dir/results.parquet``.
    """
    keys = set(scenario_keys) if scenario_keys is not None else None
    meths = set(methods) if methods is not None else None
    frames = []
    labels: dict[str, tuple[str, dict]] = {}
    files = _scan(out_dir)
    # longer ranges first, so drop_duplicates keeps the superseding chunk's rows
    files.sort(key=lambda t: (t[0], -(t[2] - t[1]), t[1]))
    for _, _, _, path in files:
        df, meta = read_chunk(path)
        key = meta.get("scenario_key") or (df["scenario_key"].iloc[0] if len(df) else None)
        if key is None or (keys is not None and key not in keys):
            continue
        labels.setdefault(key, (meta.get("label", key[:16]), meta.get("factors", {}) or {}))
        if meths is not None:
            df = df[df["method"].isin(meths)]
        if reps is not None:
            df = df[df["rep"] < reps]
        frames.append(df)
    if not frames:
        base = rows_frame({c: [] for c in CHUNK_COLUMNS})
        return base.assign(scenario=pd.Series(dtype=object))[["scenario", *CHUNK_COLUMNS]]
    df = pd.concat(frames, ignore_index=True)
    df = df.drop_duplicates(subset=SORT_KEYS, keep="first")
    df = sort_canonical(df)
    factor_cols: list[str] = []
    for _, factors in labels.values():
        factor_cols += [k for k in factors if k not in factor_cols]
    out = {}
    for c in factor_cols:
        out[c] = df["scenario_key"].map(
            {k: _factor_value(f.get(c)) for k, (_, f) in labels.items()}
        )
    out["scenario"] = df["scenario_key"].map({k: lab for k, (lab, _) in labels.items()})
    front = pd.DataFrame(out, index=df.index)
    return pd.concat([front, df], axis=1)


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------
def read_manifest(out_dir: Path | str) -> dict | None:
    """The run's manifest, or None if absent or unreadable."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_manifest(out_dir: Path | str, manifest: Mapping[str, Any]) -> Path:
    """Atomically write ``out_dir/manifest.json``."""
    text = json.dumps(manifest, indent=1, default=_json_default, allow_nan=True)
    return atomic_write(Path(out_dir) / MANIFEST_NAME, lambda fh: fh.write(text.encode()))
