"""Engines run one replication of a scenario and report what happens to an observer."""

from paysim.engine.simpy_engine import RunawayError, run_replication

__all__ = ["RunawayError", "run_replication"]
