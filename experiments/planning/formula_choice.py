"""Which closed-form formula gives each method's power (:mod:`.formulas` holds the formulas):
Schoenfeld / Freedman / lifelines ``power_under_cph`` for log-rank and Cox, ANCOVA (1 - rho^2)
and the two-sample t for NRS and QoL, the t-test at the Bonferroni level for the mixed model's
per-visit contrasts, the repeated-measures design effect for a mean-over-visits endpoint, two
proportions and Hsieh for response (:func:`formula_for`, :func:`analytic_table`), and the n a
formula needs (:func:`formula_n`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats

from palliasim.experiments.planning import formulas as AP
from palliasim.experiments.planning.endpoints import endpoint_of, estimand_tag


@dataclass
class Formula:
    """A closed-form power curve ``fn(n, inputs) -> power`` and the inputs it is evaluated at.

    ``inputs`` are the planner's (true marginal effect, full n, the scenario's P(event) / SD /
    rho); ``adjusted`` the same with what the analysis actually sees; ``variants`` maps an
    assumption's name to (description, inputs) used by :func:`explain`.
    """

    label: str
    fn: Callable[[np.ndarray, dict], np.ndarray]
    inputs: dict
    alt_label: str = ""
    alt_fn: Callable[[np.ndarray, dict], np.ndarray] | None = None
    adjusted: dict | None = None
    variants: dict = field(default_factory=dict)
    nominal: float = 0.05

    def power(self, n, inputs: dict | None = None) -> np.ndarray:
        return _safe(self.fn, n, self.inputs if inputs is None else inputs)

    def alt_power(self, n) -> np.ndarray:
        if self.alt_fn is None:
            return np.full(np.shape(np.asarray(n, float)), np.nan)
        return _safe(self.alt_fn, n, self.inputs)


def _safe(fn, n, inputs) -> np.ndarray:
    """``fn(n, inputs)`` as a float array; NaN where the formula is undefined. scipy's noncentral
    t returns NaN for huge noncentrality: where a smaller n already has power > 0.9999 that NaN
    is replaced by 1."""
    n = np.atleast_1d(np.asarray(n, dtype=float))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pw = np.asarray(fn(n, inputs), dtype=float).reshape(n.shape)
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return np.full(n.shape, np.nan)
    bad = np.isnan(pw)
    if bad.any() and (~bad).any():
        for i in np.flatnonzero(bad):
            smaller = (~bad) & (n < n[i])
            if smaller.any() and pw[smaller][np.argmax(n[smaller])] > 0.9999:
                pw[i] = 1.0
    return pw


def _survival_formulas(kind, inp, alpha, alloc, ep) -> Formula:
    base = {"hr": inp["hr"], "p_event": inp["p_event"], "p0": inp["p0"], "p1": inp["p1"]}

    def schoenfeld(n, i):
        return AP.power_logrank_n(n, i["hr"], alpha, alloc, i["p_event"], "schoenfeld", True)

    def freedman(n, i):
        return AP.power_logrank_n(n, i["hr"], alpha, alloc, i["p_event"], "freedman", True)

    def lifelines(n, i):
        return np.array(
            [
                AP.lifelines_power_cph(alloc * x, (1 - alloc) * x, i["p1"], i["p0"], i["hr"], alpha)
                for x in np.atleast_1d(n)
            ]
        )

    pe = f"P(event) {inp['p_event']:.3f}"
    sch = f"Schoenfeld (HR {inp['hr']:.3f}, {pe})"
    fre = f"Freedman (HR {inp['hr']:.3f}, {pe})"
    lif = (
        f"lifelines power_under_cph (HR {inp['hr']:.3f}, P(event) {inp['p0']:.3f}/{inp['p1']:.3f})"
    )
    if kind == "cox":
        label, fn, alt_label, alt_fn = lif, lifelines, sch, schoenfeld
    else:
        label, fn, alt_label, alt_fn = sch, schoenfeld, fre, freedman
    observed = {**base, "p_event": inp["p_event_obs"], "p0": inp["p0_obs"], "p1": inp["p1_obs"]}
    hr_lr = inp.get("hr_logrank", inp["hr"])
    adjusted = {**observed, "hr": hr_lr} if np.isfinite(hr_lr) and hr_lr != 1 else observed
    variants = {
        "censoring": (
            f"censoring pattern: {inp['p_event_obs']:.3f} of the simulated patients have an "
            f"observed event vs {inp['p_event']:.3f} by the formula (uniform accrual, exponential "
            f"loss to follow-up from entry; the scenario's loss to follow-up starts after week 12 "
            f"and the arms' event curves are not S0^HR)",
            observed,
        ),
    }
    chr_ = inp["cum_hr_at_quartiles"]
    q = inp["quartiles_months"]
    nonph = (
        f"non-proportional hazards: cumulative HR {chr_[0]:.3f} / {chr_[1]:.3f} / {chr_[2]:.3f} "
        f"at {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} months (control quartiles) vs the single HR "
        f"{inp['hr']:.3f}"
        + (
            " (PFS = min(progression, death): two Weibull shapes and HRs, and the frailty U)"
            if ep == "pfs"
            else " (frailty U and covariates marginalised)"
        )
    )
    if np.isfinite(hr_lr) and hr_lr != 1:
        nonph += (
            f"; the log-rank test weights them by the events: its effective HR in the simulated "
            f"trial is {hr_lr:.3f} (Peto (O - E) / V on {inp.get('n_big', 0):,} patients)"
        )
        variants["nonph"] = (nonph, {**base, "hr": hr_lr})
    else:
        variants["nonph"] = (
            nonph,
            {**base, "p_event": inp["p_event_nonph"], "p1": inp["p1_nonph"]},
        )
    if np.isfinite(inp["hr_cond"]) and inp["hr_cond"] != 1.0:
        variants["noncollapsibility"] = (
            f"non-collapsibility of the HR: the formula uses the marginal HR {inp['hr']:.3f} "
            f"(sim.truth); the DGM's conditional HR {inp['hr_cond']:.3f} would be the wrong input",
            {**base, "hr": inp["hr_cond"]},
        )
    return Formula(label, fn, base, alt_label, alt_fn, adjusted, variants, nominal=alpha)


def _ancova_formulas(inp, alpha, alloc, what: str, cc_note: str) -> Formula:
    base = {"n_frac": 1.0, "delta": inp["delta"], "sd": inp["sd"], "rho": inp["rho"]}

    def ancova(n, i):
        return AP.ancova_power(n * i["n_frac"], i["delta"], i["sd"], i["rho"], alpha, alloc)

    def ttest(n, i):
        return AP.ttest_power(n * i["n_frac"], i["delta"], i["sd"], alpha, alloc)

    label = f"ANCOVA 1-rho^2 (diff {inp['delta']:.3g}, SD {inp['sd']:.3g}, rho {inp['rho']:.2f})"
    alt = f"two-sample t (diff {inp['delta']:.3g}, SD {inp['sd']:.3g})"
    f = inp["cc_fraction"]
    adjusted = {
        "n_frac": f,
        "delta": inp["cc_delta"],
        "sd": inp["cc_sd"],
        "rho": inp["cc_rho"],
    }
    variants = {
        "missing": (
            f"missing data and death before week 12: {what} is analysed in {f:.0%} of the "
            f"randomized patients{cc_note}",
            {**base, "n_frac": f},
        ),
        "completers": (
            f"complete cases differ: effect {inp['cc_delta']:.3g} (SD {inp['cc_sd']:.3g}, rho "
            f"{inp['cc_rho']:.2f}) among completers vs the hypothetical {inp['delta']:.3g}",
            {**adjusted, "n_frac": 1.0},
        ),
    }
    return Formula(label, ancova, base, alt, ttest, adjusted, variants, nominal=alpha)


def _mmrm_formula(wk: dict, nrs: dict, tag: str, alpha, alloc, latent: str) -> Formula:
    """MMRM (or cLDA) at one visit: ANCOVA power on the visit's difference, SD and baseline
    correlation (the visit contrast adjusts for baseline NRS), at the nominal alpha."""
    base = {"n_frac": 1.0, "delta": wk["delta"], "sd": wk["sd"], "rho": wk["rho"]}

    def ancova(n, i):
        return AP.ancova_power(n * i["n_frac"], i["delta"], i["sd"], i["rho"], alpha, alloc)

    def ttest(n, i):
        return AP.ttest_power(n * i["n_frac"], i["delta"], i["sd"], alpha, alloc)

    # under MAR the patients without this visit still carry about rho^2 of their information
    # through their earlier visits (as for the mixed model)
    r2 = min(max(nrs.get("icc_empirical", 0.0), 0.0), 1.0) ** 2
    f_eff = wk["observed"] + (1 - wk["observed"]) * r2
    adjusted = {**base, "n_frac": f_eff}
    week = tag[1:]
    variants = {
        "missing": (
            f"missing data and death: {wk['observed']:.0%} of patients have a week-{week} NRS; "
            f"under MAR the MMRM recovers about rho^2 = {r2:.2f} of the others' information "
            f"(effective n {f_eff:.0%} of randomized; an approximation)",
            adjusted,
        ),
        "integer": (latent, base),
    }
    label = f"ANCOVA 1-rho^2 (diff {wk['delta']:.3g}, SD {wk['sd']:.3g}, rho {wk['rho']:.2f})"
    alt = f"two-sample t (diff {wk['delta']:.3g}, SD {wk['sd']:.3g})"
    return Formula(label, ancova, base, alt, ttest, adjusted, variants, nominal=alpha)


def _true_effect(estimand: str, inputs: dict) -> float | None:
    ep = endpoint_of(estimand)
    if ep in ("pfs", "os"):
        return inputs[ep]["loghr"]
    if ep == "nrs":
        wk = inputs["nrs"]["weeks"].get(estimand_tag(estimand))
        return None if wk is None else wk["delta"]
    if ep == "response":
        return inputs["response"]["p1"] - inputs["response"]["p0"]
    if ep == "qol":
        q = inputs["qol"].get(estimand_tag(estimand))
        return None if q is None else q["delta"]
    return None


def formula_for(
    kind: str, estimand: str, inputs: dict, alpha: float, options=None
) -> Formula | None:
    """The closed-form power curve matching method ``kind`` on ``estimand`` (None if none).

    Without a true effect (a null scenario) every formula gives the test's nominal level."""
    options = dict(options or {})
    if _true_effect(estimand, inputs) == 0:
        level = alpha / 4 if kind == "lmm" and options.get("bonferroni", True) else alpha
        return Formula(
            f"no effect: nominal level {level:g}",
            lambda n, i: np.full(np.shape(n), i["level"]),
            {"level": level},
            nominal=level,
        )
    alloc = inputs["allocation"]
    ep = endpoint_of(estimand)
    if ep in ("pfs", "os"):
        return _survival_formulas(kind, inputs[ep], alpha, alloc, ep)
    if ep == "nrs":
        nrs = inputs["nrs"]
        tag = estimand_tag(estimand)
        wk = nrs["weeks"].get(tag)
        if wk is None:
            return None
        note = (
            f" ({nrs['dead_w12']:.0%} died before week 12, {nrs['missing_alive_w12']:.0%} alive "
            f"without a week-12 NRS)"
        )
        latent = (
            f"integer NRS: the latent effect {wk['latent_delta']:.3g} is {wk['delta']:.3g} on the "
            f"observed 0-10 scale ({nrs['zero_w12']:.0%} at 0 at week 12, clipped); the formula "
            f"takes the observed-scale difference and SD, so only the normal approximation of a "
            f"discrete bounded outcome remains"
        )
        if kind in ("mmrm", "clda"):  # cLDA: the same contrast, baseline as a response
            return _mmrm_formula(wk, nrs, tag, alpha, alloc, latent)
        if kind == "lmm":
            bonf = bool(options.get("bonferroni", True))
            a_eff = alpha / 4 if bonf else alpha
            base = {"n_frac": 1.0, "delta": wk["delta"], "sd": wk["sd"], "alpha": a_eff}

            def tt(n, i):
                r = i.get("se_ratio", 1.0)
                if r == 1.0:
                    return AP.ttest_power(n * i["n_frac"], i["delta"], i["sd"], i["alpha"], alloc)
                # Wald test whose model SE is r x the true SE (misspecified covariance)
                se = i["sd"] / np.sqrt(n * i["n_frac"] * alloc * (1 - alloc))
                zc = stats.norm.ppf(1 - i["alpha"] / 2) * r
                x = abs(i["delta"]) / se
                return stats.norm.cdf(x - zc) + stats.norm.cdf(-x - zc)

            lvl = "alpha/4 (Bonferroni)" if bonf else "alpha"
            label = f"two-sample t at {lvl} (diff {wk['delta']:.3g}, SD {wk['sd']:.3g})"
            alt_label = f"two-sample t at alpha (diff {wk['delta']:.3g}, SD {wk['sd']:.3g})"
            ratio = wk.get("cs_se_ratio", 1.0)
            r2 = min(max(nrs.get("icc_empirical", 0.0), 0.0), 1.0) ** 2
            f_eff = wk["observed"] + (1 - wk["observed"]) * r2
            adjusted = {**base, "se_ratio": ratio, "n_frac": f_eff}
            variants = {
                "cs_variance": (
                    f"compound symmetry: the random-intercept model pools the visits' variances "
                    f"(SD {wk['sd'] * ratio:.3g}) where the week-{tag[1:]} NRS has SD "
                    f"{wk['sd']:.3g}: its model SE is {ratio:.2f} x the true one"
                    + (" (anti-conservative)" if ratio < 1 else " (conservative)"),
                    adjusted,
                ),
                "missing": (
                    f"missing data and death: {wk['observed']:.0%} of patients have an NRS at "
                    f"week {tag[1:]}; under MAR the mixed model recovers about rho^2 = {r2:.2f} "
                    f"of the others' information from their earlier visits (effective n "
                    f"{f_eff:.0%} of randomized, vs {wk['observed']:.0%} for complete cases; an "
                    f"approximation)",
                    {**base, "n_frac": f_eff},
                ),
                "integer": (latent, base),
            }
            return Formula(
                label,
                tt,
                base,
                alt_label,
                lambda n, i: tt(n, {**i, "alpha": alpha}),
                adjusted,
                variants,
                nominal=a_eff,
            )
        if tag != "w12":
            return None
        ainp = {
            "delta": wk["delta"],
            "sd": wk["sd"],
            "rho": nrs["rho"],
            "cc_fraction": nrs["cc_fraction"],
            "cc_delta": nrs["cc_delta"],
            "cc_sd": nrs["cc_sd"],
            "cc_rho": nrs["cc_rho"],
        }
        fm = _ancova_formulas(ainp, alpha, alloc, "week-12 NRS", note)
        fm.variants["integer"] = (latent, fm.inputs)
        return fm
    if ep == "response":
        r = inputs["response"]
        base = {"n_frac": 1.0, "p0": r["p0"], "p1": r["p1"]}
        adjusted = {"n_frac": r["analysed_fraction"], "p0": r["p0_obs"], "p1": r["p1_obs"]}
        miss = (
            f"missing data: {r['missing_alive_w12']:.0%} alive without a week-12 assessment, "
            f"counted as {r['missing_as']}"
            + (" (dilutes the risks)" if r["missing_as"] == "nonresponse" else "")
            + f"; observed risks {r['p0_obs']:.3f} / {r['p1_obs']:.3f} vs the estimand's "
            f"{r['p0']:.3f} / {r['p1']:.3f} (death before week 12, {r['dead_w12']:.0%}, is "
            f"non-response in both)"
        )
        variants = {"missing": (miss, adjusted)}
        if estimand == "response_logor":

            def hsieh(n, i):
                pb = (1 - alloc) * i["p0"] + alloc * i["p1"]
                orr = i.get("or") or (i["p1"] * (1 - i["p0"]) / (i["p0"] * (1 - i["p1"])))
                return AP.hsieh_logistic_power(n * i["n_frac"], pb, orr, alpha, alloc)

            def twop(n, i):
                return AP.two_proportions_power(
                    n * i["n_frac"], i["p0"], i["p1"], alpha, alloc, both_tails=True
                )

            orr = math.exp(r["logor"])
            label = f"Hsieh logistic (OR {orr:.3f}, P {r['p0']:.3f} / {r['p1']:.3f})"
            if r.get("logor_adj") is not None:
                variants["noncollapsibility"] = (
                    f"non-collapsibility of the OR: the crude logistic targets the marginal OR "
                    f"{orr:.3f}; the covariate-adjusted (conditional) OR is "
                    f"{math.exp(r['logor_adj']):.3f}",
                    {**base, "or": math.exp(r["logor_adj"])},
                )
            return Formula(
                label,
                hsieh,
                base,
                f"two proportions (P {r['p0']:.3f} / {r['p1']:.3f})",
                twop,
                adjusted,
                variants,
                nominal=alpha,
            )

        def twop2(n, i):
            return AP.two_proportions_power(
                n * i["n_frac"], i["p0"], i["p1"], alpha, alloc, both_tails=True
            )

        label = f"two proportions (P {r['p0']:.3f} / {r['p1']:.3f})"
        return Formula(label, twop2, base, "", None, adjusted, variants, nominal=alpha)
    if ep == "qol":
        d = estimand_tag(estimand)
        qi = inputs["qol"].get(d)
        if qi is None:
            return None
        note = (
            f" ({inputs['nrs']['dead_w12']:.0%} died before week 12, "
            f"{inputs['nrs']['missing_alive_w12']:.0%} alive without a week-12 visit)"
        )
        return _ancova_formulas(qi, alpha, alloc, f"week-12 QoL ({d})", note)
    return None


