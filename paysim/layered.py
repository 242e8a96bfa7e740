"""Layered queueing: a mean-value approximation for stations whose workers stay held while
they call other stations (threads waiting for a downstream answer), with exact results
where they exist. Plain numbers in, plain numbers out: no knowledge of scenarios.

Symbols (as in :mod:`paysim.analytic`): λ offered arrival rate of a task, X = λ(1 - B) its
accepted rate, B its blocking probability, c workers, N cores, S own mean service (CPU
work), H mean holding time of a worker per visit, R = Wq + H the response time a caller
sees, K waiting places.

The model (after Woodside's layered queueing networks and the "method of layers" of
Rolia & Sevcik, simplified to one class and mean values):

* A task's worker serves its own work S, then makes each call step in turn and stays held
  until the answer comes: H = S_cpu + Σ_k P(step k is reached) · R_step_k. A step is one
  callee (R_step = its response R_j) or parallel callees joined on all (E[max]) or any
  (E[min]), the branches' responses taken as independent exponentials (an approximation).
  A call that fails (rejected by a full callee, or failed by it) ends the task's calls.
* With N cores that bind (fewer cores than workers), the task is a pool of threads that
  compute on the cores (processor sharing), then wait its calls' mean time D held:
  :func:`paysim.thread_pool.thread_pool`, a product form that is exact and insensitive with
  no waiting room and D a pure delay.
* Otherwise the task is a c-server station with mean holding H: Erlang B when it has no
  waiting room, M/M/c/K with the holding taken as exponential when its queue is bounded,
  M/G/1 (Pollaczek–Khinchine) or Allen–Cunneen with the holding's estimated scv when it
  is unbounded, M/G/∞ when its workers are unlimited.
* A callee's offered rate is its own external rate plus X_i · P(reach) per call from each
  caller i; since X_i depends on B_i, which depends on the callees' responses, the rates
  are solved as a fixed point by damped successive substitution.

Exact (labelled so) only where the holding times are i.i.d. and independent of the state:
every callee is a pure delay (unlimited workers, or at least as many workers as its callers
can ever occupy at once, no other traffic, no cores that bind, and only such callees of
its own), no parallel step, and Poisson input (a task fed by callers is approximated). Then Erlang B
(insensitive to the holding-time distribution), M/G/1 and M/G/∞ are exact; so is M/M/c when
the holding is exponential (no calls), and with cores the thread-pool product form (with no
waiting room, or exponential work and no calls). Everything else is "approximation: layered
MVA".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from paysim.analytic import allen_cunneen, erlang_b, mg1, mmck
from paysim.thread_pool import thread_pool

APPROXIMATION = "approximation: layered MVA"


@dataclass(frozen=True)
class CallStep:
    """One step of a task's calls: one callee, or several in parallel joined on all or any."""

    targets: tuple[str, ...]
    join: Literal["all", "any"] = "all"


@dataclass(frozen=True)
class Task:
    """A station of a layered model.

    ``arrival_rate``: traffic that does not come from calls (external and routed);
    ``service``/``service_scv``: own work per visit (mean, squared coefficient of variation);
    ``workers``: None is unlimited; ``queue``: waiting places, None unbounded;
    ``cores``: None is no CPU limit; ``errors``: chance a visit fails after its holding;
    ``poisson``: whether ``arrival_rate`` is a Poisson stream (exactness needs it).
    """

    service: float
    arrival_rate: float = 0.0
    service_scv: float = 1.0
    workers: int | None = 1
    queue: int | None = None
    cores: int | None = None
    calls: tuple[CallStep, ...] = ()
    errors: float = 0.0
    poisson: bool = True  # its own traffic is Poisson (else no formula for it is exact)


@dataclass(frozen=True)
class TaskResult:
    """Steady-state means of one task."""

    arrival_rate: float  # offered λ: external plus calls
    throughput: float  # accepted X = λ(1 - B)
    p_block: float  # B
    holding: float  # H: time a worker is held per accepted visit
    cpu: float  # mean time of the own work, with CPU contention
    calls: float  # mean time held waiting on calls per accepted visit
    Wq: float  # mean wait for a worker
    W: float  # response time R = Wq + H of an accepted visit
    busy: float  # mean workers occupied (computing or held), X·H
    held: float  # mean workers waiting on calls, X·calls
    cpu_utilization: float  # X·S/N with cores, else nan
    p_fail: float  # chance a visit fails: blocked, a failed call, or its own error
    exact: bool
    formula: str

    @property
    def L(self) -> float:
        return self.throughput * self.W

    @property
    def Lq(self) -> float:
        return self.throughput * self.Wq


