"""Time that runs wrong: stamps from the future and jumps back, detected per input stream.

One message with a wrong stamp must not stop a robot's mapping. Before this guard, a
colour + depth pair stamped a day ahead made the synchroniser drop every later (older)
message, and one pose stamped an hour ahead made the pose buffer prune every real pose.
The guard sees every stamp before the synchroniser and the pose buffer do:

- a stamp more than ``max_ahead_ns`` ahead of the node's clock is rejected (counted);
  while the clock reads 0 (``use_sim_time`` before the first ``/clock``) there is no
  reference, and this check is skipped;
- a stamp more than ``jump_back_ns`` older than the newest accepted stamp of its own
  stream is a jump back in time (a restarted bag, a reset clock, or the first good
  stamp after a bad one from the future): the caller restarts everything that keeps
  time order (synchroniser, pose buffer, stamp order) and the message is then used.
  The guard forgets the newest stamps of all streams at a jump, so the other streams
  follow into the new time line without triggering again.

Streams are any hashable names: one per image topic, one per pose topic, one per TF
child frame (TF edges from different publishers run on different schedules).
Thread-safe; no ROS import.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

ACCEPT = "accept"
FUTURE = "future"
JUMP_BACK = "jump_back"


class StampGuard:
    """Classifies each stamp of each stream as ``ACCEPT``, ``FUTURE`` (reject) or ``JUMP_BACK`` (restart, then use).

    max_ahead_ns: how far a stamp may lie ahead of the node's clock [ns].
    jump_back_ns: how far a stamp may lie behind its stream's newest before it counts as a jump [ns].
    """

    def __init__(self, max_ahead_ns: int, jump_back_ns: int):
        if max_ahead_ns < 0 or jump_back_ns < 0:
            raise ValueError(f"limits must be non-negative, got {max_ahead_ns} and {jump_back_ns}")
        self.max_ahead_ns = int(max_ahead_ns)
        self.jump_back_ns = int(jump_back_ns)
        self._lock = threading.Lock()
        self._newest: dict[Hashable, int] = {}
        self.future = 0
        self.jumps = 0

    def check(self, stream: Hashable, stamp_ns: int, now_ns: int) -> str:
        """The verdict on ``stamp_ns`` [ns] of ``stream`` when the node's clock reads ``now_ns`` [ns] (0 = unknown)."""
        stamp_ns = int(stamp_ns)
        with self._lock:
            if now_ns > 0 and stamp_ns - now_ns > self.max_ahead_ns:
                self.future += 1
                return FUTURE
            newest = self._newest.get(stream)
            if newest is not None and newest - stamp_ns > self.jump_back_ns:
                self._newest = {stream: stamp_ns}
                self.jumps += 1
                return JUMP_BACK
            if newest is None or stamp_ns > newest:
                self._newest[stream] = stamp_ns
            return ACCEPT

    def reset(self) -> None:
        """Forget every stream's newest stamp (e.g. after the map was cleared)."""
        with self._lock:
            self._newest = {}
