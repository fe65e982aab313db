"""task=report input=RUN_DIR: re-render report.html and report.md of a finished run.

The files go into RUN_DIR itself unless ``out_dir`` is given. See
:func:`palliasim.experiments.scoring.document.write_report`.
"""

from __future__ import annotations

from pathlib import Path

from palliasim.experiments.scoring.document import KINDS, write_report
from palliasim.sim.errors import ConfigError
from palliasim.sim.rules import one_of, require


def run(settings) -> int:
    """``settings``: the run's ``experiments.settings.Settings`` (``settings.plain`` is the
    resolved config) or the resolved config itself."""
    plain = getattr(settings, "plain", settings)
    if not plain.get("input"):
        raise ConfigError(
            "task=report needs input=RUN_DIR (the out_dir of a finished simulate, power or check "
            "run); config key 'input' is empty"
        )
    kind = (plain.get("task") or {}).get("kind")
    if kind is not None:
        require(kind, "task.kind", one_of(*KINDS))
    run_dir = Path(plain["input"]).expanduser().resolve()
    target = Path(plain["out_dir"]).expanduser().resolve() if plain.get("out_dir") else None
    files = write_report(run_dir, kind=kind, target_dir=target)
    print(f"Written: {files['html']}\n         {files['md']}")
    return 0
