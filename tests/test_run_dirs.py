"""Run directories: a user's own temp-looking file survives a run (only our temp files are
cleaned), and every file a run writes has the mode the umask gives (0644 under umask 022)."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from palliasim.experiments import cli

TINY = ("reps=2", "estimators=[cox]", "quiet=true", "runner.n_jobs=1", "seed=5")


def _run(args, cwd, monkeypatch, capsys) -> None:
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["palliasim", *args])
    try:
        cli.main()
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err
    capsys.readouterr()


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    os.umask(old)
    yield set_mask
    os.umask(old)


def test_user_tmp_file_survives_and_modes_follow_umask(tmp_path, monkeypatch, capsys, umask):
    umask(0o022)
    out = tmp_path / "run"
    out.mkdir()
    notes = out / ".notes.tmp"
    notes.write_text("my notes")
    _run([*TINY, f"out_dir={out}"], tmp_path, monkeypatch, capsys)
    assert (out / "results.parquet").exists() and (out / "plots").is_dir()
    assert notes.read_text() == "my notes"
    files = [p for p in out.rglob("*") if p.is_file() and p != notes]
    assert len(files) > 8
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert all(m == 0o644 for m in modes.values()), modes
    dirs = {
        str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode)
        for p in out.rglob("*")
        if p.is_dir()
    }
    assert all(m == 0o755 for m in dirs.values()), dirs
    assert list(tmp_path.iterdir()) == [out]  # nothing in the current directory


def test_modes_follow_a_stricter_umask(tmp_path, monkeypatch, capsys, umask):
    umask(0o077)
    out = tmp_path / "run"
    _run([*TINY, "task.plots=false", f"out_dir={out}"], tmp_path, monkeypatch, capsys)
    files = [p for p in out.rglob("*") if p.is_file()]
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert files and all(m == 0o600 for m in modes.values()), modes


def test_default_output_dir_only_when_writing(tmp_path, monkeypatch, capsys):
    """Without out_dir=: outputs/<task>/<time>/ in the cwd, with no .hydra/ and no log file."""
    _run(["task=export", "cohort.n=30"], tmp_path, monkeypatch, capsys)
    runs = list((tmp_path / "outputs" / "export").iterdir())
    assert len(runs) == 1
    assert sorted(p.name for p in runs[0].iterdir()) == ["DATA.md", "patients.csv", "visits.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]
