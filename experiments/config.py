"""From a Hydra/OmegaConf config to plain, validated objects (the only place that knows both).

Workers never see OmegaConf objects: everything is converted with
``OmegaConf.to_container(resolve=True)`` here, in the parent process, before any compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from palliasim.sim.errors import ConfigError
from palliasim.sim.scenario import SECTIONS, Scenario

TASKS = ("simulate", "calibrate", "export", "analyse", "score", "power", "check", "report")


def to_plain(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def scenario_from(plain: dict) -> Scenario:
    """The validated scenario described by the DGM sections of a config, after the config's
    ``solve:`` entries (marginal targets turned into conditional parameters, sim/calibrate.py)."""
    from palliasim.sim.calibrate import apply_solves

    sc = Scenario.from_dict({k: plain[k] for k in SECTIONS if k in plain})
    return apply_solves(sc, plain.get("solve"))


def estimator_specs(plain: dict) -> dict[str, dict]:
    """``estimators.<name>: {kind: ..., options...}`` -> {name: {kind, **options}}, validated."""
    from palliasim.estimators.base import build_estimator

    specs = plain.get("estimators") or {}
    if not isinstance(specs, dict) or not specs:
        raise ConfigError("no estimators selected; choose some, e.g. estimators=[lmm,cox]")
    out = {}
    for name, spec in specs.items():
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ConfigError(f"config key 'estimators.{name}' must be a mapping with a 'kind'")
        spec = dict(spec)
        kind = spec.pop("kind")
        spec["alpha"] = plain.get("alpha", spec.get("alpha", 0.05))  # one global alpha per run
        try:
            build_estimator(kind, name=name, **spec)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"estimators.{name}: {exc}") from exc
        out[name] = {"kind": kind, **spec}
    return out


def check_common(plain: dict) -> None:
    """Validate the top-level keys shared by all tasks."""
    task = plain["task"]["name"]
    if task not in TASKS:
        raise ConfigError(f"task='{task}' is unknown; allowed values: {', '.join(TASKS)}")
    if not isinstance(plain.get("seed"), int) or plain["seed"] < 0:
        raise ConfigError(
            f"invalid value {plain.get('seed')!r} for config key 'seed'; allowed: an integer >= 0"
        )
    if not isinstance(plain.get("reps"), int) or plain["reps"] < 1:
        raise ConfigError(
            f"invalid value {plain.get('reps')!r} for config key 'reps'; allowed: an integer >= 1"
        )
    a = plain.get("alpha")
    if not isinstance(a, (int, float)) or not 0 < a < 1:
        raise ConfigError(
            f"invalid value {a!r} for config key 'alpha'; allowed: a number in (0, 1)"
        )
    if plain.get("failures") not in ("exclude", "count"):
        raise ConfigError(
            f"invalid value {plain.get('failures')!r} for config key 'failures'; "
            "allowed values: exclude, count"
        )


def output_dir(plain: dict) -> Path:
    """Absolute output directory: ``out_dir`` if given, else Hydra's run directory."""
    if plain.get("out_dir"):
        return Path(plain["out_dir"]).expanduser().resolve()
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir).resolve()
    except Exception:  # not under Hydra (tests, notebooks)
        return Path.cwd().resolve() / "outputs"


def get(plain: dict, dotted: str, default: Any = None) -> Any:
    node: Any = plain
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
