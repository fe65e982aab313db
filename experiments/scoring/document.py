"""report.html and report.md of a finished run, structured by ADEMP (Morris, White & Crowther
2019, Stat Med 38:2074): Aims, Data-generating mechanisms, Estimands, Methods, Performance
measures, then the plots and a provenance footer.

    from palliasim.experiments.scoring.document import write_report
    write_report(run_dir)                      # everything read from the run directory
    write_report(out, kind="simulate", config=plain, results=res, perf=perf)   # from a task

What is read from the run directory (anything passed in wins): ``manifest.json`` (resolved config,
seed, versions, timings; for a check suite the manifests under ``runs/``), ``performance.csv``,
``truth.csv``, ``results.parquet`` (failure messages), ``power.csv`` / ``sample_size.csv``
(power), ``checks.csv`` (check) and ``plots/*.png`` / ``*.png``. The HTML is one self-contained
file: inline CSS, plots embedded as base64 PNG ``data:`` URIs, no script and no network resource.
The Markdown twin links the PNG files by relative path (GitHub renders them next to the file).
Templates: ``templates/report.html.j2`` and ``templates/report.md.j2`` (Jinja2).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from palliasim.experiments.scoring import definitions
from palliasim.experiments.scoring.parameters import SOURCE_LABELS, flat, parameter_rows
from palliasim.experiments.scoring.summary import ENDPOINTS, FLAG_NAMES, flag_table, order_rows
from palliasim.sim.errors import ConfigError
from palliasim.sim.files import atomic_write_text
from palliasim.sim.scenario import PRESETS, SECTIONS, preset_params, set_dotted

__all__ = ["KINDS", "RunData", "build_context", "load_run", "render", "write_report"]

KINDS = ("simulate", "power", "check")
TEMPLATES = Path(__file__).parent / "templates"
#: plots in reading order (others follow alphabetically), with captions
PLOT_CAPTIONS = {
    "bias": "Bias with 95% Monte Carlo intervals, per estimand and method.",
    "coverage": "Coverage of the nominal confidence intervals with Monte Carlo intervals.",
    "rejection": "Rejection rate (power, or type I error where the true value is 0).",
    "zip": "Zip plot: every replication's confidence interval, ranked by its fractional "
    "centile of |z| (Morris et al. 2019, Fig. 4).",
    "nested_loop": "Nested-loop plot over the design factors.",
    "power_curves": "Simulated power curves with exact 95% intervals and the analytic formulas.",
    "example_cohort": "One simulated cohort: Kaplan-Meier curves and pain trajectories.",
}
AIMS_DEFAULT = {
    "simulate": "Evaluate {n_methods} analysis method(s) for {n_estimands} estimand(s) of the "
    "'{preset}' scenario by simulation: bias, precision, coverage and rejection, each with its "
    "Monte Carlo SE.",
    "power": "Plan the randomized trial: power and required sample size per endpoint by "
    "simulation, next to the closed-form formulas.",
    "check": "Guard estimators in CI: bias, coverage, type I error and failure-rate checks with "
    "multiplicity control (suite '{suite}').",
}
PERF_COLUMNS = (
    ("n used", "n_used", None),
    ("n failed", "n_failed", None),
    ("bias", "bias", "bias_mcse"),
    ("coverage", "coverage", "coverage_mcse"),
    ("EmpSE", "empse", "empse_mcse"),
    ("ModSE", "modse", "modse_mcse"),
    ("ModSE rel. error %", "relerror", "relerror_mcse"),
    ("rejection", "rejection", "rejection_mcse"),
    ("MSE", "mse", "mse_mcse"),
    ("rel. bias", "rel_bias", "rel_bias_mcse"),
    ("BE coverage", "becoverage", "becoverage_mcse"),
    ("CI width", "ci_width", None),
)
POWER_COLUMNS = (
    "scenario",
    "endpoint",
    "method",
    "n",
    "reps",
    "power",
    "power_mcse",
    "ci_low",
    "ci_high",
    "analytic_power",
    "analytic_method",
    "n_failed",
)
SIZE_COLUMNS = (
    "endpoint",
    "method",
    "target_power",
    "n_required",
    "ci_low",
    "ci_high",
    "how",
    "formula_n",
    "formula_method",
)
CHECK_COLUMNS = (
    "verdict",
    "check",
    "scenario",
    "method",
    "estimand",
    "figure_name",
    "figure",
    "mcse",
    "threshold",
    "p_adjusted",
    "reason",
)


@dataclass
class RunData:
    """Everything a report needs from a run (read from its directory or handed in)."""

    out_dir: Path
    kind: str
    config: dict
    manifest: dict
    perf: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None
    results: pd.DataFrame | None = None
    tables: dict = field(default_factory=dict)  # file name -> DataFrame (power / check outputs)
    plots: list = field(default_factory=list)  # PNG paths
    manifests: list = field(default_factory=list)  # sub-run manifests (check suites)


# --------------------------------------------------------------------------------------------
# reading a run directory
# --------------------------------------------------------------------------------------------
def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, keep_default_na=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None


def _detect_kind(out: Path, manifest: dict) -> str | None:
    task = ((manifest.get("config") or {}).get("task") or {}).get("name")
    if task in KINDS:
        return task
    if (out / "checks.csv").is_file():
        return "check"
    if (out / "power.csv").is_file():
        return "power"
    if (out / "performance.csv").is_file() or (out / "results.parquet").is_file():
        return "simulate"
    return None


def load_run(
    run_dir: str | Path,
    kind: str | None = None,
    *,
    config: dict | None = None,
    results: pd.DataFrame | None = None,
    perf: pd.DataFrame | None = None,
    manifest: dict | None = None,
) -> RunData:
    """A :class:`RunData` from a finished run directory (ConfigError if it is not one)."""
    out = Path(run_dir).expanduser().resolve()
    if not out.is_dir():
        raise ConfigError(f"input={out} is not a directory (a finished run's out_dir)")
    manifest = dict(manifest) if manifest is not None else _json(out / "manifest.json")
    kind = kind or _detect_kind(out, manifest)
    if kind not in KINDS:
        raise ConfigError(
            f"input={out} is not a finished run directory: no manifest.json of a known task and "
            "none of performance.csv, results.parquet, power.csv, checks.csv; "
            f"allowed kinds: {', '.join(KINDS)}"
        )
    cfg = dict(config if config is not None else manifest.get("config") or {})
    run = RunData(out, kind, cfg, manifest)
    run.perf = perf if perf is not None else _csv(out / "performance.csv")
    run.truth = _csv(out / "truth.csv")
    if results is not None:
        run.results = results
    elif (out / "results.parquet").is_file():
        try:
            run.results = pd.read_parquet(
                out / "results.parquet", columns=["method", "estimand", "status", "message"]
            )
        except (OSError, ValueError, KeyError):
            run.results = None
    for name in ("power.csv", "sample_size.csv", "checks.csv"):
        t = _csv(out / name)
        if t is not None:
            run.tables[name] = t
    if kind == "check":
        run.manifests = [_json(p) for p in sorted(out.glob("runs/*/*/*/manifest.json"))]
        for m in run.manifests:  # the suite's runs carry {"suite": ..., "scenario": ...}
            for k, v in (m.get("config") or {}).items():
                if k != "scenario":
                    run.config.setdefault(k, v)
        truths = [_csv(p) for p in sorted(out.glob("runs/*/*/*/truth.csv"))]
        truths = [t for t in truths if t is not None]
        if truths and run.truth is None:
            run.truth = pd.concat(truths, ignore_index=True)
    pngs = sorted((out / "plots").glob("*.png")) + sorted(out.glob("*.png"))
    run.plots = sorted(pngs, key=_plot_rank)
    return run


def _plot_rank(p: Path) -> tuple[int, str]:
    order = list(PLOT_CAPTIONS)
    stem = p.stem
    hit = next((i for i, k in enumerate(order) if stem == k or stem.startswith(k + "_")), None)
    return (len(order) if hit is None else hit, stem)


# --------------------------------------------------------------------------------------------
# formatting helpers
# --------------------------------------------------------------------------------------------
def _num(x, digits: int = 3) -> str:
    if x is None or isinstance(x, str):
        return "" if x is None else x
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "-"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 10 ** (-digits)):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def _pm(est, mcse) -> str:
    e = _num(est)
    if e in ("-", ""):
        return "-"
    m = _num(mcse)
    return e if m in ("-", "") else f"{e} ({m})"


def _table(columns, rows, row_classes=None, note: str = "") -> dict:
    return {
        "columns": list(columns),
        "rows": [[str(c) for c in r] for r in rows],
        "classes": list(row_classes or [""] * len(rows)),
        "note": note,
    }


def _frame_table(df: pd.DataFrame, columns) -> dict:
    cols = [c for c in columns if c in df.columns] or list(df.columns)[:12]
    return _table(
        cols,
        [
            [_num(v) if not isinstance(v, str) else v for v in r]
            for r in df[cols].itertuples(index=False)
        ],
    )


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def config_hash(config: dict) -> str:
    """SHA-256 of the resolved config as canonical JSON (sorted keys)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# the sections
