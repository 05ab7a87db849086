"""Is the worker thread still mapping? A heartbeat and the verdict the node acts on.

The worker beats at every turn of its loop (at least every queue poll, 0.2 s) and not
while it maps a frame. The node's watchdog timer asks ``check``: a worker thread that
has exited is ``DEAD`` (the node starts a new one), a heartbeat older than
``timeout_s`` is ``STALLED`` (one frame hangs: the node reports it and exits non-zero,
so that a launch file's respawn starts it afresh; a Python thread cannot be killed).
No ROS import.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

ALIVE = "alive"
DEAD = "dead"
STALLED = "stalled"


class Heartbeat:
    """The worker's last sign of life; ``timeout_s`` 0 turns the stall check off. Thread-safe."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic):
        self.timeout_s = float(timeout_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()

    def beat(self) -> None:
        """The worker is alive and not stuck in a frame."""
        with self._lock:
            self._last = self._clock()

    def silence(self) -> float:
        """Seconds since the last beat."""
        with self._lock:
            return self._clock() - self._last

    def check(self, thread_alive: bool) -> str:
        """``DEAD`` if the thread has exited, ``STALLED`` if it has not beaten for ``timeout_s``, else ``ALIVE``."""
        if not thread_alive:
            return DEAD
        if self.timeout_s > 0 and self.silence() > self.timeout_s:
            return STALLED
        return ALIVE
