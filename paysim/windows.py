"""Statistics for named stretches of a run (``windows: {flash_sale: [20m, 25m]}``).

A window [a, b] of replication r is measured by replaying r -- the same seed and
replication, hence the same random streams and the same sample path up to b -- with
measurement from a to b: the warm-up set to a and the horizon to b. Every metric of
the whole run is then defined for the window with one meaning on both engines (a
transaction counts where it finishes, populations are time averages over [a, b]),
and memory stays one observer per window, whatever the run's length. The price is
simulating [0, b] once more per window.
"""

from __future__ import annotations

from collections.abc import Mapping

from paysim.scenario import Scenario

PREFIX = "windows"


def window_scenarios(scenario: Scenario) -> dict[str, Scenario]:
    """Per window, the scenario whose measurement window is that window (and has none of its own)."""
    return {name: scenario.model_copy(update={"warmup": start, "horizon": end, "windows": {}})
            for name, (start, end) in scenario.windows.items()}


def prefixed(name: str, row: Mapping[str, float]) -> dict[str, float]:
    """A window's metrics under ``windows.NAME.`` (``windows.flash_sale.system.W``)."""
    return {f"{PREFIX}.{name}.{metric}": value for metric, value in row.items()}


def split(metric: str) -> tuple[str, str] | None:
    """(window, metric) of a window's metric name, None for a whole-run one."""
    if not metric.startswith(PREFIX + "."):
        return None
    _, name, rest = metric.split(".", 2)
    return name, rest