@dataclass(frozen=True)
class _Station:
    """What the station formula gives for one task at given rates and holding."""

    p_block: float
    Wq: float
    formula: str
    exact: bool
    W: float | None = None  # when the formula gives the sojourn directly (threads on cores)
    cpu: float = 0.0  # then also the mean CPU time per visit, contention included


@dataclass
class _State:
    holding: dict[str, float] = field(default_factory=dict)
    scv: dict[str, float] = field(default_factory=dict)
    response: dict[str, float] = field(default_factory=dict)
    fail: dict[str, float] = field(default_factory=dict)
    results: dict[str, TaskResult] = field(default_factory=dict)


def goetz_threads(cores: int, compute: float, wait: float) -> float:
    """Goetz's rule of thumb (Java Concurrency in Practice, 8.2): threads = N·(1 + W/C) for N
    cores and requests that compute C and then wait W (blocked, holding the thread): just
    enough threads that the cores are never idle for lack of a runnable thread, on average."""
    if cores < 1 or compute <= 0 or wait < 0:
        raise ValueError(f"need cores >= 1, compute > 0, wait >= 0, got {cores}, {compute}, {wait}")
    return cores * (1.0 + wait / compute)


def throughput_bound(workers: int, cores: int, compute: float, wait: float) -> float:
    """The most a pool of c threads on N cores can complete per second, min(c/(C + W), N/C):
    the threads' bound (each held C + W at the least) and the cores' (C of CPU each). The two
    meet at c = goetz_threads(N, C, W)."""
    return min(workers / (compute + wait), cores / compute)


def join_mean(means: tuple[float, ...], join: Literal["all", "any"]) -> float:
    """Mean time until all (E[max]) or any (E[min]) of independent exponential branches with
    these means answer: E[min] = 1/Σ(1/r_i); E[max] = Σ over non-empty subsets A of
    (-1)^(|A|+1) / Σ_{i∈A} 1/r_i (inclusion–exclusion). A zero mean answers at once."""
    if any(r < 0 or math.isnan(r) for r in means):
        raise ValueError(f"branch means must be non-negative numbers, got {means}")
    if join == "any":
        return 0.0 if any(r == 0 for r in means) else 1.0 / math.fsum(1.0 / r for r in means)
    positive = [r for r in means if r > 0]
    if any(math.isinf(r) for r in positive):
        return math.inf
    terms = [(-1) ** (size + 1) / math.fsum(1.0 / r for r in subset)
             for size in range(1, len(positive) + 1) for subset in itertools.combinations(positive, size)]
    return math.fsum(terms)


def _check(tasks: Mapping[str, Task]) -> list[str]:
    """Validate the model; return the tasks callees first (a topological order of the calls)."""
    for name, task in tasks.items():
        if not (math.isfinite(task.service) and task.service >= 0):
            raise ValueError(f"task {name!r}: service must be a finite non-negative mean, got {task.service!r}")
        if not (math.isfinite(task.arrival_rate) and task.arrival_rate >= 0):
            raise ValueError(f"task {name!r}: arrival_rate must be finite and >= 0, got {task.arrival_rate!r}")
        if task.workers is not None and task.workers < 1:
            raise ValueError(f"task {name!r}: workers must be >= 1 or None (unlimited), got {task.workers}")
        if task.cores is not None and task.cores < 1:
            raise ValueError(f"task {name!r}: cores must be >= 1 or None, got {task.cores}")
        for step in task.calls:
            unknown = [t for t in step.targets if t not in tasks]
            if unknown or not step.targets:
                raise ValueError(f"task {name!r} calls unknown task(s) {unknown or 'none'}")
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"calls form a cycle: {' -> '.join((*path, name))}")
        state[name] = 1
        for step in tasks[name].calls:
            for target in step.targets:
                visit(target, (*path, name))
        state[name] = 2
        order.append(name)

    for name in tasks:
        visit(name, ())
    return order


def _step_fail(fails: list[float], join: str) -> float:
    if len(fails) == 1:
        return fails[0]
    ok = math.prod(1.0 - f for f in fails)
    return 1.0 - ok if join == "all" else math.prod(fails)


