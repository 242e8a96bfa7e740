"""Ctrl-C during a run: the command stops at once with exit code 130, says so in one line,
prints no traceback (neither from itself nor from worker processes) and leaves no process
behind.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group (the command and
its worker processes), so these tests start the command in a session of its own and signal
its group; one test signals only the command itself (``kill -INT``), one presses Ctrl-C while
paysim is still starting. Otherwise the signal is sent once the replications are clearly
under way: some process of the run has spent a second of CPU time beyond what starting
paysim costs.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LONG_RUN = ["run", str(ROOT / "scenarios" / "mmc.yaml"), "--horizon", "2h", "-q", "--engine", "simpy"]
LONG_FAST_RUN = ["run", str(ROOT / "scenarios" / "mmc.yaml"), "--horizon", "6h", "-q", "--engine", "fast"]
EXIT_WITHIN = 10.0  # seconds from SIGINT to exit

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists() or not hasattr(os, "killpg"),
                                reason="needs Linux /proc and process groups")


def _stat(pid: int) -> tuple[str, int, int, float] | None:
    """(state, parent pid, process group, CPU seconds) of a process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return fields[0], int(fields[1]), int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks


def _group(pgid: int) -> dict[int, tuple[str, int, int, float]]:
    """Every living (not zombie) process in a process group."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[2] == pgid and stat[0] not in ("Z", "X"):
                found[int(entry)] = stat
    return found


@pytest.fixture(scope="module")
def startup_cpu() -> float:
    """CPU seconds that starting paysim takes on this machine (imports dominate)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "paysim", "--version"], capture_output=True, check=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _left_running(pgid: int, grace: float = 5.0) -> dict:
    """Processes of the group still alive ``grace`` seconds after the command exited."""
    deadline = time.monotonic() + grace
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _group(pgid)


def _interrupt(jobs: int, startup_cpu: float, whole_group: bool = True, fast: bool = False,
               command: list[str] | None = None) -> tuple[int | None, str, float, dict]:
    """Start a long run (on the compiled engine if ``fast``; or ``command``), wait until it
    simulates, send SIGINT.

    Returns (exit code, stderr, seconds from SIGINT to exit, processes left running); whatever
    is still running at the end is killed.
    """
    command = command or (LONG_FAST_RUN if fast else LONG_RUN)
    process = subprocess.Popen([sys.executable, "-m", "paysim", *command, "-j", str(jobs)],
                               cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                               start_new_session=True)
    pgid = process.pid
    try:
        deadline = time.monotonic() + 120
        while True:
            group = _group(pgid)
            # -j 1 and the compiled engine's threads simulate in the command itself; with a pool the workers do
            busy = [pid for pid, (_, _, _, cpu) in group.items()
                    if (pid == process.pid) == (jobs == 1 or fast) and cpu > startup_cpu + 1.0]
            if busy:
                break
            assert process.poll() is None, f"the run ended early:\n{process.communicate()[1]}"
            assert time.monotonic() < deadline, f"the run never got going: {group}"
            time.sleep(0.1)
        started = time.monotonic()
        if whole_group:
            os.killpg(pgid, signal.SIGINT)
        else:
            os.kill(process.pid, signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {EXIT_WITHIN:g}s after SIGINT (-j {jobs}); processes: {_group(pgid)}")
        elapsed = time.monotonic() - started
        return process.returncode, stderr, elapsed, _left_running(pgid)
    finally:
        if _group(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if process.poll() is None:
            process.communicate()


def _assert_clean(code: int | None, stderr: str, elapsed: float, left: dict) -> None:
    assert "Traceback" not in stderr, stderr
    assert "KeyboardInterrupt" not in stderr, stderr
    assert code == 130, f"exit code {code}:\n{stderr}"
    assert elapsed < EXIT_WITHIN
    assert stderr.strip().splitlines() == ["interrupted"], stderr
    assert not left, f"processes left running after the command exited: {left}"


def test_ctrl_c_while_starting_up(startup_cpu):
    """Ctrl-C in the first moments, while paysim's modules are still loading."""
    process = subprocess.Popen([sys.executable, "-m", "paysim", *LONG_RUN, "-j", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        while (stat := _stat(process.pid)) is not None and stat[3] < min(0.2, startup_cpu / 4):
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=EXIT_WITHIN)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert "Traceback" not in stderr, stderr
    assert process.returncode == 130, f"exit code {process.returncode}:\n{stderr}"


def test_ctrl_c_stops_a_run_in_one_process(startup_cpu):
    _assert_clean(*_interrupt(1, startup_cpu))


def test_ctrl_c_stops_a_run_on_a_process_pool(startup_cpu):
    _assert_clean(*_interrupt(2, startup_cpu))


def test_sigint_to_the_command_alone_stops_its_workers(startup_cpu, tmp_path):
    """On a sweep: it hands its replications to the same execution layer as a run, so this
    checks that Ctrl-C path for sweeps too."""
    sweep = ["sweep", str(ROOT / "scenarios" / "mmc-sweep.yaml"), "--out", str(tmp_path / "out"), "-q",
             "--no-plots", "--engine", "simpy"]
    _assert_clean(*_interrupt(2, startup_cpu, whole_group=False, command=sweep))


def test_ctrl_c_stops_the_compiled_engine_on_threads(startup_cpu):
    """Its replications run in compiled code on threads, which never look at signals."""
    _assert_clean(*_interrupt(2, startup_cpu, fast=True))


def test_pool_workers_exit_when_the_command_is_killed(startup_cpu):
    """kill -9 leaves the command no chance to stop its workers: they must notice and exit themselves."""
    process = subprocess.Popen([sys.executable, "-m", "paysim", *LONG_RUN, "-j", "2"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    pgid = process.pid
    try:
        deadline = time.monotonic() + 120
        while not [pid for pid, stat in _group(pgid).items() if pid != process.pid and stat[3] > startup_cpu + 1.0]:
            assert process.poll() is None and time.monotonic() < deadline, "the pool never got going"
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        left = _left_running(pgid, grace=EXIT_WITHIN)
        assert not left, f"workers outlived the killed command: {left}"
    finally:
        if _group(pgid):
            os.killpg(pgid, signal.SIGKILL)


def test_ctrl_c_during_validate_exits_130(tmp_path, monkeypatch):
    """validate checks each file in turn; Ctrl-C stops it with 130, not 2 (a problem in a file)."""
    from typer.testing import CliRunner

    from paysim.cli import app

    def interrupted(path, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("paysim.cli.load_scenario", interrupted)
    result = CliRunner().invoke(app, ["validate", str(ROOT / "scenarios" / "mmc.yaml"), str(ROOT / "scenarios" / "mmck.yaml")])
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines() == ["interrupted"]
