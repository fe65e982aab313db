"""Estimator ``clda``: constrained longitudinal data analysis of pain NRS (baseline as a response).

Model (patient i, visit j in weeks 0, 1, 4, 8, 12; observed visits only, week 0 included):

    NRS_ij = a_j + d_j group_i [j > 0] (+ covariates_i' c) + e_ij,
    (e_i0, e_i1, e_i4, e_i8, e_i12) ~ N(0, S), S 5 x 5 unstructured (15 parameters),

REML (ML as an option). The constraint is the common baseline mean: no group effect at week 0
(true under randomization), so baseline NRS is modelled jointly with the follow-up instead of
being a covariate, and a patient without baseline NRS still contributes the visits observed.
R equivalent (checked on an exported cohort of 205: estimates and SEs agree to < 1e-6
relative): ``nlme::gls(nrs ~ 0 + week + g1 + g4 + g8 + g12, correlation = corSymm(form = ~
visit | id), weights = varIdent(form = ~ 1 | week), method = "REML")`` with week a factor and
g_w = group x [week = w] (d_w = the coefficient of g_w). With complete data d_w equals the MMRM's (ANCOVA's) estimate up to the use of
the pooled baseline slope; it gains precision when follow-up is missing.

Estimands: ``nrs_diff_w{1,4,8,12}`` (primary ``nrs_diff_w12``) = d_w, the difference in mean
week-w NRS between arms, under the hypothetical strategy for dropout and death that the MAR
likelihood implies (see :mod:`palliasim.estimators.mmrm`; biased if dropout or death depends
on unobserved pain). Valid only when the arms share the baseline distribution (randomized);
under confounding by indication (scenario ``study``) the constraint is false and d_w carries
the imbalance. Inference, df options and engines as ``mmrm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from palliasim.estimators.base import Estimate, register
from palliasim.estimators.mmrm import (
    UnstructuredModel,
    VisitModel,
    arm_gaps,
    check_un_data,
    merge_rows,
    un_rows,
    usable_patients,
)
from palliasim.sim.schedule import POST_WEEKS, WEEKS


def clda_design(wide, Z, znames, usable) -> tuple[VisitModel, dict[int, str]]:
    """cLDA design: visit means a_j (weeks 0..12), group:visit_j for post-baseline j (+ Z)."""
    g = wide.group[usable]
    Y = wide.nrs[usable]
    why = arm_gaps(Y[:, 1:], g, POST_WEEKS)
    keep0 = bool(np.isfinite(Y[:, 0]).any())
    weeks = ((0,) if keep0 else ()) + tuple(w for w in POST_WEEKS if w not in why)
    Y = Y[:, [WEEKS.index(w) for w in weeks]]
    n, m = Y.shape
    post = [w for w in weeks if w != 0]
    q = Z.shape[1]
    p = m + len(post) + q
    X = np.zeros((n, m, p))
    names = [f"week_{w}" for w in weeks] + [f"group:week_{w}" for w in post] + list(znames)
    C = {}
    for j, w in enumerate(weeks):
        X[:, j, j] = 1.0
        X[:, j, m + len(post) :] = Z[usable]
        if w != 0:
            k = m + post.index(w)
            X[:, j, k] = g
            C[w] = np.eye(p)[k]
    return VisitModel(Y, X, names, weeks, C, 2 + q), why


@register("clda")
@dataclass
class CLDA(UnstructuredModel):
    """cLDA of NRS at weeks 0-12, common baseline mean, unstructured 5 x 5 covariance (module doc).

    -> ``nrs_diff_w1``, ``nrs_diff_w4``, ``nrs_diff_w8``, ``nrs_diff_w12`` (primary: week 12).
    Patients missing covariates are excluded (noted); a post-baseline visit with no NRS in an
    arm is left out of the model and its row fails with the reason.
    """

    def _fit(self, cohort, rng) -> list[Estimate]:
        wide, Z, znames, usable, note = usable_patients(
            cohort, self.covariates, self.engine == "fast", need_nrs0=False
        )
        model, why = clda_design(wide, Z, znames, usable)
        if not any(w != 0 for w in model.weeks):
            return merge_rows(self.name, self.estimands, [], why, note)
        check_un_data(model, "cLDA fixed-effects design")
        rows = un_rows(self, model, self.reml, self.df, self.estimands)
        return merge_rows(self.name, self.estimands, rows, why, note)
