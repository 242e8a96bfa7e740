"""What queueing theory says about a scenario: per station, per arrival stream and for the
system a formula's answer or the reason there is none. It never guesses silently: every
scope is exact, labelled approximate, or refused with the reason.

Open streams. Per-station arrival rates come from the traffic equations, solved per
stream by the network model (:mod:`paysim.network`). A station's model is chosen from what can be justified:

* M/M/c, exact, when the station and every station upstream of it (that can route to it)
  serve exponentially with unbounded queues, and every stream reaching them is Poisson at
  a constant rate: that part of the network is an open Jackson network (product form), and
  by the arrival theorem each visit's sojourn has the M/M/c law, so percentiles are exact.
* "Poisson input": the station is on no routing cycle and everything upstream is as above.
  By Burke's and Melamed's theorems the flow into it is then Poisson, so M/M/c/K (bounded
  queue, exponential service) and M/G/1 (one worker) are exact, and M/D/c uses Cosmetatos.
* Otherwise G/G/c by Allen–Cunneen (Kingman at c = 1), approximate, with ca² from the one
  renewal stream feeding the station, or 1 for merged and downstream flows.

What a station is made of:

* An executor whose pool cannot grow (max == core, or an unbounded queue, which never lets
  it grow past core) is core servers (one at least) in front of its queue: M/M/core, or
  M/M/core/K with K = core + queue (rejection abort or discard). A pool that grows when its
  queue is full has a state-dependent number of servers: refused, as are caller_runs and
  discard_oldest on a bounded queue.
* ``instances`` behind ``balance: random`` are N independent stations at λ/N (a random
  split of a Poisson stream is Poisson): each instance's formula, and the station as their
  sum (L = N·L_i, W the same, utilisation the same); ``instance.*`` metrics give one
  instance. round_robin, least_busy and power_of_two balance better than a random split,
  so the random split's means are given as upper estimates (with bounded queues, as an
  estimate only: better balance also rejects less), labelled approximate.
* ``discipline: lifo`` (non-preemptive, the order independent of service times) leaves
  the number in system, hence every mean, as under FIFO; the sojourn distribution
  changes, so no percentiles. ``discipline: priority`` with streams of several priorities:
  the station's means are again FIFO's (same service for every class); per class,
  Cobham's M/G/1 formula (one worker) or the M/M/c non-preemptive priority formula
  (exponential service, equal rates), exact with Poisson input, give ``streams.X.Wq`` at
  the station and feed the streams' end-to-end means. No percentiles.
* Refused, with everything downstream: batch stations (items leave in bursts), schedules
  whose worker count changes, the stations a risk classification feeds (where
  transactions go depends on their scores), stations called in ``parallel`` and what
  follows the join.

Closed populations (``clients``, ``think``): exact when one population alone visits its
stations, every one with exponential service (any non-preemptive order: the number in
system is the same Markov chain) or a server for every client (a delay: any service), with
unbounded queues (or queues no full population can fill), no errors, timeouts, slowdowns or
outages; random instances are separate stations. Single servers go through Mean Value
Analysis, multi-server stations through the product form's normalising constants summed in
logarithms (:mod:`paysim.closed_network`, load-dependent and exact). Theory stops at
non-exponential service on a station with fewer workers than clients (no product form). That gives throughput, per-station L, W and utilisation, and the
response time as ``system.W`` / ``streams.X.W``.

Errors (``errors``) are Bernoulli exits after service, so they only thin the flow
downstream, as losses at an M/M/c/K station do; the traffic equations are re-solved for both.

No result (with the reason) for a station reached by a stream that follows a ``profile`` or
retries failed attempts (the offered load is then not the stream's rate), a station with
``slowdowns`` or ``outages`` or that withdraws timed-out work (``on_timeout: cancel``), an
unstable station (ρ >= 1, unbounded queue), a bounded queue without Poisson input and
exponential service, and anything downstream of the last four.
Metric names are those of ``paysim run --json`` (``stations.pool.Wq``, ``streams.card.W``,
``system.W``); exact results also carry ``p_wait`` and M/M/c results ``wait.p50`` ...
``wait.p999`` (waiting-time percentiles), which a run does not measure.
"""

from __future__ import annotations

from paysim.scenario import Scenario
from paysim.theory.closed import closed_theory
from paysim.theory.end_to_end import stream_theory, system_theory
from paysim.theory.layered import layered_theory
from paysim.theory.model import TheoryModel
from paysim.theory.scopes import ScopeTheory, Theory, theory_to_dict
from paysim.theory.stations import no_result_reason, station_theory

__all__ = ["ScopeTheory", "Theory", "analyse", "theory_to_dict"]


def analyse(scenario: Scenario) -> Theory:
    """Theory for every station, every stream and the system of ``scenario`` (see the module docstring)."""
    net = TheoryModel(scenario)
    # Bounded stations with Poisson input have only lossless stations upstream, so their rates
    # are already exact; their losses then thin the flow into every station downstream.
    bounded = [n for n, model in net.models.items()
               if not isinstance(model, str) and model[1] is not None and n not in net.layered]
    lossy = {n: station_theory(net, n, {}) for n in bounded}
    passed = {n: 1.0 - r.metrics["rejection_rate"] for n, r in lossy.items() if r.ok}
    if any(share < 1.0 for share in passed.values()):
        net.thin(passed)
    # layered stations at the rates left after those losses; their own losses thin what follows
    passed = layered_theory(net, lossy, lambda name: no_result_reason(net, name, lossy))
    if any(share < 1.0 for share in passed.values()):
        net.thin(passed)
    stations = {n: station_theory(net, n, lossy) for n in scenario.stations}
    streams = {}
    for stream in net.closed:   # its stations' results replace the open analysis's refusals
        streams[stream], closed = closed_theory(net, stream)
        stations.update(closed)
    streams.update({stream: stream_theory(net, stream, stations) for stream in net.open})
    streams = {stream: streams[stream] for stream in scenario.arrivals}
    return Theory(scenario.name, system_theory(net, stations, streams), stations, streams)

