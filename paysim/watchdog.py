"""Worker processes that do not outlive the command that started them.

A pool worker is stopped by its parent on Ctrl-C or an error; if the parent is killed
outright (``kill -9``, the out-of-memory killer) nobody stops it, and it would run, or
idle at ~100 MB, forever. ``exit_with_parent`` starts a thread that ends the worker as
soon as its parent is gone (the worker is then re-parented, so ``os.getppid`` changes).
"""

from __future__ import annotations

import os
import threading
import time

POLL_S = 0.5


def exit_with_parent(poll_s: float = POLL_S) -> None:
    """In a worker process: end it within ``poll_s`` of its parent's death."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)   # no clean-up to do: the results had nobody left to go to

    threading.Thread(target=watch, name="paysim-watchdog", daemon=True).start()
