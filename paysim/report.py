"""Presenting a run: nested JSON, a long-format CSV, and tables for the terminal."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paysim import humanize, recovery, timeseries
from paysim.errors import one_line
from paysim.outputs import OutputError, Writer, describe, write_all
from paysim.runner import RunResult
from paysim.series_plot import plot_series, timeline
from paysim.sketch import RELATIVE_ERROR
from paysim.stats import LEVEL, Estimate, LittleCheck
from paysim.units import format_duration
from paysim.windows import PREFIX as WINDOWS, split as split_window

INTERNAL = {"entry_rate", "W_all", "Wq_all", "S_all", "departed", "in_service"}   # Little's-law and conservation inputs
LAW_KEYS = {"L = λW": "L_vs_lambda_W", "Lq = λWq": "Lq_vs_lambda_Wq", "busy = λE[S]": "busy_vs_lambda_S"}
TIME_METRICS = {"W", "Wq", "S", "p50", "p90", "p95", "p99", "p999"}


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def estimate_json(value: Estimate) -> dict[str, Any]:
    return {"mean": _number(value.mean), "ci95": [_number(value.low), _number(value.high)]}


def _little_json(check: LittleCheck) -> dict[str, Any]:
    return {"left": estimate_json(check.left), "right": estimate_json(check.right),
            "rel_error": _number(check.rel_error), "ci_agree": check.ci_agree, "holds": check.holds,
            "verdict": check.verdict}


def _little_overall(result: RunResult) -> str:
    """holds (every check), does not hold (any), else inconclusive."""
    verdicts = {c.verdict for checks in result.little.values() for c in checks}
    return "does not hold" if "does not hold" in verdicts else "inconclusive" if "inconclusive" in verdicts else "holds"


def _timeline(result: RunResult) -> dict[str, Any]:
    """The scenario's timeline, with how long each disturbance took to recover from (paysim.recovery)."""
    return {**timeline(result.scenario), "recovery": recovery.marks(result.scenario, result.summary)}


def public_metrics(result: RunResult) -> dict[str, Estimate]:
    """Every reported metric by dotted name (``stations.pool.Wq``), internals left out."""
    return {name: value for name, value in result.summary.items()
            if name.rsplit(".", 1)[-1] not in INTERNAL}


def to_dict(result: RunResult) -> dict[str, Any]:
    """The run as nested JSON-ready data: run, system, stations, streams, slo."""
    scenario = result.scenario
    out: dict[str, Any] = {
        "run": {
            "scenario": scenario.name, "engine": result.engine, "seed": result.seed,
            "replications": result.replications, "horizon_s": scenario.horizon, "warmup_s": scenario.warmup,
            "confidence": LEVEL, "percentile_relative_error": RELATIVE_ERROR, "wall_s": round(result.wall_s, 3),
            "littles_law_holds": all(c.holds for checks in result.little.values() for c in checks),
            "littles_law": _little_overall(result),
            "notes": result.notes, "timeline": _timeline(result),
        },
        "system": {}, "stations": {name: {} for name in scenario.stations},
        "streams": {name: {} for name in scenario.arrivals},
    }
    for name in scenario.windows:
        out.setdefault(WINDOWS, {})[name] = {"system": {}, "stations": {n: {} for n in scenario.stations},
                                             "streams": {n: {} for n in scenario.arrivals}}
    for name, value in public_metrics(result).items():
        root, window = out, split_window(name)
        if window:   # windows.NAME.system.W -> out["windows"][NAME]["system"]["W"]
            root, name = out[WINDOWS][window[0]], window[1]
        scope, *rest = name.split(".")
        node = root[scope] if scope == "system" else root[scope][rest.pop(0)]
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        node[rest[-1]] = estimate_json(value)
    for scope, checks in result.little.items():
        kind, *names = scope.split(".")
        node = out[kind] if kind == "system" else out[kind][names[0]]
        node["littles_law"] = {LAW_KEYS[c.law]: _little_json(c) for c in checks}
    out["slo"] = [{"scope": c.scope, "objective": c.objective, "target": c.target, **estimate_json(c.value),
                   "verdict": c.verdict, **({"note": c.note} if c.note else {})} for c in result.slo]
    return out


