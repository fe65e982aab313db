"""report.html / report.md (scoring/document.py) from a small real run directory: ADEMP
headings, tables, only embedded data: images and no network resource, the DGM's calibrated and
overridden parameters, estimands with true values, provenance; task=report re-renders; headless
Chromium renders a non-blank page (skipped without /usr/bin/chromium)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from palliasim.experiments.scoring.document import config_hash, load_run, write_report
from palliasim.experiments.tasks import report as report_task
from palliasim.sim.errors import ConfigError
from palliasim.sim.scenario import preset_params

ADEMP = [
    "Aims",
    "Data-generating mechanisms",
    "Estimands",
    "Methods",
    "Performance measures",
    "Plots",
    "Provenance",
]
DESCRIPTION = "Does the adjusted analysis remove the confounding bias of the crude Cox HR?"
CHROMIUM = Path("/usr/bin/chromium")


def _cli(*args, cwd):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "palliasim", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """6 replications of cox + logistic at n = 150 (a run-specific value), small truth sample."""
    base = tmp_path_factory.mktemp("report_run")
    out = base / "run"
    proc = _cli(
        "reps=6",
        "estimators=[cox,logistic]",
        "cohort.n=150",
        "truth.n=20000",
        "runner.n_jobs=1",
        "quiet=true",
        f"++description={DESCRIPTION}",
        f"out_dir={out}",
        cwd=base,
    )
    assert proc.returncode == 0, proc.stderr
    write_report(out)
    return out


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


def _page(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text())
    return p


def test_html_is_self_contained_and_follows_ademp(run_dir):
    page = _page(run_dir / "report.html")
    assert [h.strip() for h in page.h2] == ADEMP
    tags = [t for t, _ in page.tags]
    assert tags.count("table") >= 5 and "script" not in tags and "link" not in tags
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) == len(list((run_dir / "plots").glob("*.png"))) >= 3
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(a["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for _, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "action", "poster", "data") and value:
                assert not value.startswith(("http:", "https:", "//", "file:")), (name, value)
    text = (run_dir / "report.html").read_text()
    assert "@import" not in text and "url(" not in text


def test_report_content_from_the_run(run_dir):
    text = (run_dir / "report.html").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    perf = pd.read_csv(run_dir / "performance.csv")
    assert DESCRIPTION.replace("?", "") in text  # aims from the description key
    assert "No `description` key" not in text
    # DGM: a calibrated value, an article value, an assumed one and the override of cohort.n
    assert "<td>survival.os.log_hr</td><td>-0.109</td><td>calibrated to the article</td>" in text
    assert (
        "<td>cohort.n</td><td>150</td><td>set for this run</td><td>preset study: 205</td>" in text
    )
    assert "<td>survival.censoring.ltfu_rate</td><td>0.005</td><td>assumed</td>" in text
    # estimands with their true value and MCSE; a row per performance row
    for est in ("pfs_loghr", "os_loghr", "response_logor"):
        r = perf[perf.estimand == est].iloc[0]
        assert f"<td>{est}</td><td>study: n=150</td><td>{r['true']:.3f}</td>" in text or (
            f"<td>{est}</td><td>study</td><td>{r['true']:.3f}</td>" in text
        )
    run = load_run(run_dir)
    assert run.kind == "simulate" and len(run.perf) == len(perf) == 3
    assert f"<dd>{config_hash(manifest['config'])}</dd>" in text
    assert f"<dd>{manifest['seed']}</dd>" in text and "failures" not in DESCRIPTION
    assert "Failure policy <b>exclude</b>" in text


def test_markdown_twin_links_existing_plots(run_dir):
    md = (run_dir / "report.md").read_text()
    heads = [ln[3:].strip() for ln in md.splitlines() if ln.startswith("## ")]
    assert heads == ADEMP
    links = [ln.split("](", 1)[1].rstrip(")") for ln in md.splitlines() if ln.startswith("![")]
    assert links and all((run_dir / p).is_file() for p in links)
    assert "| estimand | method | flags | true | n used | n failed | bias | coverage |" in md


def test_task_report_rerenders_elsewhere_and_refuses_non_runs(run_dir, tmp_path):
    proc = _cli("task=report", f"input={run_dir}", f"out_dir={tmp_path / 'r'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = _page(tmp_path / "r" / "report.html")
    assert [h.strip() for h in page.h2] == ADEMP
    md = (tmp_path / "r" / "report.md").read_text()
    link = next(ln for ln in md.splitlines() if ln.startswith("!["))
    assert (tmp_path / "r" / link.split("](", 1)[1].rstrip(")")).is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a finished run directory"):
        report_task.run({"input": str(tmp_path / "empty"), "task": {"name": "report"}})
    with pytest.raises(ConfigError, match="task.kind"):
        report_task.run({"input": str(run_dir), "task": {"name": "report", "kind": "plots"}})
    assert not (tmp_path / "empty" / "report.html").exists()


#: the preset's own (calibrated, inherited from study) value, shown beside the run's override
RANDOMIZED_PFS_LOG_HR = preset_params("randomized")["survival"]["progression"]["log_hr"]


def test_power_and_check_directories(tmp_path):
    power = tmp_path / "power"
    power.mkdir()
    pd.DataFrame(
        {
            "scenario": ["randomized"] * 2,
            "endpoint": ["pfs"] * 2,
            "method": ["cox"] * 2,
            "n": [100, 200],
            "reps": [200, 200],
            "power": [0.31, 0.52],
            "power_mcse": [0.03, 0.04],
        }
    ).to_csv(power / "power.csv", index=False)
    # task=power composes `study`, simulates task.scenario=randomized with the user's overrides
    config = {
        "task": {"name": "power", "scenario": "randomized", "scenario_null": "null"},
        "seed": 5,
        "scenario_name": "study",
        "cohort": {"n": 205},
        "survival": {"progression": {"log_hr": -0.4}},
    }
    design = [{"label": "randomized: n=100", "preset": "randomized", "n": 100}]
    (power / "manifest.json").write_text(json.dumps({"config": config, "design": design}))
    write_report(power)
    text = (power / "report.html").read_text()
    assert "Simulated and analytic power (power.csv)" in text and "<td>0.520</td>" in text
    assert "palliasim: Trial planning (power), scenario &#39;randomized&#39;" in text
    # the randomized preset's own values and comments, and the override on top
    assert "<td>cohort.n</td><td>300</td><td>assumed</td><td>ASSUMPTION: a planner" in text
    assert "<td>treatment.scheme</td><td>complete</td><td>assumed</td>" in text
    assert (
        "<td>survival.progression.log_hr</td><td>-0.4</td><td>set for this run</td>"
        f"<td>preset randomized: {RANDOMIZED_PFS_LOG_HR!r}</td>"
    ) in text
    check = tmp_path / "check"
    check.mkdir()
    pd.DataFrame({"check": ["bias_cox"], "verdict": ["pass"]}).to_csv(
        check / "checks.csv", index=False
    )
    write_report(check)
    page = _page(check / "report.html")
    assert [h.strip() for h in page.h2] == ADEMP
    assert "Checks (checks.csv)" in (check / "report.html").read_text()


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed "
    "(/usr/bin/chromium absent): apt-get install chromium to run this test",
)
def test_headless_chromium_renders_a_non_blank_page(run_dir, tmp_path):
    import matplotlib.image as mpimg  # only this test reads a PNG back

    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            (run_dir / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert shot.is_file(), proc.stderr[-2000:]
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1200)
    dark = (img.mean(axis=2) < 0.6).mean()  # text, rules and table borders
    assert 0.01 < dark < 0.6, dark
    assert img.std() > 0.05
    shutil.rmtree(profile, ignore_errors=True)


def test_write_report_from_a_task_with_failures(run_dir, tmp_path):
    """The call the simulate task makes: results and perf handed in; failed rows and their
    messages are counted in the performance section."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    res = pd.read_parquet(run_dir / "results.parquet")
    res.loc[res.index[:2], ["status", "message"]] = ["failed", "Convergence failed | step 3"]
    perf = pd.read_csv(run_dir / "performance.csv")
    files = write_report(
        run_dir,
        kind="simulate",
        config=manifest["config"],
        results=res,
        perf=perf,
        target_dir=tmp_path,
    )
    text = files["html"].read_text()
    assert f"2 failed and 0 warning row(s) of {len(res)} estimate rows" in text
    assert "<td>failed</td><td>2</td><td>Convergence failed | step 3</td>" in text
    assert "Convergence failed \\| step 3" in files["md"].read_text()  # escaped in Markdown


def test_estimand_registry_entries_read_as_one_line():
    from dataclasses import dataclass, field

    from palliasim.experiments.scoring.definitions import describe, render_entry

    @dataclass(frozen=True)
    class Entry:  # the shape of an ICH E9(R1) registry record
        name: str
        variable: str
        outcome: str
        summary: str
        intercurrent: dict = field(default_factory=dict)
        missing: str = "hypothetical"
        scope: str = "marginal"
        population: str = "inclusion criteria"
        note: str = ""

    e = Entry(
        "response_logor",
        "consensus responder at week 12",
        "response",
        "log_or",
        {"death": "composite (non-response)"},
    )
    assert render_entry(e) == (
        "consensus responder at week 12; log odds ratio (marginal); intercurrent events: death: "
        "composite (non-response); missing assessments: hypothetical"
    )
    assert render_entry({"a": 1, "population": "x"}) == "a: 1"
    text, origin = describe("nrs_diff_w12")
    assert "week 12" in text and origin in ("registry", "naming scheme")
    assert describe("my_own_estimand") == ("", "")
