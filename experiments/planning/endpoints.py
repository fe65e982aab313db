"""The endpoints of trial planning and the estimands that test them: ``pfs_loghr`` -> ``pfs``;
labels for tables and plots."""

from __future__ import annotations

import re

from palliasim.sim.schedule import POST_WEEKS

ENDPOINTS = ("pfs", "os", "nrs", "response", "qol")
ENDPOINT_LABELS = {"pfs": "PFS", "os": "OS", "nrs": "NRS", "response": "Response", "qol": "QoL"}
#: estimands whose p-value tests "no treatment effect" (the ones with a power)
TESTED = re.compile(
    r"^(pfs_loghr|os_loghr|nrs_diff_w\d+|response_logor|response_rd|qol_[a-z]+_diff)$"
)
KIND_LABELS = {
    "logrank": "log-rank",
    "cox": "Cox",
    "ancova_cc": "ANCOVA",
    "lmm": "mixed model",
    "mmrm": "MMRM",
    "clda": "cLDA",
    "logistic": "logistic",
    "risk_difference": "risk difference",
    "ancova_w12": "ANCOVA",
}
NRS_WEEKS = POST_WEEKS


def endpoint_of(estimand: str) -> str | None:
    """``pfs_loghr`` -> ``pfs``; None for estimands without a test of no effect."""
    if not TESTED.match(str(estimand)):
        return None
    return str(estimand).split("_", 1)[0]


def estimand_tag(estimand: str) -> str:
    """The part that tells contrasts of one endpoint apart: ``nrs_diff_w12`` -> ``w12``."""
    e = str(estimand)
    if e.startswith("nrs_diff_"):
        return e[len("nrs_diff_") :]
    if e.startswith("qol_") and e.endswith("_diff"):
        return e[4:-5]
    return e.split("_", 1)[1] if "_" in e else e
