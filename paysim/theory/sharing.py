"""Theory for a station whose workers share cores (``cores``, more workers than cores) or are
unlimited (a pure delay): infinite-server and processor-sharing queues.

* ``workers: unlimited`` without cores is M/G/∞: nobody waits, W = E[S] and L = λE[S] for any
  service distribution and any arrival process; each visit's sojourn is one service time,
  so the percentiles are the service distribution's. Exact.
* More workers than cores, Poisson input: while every transaction has a worker, n of them
  share the N cores at min(1, N/n) each, the M/G/N processor-sharing queue, whose number in
  system is M/M/N's whatever the service distribution (a symmetric queue: insensitive). So
  L and W are Erlang C's (``paysim.analytic.multiserver_ps``). Exact with unlimited workers,
  and with exponential service for any number of workers (the chain is M/M/N's); otherwise
  exact as long as the workers practically never all hold one (probability below
  ``NEVER``), else labelled approximate. Waiting means waiting for a worker: Wq, and S =
  W - Wq, the time spent computing (longer than the work itself when cores are shared).
* No more workers than cores: the cores are never shared, so the station is the plain
  multi-server queue :mod:`paysim.theory.stations` models, ``cpu_utilization`` added there.
"""

from __future__ import annotations

from dataclasses import replace

from paysim import analytic
from paysim.observe import PERCENTILES
from paysim.scenario.models import BatchService
from paysim.theory.model import TheoryModel, exponential, run_workers
from paysim.theory.scopes import ScopeTheory, refused

NEVER = 1e-9   # a chance of all workers holding a transaction taken as never (for the exact label)


def cpu_utilization(net: TheoryModel, name: str, throughput: float) -> dict[str, float]:
    """``cpu_utilization`` of a station with cores at ``throughput`` (none without cores)."""
    station = net.scenario.stations[name]
    if not station.cores:
        return {}
    return {"cpu_utilization": throughput * station.service_time.mean / (station.cores * station.instances)}


def sharing_theory(net: TheoryModel, name: str) -> ScopeTheory:
    """M/G/∞ or M/G/N processor sharing for a station whose workers share cores or are unlimited
    (validation keeps such a station to one instance without a queue)."""
    station = net.scenario.stations[name]
    rate, service = net.rates[name], station.service_time
    if isinstance(service, BatchService):
        raise TypeError("validation keeps batches away from unlimited workers and cores")
    mean = service.mean
    if station.cores is None:
        m, exact, formula = analytic.mg_infinity(rate, mean), True, "M/G/∞ (unlimited workers: a pure delay)"
    elif not net.poisson_input(name):
        return refused("workers sharing cores (processor sharing) whose input is not Poisson (a renewal stream, "
                       "a routing cycle, or a station upstream whose output is not Poisson): no formula here")
    else:
        threads = None if station.unlimited else station.workers
        m = analytic.multiserver_ps(rate, 1 / mean, station.cores, threads)
        formula = f"M/G/{station.cores} processor sharing = M/M/{station.cores}'s L and W (Erlang C, insensitive)"
        exact = threads is None or exponential(service) or m.p_wait < NEVER
        if threads is not None and m.p_wait < NEVER:
            formula += f"; all {threads} workers busy with probability {m.p_wait:.2g}: taken as never"
            m = replace(m, Lq=0.0, Wq=0.0, p_wait=0.0)
        elif not exact:
            formula += (f"; all {threads} workers busy with probability {m.p_wait:.2g}, when fewer requests share "
                        "the cores than the formula assumes")
    busy = m.L - m.Lq   # workers holding a transaction
    metrics = {"arrival_rate": rate, "offered_load": rate * mean, "throughput": rate, "busy": busy,
               "L": m.L, "Lq": m.Lq, "W": m.W, "Wq": m.Wq, "S": m.W - m.Wq, "rejection_rate": 0.0,
               **cpu_utilization(net, name, rate)}
    if not station.unlimited:
        metrics["utilization"] = busy / run_workers(net.scenario, station)
    if station.errors > 0:   # an error strikes after service, so it changes nothing above
        metrics.update(goodput=rate * (1 - station.errors), error_rate=station.errors)
    if station.cores is None:   # a visit's sojourn is one service time
        metrics.update({f"latency.{key}": service.quantile(q) for key, q in PERCENTILES.items()})
    return ScopeTheory(formula, exact, metrics)
