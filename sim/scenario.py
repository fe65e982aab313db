"""Scenario: the validated parameters of one design point of the data-generating model.

A scenario is a nested dict of plain values (the top-level sections of `conf/scenario/*.yaml`:
cohort, treatment, confounding, covariates, frailty, nrs, opioid, response, relief, qol,
adverse_events, survival, markers, missingness, truth) wrapped in a frozen dataclass with a
stable content hash: sha256 of the canonical JSON (never Python's salted ``hash()``), so seeds
and the truth cache depend on content, not on names or positions.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
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

    @functools.cached_property
    def constants_key(self) -> str:
        """Content hash of the parameters without ``cohort.n``: the key of the scenario's
        derived constants (``sim.generate.constants``), which do not depend on the cohort size,
        so every size of a power grid shares one solve (and the same intercepts)."""
        params = {
            **self.params,
            "cohort": {k: v for k, v in self.params["cohort"].items() if k != "n"},
        }
        return content_hash(params)

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


#: keys of a scenario file besides SECTIONS: the preset(s) it overrides (``base: randomized``,
#: or a preset's own ``defaults: [randomized, _self_]`` list; neither: ``study``)
FILE_KEYS = ("base", "defaults")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def is_scenario_path(name: Any) -> bool:
    """Whether a ``scenario=`` value names a file (contains a '/' or ends in .yaml / .yml)
    rather than a preset."""
    return isinstance(name, (str, os.PathLike)) and (
        "/" in str(name) or "\\" in str(name) or str(name).endswith((".yaml", ".yml"))
    )


class _FileLoader(yaml.SafeLoader):
    """YAML as Hydra reads a config (OmegaConf's loader): ``1e-5`` is a float, not a string,
    so a scenario file means the same to :func:`read_scenario_file` and to the CLI."""


_FileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
        |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class ScenarioFile:
    """A user's scenario YAML outside the package, validated like a preset (:func:`read_scenario_file`).

    ``name`` is its ``scenario_name`` (default: the file stem; never a preset's name), ``bases``
    the presets it overrides, ``sections`` its own keys, ``params`` the merged, validated
    parameters (bases, then the file, then ``scenario_name``)."""

    path: Path
    name: str
    bases: tuple[str, ...]
    sections: dict
    params: dict = field(repr=False)

    def base_params(self) -> dict:
        """The parameters of the presets the file overrides (merged in order)."""
        params: dict = {}
        for b in self.bases:
            params = deep_merge(params, preset_params(b))
        return params


def read_scenario_file(path: str | os.PathLike, relative_to: str | os.PathLike | None = None):
    """Read and validate a scenario file (ConfigError naming the path and the key): top-level
    keys among the scenario sections plus ``base`` / ``defaults``; the merged scenario is
    checked exactly like a preset (:func:`validation.validate_params`). A relative ``path`` is
    taken relative to ``relative_to`` (default: the current directory)."""
    given = str(path)
    p = Path(path).expanduser()
    if not p.is_absolute() and relative_to is not None:
        p = Path(relative_to) / p
    p = p.resolve()
    where = f"scenario file {given}"
    if not p.is_file():
        raise ConfigError(
            f"invalid value '{given}' for config key 'scenario': no such file ({p}); allowed: "
            f"a preset ({', '.join(PRESETS)}) or a path to a YAML file"
        )
    try:
        raw = yaml.load(p.read_text(), Loader=_FileLoader)  # noqa: S506 (a safe loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where} cannot be read as YAML: {' '.join(str(exc).split())}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where} must be a mapping of scenario sections (cohort, treatment, ...); got "
            f"{type(raw).__name__}"
        )
    unknown = sorted(str(k) for k in set(raw) - {*SECTIONS, *FILE_KEYS})
    if unknown:
        raise ConfigError(
            f"unknown config key '{unknown[0]}' in {where}; allowed keys: "
            f"{', '.join(sorted((*SECTIONS, *FILE_KEYS)))}"
        )
    if "base" in raw and "defaults" in raw:
        raise ConfigError(f"{where}: give either 'base' or 'defaults', not both")
    bases = raw.get("base", "study") if "defaults" not in raw else raw["defaults"]
    key = "defaults" if "defaults" in raw else "base"
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list):
        bases = [bases]
    bases = [b for b in bases if b != "_self_"]
    for i, b in enumerate(bases):
        if b not in PRESETS:
            hint = " (YAML reads an unquoted null as nothing: write 'null')" if b is None else ""
            raise ConfigError(
                f"invalid value {b!r} for config key '{key}{'' if key == 'base' else f'[{i}]'}' "
                f"in {where}; allowed values: {', '.join(PRESETS)}{hint}"
            )
    name = raw.get("scenario_name", p.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in PRESETS:
        what = "scenario_name" if "scenario_name" in raw else "its file name"
        raise ConfigError(
            f"invalid value {name!r} for config key 'scenario_name' ({what}) in {where}: the "
            "name recorded in the outputs must be a letter then letters, digits, '_' or '-', "
            f"and not a preset's name ({', '.join(PRESETS)}); rename the file or set "
            "scenario_name in it"
        )
    sections = {k: v for k, v in raw.items() if k in SECTIONS and k != "scenario_name"}
    f = ScenarioFile(p, name, tuple(bases), sections, {})
    params = deep_merge(f.base_params(), sections)
    params["scenario_name"] = name
    try:
        Scenario.from_dict(params)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    object.__setattr__(f, "params", params)
    return f


def preset_params(name: str) -> dict:
    """Raw parameters of a preset in ``conf/scenario/``, following its Hydra ``defaults`` list,
    or of a scenario file (a path, :func:`read_scenario_file`)."""
    if is_scenario_path(name):
        return copy.deepcopy(read_scenario_file(name).params)
    if name not in PRESETS:
        raise ConfigError(
            f"scenario='{name}' is not a preset; allowed values: {', '.join(PRESETS)}, or a "
            "path to a YAML file"
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
    """Load a preset (study, randomized, null) or a scenario file (a path: its keys over
    ``study`` or the preset it names as ``base``) with optional dotted overrides; validated."""
    params = preset_params(name)
    for dotted, value in (overrides or {}).items():
        set_dotted(params, dotted, value)
    return Scenario.from_dict(params)
