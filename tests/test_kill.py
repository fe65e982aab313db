"""Workers end when the run's process dies: SIGKILL the parent of a loky run mid-way, then no
worker process it spawned survives a short grace period (engine.worker.watch_parent), and the
finished chunks are on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_runner import chunk_files

ROOT = str(Path(__file__).resolve().parents[1])
GRACE = 15.0  # seconds a worker may take to notice (it polls every 0.5 s; the machine is shared)

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")


def _children(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (from /proc/<pid>/stat)."""
    out = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.add(int(d.name))
    return out


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_sigkill_of_the_parent_ends_every_worker(tmp_path):
    out = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        import tests.test_runner as t
        from palliasim.experiments.engine.runner import run_experiment
        run_experiment(t.make_points(), t.SPECS, t.settings(chunk_size=2, n_jobs=2), {str(out)!r})
    """)
    # each toy fit sleeps: the workers are busy when the parent is killed
    env = {**os.environ, "PALLIASIM_TEST_DELAY": "0.3"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while not chunk_files(out):
            assert proc.poll() is None, "the run ended before a chunk was written"
            assert time.monotonic() < deadline, "no chunk written in 90 s"
            workers |= _children(proc.pid)
            time.sleep(0.02)
        workers |= _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
            proc.wait()
    assert workers, "the run spawned no worker process"
    assert 1 <= len(chunk_files(out)) < 12, "the run should have been killed half-way"
    deadline = time.monotonic() + GRACE
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [p for p in workers if _alive(p)]
    for p in survivors:  # do not leave them behind even when the test fails
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"worker(s) {survivors} survived the parent by {GRACE} s"