# --------------------------------------------------------------------------------------------
def _aims(run: RunData) -> dict:
    desc = run.config.get("description") or run.manifest.get("description")
    perf = run.perf
    fill = {
        "n_methods": perf["method"].nunique() if perf is not None else 0,
        "n_estimands": perf["estimand"].nunique() if perf is not None else 0,
        "preset": run.config.get("scenario_name") or "?",
        "suite": run.config.get("suite") or "?",
    }
    default = AIMS_DEFAULT[run.kind].format(**fill)
    return {
        "text": str(desc).strip() if desc else default,
        "from_config": bool(desc),
        "note": ""
        if desc
        else "No `description` key in the run's config: the aim above is "
        "palliasim's generic one. Set `description=...` to state the study's own aims.",
    }


def _design_points(run: RunData) -> list[dict]:
    points = []
    sources = [run.manifest, *run.manifests]
    for m in sources:
        for p in m.get("design") or []:
            points.append(p)
    return points


def _scenario_config(run: RunData, points: list[dict]) -> tuple[dict, str]:
    """The scenario parameters the run simulated. task=power composes ``study`` and then
    simulates ``task.scenario`` (default ``randomized``) with the keys the user overrode: rebuild
    that from the preset named by the design points."""
    cfg = run.config
    composed = str(cfg.get("scenario_name") or "")
    presets = list(dict.fromkeys(str(p.get("preset", "")) for p in points))
    want = ((cfg.get("task") or {}).get("scenario")) if run.kind == "power" else None
    if not want or want == composed or want not in presets or composed not in PRESETS:
        return cfg, ""
    base = flat(preset_params(composed))
    params = preset_params(want)
    for key, value in flat({k: cfg[k] for k in SECTIONS if k in cfg}).items():
        if key != "scenario_name" and key in base and base[key] != value:
            set_dotted(params, key, value)  # the user's override, as task=power applies it
    alloc = (cfg.get("task") or {}).get("allocation")
    if alloc is not None:
        set_dotted(params, "treatment.allocation", float(alloc))
    null = (cfg.get("task") or {}).get("scenario_null")
    note = (
        f"task=power simulated preset '{want}' (task.scenario) with the keys overridden on the "
        "command line; cohort.n is replaced by the sample-size grid"
        + (f"; the type I error uses preset '{null}'." if null else ".")
    )
    return {**cfg, **params, "scenario_name": want}, note