def _offered_rates(tasks: Mapping[str, Task], order: list[str], state: _State) -> dict[str, float]:
    """λ per task: own traffic plus, from each caller, its accepted rate × P(the step is reached)."""
    rates = {name: task.arrival_rate for name, task in tasks.items()}
    for name in reversed(order):  # callers first
        task = tasks[name]
        blocked = state.results[name].p_block if name in state.results else 0.0
        reach = rates[name] * (1.0 - blocked)
        for step in task.calls:
            for target in step.targets:
                rates[target] += reach
            reach *= 1.0 - _step_fail([state.fail.get(t, 0.0) for t in step.targets], step.join)
    return rates


def _is_delay(name: str, tasks: Mapping[str, Task], callers: dict[str, list[str]], exact_holding: dict[str, bool]) -> bool:
    """Never waits and never blocks, with i.i.d. holding: a response that is its own holding."""
    task = tasks[name]
    if not exact_holding[name]:
        return False
    if task.workers is None:
        return True
    if task.arrival_rate > 0:
        return False
    concurrent = 0
    for caller in callers[name]:
        workers = tasks[caller].workers
        if workers is None:
            return False
        per_worker = max(step.targets.count(name) for step in tasks[caller].calls)
        concurrent += workers * per_worker
    return concurrent <= task.workers


def cores_bind(task: Task) -> bool:
    """Its cores can be fewer than its computing workers (else every worker computes at full speed)."""
    return task.cores is not None and (task.workers is None or task.workers > task.cores)


def _station(task: Task, rate: float, holding: float, scv: float, exact_holding: bool, poisson: bool) -> _Station:
    """The task as a c-server station with mean holding H (see the module docstring). Its
    formula is exact when the holding times are i.i.d. (``exact_holding``) and, unless nobody
    ever waits (M/G/∞), the input is Poisson (``poisson``: no callers feed it)."""
    c = task.workers
    if holding <= 0 or rate <= 0:
        return _Station(0.0, 0.0, "no load", exact_holding)
    if math.isinf(holding):
        return _Station(1.0 if c is not None and task.queue is not None else 0.0, math.inf, "saturated", False)
    if cores_bind(task):  # the thread-pool product form: CPU work shared, then held on calls
        assert task.cores is not None
        exponential = abs(task.service_scv - 1.0) < 1e-12 and not task.calls
        try:
            pool = thread_pool(rate, task.service, holding - task.service, task.cores, c, task.queue,
                               exponential=exponential)
        except ValueError:
            return _Station(0.0, math.inf, "unstable", False)
        cpu = pool.computing / pool.throughput if pool.throughput > 0 else task.service
        return _Station(pool.p_block, pool.Wq, "threads on cores (processor-sharing product form)",
                        exact_holding and poisson and pool.exact, W=pool.W, cpu=cpu)
    if c is None:
        return _Station(0.0, 0.0, "M/G/∞", exact_holding)  # any input: nobody waits
    exact_holding = exact_holding and poisson
    if task.queue == 0:
        return _Station(erlang_b(c, rate * holding), 0.0,
                        "Erlang B (insensitive to the holding-time distribution)", exact_holding)
    if task.queue is not None:
        m = mmck(rate, 1.0 / holding, c, c + task.queue)
        exact = exact_holding and abs(scv - 1.0) < 1e-12
        return _Station(m.p_block, m.Wq, "M/M/c/K" + ("" if exact else ", holding taken as exponential"), exact)
    if rate * holding >= c:
        return _Station(0.0, math.inf, "unstable", False)
    if c == 1:
        return _Station(0.0, mg1(rate, holding, scv).Wq, "M/G/1 (Pollaczek-Khinchine)", exact_holding)
    m = allen_cunneen(rate, holding, c, 1.0, scv)
    exact = exact_holding and abs(scv - 1.0) < 1e-12
    return _Station(0.0, m.Wq, "M/M/c (Erlang C)" if exact else m.formula, exact)


def _holding(name: str, tasks: Mapping[str, Task], state: _State,
             delays: set[str]) -> tuple[float, float, float, float, bool]:
    """(H, its scv estimate, cpu time, call time, whether H is exactly i.i.d.) of one task,
    without CPU contention, from its callees' current responses and failure chances."""
    task, own = tasks[name], tasks[name].service
    cpu, exact = own, True
    variance = task.service_scv * own * own
    reach, calls = 1.0, 0.0
    for step in task.calls:
        responses = tuple(state.response[t] for t in step.targets)
        fails = [state.fail[t] for t in step.targets]
        if len(step.targets) == 1:
            passed = 1.0 - state.results[step.targets[0]].p_block   # a rejected call takes no time
            mean = passed * responses[0] if passed > 0 else 0.0
            part_var = state.scv[step.targets[0]] * responses[0] ** 2
            exact = exact and step.targets[0] in delays and fails[0] == 0
        else:
            mean, part_var, exact = join_mean(responses, step.join), join_mean(responses, step.join) ** 2, False
        calls += reach * mean
        variance += reach * part_var  # an estimate: independent steps, each step's own variance
        reach *= 1.0 - _step_fail(fails, step.join)
    holding = cpu + calls
    scv = variance / holding**2 if 0 < holding < math.inf else 1.0
    return holding, scv, cpu, calls, exact


