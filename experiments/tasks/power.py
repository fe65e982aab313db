"""task=power: trial planning. Power curves and required sample sizes by simulation, next to the
closed-form formulas, for every endpoint (``palliasim task=power``; options in conf/task/power.yaml).

Flow: config -> the alternative scenario (``task.scenario``, default ``randomized``, plus the
command-line overrides; an explicit ``scenario=`` wins) and its null twin (``task.scenario_null``)
-> formula inputs measured on a large simulated cohort (:func:`experiments.power.design_inputs`)
-> one design point per total sample size -> adaptive replication of every (point, method)
(:func:`experiments.power.adaptive_power`, resumable through the runner) -> rejection rates with
MCSE and exact CI, formula power, type I error, required n with its CI, the explanation of every
gap -> power.csv, sample_size.csv, power_curves.png, power_inputs.json, results.parquet and a
terminal summary ("PFS, log-rank: 80% power at n = ...").
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from palliasim.experiments import config as C
from palliasim.sim.errors import ConfigError

POWER_COLUMNS = [
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
]
EXTRA_COLUMNS = [
    "role",
    "estimand",
    "method_name",
    "rejections",
    "n_failed",
    "ci_halfwidth",
    "stopped",
    "analytic_alt_power",
    "analytic_alt_method",
    "analytic_adj_power",
    "projected_power",
    "gap",
    "gap_mcse",
    "type1",
    "type1_mcse",
    "type1_reps",
    "explanation",
]
DEFAULTS: dict[str, Any] = {
    "scenario": "randomized",
    "scenario_null": "null",
    "type1": True,
    "n_grid": [100, 200, 300, 400, 500],
    "n_grid_by_endpoint": {"pfs": "auto", "os": "auto"},
    "allocation": 0.5,
    "target_power": [0.8, 0.9],
    "endpoints": ["pfs", "os", "nrs", "response", "qol"],
    "ci_halfwidth": 0.01,
    "reps_start": 200,
    "reps_step": 200,
    "reps_max": 2000,
    "include_lmm": True,
    "methods": None,
    "chunk_size": 100,
    "analytic_n": 100_000,
    "projection_n": 200_000,
    "n_boot": 1000,
    "plots": True,
    "max_rows": 80,
}


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
def _bad(key: str, value, allowed: str) -> ConfigError:
    return ConfigError(f"invalid value {value!r} for config key 'task.{key}'; allowed: {allowed}")


def _int(cfg, key, lo=1):
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad(key, v, f"an integer >= {lo}")
    return v


def _grid(key, v) -> list[int]:
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or not v:
        raise _bad(key, v, "a non-empty list of integers >= 10, e.g. [100, 200, 300]")
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x != int(x) or x < 10:
            raise _bad(key, v, "a non-empty list of integers >= 10, e.g. [100, 200, 300]")
        out.append(int(x))
    if len(set(out)) != len(out):
        raise _bad(key, v, "a list of distinct integers")
    return sorted(out)


def task_config(plain: dict) -> dict:
    """``task.*`` validated, defaults filled in; ConfigError names the key."""
    from palliasim.experiments.planning.power import ENDPOINTS

    raw = dict(plain.get("task") or {})
    raw.pop("name", None)
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown config key 'task.{unknown[0]}'; allowed keys: {', '.join(DEFAULTS)}"
        )
    cfg = {**DEFAULTS, **raw}
    for key in ("scenario", "scenario_null"):
        v = cfg[key]
        if v is not None and (not isinstance(v, str) or not v):
            raise _bad(key, v, "a scenario preset name or null")
    for key in ("type1", "include_lmm", "plots"):
        if not isinstance(cfg[key], bool):
            raise _bad(key, cfg[key], "true, false")
    cfg["n_grid"] = _grid("n_grid", cfg["n_grid"])
    byep = cfg["n_grid_by_endpoint"] or {}
    if not isinstance(byep, dict):
        raise _bad("n_grid_by_endpoint", byep, "a mapping endpoint -> null | auto | [sizes]")
    clean = {}
    for ep, v in byep.items():
        if ep not in ENDPOINTS:
            raise ConfigError(
                f"unknown config key 'task.n_grid_by_endpoint.{ep}'; allowed keys: "
                f"{', '.join(ENDPOINTS)}"
            )
        if v is None or v == "auto":
            clean[ep] = v
        else:
            clean[ep] = _grid(f"n_grid_by_endpoint.{ep}", v)
    cfg["n_grid_by_endpoint"] = clean
    a = cfg["allocation"]
    if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 1):
        raise _bad("allocation", a, "a number in (0, 1) or null")
    tp = cfg["target_power"]
    if isinstance(tp, (int, float)) and not isinstance(tp, bool):
        tp = [tp]
    if (
        not isinstance(tp, (list, tuple))
        or not tp
        or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x < 1 for x in tp)
    ):
        raise _bad("target_power", cfg["target_power"], "a list of numbers in (0, 1)")
    cfg["target_power"] = sorted(float(x) for x in tp)
    eps = cfg["endpoints"]
    if isinstance(eps, str):
        eps = [eps]
    if not isinstance(eps, (list, tuple)) or not eps or any(e not in ENDPOINTS for e in eps):
        raise _bad("endpoints", cfg["endpoints"], f"a non-empty list of {', '.join(ENDPOINTS)}")
    cfg["endpoints"] = [e for e in ENDPOINTS if e in eps]
    h = cfg["ci_halfwidth"]
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not 0 < h < 0.5:
        raise _bad("ci_halfwidth", h, "a number in (0, 0.5)")
    for key in ("reps_start", "reps_step", "reps_max", "n_boot", "max_rows"):
        _int(cfg, key)
    if cfg["chunk_size"] is not None:
        _int(cfg, "chunk_size")
    _int(cfg, "analytic_n", 1000)
    _int(cfg, "projection_n", 100)
    if cfg["reps_start"] > cfg["reps_max"]:
        raise ConfigError(
            f"task.reps_start={cfg['reps_start']} exceeds task.reps_max={cfg['reps_max']}; "
            "allowed: reps_start <= reps_max"
        )
    return cfg


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _cli_scenario_choice() -> str | None:
    """The ``scenario=...`` given on the command line, if any (None outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except Exception:
        return None
    for o in overrides:
        key, _, val = o.partition("=")
        if key.lstrip("+~") == "scenario":
            return val
    return None


def scenarios(plain: dict, cfg: dict):
    """(alternative, null or None, notes): the scenarios of the power study.

    The alternative is ``task.scenario`` (default ``randomized``) plus every scenario key the
    user overrode (the difference between the composed config and its preset), unless the
    command line chose ``scenario=`` explicitly (then the composed config as is). The null is
    ``task.scenario_null`` with the same overrides except the keys where that preset differs
    from the alternative's preset (its zero effects). ``task.allocation`` applies to both;
    ``cohort.n`` is set per grid point.
    """
    from palliasim.sim.scenario import PRESETS, SECTIONS, Scenario, load_scenario, preset_params

    composed = {k: plain[k] for k in SECTIONS if k in plain}
    cname = str(composed.get("scenario_name", "custom"))
    explicit = _cli_scenario_choice()
    notes = []
    overrides: dict = {}
    if cname in PRESETS:
        preset = _flat(preset_params(cname))
        for k, v in _flat(composed).items():
            if k != "scenario_name" and (k not in preset or preset[k] != v):
                overrides[k] = v
    want = cfg["scenario"]
    if want is None or explicit is not None or cname != "study" or want == cname:
        base_name = cname
        alt = Scenario.from_dict(composed)
    else:
        base_name = want
        alt = load_scenario(want, overrides)
        notes.append(
            f"scenario: task.scenario={want} (give scenario=... on the command line for another)"
        )
    if cfg["allocation"] is not None:
        alt = alt.with_overrides({"treatment.allocation": float(cfg["allocation"])})
    null = None
    if cfg["type1"] and cfg["scenario_null"]:
        nname = cfg["scenario_null"]
        npre = _flat(preset_params(nname))
        try:
            bpre = _flat(preset_params(base_name))
        except ConfigError:
            bpre = {}
        own = {k for k, v in npre.items() if k not in bpre or bpre[k] != v}
        nover = {k: v for k, v in overrides.items() if k not in own and k != "cohort.n"}
        null = load_scenario(nname, nover)
        if cfg["allocation"] is not None:
            null = null.with_overrides({"treatment.allocation": float(cfg["allocation"])})
        if null.with_overrides({"cohort.n": alt.n}).key == alt.key:
            notes.append("type I error: the scenario is its own null; simulated once")
            null = None
    return alt, null, notes


def methods(plain: dict, cfg: dict):
    """(runner specs, info, per-method reps_max) for the selected endpoints."""
    from palliasim.experiments.engine.runner import build_estimators
    from palliasim.experiments.planning.power import endpoint_of

    raw = cfg["methods"]
    if raw is None:
        raw = {
            "logrank": {"kind": "logrank", "endpoints": ["pfs", "os"]},
            "cox": {"kind": "cox", "endpoints": ["pfs", "os"]},
            "ancova_cc": {"kind": "ancova_cc"},
            "lmm": {"kind": "lmm"},
            "logistic": {"kind": "logistic"},
            "risk_difference": {"kind": "risk_difference"},
            "ancova_qol": {"kind": "ancova_w12", "outcomes": ["global"]},
        }
    if not isinstance(raw, dict):
        raise _bad("methods", raw, "a mapping name -> {kind: ..., options}")
    specs, info, caps = {}, {}, {}
    for name, spec in raw.items():
        if spec is None:
            continue
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ConfigError(f"config key 'task.methods.{name}' must be a mapping with a 'kind'")
        spec = dict(spec)
        cap = spec.pop("reps_max", None)
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise _bad(f"methods.{name}.reps_max", cap, "an integer >= 1 or null")
        if spec["kind"] == "lmm" and not cfg["include_lmm"]:
            continue
        spec["alpha"] = plain["alpha"]
        try:
            est = build_estimators({name: spec})[name]
        except ValueError as exc:
            raise ConfigError(f"task.methods.{name}: {exc}") from None
        ests = [e for e in est.targets() if endpoint_of(e) in cfg["endpoints"]]
        if not ests:
            continue
        specs[name] = spec
        opts = {k: v for k, v in spec.items() if k not in ("kind",)}
        info[name] = {"kind": spec["kind"], "options": opts, "estimands": ests}
        if cap is not None:
            caps[name] = int(cap)
    if not specs:
        raise ConfigError(
            "task.methods: no method tests the selected endpoints "
            f"({', '.join(cfg['endpoints'])}); add one, e.g. task.methods.logrank="
            "{kind:logrank}"
        )
    return specs, info, caps


def _nice(x: float) -> int:
    if x <= 0 or not math.isfinite(x):
        return 10
    mag = 10 ** max(int(math.floor(math.log10(x))) - 1, 1)
    return int(max(10, round(x / mag) * mag))


def grids(cfg, info, formulas, inputs) -> dict[str, list[int]]:
    """endpoint -> sizes (``auto``: 5 sizes from 0.6 x the formula's n at the lowest target
    power to 1.3 x the n at the highest, over the endpoint's methods)."""
    from palliasim.experiments.planning.power import endpoint_of, formula_n

    out = {}
    for ep in cfg["endpoints"]:
        v = cfg["n_grid_by_endpoint"].get(ep)
        if v is None:
            out[ep] = list(cfg["n_grid"])
            continue
        if v != "auto":
            out[ep] = list(v)
            continue
        lo, hi = [], []
        for (_m, e), f in formulas.items():
            if endpoint_of(e) != ep:
                continue
            lo.append(formula_n(f, cfg["target_power"][0]))
            hi.append(formula_n(f, cfg["target_power"][-1]))
        lo = [x for x in lo if math.isfinite(x)]
        hi = [x for x in hi if math.isfinite(x)]
        if not lo or not hi:
            out[ep] = list(cfg["n_grid"])
            continue
        a, b = 0.6 * min(lo), 1.3 * max(hi)
        out[ep] = sorted({_nice(x) for x in np.linspace(a, b, 5)})
    return out


# --------------------------------------------------------------------------------------------
# assembling the tables
# --------------------------------------------------------------------------------------------
def method_label(name: str, estimand: str, info: dict) -> str:
    from palliasim.experiments.planning.power import endpoint_of, estimand_tag

    ep = endpoint_of(estimand)
    same = [e for e in info[name]["estimands"] if endpoint_of(e) == ep]
    return name if len(same) <= 1 else f"{name}_{estimand_tag(estimand)}"


def pretty(endpoint: str, method: str, kind: str | None, estimand: str | None) -> str:
    from palliasim.experiments.planning.power import ENDPOINT_LABELS, KIND_LABELS, estimand_tag

    ep = ENDPOINT_LABELS.get(endpoint, endpoint)
    if kind is None:
        return f"{ep}, {method}"
    lab = KIND_LABELS.get(kind, method)
    if kind == "lmm" and estimand:
        lab = f"{lab}, week {estimand_tag(estimand)[1:]}"
    elif kind == "risk_difference":
        lab = "chi-square (risk difference)"
    elif kind == "logistic":
        lab = "logistic (OR)"
    if kind == "ancova_w12" and estimand:
        lab = f"ANCOVA ({estimand_tag(estimand)})"
    return f"{ep}, {lab}"


def build_power_table(
    run, points_info, info, formulas, alpha, alt_name, extra_formulas, projections=None
):
    from palliasim.experiments.planning import power as P
    from palliasim.experiments.planning.power import endpoint_of, rejection_table

    tab = rejection_table(run.results, alpha, by=("scenario_key", "method", "estimand"))
    tab["scenario"] = tab["scenario_key"].map(lambda k: points_info[k][0])
    tab["n"] = tab["scenario_key"].map(lambda k: points_info[k][1]).astype(int)
    tab["endpoint"] = tab["estimand"].map(endpoint_of)
    tab["method_name"] = tab["method"]
    tab["method"] = [method_label(m, e, info) for m, e in zip(tab["method_name"], tab["estimand"])]
    tab["stopped"] = [
        run.stopped.get((k, m), "") for k, m in zip(tab["scenario_key"], tab["method_name"])
    ]
    ap, am, alt_p, alt_m, adj = [], [], [], [], []
    for _, r in tab.iterrows():
        f = formulas.get((r["method_name"], r["estimand"]))
        if f is None:
            for lst, v in ((ap, np.nan), (am, ""), (alt_p, np.nan), (alt_m, ""), (adj, np.nan)):
                lst.append(v)
            continue
        if r["scenario"] == alt_name:
            ap.append(float(f.power([r["n"]])[0]))
            am.append(f.label)
            alt_p.append(float(f.alt_power([r["n"]])[0]))
            alt_m.append(f.alt_label)
            adj.append(float(f.power([r["n"]], f.adjusted)[0]) if f.adjusted else np.nan)
        else:  # the null scenario: the nominal level of the test
            ap.append(f.nominal)
            am.append("nominal level" + (" (alpha/4, Bonferroni)" if f.nominal < alpha else ""))
            for lst, v in ((alt_p, np.nan), (alt_m, ""), (adj, np.nan)):
                lst.append(v)
    tab["analytic_power"] = ap
    tab["analytic_method"] = am
    tab["analytic_alt_power"] = alt_p
    tab["analytic_alt_method"] = alt_m
    tab["analytic_adj_power"] = adj
    proj = []
    for _, r in tab.iterrows():
        pr = (projections or {}).get((r["method_name"], r["estimand"]))
        f = formulas.get((r["method_name"], r["estimand"]))
        if pr is None or r["scenario"] != alt_name:
            proj.append(np.nan)
            continue
        proj.append(float(P.projected_power([r["n"]], pr, f.nominal if f else alpha)[0]))
    tab["projected_power"] = proj
    tab["gap"] = tab["power"] - tab["analytic_power"]
    se = np.maximum(tab["power_mcse"], 1.0 / tab["reps"])
    tab["gap_mcse"] = tab["gap"] / se
    # type I error next to the power
    alt = tab["scenario"] == alt_name
    nul = tab[~alt][["method_name", "estimand", "n", "power", "power_mcse", "reps"]].rename(
        columns={"power": "type1", "power_mcse": "type1_mcse", "reps": "type1_reps"}
    )
    tab = tab.merge(nul, on=["method_name", "estimand", "n"], how="left")
    tab.loc[tab["scenario"] != alt_name, ["type1", "type1_mcse", "type1_reps"]] = np.nan
    # formula-only rows
    rows = []
    for label, ep, f, ns in extra_formulas:
        for n in ns:
            rows.append(
                {
                    "scenario": alt_name,
                    "endpoint": ep,
                    "method": label,
                    "method_name": label,
                    "estimand": "",
                    "n": int(n),
                    "reps": 0,
                    "rejections": 0,
                    "n_failed": 0,
                    "analytic_power": float(f.power([n])[0]),
                    "analytic_method": f.label,
                }
            )
    if rows:
        tab = pd.concat([tab, pd.DataFrame(rows)], ignore_index=True)
    tab["explanation"] = ""
    tab["role"] = np.where(tab["scenario"] == alt_name, "power", "type1")
    order = {e: i for i, e in enumerate(("pfs", "os", "nrs", "response", "qol"))}
    tab["_o1"] = (tab["scenario"] != alt_name).astype(int)
    tab["_o2"] = tab["endpoint"].map(order)
    tab = tab.sort_values(["_o1", "_o2", "method", "n"], kind="stable").drop(columns=["_o1", "_o2"])
    return tab.reset_index(drop=True)


def sample_sizes(tab, formulas, extra_formulas, alt_name, targets, n_boot, seed, alpha=0.05):
    from palliasim.experiments.planning.power import formula_n, required_n

    rows = []
    alt = tab[(tab["scenario"] == alt_name) & (tab["reps"] > 0)]
    for (ep, m), d in alt.groupby(["endpoint", "method"], sort=False):
        key = (d["method_name"].iloc[0], d["estimand"].iloc[0])
        f = formulas.get(key)
        for tp in targets:
            lvl = f.nominal if f is not None else alpha
            r = required_n(d["n"], d["rejections"], d["reps"], tp, lvl, n_boot=n_boot, seed=seed)
            rows.append(
                {
                    "scenario": alt_name,
                    "endpoint": ep,
                    "method": m,
                    "estimand": key[1],
                    "target_power": tp,
                    "n_required": r["n"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "how": r["how"],
                    "grid_min": int(d["n"].min()),
                    "grid_max": int(d["n"].max()),
                    "reps_total": int(d["reps"].sum()),
                    "formula_n": formula_n(f, tp) if f else np.nan,
                    "formula_adj_n": formula_n(f, tp, f.adjusted) if f and f.adjusted else np.nan,
                    "formula_method": f.label if f else "",
                }
            )
    for label, ep, f, ns in extra_formulas:
        for tp in targets:
            rows.append(
                {
                    "scenario": alt_name,
                    "endpoint": ep,
                    "method": label,
                    "estimand": "",
                    "target_power": tp,
                    "n_required": np.nan,
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "how": "formula only",
                    "grid_min": int(min(ns)),
                    "grid_max": int(max(ns)),
                    "reps_total": 0,
                    "formula_n": formula_n(f, tp),
                    "formula_adj_n": np.nan,
                    "formula_method": f.label,
                }
            )
    out = pd.DataFrame(rows)
    if len(out):
        order = {e: i for i, e in enumerate(("pfs", "os", "nrs", "response", "qol"))}
        out = out.assign(_o=out["endpoint"].map(order), _f=out["how"].eq("formula only"))
        out = out.sort_values(["_o", "_f"], kind="stable").drop(columns=["_o", "_f"])
    return out.reset_index(drop=True)


def _fmt_n(x) -> str:
    if x is None or not np.isfinite(x):
        return "not reached" if x == np.inf else "n/a"
    return f"{math.ceil(x):,}"


def summary_lines(sizes, tab, alt_name, info) -> list[str]:
    lines = []
    kinds = {m: i["kind"] for m, i in info.items()}
    for _, r in sizes.iterrows():
        mn = tab.loc[
            (tab["method"] == r["method"]) & (tab["endpoint"] == r["endpoint"]), "method_name"
        ]
        mname = mn.iloc[0] if len(mn) else r["method"]
        lab = pretty(r["endpoint"], r["method"], kinds.get(mname), r["estimand"] or None)
        pct = f"{round(r['target_power'] * 100):d}%"
        fn = r["formula_method"].split(" (")[0] if r["formula_method"] else "formula"
        if r["how"] == "formula only":
            lines.append(f"{lab}: {pct} power at n = {_fmt_n(r['formula_n'])} (formula only: {fn})")
            continue
        where = ""
        if str(r["how"]).startswith("extrapolated"):
            where = f"; {r['how']} {r['grid_min']:,}-{r['grid_max']:,}"
        elif str(r["how"]).startswith("not"):
            where = f"; {r['how']}"
        ci = f"95% CI {_fmt_n(r['ci_low'])}-{_fmt_n(r['ci_high'])}"
        lines.append(
            f"{lab}: {pct} power at n = {_fmt_n(r['n_required'])} ({ci}{where}); "
            f"{fn}: {_fmt_n(r['formula_n'])}"
        )
    return lines


def _num(x, d=3):
    return "" if x is None or not np.isfinite(x) else f"{x:.{d}f}"


def format_table(tab: pd.DataFrame, max_rows: int) -> str:
    d = tab[tab["reps"] > 0]
    cols = ["scenario", "endpoint", "method", "n", "reps", "power", "95% CI", "formula", "type I"]
    rows = []
    for _, r in d.iterrows():
        rows.append(
            [
                r["scenario"],
                r["endpoint"],
                r["method"],
                f"{int(r['n'])}",
                f"{int(r['reps'])}",
                _num(r["power"]),
                f"{_num(r['ci_low'])}-{_num(r['ci_high'])}",
                _num(r["analytic_power"]),
                _num(r.get("type1", np.nan)),
            ]
        )
    w = [max(len(c), *(len(x[i]) for x in rows)) if rows else len(c) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w[i]) for i, c in enumerate(cols))]
    for x in rows[:max_rows]:
        out.append("  ".join(v.ljust(w[i]) for i, v in enumerate(x)))
    if len(rows) > max_rows:
        out.append(f"... {len(rows) - max_rows} more rows in power.csv")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------------------------