def _dgm(run: RunData) -> dict:
    points = _design_points(run)
    pts = _table(
        ["design point", "preset", "n", "factors", "scenario key"],
        [
            [
                p.get("label", ""),
                p.get("preset", ""),
                p.get("n", ""),
                ", ".join(f"{k} = {v}" for k, v in (p.get("factors") or {}).items()) or "-",
                str(p.get("scenario_key", ""))[:16],
            ]
            for p in points
        ],
    )
    has_scenario = any(k in run.config for k in SECTIONS if k != "scenario_name")
    scen_cfg, scen_note = _scenario_config(run, points)
    rows = parameter_rows(scen_cfg) if has_scenario else []
    counts = {k: sum(r.source == k for r in rows) for k in SOURCE_LABELS}
    params = _table(
        ["parameter", "value", "source", "note"],
        [[r.key, r.value, SOURCE_LABELS[r.source], r.note] for r in rows],
        [f"src-{r.source}" for r in rows],
    )
    key_rows = [r for r in rows if r.source in ("calibrated", "run")]
    highlights = _table(
        ["parameter", "value", "source", "note"],
        [[r.key, r.value, SOURCE_LABELS[r.source], r.note] for r in key_rows],
        [f"src-{r.source}" for r in key_rows],
    )
    factors = (run.config.get("design") or {}).get("factors") or {}
    solve = run.config.get("solve") or []
    return {
        "preset": scen_cfg.get("scenario_name") or "",
        "points": pts,
        "params": params,
        "highlights": highlights,
        "counts": {SOURCE_LABELS[k]: v for k, v in counts.items() if v},
        "factors": {
            k: ", ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in factors.items()
        },
        "solve": [json.dumps(s, default=str) for s in solve],
        "note": scen_note
        if rows
        else "The run's manifest holds no scenario parameters (e.g. a check "
        "suite's scenarios are defined in the suite file); the design points are listed above.",
    }