def _sweep(tasks: Mapping[str, Task], order: list[str], rates: dict[str, float], callers: dict[str, list[str]]) -> _State:
    """One pass callees first: holding, station formula, response and failure chance per task."""
    state, delays, exact_holding = _State(), set[str](), dict[str, bool]()
    for name in order:
        task = tasks[name]
        holding, scv, cpu, call_time, exact = _holding(name, tasks, state, delays)
        exact_holding[name] = exact and not cores_bind(task)  # shared cores: the holding depends on the state
        if task.workers is not None and _is_delay(name, tasks, callers, exact_holding):
            station = _Station(0.0, 0.0, "a delay: at least as many workers as its callers can hold at once", True)
        else:
            # a callee's input is its callers' output, not Poisson: its own queueing is approximate
            station = _station(task, rates[name], holding, scv, exact, task.poisson and not callers[name])
        if _is_delay(name, tasks, callers, exact_holding):
            delays.add(name)
        if station.W is not None:  # threads on cores: the CPU phase is slowed by contention
            holding, cpu = station.W - station.Wq, station.cpu
        response = station.Wq + holding
        accepted = rates[name] * (1.0 - station.p_block)
        fail_calls = 1.0 - math.prod(1.0 - _step_fail([state.fail[t] for t in s.targets], s.join) for s in task.calls)
        p_fail = station.p_block + (1.0 - station.p_block) * (1.0 - (1.0 - fail_calls) * (1.0 - task.errors))
        state.holding[name], state.response[name], state.fail[name] = holding, response, p_fail
        # a delay's response is its holding, with the holding's scv; a queue's taken as exponential
        state.scv[name] = scv if name in delays else 1.0
        cpu_util = accepted * task.service / task.cores if task.cores is not None else math.nan
        formula = station.formula if station.exact else f"{station.formula}; {APPROXIMATION}"
        state.results[name] = TaskResult(
            arrival_rate=rates[name], throughput=accepted, p_block=station.p_block, holding=holding, cpu=cpu,
            calls=call_time, Wq=station.Wq, W=response, busy=accepted * (response - station.Wq), held=accepted * call_time,
            cpu_utilization=cpu_util, p_fail=p_fail, exact=station.exact, formula=formula)
    return state


def solve_layered(tasks: Mapping[str, Task], *, tolerance: float = 1e-13, max_iterations: int = 5000) -> dict[str, TaskResult]:
    """Steady-state means of every task of a layered model (see the module docstring).

    Damped successive substitution on the offered rates; raises ValueError if the calls form
    a cycle, if the iteration does not settle, or if a task with an unbounded queue (or its
    cores) is saturated at the fixed point (the queue then grows for as long as it runs).
    """
    order = _check(tasks)
    callers: dict[str, list[str]] = {name: [] for name in tasks}
    for name, task in tasks.items():
        for callee in dict.fromkeys(t for step in task.calls for t in step.targets):
            callers[callee].append(name)
    rates = {name: task.arrival_rate for name, task in tasks.items()}
    state, damping, previous = _sweep(tasks, order, rates, callers), 1.0, math.inf
    for _ in range(max_iterations):
        target = _offered_rates(tasks, order, state)
        gap = max((abs(target[n] - rates[n]) / max(1.0, abs(target[n])) for n in tasks), default=0.0)
        if gap < tolerance:
            break
        if gap > previous:
            damping = max(0.01, damping * 0.5)  # oscillating: move more cautiously
        previous = gap
        rates = {n: rates[n] + damping * (target[n] - rates[n]) for n in tasks}
        state = _sweep(tasks, order, rates, callers)
    else:
        raise ValueError(f"the layered fixed point did not settle in {max_iterations} iterations")
    for name, result in state.results.items():
        if math.isinf(result.W) and result.throughput > 0:
            raise ValueError(f"task {name!r} is saturated: its workers or cores cannot keep up with "
                             f"{result.arrival_rate:.6g}/s and its queue is unbounded")
    return state.results
