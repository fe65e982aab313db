"""The power table: simulated rejection rates per (scenario, n, method, estimand) with the
formula's power, the projection, the gap in MCSE units, the type I error beside the power, and
formula-only rows (power.csv)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from palliasim.experiments.planning.endpoints import (
    ENDPOINT_LABELS,
    KIND_LABELS,
    endpoint_of,
    estimand_tag,
)
from palliasim.experiments.planning.inputs import projected_power
from palliasim.experiments.planning.rejection import rejection_table

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


def method_label(name: str, estimand: str, info: dict) -> str:

    ep = endpoint_of(estimand)
    same = [e for e in info[name]["estimands"] if endpoint_of(e) == ep]
    return name if len(same) <= 1 else f"{name}_{estimand_tag(estimand)}"


def pretty(endpoint: str, method: str, kind: str | None, estimand: str | None) -> str:

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
        proj.append(float(projected_power([r["n"]], pr, f.nominal if f else alpha)[0]))
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
