"""A pool of daemon threads for work in compiled code that releases the GIL (the fast engine).

Threads use every core without the seconds a spawned process needs to import paysim.
They are daemon threads, and the caller waits in short timed polls, so Ctrl-C (which
only the main thread sees) gets through at once instead of waiting for a kernel to end.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable
from typing import Any


class DaemonThreads:
    """``jobs`` threads taking submitted tasks in order; results are collected by polling."""

    def __init__(self, jobs: int) -> None:
        self.slots = jobs
        self._todo: queue.SimpleQueue[tuple[Hashable, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[Hashable, Any, BaseException | None]] = queue.SimpleQueue()
        for _ in range(jobs):
            threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        while (task := self._todo.get()) is not None:
            key, function = task
            try:
                self._done.put((key, function(), None))
            except BaseException as error:  # noqa: BLE001  handed to the polling thread, which raises it
                self._done.put((key, None, error))

    def submit(self, key: Hashable, function: Callable[[], Any]) -> None:
        self._todo.put((key, function))

    def completed(self, timeout_s: float) -> list[tuple[Hashable, Any]]:
        """What finished, waiting up to ``timeout_s`` for the first; a task's exception is raised here."""
        done = []
        try:
            item = self._done.get(timeout=timeout_s)
            while True:
                key, result, error = item
                if error is not None:
                    raise error
                done.append((key, result))
                item = self._done.get_nowait()
        except queue.Empty:
            pass
        return done

    def close(self) -> None:
        """Drop the queued tasks; the threads end after the task they are running."""
        while True:
            try:
                self._todo.get_nowait()
            except queue.Empty:
                break
        for _ in range(self.slots):
            self._todo.put(None)
