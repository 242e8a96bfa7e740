"""report.html for a run, a sweep and a sizing: parsed with the stdlib's HTML parser."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from paysim.cli import app
from paysim.html_report import PNG_SIGNATURE

SCENARIO = """\
name: pool <test>
description: "Escaped? <script>alert('x')</script> & <b>bold</b>"
horizon: 20s
warmup: 2s
replications: 2
seed: 3
slo: {p99_latency: 1s, max_failure_rate: 1%}
arrivals:
  requests: {rate: 40/s}
stations:
  pool:
    workers: 2
    service: {dist: exponential, mean: 20ms}
"""

SWEEP = """\
sweep:
  scenario: pool.yaml
  vary:
    arrivals.requests.rate: [20/s, 40/s]
  replications: 2
  horizon: 10s
  warmup: 1s
"""


class Page(HTMLParser):
    """Tags, image sources, headings and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.headings: list[str] = []
        self.pre: list[str] = []
        self.text: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._open.append(tag)
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes.get("src", ""))
        for name in ("href", "src"):
            value = attributes.get(name) or ""
            assert not value.startswith(("http:", "https:", "//")), f"{tag} fetches {value}"

    def handle_endtag(self, tag):
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._open and self._open[-1] == "h2":
            self.headings.append(data.strip())
        if self._open and self._open[-1] == "pre":
            self.pre.append(data)


def _page(path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert "script" not in page.tags and "link" not in page.tags   # self-contained, nothing runs
    return page


def _check_images(page: Page, at_least: int) -> None:
    assert len(page.images) >= at_least, page.images
    for source in page.images:
        assert source.startswith("data:image/png;base64,"), source[:60]
        raw = base64.b64decode(source.split(",", 1)[1], validate=True)
        assert raw.startswith(PNG_SIGNATURE)
        image = pytest.importorskip("matplotlib.image").imread(io.BytesIO(raw), format="png")
        assert image.shape[0] > 50 and image.shape[1] > 50


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "pool.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def _rebuilds(directory) -> None:
    """`paysim report DIR` writes the same page again from the files in DIR."""
    original = (directory / "report.html").read_text(encoding="utf-8")
    (directory / "report.html").unlink()
    _invoke("report", str(directory))
    assert (directory / "report.html").read_text(encoding="utf-8") == original


def test_run_report(tmp_path, scenario_file):
    out = tmp_path / "run"
    _invoke("run", str(scenario_file), "--out", str(out), "-q", "-j", "1")
    page = _page(out / "report.html")
    assert page.headings[0] == "Verdict"      # the verdict against the SLO comes first
    for heading in ("Results", "Little's law", "Theory beside simulation", "Pictures", "Scenario as written",
                    "How it was run"):
        assert heading in page.headings
    text = "".join(page.text)
    assert "p99_latency" in text and "max_failure_rate" in text
    assert "M/M/c (Erlang C)" in text           # theory beside the simulation
    assert "L = λW" in text and "holds" in text
    assert page.pre == [SCENARIO]               # the scenario as written, characters unchanged
    assert "<script>alert('x')</script>" in text   # user text shown as text, not markup
    assert "seed" in text and "engine" in text and "wall time" in text
    _check_images(page, 1)                      # timeseries.png
    _rebuilds(out)


def test_sweep_report(tmp_path, scenario_file):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP, encoding="utf-8")
    out = tmp_path / "sweep"
    _invoke("sweep", str(sweep), "--out", str(out), "-q", "-j", "1")
    page = _page(out / "report.html")
    assert page.headings[0] == "Verdict"
    assert "Results per point" in page.headings
    text = "".join(page.text)
    assert "met at 2 points (0, 1)" in " ".join(text.split())   # p99 far below 1 s, no failures
    assert "pool <test>" in text
    assert "Erlang C" in text
    assert page.pre == [SWEEP, SCENARIO]
    _check_images(page, 4)                      # the capacity curves
    _rebuilds(out)


def test_size_report(tmp_path, scenario_file):
    out = tmp_path / "size"
    _invoke("size", str(scenario_file), "--station", "pool", "--slo", "p99<200ms", "--out", str(out), "-q", "-j", "1")
    for name in ("sizing.json", "sizing.csv", "sizing.png", "report.json"):
        assert (out / name).exists(), name
    page = _page(out / "report.html")
    assert page.headings[0] == "Verdict"
    text = " ".join("".join(page.text).split())
    assert "workers is the fewest with which p99<200ms holds" in text
    assert "Erlang C" in text
    _check_images(page, 1)                      # sizing.png
    _rebuilds(out)


def test_report_of_a_directory_without_results(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "report.json: not found" in lines[0], result.stderr
