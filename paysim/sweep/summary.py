"""A sweep's results as a terminal table: one row per point, the headline metrics and the SLO verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from paysim.stats import Estimate, check_slo
from paysim.sweep.storage import estimates
from paysim.units import format_duration

MAX_ROWS = 60   # a longer grid is summarised by its first rows; results.csv has them all
_COLOURS = {"met": "green", "missed": "bold red", "uncertain": "yellow"}


def slo_verdict(slo: Mapping[str, float], metrics: Mapping[str, Estimate]) -> str:
    """``met`` if every objective is met with 95% confidence, ``missed`` if one is surely missed, else ``uncertain``."""
    try:
        verdicts = [check.verdict for check in check_slo(metrics, slo)]
    except KeyError:
        return "-"
    if not verdicts:
        return "-"
    return "missed" if "missed" in verdicts else "uncertain" if "uncertain" in verdicts else "met"


def _busiest(stations: Sequence[str], metrics: Mapping[str, Estimate]) -> str:
    loads = [(metrics[f"stations.{s}.utilization"].mean, s) for s in stations if f"stations.{s}.utilization" in metrics]
    loads = [(u, s) for u, s in loads if math.isfinite(u)]
    if not loads:
        return "-"
    utilization, station = max(loads)
    return f"{station} {100 * utilization:.3g}%"


def _value(metrics: Mapping[str, Estimate], name: str, show: Any) -> str:
    value = metrics.get(name)
    return show(value.mean) if value is not None and math.isfinite(value.mean) else "-"


def _drain(metrics: Mapping[str, Estimate], station: str) -> str:
    """The mean drain time, and how many replications did not drain (never averaged in)."""
    text = _value(metrics, f"stations.{station}.drain_time", format_duration)
    missed = metrics.get(f"stations.{station}.not_drained")
    if missed is not None and missed.mean > 0:
        text += f" ({missed.mean:.0%} not drained)"
    return text


def summary_table(description: Mapping[str, Any], rows: Sequence[Mapping[str, str]]) -> Table:
    """One row per finished point, in grid order."""
    parameters = list(description["vary"])
    slo = description.get("slo") or {}
    table = Table(title=f"sweep of {description.get('scenario_name', '')}: {len(rows)} of "
                        f"{len(description['points'])} points, {description['replications']} replications each "
                        "(means)", title_justify="left")
    # a station that started with a backlog: how long it took to drain (paysim.transient)
    drains = [name for name in description.get("stations") or []
              if any(row.get(f"stations.{name}.drain_time.mean") is not None for row in rows)]
    priced = any("system.cost.mean" in row for row in rows)   # a station has cost prices
    for header in ["point", *(".".join(p.split(".")[-2:]) for p in parameters),
                   "throughput", "mean latency", "p99 latency", "failed", *(["cost"] if priced else []),
                   "busiest station", *(f"{name} drain" for name in drains), *(["SLO"] if slo else [])]:
        table.add_column(header, justify="left" if header in ("busiest station", "SLO") else "right")
    ordered = sorted(rows, key=lambda row: int(row["point"]))
    for row in ordered[:MAX_ROWS]:
        metrics = estimates(row)
        cells = [row["point"], *(row[p] for p in parameters),
                 _value(metrics, "system.throughput", lambda x: f"{x:,.4g}/s"),
                 _value(metrics, "system.W", format_duration), _value(metrics, "system.latency.p99", format_duration),
                 _value(metrics, "system.failure_rate", lambda x: f"{100 * x:.3g}%"),
                 *([_value(metrics, "system.cost", lambda x: f"{x:,.4g}")] if priced else []),
                 _busiest(description.get("stations") or [], metrics),
                 *(_drain(metrics, name) for name in drains)]
        if slo:
            verdict = slo_verdict(slo, metrics)
            cells.append(f"[{_COLOURS[verdict]}]{verdict}[/]" if verdict in _COLOURS else verdict)
        table.add_row(*cells)
    if len(ordered) > MAX_ROWS:
        table.caption = f"{len(ordered) - MAX_ROWS} more points in results.csv"
    return table
