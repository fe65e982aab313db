"""What crosses the process boundary: frozen records for the tasks sent to the workers and the
replies they send back (picklable: plain data, the :class:`sim.Scenario` and estimator specs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from palliasim.sim.scenario import Scenario


@dataclass(frozen=True)
class ChunkTask:
    """Replications ``first..last`` of one scenario for the estimators ``methods`` (sorted by
    name); ``serial_fits`` serialises the fits (threading backend); ``extra_kinds`` are estimator
    classes registered outside the package, shipped to the worker; ``sys_path`` the directories
    of plug-in modules named by import path in ``specs`` (added to the worker's sys.path)."""

    chunk_id: str
    scenario: Scenario
    specs: dict  # name -> {"kind": ..., **options}
    methods: tuple[str, ...]
    first: int
    last: int
    seed: int
    extra_kinds: dict = field(default_factory=dict)
    sys_path: tuple[str, ...] = ()
    serial_fits: bool = False
    parent_pid: int | None = None  # the run's process: a worker it spawned ends when it dies
    constants: dict | None = None  # the scenario's solved constants (engine.constants), or None


@dataclass(frozen=True)
class ConstantsTask:
    """Solve the constants of one scenario (engine.constants)."""

    scenario: Scenario
    parent_pid: int | None = None  # as ChunkTask.parent_pid


@dataclass(frozen=True)
class ConstantsReply:
    """The solved constants of the scenarios of constants key ``key`` (``Scenario.constants_key``)
    or the traceback (``error``)."""

    key: str
    ok: bool
    seconds: float
    values: dict | None = None
    error: str = ""


@dataclass(frozen=True)
class TruthTask:
    """Compute (and cache) the truth of one scenario."""

    truth_key: str
    scenario: Scenario
    parent_pid: int | None = None  # as ChunkTask.parent_pid


@dataclass(frozen=True)
class FitError:
    """A traceback sample of an unexpected exception in ``fit`` (kept in the chunk metadata)."""

    method: str
    rep: int
    error: str
    traceback: str

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "rep": self.rep,
            "error": self.error,
            "traceback": self.traceback,
        }


@dataclass(frozen=True)
class ChunkReply:
    """The rows of a chunk (``columns``: storage.CHUNK_COLUMNS -> values) or, when ``ok`` is
    False, the traceback of the exception that stopped it (``error``)."""

    chunk_id: str
    ok: bool
    seconds: float
    columns: dict | None = None
    errors_by_method: dict = field(default_factory=dict)
    errors: tuple[FitError, ...] = ()
    pid: int | None = None
    host: str | None = None
    error: str = ""

    @property
    def n_errors(self) -> int:
        return int(sum(self.errors_by_method.values()))


@dataclass(frozen=True)
class TruthReply:
    """The truth values of a scenario (``sim.Truth.values``) or the traceback (``error``)."""

    truth_key: str
    ok: bool
    seconds: float
    values: dict[str, Any] | None = None
    error: str = ""


Task = ChunkTask | TruthTask | ConstantsTask
Reply = ChunkReply | TruthReply | ConstantsReply
