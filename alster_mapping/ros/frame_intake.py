"""The mapping node's intake: raw image messages in, synchronised frames out, time guarded.

"Drop before you convert": a frame the worker will not map must cost as little as
possible. Image subscriptions deliver serialized bytes; ``FrameIntake.image`` parses only
their header (``raw_image``), rejects oversized images and wrong stamps, and hands the
bytes to the approximate-time synchroniser. A completed tuple goes to a slot of
``queue_size`` frames (default 1: the newest replaces a waiting one, counted as
superseded). Pixels are decoded only when the worker takes a frame.

Time (``stamp_guard``): ``admit`` checks every image, pose and TF stamp: far in the
future is rejected; a jump back restarts the synchroniser, the slot and, through
``on_time_jump``, the node's pose buffer and stamp order.

Thread-safe, and free of rclpy: the node passes its clock as ``now_ns``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from ..core.time_sync import ApproximateTimeSync
from .node_config import MappingNodeConfig
from .node_log import NodeLog
from .raw_image import RawImage, RawImageError, parse_raw_image
from .stamp_guard import FUTURE, JUMP_BACK, StampGuard
from .worker import Counters, FrameQueue

IMAGE_STREAMS = ("color", "depth", "labels")


@dataclass
class FrameMessages:
    """One synchronised input tuple waiting for the worker: raw images, decoded there, not on arrival."""

    color: RawImage
    depth: RawImage
    labels: RawImage | None
    received: float  # time.monotonic() when the tuple completed

    @property
    def stamp_ns(self) -> int:
        """The frame's stamp [ns]: the colour image's."""
        return self.color.stamp_ns


class FrameIntake:
    """Raw images -> synchronised ``FrameMessages`` in ``queue``, with stamp checks and counters.

    config: the node's pipeline parameters. topics: resolved names of the colour, depth
    (and label) topics, in stream order. counters / log: the node's. now_ns: the node's
    clock [ns] (0 while sim time has not started). on_time_jump: called after a jump back
    in time restarted the intake, so the caller can restart what it keeps in time order.
    """

    def __init__(
        self,
        config: MappingNodeConfig,
        topics: list[str],
        counters: Counters,
        log: NodeLog,
        now_ns: Callable[[], int],
        on_time_jump: Callable[[], None],
    ):
        self.config = config
        self.topics = list(topics)
        self.counters = counters
        self.log = log
        self.now_ns = now_ns
        self.on_time_jump = on_time_jump
        self.queue = FrameQueue(config.queue_size)
        self.guard = StampGuard(int(config.max_stamp_ahead * 1e9), int(config.time_jump_threshold * 1e9))
        self._sync_lock = threading.Lock()
        self._sync = ApproximateTimeSync(len(topics), int(round(config.sync_slop * 1e9)), config.sync_queue_size)
        self._max_raw_pixels = config.max_image_pixels * config.image_downscale**2
        self._told_superseded = False

    @property
    def sync_stats(self) -> dict[str, int]:
        """The synchroniser's counters: matched, dropped, duplicates, resets."""
        with self._sync_lock:
            return self._sync.stats

    def reject(self, reason: str, message: str) -> None:
        """A message is dropped before it reaches the synchroniser or the pose buffer: counted and logged."""
        self.counters.add(f"rejected.{reason}", message=message)
        self.log.throttled(f"rejected.{reason}", f"rejected a message: {message}")

    def admit(self, stream: Hashable, stamp_ns: int, what: str) -> bool:
        """Whether a message of ``stream`` stamped ``stamp_ns`` [ns] may be used; restarts time order on a jump back."""
        now = self.now_ns()
        verdict = self.guard.check(stream, stamp_ns, now)
        if verdict == FUTURE:
            self.reject(
                "future_stamp",
                f"{what} stamped {stamp_ns / 1e9:.3f} s is {(stamp_ns - now) / 1e9:.1f} s ahead of this node's clock "
                f"(max_stamp_ahead {self.config.max_stamp_ahead} s; are the clocks synchronised?)",
            )
            return False
        if verdict == JUMP_BACK:
            self.restart_time(what, stamp_ns)
        return True

    def restart_time(self, what: str, stamp_ns: int) -> None:
        """Time jumped back (a restarted bag, a reset clock): start everything time-ordered afresh."""
        with self._sync_lock:
            self._sync.reset()
        waiting = self.queue.clear()
        if waiting:
            self.counters.add("skipped.time_jump", waiting, message=f"{waiting} frame(s) of the old time line were waiting")
        self.on_time_jump()
        message = (
            f"time jumped back to {stamp_ns / 1e9:.3f} s on {what}: restarted the synchroniser, "
            f"the pose buffer and the stamp order ({waiting} waiting frame(s) dropped)"
        )
        self.counters.add("time_jumps", message=message)
        self.log.warning(message)

    def image(self, stream: int, raw: bytes) -> None:
        """A serialized ``sensor_msgs/Image`` of stream ``stream`` (0 colour, 1 depth, 2 labels) arrived."""
        self.counters.add(f"received.{IMAGE_STREAMS[stream]}")
        topic = self.topics[stream]
        try:
            image = parse_raw_image(raw)
        except RawImageError as exc:
            self.reject("bad_message", f"{topic}: {exc}")
            return
        if image.pixels > self._max_raw_pixels:
            cfg = self.config
            self.reject(
                "image_too_large",
                f"{topic}: {image.width}x{image.height} exceeds max_image_pixels {cfg.max_image_pixels} "
                f"(after image_downscale {cfg.image_downscale})",
            )
            return
        if not self.admit(("image", stream), image.stamp_ns, topic):
            return
        with self._sync_lock:
            matched = self._sync.add(stream, image.stamp_ns, image)
        for _, images in matched:
            self._synced(*images)

    def _synced(self, color: RawImage, depth: RawImage, labels: RawImage | None = None) -> None:
        self.counters.add("received.frames")
        if not self.queue.put(FrameMessages(color, depth, labels, time.monotonic())) and not self._told_superseded:
            self._told_superseded = True
            self.log.info(
                "frames arrive faster than they are mapped: the worker maps the newest and skips the "
                "others (counted as queue.superseded in /diagnostics)"
            )