def estimate_leaves(node: Any, prefix: str = "") -> dict[str, dict[str, Any]]:
    """The estimates ({"mean", "ci95"} nodes) of a nested results.json part by dotted metric name
    (Little's-law checks left out)."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(node, dict):
        if "mean" in node and "ci95" in node:
            return {prefix: node}
        for key, value in node.items():
            if key != "littles_law":
                found.update(estimate_leaves(value, f"{prefix}.{key}" if prefix else key))
    return found


def write_outputs(result: RunResult, directory: Path) -> list[Path]:
    """results.json (as --json prints), results.csv (metric, mean, ci95_low, ci95_high) and,
    when the run was sampled, timeseries.csv and timeseries.png; all or none replace earlier ones."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{one_line(str(directory))}: cannot use it as the output directory ({describe(error)})") from None
    text = json.dumps(to_dict(result), indent=2, ensure_ascii=False) + "\n"

    def metrics_csv(path: Path) -> None:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["metric", "mean", "ci95_low", "ci95_high"])
            for name, value in public_metrics(result).items():
                writer.writerow([name, *(repr(x) if not math.isnan(x) else "" for x in (value.mean, value.low, value.high))])

    files: list[tuple[Path, Writer]] = [(directory / "results.json", lambda path: path.write_text(text, encoding="utf-8")),
                                        (directory / "results.csv", metrics_csv),
                                        (directory / REPLICATIONS, lambda path: write_replications(result, path))]
    if result.series:
        rows = timeseries.average(result.series)
        files.append((directory / "timeseries.csv", lambda path: timeseries.write_csv(rows, path)))
        files.append((directory / "timeseries.png",
                      lambda path: plot_series(rows, path, result.scenario.name, _timeline(result))))
    return write_all(files)


REPLICATIONS = "replications.csv"


def write_replications(result: RunResult, path: Path) -> Path:
    """One row per replication, one column per public metric: what `paysim compare` tests on."""
    names = list(public_metrics(result))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["replication", *names])
        for index, row in enumerate(result.rows):
            writer.writerow([index, *(repr(row[n]) if math.isfinite(row.get(n, math.nan)) else "" for n in names)])
    return path


_FORMATS = {"time": humanize.duration, "percent": humanize.percent, "rate": humanize.rate,
            "number": lambda x, digits: humanize.fixed(x, digits)}


def _cell(value: Estimate | None, kind: str) -> str:
    """The mean with the digits its CI resolves, and the CI half-width relative to it."""
    if value is None or not math.isfinite(value.mean):
        return "-"
    text = _FORMATS[kind](value.mean, humanize.digits_for(value.mean, value.half_width))
    spread = humanize.relative(value.half_width, value.mean)
    return f"{text} {spread}" if spread else text


_ROWS = [("arrival_rate", "rate"), ("throughput", "rate"), ("goodput", "rate"), ("utilization", "percent"), ("held", "number"),
         ("cpu_utilization", "percent"), ("breaker_open_fraction", "percent"), ("breaker_rejected", "number"),
         ("threads", "number"), ("workers", "number"), ("cost", "number"), ("batch_size", "number"),
         ("W", "time"), ("Wq", "time"), ("latency.p50", "time"), ("latency.p90", "time"),
         ("latency.p95", "time"), ("latency.p99", "time"), ("latency.p999", "time"),
         ("L", "number"), ("Lq", "number"), ("retry_amplification", "number"), ("rejection_rate", "percent"),
         ("timeout_rate", "percent"), ("abandon_rate", "percent"), ("cancel_rate", "percent"),
         ("error_rate", "percent"), ("breaker_open_rate", "percent"), ("rate_limited_rate", "percent"),
         ("failure_rate", "percent"), ("background_failed", "number"), ("cache_hit_rate", "percent"),
         ("approve_rate", "percent"), ("review_rate", "percent"), ("decline_rate", "percent"),
         ("drain_time", "time"), ("not_drained", "percent"), ("recovery_time", "time"), ("not_recovered", "percent")]
_SHOWN_WHEN_NONZERO = {"retry_amplification", "timeout_rate", "abandon_rate", "cancel_rate", "error_rate",
                       "breaker_open_rate", "rate_limited_rate", "background_failed"}
_BORDER = 3    # a column's padding and rule, in characters


def _scopes(result: RunResult) -> list[tuple[str, str]]:
    return [("system", "system")] + [(f"stations.{n}", f"station {n}") for n in result.scenario.stations] \
        + [(f"streams.{n}", f"stream {n}") for n in result.scenario.arrivals]


def _columns(result: RunResult, prefix: str) -> tuple[list[str], dict[str, list[str]]]:
    """The metrics shown (rows) and, per scope label, its cells."""
    scopes = _scopes(result)
    shown: list[str] = []
    columns: dict[str, list[str]] = {label: [] for _, label in scopes}
    for metric, kind in _ROWS:
        values = [result.summary.get(f"{prefix}{scope}.{metric}") for scope, _ in scopes]
        if metric in _SHOWN_WHEN_NONZERO and not any(v and v.mean and math.isfinite(v.mean) and
                                                     (metric != "retry_amplification" or v.mean != 1) for v in values):
            continue
        cells = [_cell(value, kind) for value in values]
        if any(cell != "-" for cell in cells):
            shown.append(metric.removeprefix("latency."))
            for (_, label), cell in zip(scopes, cells):
                columns[label].append(cell)
    return shown, columns


