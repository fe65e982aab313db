"""The reports of a judged suite: the markdown summary (failing checks first) and JUnit XML
(one testcase per check)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pandas as pd

from palliasim.experiments.checks.judging import fmt, fmt_p
from palliasim.experiments.checks.schema import Suite


def _cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _family(table: pd.DataFrame) -> str:
    """ "H hypotheses (S statistical checks, D engine duplicates)": the Holm family's size."""
    stat = table[table["statistical"].astype(bool)]
    n_h = int(stat["hypothesis"].nunique())
    n_dup = int((stat["duplicate_of"].fillna("") != "").sum())
    dup = f", {n_dup} of them engine duplicates sharing a twin's hypothesis" if n_dup else ""
    return f"{n_h} hypotheses ({len(stat)} statistical checks{dup})"


def markdown_report(suite: Suite, table: pd.DataFrame, reps: int, seed: int) -> str:
    """The summary: verdict line, settings, then one table row per check, failing first."""
    n_fail = int((table["verdict"] == "FAIL").sum())
    n = len(table)
    head = f"## palliasim checks: suite `{suite.name}` " + (
        f"FAILED: {n_fail} of {n} check(s) failed" if n_fail else f"passed: all {n} check(s)"
    )
    lines = [head, ""]
    if suite.description:
        lines += [suite.description.splitlines()[0], ""]
    lines += [
        f"seed {seed}, {reps} replications per scenario, {len(suite.used_scenarios())} "
        f"scenario(s), CI level {1 - suite.alpha:g} (alpha {suite.alpha:g}), family-wise error "
        f"rate {suite.error_rate:g} over {_family(table)} ({suite.correction}), failures: "
        f"{suite.failures}",
        "",
        "| verdict | check | figure | value | MCSE | threshold | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    order = table.assign(_f=(table["verdict"] != "FAIL").astype(int)).sort_values(
        "_f", kind="stable"
    )
    for r in order.to_dict("records"):
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    f"**{r['verdict']}**" if r["verdict"] == "FAIL" else r["verdict"],
                    r["check"],
                    r["figure_name"],
                    fmt(r["figure"]),
                    fmt(r["mcse"], 2),
                    r["threshold"],
                    r["reason"],
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def junit_xml(suite: Suite, table: pd.DataFrame, seconds: float, reps: int, seed: int) -> str:
    """JUnit XML: one ``<testsuite>``, one ``<testcase>`` per check (a ``<failure>`` if failed)."""
    n_fail = int((table["verdict"] == "FAIL").sum())
    attrs = {
        "tests": str(len(table)),
        "failures": str(n_fail),
        "errors": "0",
        "skipped": "0",
        "time": f"{seconds:.3f}",
    }
    root = ET.Element("testsuites", {"name": "palliasim checks", **attrs})
    ts = ET.SubElement(root, "testsuite", {"name": f"palliasim.checks.{suite.name}", **attrs})
    props = ET.SubElement(ts, "properties")
    for k, v in (
        ("suite", suite.source or suite.name),
        ("seed", seed),
        ("reps", reps),
        ("alpha", suite.alpha),
        ("error_rate", suite.error_rate),
        ("correction", suite.correction),
        ("failures", suite.failures),
    ):
        ET.SubElement(props, "property", {"name": k, "value": str(v)})
    for r in table.to_dict("records"):
        tc = ET.SubElement(
            ts,
            "testcase",
            {
                "classname": f"palliasim.checks.{suite.name}.{r['scenario']}.{r['method']}",
                "name": f"{r['estimand']}: {r['expectation']}",
                "time": "0",
            },
        )
        detail = (
            f"{r['check']}\n{r['figure_name']} = {fmt(r['figure'])} (MCSE {fmt(r['mcse'], 2)}); "
            f"threshold: {r['threshold']}\ntrue {fmt(r['true'])}; n_used {r['n_used']} of "
            f"{r['n_reps']} ({r['n_failed']} failed); z {fmt(r['z'], 3)}, p {fmt_p(r['p_value'])}, "
            f"adjusted p {fmt_p(r['p_adjusted'])}"
            + (f" (hypothesis of {r['duplicate_of']})" if r.get("duplicate_of") else "")
            + f"\nsuite key: {r['key']}\n{r['reason']}"
        )
        if r["verdict"] == "FAIL":
            f = ET.SubElement(tc, "failure", {"message": r["reason"], "type": "CheckFailed"})
            f.text = detail
        else:
            ET.SubElement(tc, "system-out").text = detail
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
