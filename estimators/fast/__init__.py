"""Fast exact engine: plain-numpy kernels reproducing statsmodels / lifelines fits.

Each kernel takes numpy arrays and returns a small frozen dataclass of plain
floats / arrays with ``status`` ("ok" / "warning" / "failed") and ``message``;
statistical trouble never raises.

================  =========================================  ===============================
module            kernel(s)                                  reference
================  =========================================  ===============================
ols               ols_fit(y, X); ols_batch (many fits)       statsmodels OLS
logistic          logistic_fit(y, X);                        statsmodels Logit / GLM Binomial
                  univariable_logistic_batch
tables            two_by_two, fisher_2x2, table_test         scipy.stats chi2 / fisher_exact
cox               cox_fit(time, event, X, weights, ties,     lifelines CoxPHFitter (Efron,
                  robust)                                    robust), statsmodels PHReg
logrank           logrank_test(time, event, group)           lifelines logrank_test
km                km_fit, km_median, rmst                    lifelines KaplanMeierFitter,
                                                             median_survival_times, RMST
lmm               lmm_random_intercept(y, X, groups, reml)   statsmodels MixedLM
gee               gee_exchangeable(y, X, groups)             statsmodels GEE (Gaussian,
                                                             exchangeable, robust covariance)
================  =========================================  ===============================

Every kernel returns the exact optimum (Newton-Raphson / profiled likelihood / GEE fixed point
run to convergence), which is what R's coxph, lme4 and glm report; the ``reference`` engine runs the
libraries with tolerances tight enough to reach the same point (see :mod:`estimators.engines`).
"""

from .cox import CoxResult, cox_fit, robust_cov, score_residuals
from .gee import GEEResult, gee_exchangeable
from .km import KMMedianResult, KMResult, RMSTResult, km_fit, km_median, rmst
from .lmm import LMMResult, lmm_random_intercept
from .logistic import LogisticResult, logistic_fit
from .logrank import LogrankResult, logrank_test
from .ols import OLSResult, ols_fit

__all__ = [
    "CoxResult",
    "GEEResult",
    "KMMedianResult",
    "KMResult",
    "LMMResult",
    "LogisticResult",
    "LogrankResult",
    "OLSResult",
    "RMSTResult",
    "cox_fit",
    "robust_cov",
    "score_residuals",
    "gee_exchangeable",
    "km_fit",
    "km_median",
    "lmm_random_intercept",
    "logistic_fit",
    "logrank_test",
    "ols_fit",
    "rmst",
]
