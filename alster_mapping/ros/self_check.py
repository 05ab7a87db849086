"""The live pipeline's self-check: when no frame has been mapped for a while, say exactly why.

A robot's map that silently stays empty is the most reported failure of live mappers: a
camera driver on another namespace, a depth stream that never matches the colour stamps,
a TF link nobody publishes, a camera_info on another topic, a depth image that is all
zeros. ``SelfCheck`` watches the pipeline's counters; after ``self_check_timeout`` seconds
without a mapped frame (since the start or since the last mapped frame) it names what is
missing, in the order the pipeline needs things:

1. no colour / depth / label messages on their topics (with the resolved topic names);
2. messages arrive on every topic but no synchronised pair forms (stamps further apart
   than ``sync_slop``) or every message is rejected (with the latest reason);
3. frames are formed but skipped: no camera_info, the camera pose (the TF link that cannot
   be looked up, as the lookup said), no valid depth, or any other skip reason (with its
   latest message).

The diagnosis is logged once per distinct problem (again only when it changes) and kept in
``problem`` for ``/diagnostics`` (WARN) and ``~/get_stats``; it clears when frames are
mapped again. A paused pipeline is not a problem. ROS-free: it reads counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STREAM_NAMES = {"color": "colour", "depth": "depth", "labels": "label"}


def diagnose(stats: dict, topics: dict[str, str], camera_info_topic: str, sync_slop: float) -> str:
    """What keeps frames from being mapped, from the pipeline's counters (``LiveMapping.pipeline_stats``).

    topics: stream ("color", "depth", "labels") -> resolved topic of the streams the mode uses.
    """
    received = stats["received"]
    silent = [f"{STREAM_NAMES[s]} ({topic})" for s, topic in topics.items() if received.get(s, 0) == 0]
    if silent:
        missing = "no camera_info either" if received.get("camera_info", 0) == 0 else "camera_info arrives"
        return f"no messages on the {' / '.join(silent)} topic(s) ({missing}); check the topic names, namespaces and remappings"
    if received.get("frames", 0) == 0:
        rejected = stats.get("rejected", {})
        if rejected:
            reason = max(rejected, key=rejected.get)
            latest = stats.get("latest", {}).get(f"rejected.{reason}", "")
            return f"images arrive but every one is rejected ({reason}: {latest})"
        counts = ", ".join(f"{STREAM_NAMES[s]} {received.get(s, 0)}" for s in topics)
        return (
            f"images arrive ({counts}) but no synchronised set forms: their stamps differ by more than "
            f"sync_slop {sync_slop} s (are colour and depth from the same camera and clock?)"
        )
    skipped = stats.get("skipped", {})
    if not skipped:
        return "frames are synchronised but none has been mapped yet (the worker may be slow or stuck)"
    reason = max(skipped, key=skipped.get)
    latest = stats.get("latest", {}).get(f"skipped.{reason}", "")
    if reason == "missing_camera_info":
        return f"no CameraInfo on {camera_info_topic}: every frame is skipped ({latest})"
    if reason in ("pose_unavailable", "pose_extrapolation", "pose_gap"):
        return f"no camera pose for the frames: {latest}"
    if reason == "no_valid_depth":
        return f"every depth image is invalid (no finite positive value; check depth_scale and the encoding): {latest}"
    return f"every frame is skipped ({reason}): {latest}"


class SelfCheck:
    """timeout: seconds without a mapped frame before diagnosing (0: off). report: called
    with each new diagnosis (e.g. the node's warning log). clock: monotonic seconds."""

    def __init__(self, timeout: float, report: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.timeout = timeout
        self._report = report
        self._clock = clock
        self._since = clock()
        self._mapped = 0
        self.problem: str | None = None

    def update(self, stats: dict, topics: dict[str, str], camera_info_topic: str, sync_slop: float, paused: bool = False) -> str | None:
        """Check the pipeline now; returns the current problem (None when frames are mapped or it is too early)."""
        now = self._clock()
        if stats["mapped"] != self._mapped or paused:
            self._mapped, self._since = stats["mapped"], now
            if self.problem is not None and not paused:
                self._report(f"self-check: frames are mapped again ({stats['mapped']} so far)")
            self.problem = None
            return None
        if self.timeout <= 0 or now - self._since < self.timeout:
            return self.problem
        problem = diagnose(stats, topics, camera_info_topic, sync_slop)
        if problem != self.problem:
            self.problem = problem
            when = "since the start" if self._mapped == 0 else f"after {self._mapped} mapped frames"
            self._report(f"self-check: no frame mapped for {now - self._since:.0f} s {when}: {problem}")
        return self.problem