def _estimands(run: RunData) -> dict:
    perf = run.perf
    if perf is None or perf.empty:
        return {"table": _table([], []), "note": "No performance table in this run."}
    order = list(dict.fromkeys(order_rows(perf)["estimand"]))
    tsrc = {}
    if run.truth is not None and {"estimand", "source"} <= set(run.truth.columns):
        tsrc = dict(zip(run.truth["estimand"], run.truth["source"]))
    by = "scenario" if "scenario" in perf.columns else None
    rows = []
    for est in order:
        sub = perf[perf["estimand"] == est]
        for scen, grp in sub.groupby(by, sort=False) if by else [("", sub)]:
            r = grp.iloc[0]
            text, origin = definitions.describe(str(est))
            rows.append(
                [
                    est,
                    scen,
                    _num(r.get("true")),
                    _num(r.get("true_mcse"), 5),
                    tsrc.get(est, "exact" if pd.isna(r.get("true_mcse")) else "monte_carlo")
                    if pd.notna(r.get("true"))
                    else "no truth",
                    ", ".join(map(str, grp["method"].unique())),
                    text,
                ]
            )
    registry = definitions.HAS_REGISTRY
    return {
        "table": _table(
            [
                "estimand",
                "scenario",
                "true value",
                "MCSE of truth",
                "truth from",
                "methods",
                "definition",
            ],
            rows,
        ),
        "note": "Definitions from the estimand registry (palliasim.sim.estimands)"
        + "".join(f"; {k}: {v}" for k, v in definitions.shared_attributes().items())
        + "."
        if registry
        else "Definitions from the estimand naming scheme of sim/truth.py (no estimand registry "
        "in this version). True values by Monte Carlo on potential outcomes (their own MCSE, "
        "added to the bias MCSE) or exact from the configuration.",
    }


def _methods(run: RunData) -> dict:
    specs = run.config.get("estimators") or run.manifest.get("estimators") or {}
    if not specs:
        for m in run.manifests:
            specs.update(m.get("estimators") or {})
    engines = {}
    targets = {}
    if run.perf is not None and not run.perf.empty:
        for m, grp in run.perf.groupby("method", sort=False):
            if "engine" in grp.columns:
                engines[m] = ", ".join(map(str, grp["engine"].dropna().unique()))
            targets[m] = ", ".join(map(str, grp["estimand"].unique()))
    rows = []
    for name, spec in specs.items():
        spec = dict(spec or {})
        kind = spec.pop("kind", "")
        engine = engines.get(name) or spec.get("engine") or ""
        spec.pop("engine", None)
        opts = "; ".join(f"{k} = {v}" for k, v in spec.items()) or "-"
        rows.append([name, kind, engine, opts, targets.get(name, "")])
    return {"table": _table(["method", "kind", "engine", "options", "estimands"], rows)}


