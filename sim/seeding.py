"""Seeds: every random stream is ``SeedSequence(root, spawn_key=(scenario key, stream, rep))``.

Keys come from content (the scenario's hash, a stream name), not from positions, so results do not
depend on the number of workers, the chunking, the backend or the order of scenarios, and adding a
scenario or an estimator leaves every other stream unchanged. No global RNG is ever used.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: stream ids: data is shared by all estimators (common random numbers -> paired comparisons)
STREAMS = {"data": 0, "estimator": 1, "truth": 2, "solve": 3, "example": 4}


def name_int(name: str) -> int:
    """A stable 32-bit integer from a string (e.g. an estimator's name)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def seed_sequence(root: int, scenario_key: str, stream: str, rep: int = 0, *extra: int):
    """The SeedSequence of one (scenario, stream, replication[, extra]) cell."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream '{stream}'; allowed: {', '.join(STREAMS)}")
    k = (int(scenario_key[:8], 16), int(scenario_key[8:16], 16))
    return np.random.SeedSequence(int(root), spawn_key=(*k, STREAMS[stream], int(rep), *extra))


def rng_for(root: int, scenario_key: str, stream: str, rep: int = 0, *extra: int):
    """A fresh ``numpy.random.Generator`` (PCG64) for one cell; see :func:`seed_sequence`."""
    return np.random.Generator(
        np.random.PCG64(seed_sequence(root, scenario_key, stream, rep, *extra))
    )
