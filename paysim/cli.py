"""The ``paysim`` command: each subcommand only wires library calls together.

Every error a user can cause ends here as a short message on stderr and exit code 2
(130 after Ctrl-C); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from paysim import __version__
from paysim.errors import PaysimError, one_line
from paysim.outputs import CLOSED_STDOUT, SIZE_FILES, check_run_directory, describe, emit, silence_stdout
from paysim.preflight import expected_arrivals, stability_warnings
from paysim.report import render, to_dict, write_outputs
from paysim.runner import simulate
from paysim.scenario import load_scenario
from paysim.stats import still_growing
from paysim.terminal import SafeConsole, console as table_console, terminal_safe
from paysim.timeseries import default_interval
from paysim.trace import trace_warnings
from paysim.units import parse_duration, parse_probability

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="paysim: a queueing-theory capacity simulator for payment systems.")
err = SafeConsole(stderr=True)
MAX_JOBS = 256


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Turn errors a user can cause into a message and an exit code."""
    try:
        yield
    except PaysimError as error:
        if debug:
            raise
        for line in str(error).splitlines():
            err.print(f"[bold red]error:[/] {escape(line)}", markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except BrokenPipeError:   # the reader of stdout went away (| head): stop quietly
        silence_stdout()
        raise typer.Exit(CLOSED_STDOUT) from None
    except OSError as error:  # a file paysim had no more specific word for; not one of its own bugs
        if debug or error.filename is None:
            raise
        err.print(f"[bold red]error:[/] {escape(one_line(str(error.filename)))}: {escape(describe(error))}",
                  soft_wrap=True)
        raise typer.Exit(2) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paysim {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")) -> None:
    """paysim: a queueing-theory capacity simulator for payment systems."""


def _progress_bar(quiet: bool) -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), TaskProgressColumn(),
                    TimeRemainingColumn(elapsed_when_finished=True), console=err,
                    disable=quiet or not err.is_terminal, transient=True)


def _advancing(bar: Progress, task: Any, total: int) -> tuple[Callable[[Hashable, float], None], dict]:
    """The progress callback of paysim.execution for ``bar``: each job's fraction done, summed;
    and the fractions, which a new trial clears."""
    done: dict[Hashable, float] = {}

    def advance(job: Hashable, fraction: float) -> None:
        done[job] = fraction
        bar.update(task, completed=sum(done.values()), total=max(total, len(done)))
    return advance, done


