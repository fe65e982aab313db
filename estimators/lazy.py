"""A module imported on first attribute access: ``stats = lazy_module("scipy.stats")``.

scipy.stats costs about 0.5 s of import; the fast engine's hot paths never touch it, so a
worker that only runs them should not pay for it at start-up (each worker imports the
estimators once; a run starts a worker per core)."""

from __future__ import annotations

import importlib
from types import ModuleType


class _LazyModule:
    """Stands for module ``name``; the first attribute read imports it (then a dict lookup)."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> _LazyModule:
    """A stand-in for ``import name`` that imports on first use."""
    return _LazyModule(name)