def _pack(widths: dict[str, int], room: int) -> list[list[str]]:
    """Scopes in order, as many per table as fit in ``room`` characters (at least one)."""
    groups: list[list[str]] = [[]]
    used = 0
    for label, width in widths.items():
        if groups[-1] and used + width + _BORDER > room:
            groups.append([])
            used = 0
        groups[-1].append(label)
        used += width + _BORDER
    return groups


def metrics_tables(result: RunResult, width: int = 160, prefix: str = "", title: str | None = None) -> list[Table]:
    """Metrics down, scopes (system, stations, streams) across; each cell mean ±CI half-width.
    Scopes that do not fit in ``width`` go on to a further table: no cell is ever cut."""
    shown, columns = _columns(result, prefix)
    name_width = max((len(metric) for metric in shown), default=6)
    widths = {label: max(len(label), *(len(cell) for cell in cells)) for label, cells in columns.items()}
    groups = _pack(widths, width - name_width - _BORDER - 1)
    title = title or (f"{escape(result.scenario.name)}: {result.replications} replications, "
                      f"mean ±{LEVEL:.0%} CI (relative)")
    tables = []
    for index, group in enumerate(groups):
        part = f" ({index + 1}/{len(groups)})" if len(groups) > 1 else ""
        table = Table(title=title + part, title_justify="left")
        table.add_column("metric", no_wrap=True, min_width=name_width)
        for label in group:
            table.add_column(escape(label), justify="right", no_wrap=True, min_width=widths[label])
        for row, metric in enumerate(shown):
            table.add_row(metric, *(columns[label][row] for label in group))
        tables.append(table)
    return tables


def window_tables(result: RunResult, width: int = 160) -> list[Table]:
    """Per named window, the same table over that stretch of time."""
    tables = []
    for name, (start, end) in result.scenario.windows.items():
        title = (f"window {escape(name)} [{humanize.duration(start)}, {humanize.duration(end)}]: "
                 f"mean ±{LEVEL:.0%} CI (relative)")
        tables += metrics_tables(result, width, prefix=f"{WINDOWS}.{name}.", title=title)
    return tables


def little_table(result: RunResult) -> Table:
    table = Table(title="Little's law, checked on this run's own output", title_justify="left")
    for header in ("scope", "law", "left", "right", "rel. error", ""):
        table.add_column(header, justify="right" if header in ("left", "right", "rel. error") else "left",
                         overflow="fold")   # a narrow terminal wraps a cell, never cuts it
    for scope, checks in result.little.items():
        for c in checks:
            verdict = {"holds": "[green]holds[/]", "inconclusive": "[yellow]inconclusive (CI too wide)[/]"}.get(
                c.verdict, "[bold red]DOES NOT HOLD[/]")
            table.add_row(escape(scope), c.law, f"{c.left.mean:.5g}", f"{c.right.mean:.5g}", f"{100 * c.rel_error:.2f}%", verdict)
    return table


_SLO_KINDS = {"max_failure_rate": "percent", "min_goodput": "rate"}


def _slo_estimate(value: Estimate, kind: str) -> str:
    if value.mean == math.inf:   # failed requests (slower than any target) reach this percentile
        return "∞ (failures)"
    return _cell(value, kind)


def slo_table(result: RunResult) -> Table:
    table = Table(title="SLOs (judged on the 95% CI; a percentile over all requests, failures counting as "
                        "beyond the target)", title_justify="left")
    for header in ("scope", "objective", "target", "estimate", "successes only", "verdict"):
        table.add_column(header)
    colour = {"met": "green", "missed": "bold red", "uncertain": "yellow"}
    for c in result.slo:
        kind = _SLO_KINDS.get(c.objective, "time")
        target = {"percent": lambda x: f"{100 * x:.3g}%", "rate": lambda x: f"{x:,.4g}/s"}.get(kind, format_duration)(c.target)
        success = (result.summary.get(f"{c.scope}.latency.{c.objective.removesuffix('_latency')}")
                   if c.objective.startswith("p") else None)
        note = f" ({escape(c.note)})" if c.note else ""
        table.add_row(escape(c.scope), c.objective, target, _slo_estimate(c.value, kind),
                      _cell(success, "time") if success is not None else "",
                      f"[{colour[c.verdict]}]{c.verdict}[/]{note}")
    return table


def render(result: RunResult, console: Console) -> None:
    for table in metrics_tables(result, console.width) + window_tables(result, console.width):
        console.print(table)
    console.print(little_table(result))
    if result.slo:
        console.print(slo_table(result))
    for note in result.notes:
        console.print(f"[dim]{escape(note)}[/]")
    console.print(f"[dim]seed {result.seed}, engine {result.engine}, {result.wall_s:.1f}s wall; "
                  f"percentiles within ±{RELATIVE_ERROR:.1%}; times per transaction[/]")
