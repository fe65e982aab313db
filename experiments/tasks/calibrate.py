"""task=calibrate: every calibration target of STUDY.md next to its simulated value."""

from __future__ import annotations

import sys

from palliasim.experiments import config as C
from palliasim.experiments.settings import Settings
from palliasim.sim.calibrate import calibration_table
from palliasim.sim.files import atomic_write_text


def run(settings: Settings) -> int:
    sc = C.scenario_from(settings.plain)
    n = settings.task.n
    out = C.output_dir(settings)
    print(f"Simulating {n:,} patients of scenario '{sc.name}' ...", file=sys.stderr)
    table = calibration_table(sc, n=n, seed=settings.runner.seed)
    show = table.copy()
    show["ok"] = show["ok"].map({True: "yes", False: "NO"})
    print(show.to_string(index=False))
    met = int(table["ok"].sum())
    print(f"\n{met} of {len(table)} calibration targets met (scenario '{sc.name}', n = {n:,}).")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "calibration.csv", table.to_csv(index=False))
    print(f"Written: {out / 'calibration.csv'}")
    return 0
