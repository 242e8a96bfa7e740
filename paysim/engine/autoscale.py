"""A station's horizontal autoscaler on the SimPy engine, with the Kubernetes HPA's rule.

Followed from the HPA (the Kubernetes documentation of its algorithm and of ``behavior``):

- a control loop every ``every`` (HPA's sync period, 15 s by default);
- desired = ceil(current x observed / target), where current x observed is the metric's total
  over the workers (HPA's ``AverageValue`` and ``Utilization`` targets alike);
- no change while |observed / target - 1| <= ``tolerance`` (HPA's 10% default);
- the result clamped to [min, max];
- scale-up at once (HPA's default scale-up stabilisation window is 0 s); scale-down stabilised
  over ``cooldown`` (HPA's ``scaleDown.stabilizationWindowSeconds``, 300 s by default): the
  workers become the highest recommendation made within the window, the current one included,
  so they fall only once every recommendation in it was lower.

Not followed: a new HPA with no recommendations yet may scale down at its first sync; here
the workers a station starts with count as a recommendation made at time 0. Not modelled:
HPA's rate policies (``policies``: at most 100% or 4 pods more per 15 s by
default), its special treatment of pods that are not ready or lack metrics, and several
metrics at once. Added here: ``delay``, the provisioning time after which a worker asked
for starts serving (a pod's scheduling and start-up); the workers asked for but not yet
serving count as current workers when the next recommendation is stabilised (as the HPA
counts ``spec.replicas``), and a scale-down cancels them first, newest first.

The metric, observed over the last ``every`` seconds (time averages, warm-up included):
``utilization`` busy workers / workers alive; ``queue`` transactions waiting per worker alive;
``latency`` the mean time in the station of the transactions that finished in the interval
(none finished: no observation, no change). ``current`` is the time-average of the workers
alive over the interval, so that for ``utilization`` desired = ceil(mean busy workers / target),
which in a steady state is ceil(λE[S] / target).

Workers leave as a worker schedule makes them (``ServiceStation._set_workers``): one that is
busy finishes its transaction first.
"""

from __future__ import annotations

import math
from collections import deque

import simpy

from paysim.engine.station import ServiceStation
from paysim.scenario.models import Autoscale


def observed_metric(metric: str, area_in: float, area_busy: float, area_workers: float, sojourn: float,
                    finished: int) -> float:
    """The metric over one interval from its integrals and sums (NaN: nothing to observe)."""
    if metric == "utilization":
        return area_busy / area_workers if area_workers > 0 else math.nan
    if metric == "queue":
        return (area_in - area_busy) / area_workers if area_workers > 0 else math.nan
    return sojourn / finished if finished > 0 else math.nan


def recommend(observed: float, target: float, tolerance: float, current: float, asked: int, low: int,
              high: int) -> int:
    """The clamped recommendation: ``asked`` (the workers asked for) without an observation or
    within the tolerance, else ceil(current x observed / target)."""
    if math.isnan(observed):
        return asked
    ratio = observed / target
    desired = asked if abs(ratio - 1.0) <= tolerance else math.ceil(current * ratio)
    return min(max(desired, low), high)


class Autoscaler:
    """Sets one station's workers every ``every`` seconds (see the module's docstring)."""

    def __init__(self, env: simpy.Environment, station: ServiceStation, spec: Autoscale) -> None:
        self.env = env
        self.station = station
        self.spec = spec
        self.asked = station.workers                 # alive plus provisioning (HPA's spec.replicas)
        self.provisioning: deque[list[int]] = deque()   # [workers] per scale-up not yet serving, oldest first
        # (time, recommendation) within the cooldown; the workers it starts with count as recommended at
        # time 0, so that a run does not begin by scaling down before a cooldown has passed
        self.history: deque[tuple[float, int]] = deque([(0.0, station.workers)])
        self.last = station.observer.lifetime(0.0)
        env.timeout(spec.every).callbacks.append(self._tick)

    def _tick(self, _event: simpy.Event) -> None:
        now, spec = self.env.now, self.spec
        self.env.timeout(spec.every).callbacks.append(self._tick)
        totals = self.station.observer.lifetime(now)
        area_in, area_busy, area_workers, sojourn, finished = (a - b for a, b in zip(totals, self.last))
        self.last = totals
        observed = observed_metric(spec.metric, area_in, area_busy, area_workers, sojourn, int(finished))
        current = area_workers / spec.every
        recommendation = recommend(observed, spec.target, spec.tolerance, current, self.asked, spec.min, spec.max)
        # scale-down stabilisation: the highest recommendation within the cooldown, this one included
        history = self.history
        while history and history[0][0] <= now - spec.cooldown:
            history.popleft()
        ceiling = max([recommendation, *(r for _, r in history)])
        history.append((now, recommendation))
        workers = recommendation if recommendation > self.asked else min(self.asked, ceiling)
        if workers > self.asked:
            self._add(workers - self.asked)
        elif workers < self.asked:
            self._remove(self.asked - workers)
        self.asked = workers

    def _add(self, count: int) -> None:
        if self.spec.delay <= 0:
            self.station._set_workers(self.station.workers + count)
            return
        order = [count]
        self.provisioning.append(order)
        self.env.timeout(self.spec.delay).callbacks.append(lambda _event: self._ready(order))

    def _ready(self, order: list[int]) -> None:
        oldest = self.provisioning.popleft()   # every order waits the same delay: they finish in turn
        assert oldest is order
        if order[0]:
            self.station._set_workers(self.station.workers + order[0])

    def _remove(self, count: int) -> None:
        """Cancel provisioning newest first, then retire serving workers (busy ones as they finish)."""
        for order in reversed(self.provisioning):
            cancelled = min(order[0], count)
            order[0] -= cancelled
            count -= cancelled
        if count:
            self.station._set_workers(self.station.workers - count)
