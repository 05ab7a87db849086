"""Publish a ROS 2 bag live on its topics with the original timing (``alster play BAG``).

A small stand-in for ``ros2 bag play`` (not available from pip) so the live node can be
exercised with bags: the bag is read with ``rosbags`` and every message is published as
it is stored (serialized CDR bytes, rclpy's raw publishing), at the bag's receive times
divided by ``rate``, optionally from ``start_offset`` seconds into the bag and in a
loop. ``/clock`` (rosgraph_msgs/Clock) carries the bag time, so a node with
``use_sim_time`` follows the bag (published before each message and every
``clock_period`` seconds of wall time in between).

A topic whose message type is not importable here (e.g. tf2_msgs/TFMessage for /tf and
/tf_static in a pip-only install set up with ``ALSTER_SKIP_INTERFACES=1``; ``make setup``
builds tf2_msgs) is reported once and skipped. For such
environments ``pose_topic`` resolves the camera pose of every colour image offline
through the bag's TF (``BagSequence``'s ``TransformBuffer``, interpolated at the image
stamp) and publishes it as geometry_msgs/PoseStamped in the map frame just before the
image, so the mapping node runs with ``pose_source: pose`` and identity
``camera_extrinsic``.

QoS: reliable, keep last ``queue_size``; topics the bag recorded with transient-local
durability (/tf_static) are offered transient local again, so late subscribers get them.
Stamps in loops are the bag's: a node sees time jump back at each restart (as with
``ros2 bag play --loop``); the mapping node then restarts its synchroniser, pose buffer
and stamp order (``time_jump_threshold``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.geometry import quaternion_from_pose
from ..core.tf_buffer import TransformError
from ..data.rosbag_io import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, BagError, BagSequence, open_bag

CLOCK_TOPIC = "/clock"
SLEEP_SLICE = 0.05  # longest single sleep [s]: keeps Ctrl-C and /clock responsive


def message_class(msgtype: str) -> type | None:
    """The rclpy message class of ``pkg/msg/Name`` (or ``pkg/Name``); None when it is not importable."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        return None
    try:
        module = importlib.import_module(f"{parts[0]}.{parts[1]}")
    except ImportError:
        return None
    cls = getattr(module, parts[2], None)
    return cls if isinstance(cls, type) else None


def _clock_class() -> type | None:
    try:
        from rosgraph_msgs.msg import Clock  # noqa: PLC0415 (an optional dependency)
    except ImportError:
        return None
    return Clock


def _time_msg(ns: int):
    from builtin_interfaces.msg import Time  # noqa: PLC0415

    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def _transient_local(connection: Any) -> bool:
    """Whether the bag recorded ``connection`` with transient-local durability (latched, e.g. /tf_static)."""
    profiles = getattr(getattr(connection, "ext", None), "offered_qos_profiles", None) or []
    if isinstance(profiles, str):  # older rosbags: the YAML text
        return "durability: 1" in profiles or "transient_local" in profiles.lower()
    return any(getattr(getattr(p, "durability", None), "name", "") == "TRANSIENT_LOCAL" for p in profiles)


@dataclass
class PlayResult:
    """What one ``BagPlayer.play`` did.

    published: messages per output topic (including the pose topic and /clock).
    skipped_topics: bag topic -> why it was not played (reported once each).
    poses_missing: colour images without a pose (pose_topic only). bag_duration: bag time
    span played [s] (summed over loops). wall_duration: wall time from the first to the
    last message [s]. first_clock_ns / last_clock_ns: the /clock range published.
    """

    published: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    poses_missing: int = 0
    loops: int = 0
    bag_duration: float = 0.0
    wall_duration: float = 0.0
    first_clock_ns: int | None = None
    last_clock_ns: int | None = None
    interrupted: bool = False

    def summary(self) -> str:
        total = sum(v for k, v in self.published.items() if k != CLOCK_TOPIC)
        lines = [
            f"played {total} messages of {self.bag_duration:.3f} s of bag time in {self.wall_duration:.3f} s "
            f"({self.loops} pass{'es' if self.loops != 1 else ''}){' - interrupted' if self.interrupted else ''}"
        ]
        lines += [f"  {topic}: {n}" for topic, n in sorted(self.published.items())]
        lines += [f"  skipped {topic}: {why}" for topic, why in sorted(self.skipped_topics.items())]
        if self.poses_missing:
            lines.append(f"  {self.poses_missing} colour image(s) had no pose in the bag's TF (no pose published)")
        return "\n".join(lines)


