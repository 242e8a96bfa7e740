"""The robustness reproducers of test_outputs.py on the output paths merged after them:
report.json/report.html of ``run --out``, ``size --out``, ``paysim report DIR``, ``paysim compare``
and a resumed sweep's report record. Each ends in exit 0 doing the right thing or exit 2 with one
line; no link is followed out of ``--out``, no pipe blocks a read, nothing already there is lost.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_line_error as one_line_refusal, invoke_cli as invoke

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
TINY = ["--horizon", "2s", "--warmup", "0s", "-r", "2", "-q", "-j", "1"]
SIZE = ["-s", "pool", "--slo", "p99<200ms", "--horizon", "3s", "--warmup", "0s", "-r", "2", "-q", "-j", "1"]
SWEEP = """\
sweep:
  scenario: {scenario}
  vary:
    arrivals.requests.rate: [100/s, 200/s]
  replications: 2
  horizon: 2s
  warmup: 0s
"""


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    result = invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def _copy(directory: Path, target: Path) -> Path:
    target.mkdir()
    for name, data in snapshot(directory).items():
        (target / name).write_bytes(data)
    return target


@pytest.mark.parametrize("command", ["run", "size"])
def test_report_files_are_never_written_through_links(tmp_path, command):
    """report.json and report.html were written with write_text, following a link out of --out."""
    victims = {name: tmp_path / f"victim-{name}" for name in ("report.json", "report.html")}
    out = tmp_path / "out"
    out.mkdir()
    for name, victim in victims.items():
        victim.write_text("precious\n")
        (out / name).symlink_to(Path("..") / victim.name)
    args = [*TINY] if command == "run" else [*SIZE]
    one_line_refusal(invoke(command, SCENARIOS / "mmc.yaml", *args, "--out", out), "symbolic link")
    result = invoke(command, SCENARIOS / "mmc.yaml", *args, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    for name, victim in victims.items():
        assert victim.read_text() == "precious\n", name      # the link was replaced, not followed
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_size_out_is_checked_before_sizing(tmp_path, monkeypatch, kind):
    """size --out simulated every worker count first, then died on an unwritable --out."""
    monkeypatch.setattr("paysim.sizing.size_station", lambda *a, **k: pytest.fail("sized before checking --out"))
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("keep me\n")
        one_line_refusal(invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", target), "not a directory")
        assert target.read_text() == "keep me\n"
    else:
        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        monkeypatch.setattr("paysim.outputs.tempfile.mkstemp", read_only)
        one_line_refusal(invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", target), "Read-only file system")


def test_size_on_a_full_disk_loses_nothing_already_in_out(tmp_path, monkeypatch):
    """sizing.json, sizing.csv and the report were rewritten in place: a full disk truncated them."""
    out = tmp_path / "out"
    assert invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--out", out).exit_code == 0
    before = snapshot(out)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr("paysim.outputs.os.fsync", full)
    one_line_refusal(invoke("size", SCENARIOS / "mmc.yaml", *SIZE, "--seed", "9", "--out", out),
                     "No space left on device")
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


@pytest.mark.parametrize("shape", [{}, {"system": []}, [1]], ids=["no-keys", "wrong-type", "a-list"])
def test_report_of_results_in_another_shape_is_one_line(run_out, tmp_path, shape):
    out = _copy(run_out, tmp_path / "out")
    (out / "results.json").write_text(json.dumps(shape))
    before = snapshot(out)
    one_line_refusal(invoke("report", out), "not as paysim writes them")
    assert snapshot(out) == before


def _paysim(*args: object) -> subprocess.CompletedProcess:
    """In a subprocess: a read that blocks on a pipe ends in a timeout, not a hung test run."""
    env = {**os.environ, "PYTHONPATH": str(SCENARIOS.parent)}
    return subprocess.run([sys.executable, "-m", "paysim", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("fifo", ["report.json", "timeseries.png", "replications.csv"])
def test_a_pipe_in_place_of_a_result_file_does_not_hang(run_out, tmp_path, fifo):
    out = _copy(run_out, tmp_path / "out")
    (out / fifo).unlink()
    os.mkfifo(out / fifo)
    if fifo == "replications.csv":
        result = _paysim("compare", run_out, out)
    else:
        result = _paysim("report", out)
    if fifo == "timeseries.png":      # a picture that cannot be read is left out of the page
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a regular file" in lines[0], result.stderr


@pytest.mark.parametrize("record", [b"\xff\xfe{", b"[1]", b"not json"], ids=["non-utf8", "a-list", "not-json"])
def test_resumed_sweep_rewrites_an_unreadable_report_record(tmp_path, record):
    """for_sweep read the previous report.json with json.loads and crashed on anything else."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP.format(scenario=SCENARIOS / "mmc.yaml"))
    out = tmp_path / "out"
    assert invoke("sweep", sweep, "--out", out, "--no-plots", "-q", "-j", "1").exit_code == 0
    rows = (out / "results.csv").read_bytes()
    (out / "report.json").write_bytes(record)
    result = invoke("sweep", sweep, "--out", out, "--resume", "--no-plots", "-q", "-j", "1")
    assert result.exit_code == 0, result.output
    assert (out / "results.csv").read_bytes() == rows
    assert json.loads((out / "report.json").read_text())["command"] == "sweep"


def test_fit_never_writes_through_a_link_and_never_blocks_on_a_pipe(tmp_path):
    """fit --out --force wrote the scenario through a link out of its directory; a pipe as the log hung."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "fitted"
    out.mkdir()
    (out / "scenario.yaml").symlink_to(Path("..") / "victim.txt")
    log = SCENARIOS / "checkout-loadtest.jtl"
    one_line_refusal(invoke("fit", log, "--out", out / "scenario.yaml"), "exists", "--force")
    result = invoke("fit", log, "--out", out / "scenario.yaml", "--force")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious\n"
    assert not (out / "scenario.yaml").is_symlink() and "arrivals:" in (out / "scenario.yaml").read_text()
    os.mkfifo(tmp_path / "log.jtl")
    result = _paysim("fit", tmp_path / "log.jtl")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'log.jtl'}: is not a regular file (a pipe or a device), not a log file"], result.stderr
