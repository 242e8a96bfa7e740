"""JMeter results files with known truth: Poisson arrivals with step rates, service times from a
:mod:`paysim.distributions` family, failures with a given probability. For tests, the
example under ``scenarios/`` and the loading benchmark.

Times are quantised as JMeter does: ``timeStamp`` is the start on the millisecond clock and
``elapsed`` the difference of the end and start millisecond clocks; rows are written in
order of completion, as JMeter's listeners write them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paysim.distributions import Distribution
from paysim.fit.logs import JMETER_COLUMNS

EPOCH_MS = 1_796_300_000_000   # 2026-12-03, a plausible epoch for a recent load test


@dataclass(frozen=True)
class Stream:
    """One label: ``steps`` are (until second, rate per second) in order, from time 0."""

    label: str
    steps: tuple[tuple[float, float], ...]
    service: Distribution
    error_rate: float = 0.0
    url: str = "https://shop.example/api"


def requests(stream: Stream, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start s, duration s, ok) of one stream's requests, in start order."""
    starts, begin = [], 0.0
    for until, rate in stream.steps:
        count = rng.poisson(rate * (until - begin))
        starts.append(np.sort(rng.uniform(begin, until, count)))
        begin = until
    start = np.concatenate(starts)
    return start, stream.service.draw(rng, len(start)), rng.random(len(start)) >= stream.error_rate


def write_jtl(path: Path, streams: list[Stream], seed: int, threads: int = 50) -> int:
    """Write a CSV .jtl with JMeter's default columns; returns the number of rows."""
    rng = np.random.default_rng(seed)
    parts = [requests(stream, rng) for stream in streams]
    label = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(parts)])
    start_ms = np.floor(EPOCH_MS + 1000 * np.concatenate([p[0] for p in parts])).astype(np.int64)
    end_ms = np.floor(EPOCH_MS + 1000 * np.concatenate([p[0] + p[1] for p in parts])).astype(np.int64)
    ok = np.concatenate([p[2] for p in parts])
    order = np.argsort(end_ms, kind="stable")
    thread = rng.integers(1, threads + 1, len(label))
    size = rng.integers(300, 2000, len(label))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(JMETER_COLUMNS)
        for i in order.tolist():
            elapsed = int(end_ms[i] - start_ms[i])
            stream = streams[label[i]]
            good = bool(ok[i])
            writer.writerow([int(start_ms[i]), elapsed, stream.label, 200 if good else 500,
                             "OK" if good else "Internal Server Error", f"Checkout 1-{thread[i]}", "text",
                             "true" if good else "false", "" if good else "Test failed: code expected to be 200, "
                             "but was 500", int(size[i]), 412, threads, threads, stream.url, max(0, elapsed - 1),
                             0, 0])
    return len(order)
