"""Two runs side by side (``paysim compare A B``): each metric's estimate and CI in both, and
whether the difference is significant.

The test is Welch's t-test on the replication means, from each run's per-replication values
(``replications.csv``, written by ``run --out``); the p-values of all the metrics compared are
Holm-corrected, so "significant" has a family-wise error of 5%. (Two runs with the same seed
share random numbers, which correlates them positively; Welch's test ignores that and is
then conservative.) Without the per-replication
values (a directory from an older paysim) the rule is conservative: a difference counts only
where the two 95% CIs do not overlap, which implies p < 0.05 for that metric but misses some
real differences.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special

from paysim.errors import PaysimError
from paysim.report import _ROWS, REPLICATIONS, _cell, estimate_leaves
from paysim.stats import Estimate

ALPHA = 0.05


@dataclass(frozen=True)
class Run:
    directory: Path
    scenario: str
    estimates: dict[str, Estimate]
    values: dict[str, np.ndarray] | None   # per replication, when replications.csv is there


@dataclass(frozen=True)
class Difference:
    metric: str
    a: Estimate
    b: Estimate
    p_value: float | None     # Welch's, before correction; None under the CI rule
    significant: bool


def _estimate(node: dict[str, Any]) -> Estimate:
    """An estimate from results.json (null: not observed)."""
    mean, low, high = (math.nan if x is None else x for x in (node["mean"], *node["ci95"]))
    return Estimate(mean, low, high, 0)


def load_run(directory: Path) -> Run:
    """A ``run --out`` directory: results.json, and replications.csv if it has one."""
    path = Path(directory) / "results.json"
    _refuse_special(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        scenario = str(data["run"]["scenario"])
    except FileNotFoundError:
        raise PaysimError(f"{path}: not found; expected a directory written by paysim run --out") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PaysimError(f"{path}: not a paysim results file ({error.__class__.__name__}: {error})") from None
    metrics = {key: value for key, value in data.items() if key not in ("run", "slo", "compare")}   # not estimates
    estimates = {name: _estimate(node) for name, node in estimate_leaves(metrics).items()}
    return Run(Path(directory), scenario, estimates, _replications(Path(directory) / REPLICATIONS))


def _refuse_special(path: Path) -> None:
    if path.exists() and not path.is_file():   # a pipe could block the read forever
        raise PaysimError(f"{path}: not a regular file; expected a directory written by paysim run --out")


def _replications(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    _refuse_special(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header, *rows = list(csv.reader(handle))
        return {name: np.array([float(row[i]) if row[i] else math.nan for row in rows])
                for i, name in enumerate(header) if name != "replication"}
    except (OSError, ValueError, IndexError) as error:
        raise PaysimError(f"{path}: unreadable ({error})") from None


def welch(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided p-value of Welch's t-test on the finite values; NaN with fewer than 2 each."""
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size < 2 or y.size < 2:
        return math.nan
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    gap = abs(x.mean() - y.mean())
    if vx + vy == 0:   # both constant: equal, or surely different
        return 1.0 if gap == 0 else 0.0
    df = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
    return float(2 * special.stdtr(df, -gap / math.sqrt(vx + vy)))


def holm(p_values: list[float], alpha: float = ALPHA) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if not p_values[i] <= alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected


def _apart(a: Estimate, b: Estimate) -> bool:
    """The CI rule: the intervals do not overlap."""
    return a.high < b.low or b.high < a.low


def differences(a: Run, b: Run) -> tuple[list[Difference], str]:
    """Every metric both runs report with a finite mean, and the rule used."""
    names = [n for n in a.estimates if n in b.estimates
             and math.isfinite(a.estimates[n].mean) and math.isfinite(b.estimates[n].mean)]
    if a.values is not None and b.values is not None:
        tested = [n for n in names if n in a.values and n in b.values]
        p_values = [welch(a.values[n], b.values[n]) for n in tested]
        finite = [i for i, p in enumerate(p_values) if math.isfinite(p)]
        verdicts = dict(zip([tested[i] for i in finite], holm([p_values[i] for i in finite])))
        p_of = dict(zip(tested, p_values))
        rows = [Difference(n, a.estimates[n], b.estimates[n], p_of.get(n), verdicts.get(n, False)) for n in names]
        return rows, (f"Welch's t-test on the replication means, Holm-corrected over the {len(finite)} metrics "
                      f"(family-wise {ALPHA:.0%})")
    rows = [Difference(n, a.estimates[n], b.estimates[n], None, _apart(a.estimates[n], b.estimates[n]))
            for n in names]
    return rows, ("95% CIs that do not overlap (a conservative rule: replications.csv is missing, "
                  "so no test on the replication means)")


def _kind(metric: str) -> str | None:
    """How a metric is shown in the run's table (time, rate, percent, number), None if it is not."""
    return next((kind for name, kind in _ROWS if metric.endswith("." + name)), None)


def _change(row: Difference) -> str:
    if row.a.mean == row.b.mean:
        return "0"
    if row.a.mean == 0:
        return "from 0"
    return f"{100 * (row.b.mean - row.a.mean) / abs(row.a.mean):+.3g}%"


def diff_table(a: Run, b: Run, rows: list[Difference], rule: str, everything: bool = False):
    """A table: metric, A, B (mean ±95% CI), B against A, p-value, significant."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"A = {escape(str(a.directory))} ({escape(a.scenario)}), "
                        f"B = {escape(str(b.directory))} ({escape(b.scenario)})", title_justify="left",
                  caption=f"significant: {escape(rule)}", caption_justify="left")
    for header in ("metric", "A (mean ±95% CI)", "B (mean ±95% CI)", "B vs A", "p", "significant"):
        table.add_column(header, overflow="fold", justify="left" if header == "metric" else "right")
    for row in rows:
        kind = _kind(row.metric)
        if kind is None and not everything:
            continue
        p = "-" if row.p_value is None or not math.isfinite(row.p_value) else \
            ("<0.0001" if row.p_value < 1e-4 else f"{row.p_value:.2g}")
        table.add_row(escape(row.metric), _cell(row.a, kind or "number"), _cell(row.b, kind or "number"),
                      _change(row), p, "[bold]yes[/]" if row.significant else "no")
    return table


def diff_json(a: Run, b: Run, rows: list[Difference], rule: str) -> dict[str, Any]:
    def estimate(value: Estimate) -> dict[str, Any]:
        finite = [x if math.isfinite(x) else None for x in (value.mean, value.low, value.high)]
        return {"mean": finite[0], "ci95": finite[1:]}

    return {"a": str(a.directory), "b": str(b.directory), "rule": rule,
            "metrics": {row.metric: {"a": estimate(row.a), "b": estimate(row.b),
                                     "p_value": row.p_value if row.p_value is None or math.isfinite(row.p_value)
                                     else None, "significant": row.significant} for row in rows}}