@app.command()
def run(
    file: Path = typer.Argument(..., help="Scenario YAML file."),
    replications: int | None = typer.Option(None, "--replications", "-r", min=1, help="Independent replications (default: the scenario's)."),
    horizon: str | None = typer.Option(None, help="Simulated time per replication, e.g. 10m (default: the scenario's)."),
    warmup: str | None = typer.Option(None, help="Time discarded at the start of each replication, e.g. 1m, "
                                                    "or auto (MSER-5 on pilot replications)."),
    precision: str | None = typer.Option(None, help="Add replications until the 95% CI half-width of every "
                                                       "metric the table shows in time, rate or count is within this "
                                                       "share of its mean: 2% (or the fraction 0.02)."),
    max_replications: int = typer.Option(200, min=2, help="Cap on replications with --precision."),
    seed: int | None = typer.Option(None, min=0, help="Random seed (default: the scenario's)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, max=MAX_JOBS, help="Processes to run replications on (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print only JSON to stdout."),
    out: Path | None = typer.Option(None, help="Also write results.json, results.csv, the time series "
                                                   "(timeseries.csv, timeseries.png) and report.html into this directory."),
    force: bool = typer.Option(False, "--force", help="Let --out overwrite another command's results (a sweep's)."),
    interval: str | None = typer.Option(None, help="Time-series sampling interval with --out, e.g. 10s "
                                                      "(default: about 120 points over the horizon)."),
    compare_theory: bool = typer.Option(False, "--compare", help="Set queueing theory's answer beside each metric."),
    engine: str = typer.Option("auto", help="auto (the compiled engine where the scenario fits it, else SimPy), "
                                            "simpy or fast."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Simulate a scenario and report every metric with its 95% confidence interval."""
    with user_errors(debug):
        overrides: dict[str, Any] = {k: v for k, v in {"horizon": horizon, "warmup": warmup}.items() if v is not None}
        scenario = load_scenario(file, overrides)
        count = replications or scenario.replications
        for line in stability_warnings(scenario) + trace_warnings(scenario):
            err.print(f"[bold yellow]warning:[/] {escape(line)}", soft_wrap=True)
        _check_size(file, scenario, max_replications if precision else count, jobs)
        wanted_precision = _precision(precision, count)
        if out is not None:
            check_run_directory(out, force)
        with _progress_bar(quiet) as bar:
            task = bar.add_task(f"{escape(scenario.name)}: ~{expected_arrivals(scenario) * count:,.0f} arrivals", total=count)
            advance, _ = _advancing(bar, task, count)
            result = simulate(scenario, seed=seed, replications=replications, jobs=jobs, progress=advance,
                              series_interval=_series_interval(interval, scenario.horizon) if out else None,
                              precision=wanted_precision, max_replications=max_replications,
                              engine=_engine(engine))
        comparisons = None
        if compare_theory:
            from paysim.compare import compare, comparison_table, comparisons_to_json
            from paysim.theory import analyse
            comparisons = compare(result, analyse(scenario))
        if as_json:
            data = to_dict(result)
            if comparisons is not None:
                data["compare"] = comparisons_to_json(comparisons)
            emit(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            console = _console()
            render(result, console)
            if comparisons is not None:
                console.print(comparison_table(comparisons) if comparisons else
                              "No station of this scenario has a queueing-theory answer (see paysim analytic).")
        if out is not None:   # after the report: a full disk must not take the numbers with it
            from paysim.html_report import for_run
            for path in write_outputs(result, out) + for_run(out, file, result):
                err.print(f"wrote {escape(str(path))}")
        failing = [f"{scope} {c.law}" for scope, checks in result.little.items() for c in checks
                   if c.verdict == "does not hold"]
        unclear = [f"{scope} {c.law}" for scope, checks in result.little.items() for c in checks
                   if c.verdict == "inconclusive"]
        if unclear:
            err.print(f"[bold yellow]note:[/] Little's law is inconclusive for {escape(', '.join(unclear))}: the "
                      "intervals are too wide to tell (more --replications or a longer --horizon)", soft_wrap=True)
        if failing:
            err.print(f"[bold red]WARNING: Little's law does not hold for {escape(', '.join(failing))}.[/] "
                      + _little_diagnosis(result))


def _console() -> Console:
    return table_console()


def _check_size(file: Path, scenario: Any, replications: int, jobs: int | None) -> None:
    """Refuse a run that could not finish or would outgrow the memory budget; say how big a merely long one is."""
    from paysim import budget
    from paysim.execution import default_jobs

    events = budget.check_jobs([(str(file), scenario)], replications, jobs or default_jobs(), str(file))
    if events > budget.LONG_EVENTS:
        err.print(f"[bold yellow]note:[/] about {events:,.0f} events: this is a long run "
                  "(the progress bar shows the time left)", soft_wrap=True)


def _engine(text: str) -> str:
    if text not in ("auto", "simpy", "fast"):
        raise PaysimError(f"--engine: expected auto, simpy or fast, got {text!r}")
    return text


MIN_PRECISION = 1e-6   # a relative half-width below this needs more replications than could ever run


def _precision(text: str | None, replications: int = 2) -> float | None:
    if text is None:
        return None
    with contextlib.suppress(ValueError):
        if float(text) > 1:   # a bare number is a fraction; 2 most likely meant 2%
            raise PaysimError(f"--precision: a bare number is a fraction of the mean (0.02 is 2%), and {text.strip()} "
                              f"is above 1; write {text.strip()}% for {text.strip()} percent")
    try:
        value = parse_probability(text)
    except ValueError as error:
        raise PaysimError(f"--precision: {error}") from None
    if not MIN_PRECISION <= value < 1:
        raise PaysimError(f"--precision: expected a relative half-width from {MIN_PRECISION:g} to below 1, "
                          f"such as 2% or 0.02, got {text!r}")
    if replications < 2:
        raise PaysimError("--precision needs a confidence interval, so at least 2 replications to start from; "
                          f"got --replications {replications}")
    if "%" not in text and value > 0.1:   # 0.5 is read as 50%; half a percent is more often meant
        err.print(f"[bold yellow]note:[/] --precision {escape(text.strip())} is read as the fraction {value:g}, a "
                  f"half-width of {value:.0%} of the mean; write {escape(text.strip())}% for {escape(text.strip())} percent",
                  soft_wrap=True)
    return value


def _series_interval(text: str | None, horizon_s: float) -> float:
    if text is None:
        return default_interval(horizon_s)
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise PaysimError(f"--interval: {error}") from None
    if not 0 < seconds <= horizon_s or horizon_s / seconds > 100_000:
        raise PaysimError(f"--interval: expected a duration above zero, at most the horizon ({horizon_s:g}s) "
                          f"and at least 1/100,000 of it, got {text!r}")
    return seconds


def _little_diagnosis(result) -> str:
    """Why Little's law may fail: a population that kept growing means no steady state."""
    from paysim.transient import undrained
    if stability_warnings(result.scenario):   # flagged before the run: more time will not help
        return ("The system does not settle into a steady state (see the warning before the run), so Little's "
                "law need not hold over the run.")
    at_end = result.summary["system.in_system_at_end"].mean
    average = result.summary["system.L"].mean
    if undrained(result.summary):
        return (f"The backlog at {', '.join(undrained(result.summary))} had not drained by the horizon: {at_end:,.0f} "
                "transactions were still inside at the end, so Little's law cannot hold over this run; lengthen "
                "the horizon past the drain (see drain_time).")
    if still_growing(result.summary):
        return (f"The system was not in a steady state: {at_end:,.0f} transactions were inside at the end against "
                f"{average:,.0f} on average, so the population was still growing (overload, or a metastable "
                "failure such as a retry storm). Little's law holds only for a system that reaches steady state.")
    return "This means a too-short run (try a longer --horizon or more --replications) or a bug."


@app.command()
def analytic(
    file: Path = typer.Argument(..., help="Scenario YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print only JSON to stdout."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Queueing theory's answer for a scenario: per station the closed form or approximation used
    and its metrics (same names as run), or why there is none."""
    from paysim.compare import theory_table
    from paysim.steady import profile_steady_states
    from paysim.theory import analyse, theory_to_dict

    with user_errors(debug):
        scenario = load_scenario(file)
        cases = profile_steady_states(scenario)   # a profile has no steady state: the base and the peak do
        if not cases:
            theory = analyse(scenario)
            if as_json:
                emit(json.dumps(theory_to_dict(theory), indent=2, ensure_ascii=False) + "\n")
            else:
                _console().print(theory_table(theory))
            return
        theories = [(label, analyse(case)) for label, case in cases]
        if as_json:
            data = {"scenario": scenario.name, "profile": True,
                    **{key: {"label": label, **theory_to_dict(theory)}
                       for key, (label, theory) in zip(("base_rate", "peak_rate"), theories)}}
            emit(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            return
        console = _console()
        for label, theory in theories:
            table = theory_table(theory)
            table.title = f"{escape(scenario.name)}: queueing theory, {escape(label)}"
            console.print(table)


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Scenario or sweep files to check."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Check scenario and sweep files (every point of a sweep) without running them; exit 2 if any has a problem."""
    from paysim.sweep import is_sweep_file, load_sweep

    failed = False
    for file in files:
        try:
            with user_errors(debug):
                if is_sweep_file(file):
                    plan = load_sweep(file)
                    typer.echo(terminal_safe(f"ok: {file} (sweep of {len(plan.points)} points over {plan.scenario_file})"))
                    _warn_unstable_points(plan)
                    continue
                scenario = load_scenario(file)
                streams, stations = len(scenario.arrivals), len(scenario.stations)
                typer.echo(terminal_safe(f"ok: {file} ({streams} arrival stream{'s' * (streams != 1)}, "
                                         f"{stations} station{'s' * (stations != 1)})"))
                for line in stability_warnings(scenario):   # the preflight run makes
                    err.print(f"[bold yellow]warning:[/] {escape(str(file))}: {escape(line)}", soft_wrap=True)
        except typer.Exit as stop:
            if stop.exit_code == 130:   # Ctrl-C: stop checking, and say so in the exit code
                raise
            failed = True
    if failed:
        raise typer.Exit(2)


def _warn_unstable_points(plan: Any) -> None:
    from paysim.sweep import unstable_points

    for station, points in unstable_points(plan).items():
        err.print(f"[bold yellow]warning:[/] station {station!r} is unstable (utilisation of 100% or more with an "
                  f"unbounded queue) at {len(points)} points ({_listed(points)}): their statistics depend on the "
                  "horizon", soft_wrap=True)


def _listed(points: list[int]) -> str:
    """Sweep point numbers for a warning: the first dozen."""
    return ", ".join(map(str, points[:12])) + (", ..." if len(points) > 12 else "")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat `kill` (SIGTERM) like Ctrl-C, so worker processes are stopped and finished work kept."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave the default
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
def sweep(
    file: Path = typer.Argument(..., help="Sweep YAML file (a top-level 'sweep:' key)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for results.csv, sweep.json, the plots and report.html."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, max=MAX_JOBS, help="Local processes (default: all cores)."),
    scheduler: str | None = typer.Option(None, help="Run on a Dask cluster instead: its scheduler's address, e.g. tcp://10.0.0.5:8786."),
    resume: bool = typer.Option(False, help="Continue the sweep in --out: run only the points results.csv lacks."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the capacity curves when done."),
    engine: str = typer.Option("auto", help="auto (per point: the compiled engine where it fits, else SimPy), "
                                            "simpy or fast."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Run every point of a parameter sweep: one results.csv row per point, written as each point finishes."""
    from paysim.html_report import for_sweep
    from paysim.plots import plot_sweep
    from paysim.sweep import load_sweep, read_results, run_sweep, sweep_work
    from paysim.sweep.storage import read_description
    from paysim.sweep.summary import summary_table

    with user_errors(debug), _terminate_as_interrupt():
        started = time.perf_counter()
        plan = load_sweep(file)
        _warn_unstable_points(plan)
        stopping = [point.index for point in plan.points if trace_warnings(point.scenario)]
        if stopping:
            err.print(f"[bold yellow]warning:[/] a replayed trace ends before the horizon at {len(stopping)} "
                      f"point{'s' * (len(stopping) != 1)} ({_listed(stopping)}): no arrivals after it", soft_wrap=True)
        with _progress_bar(quiet) as bar:
            task = bar.add_task(f"{len(plan.points)} points", total=len(plan.points) * plan.replications)
            advance, _ = _advancing(bar, task, len(plan.points) * plan.replications)

            def starting(todo: list) -> None:
                bar.update(task, total=len(todo) * plan.replications,
                           description=f"{len(todo)} points × {plan.replications}: ~{sweep_work(plan, todo):,.0f} arrivals")

            outcome = run_sweep(plan, out, jobs=jobs, scheduler=scheduler, resume=resume, engine=_engine(engine),
                                on_start=starting, progress=advance)
        for note in outcome.notes:
            err.print(f"[bold yellow]note:[/] {escape(note)}", soft_wrap=True)
        if outcome.resumed:
            err.print(f"{len(outcome.resumed)} points were already in {out / 'results.csv'}; ran {len(outcome.ran)}")
        written = outcome.files + (plot_sweep(out) if plots else [])
        written += for_sweep(out, plan, outcome.little_fails, time.perf_counter() - started, outcome.notes)
        err.print(f"wrote {', '.join(str(path) for path in written)}", soft_wrap=True)
        console = _console()
        console.print(summary_table(read_description(out), read_results(out / "results.csv")[1]))
        if outcome.little_fails:
            err.print(f"[bold red]WARNING: Little's law does not hold at points {', '.join(map(str, outcome.little_fails))}.[/] "
                      "Their runs are too short for their load (try a longer horizon), or never reach steady state.")


@app.command()
def plot(
    directory: Path = typer.Argument(..., help="A sweep's --out directory (results.csv and sweep.json), or a "
                                               "run's (results.json and timeseries.csv)."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Redraw a sweep's capacity curves (PNG and SVG) from its results.csv, or a run's time series."""
    from paysim.plots import plot_sweep
    from paysim.series_plot import RESULTS, redraw
    from paysim.sweep.storage import DESCRIPTION

    with user_errors(debug):
        run_only = (directory / RESULTS).exists() and not (directory / DESCRIPTION).exists()
        for path in redraw(directory) if run_only else plot_sweep(directory):
            err.print(f"wrote {path}")


@app.command("compare")
def compare_runs(
    first: Path = typer.Argument(..., help="A run's --out directory (A)."),
    second: Path = typer.Argument(..., help="Another run's --out directory (B)."),
    everything: bool = typer.Option(False, "--all", help="Every metric, not only those of the run's table."),
    as_json: bool = typer.Option(False, "--json", help="Print only JSON to stdout."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Two runs side by side: every metric with both CIs, and whether the difference is significant."""
    from paysim.run_diff import diff_json, diff_table, differences, load_run

    with user_errors(debug):
        a, b = load_run(first), load_run(second)
        rows, rule = differences(a, b)
        if as_json:
            emit(json.dumps(diff_json(a, b, rows, rule), indent=2, ensure_ascii=False) + "\n")
        else:
            _console().print(diff_table(a, b, rows, rule, everything))


@app.command()
def report(
    directory: Path = typer.Argument(..., help="A directory that run, sweep or size wrote with --out."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Rebuild DIR/report.html (one self-contained page) from the results in DIR."""
    from paysim.html_report import render as render_html

    with user_errors(debug):
        err.print(f"wrote {render_html(directory)}")


@app.command()
def size(
    file: Path = typer.Argument(..., help="Scenario YAML file."),
    station: str | None = typer.Option(None, "--station", "-s", help="The station whose workers to size."),
    every: bool = typer.Option(False, "--all", help="Size every station at once: the cheapest worker counts found "
                                                    "(by each station's cost) with which the SLO holds."),
    slo: list[str] = typer.Option(..., help="Objective on the whole system: p99<800ms, mean<50ms, p95<1s, "
                                            "failure_rate<0.1%; with --all it may be given more than once."),
    max_trials: int | None = typer.Option(None, min=2, help="With --all: configurations simulated before giving up "
                                                            "(default 60)."),
    replications: int | None = typer.Option(None, "--replications", "-r", min=2, help="Replications per worker count (default: the scenario's)."),
    horizon: str | None = typer.Option(None, help="Simulated time per replication (default: the scenario's)."),
    warmup: str | None = typer.Option(None, help="Time discarded at the start of each replication."),
    seed: int | None = typer.Option(None, min=0, help="Random seed, the same for every worker count (default: the scenario's)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, max=MAX_JOBS, help="Processes to run replications on (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print only JSON to stdout."),
    out: Path | None = typer.Option(None, help="Also write sizing.json, sizing.csv, sizing.png and report.html "
                                                   "into this directory (with --all: platform.json, platform.csv "
                                                   "and platform.png)."),
    force: bool = typer.Option(False, "--force", help="Let --out overwrite another command's results (a sweep's)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Find the fewest workers for a station (--station), or the cheapest for every station (--all), with
    which an SLO holds with 95% confidence, by simulation."""
    from paysim.platform_sizing import MAX_TRIALS
    from paysim.sizing import SizingError, evidence_table, parse_objective, size_station, to_dict as sizing_dict

    with user_errors(debug):
        started = time.perf_counter()
        if every == (station is not None):
            raise SizingError("size: give either --station NAME (one station) or --all (every station)")
        if max_trials is not None and not every:
            raise SizingError("--max-trials: only with --all (a single station's search has its own limit)")
        if every:
            _size_platform(file, [parse_objective(text) for text in slo], replications=replications,
                           overrides={k: v for k, v in {"horizon": horizon, "warmup": warmup}.items() if v is not None},
                           seed=seed, jobs=jobs, as_json=as_json, out=out, force=force, quiet=quiet,
                           max_trials=max_trials or MAX_TRIALS)
            return
        if len(slo) > 1:
            raise SizingError("--slo: one objective with --station; several only with --all")
        assert station is not None
        objective = parse_objective(slo[0])
        overrides: dict[str, Any] = {k: v for k, v in {"horizon": horizon, "warmup": warmup}.items() if v is not None}
        scenario = load_scenario(file, overrides)
        count = replications or scenario.replications
        _check_size(file, scenario, count, jobs)
        if out is not None:   # before the search: a sizing takes minutes
            check_run_directory(out, force, SIZE_FILES)
        with _progress_bar(quiet) as bar:
            task = bar.add_task(escape(station), total=count)
            advance, done = _advancing(bar, task, count)

            def trying(workers: int) -> None:
                done.clear()
                bar.reset(task, total=count, description=f"{station}: {workers} workers")

            result = size_station(scenario, station, objective, seed=seed, replications=replications, jobs=jobs,
                                  on_trial=trying, progress=advance)
        if as_json:
            emit(json.dumps(sizing_dict(result), indent=2, ensure_ascii=False) + "\n")
        else:
            console = _console()
            console.print(f"start: {result.start} workers, from {result.start_reason}", soft_wrap=True)
            console.print(evidence_table(result))
            if result.workers is not None:
                console.print(f"[bold]{station}: {result.workers} workers[/] is the fewest with which {objective.text} "
                              "holds with 95% confidence (upper CI bound below the target)")
        if out is not None:   # after the answer: a full disk must not take it with it
            from paysim.html_report import for_size
            for path in for_size(out, file, scenario, result, seed=scenario.seed if seed is None else seed,
                                 replications=count, wall_s=time.perf_counter() - started):
                err.print(f"wrote {escape(str(path))}")
        if result.workers is None:
            raise SizingError(f"{objective.text} does not hold with 95% confidence at any worker count up to "
                              f"{result.limit}: the target may be below what {station!r}'s service time alone allows, "
                              "or another station is the bottleneck")


def _size_platform(file: Path, objectives: list[Any], *, replications: int | None, overrides: dict[str, Any],
                   seed: int | None, jobs: int | None, as_json: bool, out: Path | None, force: bool, quiet: bool,
                   max_trials: int) -> None:
    """``paysim size --all``: every station at once (paysim.platform_sizing)."""
    from paysim.platform_sizing import (
        PLATFORM_FILES,
        answer_lines,
        frontier_table,
        notes,
        size_platform,
        to_dict as platform_dict,
    )
    from paysim.sizing import SizingError

    scenario = load_scenario(file, overrides)
    count = replications or scenario.replications
    _check_size(file, scenario, count, jobs)
    if out is not None:   # before the search: it takes minutes
        check_run_directory(out, force, PLATFORM_FILES)
    with _progress_bar(quiet) as bar:
        task = bar.add_task("platform", total=count)
        advance, done = _advancing(bar, task, count)

        def trying(workers: tuple[int, ...], phase: str) -> None:
            done.clear()
            bar.reset(task, total=count, description=f"{phase}: {', '.join(map(str, workers))} workers")

        result = size_platform(scenario, objectives, seed=seed, replications=replications, jobs=jobs,
                               max_trials=max_trials, on_trial=trying, progress=advance)
    if as_json:
        emit(json.dumps(platform_dict(result), indent=2, ensure_ascii=False) + "\n")
    else:
        console = _console()
        for line in notes(result):
            console.print(f"note: {escape(line)}", soft_wrap=True)
        console.print(frontier_table(result))
        for line in answer_lines(result):
            console.print(escape(line), soft_wrap=True)
    if out is not None:   # after the answer, and also without one: the evidence is worth keeping
        from paysim.platform_outputs import write_platform
        for path in write_platform(out, result):
            err.print(f"wrote {escape(str(path))}")
    if result.answer is None:
        raise SizingError(result.failure)


@app.command()
def fit(
    log: Path = typer.Argument(..., help="A JMeter results file (CSV .jtl) or a CSV log of requests."),
    time_column: str | None = typer.Option(None, "--time", help="Column of request start times (epoch or "
                                                                     "ISO-8601); default: JMeter's timeStamp."),
    duration_column: str | None = typer.Option(None, "--duration", help="Column of durations (default: elapsed)."),
    label_column: str | None = typer.Option(None, "--label", help="Column naming the request type (default: "
                                                                      "label for JMeter, none for a CSV)."),
    success_column: str | None = typer.Option(None, "--success", help="Column of true/false (default: success "
                                                                          "for JMeter, none for a CSV)."),
    unit: str = typer.Option("ms", help="Unit of the durations: ms or s."),
    time_unit: str | None = typer.Option(None, help="Unit of numeric timestamps: s, ms, us or ns (default: ms "
                                                       "for JMeter, else guessed from their size)."),
    time_at: str = typer.Option("start", help="Whether --time is each request's start or its end."),
    as_json: bool = typer.Option(False, "--json", help="Print only JSON to stdout."),
    out: Path | None = typer.Option(None, help="Write a scenario YAML fitted from the log to this file."),
    force: bool = typer.Option(False, help="Overwrite the --out file (and empirical CSV files beside it)."),
    plot_dir: Path | None = typer.Option(None, "--plot", help="Draw a QQ plot and a histogram with the fit per "
                                                                 "label into this directory."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Fit rates, rate profiles, service-time distributions, error rates and concurrency per label
    from a JMeter results file or a CSV log, and optionally write them as a scenario."""
    from paysim.fit import fit_log, read_log, to_json
    from paysim.fit.cli_columns import columns_for

    with user_errors(debug):
        request_log = read_log(log, columns_for(time_column, duration_column, label_column, success_column,
                                                unit, time_unit, time_at))
        fits = fit_log(request_log)
        if out is not None:
            from paysim.fit.scenario_writer import write_scenario

            written = write_scenario(out, fits, str(log), overwrite=force)
            load_scenario(out)   # what fit writes must load; a failure here is a bug worth seeing
            err.print(f"wrote {', '.join(map(str, written))}", soft_wrap=True)
        if plot_dir is not None:
            from paysim.fit.plot import plot_fits

            err.print(f"wrote {', '.join(map(str, plot_fits(plot_dir, fits)))}", soft_wrap=True)
        if as_json:
            emit(json.dumps(to_json(fits, request_log), indent=2, ensure_ascii=False) + "\n")
        else:
            from paysim.fit.table import fit_tables

            console = _console()
            for table in fit_tables(fits, console):
                console.print(table)
            for label, result in fits.items():
                for note in result.service.notes:
                    err.print(f"[bold yellow]note:[/] {escape(label)}: {escape(note)}", soft_wrap=True)
                if not result.littles_law_holds:
                    err.print(f"[bold yellow]warning:[/] {escape(label)}: Little's law (rate x mean duration = "
                              f"{result.concurrency:.3g}) and the measured overlap ({result.overlap.mean:.3g}) differ "
                              "by more than 5%: requests longer than a good part of the log, cut at its ends",
                              soft_wrap=True)
