"""Scenario: the validated parameters of one design point of the data-generating model.

A scenario is a nested dict of plain values (the top-level sections of `conf/scenario/*.yaml`:
cohort, treatment, confounding, covariates, frailty, nrs, opioid, response, relief, qol,
adverse_events, survival, markers, missingness, truth) wrapped in a frozen dataclass with a
stable content hash: sha256 of the canonical JSON (never Python's salted ``hash()``), so seeds
and the truth cache depend on content, not on names or positions.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from palliasim.sim.errors import ConfigError
from palliasim.sim.validation import validate_params

#: top-level keys of a scenario (everything else in a Hydra config belongs to the runner).
SECTIONS = (
    "scenario_name",
    "cohort",
    "treatment",
    "confounding",
    "covariates",
    "frailty",
    "nrs",
    "opioid",
    "response",
    "relief",
    "qol",
    "adverse_events",
    "survival",
    "markers",
    "missingness",
    "truth",
)

PRESETS = ("study", "randomized", "null", "no_effect")


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if hasattr(obj, "item"):  # numpy scalar
        return _canonical(obj.item())
    raise TypeError(f"unsupported value in scenario: {obj!r} ({type(obj).__name__})")


def _hashable(obj: Any) -> Any:
    """Integral floats as ints: 0 and 0.0 (a command-line override vs a YAML value) hash alike."""
    if isinstance(obj, dict):
        return {k: _hashable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_hashable(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 2**53:
        return int(obj)
    return obj


def content_hash(params: dict) -> str:
    """sha256 hex digest of the canonical JSON of ``params`` (integral floats written as ints)."""
    text = json.dumps(_hashable(_canonical(params)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Scenario:
    """Validated DGM parameters. Build with :func:`load_scenario` or :meth:`from_dict`."""

    params: dict = field(repr=False)
    key: str = ""

    @classmethod
    def from_dict(cls, params: dict) -> Scenario:
        params = _canonical({k: v for k, v in params.items() if k in SECTIONS})
        validate_params(params)
        return cls(params=params, key=content_hash(params))

    @property
    def name(self) -> str:
        return str(self.params.get("scenario_name", "custom"))

    @property
    def n(self) -> int:
        return int(self.params["cohort"]["n"])

    def get(self, dotted: str) -> Any:
        node: Any = self.params
        for part in dotted.split("."):
            node = node[part]
        return node

    def with_overrides(self, overrides: dict[str, Any] | None = None, **kw: Any) -> Scenario:
        """A new validated scenario with dotted-key overrides, e.g. ``{"cohort.n": 500}``."""
        params = copy.deepcopy(self.params)
        for dotted, value in {**(overrides or {}), **kw}.items():
            set_dotted(params, dotted, value)
        return Scenario.from_dict(params)

    def key_ints(self) -> tuple[int, int]:
        """Two 32-bit integers from the content hash, for ``SeedSequence(spawn_key=...)``."""
        return int(self.key[:8], 16), int(self.key[8:16], 16)

    def __getstate__(self):
        return {"params": self.params, "key": self.key}

    def __setstate__(self, state):
        object.__setattr__(self, "params", state["params"])
        object.__setattr__(self, "key", state["key"])


def set_dotted(params: dict, dotted: str, value: Any) -> None:
    """Set ``params[a][b][c] = value`` for ``dotted = "a.b.c"``; unknown paths raise ConfigError."""
    parts = dotted.split(".")
    node = params
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"unknown config key '{where}' (in override '{dotted}')")
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        allowed = ", ".join(sorted(node)) if isinstance(node, dict) else "(none)"
        raise ConfigError(f"unknown config key '{dotted}'; allowed keys here: {allowed}")
    node[parts[-1]] = value


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def preset_params(name: str) -> dict:
    """Raw parameters of a preset in ``conf/scenario/``, following its Hydra ``defaults`` list."""
    if name not in PRESETS:
        raise ConfigError(
            f"scenario='{name}' is not a preset; allowed values: {', '.join(PRESETS)}"
        )
    text = resources.files("palliasim.conf").joinpath("scenario", f"{name}.yaml").read_text()
    raw = yaml.safe_load(text) or {}
    base: dict = {}
    for entry in raw.pop("defaults", []) or []:
        if entry == "_self_":
            continue
        base = deep_merge(base, preset_params(str(entry)))
    return deep_merge(base, raw)


def load_scenario(name: str = "study", overrides: dict[str, Any] | None = None) -> Scenario:
    """Load a preset (study, randomized, null) with optional dotted overrides; validated."""
    params = preset_params(name)
    for dotted, value in (overrides or {}).items():
        set_dotted(params, dotted, value)
    return Scenario.from_dict(params)
