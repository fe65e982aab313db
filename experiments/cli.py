"""The ``palliasim`` console script: a Hydra app whose config group ``task`` selects the job.

    palliasim                                  # task=simulate: the default study simulation
    palliasim task=calibrate                   # the study preset against STUDY.md's numbers
    palliasim task=export scenario=study cohort.n=500 seed=7
    palliasim task=analyse data=DIR            # run the estimators on your own data
    palliasim task=score input=results.parquet # performance measures of any long results table
Configs ship inside the package (``pkg://palliasim.conf``), so the command works from any directory.

Every user error exits with code 2 and one line ``palliasim: configuration error: ...`` naming
the key, before any compute and before anything is written: our own checks (ConfigError from
settings, pre-flight, run directory) and Hydra's composition errors alike (a misspelled group
option ``scenario=stduy``, an unknown key without ``+``, bad override syntax). Hydra reports
those itself and exits 1; :func:`main` tells them apart from a failing task by a flag set when
the task function starts, and holds back Hydra's stderr until then to re-word it.
Hydra writes nothing (no ``.hydra/``, no log file: conf/config.yaml); the output directory is
created by the task that writes (config.output_dir). The Python API
(palliasim.experiments.api) goes through the same :func:`run_task`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import tempfile
from importlib import import_module
from pathlib import Path

import hydra

from palliasim.experiments import config as C
from palliasim.experiments.settings import Settings
from palliasim.sim.errors import ConfigError

#: exit code of a refused configuration or input
USAGE_ERROR = 2
PREFIX = "palliasim: configuration error:"


class _Session:
    """State of one :func:`main` call: whether the task function started, and the real stderr
    while Hydra's own messages are held back."""

    started = False
    stderr = None


def run_task(settings: Settings) -> int:
    """Run the task the settings name (its module in experiments/tasks/, imported on demand:
    a task's heavy dependencies load only when it runs); returns the exit code."""
    module = import_module(f"palliasim.experiments.tasks.{settings.task_name}")
    return int(module.run(settings) or 0)


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the time of writing (main() swaps it; tests capture it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            sys.stderr.flush()


def _logging(quiet: bool) -> None:
    """Log lines of the ``palliasim`` loggers on stderr (Hydra's job logging is disabled, so
    nothing goes to a log file); ``quiet=true`` keeps warnings and errors only."""
    logger = logging.getLogger("palliasim")
    if not any(getattr(h, "_palliasim", False) for h in logger.handlers):
        handler = logging.StreamHandler(_CurrentStderr())
        handler.setFormatter(
            logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
        )
        handler._palliasim = True
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def _release_stderr() -> None:
    """Give stderr back (with what Hydra wrote to it so far)."""
    if _Session.stderr is not None:
        held, sys.stderr = sys.stderr, _Session.stderr
        _Session.stderr = None
        if isinstance(held, io.StringIO) and held.getvalue():
            sys.stderr.write(held.getvalue())


def _refuse(message: str) -> int:
    print(f"{PREFIX} {message}", file=sys.stderr)
    return USAGE_ERROR


def execute(plain: dict) -> int:
    """Validate a composed config and run its task; a ConfigError -> exit code 2."""
    try:
        settings = Settings.from_config(plain)
        _logging(bool(settings.runner.quiet))
        return run_task(settings)
    except ConfigError as exc:
        return _refuse(str(exc))


@hydra.main(version_base="1.3", config_path="pkg://palliasim.conf", config_name="config")
def _hydra_main(cfg) -> int:
    _Session.started = True
    _release_stderr()
    code = execute(C.to_plain(cfg))
    if code:
        sys.exit(code)
    return 0


def _hydra_message(text: str) -> str:
    """Hydra's error report without its boilerplate (search path, HYDRA_FULL_ERROR hint)."""
    keep = []
    for line in text.strip().splitlines():
        if line.startswith(("Config search path", "\tprovider=", "Set the environment variable")):
            continue
        keep.append(line.rstrip())
    return " ".join(x.strip() for x in keep if x.strip()) or "Hydra could not compose the config"


def _scenario_file_args(workdir: Path) -> None:
    """``scenario=PATH`` on the command line -> a config-group option Hydra can compose
    (config.scenario_files); a missing or invalid file exits 2 before Hydra starts."""
    try:
        sys.argv[1:] = C.scenario_files(sys.argv[1:], workdir)
    except ConfigError as exc:
        sys.exit(_refuse(str(exc)))


def main() -> None:
    """The console script: Hydra composes, :func:`execute` validates and runs."""
    with tempfile.TemporaryDirectory(prefix="palliasim-scenario-") as tmp:
        _scenario_file_args(Path(tmp))
        _main()


def _main() -> None:
    _Session.started = False
    _Session.stderr, sys.stderr = sys.stderr, io.StringIO()
    try:
        _hydra_main()
    except SystemExit as exc:
        held = sys.stderr.getvalue() if isinstance(sys.stderr, io.StringIO) else ""
        if not _Session.started and exc.code not in (0, None):
            sys.stderr = _Session.stderr
            _Session.stderr = None
            sys.exit(_refuse(_hydra_message(held)))
        _release_stderr()
        raise
    finally:
        _release_stderr()


if __name__ == "__main__":  # pragma: no cover
    main()
