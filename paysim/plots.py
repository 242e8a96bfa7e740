"""Capacity curves of a sweep, drawn from its results.csv and sweep.json (matplotlib, Agg).

The first swept parameter is the x axis; every combination of the others is one curve.
Each curve carries its 95% confidence band. With two or more parameters a heatmap also
shows the whole grid at once. Where the scenario has an SLO its target is
a dashed line, and the knee -- the first point of a curve where the SLO is broken,
i.e. no longer met with 95% confidence (the CI's upper bound above the target) -- is
marked. Every figure is written as PNG and SVG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend must be chosen first

from paysim.errors import PaysimError
from paysim.outputs import write_all
from paysim.series_plot import DWARFS  # data this far above an SLO target: log scale
from paysim.sweep.grid import cell_text, numeric
from paysim.sweep.storage import RESULTS, SweepOutputError, read_description, read_results

FORMATS = ("png", "svg")
# SLO objective -> (system metric, which latency panel shows it)
SLO_METRICS = {"mean_latency": "W", "p50_latency": "latency.p50", "p90_latency": "latency.p90",
               "p95_latency": "latency.p95", "p99_latency": "latency.p99", "p999_latency": "latency.p999",
               "max_failure_rate": "failure_rate"}
LATENCY_PANELS = [("W", "mean"), ("latency.p95", "p95"), ("latency.p99", "p99")]
# the grid at a glance: (system metric, title, unit, scale)
HEATMAP_PANELS = [("latency.p99", "p99 latency", "ms", 1000.0), ("failure_rate", "requests failed", "%", 100.0)]


@dataclass
class Curve:
    """One line of a figure: its label, and per point the x value and the row."""

    label: str
    xs: list[float]
    rows: list[Mapping[str, str]]

    def series(self, metric: str, scale: float = 1.0) -> tuple[list[float], list[float], list[float]]:
        def column(suffix: str) -> list[float]:
            return [float(row[f"{metric}.{suffix}"]) * scale if row.get(f"{metric}.{suffix}") else math.nan
                    for row in self.rows]
        return column("mean"), column("ci95_low"), column("ci95_high")


@dataclass
class Data:
    description: dict[str, Any]
    curves: list[Curve]
    x_label: str
    ticks: list[tuple[float, str]] | None   # categorical x: positions and labels
    theory: dict[int, Any] = field(default_factory=dict)   # point -> paysim.theory.Theory, where one applies


def _x_axis(path: str, values: Sequence[Any]) -> tuple[dict[str, float], str, list[tuple[float, str]] | None]:
    """x position of each value of the first parameter (text as written -> number), the axis label, ticks."""
    parsed = [number for number in map(numeric, values) if number is not None]
    if len(parsed) == len(values):
        unit = parsed[0][1]
        return {cell_text(v): n for v, (n, _) in zip(values, parsed)}, f"{path} ({unit})" if unit else path, None
    ticks = [(float(i), cell_text(v)) for i, v in enumerate(values)]
    return {cell_text(v): float(i) for i, v in enumerate(values)}, path, ticks


def short_name(path: str) -> str:
    """The last two parts of a parameter's key path: ``gateway.workers``."""
    return ".".join(path.split(".")[-2:])


def load(directory: Path) -> Data:
    """The finished points of a sweep, grouped into curves along the first parameter."""
    description = read_description(directory)
    _, rows = read_results(directory / RESULTS)
    if not rows:
        raise SweepOutputError(f"{directory / RESULTS} holds no finished points yet; nothing to plot")
    vary: dict[str, list[Any]] = description["vary"]
    first, *others = vary
    positions, x_label, ticks = _x_axis(first, vary[first])
    for number, row in enumerate(rows, start=2):   # results.csv and sweep.json must be of one sweep
        if any(p not in row for p in vary) or row[first] not in positions:
            raise SweepOutputError(f"{directory / RESULTS}:{number}: its parameter values are not in "
                                   f"{directory / 'sweep.json'}'s grid; the two files are not of one sweep")
    groups: dict[tuple[str, ...], list[Mapping[str, str]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[p] for p in others), []).append(row)
    # curves in the grid's order, whatever order the points finished in
    rank = [{cell_text(v): i for i, v in enumerate(vary[p])} for p in others]
    curves = []
    for key, members in sorted(groups.items(), key=lambda item: [r.get(v, 0) for r, v in zip(rank, item[0])]):
        members = sorted(members, key=lambda row: positions[row[first]])
        label = ", ".join(f"{short_name(p)}={v}" for p, v in zip(others, key)) or description.get("scenario_name", "")
        curves.append(Curve(label, [positions[row[first]] for row in members], members))
    return Data(description, curves, x_label, ticks, _theory(description))


