"""What the theory here cannot say about rate limits and early replies.

A token bucket (``rate_limit``) passes a flow that is no longer Poisson (and a share of it
that no formula here gives for general arrivals), so the limited station and everything it
feeds get no result; a stream's own bucket does the same to every station it reaches. A
``reply: true`` station answers the client part-way through the route: the stations'
results still hold, but the end-to-end latency of the client is not the route's; and a closed
population's clients send their next request while the route goes on, so no fixed population
circulates (no MVA).
(A ``cache`` needs nothing here: the station's service is the mixture of the cache's and
its own, paysim.scenario.models.Station.service_time, whose moments the formulas use.)
"""

from __future__ import annotations

from paysim.scenario import Scenario


def limit_reasons(scenario: Scenario, reach: dict[str, set[str]]) -> dict[str, str]:
    """Stations downstream of a token bucket (and the limited ones), or fed by a closed population
    that has its reply part-way, with the reason."""
    reasons: dict[str, str] = {}
    for name, station in scenario.stations.items():
        if station.rate_limit is not None:
            reasons.setdefault(name, "its rate limit (a token bucket) turns part of its input away, and what passes "
                                     "is no Poisson flow: no formula here covers it")
    for stream, arrival in scenario.arrivals.items():
        if arrival.rate_limit is not None:
            entry = scenario.entry(stream)
            reasons.setdefault(entry, f"stream {stream!r} passes a rate limit (a token bucket) first, and what "
                                      "passes is no Poisson flow: no formula here covers it")
    for stream, arrival in scenario.arrivals.items():
        entry = scenario.entry(stream)
        reached = [entry, *sorted(reach[entry])]
        if arrival.clients is not None and any(scenario.stations[n].reply for n in reached):
            for name in reached:
                reasons.setdefault(name, f"the clients of closed population {stream!r} have their answer part-way "
                                         "(reply: true) and send their next request while the rest of the route goes "
                                         "on: the population in the stations is not fixed, which no formula here "
                                         "covers")
    for name in list(reasons):
        for other in sorted(reach[name]):
            reasons.setdefault(other, f"downstream of a rate limit at or before station {name!r}, whose output is "
                                      "no Poisson flow")
    return reasons


def early_reply(scenario: Scenario, members: list[str] | None = None) -> str | None:
    """Why no end-to-end latency is given when a ``reply: true`` station (among ``members``) answers early."""
    replying = [n for n in (members if members is not None else scenario.stations) if scenario.stations[n].reply]
    if not replying:
        return None
    return (f"station {replying[0]!r} replies to the client part-way through the route (reply: true); no formula "
            "here gives the latency up to the reply")
