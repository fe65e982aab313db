"""The scenarios of a power study: the alternative (``task.scenario`` plus the command line's
scenario overrides, or the composed config when ``scenario=`` was given) and its null twin
(``task.scenario_null``, same overrides except the keys it sets itself)."""

from __future__ import annotations

from palliasim.experiments.settings import PowerSettings
from palliasim.sim.errors import ConfigError
from palliasim.sim.scenario import (
    PRESETS,
    SECTIONS,
    Scenario,
    load_scenario,
    preset_params,
    read_scenario_file,
)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def scenarios(plain: dict, cfg: PowerSettings, explicit: str | None = None):
    """(alternative, null or None, notes): the scenarios of the power study.

    The alternative is ``task.scenario`` (default ``randomized``) plus every scenario key the
    user overrode (the difference between the composed config and its preset), unless the
    command line chose ``scenario=`` explicitly (``explicit``: the chosen preset, see
    config.command_line_choice; then the composed config as is). The null is
    ``task.scenario_null`` with the same overrides except the keys where that preset differs
    from the alternative's preset (its zero effects). A scenario file (``scenario=PATH``) counts
    as its ``base`` preset plus overrides: its own keys reach the null too, except those
    effects. ``task.allocation`` applies to both; ``cohort.n`` is set per grid point.
    """

    composed = {k: plain[k] for k in SECTIONS if k in plain}
    cname = str(composed.get("scenario_name", "custom"))
    notes = []
    overrides: dict = {}
    base = None  # the preset the composed scenario started from (a scenario file: its base)
    if cname in PRESETS:
        base = preset_params(cname)
    elif plain.get("scenario_file"):
        base = read_scenario_file(plain["scenario_file"]).base_params()
    if base is not None:
        preset = _flat(base)
        for k, v in _flat(composed).items():
            if k != "scenario_name" and (k not in preset or preset[k] != v):
                overrides[k] = v
    want = cfg.scenario
    if want is None or explicit is not None or cname != "study" or want == cname:
        base_name = cname
        alt = Scenario.from_dict(composed)
    else:
        base_name = want
        alt = load_scenario(want, overrides)
        notes.append(
            f"scenario: task.scenario={want} (give scenario=... on the command line for another)"
        )
    if cfg.allocation is not None:
        alt = alt.with_overrides({"treatment.allocation": float(cfg.allocation)})
    null = None
    if cfg.type1 and cfg.scenario_null:
        nname = cfg.scenario_null
        npre = _flat(preset_params(nname))
        try:
            own_base = base if base_name == cname and base is not None else None
            bpre = _flat(own_base if own_base is not None else preset_params(base_name))
        except ConfigError:
            bpre = {}
        own = {k for k, v in npre.items() if k not in bpre or bpre[k] != v}
        nover = {k: v for k, v in overrides.items() if k not in own and k != "cohort.n"}
        null = load_scenario(nname, nover)
        if cfg.allocation is not None:
            null = null.with_overrides({"treatment.allocation": float(cfg.allocation)})
        if null.with_overrides({"cohort.n": alt.n}).key == alt.key:
            notes.append("type I error: the scenario is its own null; simulated once")
            null = None
    return alt, null, notes
