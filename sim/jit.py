"""numba's ``njit`` with the project's settings, the one place kernels get compiled (the data
generator's in sim/, the estimators' in estimators/fast/).

* ``cache=True``: machine code is cached on disk beside the source (``__pycache__``, or numba's
  user cache dir when that is read-only), so a process pays the compile once per kernel and
  machine, not per run; loky workers load the cached code.
* ``fastmath=False`` (numba's default, stated): IEEE arithmetic in source order, no
  reassociation or fused multiply-add contraction, so a kernel gives the same bits in every
  process and for every ``n_jobs``.
* ``nogil=True``: threads (dask's threaded workers) can run kernels side by side.
* ``error_model="numpy"``: division by zero gives inf/nan as numpy does instead of raising
  (the kernels report statistical trouble as a status, never an exception).

A few estimator kernels hand their n x p^2 sums to BLAS through ``np.dot`` (the LMM's within
cross-products, the logistic information): the same bits in every process on one machine (the
runner runs BLAS on one thread), last-bit differences across CPU types as numpy's own SIMD code.

Kernels are written as plain loops over small arrays: the point is to run a whole Newton
iteration, bootstrap or imputation chain in one call instead of dozens of numpy calls of a few
microseconds each. ``NUMBA_DISABLE_JIT=1`` runs them as Python (slow; for debugging).
"""

from __future__ import annotations

from numba import njit as _njit

OPTIONS = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy"}


def njit(fn=None, **options):
    """``numba.njit`` with :data:`OPTIONS` (overridable per kernel): ``@njit`` or ``@njit(...)``."""
    opts = {**OPTIONS, **options}
    if fn is None:
        return lambda f: _njit(**opts)(f)
    return _njit(**opts)(fn)