def rm_formula(inputs: dict, alpha: float) -> Formula:
    """Repeated-measures design effect: mean of the 4 post-baseline NRS visits (formula only)."""
    nrs = inputs["nrs"]
    alloc = inputs["allocation"]
    base = {"delta": nrs["mean_delta"], "sd": nrs["mean_sd"], "icc": nrs["icc_vc"]}

    def fn(n, i):
        return AP.repeated_measures_power(n, i["delta"], i["sd"], 4, i["icc"], alpha, alloc)

    de = AP.repeated_measures_design_effect(4, nrs["icc_vc"])
    label = (
        f"repeated measures, mean of 4 visits (diff {nrs['mean_delta']:.3g}, SD "
        f"{nrs['mean_sd']:.3g}, icc {nrs['icc_vc']:.2f} from sd_intercept / sd_residual, "
        f"design effect {de:.2f})"
    )
    variants = {
        "icc": (
            f"the visits' correlation is {nrs['icc_empirical']:.2f} in the scenario (baseline "
            f"covariates and U add between-patient variance), not the variance components' "
            f"{nrs['icc_vc']:.2f}",
            {**base, "icc": min(max(nrs["icc_empirical"], 0.0), 1.0)},
        )
    }
    return Formula(label, fn, base, "", None, None, variants, nominal=alpha)


