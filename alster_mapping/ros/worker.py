"""ROS-free plumbing of the mapping node's worker: a bounded drop-oldest queue, counters,
per-stage latency statistics and throttled logging.

The node's subscription callbacks only ``put`` into a ``FrameQueue`` and return; one worker
thread ``get``s frames and runs the (slow) network. When frames arrive faster than the
worker maps them, the oldest queued frame is dropped: a live map wants the newest view,
and a bounded queue keeps latency and memory bounded. With capacity 1 (the node's
default) the queue is a latest-only slot: the worker always maps the newest frame and
waits at most one input period for it. Every drop is counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any


class FrameQueue:
    """A thread-safe FIFO of at most ``capacity`` items that drops its oldest item when full.

    ``put`` never blocks (safe in a ROS callback); ``get`` blocks up to ``timeout`` seconds.
    Counters: ``put_count`` (items offered), ``dropped`` (items pushed out unprocessed).
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self._items: deque = deque()
        self._cond = threading.Condition()
        self.put_count = 0
        self.dropped = 0
        self.max_depth = 0
        self._closed = False

    def put(self, item: Any) -> bool:
        """Append ``item``; returns False when an older item had to be dropped to make room."""
        with self._cond:
            self.put_count += 1
            dropped = len(self._items) >= self.capacity
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.max_depth = max(self.max_depth, len(self._items))
            self._cond.notify()
            return not dropped

    def get(self, timeout: float | None = None) -> Any | None:
        """The oldest item, waiting up to ``timeout`` seconds (None: forever); None on timeout or close."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            return self._items.popleft()

    def clear(self) -> int:
        """Drop every queued item without counting it as a drop; returns how many there were."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            return n

    def close(self) -> None:
        """Wake every waiting ``get`` (they return None when the queue is empty)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class Counters:
    """Thread-safe named event counters (frames received, processed, skipped by reason, ...).

    A counter can carry the message of its latest event (``messages``), so diagnostics
    say not only how often something went wrong but what, the last time.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._messages: dict[str, str] = {}

    def add(self, name: str, n: int = 1, message: str | None = None) -> None:
        """Increase counter ``name`` by ``n``; ``message`` describes this latest event."""
        with self._lock:
            self._counts[name] += n
            if message is not None:
                self._messages[name] = message

    def messages(self) -> dict[str, str]:
        """The latest message of every counter that has one, sorted by name."""
        with self._lock:
            return dict(sorted(self._messages.items()))

    def get(self, name: str) -> int:
        """The value of counter ``name`` (0 if never increased)."""
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, sorted by name."""
        with self._lock:
            return dict(sorted(self._counts.items()))


class LatencyStats:
    """Per-stage durations [s] of the last ``window`` frames: mean, max and last per stage. Thread-safe."""

    def __init__(self, window: int = 100):
        self.window = int(window)
        self._lock = threading.Lock()
        self._values: dict[str, deque[float]] = {}

    def add(self, timings: dict[str, float]) -> None:
        """Record one frame's stage durations (seconds, by stage name)."""
        with self._lock:
            for stage, seconds in timings.items():
                self._values.setdefault(stage, deque(maxlen=self.window)).append(float(seconds))

    def summary(self) -> dict[str, dict[str, float]]:
        """stage -> {"mean_ms", "max_ms", "last_ms", "n"} over the window."""
        with self._lock:
            out = {}
            for stage, values in sorted(self._values.items()):
                if values:
                    out[stage] = {
                        "mean_ms": 1000.0 * sum(values) / len(values),
                        "max_ms": 1000.0 * max(values),
                        "last_ms": 1000.0 * values[-1],
                        "n": len(values),
                    }
            return out


class Throttle:
    """Lets one message per key through every ``period`` seconds and counts the ones held back.

    rclpy's own ``throttle_duration_sec`` throttles per call site, so one helper that logs
    every kind of skipped frame would hide all kinds but one; this throttles per kind.
    """

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic):
        self.period = float(period)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def __call__(self, key: str) -> int | None:
        """None when a message for ``key`` must be held back now; else how many were held back since the last one."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._held[key] += 1
                return None
            self._last[key] = now
            held = self._held.pop(key, 0)
            return held