def run(plain: dict) -> int:
    from palliasim import sim
    from palliasim.experiments.engine import storage
    from palliasim.experiments.engine.design import expand_design, validate_runner
    from palliasim.experiments.engine.runner import RunIncomplete
    from palliasim.experiments.planning import power as P

    t_start = time.perf_counter()
    cfg = task_config(plain)
    alpha = float(plain["alpha"])
    quiet = bool(plain.get("quiet"))
    runner = dict(plain.get("runner") or {})
    try:
        if cfg["chunk_size"] is not None:
            runner["chunk_size"] = cfg["chunk_size"]
        rcfg = validate_runner(
            {**runner, "reps": cfg["reps_start"], "seed": plain["seed"], "quiet": quiet}
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    alt, null, notes = scenarios(plain, cfg)
    specs, info, caps = methods(plain, cfg)
    out = C.output_dir(plain)

    def say(msg: str) -> None:
        if not quiet:
            print(f"palliasim power: {msg}", file=sys.stderr, flush=True)

    for n in notes:
        say(n)
    say(f"truth and formula inputs of '{alt.name}' (first run of a scenario: ~20 s) ...")
    truth_alt = sim.truth(alt)
    inputs = P.design_inputs(alt, truth_alt, n_big=cfg["analytic_n"], seed=plain["seed"])
    formulas = P.analytic_table(info, inputs, alpha)
    say(f"each method once on {cfg['projection_n']:,} patients (its large-sample projection) ...")
    projections = P.method_projection(alt, specs, cfg["projection_n"], plain["seed"])
    inputs["projection"] = {f"{m}:{e}": v for (m, e), v in projections.items()}
    gr = grids(cfg, info, formulas, inputs)
    extra = []
    if "nrs" in cfg["endpoints"]:
        extra.append(("rm_mean4 (formula)", "nrs", P.rm_formula(inputs, alpha), gr["nrs"]))
    n_all = sorted({n for ep in cfg["endpoints"] for n in gr[ep]})
    alt_pts = expand_design(alt, None, {"cohort.n": n_all})
    points = list(alt_pts)
    null_pts = []
    if null is not None:
        null_pts = expand_design(null, None, {"cohort.n": n_all})
        points += null_pts
    pinfo = {p.key: (p.scenario.name, int(p.scenario.n)) for p in points}
    needed = {}
    for p in points:
        n = int(p.scenario.n)
        for m, i in info.items():
            ests = tuple(e for e in i["estimands"] if n in gr[P.endpoint_of(e)])
            if ests:
                needed[(p.key, m)] = ests
    say(
        f"scenario '{alt.name}'"
        + (f" (type I error: '{null.name}')" if null is not None else "")
        + f", allocation {inputs['allocation']:.3g}, alpha {alpha:g}; n = "
        + "; ".join(f"{ep}: {','.join(map(str, gr[ep]))}" for ep in cfg["endpoints"])
        + f"; methods: {', '.join(specs)}; reps {cfg['reps_start']} + {cfg['reps_step']} "
        f"until the 95% CI half-width <= {cfg['ci_halfwidth']:g} (max {cfg['reps_max']}"
        + (f"; {', '.join(f'{m} {c}' for m, c in caps.items())}" if caps else "")
        + f") -> {out}"
    )
    try:
        prun = P.adaptive_power(
            points,
            specs,
            alpha=alpha,
            out_dir=out,
            needed=needed,
            ci_halfwidth=float(cfg["ci_halfwidth"]),
            reps_start=cfg["reps_start"],
            reps_step=cfg["reps_step"],
            reps_max=cfg["reps_max"],
            method_reps_max={m: c for m, c in caps.items() if m in specs},
            seed=rcfg["seed"],
            n_jobs=rcfg["n_jobs"],
            backend=rcfg["backend"],
            chunk_size=rcfg["chunk_size"],
            dask_address=rcfg["dask_address"],
            quiet=quiet,
            config=plain,
            log=say,
        )
    except RunIncomplete as exc:
        print(f"palliasim: {exc}", file=sys.stderr)
        return 1
    tab = build_power_table(prun, pinfo, info, formulas, alpha, alt.name, extra, projections)
    strength = float(alt.get("confounding.strength") or 0.0)
    confounded = (
        f"Not randomized (confounding.strength = {strength:g}): crude analyses also carry the "
        "confounding by indication, so their power is not the trial's; compare the projection's "
        "estimate with the true effect"
        if strength != 0 and alt.get("treatment.scheme") != "complete"
        else ""
    )
    if confounded:
        say(confounded)
    # explanations, per (endpoint, method) curve of the alternative
    for _key, d in tab[(tab["scenario"] == alt.name) & (tab["reps"] > 0)].groupby(
        ["endpoint", "method"], sort=False
    ):
        key = (d["method_name"].iloc[0], d["estimand"].iloc[0])
        f = formulas.get(key)
        if f is None:
            continue
        tv = float(truth_alt[key[1]]) if key[1] in truth_alt else None
        text, _ = P.explain(d, f, projections.get(key), tv)
        if confounded:
            text += f". {confounded}"
        tab.loc[d.index, "explanation"] = text
    for label, ep, f, _ns in extra:
        idx = tab.index[(tab["method"] == label) & (tab["endpoint"] == ep)]
        eff = {
            nm: float(np.nanmean(f.power(tab.loc[idx, "n"], inp) - f.power(tab.loc[idx, "n"])))
            for nm, (_t, inp) in f.variants.items()
        }
        tab.loc[idx, "explanation"] = "formula only (no simulated method); " + "; ".join(
            f"[{nm}, {eff[nm]:+.3f} power] {t}" for nm, (t, _i) in f.variants.items()
        )
    sizes = sample_sizes(
        tab, formulas, extra, alt.name, cfg["target_power"], cfg["n_boot"], plain["seed"], alpha
    )
    # ---- write
    out.mkdir(parents=True, exist_ok=True)
    cols = POWER_COLUMNS + [c for c in EXTRA_COLUMNS if c in tab.columns]
    tab[cols].to_csv(out / "power.csv", index=False, float_format="%.6g")
    sizes.to_csv(out / "sample_size.csv", index=False, float_format="%.6g")
    (out / "power_inputs.json").write_text(json.dumps(inputs, indent=1, default=float))
    res = prun.results.copy()
    res.insert(0, "n", res["scenario_key"].map(lambda k: pinfo[k][1]))
    storage.write_parquet(out / storage.RESULTS_NAME, storage.sort_canonical(res))
    made = []
    if cfg["plots"]:
        made.append(
            P.plot_power_curves(
                tab,
                sizes,
                formulas | {(lab, ""): f for lab, _e, f, _n in extra},
                out / "power_curves.png",
                alpha,
                cfg["target_power"],
                scenario=alt.name,
            )
        )
    # ---- terminal
    print(format_table(tab, cfg["max_rows"]))
    print(
        "\nRequired total sample size (simulation: monotone fit of rejection on n, 95% CI by "
        "bootstrap; formula: closed form with the scenario's inputs):"
    )
    for line in summary_lines(sizes, tab, alt.name, info):
        print(f"  {line}")
    dis = tab[(tab["scenario"] == alt.name) & (tab["reps"] > 0)].drop_duplicates(
        ["endpoint", "method"]
    )
    s0 = sizes[sizes["target_power"] == cfg["target_power"][0]].set_index(["endpoint", "method"])
    bad = []
    for _, r in dis.iterrows():
        grid_gap = "they disagree" in r["explanation"]
        n_gap = False
        if (r["endpoint"], r["method"]) in s0.index:
            z = s0.loc[(r["endpoint"], r["method"])]
            n_gap = bool(
                np.isfinite(z["formula_n"]) and not z["ci_low"] <= z["formula_n"] <= z["ci_high"]
            )
        if grid_gap or n_gap:
            bad.append((r, n_gap))
    if bad:
        print(
            "\nWhere simulation and formula disagree (at the grid points, or the formula's n outside "
            "the simulated n's CI; details in power.csv, column explanation):"
        )
        for r, n_gap in bad:
            first = r["explanation"].split(". Assumptions: ")[0]
            flag = " [required n differs]" if n_gap else ""
            print(f"  {r['endpoint']}, {r['method']}{flag}: {first}")
    if null is not None:
        t1 = tab[tab["scenario"] == null.name]
        worst = t1.loc[(t1["power"] - t1["analytic_power"]).abs().idxmax()] if len(t1) else None
        if worst is not None:
            print(
                f"\nType I error ('{null.name}'): {t1['power'].min():.3f}-{t1['power'].max():.3f} "
                f"over {len(t1)} (method, n) cells; farthest from the nominal level: "
                f"{worst['endpoint']}, {worst['method']}, n = {int(worst['n'])}: "
                f"{worst['power']:.3f} (95% CI {worst['ci_low']:.3f}-{worst['ci_high']:.3f}) vs "
                f"{worst['analytic_power']:.4g}"
            )
    n_fail = int(tab.loc[tab["reps"] > 0, "n_failed"].sum())
    print(
        f"\n{int(prun.results.shape[0]):,} replication rows ({n_fail:,} failed fits, counted as "
        f"non-rejections) in {time.perf_counter() - t_start:.0f} s."
    )
    print(
        f"Outputs in {out}:\n  power.csv  sample_size.csv  power_inputs.json  results.parquet  "
        "manifest.json" + "".join(f"\n  {p.name}" for p in made)
    )
    return 0
