"""Scenario files: the YAML users write, validated into an immutable model."""

from paysim.scenario.load import load_scenario, scenario_from_data
from paysim.scenario.models import DONE, SLO, Arrival, Outage, ProfilePoint, Retry, Scenario, Slowdown, Station

__all__ = ["DONE", "SLO", "Arrival", "Outage", "ProfilePoint", "Retry", "Scenario", "Slowdown", "Station",
           "load_scenario", "scenario_from_data"]
