"""palliasim.experiments.checks: CI check suites (schema, judging, output, running).

from palliasim.experiments.checks import run_suite
result = run_suite("smoke", out_dir=tmp_path, n_jobs=2)
"""

from palliasim.experiments.checks.suite import SuiteResult, load_suite, run_suite

__all__ = ["SuiteResult", "load_suite", "run_suite"]
