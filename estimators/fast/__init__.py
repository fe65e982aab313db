"""Fast exact engine: plain-numpy kernels reproducing statsmodels / lifelines fits.

Each kernel takes numpy arrays and returns a small frozen dataclass of plain
floats / arrays with ``status`` ("ok" / "warning" / "failed") and ``message``;
statistical trouble never raises.

================  =========================================  ===============================
module            kernel(s)                                  reference
================  =========================================  ===============================
ols               ols_fit(y, X)                              statsmodels OLS
logistic          logistic_fit(y, X)                         statsmodels Logit / GLM Binomial
cox               cox_fit(time, event, X, weights, ties,     lifelines CoxPHFitter (Efron,
                  robust)                                    robust), statsmodels PHReg
logrank           logrank_test(time, event, group)           lifelines logrank_test
km                km_fit, km_median, rmst                    lifelines KaplanMeierFitter,
                                                             median_survival_times, RMST
lmm               lmm_random_intercept(y, X, groups, reml)   statsmodels MixedLM
================  =========================================  ===============================

The kernels above return the exact optimum. Two reproduce instead where the reference library
stops its iterations at its default settings (the estimators' ``fast`` engine uses these, so its
rows equal the ``reference`` engine's): ``cox.cox_fit_lifelines_path`` (lifelines' damped
Newton-Raphson path, its warnings and errors) and ``lmm.lmm_random_intercept_sm_path``
(statsmodels MixedLM's BFGS path).
"""

from .cox import CoxPathResult, CoxResult, cox_fit, cox_fit_lifelines_path
from .km import KMMedianResult, KMResult, RMSTResult, km_fit, km_median, rmst
from .lmm import LMMResult, lmm_random_intercept, lmm_random_intercept_sm_path
from .logistic import LogisticResult, logistic_fit
from .logrank import LogrankResult, logrank_test
from .ols import OLSResult, ols_fit

__all__ = [
    "CoxPathResult",
    "CoxResult",
    "KMMedianResult",
    "KMResult",
    "LMMResult",
    "LogisticResult",
    "LogrankResult",
    "OLSResult",
    "RMSTResult",
    "cox_fit",
    "cox_fit_lifelines_path",
    "km_fit",
    "km_median",
    "lmm_random_intercept",
    "lmm_random_intercept_sm_path",
    "logistic_fit",
    "logrank_test",
    "ols_fit",
    "rmst",
]
