"""What a run costs: worker-hours and instance-hours times a station's ``cost`` prices.

One small function per question, so that other commands (a whole-platform sizing) price
a configuration exactly as a run's report does.
"""

from __future__ import annotations

from paysim.scenario import Scenario
from paysim.scenario.models import Cost

SECONDS_PER_HOUR = 3600.0


def station_cost(cost: Cost, mean_workers: float, instances: int, seconds: float) -> float:
    """The cost of ``seconds`` of a station that had ``mean_workers`` alive on average (all its
    instances together) and ``instances`` instances: worker-hours x per_worker_hour plus
    instance-hours x per_instance_hour."""
    hours = seconds / SECONDS_PER_HOUR
    return mean_workers * hours * cost.per_worker_hour + instances * hours * cost.per_instance_hour


def cost_row(scenario: Scenario, row: dict[str, float], window_s: float) -> dict[str, float]:
    """``stations.NAME.cost`` of every station with prices, from its time-average ``workers`` in
    ``row`` over the window of ``window_s`` seconds, and their sum as ``system.cost``; nothing when
    no station has prices."""
    costs = {f"stations.{name}.cost": station_cost(station.cost, row[f"stations.{name}.workers"], station.instances,
                                                   window_s)
             for name, station in scenario.stations.items() if station.cost is not None}
    if costs:
        costs["system.cost"] = sum(costs.values())
    return costs