def _failures(run: RunData) -> dict:
    res = run.results
    if res is None or "status" not in res.columns:
        return {"total": None, "table": _table([], [])}
    failed = res[res["status"] == "failed"]
    warned = res[res["status"] == "warning"]
    rows = []
    if len(failed) or len(warned):
        both = pd.concat([failed, warned])
        msg = both["message"].fillna("").astype(str).str.slice(0, 160) if "message" in both else ""
        both = both.assign(_msg=msg)
        g = both.groupby(["method", "status", "_msg"], sort=False).size()
        g = g.sort_values(ascending=False).head(12)
        rows = [[m, s, n, t or "(no message)"] for (m, s, t), n in g.items()]
    return {
        "total": len(res),
        "failed": len(failed),
        "warning": len(warned),
        "table": _table(["method", "status", "rows", "message"], rows),
    }


def _performance(run: RunData) -> dict:
    out: dict = {"tables": [], "failures": _failures(run)}
    perf = run.perf
    alpha = run.config.get("alpha")
    policy = run.config.get("failures")
    if perf is not None and not perf.empty:
        alpha = alpha if alpha is not None else perf["alpha"].iloc[0] if "alpha" in perf else 0.05
        policy = policy or (perf["failures"].iloc[0] if "failures" in perf else "exclude")
        perf = order_rows(perf).reset_index(drop=True)
        flags = flag_table(perf)
        headline = {e: t for t, names in ENDPOINTS for e in names}
        lead = [c for c in ("scenario",) if c in perf.columns and perf[c].nunique() > 1]
        rows, classes = [], []
        for i, r in perf.iterrows():
            f = [n for n in FLAG_NAMES if flags.loc[i, n]]
            method = r["method"]
            if "engine" in perf.columns and perf.groupby("method")["engine"].nunique().gt(1).any():
                method = f"{method} [{r['engine']}]"
            cells = [*(r[c] for c in lead), r["estimand"], method, ", ".join(f) or ""]
            cells.append(_num(r.get("true")))
            cells += [_pm(r.get(a), r.get(b)) if b else _num(r.get(a)) for _, a, b in PERF_COLUMNS]
            rows.append(cells)
            classes.append(
                ("headline " if r["estimand"] in headline else "") + ("flagged" if f else "")
            )
        cols = [*lead, "estimand", "method", "flags", "true"] + [h for h, _, _ in PERF_COLUMNS]
        n_flag = flags.sum()
        out["tables"].append(
            {
                "title": "Performance measures (Monte Carlo SE in parentheses)",
                **_table(cols, rows, classes),
                "flag_col": len(lead) + 2,
            }
        )
        out["flag_counts"] = {n: int(n_flag[n]) for n in FLAG_NAMES}
    out["alpha"] = alpha
    out["policy"] = policy or "exclude"
    out["policy_text"] = {
        "exclude": "failed replications (status failed or a missing estimate) are left out of "
        "every measure; n used and n failed are shown per row.",
        "count": "failed replications are left out of bias, SEs and MSE, and count as "
        "non-covering and non-rejecting in coverage and rejection.",
    }.get(out["policy"], "")
    for name, title, cols in (
        ("power.csv", "Simulated and analytic power", POWER_COLUMNS),
        ("sample_size.csv", "Required sample size", SIZE_COLUMNS),
        ("checks.csv", "Checks", CHECK_COLUMNS),
    ):
        if name in run.tables:
            out["tables"].append(
                {"title": f"{title} ({name})", **_frame_table(run.tables[name], cols)}
            )
    return out


