"""Planning a run before anything is computed: the design points and estimator specs checked,
the estimators built once in the parent (errors name ``estimators.<name>``), the chunks left to
compute on resume (storage.plan_chunks) and the truths not yet cached (scheduled first, in the
same pool: they are the longest tasks)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palliasim.estimators.base import KindError, build_estimator, is_import_path, module_root
from palliasim.experiments.engine import storage
from palliasim.experiments.engine.design import DesignPoint
from palliasim.experiments.engine.plain import plain_value
from palliasim.experiments.engine.records import ChunkTask, Task, TruthTask
from palliasim.experiments.settings import RunnerSettings
from palliasim.sim.truth import cache_dir, truth_key


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
        spec = plain_value(spec)
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


def build_estimators(specs: Mapping[str, Mapping[str, Any]], where: str = "estimators") -> dict:
    """Build every estimator (in the parent, before any compute); errors name the estimator
    (``<where>.<name>``, e.g. ``estimators.cox.endpoints`` or ``task.methods.cox.kind``)."""
    built = {}
    for name, spec in normalise_specs(specs).items():
        opts = {k: v for k, v in spec.items() if k != "kind"}
        try:
            built[name] = build_estimator(spec["kind"], name=name, **opts)
        except KindError as exc:
            raise ValueError(
                f"invalid value {exc.kind!r} for key '{where}.{name}.kind': {exc.reason}"
            ) from None
        except (ValueError, TypeError) as exc:
            msg = str(exc)
            if f"{where}.{name}" not in msg:
                msg = f"{where}.{name}: {msg}"
            raise ValueError(msg) from None
    return built


def plugin_paths(built: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``sys.path`` entries the plug-in estimators' modules were imported from (workers add
    the missing ones before building the estimators: a module in the current directory that
    is not installed is found there too)."""
    roots = (module_root(type(est)) for est in built.values())
    return tuple(dict.fromkeys(r for r in roots if r))


def extra_kinds(built: Mapping[str, Any], specs: Mapping[str, Mapping] | None = None) -> dict:
    """Kinds registered outside the ``estimators`` package (shipped to workers). Classes named
    by import path (in ``specs``, or as their kind) are not: the worker imports them by path."""
    out = {}
    for name, est in built.items():
        given = (specs or {}).get(name, {}).get("kind", "")
        if is_import_path(given) or is_import_path(getattr(est, "kind", "")):
            continue
        mod = type(est).__module__
        if not mod.startswith(("palliasim.estimators.", "estimators.")) and mod not in (
            "palliasim.estimators",
            "estimators",
        ):
            out[type(est).kind] = type(est)
    return out


def check_points(points: Sequence[DesignPoint]) -> list[DesignPoint]:
    """The points as a list; ValueError when empty or when two share a scenario or a label."""
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


def uncached_truths(points: Sequence[DesignPoint]) -> list[TruthTask]:
    """One task per distinct truth (scenarios sharing an outcome model share it) not cached."""
    tasks, seen = [], set()
    for p in points:
        tkey = truth_key(p.scenario)
        if tkey not in seen and not (cache_dir() / f"{tkey}.json").exists():
            seen.add(tkey)
            tasks.append(TruthTask(tkey, p.scenario))
    return tasks


@dataclass(frozen=True)
class RunPlan:
    """Every planned chunk (``chunks``), those with something to compute (``todo``) and the
    truths to compute (``truths``)."""

    chunks: tuple[storage.ChunkPlan, ...]
    todo: tuple[storage.ChunkPlan, ...]
    truths: tuple[TruthTask, ...]

    @property
    def n_compute(self) -> int:
        """Replications to compute (the progress bar's total)."""
        return sum(c.n_compute for c in self.todo)

    def tasks(
        self,
        points: Sequence[DesignPoint],
        specs: Mapping[str, dict],
        runner: RunnerSettings,
        kinds: Mapping[str, type],
        paths: Sequence[str] = (),
        constants: Mapping[str, dict] | None = None,
        point_specs: Mapping[str, Mapping[str, dict]] | None = None,
    ) -> list[Task]:
        """The truth tasks first, then one :class:`ChunkTask` per chunk to compute, carrying
        its scenario's solved ``constants`` (scenario key -> constants; a key not there is
        solved by the worker), largest first (patients x replications x methods; ties in plan
        order): the pool's last tasks are its shortest, so no worker idles long at the end of
        a call (a power grid mixes n = 100 and n = 7,000). ``point_specs``: scenario key -> the
        specs at that point, instead of ``specs`` (run_experiment's per-point specs). With loky
        the tasks carry this process's pid: the workers end when it dies (worker.watch_parent).
        The order never changes a result (each chunk has its own streams)."""
        constants = constants or {}
        by_key = {p.key: p for p in points}
        parent = os.getpid() if runner.backend == "loky" else None
        chunks = [
            ChunkTask(
                chunk_id=c.chunk_id,
                scenario=by_key[c.scenario_key].scenario,
                specs={m: (point_specs or {}).get(c.scenario_key, specs)[m] for m in c.methods},
                methods=tuple(c.methods),
                first=c.compute_first,
                last=c.compute_last,
                seed=runner.seed,
                extra_kinds=dict(kinds),
                sys_path=tuple(paths),
                serial_fits=runner.backend == "threading",
                parent_pid=parent,
                constants=constants.get(c.scenario_key),
            )
            for c in self.todo
        ]
        chunks.sort(key=lambda t: -t.scenario.n * (t.last - t.first + 1) * len(t.methods))
        truths = [dataclasses.replace(t, parent_pid=parent) for t in self.truths]
        return [*truths, *chunks]


def plan_run(
    out_dir: Path,
    points: Sequence[DesignPoint],
    hashes: Mapping[str, str],
    runner: RunnerSettings,
    per_point: Mapping[str, tuple[Mapping[str, str], int]] | None = None,
) -> RunPlan:
    """What is left to do in ``out_dir`` (call with the run lock held): stale temporary files
    removed, a directory of another seed or chunk grid refused (ValueError). ``per_point``:
    scenario key -> (its estimators' hashes, its reps), instead of ``hashes`` and
    ``runner.reps``."""
    storage.clean_tmp(out_dir)
    storage.check_resume(out_dir, runner.seed, runner.chunk_size)
    keys = list(dict.fromkeys(p.key for p in points))
    chunks = []
    for key in keys:
        h, reps = (per_point or {}).get(key, (hashes, runner.reps))
        chunks += storage.plan_chunks(out_dir, [key], reps, runner.chunk_size, h, seed=runner.seed)
    return RunPlan(
        chunks=tuple(chunks),
        todo=tuple(c for c in chunks if c.methods),
        truths=tuple(uncached_truths(points)),
    )
