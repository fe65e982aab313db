"""From Hydra/OmegaConf to plain data (the only module that knows both): the composed config as a
resolved dict, the packaged config composed from Python, the scenario of a config, and the
output directory.

Workers never see OmegaConf objects: everything is converted with
``OmegaConf.to_container(resolve=True)`` here, in the parent process, before any compute.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from palliasim.sim.calibrate import apply_solves
from palliasim.sim.scenario import SECTIONS, Scenario

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
    takes, as plain data (a fresh copy: the caller may change it)."""
    return copy.deepcopy(_compose(tuple(override_list(overrides))))


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
    return apply_solves(sc, plain.get("solve"))


def output_dir(settings) -> Path:
    """Absolute output directory: ``out_dir`` if given, else Hydra's run directory (outside a
    Hydra app: ``./outputs``)."""
    if settings.out_dir:
        return Path(settings.out_dir).expanduser().resolve()
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir).resolve()
    return Path.cwd().resolve() / "outputs"


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
