"""palliasim.experiments.checks: CI check suites - the schema (:mod:`.schema`), judging
(:mod:`.judging`), reports (:mod:`.output`) and running (:mod:`.running`).

    from palliasim.experiments.checks import run_suite
    result = run_suite("smoke", out_dir=tmp_path, n_jobs=2)
    assert result.passed, result.markdown
"""

from palliasim.experiments.checks.running import SuiteResult, run_suite
from palliasim.experiments.checks.schema import load_suite

__all__ = ["SuiteResult", "load_suite", "run_suite"]