def _plots(run: RunData, embed: bool, dest: Path | None = None) -> list[dict]:
    out = []
    for p in run.plots:
        rank = _plot_rank(p)[0]
        caption = list(PLOT_CAPTIONS.values())[rank] if rank < len(PLOT_CAPTIONS) else p.stem
        out.append(
            {
                "name": p.name,
                "caption": caption,
                "src": _png_uri(p) if embed else os.path.relpath(p, dest or run.out_dir),
            }
        )
    return out


def _seconds(manifest: dict) -> float | None:
    total = 0.0
    seen = False
    for r in manifest.get("runs") or []:
        if isinstance(r.get("seconds"), (int, float)):
            total += float(r["seconds"])
            seen = True
    if seen:
        return total
    try:
        a = datetime.fromisoformat(manifest["started_at"])
        b = datetime.fromisoformat(manifest["finished_at"])
        return (b - a).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def _provenance(run: RunData) -> dict:
    m = run.manifest or (run.manifests[0] if run.manifests else {})
    seconds = [s for s in (_seconds(x) for x in ([run.manifest] + run.manifests) if x) if s]
    versions = m.get("versions") or {}
    env = m.get("environment") or {}
    keys = sorted({str(p.get("scenario_key", ""))[:16] for p in _design_points(run)} - {""})
    items = [
        ("task", run.kind),
        ("seed", run.config.get("seed", m.get("seed"))),
        ("replications", run.config.get("reps", m.get("reps"))),
        ("chunk size", m.get("chunk_size")),
        ("runner", ", ".join(f"{k} = {v}" for k, v in (m.get("runner") or {}).items())),
        ("config SHA-256", config_hash(run.config) if run.config else ""),
        ("scenario keys", ", ".join(keys)),
        ("started", m.get("started_at")),
        ("finished", m.get("finished_at")),
        ("compute time", f"{sum(seconds):.1f} s" if seconds else ""),
        ("status", m.get("status")),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("machine", ", ".join(f"{k} {v}" for k, v in env.items() if k != "hostname")),
        ("run directory", str(run.out_dir)),
    ]
    return {"rows": [(k, str(v)) for k, v in items if v not in (None, "")]}


def build_context(run: RunData, embed: bool = True, dest: Path | None = None) -> dict:
    """Everything the templates show, as plain strings and tables."""
    title = {
        "simulate": "Simulation study",
        "power": "Trial planning (power)",
        "check": "Estimator checks",
    }[run.kind]
    preset = _scenario_config(run, _design_points(run))[0].get("scenario_name")
    return {
        "title": f"palliasim: {title}" + (f", scenario '{preset}'" if preset else ""),
        "kind": run.kind,
        "aims": _aims(run),
        "dgm": _dgm(run),
        "estimands": _estimands(run),
        "methods": _methods(run),
        "performance": _performance(run),
        "plots": _plots(run, embed, dest),
        "provenance": _provenance(run),
        "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
def _md_cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _env(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md_cell
    return env


def render(run: RunData, dest: Path | None = None) -> tuple[str, str]:
    """(HTML, Markdown) of a run; the Markdown links plots relative to ``dest``."""
    html = _env(True).get_template("report.html.j2").render(**build_context(run, embed=True))
    md = _env(False).get_template("report.md.j2").render(**build_context(run, False, dest))
    return html, md


def write_report(
    out_dir: str | Path,
    *,
    kind: str | None = None,
    config: dict | None = None,
    results: pd.DataFrame | None = None,
    perf: pd.DataFrame | None = None,
    manifest: dict | None = None,
    target_dir: str | Path | None = None,
) -> dict[str, Path]:
    """Write ``report.html`` and ``report.md`` for the finished run in ``out_dir`` (into
    ``target_dir`` when given); what is passed in replaces what the directory holds."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"invalid report kind {kind!r}; allowed: {', '.join(KINDS)}")
    run = load_run(out_dir, kind, config=config, results=results, perf=perf, manifest=manifest)
    dest = Path(target_dir).expanduser().resolve() if target_dir else run.out_dir
    html, md = render(run, dest)
    return {
        "html": atomic_write_text(dest / "report.html", html),
        "md": atomic_write_text(dest / "report.md", md),
    }
