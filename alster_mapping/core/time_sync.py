"""Approximate time synchronisation of N message streams (a ROS-free ``message_filters`` stand-in).

Matching is eager: when a message arrives, the best tuple that contains it (one
queued message per other stream, all stamps within ``slop_ns`` of each other, the
smallest spread of stamps winning) is emitted at once. Output is monotonic per
stream: once a stamp of a stream has been matched, queued messages of that stream
with older stamps are dropped as stale, and later arrivals older than it are dropped
as late. Within that limit arrival order does not matter (queues are kept by stamp).
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from typing import Any


class ApproximateTimeSync:
    """Pairs messages of ``num_streams`` streams whose stamps lie within ``slop_ns`` [ns].

    queue_size: unmatched messages kept per stream; the oldest is dropped on overflow.
    ``stats``: counts of emitted tuples (``matched``), messages dropped unmatched
    (``dropped``: queue overflow, stale, late or cleared by ``reset``), messages dropped
    because their stream already had a message with the same stamp (``duplicates``) and
    of ``reset`` calls (``resets``).
    """

    def __init__(self, num_streams: int, slop_ns: int, queue_size: int = 10):
        if num_streams < 1:
            raise ValueError(f"num_streams must be at least 1, got {num_streams}")
        if slop_ns < 0:
            raise ValueError(f"slop_ns must be non-negative, got {slop_ns}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.num_streams = int(num_streams)
        self.slop_ns = int(slop_ns)
        self.queue_size = int(queue_size)
        self._stats = {"matched": 0, "dropped": 0, "duplicates": 0, "resets": 0}
        self._clear()

    def reset(self) -> None:
        """Drop every queued message (counted as dropped) and forget the last matched stamps.

        For a jump back in time (a restarted bag): afterwards any stamp can match again.
        The statistics keep counting; ``resets`` counts the calls.
        """
        self._stats["dropped"] += self.pending
        self._stats["resets"] += 1
        self._clear()

    def _clear(self) -> None:
        # Per stream: sorted stamps and their items.
        self._stamps: list[list[int]] = [[] for _ in range(self.num_streams)]
        self._items: list[dict[int, Any]] = [{} for _ in range(self.num_streams)]
        # Per stream: stamp of the last matched message (None before the first match) and
        # recently matched stamps, so a re-delivered message counts as a duplicate.
        self._last: list[int | None] = [None] * self.num_streams
        self._recent: list[deque[int]] = [deque(maxlen=4 * self.queue_size) for _ in range(self.num_streams)]

    @property
    def stats(self) -> dict[str, int]:
        """Copy of the counters: matched, dropped, duplicates, resets."""
        return dict(self._stats)

    @property
    def pending(self) -> int:
        """Messages queued and not yet matched (all streams)."""
        return sum(len(s) for s in self._stamps)

    def add(self, stream: int, stamp_ns: int, item: Any) -> list[tuple[int, tuple]]:
        """Queue ``item`` of ``stream`` (0-based) stamped ``stamp_ns`` [ns].

        Returns the tuples completed by it as [(stamp_ns of stream 0's message,
        (item of stream 0, item of stream 1, ...))]: at most one tuple per call.
        """
        if not 0 <= stream < self.num_streams:
            raise ValueError(f"stream must be in 0..{self.num_streams - 1}, got {stream}")
        stamp = int(stamp_ns)
        stamps = self._stamps[stream]
        if stamp in self._items[stream] or stamp in self._recent[stream]:
            self._stats["duplicates"] += 1
            return []
        last = self._last[stream]
        if last is not None and stamp < last:
            self._stats["dropped"] += 1
            return []
        bisect.insort(stamps, stamp)
        self._items[stream][stamp] = item
        out = self._match(stream, stamp)
        while len(stamps) > self.queue_size:
            self._remove(stream, stamps[0])
            self._stats["dropped"] += 1
        return out

    def _match(self, stream: int, stamp: int) -> list[tuple[int, tuple]]:
        candidates = []
        for s in range(self.num_streams):
            if s == stream:
                candidates.append([stamp])
                continue
            queue = self._stamps[s]
            lo = bisect.bisect_left(queue, stamp - self.slop_ns)
            hi = bisect.bisect_right(queue, stamp + self.slop_ns)
            if lo == hi:
                return []
            candidates.append(queue[lo:hi])
        best = None
        for combo in itertools.product(*candidates):
            spread = max(combo) - min(combo)
            # Ties go to the combination closest to the new message, then the earliest.
            key = (spread, sum(abs(t - stamp) for t in combo), combo)
            if spread <= self.slop_ns and (best is None or key < best[0]):
                best = (key, combo)
        if best is None:
            return []
        combo = best[1]
        items = tuple(self._items[s][t] for s, t in enumerate(combo))
        for s, t in enumerate(combo):
            self._remove(s, t)
            self._last[s] = t
            self._recent[s].append(t)
            # Older messages of this stream can no longer be matched without breaking monotonic output.
            queue = self._stamps[s]
            while queue and queue[0] < t:
                self._remove(s, queue[0])
                self._stats["dropped"] += 1
        self._stats["matched"] += 1
        return [(combo[0], items)]

    def _remove(self, stream: int, stamp: int) -> None:
        queue = self._stamps[stream]
        del queue[bisect.bisect_left(queue, stamp)]
        del self._items[stream][stamp]
