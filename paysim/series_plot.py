"""A run's time series drawn like a monitoring dashboard, from the rows `timeseries.csv` holds.

Panels share the time axis: rates; the share of requests that failed, with the failure
SLO; latency of successes in ms, with the latency SLOs; each station's queue; each
station's busy workers with its workers alive dashed. Slowdowns and outages are shaded on
every panel, named windows outlined. A panel where one station's values dwarf the others'
(a batch station gathering thousands of items) is drawn on a symmetric log scale so the
others still show. Everything the figure needs besides the rows is the run's *timeline*
(:func:`timeline`), which results.json keeps, so `paysim plot RUN_DIR` redraws it alike.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paysim.errors import PaysimError
from paysim.network import worker_steps
from paysim.scenario import Scenario
from paysim.units import format_duration

if TYPE_CHECKING:   # matplotlib is imported only when drawing: `run --json` does not pay for it
    import matplotlib.pyplot as plt

SERIES, RESULTS, FIGURE = "timeseries.csv", "results.json", "timeseries.png"
DWARFS = 20.0        # one series' peak this many times the next one's: log scale
LATENCY_SLOS = {"p50_latency": "system.latency.p50", "p99_latency": "system.latency.p99"}   # the sampled ones
RATES = [("system.arrival_rate", "arrivals"), ("system.throughput", "throughput"), ("system.goodput", "goodput"),
         ("system.retries_per_s", "retries")]


def timeline(scenario: Scenario) -> dict[str, Any]:
    """What the figure shows besides the series: SLO targets, slowdowns and outages, named
    windows and each station's capacity over time, as JSON-ready data (times in seconds)."""
    events, capacity = [], {}
    for name, station in scenario.stations.items():
        for slowdown in station.slowdowns:
            events.append({"station": name, "kind": "slowdown", "start": slowdown.at,
                           "end": slowdown.at + slowdown.length, "label": f"{name} x{slowdown.factor:g}"})
        for outage in station.outages:
            events.append({"station": name, "kind": "outage", "start": outage.at, "end": outage.at + outage.length,
                           "label": f"{name} {outage.mode}"})
        if not station.unlimited:   # unlimited workers draw no capacity line
            capacity[name] = [[at, workers * station.instances] for at, workers in worker_steps(station)]
    return {"slo": scenario.slo.model_dump(exclude_none=True) if scenario.slo else {}, "events": events,
            "windows": {name: list(span) for name, span in scenario.windows.items()}, "capacity": capacity,
            "batch": [name for name, station in scenario.stations.items() if station.batch is not None],
            "cores": {name: station.cores for name, station in scenario.stations.items() if station.cores}}


def _dwarfed(peaks: Sequence[float]) -> bool:
    ordered = sorted((p for p in peaks if math.isfinite(p)), reverse=True)
    return len(ordered) > 1 and ordered[0] > DWARFS * max(ordered[1], 1.0)


def _column(rows: Sequence[Mapping[str, float]], key: str) -> np.ndarray:
    return np.array([row.get(key, math.nan) for row in rows], dtype=float)


def _show_target(axes: plt.Axes, target: float, values: np.ndarray, label: str) -> None:
    """A dashed SLO line, on a scale where it shows: symmetric log when the data dwarf it."""
    axes.axhline(target, color="red", linestyle="--", linewidth=1, label=label)
    finite = values[np.isfinite(values)]
    peak = float(finite.max()) if finite.size else 0.0
    if peak > DWARFS * target:
        axes.set_yscale("symlog", linthresh=target / 2)
    axes.set_ylim(bottom=0, top=max(peak, target) * 1.3 if axes.get_yscale() == "linear" else max(peak, target) * 3)


