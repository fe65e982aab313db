"""task=export: one cohort as patients.csv / visits.csv (or Parquet) plus DATA.md.

Same seed and scenario, same files: the cohort is drawn from the data stream of replication 0.
"""

from __future__ import annotations

from functools import partial
from importlib import resources

from palliasim.experiments import config as C
from palliasim.experiments.settings import Settings
from palliasim.sim.files import atomic_write, atomic_write_text
from palliasim.sim.generate import generate
from palliasim.sim.seeding import rng_for


def run(settings: Settings) -> int:
    fmt = settings.task.format
    seed = settings.runner.seed
    sc = C.scenario_from(settings.plain)
    out = C.output_dir(settings)
    cohort = generate(sc, rng_for(seed, sc.key, "data", 0))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in (("patients", cohort.patients), ("visits", cohort.visits)):
        if fmt == "csv":
            path = atomic_write_text(
                out / f"{name}.csv", df.to_csv(index=False, float_format="%.10g")
            )
        else:
            path = atomic_write(out / f"{name}.parquet", partial(df.to_parquet, index=False))
        written.append(path)
    doc = resources.files("palliasim.conf").joinpath("DATA.md").read_text()
    header = (
        f"<!-- scenario '{sc.name}', n = {sc.n}, seed = {seed}, scenario hash {sc.key[:16]} -->\n"
    )
    written.append(atomic_write_text(out / "DATA.md", header + doc))
    print(f"Exported a cohort of {sc.n} patients (scenario '{sc.name}', seed {seed}):")
    for p in written:
        print(f"  {p}")
    return 0
