"""Steady states of a scenario whose arrival rates follow a profile.

A profile has no steady state of its own, but queueing theory can still say what the system
settles to if a rate were held: at the base rate (the rate as written, multiplier 1) and at
the peak (each stream at the largest multiplier its profile reaches in the measurement
window, all at once: an upper bound where streams peak at different times). Both are
labelled so that neither is mistaken for the profile's answer.
"""

from __future__ import annotations

from paysim.network import Network, base_rate
from paysim.scenario import Scenario


def _held(scenario: Scenario, multipliers: dict[str, float]) -> Scenario:
    arrivals = {name: arrival.model_copy(update={"profile": None, "rate": base_rate(arrival) * multipliers[name]})
                if arrival.profile else arrival for name, arrival in scenario.arrivals.items()}
    return scenario.model_copy(update={"arrivals": arrivals})


def profile_steady_states(scenario: Scenario) -> list[tuple[str, Scenario]]:
    """[(label, scenario with every profile replaced by a constant rate)] for the base and the
    peak rate; empty when no stream follows a profile."""
    profiled = {name: arrival for name, arrival in scenario.arrivals.items() if arrival.profile}
    if not profiled:
        return []
    network = Network(scenario)
    peaks = {name: network.multipliers(name)[1] for name in profiled}
    shown = ", ".join(f"{name} x{peak:g}" for name, peak in peaks.items())
    return [("steady state at the base rate (profile left out, multiplier 1)", _held(scenario, dict.fromkeys(profiled, 1.0))),
            (f"steady state at the peak rate ({shown}, held as if forever)", _held(scenario, peaks))]