def series_figure(rows: Sequence[Mapping[str, float]], title: str, context: Mapping[str, Any]) -> plt.Figure:
    """The dashboard as a matplotlib figure (not saved)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogFormatter

    seconds = _column(rows, "t")
    in_minutes = seconds.size and seconds[-1] >= 120
    t = seconds / 60 if in_minutes else seconds
    scale = 1 / 60 if in_minutes else 1.0
    stations = list(context.get("capacity") or sorted({k.split(".")[1] for k in (rows[0] if rows else {})
                                                      if k.startswith("stations.")}))
    figure, axes = plt.subplots(5, 1, figsize=(10, 13), sharex=True)
    rates, failures, latency, queues, busy = axes
    for key, label in RATES:
        if rows and key in rows[0]:
            rates.plot(t, _column(rows, key), label=label, linewidth=1.2)
    rates.set_ylabel("per second")

    failed, succeeded = _column(rows, "system.failures_per_s"), _column(rows, "system.goodput")
    with np.errstate(invalid="ignore", divide="ignore"):
        share = 100 * failed / (failed + succeeded)
    failures.plot(t, share, color="black", linewidth=1.2, label="failed")
    slo = context.get("slo") or {}
    if "max_failure_rate" in slo:
        _show_target(failures, 100 * slo["max_failure_rate"], share, "SLO max_failure_rate")
    failures.set_ylabel("requests failed (%)")

    for key, label in (("system.latency.p50", "p50"), ("system.latency.p99", "p99")):
        latency.plot(t, 1000 * _column(rows, key), label=label, linewidth=1.2)
    for objective, key in LATENCY_SLOS.items():
        if objective in slo:
            latency.axhline(1000 * slo[objective], color="red", linestyle="--", linewidth=1, label=f"SLO {objective}")
    latency.set_yscale("log")
    latency.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    # within one decade matplotlib labels minor ticks too, by default as 6×10^2: plain ms like the major ones
    latency.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
    latency.set_ylabel("latency of successes (ms)")

    colours = {name: plt.get_cmap("tab10")(i % 10) for i, name in enumerate(stations)}
    for name in stations:
        queues.plot(t, _column(rows, f"stations.{name}.queue"), label=name, color=colours[name], linewidth=1.2)
        busy.plot(t, _column(rows, f"stations.{name}.busy"), label=name, color=colours[name], linewidth=1.2)
        if rows and f"stations.{name}.held" in rows[0]:   # threads busy waiting on calls, not computing
            busy.plot(t, _column(rows, f"stations.{name}.held"), label=f"{name} held", color=colours[name],
                      linestyle=":", linewidth=1.2)
        if rows and f"stations.{name}.cpu_utilization" in rows[0]:   # cores in use, on the workers' scale
            cores = context.get("cores", {}).get(name, 1)
            busy.plot(t, cores * _column(rows, f"stations.{name}.cpu_utilization"), label=f"{name} cores in use",
                      color=colours[name], linestyle="-.", linewidth=1)
        steps = (context.get("capacity") or {}).get(name)
        if rows and f"stations.{name}.workers" in rows[0]:   # workers alive as sampled (an autoscaler's)
            busy.step(t, _column(rows, f"stations.{name}.workers"), where="post", color=colours[name],
                      linestyle="--", linewidth=1, label=f"{name} workers")
        elif steps:   # a series written before workers were sampled: the scenario's schedule
            times = [s[0] * scale for s in steps] + [t[-1] if t.size else steps[-1][0] * scale]
            levels = [s[1] for s in steps] + [steps[-1][1]]
            busy.step(times, levels, where="post", color=colours[name], linestyle="--", linewidth=1,
                      label=f"{name} capacity")
    for panel, key in ((queues, "queue"), (busy, "busy")):
        peaks = [np.nanmax(_column(rows, f"stations.{n}.{key}"), initial=0.0) for n in stations]
        if _dwarfed(peaks):
            panel.set_yscale("symlog", linthresh=1.0)
    queues.set_ylabel("waiting (queue length)")
    busy.set_ylabel("busy workers")

    for event in context.get("events") or []:
        colour = "orange" if event["kind"] == "slowdown" else "red"
        for panel in axes:
            panel.axvspan(event["start"] * scale, event["end"] * scale, color=colour, alpha=0.15, linewidth=0)
        rates.annotate(event["label"], (event["start"] * scale, 1), xycoords=("data", "axes fraction"),
                       xytext=(2, -10), textcoords="offset points", fontsize=7, color=colour)
    for mark in context.get("recovery") or []:   # from the end of a disturbance until back within its band
        end = mark["end"] * scale
        if mark["mean"] is None:
            for panel in axes:
                panel.axvline(end, color="darkred", linestyle="--", linewidth=1)
            text = "did not recover"
        else:
            for panel in axes:
                panel.axvspan(end, (mark["end"] + mark["mean"]) * scale, facecolor="none", edgecolor="green",
                              hatch="//", alpha=0.35, linewidth=0)
            text = f"recovered after {format_duration(mark['mean'])}" + (
                f" ({mark['not_recovered']:.0%} did not)" if mark["not_recovered"] > 0 else "")
        queues.annotate(text, (end, 1), xycoords=("data", "axes fraction"), xytext=(2, -10),
                        textcoords="offset points", fontsize=7, color="darkred" if mark["mean"] is None else "green")
    for name, (start, end) in (context.get("windows") or {}).items():
        for panel in axes:
            panel.axvspan(start * scale, end * scale, facecolor="none", edgecolor="grey", linestyle=":", linewidth=1)
        rates.annotate(name, (start * scale, 1), xycoords=("data", "axes fraction"), xytext=(2, 2),
                       textcoords="offset points", fontsize=7, color="grey")
    for panel in (rates, queues, busy):
        panel.set_ylim(bottom=0)    # counts and rates: the floor is 0
    for panel in axes:
        panel.grid(alpha=0.3)
        if panel.get_legend_handles_labels()[1]:
            panel.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("simulated time (min)" if in_minutes else "simulated time (s)")
    figure.suptitle(f"{title}: mean over replications")
    figure.tight_layout()
    return figure


def plot_series(rows: Sequence[Mapping[str, float]], path: Path, title: str, context: Mapping[str, Any]) -> Path:
    import matplotlib.pyplot as plt

    figure = series_figure(rows, title, context)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def read_series(path: Path) -> list[dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [{key: float(value) if value else math.nan for key, value in row.items()} for row in csv.DictReader(handle)]


def redraw(directory: Path) -> list[Path]:
    """Redraw ``timeseries.png`` of a ``run --out`` directory from its timeseries.csv and results.json."""
    if not (directory / SERIES).exists():
        raise PaysimError(f"{directory / SERIES}: not found; this run sampled no time series "
                          "(the compiled engine samples none: run --out with --engine simpy or auto)")
    try:
        run = json.loads((directory / RESULTS).read_text(encoding="utf-8"))["run"]
        rows = read_series(directory / SERIES)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PaysimError(f"{directory}: cannot read the run's {RESULTS} and {SERIES} ({error})") from None
    if not rows:
        raise PaysimError(f"{directory / SERIES}: no rows to draw")
    return [plot_series(rows, directory / FIGURE, str(run.get("scenario", "")), run.get("timeline") or {})]