def _theory(description: Mapping[str, Any]) -> dict[int, Any]:
    """Queueing theory at every point of the sweep, when its files are still where they were
    and unchanged (else none: the curves do not need it)."""
    from paysim.sweep import load_sweep
    from paysim.theory import analyse

    try:
        plan = load_sweep(description["file"])
    except (PaysimError, OSError, KeyError, TypeError):
        return {}
    if plan.scenario_sha256 != description.get("scenario_sha256"):
        return {}
    return {point.index: analyse(point.scenario) for point in plan.points}


def _theory_line(axes: plt.Axes, data: Data, curve: Curve, scope: str, metric: str, scale: float,
                 labelled: list[str]) -> None:
    """Theory's exact answer along ``curve`` (dotted, black), where the point has one."""
    values, formula = [], None
    for row in curve.rows:
        theory = data.theory.get(int(row["point"])) if row.get("point", "").isdigit() else None
        part = theory.scopes().get(scope) if theory is not None else None
        if part is not None and part.ok and part.exact and metric in part.metrics:
            values.append(part.metrics[metric] * scale)
            formula = part.formula
        else:
            values.append(math.nan)
    if formula is None:
        return
    label = None if formula in labelled else f"theory: {formula}"
    labelled.append(formula)
    axes.plot(curve.xs, values, color="black", linestyle=":", linewidth=1.2, label=label)


def _band(axes: plt.Axes, curve: Curve, metric: str, colour: Any, scale: float = 1.0, label: str | None = None,
          x: Sequence[float] | None = None) -> None:
    xs = list(x if x is not None else curve.xs)
    mean, low, high = curve.series(metric, scale)
    axes.plot(xs, mean, marker="o", markersize=3, color=colour, label=label)
    # every metric drawn is non-negative: a t-interval reaching below 0 is cut there
    axes.fill_between(xs, np.maximum(low, 0.0), high, color=colour, alpha=0.2, linewidth=0)


def breaks(mean: float, high: float, target: float) -> bool:
    """The SLO is broken at a point: its CI's upper bound (the mean without one) is above the target."""
    worst = high if math.isfinite(high) else mean
    return math.isfinite(worst) and worst > target


def knee(curve: Curve, metric: str, target: float) -> int | None:
    """Index of the first point of ``curve`` where the SLO is broken."""
    mean, _, high = curve.series(metric)
    return next((index for index, (m, h) in enumerate(zip(mean, high)) if breaks(m, h, target)), None)


def _slo_target(data: Data, metric: str) -> tuple[str, float] | None:
    """The scenario's SLO objective on a system ``metric`` and its target, if it has one."""
    return next(((objective, target) for objective, target in data.description.get("slo", {}).items()
                 if SLO_METRICS.get(objective) == metric), None)


def _slo(axes: plt.Axes, data: Data, metric: str, scale: float, colours: list[Any]) -> None:
    """The dashed SLO target on ``metric``'s panel and each curve's knee."""
    slo = _slo_target(data, metric.removeprefix("system."))
    if slo is None:
        return
    objective, target = slo
    axes.axhline(target * scale, color="red", linestyle="--", linewidth=1, label=f"SLO {objective}")
    peak = max((h for curve in data.curves for h in curve.series(metric, scale)[2] if math.isfinite(h)), default=0.0)
    if peak > DWARFS * target * scale:   # the data would flatten the target onto the axis: log above it
        axes.set_yscale("symlog", linthresh=target * scale / 2)
        axes.set_ylim(bottom=0)
    for curve, colour in zip(data.curves, colours):
        index = knee(curve, metric, target)
        if index is not None:
            y = curve.series(metric, scale)[0][index]
            axes.plot([curve.xs[index]], [y], marker="X", markersize=10, color="red", linestyle="none")
            axes.annotate(f"knee {_x_text(data, curve.xs[index])}", (curve.xs[index], y),
                          textcoords="offset points", xytext=(6, -12), fontsize=7, color="red")


