"""The compiled engine: the SimPy engine's model as numba-compiled kernels over flat,
named tables, in parts with one job each:

- :mod:`codes` the integer codes and named table columns,
- :mod:`primitives` the jit decorators, random draws, the sketch's bucket,
- :mod:`state` transaction slots and the event heap,
- :mod:`arrivals`, :mod:`retry`, :mod:`station` the model's parts, :mod:`classify` risk
  scoring, :mod:`fork` parallel calls,
- :mod:`loop` the event loop, :mod:`recursion` the one-station fast path,
- :mod:`tables` the scenario flattened into a ``Model``, and the random generators,
- :mod:`driver` runs a replication and reports to the observer.

Each random component draws from the same generator as in the SimPy engine, in the same
order, so a replication follows the SimPy engine's sample path wherever the distributions
are drawn alike (tests/test_engines_identical.py), and common random numbers hold across
variants. Memory is O(transactions in flight).
"""

from paysim.engine.compiled.driver import run_replication, unsupported

__all__ = ["run_replication", "unsupported"]
