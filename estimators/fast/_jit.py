"""The estimators' kernels compile with the project's one ``njit`` (sim/jit.py: cached, IEEE
arithmetic in source order, nogil, numpy's error model)."""

from palliasim.sim.jit import OPTIONS, njit

__all__ = ["OPTIONS", "njit"]
