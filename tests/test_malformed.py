"""Malformed scenario files, end to end: the real ``paysim`` command in a subprocess.

Each file below is wrong in one distinct way. ``paysim run FILE`` must refuse it before
simulating: exit code 2, no traceback, a message of a few lines naming the file, the
key path and YAML line where they apply, and what was expected. The library-level
cases (every message, every key path) are in test_validation.py; this file checks what
a user actually sees, including files that cannot be read at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import assert_one_line_error, invoke_cli as invoke
from typer.testing import CliRunner

from paysim.cli import app
from paysim.engine import RunawayError, run_replication
from paysim.errors import PaysimError
from paysim.runner import observer_for
from paysim.scenario import Station, scenario_from_data

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60  # seconds per subprocess: importing paysim takes 0.5-2 s; refusing a file must not take longer

# Line numbers in the cases below refer to this text; keep it stable.
BASE = """\
name: checkout
description: a small checkout, for malformed-file tests
horizon: 10m
warmup: 1m
replications: 2
arrivals:
  card:
    rate: 50/s
    enter: gateway
stations:
  gateway:
    workers: 4
    queue: 100
    service: {dist: exponential, mean: 20ms}
    next: risk
  risk:
    workers: 2
    service: {dist: gamma, mean: 10ms, cv: 0.5}
    next: {acquirer: 0.9, done: 0.1}
  acquirer:
    workers: 8
    service: {dist: lognormal, median: 100ms, p99: 400ms}
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def laughs(levels: int = 9, width: int = 10) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for depth in range(1, levels + 1):
        lines.append(f"a{depth}: &a{depth} [" + ", ".join([f"*a{depth - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


DIRECTORY = object()  # make a directory where the scenario file should be
MISSING = object()    # name a file that does not exist


@dataclass(frozen=True)
class Case:
    id: str
    content: object                 # str (UTF-8), bytes, DIRECTORY or MISSING
    key: str | None                 # key path the message must name ("" = the whole file, None = not checked)
    line: int | None                # YAML line the message must give (None = not checked)
    expected: str                   # a phrase that says what was expected (case-insensitive)
    extra_files: dict[str, bytes] = field(default_factory=dict)  # written beside the scenario
    args: tuple[str, ...] = ()      # extra command-line options


CSV = "latencies.csv"
# a key of the language that this version refuses by name (the set shrinks as features land)
PLANNED = "batch" if "batch" in Station.planned else min(Station.planned, default=None)


def empirical(**columns: str) -> str:
    spec = ", ".join(f"{k}: {v}" for k, v in {"dist": "empirical", "file": CSV, **columns}.items())
    return edit("service: {dist: exponential, mean: 20ms}", "service: {" + spec + "}")


CASES = [
    # --- not YAML, or not a mapping
    Case("yaml-unclosed-bracket", edit("next: risk", "next: [risk"), "", 16, "not valid YAML"),
    Case("yaml-mapping-in-a-value", edit("rate: 50/s", "rate: 50/s: 3"), "", 8, "not valid YAML"),
    Case("yaml-tab-indentation", edit("    workers: 4\n", "\tworkers: 4\n"), "", 12, "not valid YAML"),
    Case("yaml-unterminated-quote", edit("name: checkout", 'name: "checkout'), "", None, "not valid YAML"),
    Case("empty-file", "", "", None, "empty"),
    Case("only-whitespace-and-comments", "   \n\n# a scenario goes here\n  \n", "", None, "empty"),
    Case("top-level-list", "- horizon: 10m\n- arrivals: {}\n", "", 1, "mapping"),
    Case("top-level-number", "42\n", "", 1, "mapping"),
    Case("stations-is-a-list", edit("stations:\n  gateway:\n", "stations:\n- gateway:\n").replace("\n  risk:", "\n- risk:")
         .replace("\n  acquirer:", "\n- acquirer:"), "stations", 10, "mapping"),
    Case("arrival-is-a-list", edit("  card:\n    rate: 50/s\n    enter: gateway\n", "  card: [50/s, gateway]\n"),
         "arrivals.card", 7, "mapping"),
    Case("station-is-empty", edit("  acquirer:\n    workers: 8\n    service: {dist: lognormal, median: 100ms, p99: 400ms}\n",
                                  "  acquirer:\n"), "stations.acquirer", 20, "mapping"),
    Case("binary-junk", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x80\x81" + bytes(range(256)), "", None, "UTF-8"),
    Case("utf16-with-bom", BASE.encode("utf-16"), "", None, "UTF-8"),
    Case("nul-character", edit("name: checkout", "name: check\x00out"), "", 1, "not allowed"),
    Case("two-documents", BASE + "---\nhorizon: 1m\n", "", 23, "single YAML document"),
    Case("nested-thousands-deep", "horizon: " + "[" * 5000 + "]" * 5000 + "\n", "", None, "nested"),
    Case("file-too-large", "# " + "x" * 2_100_000 + "\n" + BASE, "", None, "larger than"),
    Case("too-many-values", "horizon: [" + "1, " * 250_000 + "1]\n", "", 1, "more than 200,000 values"),
    Case("directory-not-a-file", DIRECTORY, "", None, "directory"),
    Case("file-does-not-exist", MISSING, "", None, "no such file"),
    # --- unsafe or abusive YAML
    Case("python-object-tag", edit("horizon: 10m", "horizon: !!python/object/apply:os.system ['echo pwned']"),
         "", 3, "not allowed"),
    Case("custom-tag", edit("horizon: 10m", "horizon: !Duration 10m"), "", 3, "not allowed"),
    Case("billion-laughs", laughs(), "", None, "aliases"),
    Case("duplicate-key", edit("    queue: 100\n", "    queue: 100\n    workers: 6\n"),
         "stations.gateway.workers", 14, "duplicate key"),
    # --- keys
    Case("unknown-key-did-you-mean", edit("workers: 4", "wrokers: 4"),
         "stations.gateway.wrokers", 12, "did you mean 'workers'"),
    Case("unknown-top-level-key", edit("horizon: 10m", "horizn: 10m"), "horizn", 3, "did you mean 'horizon'"),
    Case("key-with-a-newline", edit("    queue: 100\n", '    "que\\nue": 100\n'), None, 13, "did you mean 'queue'"),
    Case("key-that-looks-like-markup", edit("    queue: 100\n", '    "[/red]": 100\n'), None, 13, "unknown key"),
    Case("missing-required-key", edit("horizon: 10m\n", ""), "horizon", None, "required"),
    *([Case("planned-but-not-simulated", edit("    workers: 8\n", f"    workers: 8\n    {PLANNED}: {{}}\n"),
            f"stations.acquirer.{PLANNED}", 22, "not simulated by this version yet")] if PLANNED else []),
    # --- distributions
    Case("unknown-distribution", edit("dist: lognormal", "dist: lognormla"),
         "stations.acquirer.service.dist", 22, "did you mean 'lognormal'"),
    Case("distribution-wrong-parameters", edit("cv: 0.5", "sd: 5ms"), "stations.risk.service", 18, "gamma takes"),
    Case("p99-below-median", edit("p99: 400ms", "p99: 50ms"), "stations.acquirer.service", 22, "median < p99"),
    Case("p99-beyond-any-lognormal", edit("median: 100ms, p99: 400ms", "mean: 10ms, p99: 1s"),
         "stations.acquirer.service", 22, "p99"),
    # --- units
    Case("duration-unknown-unit", edit("horizon: 10m", "horizon: 10 parsecs"), "horizon", 3, "expected a duration"),
    Case("duration-unit-without-number", edit("mean: 20ms", "mean: ms"),
         "stations.gateway.service.mean", 14, "expected a duration"),
    Case("rate-unknown-unit", edit("rate: 50/s", "rate: 50/fortnight"), "arrivals.card.rate", 8, "expected a rate"),
    Case("rate-without-number", edit("rate: 50/s", "rate: /s"), "arrivals.card.rate", 8, "expected a rate"),
    Case("rate-is-a-duration", edit("rate: 50/s", "rate: 20ms"), "arrivals.card.rate", 8, "expected a rate"),
    Case("negative-duration", edit("warmup: 1m", "warmup: -30s"), "warmup", 4, "not negative"),
    Case("nan-duration", edit("mean: 20ms", "mean: .nan"), "stations.gateway.service.mean", 14, "finite"),
    Case("infinite-horizon", edit("horizon: 10m", "horizon: .inf"), "horizon", 3, "finite"),
    Case("huge-integer-horizon", edit("horizon: 10m", "horizon: " + "9" * 500), "horizon", 3, "too large"),
    # --- counts
    Case("zero-workers", edit("workers: 4", "workers: 0"), "stations.gateway.workers", 12, "whole number from 1"),
    Case("negative-workers", edit("workers: 4", "workers: -3"), "stations.gateway.workers", 12, "whole number from 1"),
    Case("fractional-workers", edit("workers: 4", "workers: 2.5"), "stations.gateway.workers", 12, "whole number"),
    Case("zero-cores", edit("workers: 4", "workers: 4\n    cores: 0"), "stations.gateway.cores", 13, "whole number from 1"),
    Case("unlimited-workers-misspelt", edit("workers: 4", "workers: unlimted"), "stations.gateway.workers", 12,
         "or unlimited"),
    Case("unlimited-workers-with-queue", edit("workers: 4", "workers: unlimited"), "stations.gateway.queue", 13,
         "never queues"),
    Case("unlimited-workers-with-executor", edit("workers: 8", "workers: unlimited\n    executor: {core: 4}"),
         "stations.acquirer", None, "leave out 'workers'"),
    Case("cores-with-executor", edit("workers: 8", "cores: 4\n    executor: {core: 4}"), "stations.acquirer.cores",
         None, "not supported"),
    Case("huge-worker-count", edit("workers: 4", "workers: 100000000000000000000000000000"),
         "stations.gateway.workers", 12, "whole number"),
    Case("negative-queue", edit("queue: 100", "queue: -1"), "stations.gateway.queue", 13, "whole number from 0"),
    Case("zero-replications", edit("replications: 2", "replications: 0"), "replications", 5, "whole number from 1"),
    Case("erlang-fractional-k", edit("{dist: gamma, mean: 10ms, cv: 0.5}", "{dist: erlang, mean: 10ms, k: 1.5}"),
         "stations.risk.service.k", 18, "whole number"),
    # --- probabilities and routing
    Case("probability-above-one", edit("{acquirer: 0.9, done: 0.1}", "{acquirer: 110%, done: -10%}"),
         "stations.risk.next.acquirer", 19, "between 0 and 1"),
    Case("probability-not-a-number", edit("done: 0.1", "done: often"), "stations.risk.next.done", 19, "probability"),
    Case("routing-does-not-sum-to-one", edit("{acquirer: 0.9, done: 0.1}", "{acquirer: 0.8, done: 0.1}"),
         "stations.risk.next", 19, "sum to 1"),
    Case("next-unknown-station", edit("next: risk", "next: riks"), "stations.gateway.next", 15, "did you mean 'risk'"),
    Case("breaker-window-without-unit", edit("    next: risk\n", "    next: risk\n    calls: [{station: acquirer, breaker: {window: 20}}]\n"),
         "stations.gateway.calls.0.breaker.window", 16, "'20 calls' or a duration"),
    Case("enter-unknown-station", edit("enter: gateway", "enter: gatway"), "arrivals.card.enter", 9,
         "did you mean 'gateway'"),
    Case("calls-unknown-station", edit("    queue: 100\n", "    queue: 100\n    calls: [acquirr]\n"),
         "stations.gateway.calls.0", 14, "did you mean 'acquirer'"),
    Case("routing-cycle-without-exit", edit("{acquirer: 0.9, done: 0.1}", "{acquirer: 0.9, gateway: 0.1}")
         + "    next: risk\n", "stations.risk.next", 19, "never leave"),
    Case("no-arrival-streams", edit("  card:\n    rate: 50/s\n    enter: gateway\n", "").replace("arrivals:\n", "arrivals: {}\n"),
         "arrivals", 6, "at least one arrival stream"),
    Case("no-stations", "horizon: 10m\narrivals:\n  card: {rate: 50/s}\nstations: {}\n", "stations", 4,
         "at least one station"),
    # --- the run as a whole
    Case("warmup-equal-to-horizon", edit("warmup: 1m", "warmup: 10m"), "warmup", 4, "shorter than the horizon"),
    Case("warmup-longer-than-horizon", edit("warmup: 1m", "warmup: 1h"), "warmup", 4, "shorter than the horizon"),
    Case("warmup-override-beyond-horizon", BASE, "warmup", None, "shorter than the horizon", args=("--warmup", "20m")),
    Case("horizon-override-without-unit", BASE, "horizon", None, "expected a duration", args=("--horizon", "ten")),
    Case("backlog-beyond-the-queue", edit("    queue: 100\n", "    queue: 100\n    backlog: 200\n"),
         "stations.gateway.backlog.waiting", None, "more than the queue's 100 places"),
    Case("backlog-with-a-warmup", edit("    queue: 100\n", "    queue: 100\n    backlog: 50\n"),
         "warmup", 4, "would discard the transient"),
    Case("backlog-of-an-unknown-stream", edit("    queue: 100\n", "    queue: 100\n    backlog: {waiting: 5, stream: crad}\n"),
         "stations.gateway.backlog.stream", None, "unknown arrival stream"),
    # --- files a scenario refers to
    Case("empirical-file-missing", empirical(), "stations.gateway.service.file", 14, "cannot read"),
    Case("empirical-file-is-a-directory", empirical(file="."), "stations.gateway.service.file", 14, "not a CSV file"),
    Case("empirical-csv-with-junk", empirical(column="ms", unit="ms"), "stations.gateway.service.file", 14,
         "expected a number", extra_files={CSV: b"ms\n12\n15\nabc\n"}),
    Case("empirical-csv-empty", empirical(), "stations.gateway.service.file", 14, "empty", extra_files={CSV: b""}),
    Case("empirical-csv-binary", empirical(), "stations.gateway.service.file", 14, "cannot read",
         extra_files={CSV: b"\x89PNG\r\n\x1a\n\xff\xfe\x80"}),
    Case("empirical-csv-nan", empirical(), "stations.gateway.service.file", 14, "finite",
         extra_files={CSV: b"ms\n12\nnan\n"}),
    Case("empirical-csv-huge-field", empirical(), "stations.gateway.service.file", 14, "number",
         extra_files={CSV: b"ms\n" + b"1" * 300_000 + b"\n"}),
    Case("empirical-unknown-column", empirical(column="latency"), "stations.gateway.service.column", 14,
         "no column", extra_files={CSV: b"ms\n12\n"}),
    Case("rate-limit-not-a-rate", edit("    queue: 100\n", "    queue: 100\n    rate_limit: fast\n"),
         "stations.gateway.rate_limit", 14, "per second"),
    Case("cache-hit-over-one", edit("    queue: 100\n", "    queue: 100\n    cache: {hit: 120%, service: 1ms}\n"),
         "stations.gateway.cache.hit", 14, "between 0 and 1"),
    Case("empirical-unknown-unit", empirical(unit="parsecs"), "stations.gateway.service.unit", 14,
         "time unit", extra_files={CSV: b"ms\n12\n"}),
    # --- autoscale and cost
    Case("autoscale-without-target", edit("    workers: 8\n", "    workers: 8\n    autoscale: {min: 2, max: 10}\n"),
         "stations.acquirer.autoscale.target", 22, "required"),
    Case("autoscale-latency-target-not-a-duration",
         edit("    workers: 8\n", "    workers: 8\n    autoscale: {metric: latency, target: soon, max: 10}\n"),
         "stations.acquirer.autoscale.target", 22, "duration"),
    Case("autoscale-max-below-min", edit("    workers: 8\n", "    workers: 8\n    autoscale: {target: 70%, min: 4, max: 2}\n"),
         "stations.acquirer.autoscale.max", 22, "must not be below 'min'"),
    Case("autoscale-workers-outside-range",
         edit("    workers: 8\n", "    workers: 8\n    autoscale: {target: 70%, min: 2, max: 6}\n"),
         "stations.acquirer.workers", 21, "within the autoscaler's [min, max]"),
    Case("autoscale-with-a-schedule",
         edit("    workers: 8\n", "    workers: 8\n    autoscale: {target: 70%, max: 16}\n    schedule: [{at: 1m, workers: 4}]\n"),
         "stations.acquirer.autoscale", 22, "cannot be combined with a worker schedule"),
    Case("autoscale-with-an-executor",
         edit("  acquirer:\n    workers: 8\n", "  acquirer:\n    autoscale: {target: 70%, max: 16}\n    executor: {core: 4}\n"),
         "stations.acquirer.autoscale", 21, "cannot be combined with an executor"),
    Case("cost-negative", edit("    workers: 8\n", "    workers: 8\n    cost: {per_worker_hour: -0.12}\n"),
         "stations.acquirer.cost.per_worker_hour", 22, "non-negative"),
    Case("cost-unknown-key", edit("    workers: 8\n", "    workers: 8\n    cost: {per_hour: 0.12}\n"),
         "stations.acquirer.cost.per_hour", 22, "did you mean"),
]


def materialise(case: Case, directory: Path) -> Path:
    """Write a case's files into ``directory``; return the scenario path to give the command."""
    path = directory / f"{case.id}.yaml"
    for name, data in case.extra_files.items():
        (directory / name).write_bytes(data)
    if case.content is DIRECTORY:
        path.mkdir()
    elif case.content is MISSING:
        pass
    elif isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    return path


def paysim(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "paysim", *args], capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=timeout, cwd=ROOT, env=env, check=False)


def assert_clean_refusal(result: subprocess.CompletedProcess, max_lines: int = 5) -> list[str]:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, f"exit code {result.returncode}:\n{output}"
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= max_lines, f"{len(lines)} lines on stderr:\n{result.stderr}"
    assert all(len(line) < 600 for line in lines), result.stderr
    return lines


def test_corpus_is_large_and_distinct():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25
    contents = [repr((case.content, case.extra_files, case.args)) for case in CASES]
    assert len(contents) == len(set(contents)), "two cases are the same file"
    assert len(IN_SUBPROCESS) == len(set(IN_SUBPROCESS)) >= 25 and set(IN_SUBPROCESS) <= set(ids)


def test_base_scenario_runs(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(BASE, encoding="utf-8")
    result = paysim("run", str(path), "-q", "--horizon", "5s", "--warmup", "1s", "-r", "1", "-j", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert '"system"' in result.stdout


# Each of these runs the real command in its own process (about 0.5-2 s each, mostly importing
# paysim); between them they cover every kind of problem the issue lists. Every case,
# these included, also runs in-process below, which is fast.
IN_SUBPROCESS = [
    "yaml-unclosed-bracket", "yaml-tab-indentation", "empty-file", "top-level-list", "stations-is-a-list",
    "binary-junk", "utf16-with-bom", "directory-not-a-file", "file-does-not-exist", "python-object-tag",
    "billion-laughs", "duplicate-key", "unknown-key-did-you-mean", "key-that-looks-like-markup",
    "unknown-distribution", "duration-unknown-unit", "rate-without-number", "nan-duration", "huge-integer-horizon",
    "zero-workers", "negative-workers", "fractional-workers", "probability-above-one", "routing-does-not-sum-to-one",
    "next-unknown-station", "routing-cycle-without-exit", "p99-below-median", "warmup-equal-to-horizon",
    "empirical-file-missing", "empirical-csv-with-junk", "no-arrival-streams", "no-stations",
    "warmup-override-beyond-horizon",
]
BY_ID = {case.id: case for case in CASES}


def check_message(case: Case, path: Path, stderr: str) -> None:
    """The message names the file, the line and key path where they apply, and what was expected."""
    lines = stderr.splitlines()
    assert path.name in stderr, stderr
    # the file, then (where known) the line, then the key path, on one line of the message
    where = re.escape(str(path)) + (f":{case.line}" if case.line is not None else r"(:\d+)?") + ": "
    pattern = where + (re.escape(case.key) + ": " if case.key else "")
    matching = [line for line in lines if re.search(pattern, line)]
    assert matching, f"no line matches {pattern!r}:\n{stderr}"
    assert any(case.expected.lower() in line.lower() for line in matching), f"{case.expected!r} not said:\n{stderr}"


@pytest.mark.parametrize("case_id", IN_SUBPROCESS)
def test_malformed_file_is_refused_by_the_command(tmp_path, case_id):
    case = BY_ID[case_id]
    path = materialise(case, tmp_path)
    started = time.perf_counter()
    result = paysim("run", str(path), "-q", "-j", "1", *case.args)
    elapsed = time.perf_counter() - started
    assert_clean_refusal(result)
    assert result.stdout == "", "nothing is printed to stdout for a refused file"
    check_message(case, path, result.stderr)
    assert elapsed < 30, f"took {elapsed:.1f}s to refuse"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_file_is_refused_in_process(tmp_path, case):
    path = materialise(case, tmp_path)
    result = CliRunner().invoke(app, ["run", str(path), "-q", "-j", "1", *case.args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 5 and all(len(line) < 600 for line in lines), result.stderr
    check_message(case, path, result.stderr)


def test_validate_reports_every_file(tmp_path):
    picked = ["yaml-unclosed-bracket", "binary-junk", "unknown-key-did-you-mean", "routing-cycle-without-exit",
              "file-does-not-exist", "empirical-csv-with-junk"]
    cases = {case.id: case for case in CASES}
    paths = []
    for name in picked:
        directory = tmp_path / name
        directory.mkdir()
        paths.append(materialise(cases[name], directory))
    good = tmp_path / "good.yaml"
    good.write_text(BASE, encoding="utf-8")
    result = paysim("validate", str(paths[0]), str(good), *map(str, paths[1:]))
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 2
    assert f"ok: {good}" in result.stdout
    for path in paths:
        assert str(path) in result.stderr, f"{path.name} not reported:\n{result.stderr}"
    assert len(result.stderr.splitlines()) <= 3 * len(paths)


def test_many_problems_make_a_short_message(tmp_path):
    """A file with hundreds of problems is summarised, not printed line by line."""
    stations = "".join(f"  s{i}:\n    workers: 0\n    service: 10 parsecs\n" for i in range(200))
    path = tmp_path / "many.yaml"
    path.write_text("horizon: 10m\narrivals: {card: {rate: 1/s}}\nstations:\n" + stations, encoding="utf-8")
    result = paysim("run", str(path), "-q", "-j", "1")
    lines = assert_clean_refusal(result, max_lines=12)
    assert all(path.name in line for line in lines[:-1])
    assert re.search(r"\d+ more", lines[-1]), result.stderr


def test_names_that_look_like_markup_are_shown_verbatim(tmp_path):
    """Names are the user's text: printed as written, never read as terminal markup."""
    path = tmp_path / "markup.yaml"
    path.write_text('name: "[/x] [bold]"\nhorizon: 2s\nreplications: 2\narrivals:\n  "[/y]": {rate: 20/s}\n'
                    'stations:\n  "[/z]":\n    service: 10ms\n    next: "[red]"\n  "[red]": {service: 1ms}\n',
                    encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(path), "-q", "-j", "1"])
    assert result.exception is None, repr(result.exception)
    assert result.exit_code == 0, result.output
    for name in ("[/x] [bold]", "[/y]", "[/z]", "[red]"):
        assert name in result.stdout, name


# ---------------------------------------------------------------- the memory guard

OVERLOADED = {
    "horizon": "1h",
    "arrivals": {"card": {"rate": "1000/s"}},
    "stations": {"slow": {"workers": 1, "service": "10ms"}},  # 10x overloaded, unbounded queue
}


def test_runaway_population_hits_the_memory_guard():
    scenario = scenario_from_data(OVERLOADED, "overloaded.yaml")
    started = time.perf_counter()
    with pytest.raises(RunawayError) as caught:
        run_replication(scenario, observer_for(scenario), seed=1, replication=0, progress=None, max_in_flight=2_000)
    assert time.perf_counter() - started < 10
    assert isinstance(caught.value, PaysimError)
    message = str(caught.value)
    assert "2,000" in message and "in flight" in message and "overloaded" in message
    assert "\n" not in message


def test_a_stable_run_stays_under_the_memory_guard():
    scenario = scenario_from_data({**OVERLOADED, "horizon": "60s", "stations": {"fast": {"workers": 20, "service": "10ms"}}},
                                  "stable.yaml")
    run_replication(scenario, observer_for(scenario), seed=1, replication=0, progress=None, max_in_flight=2_000)


# ---------------------------------------------------------------- the second robustness pass (issue 18)

TINY_RUN = ["-q", "-j", "1", "--horizon", "2s", "--warmup", "0s", "-r", "2"]


ROUNDED = BASE.replace("next: {acquirer: 0.9, done: 0.1}", "next: {acquirer: 0.3333334, done: 0.3333333, risk2: 0.3333334}") \
    + "  risk2:\n    workers: 2\n    service: 5ms\n"


@pytest.mark.parametrize("command", ["validate", "analytic", "run", "size"])
def test_probabilities_summing_to_one_within_the_tolerance_work_everywhere(tmp_path, command):
    """0.3333334 + 0.3333333 + 0.3333334 = 1.0000001: validation accepts it, so every command must."""
    path = tmp_path / "rounded.yaml"
    path.write_text(ROUNDED, encoding="utf-8")
    args = {"validate": [], "analytic": [], "run": TINY_RUN,
            "size": ["--station", "gateway", "--slo", "mean<10s", "-q", "-j", "1", "--horizon", "2s", "--warmup", "0s"]}
    result = invoke(command, path, *args[command])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0, result.output


def test_probabilities_within_the_tolerance_are_normalised_at_load():
    from paysim.units import PROBABILITY_SUM_TOLERANCE
    scenario = scenario_from_data(
        {"horizon": "1m", "arrivals": {"a": {"rate": "1/s"}},
         "stations": {"s": {"service": "1ms", "next": {"t": 0.3333334, "u": 0.3333333, "done": 0.3333334}},
                      "t": {"service": "1ms"}, "u": {"service": "1ms"}}}, "rounded.yaml")
    assert sum(scenario.stations["s"].routes.values()) == pytest.approx(1.0, abs=1e-15)
    off = scenario_from_data  # just beyond the tolerance: refused with the path
    with pytest.raises(PaysimError, match=r"stations\.s\.next: routing probabilities must sum to 1"):
        off({"horizon": "1m", "arrivals": {"a": {"rate": "1/s"}},
             "stations": {"s": {"service": "1ms", "next": {"t": 0.5, "done": 0.5 + 3 * PROBABILITY_SUM_TOLERANCE}},
                          "t": {"service": "1ms"}}}, "off.yaml")


@pytest.mark.parametrize("args, words", [(["--precision", "5%", "-r", "1"], "at least 2 replications"),
                                         (["--precision", "1e-300", "-r", "2"], "--precision")],
                         ids=["one-replication", "tiny"])
def test_impossible_precision_is_one_line(tmp_path, args, words):
    path = tmp_path / "base.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert_one_line_error(invoke("run", path, "-q", "-j", "1", "--horizon", "2s", "--warmup", "0s", *args), words)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_named_pipe_as_the_scenario_is_refused_without_hanging(tmp_path, command):
    fifo = tmp_path / "scenario.yaml"
    os.mkfifo(fifo)
    result = paysim(command, str(fifo), timeout=TIMEOUT)   # a hang fails here with TimeoutExpired
    lines = assert_clean_refusal(result, max_lines=1)
    assert "not a regular file" in lines[0] and str(fifo) in lines[0]


@pytest.mark.parametrize("kind", ["stations", "arrivals"])
def test_an_empty_name_is_refused(tmp_path, kind):
    text = BASE.replace("  gateway:", '  "":').replace("enter: gateway", 'enter: ""') if kind == "stations" \
        else BASE.replace("  card:", '  " ":')
    path = tmp_path / "empty-name.yaml"
    path.write_text(text, encoding="utf-8")
    assert_one_line_error(invoke("validate", path), f"{kind}: a name must have at least one visible character")


def test_names_are_shown_without_emoji_or_raw_control_characters(tmp_path):
    path = tmp_path / "hostile.yaml"
    path.write_text('name: "run \\x1b[2J :x:"\nhorizon: 2s\nwarmup: 0s\nreplications: 2\n'
                    'arrivals:\n  ":x:": {rate: 5/s}\nstations:\n  "s\\x1b]0;title\\x07:smile:":\n    service: 10ms\n',
                    encoding="utf-8")
    result = invoke("run", path, "-q", "-j", "1")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "❌" not in result.output and "😄" not in result.output
    assert ":x:" in result.output and "\\x1b[2J" in result.output   # shown escaped, as written


@pytest.mark.parametrize("engine", ["simpy", "fast"])
def test_tiny_service_times_raise_no_false_littles_law_alarm(tmp_path, engine):
    """A 1e-300 s service vanishes from clock differences (t + 1e-300 == t) but not from the
    measured means: the two sides of busy = λE[S] differ by ~1e-300, far below what the clock resolves."""
    path = tmp_path / "tiny.yaml"
    path.write_text("horizon: 5s\nwarmup: 0s\nreplications: 3\narrivals:\n  a: {rate: 5/s}\n"
                    "stations:\n  s: {workers: 2, service: 1e-300s}\n", encoding="utf-8")
    result = invoke("run", path, "-q", "-j", "1", "--engine", engine)
    assert result.exit_code == 0, result.output
    assert "does not hold" not in result.output.lower(), result.output


def test_littles_law_still_catches_a_real_difference_at_tiny_magnitudes():
    from paysim.stats import littles_law
    rows = [{"stations.s.entry_rate": 5.0, "stations.s.busy": 2e-300, "stations.s.S_all": 1e-300,
             "stations.s.L": 0.0, "stations.s.W_all": 0.0, "stations.s.Lq": 0.0, "stations.s.Wq_all": 0.0}] * 3
    busy = littles_law(rows, "stations.s", horizon_s=0.0)[2]   # no clock to blame: 2e-300 against 5e-300
    assert not busy.holds
    assert littles_law(rows, "stations.s", horizon_s=5.0)[2].holds   # within the clock's resolution


NOISY = """
import sys, warnings
import paysim.cli as cli
real = cli.load_scenario
def noisy(*args, **kwargs):
    warnings.warn("noisy library", RuntimeWarning)   # as numpy or a deprecation would, mid-command
    return real(*args, **kwargs)
cli.load_scenario = noisy
sys.argv = ["paysim", "validate", sys.argv[1]]
from paysim.__main__ import main
main()
"""


@pytest.mark.parametrize("asked", [False, True], ids=["normal", "PYTHONWARNINGS"])
def test_python_warnings_reach_stderr_only_when_asked(tmp_path, asked):
    path = tmp_path / "base.yaml"
    path.write_text(BASE, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    if asked:
        env["PYTHONWARNINGS"] = "default"
    result = subprocess.run([sys.executable, "-c", NOISY, str(path)], capture_output=True, text=True,
                            timeout=TIMEOUT, cwd=ROOT, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert ("noisy library" in result.stderr) == asked, result.stderr
