"""From Hydra/OmegaConf to plain data (the only module that knows both): the composed config as a
resolved dict, the packaged config composed from Python, the scenario of a config, and the
output directory.

Workers never see OmegaConf objects: everything is converted with
``OmegaConf.to_container(resolve=True)`` here, in the parent process, before any compute.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from palliasim.sim.calibrate import apply_solves
from palliasim.sim.errors import ConfigError
from palliasim.sim.scenario import SECTIONS, Scenario, is_scenario_path, read_scenario_file

CONFIG_MODULE = "palliasim.conf"


def to_plain(cfg) -> dict:
    """A composed config as plain, resolved Python data."""
    return OmegaConf.to_container(cfg, resolve=True)


def _override_value(v: Any) -> str:
    """A Python value as Hydra override grammar: lists ``[a,b]``, mappings ``{k:v}``, null."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_override_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ",".join(f"{k}:{_override_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def override_list(overrides: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """Command-line overrides (``["reps=20", "estimators=[cox]"]``) or a mapping of them
    (``{"reps": 20, "estimators": ["cox"]}``) as a list of override strings."""
    if isinstance(overrides, Mapping):
        return [f"{k}={_override_value(v)}" for k, v in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return [str(o) for o in overrides]


def compose(overrides: Sequence[str] | Mapping[str, Any] = ()) -> dict:
    """The packaged config (``pkg://palliasim.conf``) composed with the same overrides the CLI
    takes, as plain data (a fresh copy: the caller may change it); ``scenario=PATH`` as at the
    CLI (:func:`scenario_files`)."""
    given = override_list(overrides)
    if not any(_scenario_file_value(o) for o in given):
        return copy.deepcopy(_compose(tuple(given)))
    with tempfile.TemporaryDirectory(prefix="palliasim-scenario-") as tmp:
        return copy.deepcopy(_compose(tuple(scenario_files(given, Path(tmp)))))


def _unquote(v: str) -> str:
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def _scenario_file_value(override: str) -> list[str]:
    """The file paths of a ``scenario=PATH`` override (``scenario=a.yaml,b.yaml`` in a
    multirun sweep), or [] (a preset, or another key)."""
    key, sep, val = override.partition("=")
    if not sep or key.strip().lstrip("+") != "scenario":
        return []
    parts = [_unquote(v) for v in val.split(",")]
    return parts if parts and all(is_scenario_path(v) for v in parts) else []


def scenario_files(overrides: Sequence[str], workdir: Path) -> list[str]:
    """``scenario=PATH`` (a YAML file outside the package) as a config-group option Hydra can
    compose: the file is read and validated (:func:`sim.scenario.read_scenario_file`, a
    ConfigError naming the path or key), written to ``workdir/scenario/<name>.yaml`` as a
    preset would be (``defaults: [<its base>, _self_]``, its keys, ``scenario_name`` and the
    ``scenario_file`` it came from), the override becomes ``scenario=<name>`` and
    ``hydra.searchpath`` gains ``workdir``. Command-line keys (``cohort.n=400``) still win over
    the file, as over a preset; other overrides are returned unchanged."""
    out: list[str] = []
    written: dict[str, Path] = {}
    for o in overrides:
        paths = _scenario_file_value(o)
        if not paths:
            out.append(o)
            continue
        names = []
        for given in paths:
            f = read_scenario_file(given)
            if f.name in written and written[f.name] != f.path:
                raise ConfigError(
                    f"invalid value '{given}' for config key 'scenario': its name '{f.name}' is "
                    f"also that of {written[f.name]}; set scenario_name in one of them"
                )
            written[f.name] = f.path
            doc = {
                "defaults": [*f.bases, "_self_"],
                "scenario_name": f.name,
                "scenario_file": str(f.path),
                **f.sections,
            }
            target = workdir / "scenario" / f"{f.name}.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("# @package _global_\n" + yaml.safe_dump(doc, sort_keys=False))
            names.append(f.name)
        key = o.partition("=")[0]
        out.append(f"{key}={','.join(names)}")
    if not written:
        return out
    entry = f"file://{workdir.resolve()}"
    for i, o in enumerate(out):
        key, _, val = o.partition("=")
        if key.strip().lstrip("+") == "hydra.searchpath":
            inner = val.strip()
            inner = inner[1:-1] if inner.startswith("[") and inner.endswith("]") else inner
            out[i] = f"{key}=[{','.join(x for x in (inner, entry) if x.strip())}]"
            return out
    return [*out, f"hydra.searchpath=[{entry}]"]


@functools.lru_cache(maxsize=64)
def _compose(overrides: tuple[str, ...]) -> dict:
    """Compose once per list of overrides; Hydra's global state is restored afterwards (also
    inside a Hydra app)."""
    backup = GlobalHydra.instance().is_initialized()
    if backup:  # e.g. called from a Hydra app: compose with the packaged config on the side
        saved = GlobalHydra.instance().hydra
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return to_plain(hydra_compose("config", overrides=list(overrides)))
    finally:
        if backup:
            GlobalHydra.instance().initialize(saved)


def scenario_from(plain: Mapping[str, Any]) -> Scenario:
    """The validated scenario described by the DGM sections of a config, after the config's
    ``solve:`` entries (marginal targets turned into conditional parameters, sim/calibrate.py)."""
    sc = Scenario.from_dict({k: plain[k] for k in SECTIONS if k in plain})
    solves = plain.get("solve")
    try:
        return apply_solves(sc, solves)
    except ConfigError:
        raise
    except ValueError as exc:  # e.g. a target the bracket does not enclose: the user's input
        i = next(
            (
                i
                for i, e in enumerate(solves or [])
                if isinstance(e, Mapping) and str(e.get("key")) in str(exc)
            ),
            0,
        )
        raise ConfigError(
            f"invalid value {solves[i].get('bracket')!r} for config key 'solve[{i}].bracket': "
            f"{exc}; allowed: a bracket [low, high] of solve[{i}].key within which the measure "
            "crosses its target (widen or move it)"
        ) from None


def output_dir(settings) -> Path:
    """Absolute output directory (not created here: the task creates it when it writes, after
    validation): ``out_dir`` if given; in a Hydra multirun the job's sweep directory; else
    ``./outputs/<task>/<UTC time>`` (Hydra itself writes nothing, conf/config.yaml)."""
    if settings.out_dir:
        return Path(settings.out_dir).expanduser().resolve()
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().runtime.output_dir).resolve()
    return default_output_dir(settings.task_name)


def default_output_dir(task: str) -> Path:
    """``./outputs/<task>/<UTC time with microseconds>`` (a fresh directory per call)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S-%f")
    return Path.cwd().resolve() / "outputs" / task / stamp


def command_line_choice(group: str) -> str | None:
    """The option of config group ``group`` given on the command line (``scenario=study``), or
    None (not given, or not under a Hydra app)."""
    if not HydraConfig.initialized():
        return None
    for o in HydraConfig.get().overrides.task:
        key, _, val = o.partition("=")
        if key.lstrip("+~") == group:
            return val
    return None
