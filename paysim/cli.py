"""The ``paysim`` command: each subcommand only wires library calls together.

Every error a user can cause ends here as a short message on stderr and exit code 2
(130 after Ctrl-C); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from paysim import __version__
from paysim.errors import PaysimError
from paysim.report import render, to_dict, write_outputs
from paysim.preflight import expected_arrivals, stability_warnings
from paysim.runner import simulate
from paysim.scenario import load_scenario

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="paysim: a queueing-theory capacity simulator for payment systems.")
err = Console(stderr=True, highlight=False)


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Turn errors a user can cause into a message and an exit code."""
    try:
        yield
    except PaysimError as error:
        if debug:
            raise
        for line in str(error).splitlines():
            err.print(f"[bold red]error:[/] {line}", markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paysim {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Show the version and exit.")) -> None:
    """paysim: a queueing-theory capacity simulator for payment systems."""


def _progress_bar(total: int, quiet: bool) -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), TaskProgressColumn(),
                    TimeRemainingColumn(elapsed_when_finished=True), console=err,
                    disable=quiet or not err.is_terminal, transient=True)


@app.command()
def run(
    file: Path = typer.Argument(..., help="Scenario YAML file."),
    replications: Optional[int] = typer.Option(None, "--replications", "-r", min=1, help="Independent replications (default: the scenario's)."),
    horizon: Optional[str] = typer.Option(None, help="Simulated time per replication, e.g. 10m (default: the scenario's)."),
    warmup: Optional[str] = typer.Option(None, help="Time discarded at the start of each replication, e.g. 1m."),
    seed: Optional[int] = typer.Option(None, min=0, help="Random seed (default: the scenario's)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="Processes to run replications on (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help="Print only JSON to stdout."),
    out: Optional[Path] = typer.Option(None, help="Also write results.json and results.csv into this directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Simulate a scenario and report every metric with its 95% confidence interval."""
    with user_errors(debug):
        overrides: dict[str, Any] = {k: v for k, v in {"horizon": horizon, "warmup": warmup}.items() if v is not None}
        scenario = load_scenario(file, overrides)
        count = replications or scenario.replications
        for line in stability_warnings(scenario):
            err.print(f"[bold yellow]warning:[/] {line}", soft_wrap=True)
        with _progress_bar(count, quiet) as bar:
            task = bar.add_task(f"{scenario.name}: ~{expected_arrivals(scenario) * count:,.0f} arrivals", total=count)
            done: dict[int, float] = {}

            def advance(replication: int, fraction: float) -> None:
                done[replication] = fraction
                bar.update(task, completed=sum(done.values()))

            result = simulate(scenario, seed=seed, replications=replications, jobs=jobs, progress=advance)
        if out is not None:
            for path in write_outputs(result, out):
                err.print(f"wrote {path}")
        if as_json:
            sys.stdout.write(json.dumps(to_dict(result), indent=2, ensure_ascii=False) + "\n")
        else:
            console = Console(highlight=False)
            render(result, console if console.is_terminal else Console(highlight=False, width=160))
        failing = [f"{scope} {c.law}" for scope, checks in result.little.items() for c in checks if not c.holds]
        if failing:
            err.print(f"[bold red]WARNING: Little's law does not hold for {', '.join(failing)}.[/] "
                      + _little_diagnosis(result))


def _little_diagnosis(result) -> str:
    """Why Little's law may fail: a population that kept growing means no steady state."""
    at_end = result.summary["system.in_system_at_end"].mean
    average = result.summary["system.L"].mean
    if at_end > 2 * average + 10:
        return (f"The system was not in a steady state: {at_end:,.0f} transactions were inside at the end against "
                f"{average:,.0f} on average, so the population was still growing (overload, or a metastable "
                "failure such as a retry storm). Little's law holds only for a system that reaches steady state.")
    return "This means a too-short run (try a longer --horizon or more --replications) or a bug."


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Scenario files to check."),
    debug: bool = typer.Option(False, help="Show tracebacks."),
) -> None:
    """Check scenario files without running them; exit 2 if any has a problem."""
    failed = False
    for file in files:
        try:
            with user_errors(debug):
                scenario = load_scenario(file)
                typer.echo(f"ok: {file} ({len(scenario.arrivals)} arrival streams, {len(scenario.stations)} stations)")
        except typer.Exit:
            failed = True
    if failed:
        raise typer.Exit(2)
