"""``size --out`` is checked before anything is simulated, and its files (sizing.json, sizing.csv,
sizing.png, report.json, report.html) are written through temporary files renamed into place,
so a full disk leaves an earlier sizing and its report exactly as they were; a resumed sweep
rebuilds a report.json it cannot read.

Full and read-only disks are simulated by making the system call fail (tests run as root).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import assert_one_line_error as one_line_refusal, invoke_cli as invoke

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SIZE = ["--station", "pool", "--slo", "p99<200ms", "--horizon", "5s", "--warmup", "0s", "-r", "2", "-q", "-j", "1"]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def _fail(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def _never_sized(*args, **kwargs):
    pytest.fail("simulated before checking --out")


def test_read_only_out_is_refused_before_sizing(tmp_path, monkeypatch):
    monkeypatch.setattr("paysim.outputs.tempfile.mkstemp", _fail(errno.EROFS))
    monkeypatch.setattr("paysim.sizing.size_station", _never_sized)
    one_line_refusal(invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", tmp_path / "out"),
                     "cannot write there", "Read-only file system")


def test_out_that_is_a_file_or_holds_a_run_is_refused_before_sizing(tmp_path, monkeypatch):
    monkeypatch.setattr("paysim.sizing.size_station", _never_sized)
    target = tmp_path / "sizing"
    target.write_text("keep me\n")
    one_line_refusal(invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", target), "not a directory")
    assert target.read_text() == "keep me\n"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text("{}\n")     # a run's report.html would be replaced by the sizing's
    one_line_refusal(invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", run_dir), "another command's results")


def test_run_into_a_sizing_directory_is_refused_before_simulating(tmp_path):
    """Both write report.html: a run must not replace a sizing's page, nor a sizing a run's."""
    out = tmp_path / "out"
    assert invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", out).exit_code == 0
    one_line_refusal(invoke("run", SCENARIOS / "mmc.yaml", "--horizon", "5s", "--warmup", "0s", "-r", "2", "-q", "--out", out),
                     "another command's results", "sizing.json")


def test_full_disk_keeps_an_earlier_sizing_and_its_report(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", out).exit_code == 0
    before = snapshot(out)
    assert {"sizing.json", "sizing.csv", "sizing.png", "report.json", "report.html"} <= set(before)
    monkeypatch.setattr("paysim.outputs.os.fsync", _fail(errno.ENOSPC))   # every file fails when made durable
    result = invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--seed", "9", "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], result.output
    assert "is the fewest with which" in result.output     # the answer was printed before the write failed
    assert snapshot(out) == before                          # nothing replaced, no temporary file left


def test_report_rebuild_on_a_full_disk_keeps_the_page(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", out).exit_code == 0
    before = snapshot(out)
    monkeypatch.setattr("paysim.outputs.os.fsync", _fail(errno.ENOSPC))
    result = invoke("report", out)
    one_line_refusal(result, "report.html", "No space left on device")
    assert snapshot(out) == before


def test_a_resumed_sweep_rebuilds_an_unreadable_report_json(tmp_path):
    """A report.json that is not JSON (cut short, edited) ended a resumed sweep in a traceback
    after its points were simulated; it is rebuilt from the sweep instead."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"sweep:\n  scenario: {SCENARIOS / 'mmc.yaml'}\n  vary:\n    arrivals.requests.rate: [100/s]\n"
                     "  replications: 2\n  horizon: 2s\n  warmup: 0s\n")
    out = tmp_path / "out"
    assert invoke("sweep", sweep, "--out", out, "--no-plots", "-q", "-j", "1").exit_code == 0
    (out / "report.json").write_text("{cut sho")
    result = invoke("sweep", sweep, "--out", out, "--no-plots", "--resume", "-q", "-j", "1")
    assert result.exit_code == 0, result.output
    assert '"command": "sweep"' in (out / "report.json").read_text()
    assert (out / "report.html").exists()


@pytest.mark.parametrize("name, content", [("sizing.json", "[]\n"), ("sizing.json", '{"station": "pool"}\n'),
                                           ("report.json", '{"command": "size", "sources": 3}\n')])
def test_report_of_files_of_another_shape_is_one_line(tmp_path, name, content):
    """`paysim report DIR` over a sizing.json or report.json of another shape ended in a traceback."""
    out = tmp_path / "out"
    assert invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", out).exit_code == 0
    (out / name).write_text(content)
    one_line_refusal(invoke("report", out), "do not hold what size --out writes")
