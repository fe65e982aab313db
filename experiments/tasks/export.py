"""task=export: one cohort as patients.csv / visits.csv (or Parquet) plus DATA.md.

Same seed and scenario, same files: the cohort is drawn from the data stream of replication 0.
"""

from __future__ import annotations

from importlib import resources

from palliasim.experiments import config as C
from palliasim.sim.errors import ConfigError
from palliasim.sim.files import atomic_write_text
from palliasim.sim.generate import generate
from palliasim.sim.seeding import rng_for

FORMATS = ("csv", "parquet")


def run(plain: dict) -> int:
    fmt = C.get(plain, "task.format", "csv")
    if fmt not in FORMATS:
        raise ConfigError(
            f"invalid value {fmt!r} for config key 'task.format'; allowed values: {', '.join(FORMATS)}"
        )
    sc = C.scenario_from(plain)
    out = C.output_dir(plain)
    cohort = generate(sc, rng_for(plain["seed"], sc.key, "data", 0))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in (("patients", cohort.patients), ("visits", cohort.visits)):
        if fmt == "csv":
            path = atomic_write_text(
                out / f"{name}.csv", df.to_csv(index=False, float_format="%.10g")
            )
        else:
            import io

            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            path = out / f"{name}.parquet"
            tmp = out / f".{name}.parquet.tmp"
            tmp.write_bytes(buf.getvalue())
            tmp.replace(path)
        written.append(path)
    doc = resources.files("palliasim.conf").joinpath("DATA.md").read_text()
    header = (
        f"<!-- scenario '{sc.name}', n = {sc.n}, seed = {plain['seed']}, "
        f"scenario hash {sc.key[:16]} -->\n"
    )
    written.append(atomic_write_text(out / "DATA.md", header + doc))
    print(f"Exported a cohort of {sc.n} patients (scenario '{sc.name}', seed {plain['seed']}):")
    for p in written:
        print(f"  {p}")
    return 0
