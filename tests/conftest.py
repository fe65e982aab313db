"""Shared pytest configuration."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _sim_tests_use_private_truth_cache(request, tmp_path_factory, monkeypatch):
    """tests/test_sim_*.py never read or write the user's truth cache (~/.cache/palliasim):
    PALLIASIM_CACHE points to a per-session temporary directory (tests that exercise the cache
    set their own)."""
    if request.node.module.__name__.rsplit(".", 1)[-1].startswith("test_sim_"):
        base = tmp_path_factory.getbasetemp() / "palliasim_cache"
        monkeypatch.setenv("PALLIASIM_CACHE", str(base))