def formula_n(formula: Formula, target: float, inputs: dict | None = None) -> float:
    """Smallest continuous n with formula power >= target (inf if none below 1e8, NaN if the
    formula is undefined). Doubling search from n = 10, then ``brentq`` on log n."""

    def f(logn):
        return float(formula.power([math.exp(logn)], inputs)[0]) - target

    lo = math.log(10.0)
    flo = f(lo)
    if not np.isfinite(flo):
        return float("nan")
    if flo >= 0:
        return 10.0
    hi = lo
    while True:
        hi, prev = hi + math.log(2.0), hi
        if hi > math.log(1e8):
            return float("inf")
        fhi = f(hi)
        if not np.isfinite(fhi):
            return float("nan")
        if fhi >= 0:
            break
    return float(math.exp(optimize.brentq(f, prev, hi, xtol=1e-10)))


def analytic_table(
    method_info: Mapping[str, Mapping[str, Any]], inputs: dict, alpha: float
) -> dict[tuple[str, str], Formula]:
    """{(method, estimand): Formula} for every tested estimand of every method.

    ``method_info``: name -> {"kind", "options", "estimands"}.
    """
    out = {}
    for m, info in method_info.items():
        for e in info["estimands"]:
            f = formula_for(info["kind"], e, inputs, alpha, info.get("options"))
            if f is not None:
                out[(m, e)] = f
    return out
