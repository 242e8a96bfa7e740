"""Instances of a station behind a load balancer, in the compiled engine, as
paysim.engine.station.Balancer runs them.

The kernels see one station row per instance (a unit): the instances of a station are
consecutive rows, the first named like the station and the others ``name#1``, ``name#2``,
... (the names of their service generators in the SimPy engine). A route or a stream's
entry names the first; :func:`instance` then picks the one that gets the transaction. The
instances share their station's routing, errors and balancer generators, and report to
one observer: :func:`merged` sums their rows before the driver hands them over.
"""

from __future__ import annotations

import numpy as np

from paysim.engine.compiled.codes import LEAST_BUSY, POWER_OF_TWO, RANDOM, ROUND_ROBIN, ST_BUSY, ST_WAITING
from paysim.engine.compiled.primitives import helper
from paysim.scenario import Scenario, Station

POLICIES = {"round_robin": ROUND_ROBIN, "random": RANDOM, "least_busy": LEAST_BUSY, "power_of_two": POWER_OF_TWO}


def units(scenario: Scenario) -> list[tuple[str, str, Station]]:
    """(instance name, station name, spec) of every instance, station by station."""
    return [(name if i == 0 else f"{name}#{i}", name, spec)
            for name, spec in scenario.stations.items() for i in range(spec.instances)]


# features whose compiled tables are not yet known to have one row per instance (a table
# with one row per station would be read at the wrong row past a station of several instances;
# an executor's pools are per instance: executor.build_pools)
_NOT_PER_INSTANCE = (("batch", None), ("schedule", ()), ("classify", None), ("parallel", ()))


def unsupported(name: str, station: Station, scenario: Scenario) -> str | None:
    """Why the compiled engine cannot run this station's instances (None when it can)."""
    if station.instances == 1:
        return None
    for other, spec in scenario.stations.items():
        for key, default in _NOT_PER_INSTANCE:
            if getattr(spec, key) != default:
                return f"stations.{name}.instances with stations.{other}.{key} needs the SimPy engine"
    if any(f"{name}#{i}" in scenario.stations for i in range(1, station.instances)):
        return f"stations.{name}.instances: a station is named like one of its instances; needs the SimPy engine"
    if (station.executor is not None and station.executor.rejection == "caller_runs"
            and station.balance in ("least_busy", "power_of_two")):
        # the balancer compares loads, which SimPy counts without tasks on their callers' threads
        return f"stations.{name}.balance: {station.balance} over executors that run tasks on their callers' threads " \
               "needs the SimPy engine"
    return None


def balance_tables(scenario: Scenario, generators) -> dict[str, np.ndarray]:
    """The Model's balancer columns, one row per instance; a station of several instances
    registers its balancer's generator in ``generators``."""
    rows = [(spec.instances, POLICIES[spec.balance], generators.index("balance", name) if spec.instances > 1 else -1)
            for _, name, spec in units(scenario)]
    instances, policy, rng = (np.array(column, np.int64) for column in zip(*rows))
    return {"instances": instances, "balance": policy, "rng_balance": rng}


# the Model's fields built elsewhere with one row per station (classify.py, fork.py)
PER_STATION = ("cl_on", "cl_term", "cl_coef", "cl_review", "cl_decline", "cl_to", "calls_to", "n_calls", "join_any")


def per_instance(scenario: Scenario, tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The PER_STATION tables' rows repeated for each instance of their station, so that the
    kernels read them at an instance's row (other tables pass unchanged)."""
    counts = [spec.instances for spec in scenario.stations.values()]
    return {key: np.repeat(table, counts, axis=0) if key in PER_STATION else table for key, table in tables.items()}


def merged(acc, scenario: Scenario):
    """The accumulators with each station's instance rows summed into one (what its observer saw)."""
    if all(spec.instances == 1 for spec in scenario.stations.values()):
        return acc
    starts = np.cumsum([0] + [spec.instances for spec in scenario.stations.values()])[:-1]

    def summed(table: np.ndarray) -> np.ndarray:
        return np.add.reduceat(table, starts, axis=0)

    return acc._replace(st_f=summed(acc.st_f), st_i=summed(acc.st_i), st_sketch=summed(acc.st_sketch),
                        st_zeros=summed(acc.st_zeros))


def merged_series(ser, scenario: Scenario):
    """The series samples with each station's instance columns (queue, busy, threads) summed into one."""
    if all(spec.instances == 1 for spec in scenario.stations.values()):
        return ser
    from paysim.engine.compiled.series import C_STATIONS, PER_STATION

    counts = [spec.instances for spec in scenario.stations.values()]
    per_unit = ser.rows[:, C_STATIONS:].reshape(ser.rows.shape[0], sum(counts), PER_STATION)
    summed = np.add.reduceat(per_unit, np.cumsum([0] + counts)[:-1], axis=1)
    rows = np.concatenate((ser.rows[:, :C_STATIONS], summed.reshape(ser.rows.shape[0], -1)), axis=1)
    return ser._replace(rows=rows)


@helper
def _load(st_i, u):
    """Transactions at instance ``u``, in service or waiting (what the balancer compares)."""
    return st_i[u, ST_BUSY] + st_i[u, ST_WAITING]


@helper
def instance(st_i, turn, rng, st, k, policy):
    """The instance of station ``st`` (its first row, of ``k`` > 1) that gets the next
    transaction: in turn, at random, the least loaded (the first of equals), or the less
    loaded of two distinct ones drawn at random (the first drawn on a tie). ``rng``: the
    station's balancer generator; ``turn``: per station whose turn it is."""
    if policy == ROUND_ROBIN:
        now = turn[st]
        turn[st] = (now + 1) % k
        return st + now
    if policy == LEAST_BUSY:
        best = st
        for u in range(st + 1, st + k):
            if _load(st_i, u) < _load(st_i, best):
                best = u
        return best
    first = min(int(rng.random() * k), k - 1)
    if policy == RANDOM:
        return st + first
    second = min(int(rng.random() * (k - 1)), k - 2)   # power of two choices
    if second >= first:
        second += 1
    return st + first if _load(st_i, st + first) <= _load(st_i, st + second) else st + second
