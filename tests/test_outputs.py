"""Nothing a user already has is lost or mixed: ``run --out`` next to a sweep's results, links,
unwritable and full disks, a closed or full stdout.

Each test is a reproducer from a robustness pass: it must end in exit 0 doing the right thing or
exit 2 with one line (no traceback), and the bytes already in the directory must be unchanged.
Full and read-only disks are simulated by making the system call fail (tests run as root,
which ignores file permissions).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_line_error as one_line_refusal, invoke_cli as invoke

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
TINY = ["--horizon", "2s", "--warmup", "0s", "-r", "2", "-q", "-j", "1"]
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
def swept(tmp_path_factory) -> Path:
    """A finished two-point sweep's --out directory."""
    root = tmp_path_factory.mktemp("swept")
    sweep = root / "sweep.yaml"
    sweep.write_text(SWEEP.format(scenario=SCENARIOS / "mmc.yaml"))
    result = invoke("sweep", sweep, "--out", root / "out", "--no-plots", "-q", "-j", "1")
    assert result.exit_code == 0, result.output
    return root / "out"


def copy_of(directory: Path, tmp_path: Path) -> Path:
    target = tmp_path / directory.name
    target.mkdir()
    for name, data in snapshot(directory).items():
        (target / name).write_bytes(data)
    return target


def test_run_refuses_an_out_holding_a_sweep(swept, tmp_path):
    out = copy_of(swept, tmp_path)
    before = snapshot(out)
    one_line_refusal(invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", out), "sweep.json", "--force")
    assert snapshot(out) == before


def test_run_with_force_overwrites_a_finished_sweep(swept, tmp_path):
    out = copy_of(swept, tmp_path)
    result = invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "results.csv").read_text().startswith("metric,mean,ci95_low,ci95_high")