def _x_text(data: Data, x: float) -> str:
    if data.ticks:
        return dict(data.ticks).get(x, f"{x:g}")
    return f"{x:g}"


def _finish(figure: plt.Figure, axes_list: Sequence[plt.Axes], data: Data, title: str, directory: Path,
            name: str, x_label: str | None = None) -> list[Path]:
    for axes in axes_list:
        axes.set_xlabel(x_label or data.x_label)
        axes.grid(True, alpha=0.3)
        if data.ticks and x_label is None:
            axes.set_xticks([t for t, _ in data.ticks], [label for _, label in data.ticks], rotation=30, fontsize=7)
        if axes.get_legend_handles_labels()[1]:   # a legend only where something is labelled
            axes.legend(fontsize=7)
    figure.suptitle(title)
    return _save(figure, directory, name)


def _save(figure: plt.Figure, directory: Path, name: str) -> list[Path]:
    figure.tight_layout()
    paths = []
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "paysim"}):  # SVG text stays text; stable ids
        try:
            for suffix in FORMATS:
                path = directory / f"{name}.{suffix}"

                def draw(temporary: Path, suffix: str = suffix) -> None:
                    figure.savefig(temporary, format=suffix, dpi=120,
                                   metadata={"Date": None} if suffix == "svg" else None)

                write_all([(path, draw)])
                paths.append(path)
        finally:
            plt.close(figure)
    return paths


def _colours(count: int) -> list[Any]:
    cmap = plt.get_cmap("viridis" if count > 10 else "tab10")
    return [cmap(i / max(count - 1, 1)) if count > 10 else cmap(i) for i in range(count)]


def latency_figure(data: Data, directory: Path) -> list[Path]:
    figure, axes_list = plt.subplots(1, len(LATENCY_PANELS), figsize=(5 * len(LATENCY_PANELS), 4), squeeze=False)
    colours = _colours(len(data.curves))
    for axes, (metric, title) in zip(axes_list[0], LATENCY_PANELS):
        labelled: list[str] = []
        for curve, colour in zip(data.curves, colours):
            _band(axes, curve, f"system.{metric}", colour, 1000.0, curve.label)
            _theory_line(axes, data, curve, "system", metric, 1000.0, labelled)
        _slo(axes, data, f"system.{metric}", 1000.0, colours)
        axes.set_title(f"{title} latency")
        axes.set_ylabel("ms")
    return _finish(figure, axes_list[0], data, "latency, with 95% CI", directory, "latency")


def throughput_figure(data: Data, directory: Path) -> list[Path]:
    figure, axes = plt.subplots(figsize=(6, 4.5))
    colours = _colours(len(data.curves))
    top = 0.0
    for curve, colour in zip(data.curves, colours):
        offered = curve.series("system.arrival_rate")[0]
        top = max([top, *(x for x in offered if math.isfinite(x))])
        _band(axes, curve, "system.throughput", colour, label=f"throughput {curve.label}".strip(), x=offered)
        mean, _, _ = curve.series("system.goodput")
        axes.plot(offered, mean, linestyle="-.", color=colour, label=f"goodput {curve.label}".strip())
    axes.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="throughput = offered")
    axes.set_ylabel("per second")
    return _finish(figure, [axes], data, "throughput and goodput against offered load", directory, "throughput",
                   x_label="offered load (arrivals per second)")


