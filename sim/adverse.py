"""Adverse events of the study's Table 2, per arm, with grade 3-4 and discontinuation.

Gaussian copula: latent L_ik = sqrt(r) Z_i + sqrt(1 - r) e_ik; event k under arm a occurs when
L_ik < Phi^-1(p_k(a)), so each type has exactly its configured per-arm rate and types are
positively correlated (r = adverse_events.correlation). An unlisted "other" type is solved per arm
(Gauss-Hermite quadrature, exact) so that P(any AE) hits its target. Given any AE, grade 3-4 and
discontinuation occur with probabilities grade34(a) / any(a) and discontinuation(a) / any(a).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

from palliasim.sim.errors import ConfigError

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(96)
_GH_W = _GH_W / _GH_W.sum()


def _p_any(cuts: np.ndarray, r: float) -> float:
    """P(at least one event) for thresholds ``cuts`` under the one-factor Gaussian copula."""
    if r == 0:
        return 1.0 - float(np.prod(1.0 - ndtr(cuts)))
    cond = ndtr((cuts[:, None] - np.sqrt(r) * _GH_X[None, :]) / np.sqrt(1.0 - r))
    return 1.0 - float(np.sum(_GH_W * np.prod(1.0 - cond, axis=0)))


def ae_constants(ae: dict) -> dict:
    """Thresholds per type and arm, and the solved 'other' probability per arm."""
    names = list(ae["types"])
    rates = np.array([ae["types"][k] for k in names], dtype=float)  # (K, 2)
    r = ae["correlation"]
    other = np.zeros(2)
    for a in (0, 1):
        cuts = ndtri(np.clip(rates[:, a], 1e-12, 1 - 1e-12))
        target = ae["any"][a]
        if _p_any(cuts, r) > target + 1e-9:
            raise ConfigError(
                f"adverse_events.any[{a}] = {target} is unreachable: the listed types alone give "
                f"P(any) = {_p_any(cuts, r):.3f} at adverse_events.correlation = {r}; raise the "
                "correlation or the 'any' rate"
            )
        if max(rates[:, a]) > target + 1e-12:
            raise ConfigError(f"adverse_events.any[{a}] must be >= every listed type's rate")
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            c = np.append(cuts, ndtri(max(mid, 1e-15)))
            if _p_any(c, r) > target:
                hi = mid
            else:
                lo = mid
        other[a] = 0.5 * (lo + hi)
        for key in ("grade34", "discontinuation"):
            if ae[key][a] > target + 1e-12:
                raise ConfigError(f"adverse_events.{key}[{a}] must be <= adverse_events.any[{a}]")
    all_rates = np.vstack([rates, other])
    return {
        "names": names,
        "cuts": ndtri(np.clip(all_rates, 1e-15, 1 - 1e-15)),  # (K + 1, 2)
        "other": other,
    }


def draw_ae_latent(r: float, k_types: int, rng: np.random.Generator, n: int) -> dict:
    z = rng.standard_normal(n)
    e = rng.standard_normal((k_types + 1, n))
    return {"L": np.sqrt(r) * z + np.sqrt(1.0 - r) * e, "u": rng.random((2, n))}


def adverse_events(ae: dict, k: dict, draws: dict, a) -> dict:
    """Per-type indicators and any / grade 3-4 / discontinuation under arm ``a`` (0, 1, or an
    array of per-patient arms)."""
    cuts = k["cuts"][:, a]
    if np.ndim(a) == 0:
        cuts = cuts[:, None]
    ev = draws["L"] < cuts
    out = {f"ae_{name}": ev[i].astype(np.int8) for i, name in enumerate(k["names"])}
    any_ = ev.any(axis=0)
    out["ae_any"] = any_.astype(np.int8)
    p_any = np.asarray(ae["any"], dtype=float)
    safe = np.where(p_any > 0, p_any, 1.0)
    p34 = (np.asarray(ae["grade34"], dtype=float) / safe)[a]
    pdc = (np.asarray(ae["discontinuation"], dtype=float) / safe)[a]
    out["ae_grade34"] = (any_ & (draws["u"][0] < p34)).astype(np.int8)
    out["ae_discontinuation"] = (any_ & (draws["u"][1] < pdc)).astype(np.int8)
    return out