class BagPlayer:
    """Publishes the messages of the ROS 2 bag at ``path`` (sqlite3 or mcap) with their timing.

    node: publish from this rclpy node (default: an own node ``alster_bag_player`` in an own
    context, created on ``play`` and destroyed after). rate: playback speed factor (> 0).
    loop: start over at the end until interrupted (``stop()`` or Ctrl-C). start_offset:
    seconds into the bag to start at. clock: publish /clock (when rosgraph_msgs imports).
    clock_period: wall seconds between /clock messages while waiting. topics: play only
    these bag topics (default: all). remap: bag topic -> output topic. pose_topic:
    publish the camera pose of every image on ``pose_image_topic`` there (PoseStamped in
    ``map_frame``, the camera frame being ``camera_frame`` or the image's frame_id),
    resolved through the bag's TF with ``tf_tolerance`` seconds of extrapolation.
    wait_for_subscribers: wait up to this many seconds until every data publisher (not
    /clock) has a subscriber (``expect_subscribers``: output topic -> how many, for topics
    with several), then ``delay`` more seconds for the subscribers' side of discovery.
    log: where notices go (default: print).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        node: Node | None = None,
        rate: float = 1.0,
        loop: bool = False,
        start_offset: float = 0.0,
        clock: bool = True,
        clock_period: float = 0.01,
        topics: list[str] | None = None,
        remap: dict[str, str] | None = None,
        pose_topic: str | None = None,
        pose_image_topic: str = COLOR_TOPIC,
        map_frame: str = "map",
        camera_frame: str | None = None,
        tf_tolerance: float = 0.0,
        queue_size: int = 100,
        wait_for_subscribers: float = 0.0,
        expect_subscribers: dict[str, int] | None = None,
        delay: float = 0.0,
        log: Callable[[str], None] = print,
    ):
        if not rate > 0 or not np.isfinite(rate):
            raise ValueError(f"rate must be a positive number, got {rate}")
        if start_offset < 0:
            raise ValueError(f"start_offset must be >= 0, got {start_offset}")
        if clock_period <= 0:
            raise ValueError(f"clock_period must be > 0, got {clock_period}")
        self.path = Path(path)
        self.node = node
        self.rate = float(rate)
        self.loop = bool(loop)
        self.start_offset_ns = int(round(start_offset * 1e9))
        self.clock = bool(clock)
        self.clock_period = float(clock_period)
        self.topics = set(topics) if topics else None
        self.remap = dict(remap or {})
        self.pose_topic = pose_topic or None
        self.pose_image_topic = pose_image_topic
        self.map_frame = map_frame
        self.camera_frame = camera_frame or None
        self.tf_tolerance_ns = int(round(tf_tolerance * 1e9))
        self.queue_size = int(queue_size)
        self.wait_for_subscribers = float(wait_for_subscribers)
        self.expect_subscribers = dict(expect_subscribers or {})
        self.delay = float(delay)
        self.log = log
        self._stop = False
        self.tf_buffer = None
        if self.pose_topic:
            # Loads every /tf and /tf_static transform of the bag (and checks the image topics).
            self.tf_buffer = self._load_tf()

    def stop(self) -> None:
        """Ask a running ``play`` (another thread) to return after the current message."""
        self._stop = True

    # -- bag access ---------------------------------------------------------------------------

    def _reader(self):
        return open_bag(self.path)

    def _load_tf(self):
        with self._reader() as reader:
            topics = {c.topic: c.msgtype for c in reader.connections}
        if topics.get(self.pose_image_topic) != "sensor_msgs/msg/Image":
            raise BagError(
                f"bag {self.path}: --pose-topic needs the image topic {self.pose_image_topic!r} (topics: {sorted(topics)})"
            )
        # BagSequence checks colour / depth / camera_info topics; give it ones the bag has.
        images = [t for t, m in topics.items() if m == "sensor_msgs/msg/Image"]
        infos = [t for t, m in topics.items() if m == "sensor_msgs/msg/CameraInfo"]
        if not infos:
            raise BagError(f"bag {self.path} has no sensor_msgs/CameraInfo topic (topics: {sorted(topics)})")
        depth = DEPTH_TOPIC if DEPTH_TOPIC in images else images[0]
        info = INFO_TOPIC if INFO_TOPIC in infos else infos[0]
        sequence = BagSequence(
            self.path, color_topic=self.pose_image_topic, depth_topic=depth, info_topic=info, map_frame=self.map_frame
        )
        if not sequence.tf_buffer.frames:
            self.log(f"bag {self.path} holds no /tf or /tf_static transforms: no poses can be published")
        return sequence.tf_buffer

    def _pose_message(self, raw: bytes, typestore: Any) -> PoseStamped | None:
        """PoseStamped (map frame) of the camera at the stamp of the serialized image ``raw``."""
        msg = typestore.deserialize_cdr(raw, "sensor_msgs/msg/Image")
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        camera = self.camera_frame or msg.header.frame_id
        if not camera:
            return None
        try:
            T = self.tf_buffer.lookup(self.map_frame, camera, stamp, self.tf_tolerance_ns)
        except TransformError:
            return None
        t, q = quaternion_from_pose(T)
        pose = PoseStamped()
        pose.header.stamp = _time_msg(stamp)
        pose.header.frame_id = self.map_frame
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in t)
        o = pose.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in q)
        return pose

    # -- playback -------------------------------------------------------------------------------

    def play(self) -> PlayResult:
        """Play the bag (all passes with ``loop``); returns what was published. Ctrl-C ends it early."""
        own_context = None
        node = self.node
        if node is None:
            own_context = Context()
            rclpy.init(context=own_context)
            node = Node("alster_bag_player", context=own_context)
        try:
            return self._play(node)
        finally:
            if own_context is not None:
                node.destroy_node()
                with contextlib.suppress(Exception):
                    rclpy.shutdown(context=own_context)

    def _publishers(self, node: Node, connections: list, result: PlayResult) -> dict[int, tuple[str, Any]]:
        """conn.id -> (output topic, publisher) of every playable connection; reports the rest once."""
        pubs: dict[tuple[str, str], Any] = {}
        by_conn: dict[int, tuple[str, Any]] = {}
        for conn in connections:
            if self.topics is not None and conn.topic not in self.topics:
                continue
            if conn.ext is not None and getattr(conn.ext, "serialization_format", "cdr") != "cdr":
                result.skipped_topics[conn.topic] = f"serialization {conn.ext.serialization_format!r} is not CDR"
                continue
            cls = message_class(conn.msgtype)
            if cls is None:
                result.skipped_topics[conn.topic] = f"message type {conn.msgtype} is not importable here"
                continue
            out = self.remap.get(conn.topic, conn.topic)
            key = (out, conn.msgtype)
            if key not in pubs:
                latched = _transient_local(conn)
                qos = QoSProfile(
                    history=HistoryPolicy.KEEP_LAST,
                    depth=self.queue_size,
                    reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
                )
                pubs[key] = node.create_publisher(cls, out, qos)
            by_conn[conn.id] = (out, pubs[key])
        for topic, why in sorted(result.skipped_topics.items()):
            self.log(f"not playing {topic}: {why}")
        return by_conn

    def _wait_for_subscribers(self, publishers: list) -> None:
        if self.wait_for_subscribers > 0 and publishers:
            deadline = time.monotonic() + self.wait_for_subscribers

            def waiting() -> list[str]:
                return sorted(
                    p.topic_name for p in publishers if p.get_subscription_count() < self.expect_subscribers.get(p.topic_name, 1)
                )

            while waiting() and not self._stop:
                if time.monotonic() >= deadline:
                    missing = waiting()
                    self.log(f"no subscriber after {self.wait_for_subscribers:g} s on: {', '.join(missing)}; playing anyway")
                    break
                time.sleep(0.02)
        if self.delay > 0:
            time.sleep(self.delay)

    def _play(self, node: Node) -> PlayResult:
        from rosbags.typesys import Stores, get_typestore  # noqa: PLC0415

        result = PlayResult()
        clock_cls = _clock_class() if self.clock else None
        if self.clock and clock_cls is None:
            self.log("rosgraph_msgs is not importable: no /clock")
        with self._reader() as reader:
            connections = list(reader.connections)
            by_conn = self._publishers(node, connections, result)
            bag_start = int(reader.start_time)
            bag_end = max(int(reader.end_time) - 1, bag_start)  # end_time is one past the last message
        first = bag_start + self.start_offset_ns
        if first > bag_end:
            raise ValueError(
                f"start offset {self.start_offset_ns / 1e9:g} s lies beyond the bag's {(bag_end - bag_start) / 1e9:.3f} s"
            )
        clock_pub = node.create_publisher(clock_cls, CLOCK_TOPIC, 10) if clock_cls is not None else None
        pose_pub = None
        if self.pose_topic:
            pose_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.queue_size, reliability=ReliabilityPolicy.RELIABLE)
            pose_pub = node.create_publisher(PoseStamped, self.pose_topic, pose_qos)
        image_conns = {c.id for c in connections if c.topic == self.pose_image_topic}
        typestore = get_typestore(Stores.ROS2_JAZZY) if pose_pub is not None else None
        data_pubs = list({id(p): p for _, p in by_conn.values()}.values()) + ([pose_pub] if pose_pub is not None else [])
        self._wait_for_subscribers(data_pubs)

        def count(topic: str) -> None:
            result.published[topic] = result.published.get(topic, 0) + 1

        def publish_clock(ns: int) -> None:
            if clock_pub is None:
                return
            clock_pub.publish(clock_cls(clock=_time_msg(ns)))
            count(CLOCK_TOPIC)
            if result.first_clock_ns is None:
                result.first_clock_ns = ns
            result.last_clock_ns = ns

        wall_first = wall_last = None
        try:
            while not self._stop:
                result.loops += 1
                wall_start = time.monotonic()
                last_bag = first
                publish_clock(first)
                next_clock = wall_start + self.clock_period
                with self._reader() as reader:
                    wanted = [c for c in reader.connections if c.id in by_conn]
                    for conn, bag_ns, raw in reader.messages(connections=wanted, start=first) if wanted else ():
                        target = wall_start + (bag_ns - first) / 1e9 / self.rate
                        # Wait for the message's time, ticking /clock meanwhile.
                        while not self._stop:
                            now = time.monotonic()
                            if now >= target:
                                break
                            if clock_pub is not None and now >= next_clock:
                                publish_clock(first + int((now - wall_start) * self.rate * 1e9))
                                next_clock = now + self.clock_period
                            wake = min(target, next_clock) if clock_pub is not None else target
                            time.sleep(min(max(wake - now, 0.0), SLEEP_SLICE))
                        if self._stop:
                            break
                        publish_clock(bag_ns)
                        out, pub = by_conn[conn.id]
                        if pose_pub is not None and conn.id in image_conns:
                            pose = self._pose_message(raw, typestore)
                            if pose is None:
                                result.poses_missing += 1
                            else:
                                pose_pub.publish(pose)
                                count(self.pose_topic)
                        pub.publish(bytes(raw))
                        count(out)
                        wall_last = time.monotonic()
                        if wall_first is None:
                            wall_first = wall_last
                        last_bag = bag_ns
                result.bag_duration += (last_bag - first) / 1e9
                if not self.loop:
                    break
        except KeyboardInterrupt:
            result.interrupted = True
        if self._stop:
            result.interrupted = True
        if wall_first is not None:
            result.wall_duration = wall_last - wall_first
        return result


def play_main(args: Any) -> int:
    """``alster play``: play ``args.bag`` as parsed by the CLI; prints a summary. Returns the exit code."""
    remap = {}
    for item in args.remap or []:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"--remap expects FROM:=TO, got {item!r}")
        remap[src] = dst
    player = BagPlayer(
        args.bag,
        rate=args.rate,
        loop=args.loop,
        start_offset=args.start_offset,
        clock=not args.no_clock,
        topics=args.topics,
        remap=remap,
        pose_topic=args.pose_topic,
        pose_image_topic=args.pose_image_topic,
        map_frame=args.map_frame,
        camera_frame=args.camera_frame,
        wait_for_subscribers=args.wait_for_subscribers,
        delay=args.delay,
    )
    result = player.play()
    print(result.summary())
    return 130 if result.interrupted else 0


__all__ = ["BagPlayer", "PlayResult", "message_class", "play_main"]
