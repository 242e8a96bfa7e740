"""A sweep's --out directory as a user may have left it: ``sweep --resume`` and ``plot`` must
never mix points computed from two versions of the inputs, and a results.csv or sweep.json
that paysim cannot have written is one line naming the file (exit 2), never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_one_line_error as refusal, invoke_cli as invoke

SCENARIO = """\
name: measured
horizon: 2s
warmup: 0s
replications: 2
arrivals:
  card: {rate: 50/s, enter: gateway}
stations:
  gateway:
    workers: 4
    service: {dist: empirical, file: service.csv, unit: ms}
"""
SWEEP = """\
sweep:
  scenario: scenario.yaml
  vary:
    arrivals.card.rate: [50/s, 100/s]
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished sweep over a scenario whose service times come from a CSV."""
    root = tmp_path_factory.mktemp("measured")
    (root / "service.csv").write_text("ms\n10\n20\n30\n")
    (root / "scenario.yaml").write_text(SCENARIO)
    (root / "sweep.yaml").write_text(SWEEP)
    result = invoke("sweep", root / "sweep.yaml", "--out", root / "out", "--no-plots", "-q", "-j", "1")
    assert result.exit_code == 0, result.output
    return root


def clone(finished: Path, tmp_path: Path) -> Path:
    for name in ("service.csv", "scenario.yaml", "sweep.yaml"):
        (tmp_path / name).write_bytes((finished / name).read_bytes())
    (tmp_path / "out").mkdir()
    for path in (finished / "out").iterdir():
        if path.is_file():
            (tmp_path / "out" / path.name).write_bytes(path.read_bytes())
    return tmp_path


def test_sweep_json_records_the_files_the_scenario_reads(finished):
    import hashlib
    import json
    inputs = json.loads((finished / "out" / "sweep.json").read_text())["inputs"]
    assert inputs == {"service.csv": hashlib.sha256((finished / "service.csv").read_bytes()).hexdigest()}


def test_resume_refuses_when_a_file_the_scenario_reads_changed(finished, tmp_path):
    root = clone(finished, tmp_path)
    results = root / "out" / "results.csv"
    lines = results.read_text().splitlines(keepends=True)
    results.write_text("".join(lines[:-1]))                    # the last point did not finish
    before = results.read_bytes()
    (root / "service.csv").write_text("ms\n10\n20\n31\n")      # new measurements
    refusal(invoke("sweep", root / "sweep.yaml", "--out", root / "out", "--resume", "--no-plots", "-q", "-j", "1"),
            "service.csv", "changed")
    assert results.read_bytes() == before


def test_resume_with_unchanged_files_finishes_the_sweep(finished, tmp_path):
    root = clone(finished, tmp_path)
    results = root / "out" / "results.csv"
    complete = results.read_text()
    results.write_text("".join(complete.splitlines(keepends=True)[:-1]))
    result = invoke("sweep", root / "sweep.yaml", "--out", root / "out", "--resume", "--no-plots", "-q", "-j", "1")
    assert result.exit_code == 0, result.output
    assert results.read_text() == complete                     # the same row, recomputed from the same data


def _corrupt_non_utf8(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"point", b"p\xffint", 1))


def _corrupt_huge_field(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    cells = lines[1].split(",")
    cells[1] = '"' + "x" * 140_000 + '"'
    path.write_text(lines[0] + ",".join(cells) + "".join(lines[2:]))


def _corrupt_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _corrupt_non_numeric(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    cells = lines[1].split(",")
    cells[-1] = "abc\n"
    path.write_text(lines[0] + ",".join(cells) + "".join(lines[2:]))


CORRUPTIONS = {"non-utf8": (_corrupt_non_utf8, "UTF-8"), "128k-field": (_corrupt_huge_field, "field limit"),
               "directory": (_corrupt_directory, "not a regular file"),
               "non-numeric": (_corrupt_non_numeric, "expected a number")}


@pytest.mark.parametrize("command", ["resume", "plot"])
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_damaged_results_csv_is_one_line(finished, tmp_path, command, corruption):
    root = clone(finished, tmp_path)
    results = root / "out" / "results.csv"
    damage, words = CORRUPTIONS[corruption]
    damage(results)
    before = results.read_bytes() if results.is_file() else None
    args = (["sweep", root / "sweep.yaml", "--out", root / "out", "--resume", "--no-plots", "-q", "-j", "1"]
            if command == "resume" else ["plot", root / "out"])
    refusal(invoke(*args), "results.csv", words)
    if before is not None:
        assert results.read_bytes() == before


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"vary": 3}', '{"vary": {"arrivals.card.rate": ["1/s"]}}',
                                  "\ufeff\x00"], ids=["syntax", "list", "vary-number", "other-grid", "binary"])
def test_malformed_sweep_json_in_plot_is_one_line(finished, tmp_path, text):
    root = clone(finished, tmp_path)
    (root / "out" / "sweep.json").write_text(text)
    refusal(invoke("plot", root / "out"), "out")


TRACED = """\
name: traced
horizon: 2s
warmup: 0s
replications: 2
arrivals:
  card: {process: trace, file: arrivals.csv, column: t, unit: s, enter: gateway}
stations:
  gateway:
    workers: 2
    service: {dist: exponential, mean: 10ms}
"""


def test_resume_refuses_when_a_replayed_trace_changed(tmp_path):
    """A replayed trace is a file the scenario reads, hashed in sweep.json like an empirical one."""
    (tmp_path / "arrivals.csv").write_text("t\n" + "".join(f"{k / 20}\n" for k in range(40)))
    (tmp_path / "scenario.yaml").write_text(TRACED)
    (tmp_path / "sweep.yaml").write_text(SWEEP.replace("arrivals.card.rate: [50/s, 100/s]",
                                                       "stations.gateway.workers: [2, 3]"))
    args = ("sweep", tmp_path / "sweep.yaml", "--out", tmp_path / "out", "--no-plots", "-q", "-j", "1")
    assert invoke(*args).exit_code == 0
    results = tmp_path / "out" / "results.csv"
    results.write_text("".join(results.read_text().splitlines(keepends=True)[:-1]))   # the last point did not finish
    before = results.read_bytes()
    (tmp_path / "arrivals.csv").write_text("t\n" + "".join(f"{k / 10}\n" for k in range(20)))   # another recording
    refusal(invoke(*args, "--resume"), "arrivals.csv", "changed")
    assert results.read_bytes() == before
