"""The data-generating mechanism as a table: every scenario parameter of a run, its value, and
where the value comes from, read from the comments of the scenario presets.

The presets mark values with tags in their comments (``conf/scenario/study.yaml``): ``[CALIBRATED]``
(a conditional parameter solved so the simulated cohort reproduces the article's marginal numbers),
``[STUDY ...]`` (reported by the article) and ``ASSUMPTION`` (the default for an untagged value,
as the preset's header says). A tag on a key's own line wins; otherwise the key takes the tag of
the comment block just above it (a ``# ---- title`` banner applies to every following key at its
indentation until the next block), then the tag of its parent key. A value that differs from the
preset's is reported as set for this run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources

import yaml

from palliasim.sim.errors import ConfigError
from palliasim.sim.scenario import SECTIONS, preset_params, read_scenario_file

__all__ = ["ParameterRow", "SOURCE_LABELS", "flat", "parameter_rows", "preset_tags"]

SOURCE_LABELS = {
    "calibrated": "calibrated to the article",
    "article": "reported by the article",
    "assumed": "assumed",
    "run": "set for this run",
}
_KEY_RE = re.compile(r"^(\s*)([A-Za-z0-9_]+|\"[^\"]+\"|'[^']+')\s*:(.*)$")


def _tag(comment: str) -> str | None:
    if "[CALIBRATED" in comment:
        return "calibrated"
    if "[STUDY" in comment:
        return "article"
    if "ASSUMPTION" in comment:
        return "assumed"
    return None


def _split_comment(rest: str) -> tuple[str, str]:
    """(value text, comment) of the part of a YAML line after ``key:`` (a '#' inside quotes is
    not a comment; the presets never quote one, so a plain split at ' #' is enough)."""
    if "#" not in rest:
        return rest.strip(), ""
    pos = rest.find(" #") if not rest.lstrip().startswith("#") else rest.find("#")
    if pos < 0:
        return rest.strip(), ""
    return rest[:pos].strip(), rest[pos:].strip().lstrip("#").strip()


def _file_tags(text: str) -> dict[str, tuple[str | None, str]]:
    """Dotted key -> (tag or None, comment) for every key of one preset file."""
    out: dict[str, tuple[str | None, str]] = {}
    stack: list[tuple[int, str, str | None]] = []  # (indent, key, tag) of the open parents
    block: dict[int, tuple[str | None, str]] = {}  # indent -> (tag, text) of the comment block
    prev_comment_indent = None  # indent of the previous line if it was a comment
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            prev_comment_indent = None
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if not out and indent == 0:
                continue  # the file's header comment describes the file, not a key
            if prev_comment_indent == indent and indent in block:  # same block, next line
                tag, old = block[indent]
                block[indent] = (tag or _tag(body), f"{old} {body}")
            else:
                block[indent] = (_tag(body), body)
            prev_comment_indent = indent
            continue
        prev_comment_indent = None
        m = _KEY_RE.match(line)
        if not m:
            continue
        key = m.group(2).strip("\"'")
        _, comment = _split_comment(m.group(3))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        for deeper in [i for i in block if i > indent]:
            del block[deeper]  # blocks inside a closed mapping end with it
        above = block.get(indent)
        if above is not None and not above[1].startswith("----"):
            del block[indent]  # a plain comment block describes the next key only
        parent_tag = stack[-1][2] if stack else None
        tag = _tag(comment) or (above[0] if above else None) or parent_tag
        note = comment or (above[1] if above and above[0] else "")
        out[".".join([*(k for _, k, _ in stack), key])] = (tag, note)
        stack.append((indent, key, tag))
    return out


def _read(name: str) -> str:
    return resources.files("palliasim.conf").joinpath("scenario", f"{name}.yaml").read_text()


def preset_tags(name: str = "study") -> dict[str, tuple[str, str, str]]:
    """Dotted key -> (source, comment, preset file that sets it) for a preset, following its
    Hydra ``defaults`` (a later file wins). Untagged keys are ``assumed``."""
    try:
        text = _read(name)
    except (FileNotFoundError, ModuleNotFoundError, OSError) as exc:
        raise ConfigError(f"scenario preset {name!r} not found: {exc}") from None
    raw = yaml.safe_load(text) or {}
    out: dict[str, tuple[str, str, str]] = {}
    for entry in raw.get("defaults", []) or []:
        if entry != "_self_":
            out.update(preset_tags(str(entry)))
    for key, (tag, note) in _file_tags(text).items():
        out[key] = (tag or "assumed", note, name)
    return out


def flat(obj, prefix: str = "") -> dict:
    """Nested mapping -> {dotted key: leaf value}."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


@dataclass(frozen=True)
class ParameterRow:
    section: str
    key: str  # dotted, e.g. survival.os.log_hr
    value: str
    source: str  # a key of SOURCE_LABELS
    note: str  # the preset's comment, or what the preset had


def parameter_rows(config: dict) -> list[ParameterRow]:
    """One row per scenario parameter (leaf) of a run's config, with its source."""
    preset = str(config.get("scenario_name") or "study")
    if config.get("scenario_file"):  # a user's file: sources from the preset it overrides
        try:
            preset = read_scenario_file(config["scenario_file"]).bases[-1]
        except (ConfigError, IndexError):
            pass  # gone or changed since the run: no tags
    try:
        tags = preset_tags(preset)
        base = flat({k: v for k, v in preset_params(preset).items() if k in SECTIONS})
    except ConfigError:  # a scenario that is not a preset (e.g. a user's file): no tags
        tags, base = {}, {}
    run = flat({k: config[k] for k in SECTIONS if k in config and k != "scenario_name"})
    rows = []
    last_note = ""
    for key, value in run.items():
        parts = key.split(".")
        hit = next(
            (
                tags[".".join(parts[:i])]
                for i in range(len(parts), 0, -1)
                if ".".join(parts[:i]) in tags
            ),
            None,
        )
        source, note, origin = hit if hit else ("assumed", "", preset)
        if key in base and not _same(value, base[key]):
            source, note = "run", f"preset {preset}: {base[key]!r}"
        elif key not in base and base:
            source, note = "run", "not in the preset"
        elif origin != "study" and origin == preset and not note:
            note = f"set by preset {preset}"
        if note and note == last_note and source != "run":
            note = "as above"  # a block comment shared by consecutive keys is shown once
        else:
            last_note = note
        rows.append(ParameterRow(parts[0], key, _show(value), source, note))
    return rows


def _show(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)
