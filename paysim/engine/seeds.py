"""Random generators derived from (seed, replication, component), never from process layout.

Every replication and every random component of the model (a stream's arrivals, a
station's service times, a station's routing) gets its own generator, spawned from one
``numpy.random.SeedSequence``. The component is identified by a stable hash of its kind
and name rather than its position, so adding a station leaves the random numbers of
the others unchanged (common random numbers across what-if variants).
"""

from __future__ import annotations

import zlib

import numpy as np


def component_rng(seed: int, replication: int, kind: str, name: str) -> np.random.Generator:
    """The generator of one model component in one replication."""
    key = zlib.crc32(f"{kind}:{name}".encode())
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(replication, key))
    return np.random.Generator(np.random.PCG64(sequence))
