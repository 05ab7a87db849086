"""ROS 2 bags of posed RGB-D frames, written and read with ``rosbags`` (no rclpy).

Layout written by ``write_bag`` and expected by ``BagSequence``:

* colour ``sensor_msgs/Image`` (rgb8), depth ``sensor_msgs/Image`` (16UC1 millimetres or
  32FC1 metres), ``sensor_msgs/CameraInfo`` for the (registered) colour camera, and
  optionally an NYU40 label ``sensor_msgs/Image`` (mono16), all stamped with the
  acquisition time and ``frame_id`` = the camera optical frame;
* ``/tf``: map -> base_link (``tf2_msgs/TFMessage``), the camera motion;
* ``/tf_static``: base_link -> camera optical frame, offered with transient-local
  durability (the QoS override ``ros2 bag play`` needs to latch it).

Bag receive times equal the header stamps.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core.camera import CameraIntrinsics
from ..core.frame import RGBDFrame
from ..core.geometry import check_rigid, invert_se3, pose_from_quaternion, quaternion_from_pose
from ..core.image_codec import (
    CameraInfoError,
    ImageEncodingError,
    array_to_image_fields,
    camera_info_fields,
    color_to_rgb,
    depth_to_metres,
    image_to_array,
    intrinsics_from_camera_info,
)
from ..core.tf_buffer import TransformBuffer, TransformError
from ..core.time_sync import ApproximateTimeSync

COLOR_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/depth/image_raw"
INFO_TOPIC = "/camera/color/camera_info"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
IMAGE_TYPE = "sensor_msgs/msg/Image"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
TF_TYPE = "tf2_msgs/msg/TFMessage"
DEFAULT_SLOP_NS = 10_000_000  # a third of a 30 Hz frame period

# base_link (x forward, y left, z up) -> optical frame (x right, y down, z forward) of a
# camera 10 cm ahead of and 30 cm above the base origin, so the static chain is not trivial.
DEFAULT_T_BASE_CAMERA = np.array(
    [[0.0, 0.0, 1.0, 0.10], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.30], [0.0, 0.0, 0.0, 1.0]]
)

# Skip reasons counted by BagSequence.
SKIP_NO_INFO = "no camera_info"
SKIP_BAD_INFO = "bad camera_info"
SKIP_SIZE = "size mismatch"
SKIP_ENCODING = "bad encoding"
SKIP_NO_POSE = "no pose"
SKIP_NO_FRAME_ID = "no camera frame"
SKIP_INVALID = "invalid frame"
SKIP_UNDECODABLE = "undecodable message"
SKIP_UNSYNCED = "unsynchronised message"
SKIP_DUPLICATE = "duplicate message"
SKIP_BAD_TF = "bad tf"


class BagError(ValueError):
    """A bag cannot be opened or read, or lacks a required topic (the message names the bag)."""


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _tf_static_qos() -> list:
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    # What tf2_ros' StaticTransformBroadcaster offers; rosbag2 writes "infinite" durations this way.
    infinite = QosTime(sec=9223372036, nsec=854775807)
    return [
        Qos(
            history=QosHistory.KEEP_LAST,
            depth=1,
            reliability=QosReliability.RELIABLE,
            durability=QosDurability.TRANSIENT_LOCAL,
            deadline=infinite,
            lifespan=infinite,
            liveliness=QosLiveliness.AUTOMATIC,
            liveliness_lease_duration=infinite,
            avoid_ros_namespace_conventions=False,
        )
    ]


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------


class _MessageFactory:
    """Builds rosbags message objects of the Jazzy typestore."""

    def __init__(self, typestore: Any):
        self.ts = typestore
        self.types = typestore.types

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        if stamp_ns < 0:
            raise ValueError(f"stamps must be non-negative, got {stamp_ns} ns")
        time = self.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        return self.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)

    def image(self, array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
        return self.types[IMAGE_TYPE](header=self.header(stamp_ns, frame_id), **array_to_image_fields(array, encoding))

    def camera_info(self, intrinsics: CameraIntrinsics, stamp_ns: int, frame_id: str) -> Any:
        roi = self.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return self.types[INFO_TYPE](
            header=self.header(stamp_ns, frame_id), binning_x=0, binning_y=0, roi=roi, **camera_info_fields(intrinsics)
        )

    def tf(self, parent: str, child: str, T: np.ndarray, stamp_ns: int) -> Any:
        t, q = quaternion_from_pose(T)
        vector = self.types["geometry_msgs/msg/Vector3"](x=float(t[0]), y=float(t[1]), z=float(t[2]))
        quat = self.types["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))
        transform = self.types["geometry_msgs/msg/Transform"](translation=vector, rotation=quat)
        stamped = self.types["geometry_msgs/msg/TransformStamped"](
            header=self.header(stamp_ns, parent), child_frame_id=child, transform=transform
        )
        return self.types[TF_TYPE](transforms=[stamped])

    def serialize(self, msg: Any) -> bytes:
        return self.ts.serialize_cdr(msg, msg.__msgtype__)


def _depth_array(frame: RGBDFrame, encoding: str) -> np.ndarray:
    if encoding == "32FC1":
        return frame.depth.astype(np.float32)
    depth = frame.depth.astype(np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    mm = np.rint(np.where(valid, depth, 0.0) * 1000.0)
    return np.where(valid, np.clip(mm, 0, 65535), 0).astype(np.uint16)


def write_bag(
    path: str | os.PathLike,
    frames: Iterable[RGBDFrame],
    storage: str = "sqlite3",
    color_topic: str = COLOR_TOPIC,
    depth_topic: str = DEPTH_TOPIC,
    info_topic: str = INFO_TOPIC,
    depth_encoding: str = "16UC1",
    map_frame: str = "map",
    camera_frame: str = "camera_color_optical_frame",
    base_frame: str = "base_link",
    labels_topic: str | None = None,
    T_base_camera: np.ndarray | None = None,
    tf_samples: Iterable[tuple[int, np.ndarray]] | None = None,
) -> int:
    """Write posed RGB-D frames as a ROS 2 bag directory at ``path`` (which must not exist).

    storage: "sqlite3" or "mcap". Per frame (at ``frame.stamp_ns``, frames in time
    order): colour rgb8, depth (``depth_encoding`` "16UC1": millimetres rounded, 0 for
    invalid, clipped at 65.535 m; "32FC1": metres as is), camera_info, the optional
    mono16 label image on ``labels_topic`` (every frame must then carry labels), and
    on /tf T_map_base = T_world_camera @ inv(T_base_camera). ``T_base_camera`` (4, 4)
    metres (default ``DEFAULT_T_BASE_CAMERA``) goes once on /tf_static. ``tf_samples``:
    (stamp_ns, T_map_camera (4, 4)) pose samples published on /tf *instead of* the
    per-frame poses (to exercise interpolation or missing poses). The bag is built in a
    temporary directory beside ``path`` and renamed into place. Returns the number of
    frames written.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in plugins:
        raise ValueError(f"storage must be 'sqlite3' or 'mcap', got {storage!r}")
    if depth_encoding not in ("16UC1", "32FC1"):
        raise ValueError(f"depth_encoding must be '16UC1' or '32FC1', got {depth_encoding!r}")
    T_base_camera = check_rigid(DEFAULT_T_BASE_CAMERA if T_base_camera is None else T_base_camera, "T_base_camera")
    T_camera_base = invert_se3(T_base_camera)
    samples = None
    if tf_samples is not None:
        samples = sorted(((int(s), check_rigid(T, f"tf sample at {s} ns")) for s, T in tf_samples), key=lambda x: x[0])
    path = Path(path)
    if path.exists():
        raise BagError(f"{path} exists already; not overwriting a bag")
    factory = _MessageFactory(_typestore())
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    count = 0
    try:
        writer = Writer(staging / path.name, version=Writer.VERSION_LATEST, storage_plugin=plugins[storage])
        with writer:
            ts = factory.ts
            c_color = writer.add_connection(color_topic, IMAGE_TYPE, typestore=ts)
            c_depth = writer.add_connection(depth_topic, IMAGE_TYPE, typestore=ts)
            c_info = writer.add_connection(info_topic, INFO_TYPE, typestore=ts)
            c_labels = writer.add_connection(labels_topic, IMAGE_TYPE, typestore=ts) if labels_topic else None
            c_tf = writer.add_connection(TF_TOPIC, TF_TYPE, typestore=ts)
            c_static = writer.add_connection(TF_STATIC_TOPIC, TF_TYPE, typestore=ts, offered_qos_profiles=_tf_static_qos())

            def put(connection: Any, stamp: int, msg: Any) -> None:
                writer.write(connection, stamp, factory.serialize(msg))

            def put_pose(stamp: int, T_map_camera: np.ndarray) -> None:
                put(c_tf, stamp, factory.tf(map_frame, base_frame, T_map_camera @ T_camera_base, stamp))

            pending = collections.deque(samples or [])
            static_written = False
            for i, frame in enumerate(frames):
                stamp = frame.stamp_ns
                if not static_written:
                    first = min(stamp, pending[0][0]) if pending else stamp
                    put(c_static, first, factory.tf(base_frame, camera_frame, T_base_camera, first))
                    static_written = True
                while pending and pending[0][0] <= stamp:
                    put_pose(*pending.popleft())
                if samples is None:
                    put_pose(stamp, frame.T_world_camera)
                put(c_info, stamp, factory.camera_info(frame.intrinsics, stamp, camera_frame))
                put(c_color, stamp, factory.image(frame.color, "rgb8", stamp, camera_frame))
                put(c_depth, stamp, factory.image(_depth_array(frame, depth_encoding), depth_encoding, stamp, camera_frame))
                if c_labels is not None:
                    labels = frame.labels
                    if labels is None:
                        raise ValueError(f"frame {i} (stamp {stamp} ns) has no labels but labels_topic is {labels_topic!r}")
                    if labels.size and (labels.min() < 0 or labels.max() > 65535):
                        raise ValueError(f"frame {i}: label ids {labels.min()}..{labels.max()} do not fit mono16")
                    put(c_labels, stamp, factory.image(labels.astype(np.uint16), "mono16", stamp, camera_frame))
                count += 1
            while pending:
                put_pose(*pending.popleft())
        if count == 0:
            raise BagError(f"no frames to write to {path}")
        os.rename(staging / path.name, path)
    except WriterError as exc:
        raise BagError(f"cannot write bag {path}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------


class _Skip(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@contextlib.contextmanager
def open_bag(path: str | os.PathLike) -> Iterator[Any]:
    """An open ``rosbags`` Reader of the bag at ``path`` (closed on exit); raises BagError
    naming the bag when it is missing or cannot be opened."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises many types (sqlite, yaml, mcap, OS) for damaged bags
        raise BagError(f"cannot open bag {path}: {exc}") from exc
    try:
        yield reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


class BagSequence:
    """Iterates the synchronised, posed RGB-D frames of a ROS 2 bag (sqlite3 or mcap) as ``RGBDFrame``s.

    On construction the bag is opened, the topics are checked and every /tf and
    /tf_static transform is loaded into ``tf_buffer`` (unbounded history), together with
    every camera_info. Iteration pairs colour and depth (and labels, with
    ``labels_topic``) whose header stamps lie within ``slop_ns`` [ns], converts them
    (``depth_scale``: metres per unit of 16UC1 depth), takes the newest camera_info
    stamped no later than the colour stamp + ``slop_ns`` and looks up T_map_camera at
    the colour stamp (interpolated; ``tf_tolerance_ns`` of extrapolation allowed).
    ``camera_frame``: the frame to look up (None: the colour header's frame_id).

    Frames that cannot be built are skipped, never raised: ``skipped`` (a Counter of
    reasons, the SKIP_* constants) and ``problems`` (the first message per reason) are
    reset at the start of each iteration and complete at its end; unmatched and
    duplicate messages are counted there too. Only an unreadable bag raises BagError.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        color_topic: str = COLOR_TOPIC,
        depth_topic: str = DEPTH_TOPIC,
        info_topic: str = INFO_TOPIC,
        map_frame: str = "map",
        camera_frame: str | None = None,
        slop_ns: int = DEFAULT_SLOP_NS,
        labels_topic: str | None = None,
        depth_scale: float = 0.001,
        tf_tolerance_ns: int = 0,
        queue_size: int = 10,
    ):
        self.path = Path(path)
        self.color_topic, self.depth_topic, self.info_topic = color_topic, depth_topic, info_topic
        self.labels_topic = labels_topic
        self.map_frame = map_frame
        self.camera_frame = camera_frame
        self.slop_ns = int(slop_ns)
        self.depth_scale = float(depth_scale)
        self.tf_tolerance_ns = int(tf_tolerance_ns)
        self.queue_size = int(queue_size)
        self.typestore = _typestore()
        self.tf_buffer = TransformBuffer(cache_ns=None)
        self.skipped: collections.Counter[str] = collections.Counter()
        self.problems: dict[str, str] = {}
        # Sorted by stamp: (stamp_ns, intrinsics, or the error message of a bad one).
        self._infos: list[tuple[int, CameraIntrinsics | str]] = []
        self._load_skipped: collections.Counter[str] = collections.Counter()
        self._load_problems: dict[str, str] = {}
        with self._open() as reader:
            self._check_topics(reader)
            self._load_static_data(reader)

    # ------------------------------------------------------------------ bag access

    def _open(self):
        return open_bag(self.path)

    def _messages(self, reader: Any, connections: list) -> Iterator[tuple[Any, int, bytes]]:
        if not connections:  # rosbags reads every connection when given none
            return
        stream = reader.messages(connections=connections)
        while True:
            try:
                item = next(stream)
            except StopIteration:
                return
            except Exception as exc:  # a damaged page or chunk mid-bag
                raise BagError(f"cannot read bag {self.path}: {exc}") from exc
            yield item

    def _check_topics(self, reader: Any) -> None:
        topics = {c.topic: c.msgtype for c in reader.connections}
        wanted = {self.color_topic: IMAGE_TYPE, self.depth_topic: IMAGE_TYPE, self.info_topic: INFO_TYPE}
        if self.labels_topic:
            wanted[self.labels_topic] = IMAGE_TYPE
        for topic, msgtype in wanted.items():
            if topic not in topics:
                raise BagError(f"bag {self.path} has no topic {topic!r} (topics: {sorted(topics)})")
            if topics[topic] != msgtype:
                raise BagError(f"bag {self.path}: topic {topic!r} holds {topics[topic]}, expected {msgtype}")

    def _count(self, counter: collections.Counter, problems: dict, reason: str, message: str) -> None:
        counter[reason] += 1
        problems.setdefault(reason, message)

    def _load_static_data(self, reader: Any) -> None:
        tf_conns = [c for c in reader.connections if c.topic in (TF_TOPIC, TF_STATIC_TOPIC) and c.msgtype == TF_TYPE]
        info_conns = [c for c in reader.connections if c.topic == self.info_topic]
        infos = []
        for conn, _, raw in self._messages(reader, tf_conns + info_conns):
            try:
                msg = self.typestore.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:  # malformed CDR
                self._count(self._load_skipped, self._load_problems, SKIP_UNDECODABLE, f"{conn.topic}: {exc}")
                continue
            if conn.topic == self.info_topic:
                stamp = _stamp_to_ns(msg.header.stamp)
                try:
                    infos.append((stamp, intrinsics_from_camera_info(msg)))
                except CameraInfoError as exc:
                    infos.append((stamp, f"{conn.topic} at {stamp} ns: {exc}"))
                continue
            static = conn.topic == TF_STATIC_TOPIC
            for t in msg.transforms:
                stamp = _stamp_to_ns(t.header.stamp)
                try:
                    tr, q = t.transform.translation, t.transform.rotation
                    T = pose_from_quaternion(np.array([tr.x, tr.y, tr.z]), np.array([q.x, q.y, q.z, q.w]))
                    self.tf_buffer.set_transform(t.header.frame_id, t.child_frame_id, T, stamp, static=static)
                except ValueError as exc:
                    self._count(
                        self._load_skipped,
                        self._load_problems,
                        SKIP_BAD_TF,
                        f"{conn.topic} {t.header.frame_id} -> {t.child_frame_id} at {stamp} ns: {exc}",
                    )
        infos.sort(key=lambda x: x[0])
        self._infos = infos
        self._info_stamps = [stamp for stamp, _ in infos]

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[RGBDFrame]:
        self.skipped = collections.Counter(self._load_skipped)
        self.problems = dict(self._load_problems)
        topics = [self.color_topic, self.depth_topic] + ([self.labels_topic] if self.labels_topic else [])
        sync = ApproximateTimeSync(len(topics), self.slop_ns, self.queue_size)
        with self._open() as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            for conn, _, raw in self._messages(reader, conns):
                try:
                    msg = self.typestore.deserialize_cdr(raw, conn.msgtype)
                except Exception as exc:  # malformed CDR
                    self._count(self.skipped, self.problems, SKIP_UNDECODABLE, f"{conn.topic}: {exc}")
                    continue
                for stamp, items in sync.add(topics.index(conn.topic), _stamp_to_ns(msg.header.stamp), msg):
                    try:
                        yield self._build(stamp, items)
                    except _Skip as skip:
                        self._count(self.skipped, self.problems, skip.reason, str(skip))
        stats = sync.stats
        if stats["dropped"] + sync.pending:
            self._count(
                self.skipped, self.problems, SKIP_UNSYNCED, f"no partner within {self.slop_ns} ns for some image messages"
            )
            self.skipped[SKIP_UNSYNCED] += stats["dropped"] + sync.pending - 1
        if stats["duplicates"]:
            self._count(self.skipped, self.problems, SKIP_DUPLICATE, "image messages repeating a stamp of their topic")
            self.skipped[SKIP_DUPLICATE] += stats["duplicates"] - 1

    def _camera_info(self, stamp: int) -> CameraIntrinsics:
        i = bisect.bisect_right(self._info_stamps, stamp + self.slop_ns)
        latest = self._infos[i - 1][1] if i else None
        if latest is None:
            raise _Skip(SKIP_NO_INFO, f"no {self.info_topic} message at or before {stamp} ns")
        if isinstance(latest, str):
            raise _Skip(SKIP_BAD_INFO, latest)
        return latest

    def _build(self, stamp: int, items: tuple) -> RGBDFrame:
        color_msg, depth_msg = items[0], items[1]
        where = f"frame at {stamp} ns"
        intrinsics = self._camera_info(stamp)
        try:
            color = color_to_rgb(color_msg)
            depth = depth_to_metres(depth_msg, self.depth_scale)
            labels = None
            if len(items) > 2:
                label_msg = items[2]
                if label_msg.encoding not in ("mono16", "16UC1", "mono8", "8UC1"):
                    raise ImageEncodingError(f"label image encoding {label_msg.encoding!r} is not mono16 / mono8")
                labels = image_to_array(label_msg).astype(np.uint16)
        except ImageEncodingError as exc:
            raise _Skip(SKIP_ENCODING, f"{where}: {exc}") from exc
        for name, image in (("colour", color), ("depth", depth), ("label", labels)):
            if image is not None and image.shape[:2] != intrinsics.shape:
                raise _Skip(
                    SKIP_SIZE,
                    f"{where}: {name} image is {image.shape[1]}x{image.shape[0]} but camera_info says "
                    f"{intrinsics.width}x{intrinsics.height}",
                )
        camera_frame = self.camera_frame or color_msg.header.frame_id
        if not camera_frame:
            raise _Skip(SKIP_NO_FRAME_ID, f"{where}: colour image has an empty frame_id and no camera_frame was given")
        try:
            T_map_camera = self.tf_buffer.lookup(self.map_frame, camera_frame, stamp, self.tf_tolerance_ns)
        except TransformError as exc:
            raise _Skip(SKIP_NO_POSE, f"{where}: {exc}") from exc
        try:
            return RGBDFrame(
                color=color,
                depth=depth,
                intrinsics=intrinsics,
                T_world_camera=T_map_camera,
                stamp_ns=stamp,
                frame_id=camera_frame,
                labels=labels,
            )
        except ValueError as exc:
            raise _Skip(SKIP_INVALID, f"{where}: {exc}") from exc