def _per_station(data: Data, directory: Path, metric: str, name: str, title: str, y_label: str,
                 scale: float = 1.0) -> list[Path]:
    stations = data.description.get("stations") or []
    columns = min(len(stations), 3) or 1
    rows = math.ceil(len(stations) / columns) or 1
    figure, grid = plt.subplots(rows, columns, figsize=(5 * columns, 3.8 * rows), squeeze=False)
    colours = _colours(len(data.curves))
    axes_list = list(grid.flat)
    for axes, station in zip(axes_list, stations):
        labelled: list[str] = []
        for curve, colour in zip(data.curves, colours):
            _band(axes, curve, f"stations.{station}.{metric}", colour, scale, curve.label)
            _theory_line(axes, data, curve, f"stations.{station}", metric, scale, labelled)
        if metric == "utilization":
            axes.axhline(100.0, color="grey", linestyle=":", linewidth=1)
        axes.set_title(station)
        axes.set_ylabel(y_label)
    for axes in axes_list[len(stations):]:
        axes.set_visible(False)
    return _finish(figure, axes_list[:len(stations)], data, title, directory, name)


def losses_figure(data: Data, directory: Path) -> list[Path]:
    figure, axes = plt.subplots(figsize=(6, 4.5))
    colours = _colours(len(data.curves))
    for curve, colour in zip(data.curves, colours):
        _band(axes, curve, "system.failure_rate", colour, 100.0, f"failed {curve.label}".strip())
    _slo(axes, data, "system.failure_rate", 100.0, colours)
    axes.set_ylabel("% of requests")
    return _finish(figure, [axes], data, "requests that failed (rejected or lost), with 95% CI", directory, "losses")


def heatmap_figure(data: Data, directory: Path) -> list[Path]:
    """The whole grid at once, for sweeps of two or more parameters: the first across, the
    others down, a cell per point with its mean; cells where the SLO is broken (95% CI upper
    bound above the target) are outlined in red."""
    xs = sorted({x for curve in data.curves for x in curve.xs})
    column = {x: j for j, x in enumerate(xs)}
    figure, axes_list = plt.subplots(1, len(HEATMAP_PANELS), squeeze=False,
                                     figsize=(max(6.0, 0.7 * len(xs) + 3) * len(HEATMAP_PANELS) / 1.4,
                                              max(3.5, 0.45 * len(data.curves) + 2)))
    for axes, (metric, title, unit, scale) in zip(axes_list[0], HEATMAP_PANELS):
        target = (_slo_target(data, metric) or (None, None))[1]
        values = np.full((len(data.curves), len(xs)), np.nan)
        for i, curve in enumerate(data.curves):
            mean, _, high = curve.series(f"system.{metric}")
            for x, m, h in zip(curve.xs, mean, high):
                values[i, column[x]] = m * scale
                if target is not None and breaks(m, h, target):
                    axes.add_patch(plt.Rectangle((column[x] - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red",
                                                 linewidth=2))
        image = axes.imshow(values, aspect="auto", origin="lower", cmap="viridis")
        figure.colorbar(image, ax=axes, label=unit)
        middle = np.nanmean(values) if np.isfinite(values).any() else 0.0
        for (i, j), value in np.ndenumerate(values):
            if math.isfinite(value):
                text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
                axes.text(j, i, text, ha="center", va="center", fontsize=7,
                          color="black" if value > middle else "white")
        axes.set_xticks(range(len(xs)), [_x_text(data, x) for x in xs], rotation=30, fontsize=7)
        axes.set_yticks(range(len(data.curves)), [curve.label for curve in data.curves], fontsize=7)
        axes.set_xlabel(data.x_label)
        axes.set_title(title + (f" (red: SLO {target * scale:g} {unit} broken)" if target is not None else ""),
                       fontsize=9)
    figure.suptitle("the whole grid: mean per point")
    return _save(figure, directory, "heatmap")


def plot_sweep(directory: str | Path) -> list[Path]:
    """Draw every figure of the sweep in ``directory`` into it; returns the files written."""
    directory = Path(directory)
    data = load(directory)
    paths = latency_figure(data, directory) + throughput_figure(data, directory)
    paths += _per_station(data, directory, "utilization", "utilization", "utilisation per station, with 95% CI",
                          "%", 100.0)
    paths += _per_station(data, directory, "Lq", "queue", "mean queue length per station, with 95% CI", "waiting")
    paths += losses_figure(data, directory)
    return paths + (heatmap_figure(data, directory) if len(data.description["vary"]) > 1 else [])
