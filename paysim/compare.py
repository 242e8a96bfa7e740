"""Simulation beside theory: each theoretical value against the run's estimate of it.

A theoretical value "lies inside" when it is within the run's 95% confidence interval;
percentile intervals are first widened by the sketch's stated relative error, since the
run's percentiles are only that accurate. For an exact formula a value outside the
interval is a warning sign (about 1 metric in 20 falls outside by chance alone); for an
approximation it may just measure the approximation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from paysim.sketch import RELATIVE_ERROR
from paysim.stats import LEVEL, Estimate, sketch_widened
from paysim.theory import Theory
from paysim.units import format_duration

if TYPE_CHECKING:  # the runner pulls in the engine; comparing needs only its result
    from paysim.runner import RunResult


@dataclass(frozen=True)
class Comparison:
    scope: str  # "system" or "stations.NAME"
    metric: str  # run metric name: "Wq", "latency.p99"
    simulated: Estimate
    theory: float
    rel_diff: float  # (simulated mean - theory) / |theory|; NaN when undefined
    inside_ci: bool | None  # None when the run has no interval (fewer than 2 replications)
    exact: bool
    formula: str

    @property
    def name(self) -> str:
        return f"{self.scope}.{self.metric}"


def _percentile(metric: str) -> bool:
    return metric.startswith("latency.")


def _inside(metric: str, value: float, simulated: Estimate) -> bool | None:
    if not (math.isfinite(simulated.low) and math.isfinite(simulated.high)):
        return None
    if _percentile(metric):
        simulated = sketch_widened(simulated)
    return simulated.low <= value <= simulated.high


def _rel_diff(simulated: float, theory: float) -> float:
    if theory == 0:
        return 0.0 if simulated == 0 else math.nan
    return (simulated - theory) / abs(theory)


def compare(result: RunResult, theory: Theory) -> list[Comparison]:
    """One row per theoretical value that the run also measured, system first."""
    rows = []
    for scope, part in theory.scopes().items():
        for metric, value in part.metrics.items():
            simulated = result.summary.get(f"{scope}.{metric}")
            if simulated is None or not math.isfinite(simulated.mean):
                continue
            rows.append(Comparison(scope, metric, simulated, value, _rel_diff(simulated.mean, value),
                                   _inside(metric, value, simulated), part.exact, part.formula))
    return rows


_PERCENT = {"utilization", "cpu_utilization", "rejection_rate", "failure_rate", "error_rate", "timeout_rate",
            "abandon_rate", "cancel_rate", "p_wait", "breaker_open_rate", "breaker_open_fraction"}
_RATE = {"arrival_rate", "throughput", "goodput"}


def _format(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "-"
    name = metric.rsplit(".", 1)[-1]   # instance.utilization is a utilization, streams.a.W a time
    if name in _PERCENT:
        return f"{100 * value:.4g}%"
    if name in _RATE:
        return f"{value:,.5g}/s"
    if name in ("W", "Wq", "S") or metric.startswith(("latency.", "wait.")):
        return format_duration(value)
    return f"{value:.5g}"


def _verdict(row: Comparison) -> str:
    if row.inside_ci is None:
        return "-"
    if row.inside_ci:
        return "[green]inside[/]"
    return "[bold red]outside[/]" if row.exact else "[yellow]outside[/]"


def comparison_table(rows: list[Comparison]) -> Table:
    """Scope, metric, theory, simulated mean and CI, difference, and whether theory is inside."""
    table = Table(title=f"Theory beside simulation ({LEVEL:.0%} CI; percentiles ±{RELATIVE_ERROR:.1%})",
                  title_justify="left")
    for header in ("scope", "metric", "theory", "simulated", f"{LEVEL:.0%} CI", "diff", "theory in CI", "model"):
        table.add_column(header, justify="right" if header in ("theory", "simulated", "diff") else "left",
                         overflow="fold")   # a narrow terminal wraps a cell, never cuts an interval
    for row in rows:
        ci = f"[{_format(row.metric, row.simulated.low)}, {_format(row.metric, row.simulated.high)}]"
        diff = f"{100 * row.rel_diff:+.2f}%" if math.isfinite(row.rel_diff) else "-"
        model = row.formula if row.exact else f"{row.formula.split(';')[0]} [dim](approx.)[/]"
        table.add_row(escape(row.scope), row.metric, _format(row.metric, row.theory), _format(row.metric, row.simulated.mean),
                      ci, diff, _verdict(row), model)
    return table


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def comparisons_to_json(rows: list[Comparison]) -> list[dict[str, Any]]:
    """JSON-ready rows: name, scope, metric, theory, simulated {mean, ci95}, rel_diff, inside_ci, exact, formula."""
    return [{"name": row.name, "scope": row.scope, "metric": row.metric, "theory": _number(row.theory),
             "simulated": {"mean": _number(row.simulated.mean),
                           "ci95": [_number(row.simulated.low), _number(row.simulated.high)]},
             "rel_diff": _number(row.rel_diff), "inside_ci": row.inside_ci, "exact": row.exact,
             "formula": row.formula}
            for row in rows]


def theory_table(theory: Theory) -> Table:
    """What theory says per scope: the model used and its metrics, or why there is none."""
    table = Table(title=f"{escape(theory.scenario)}: queueing theory", title_justify="left")
    for header in ("scope", "model", "metrics"):
        table.add_column(header)
    for scope, part in theory.scopes().items():
        if part.reason is not None:   # not part.ok
            table.add_row(escape(scope), "[dim]none[/]", f"[dim]{escape(part.reason)}[/]")
            continue
        model = part.formula if part.exact else f"{part.formula} [yellow](approximate)[/]"
        shown = [f"{metric.removeprefix('latency.')} {_format(metric, value)}" for metric, value in part.metrics.items()
                 if not metric.startswith("wait.")]
        table.add_row(escape(scope), model, ", ".join(shown))
    return table