def test_run_never_writes_into_a_running_sweep(swept, tmp_path):
    out = copy_of(swept, tmp_path)
    before = snapshot(out)
    with (out / ".sweep.lock").open("a") as lock:      # what a running sweep holds
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        one_line_refusal(invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", out, "--force"), "sweep is writing")
    assert snapshot(out) == before


def test_run_again_into_its_own_out_replaces_its_files(tmp_path):
    for seed in ("1", "2"):
        result = invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--seed", seed, "--out", tmp_path / "out")
        assert result.exit_code == 0, result.output
    assert '"seed": 2' in (tmp_path / "out" / "results.json").read_text()
    mask = os.umask(0o022)
    os.umask(mask)
    for path in (tmp_path / "out").iterdir():      # as readable as a file written in place
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path


def _link_out_of(out: Path, name: str) -> Path:
    """Make ``out/name`` a link to a file beside ``out`` holding "precious"; return that file."""
    victim = out.parent / "victim.txt"
    victim.write_text("precious\n")
    out.mkdir()
    (out / name).symlink_to(Path("..") / victim.name)
    return victim


def test_links_in_out_are_never_followed(tmp_path):
    out = tmp_path / "out"
    victim = _link_out_of(out, "results.json")
    one_line_refusal(invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", out), "symbolic link")
    result = invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious\n"                 # the link was replaced, not followed
    assert not (out / "results.json").is_symlink()


@pytest.mark.parametrize("kind", ["file", "devnull"])
def test_out_that_is_not_a_directory_is_refused_before_simulating(tmp_path, monkeypatch, kind):
    target = Path(os.devnull) if kind == "devnull" else tmp_path / "results"
    if kind == "file":
        target.write_text("keep me\n")
    monkeypatch.setattr("paysim.cli.simulate", lambda *a, **k: pytest.fail("simulated before checking --out"))
    one_line_refusal(invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", target), "not a directory")
    if kind == "file":
        assert target.read_text() == "keep me\n"


def _fail(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def test_read_only_out_is_refused_before_simulating(tmp_path, monkeypatch):
    monkeypatch.setattr("paysim.outputs.tempfile.mkstemp", _fail(errno.EROFS))
    monkeypatch.setattr("paysim.cli.simulate", lambda *a, **k: pytest.fail("simulated before checking --out"))
    one_line_refusal(invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", tmp_path / "out"),
                     "cannot write there", "Read-only file system")


def test_full_disk_loses_nothing_already_in_out(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", out).exit_code == 0
    before = snapshot(out)
    monkeypatch.setattr("paysim.outputs.os.fsync", _fail(errno.ENOSPC))   # every file fails when it is made durable
    result = invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--seed", "7", "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], result.output
    assert "system" in result.output            # the report was printed before the write failed
    assert snapshot(out) == before               # no file replaced, no temporary file left behind
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_sweep_on_a_full_disk_keeps_finished_points_and_resumes(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP.format(scenario=SCENARIOS / "mmc.yaml"))
    clean = invoke("sweep", sweep, "--out", tmp_path / "clean", "--no-plots", "-q", "-j", "1")
    assert clean.exit_code == 0, clean.output
    from paysim.sweep import storage
    real = storage.Results.append
    calls = []

    def append_then_full(self, point, params, metrics):
        calls.append(point)
        if len(calls) > 1:
            monkeypatch.setattr("paysim.sweep.storage.os.fsync", _fail(errno.ENOSPC))
        real(self, point, params, metrics)

    monkeypatch.setattr(storage.Results, "append", append_then_full)
    full = invoke("sweep", sweep, "--out", tmp_path / "out", "--no-plots", "-q", "-j", "1")
    one_line_refusal(full, "No space left on device", "--resume")
    monkeypatch.undo()
    resumed = invoke("sweep", sweep, "--out", tmp_path / "out", "--resume", "--no-plots", "-q", "-j", "1")
    assert resumed.exit_code == 0, resumed.output
    # the rows are the same bytes as an uninterrupted sweep's: nothing lost, nothing mixed
    assert sorted((tmp_path / "out" / "results.csv").read_text().splitlines()) == \
        sorted((tmp_path / "clean" / "results.csv").read_text().splitlines())


def test_sweep_into_a_read_only_directory_is_one_line(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP.format(scenario=SCENARIOS / "mmc.yaml"))
    out = tmp_path / "out"
    out.mkdir()
    real_open = Path.open

    def read_only(self, mode="r", *args, **kwargs):
        if self.parent == out and any(flag in mode for flag in "wax+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", read_only)
    one_line_refusal(invoke("sweep", sweep, "--out", out, "--no-plots", "-q", "-j", "1"), "Read-only file system")


def _paysim(*args: str, stdout) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SCENARIOS.parent)}
    return subprocess.run([sys.executable, "-m", "paysim", *args], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_closed_stdout_ends_quietly(as_json):
    read, write = os.pipe()
    os.close(read)
    try:
        result = _paysim("analytic", str(SCENARIOS / "mmc.yaml"), *(["--json"] if as_json else []), stdout=write)
    finally:
        os.close(write)
    # quiet, with the exit code click and rich use for a reader that went away (| head)
    assert result.returncode == 1 and result.stderr == "", result.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_stdout_is_one_line():
    with open("/dev/full", "w") as full:
        result = _paysim("analytic", str(SCENARIOS / "mmc.yaml"), "--json", stdout=full)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == ["error: cannot write to standard output (No space left on device)"]


def test_sweep_never_follows_a_link_in_out(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP.format(scenario=SCENARIOS / "mmc.yaml"))
    out = tmp_path / "out"
    out.mkdir()
    (out / ".sweep.lock").symlink_to(Path("..") / "victim.txt")     # a link to a file not there yet
    one_line_refusal(invoke("sweep", sweep, "--out", out, "--no-plots", "-q", "-j", "1"), "cannot write there")
    assert not (tmp_path / "victim.txt").exists()


# ---- the same guarantees on the output paths merged after them: report.json/report.html of
# run --out, size --out, paysim report DIR, paysim compare, fit --out, a resumed sweep's record

SIZE = ["-s", "pool", "--slo", "p99<200ms", "--horizon", "3s", "--warmup", "0s", "-r", "2", "-q", "-j", "1"]


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    result = invoke("run", SCENARIOS / "mmc.yaml", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return out


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


@pytest.mark.parametrize("shape", [{}, {"system": []}, [1]], ids=["no-keys", "wrong-type", "a-list"])
def test_report_of_results_in_another_shape_is_one_line(run_out, tmp_path, shape):
    out = copy_of(run_out, tmp_path)
    (out / "results.json").write_text(json.dumps(shape))
    before = snapshot(out)
    one_line_refusal(invoke("report", out), "do not hold what")
    assert snapshot(out) == before


@pytest.mark.parametrize("fifo", ["report.json", "timeseries.png", "replications.csv"])
def test_a_pipe_in_place_of_a_result_file_does_not_hang(run_out, tmp_path, fifo):
    out = copy_of(run_out, tmp_path)
    (out / fifo).unlink()
    os.mkfifo(out / fifo)
    if fifo == "replications.csv":
        result = _paysim("compare", str(run_out), str(out), stdout=subprocess.PIPE)
    else:
        result = _paysim("report", str(out), stdout=subprocess.PIPE)
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
    out = tmp_path / "fitted"
    victim = _link_out_of(out, "scenario.yaml")
    log = SCENARIOS / "checkout-loadtest.jtl"
    one_line_refusal(invoke("fit", log, "--out", out / "scenario.yaml"), "exists", "--force")
    result = invoke("fit", log, "--out", out / "scenario.yaml", "--force")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "precious\n"
    assert not (out / "scenario.yaml").is_symlink() and "arrivals:" in (out / "scenario.yaml").read_text()
    os.mkfifo(tmp_path / "log.jtl")
    result = _paysim("fit", str(tmp_path / "log.jtl"), stdout=subprocess.PIPE)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'log.jtl'}: is not a regular file (a pipe or a device), not a log file"], result.stderr
