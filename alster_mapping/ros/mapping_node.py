"""MappingNode: the live ROS 2 semantic mapper (``ros2 run alster_mapping mapping_node``).

Extends ``MapServerNode`` (the map, ``~/semantic_cloud``, the map services, save on
shutdown) with the live pipeline:

Inputs (topic names are parameters, relative to the node's namespace):

- ``color_topic`` (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8), ``depth_topic``
  (16UC1 / mono16 in ``depth_scale`` metres per unit, usually millimetres, or 32FC1 in
  metres; registered to colour) and, in ``label_fusion`` mode, ``label_topic`` (mono8 /
  mono16 / 16UC1 raw label ids of the label space, e.g. NYU40 from any 2D segmenter):
  approximate-time synchronised within ``sync_slop`` seconds (message_filters when
  importable, else ``core.time_sync.ApproximateTimeSync``). Best-effort QoS, so both
  sensor-data and reliable publishers match.
- ``camera_info_topic`` (sensor_msgs/CameraInfo): the latest one gives the intrinsics.
- The camera pose at the image stamp, by ``pose_source``: ``tf`` (the camera optical
  frame, ``camera_frame`` or the image's frame_id, in the map frame ``frame_id``; via
  tf2_ros when importable, else /tf and /tf_static into ``core.tf_buffer.TransformBuffer``
  when tf2_msgs is importable) or a pose topic ``pose_topic`` (``pose``:
  geometry_msgs/PoseStamped, ``odometry``: nav_msgs/Odometry, ``transform``:
  geometry_msgs/TransformStamped) in the map frame, interpolated to the image stamp and
  composed with the fixed ``camera_extrinsic`` (pose of the camera optical frame in the
  pose's body frame).

Scheduling: callbacks only decode stamps, synchronise and enqueue; a bounded queue
(``queue_size``, drop oldest, counted) feeds one worker thread that converts the images,
looks up the pose (waiting up to ``pose_timeout``), runs ``OnlineMapper.step`` and
publishes the frame's outputs. Inputs, poses, services and each timer have their own
callback groups under a ``MultiThreadedExecutor``, so services answer while the network runs.

Outputs (besides ``~/semantic_cloud``):

- ``~/semantic_cloud_update`` (PointCloud2, same fields): the voxels each frame updated.
- ``~/markers`` (visualization_msgs/MarkerArray, latched): a cube list of the voxels
  coloured by class plus a legend, every ``markers_period`` seconds when the map changed.
- ``~/label_image`` (sensor_msgs/Image rgb8, when ``publish_label_image``): the map's
  class colours seen from each frame's pixels.
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): queue depth and drops, frames
  received / mapped / skipped by reason, per-stage latency, map size, process memory.

Bad input (unknown encodings, size mismatches, missing camera info, no valid depth, no
pose at the stamp, out-of-order or duplicate stamps, huge images, label ids outside the
label space) is logged (throttled per kind), counted (``skipped.<reason>``) and the frame
skipped; the node keeps running and the map is untouched. A missing or corrupt
checkpoint stops the node at start-up with one clear line and exit code 1.
"""

from __future__ import annotations

import array
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from ..core.config import flatten, param, section
from ..core.geometry import pose_from_quaternion
from ..core.image_codec import CameraInfoError, ImageEncodingError, array_to_image_fields, intrinsics_from_camera_info
from ..core.frame import RGBDFrame
from ..core.time_sync import ApproximateTimeSync
from ..map.voxel_map import SemanticVoxelMap
from ..pipeline.online_mapper import OnlineMapper
from . import map_server_node
from .cloud import arrays_to_cloud
from .diagnostics import ERROR, OK, WARN, diagnostic_array, diagnostic_status, process_memory_bytes
from .inputs import POSE_CHILD, ImageConverter, PoseSource, SkipFrame, pose_message_edge, stamp_to_ns, transform_to_matrix
from .map_server_node import CLOUD_QOS, NODE_NAME, MapServerNode
from .outputs import arrays_of_keys, frame_label_image, voxel_markers
from .params import ParameterError
from .worker import Counters, FrameQueue, LatencyStats, Throttle

POSE_SOURCES = ("tf", "pose", "odometry", "transform")

# Parameters read once at start-up (they build the mapper); changing them needs a restart.
FIXED_ENGINE_KEYS = ("mode", "alster.checkpoint")
FIXED_ENGINE_PREFIXES = ("model.",)


@dataclass
class CameraExtrinsicConfig:
    """Pose of the camera optical frame in the pose topic's body frame (T_body_camera; pose topics only)."""

    x: float = param(0.0, "translation x [m]", min=-1000.0, max=1000.0)
    y: float = param(0.0, "translation y [m]", min=-1000.0, max=1000.0)
    z: float = param(0.0, "translation z [m]", min=-1000.0, max=1000.0)
    qx: float = param(0.0, "rotation quaternion x", min=-1.0, max=1.0)
    qy: float = param(0.0, "rotation quaternion y", min=-1.0, max=1.0)
    qz: float = param(0.0, "rotation quaternion z", min=-1.0, max=1.0)
    qw: float = param(1.0, "rotation quaternion w (x, y, z, w need not be normalised, but not all zero)", min=-1.0, max=1.0)


@dataclass
class MappingNodeConfig:
    """Parameters of the live pipeline (ROS-only): topics, synchronisation, poses, scheduling, outputs."""

    color_topic: str = param("camera/color/image_raw", "colour image topic (rgb8, bgr8, rgba8, bgra8, mono8)")
    depth_topic: str = param(
        "camera/aligned_depth_to_color/image_raw", "depth image topic registered to colour (16UC1 / mono16 or 32FC1 metres)"
    )
    camera_info_topic: str = param("camera/color/camera_info", "CameraInfo of the colour (and registered depth) images")
    label_topic: str = param(
        "labels/image_raw", "label_fusion mode: label image topic (mono8 / mono16 / 16UC1 raw label ids, aligned with colour)"
    )
    depth_scale: float = param(0.001, "metres per unit of 16UC1 / mono16 depth (0.001 = millimetres)", min=1e-6, max=1.0)
    sync_slop: float = param(0.02, "largest stamp difference of synchronised colour / depth / label images [s]", min=0.0, max=10.0)
    sync_queue_size: int = param(10, "unmatched messages kept per input stream while synchronising", min=1, max=1000)
    pose_source: str = param(
        "tf", "where camera poses come from: tf, or a pose_topic of type pose (PoseStamped), odometry or transform", choices=POSE_SOURCES
    )
    pose_topic: str = param("camera_pose", "pose topic (pose_source pose, odometry or transform), in the map frame frame_id")
    camera_frame: str = param("", "tf: the camera optical frame looked up in frame_id ('' = the colour image's frame_id)")
    pose_timeout: float = param(0.1, "how long the worker waits for a pose at the image stamp [s]", min=0.0, max=10.0)
    pose_tolerance: float = param(
        0.05, "pose topics / own TF buffer: largest gap [s] to the nearest pose when the image stamp lies outside the pose history", min=0.0, max=10.0
    )
    pose_cache: float = param(10.0, "pose history kept [s]; a stamp jump back by more than this resets the stamp order", min=0.1, max=3600.0)
    camera_extrinsic: CameraExtrinsicConfig = section(CameraExtrinsicConfig)
    queue_size: int = param(2, "frames waiting for the worker; when full the oldest is dropped (counted)", min=1, max=1000)
    max_image_pixels: int = param(8_294_400, "frames with more pixels than this are skipped (default: 3840x2160)", min=1, max=2**31 - 1)
    publish_update: bool = param(True, "publish ~/semantic_cloud_update: the voxels each frame updated")
    markers_period: float = param(2.0, "seconds between ~/markers publications when the map changed; 0 = off", min=0.0, max=3600.0)
    markers_max_voxels: int = param(100_000, "~/markers shows at most this many voxels (thinned by a stride)", min=1, max=10_000_000)
    publish_label_image: bool = param(False, "publish ~/label_image: the map's class colours at each frame's pixels (debugging)")
    diagnostics_period: float = param(1.0, "seconds between /diagnostics messages", min=0.05, max=3600.0)
    log_throttle: float = param(5.0, "each kind of skipped-frame warning is logged at most once per this many seconds", min=0.0, max=3600.0)


NODE_CONFIG_KEYS = frozenset(flatten(MappingNodeConfig()))
"""Parameter names of the pipeline (all fixed while the node runs: they set up subscriptions and threads)."""

TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
TF_STATIC_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
"""/tf_static is latched: transient local, so static transforms published before the node started arrive."""

UPDATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class FrameMessages:
    """One synchronised input tuple waiting for the worker (messages are decoded there, not in the callback)."""

    color: Any
    depth: Any
    labels: Any | None
    stamp_ns: int
    received: float  # time.monotonic() when the tuple completed


class MappingNode(MapServerNode):
    """The live mapper: synchronised RGB-D (+ labels) and poses in, the semantic map out.

    node_name: ROS node name. voxel_map: map to write into (default: created or loaded
    from the parameters). model: an ``AlsterModel`` to use instead of the checkpoint /
    ``model.*`` parameters. Other keyword arguments go to ``rclpy.node.Node``. Raises
    ValueError (``ParameterError``, ``CheckpointError``) on invalid parameters or a
    missing / corrupt checkpoint; the node is destroyed first.
    """

    def __init__(self, node_name: str = NODE_NAME, *, voxel_map: SemanticVoxelMap | None = None, model=None, **kwargs):
        super().__init__(node_name, voxel_map=voxel_map, **kwargs)
        self.node_config: MappingNodeConfig
        try:
            self._setup(model)
        except BaseException:
            self.shutdown()
            self.destroy_node()
            raise

    # -- hooks of MapServerNode -------------------------------------------------------------

    def config_sections(self) -> list[tuple[str, object]]:
        """The engine's and map server's configs plus ``MappingNodeConfig`` (attribute ``node_config``)."""
        return super().config_sections() + [("node_config", MappingNodeConfig())]

    def fixed_parameter(self, name: str) -> bool:
        """The map geometry, the engine's mode / model and every pipeline parameter are fixed while running."""
        return (
            super().fixed_parameter(name)
            or name in FIXED_ENGINE_KEYS
            or name.startswith(FIXED_ENGINE_PREFIXES)
            or name in NODE_CONFIG_KEYS
        )

    def _apply_parameters(self, parameters) -> None:
        super()._apply_parameters(parameters)
        # Ranges apply from the next frame on (the mapper reads its config per frame).
        mapper = getattr(self, "mapper", None)
        if mapper is not None:
            mapper.config = self.config
            if mapper.fusion is not None:
                mapper.fusion.config = self.config.label_fusion

    def check_loaded_map(self, loaded: SemanticVoxelMap) -> str | None:
        """A map of the other mode's features cannot be continued by this mode."""
        mode = self.config.mode
        if mode == "alster" and loaded.feature_kind == "label_evidence":
            return "the file holds label-fusion evidence but the node runs mode 'alster'"
        if mode == "label_fusion" and loaded.feature_kind == "learned":
            return "the file holds learned ALSTER features but the node runs mode 'label_fusion'"
        return None

    def on_map_replaced(self) -> None:
        """A cleared or loaded map starts a new sequence: forget the last stamp."""
        self._last_stamp = None

    def shutdown(self) -> None:
        """Stop the worker thread (waits for the frame in progress, at most 10 s)."""
        stop = getattr(self, "_stop", None)
        if stop is None:
            return
        stop.set()
        self.queue.close()
        worker = getattr(self, "worker", None)
        if worker is not None and worker.is_alive():
            worker.join(timeout=10.0)

    def stats(self) -> dict:
        """Map statistics plus ``pipeline``: frame counters, queue and synchroniser state."""
        stats = super().stats()
        if hasattr(self, "counters"):
            stats["pipeline"] = self.pipeline_stats()
        return stats

    # -- start-up ---------------------------------------------------------------------------------

    def _setup(self, model) -> None:
        cfg = self.node_config
        log = self.get_logger()
        self._stop = threading.Event()
        self.counters = Counters()
        self.latency = LatencyStats()
        self.queue = FrameQueue(cfg.queue_size)
        self.throttle = Throttle(cfg.log_throttle)
        self._last_stamp: int | None = None
        self._camera_info = None
        self._intrinsics_key = None
        self._intrinsics = None
        self._markers_version = 0
        self._reported = (0, 0)  # (skipped, dropped) at the last diagnostics message
        try:
            e = cfg.camera_extrinsic
            self.T_body_camera = pose_from_quaternion(np.array([e.x, e.y, e.z]), np.array([e.qx, e.qy, e.qz, e.qw]))
        except ValueError as exc:
            raise ParameterError([f"camera_extrinsic: {exc}"]) from exc

        # The engine: builds or loads the model (a missing / corrupt checkpoint raises here).
        self.mapper = OnlineMapper(self.config, model=model, voxel_map=self.map)

        notices = []
        self.converter = ImageConverter(cfg.depth_scale)
        if self.converter.backend == "numpy":
            notices.append("cv_bridge is not importable: images are converted with numpy (same result)")

        self.input_group = MutuallyExclusiveCallbackGroup()
        self.pose_group = MutuallyExclusiveCallbackGroup()
        self.output_group = MutuallyExclusiveCallbackGroup()
        self.diagnostics_group = MutuallyExclusiveCallbackGroup()
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=max(10, cfg.sync_queue_size), reliability=ReliabilityPolicy.BEST_EFFORT
        )
        topics = [cfg.color_topic, cfg.depth_topic] + ([cfg.label_topic] if self.config.mode == "label_fusion" else [])
        self._setup_sync(topics, qos, notices)
        self.create_subscription(CameraInfo, cfg.camera_info_topic, self._on_camera_info, qos, callback_group=self.input_group)
        self._setup_pose_source(notices)

        self.update_pub = self.create_publisher(PointCloud2, "~/semantic_cloud_update", UPDATE_QOS)
        self.markers_pub = self.create_publisher(MarkerArray, "~/markers", CLOUD_QOS)
        self.label_image_pub = self.create_publisher(Image, "~/label_image", UPDATE_QOS) if cfg.publish_label_image else None
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if cfg.markers_period > 0:
            self.create_timer(cfg.markers_period, self._on_markers_timer, self.output_group, clock=self.steady_clock)
        self.create_timer(cfg.diagnostics_period, self._on_diagnostics_timer, self.diagnostics_group, clock=self.steady_clock)

        self.worker = threading.Thread(target=self._worker_loop, name="alster_mapping_worker", daemon=True)
        self.worker.start()
        for notice in notices:
            log.info(notice)
        inputs = ", ".join(self.resolve_topic_name(t) for t in topics)
        log.info(
            f"mode {self.config.mode!r}: mapping {inputs} with poses from "
            f"{self.pose_backend or 'nowhere (see the error above)'}; map frame {self.server_config.frame_id!r}"
        )

    def _setup_sync(self, topics: list[str], qos: QoSProfile, notices: list[str]) -> None:
        cfg = self.node_config
        self._sync_lock = threading.Lock()
        try:
            import message_filters  # noqa: PLC0415 (optional dependency)
        except ImportError:
            message_filters = None
        if message_filters is not None:
            subs = [
                message_filters.Subscriber(self, Image, t, qos_profile=qos, callback_group=self.input_group) for t in topics
            ]
            self._sync = message_filters.ApproximateTimeSynchronizer(subs, cfg.sync_queue_size, cfg.sync_slop)
            self._sync.registerCallback(self._on_synced)
            self._mf_subscribers = subs  # keep them alive
            self.sync_backend = "message_filters"
            return
        self._sync = ApproximateTimeSync(len(topics), int(round(cfg.sync_slop * 1e9)), cfg.sync_queue_size)
        for i, topic in enumerate(topics):
            self.create_subscription(Image, topic, partial(self._on_image, i), qos, callback_group=self.input_group)
        self.sync_backend = "alster_mapping.core.time_sync"
        notices.append("message_filters is not importable: images are synchronised by alster_mapping.core.time_sync")

    def _setup_pose_source(self, notices: list[str]) -> None:
        cfg = self.node_config
        self.pose_source = PoseSource(int(cfg.pose_cache * 1e9), int(round(cfg.pose_tolerance * 1e9)))
        self._tf2 = None
        self.pose_backend: str | None = None
        if cfg.pose_source != "tf":
            msg_type = {"pose": PoseStamped, "odometry": Odometry, "transform": TransformStamped}[cfg.pose_source]
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
            self.create_subscription(msg_type, cfg.pose_topic, self._on_pose_message, qos, callback_group=self.pose_group)
            self.pose_backend = f"{msg_type.__name__} topic {self.resolve_topic_name(cfg.pose_topic)}"
            return
        try:
            import tf2_ros  # noqa: PLC0415 (optional dependency)

            buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cfg.pose_cache), node=self)
            self._tf2 = (tf2_ros, buffer, tf2_ros.TransformListener(buffer, self, spin_thread=False))
            self.pose_backend = "TF (tf2_ros)"
            return
        except ImportError:
            pass
        try:
            from tf2_msgs.msg import TFMessage  # noqa: PLC0415 (optional dependency)
        except ImportError:
            self.get_logger().error(
                "pose_source 'tf' needs tf2_ros or tf2_msgs, and neither is importable: every frame is "
                "skipped (pose_unavailable); publish the camera pose on a topic and set pose_source to "
                "pose, odometry or transform"
            )
            return
        self.create_subscription(TFMessage, "/tf", partial(self._on_tf, False), TF_QOS, callback_group=self.pose_group)
        self.create_subscription(TFMessage, "/tf_static", partial(self._on_tf, True), TF_STATIC_QOS, callback_group=self.pose_group)
        self.pose_backend = "TF (/tf, /tf_static into alster_mapping.core.tf_buffer)"
        notices.append("tf2_ros is not importable: /tf and /tf_static are buffered by alster_mapping.core.tf_buffer")

    # -- callbacks (never block: no decoding, no mapping) --------------------------------------------

    def _on_image(self, stream: int, msg: Image) -> None:
        self.counters.add(("received.color", "received.depth", "received.labels")[stream])
        with self._sync_lock:
            matched = self._sync.add(stream, stamp_to_ns(msg.header.stamp), msg)
        for _, msgs in matched:
            self._on_synced(*msgs)

    def _on_synced(self, color: Image, depth: Image, labels: Image | None = None) -> None:
        self.counters.add("received.frames")
        item = FrameMessages(color, depth, labels, stamp_to_ns(color.header.stamp), time.monotonic())
        if not self.queue.put(item):
            self._warn("queue_full", "frames arrive faster than they are mapped: dropped the oldest queued frame")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.counters.add("received.camera_info")
        self._camera_info = msg  # a reference swap: the worker reads whichever is current

    def _on_pose_message(self, msg: Any) -> None:
        self.counters.add("received.poses")
        map_frame = self.server_config.frame_id
        try:
            parent, T, stamp = pose_message_edge(msg, self.node_config.pose_source)
        except ValueError as exc:
            self.counters.add("bad_poses")
            self._warn("bad_pose", f"ignored a pose message: {exc}")
            return
        if (parent or map_frame).lstrip("/") != map_frame.lstrip("/"):
            self.counters.add("bad_poses")
            self._warn("pose_frame", f"ignored a pose in frame {parent!r}: poses must be given in the map frame {map_frame!r}")
            return
        self.pose_source.set_transform(map_frame, POSE_CHILD, T, stamp)

    def _on_tf(self, static: bool, msg: Any) -> None:
        self.counters.add("received.tf_static" if static else "received.tf")
        bad = self.pose_source.add_tf_message(msg, static)
        if bad:
            self.counters.add("bad_poses", bad)
            self._warn("bad_tf", f"ignored {bad} unusable transform(s) on {'/tf_static' if static else '/tf'}")

    # -- the worker ---------------------------------------------------------------------------------

    def _worker_loop(self) -> None:
        """Map queued frames until shutdown; a bad frame is counted and skipped, never fatal."""
        while not self._stop.is_set():
            item = self.queue.get(timeout=0.2)
            if item is None:
                continue
            try:
                self._process(item)
            except SkipFrame as exc:
                self.counters.add(f"skipped.{exc.reason}")
                self._warn(exc.reason, f"skipped the frame at {item.stamp_ns / 1e9:.3f} s: {exc}")
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything a frame causes
                self.counters.add("skipped.error")
                self._warn("error", f"skipped the frame at {item.stamp_ns / 1e9:.3f} s after an error: {exc!r}", "error")

    def _process(self, item: FrameMessages) -> None:
        """Convert, pose, map and publish one frame; raises SkipFrame for bad input (map untouched)."""
        cfg = self.node_config
        start = time.perf_counter()
        timings: dict[str, float] = {"queue_wait": time.monotonic() - item.received}
        stamp = item.stamp_ns
        for what, msg in (("colour", item.color), ("depth", item.depth), ("label", item.labels)):
            if msg is not None and int(msg.height) * int(msg.width) > cfg.max_image_pixels:
                raise SkipFrame(
                    "image_too_large", f"{what} image {msg.width}x{msg.height} exceeds max_image_pixels {cfg.max_image_pixels}"
                )
        self._check_stamp(stamp)

        info = self._camera_info
        if info is None:
            raise SkipFrame("missing_camera_info", f"no CameraInfo received on {self.node_config.camera_info_topic}")
        try:
            intrinsics = self._intrinsics_of(info)
        except CameraInfoError as exc:
            raise SkipFrame("bad_camera_info", str(exc)) from exc
        try:
            color = self.converter.color(item.color)
            depth = self.converter.depth(item.depth)
            labels = self.converter.labels(item.labels) if item.labels is not None else None
        except ImageEncodingError as exc:
            raise SkipFrame("bad_encoding", str(exc)) from exc
        shapes = {"colour": color.shape[:2], "depth": depth.shape, "camera_info": intrinsics.shape}
        if labels is not None:
            shapes["label"] = labels.shape
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{k} {w}x{h}" for k, (h, w) in shapes.items())
            raise SkipFrame("size_mismatch", f"image sizes differ: {listing}")
        if not bool(np.any(np.isfinite(depth) & (depth > 0))):
            raise SkipFrame("no_valid_depth", "the depth image has no finite positive value")
        timings["convert"] = time.perf_counter() - start

        clock = time.perf_counter()
        T_world_camera = self._camera_pose(stamp, cfg.camera_frame or str(item.color.header.frame_id))
        timings["pose"] = time.perf_counter() - clock
        try:
            frame = RGBDFrame(color, depth, intrinsics, T_world_camera, stamp, str(item.color.header.frame_id), labels)
        except ValueError as exc:
            raise SkipFrame("invalid_frame", str(exc)) from exc

        try:
            result = self.mapper.step(frame)
        except ValueError as exc:  # e.g. label ids outside the label space; raised before the map changes
            raise SkipFrame("rejected", str(exc)) from exc
        self._last_stamp = stamp
        self.mark_changed()
        for stage, seconds in result.timings.items():
            timings[f"map.{stage}"] = seconds

        clock = time.perf_counter()
        self._publish_frame_outputs(frame, result.keys)
        timings["publish"] = time.perf_counter() - clock
        timings["total"] = time.perf_counter() - start
        # Stamp to map update, on the node's clock (sim time with use_sim_time).
        timings["age"] = max(0.0, (self.get_clock().now().nanoseconds - stamp) / 1e9)
        self.latency.add(timings)
        self.counters.add("mapped")

    def _check_stamp(self, stamp: int) -> None:
        """Stamps must increase; a jump back beyond ``pose_cache`` (a restarted bag) starts over."""
        last = self._last_stamp
        if last is None or stamp > last:
            return
        if last - stamp > self.node_config.pose_cache * 1e9:
            self.get_logger().warning(
                f"image stamps jumped back {(last - stamp) / 1e9:.1f} s: restarting the stamp order and the pose buffer"
            )
            self.pose_source.clear()
            self._last_stamp = None
            return
        if stamp == last:
            raise SkipFrame("duplicate_stamp", f"a frame at {stamp / 1e9:.3f} s was mapped already")
        raise SkipFrame("out_of_order", f"stamp {stamp / 1e9:.3f} s is older than the last mapped {last / 1e9:.3f} s")

    def _intrinsics_of(self, info: CameraInfo):
        key = (tuple(info.k), int(info.width), int(info.height))
        if key != self._intrinsics_key:
            self._intrinsics = intrinsics_from_camera_info(info)
            self._intrinsics_key = key
        return self._intrinsics

    def _camera_pose(self, stamp: int, camera_frame: str) -> np.ndarray:
        """T_map_camera (4, 4) at ``stamp`` [ns]; raises SkipFrame when there is none."""
        cfg = self.node_config
        map_frame = self.server_config.frame_id
        if cfg.pose_source != "tf":
            return self.pose_source.lookup(map_frame, POSE_CHILD, stamp, cfg.pose_timeout) @ self.T_body_camera
        if not camera_frame:
            raise SkipFrame("pose_unavailable", "the colour image has no frame_id and camera_frame is empty")
        if self._tf2 is not None:
            tf2_ros, buffer, _ = self._tf2
            try:
                t = buffer.lookup_transform(
                    map_frame, camera_frame, Time(nanoseconds=stamp), timeout=Duration(seconds=cfg.pose_timeout)
                )
            except tf2_ros.TransformException as exc:
                raise SkipFrame("pose_unavailable", f"TF {map_frame} <- {camera_frame}: {exc}") from exc
            return transform_to_matrix(t.transform, f"TF {map_frame} <- {camera_frame}")
        if self.pose_backend is None:
            raise SkipFrame("pose_unavailable", "no TF implementation (tf2_ros / tf2_msgs) is importable")
        return self.pose_source.lookup(map_frame, camera_frame, stamp, cfg.pose_timeout)

    def _publish_frame_outputs(self, frame: RGBDFrame, keys) -> None:
        """The frame's updated voxels and (optionally) its label image, only when someone listens."""
        cfg, server = self.node_config, self.server_config
        stamp = Time(nanoseconds=frame.stamp_ns).to_msg()
        if cfg.publish_update and self.update_pub.get_subscription_count() > 0:
            arrays = arrays_of_keys(self.map, keys)
            self.update_pub.publish(arrays_to_cloud(arrays, server.frame_id, stamp, server.color_by))
        if self.label_image_pub is not None and self.label_image_pub.get_subscription_count() > 0:
            ranges = self.config.label_fusion if self.config.mode == "label_fusion" else self.config.alster
            image = frame_label_image(self.map, frame.depth, frame.intrinsics, frame.T_world_camera, ranges.max_range, ranges.min_range)
            fields = array_to_image_fields(image, "rgb8")
            fields["data"] = array.array("B", fields["data"].tobytes())  # stored as is, not checked per element
            msg = Image(**fields)
            msg.header.stamp, msg.header.frame_id = stamp, frame.frame_id
            self.label_image_pub.publish(msg)

    # -- timers -------------------------------------------------------------------------------------

    def _on_markers_timer(self) -> None:
        version = self._version
        if version == self._markers_version:
            return
        arrays = self.map.to_arrays()
        self.markers_pub.publish(
            voxel_markers(
                arrays, self.map, self.server_config.frame_id, self.get_clock().now().to_msg(), self.node_config.markers_max_voxels
            )
        )
        self._markers_version = version

    def pipeline_stats(self) -> dict:
        """Counters of the pipeline: received / mapped / skipped frames, queue, synchroniser, latency [ms]."""
        counts = self.counters.snapshot()
        skipped = {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith("skipped.")}
        received = {k.split(".", 1)[1]: v for k, v in counts.items() if k.startswith("received.")}
        sync = dict(self._sync.stats) if isinstance(self._sync, ApproximateTimeSync) else {}
        return {
            "mode": self.config.mode,
            "received": received,
            "mapped": counts.get("mapped", 0),
            "skipped": skipped,
            "skipped_total": sum(skipped.values()),
            "bad_poses": counts.get("bad_poses", 0),
            "queue": {
                "depth": len(self.queue),
                "capacity": self.queue.capacity,
                "max_depth": self.queue.max_depth,
                "dropped": self.queue.dropped,
            },
            "sync": sync,
            "latency": self.latency.summary(),
        }

    def _on_diagnostics_timer(self) -> None:
        stats = self.pipeline_stats()
        skipped, dropped = stats["skipped_total"], stats["queue"]["dropped"]
        if self.pose_backend is None:
            level, message = ERROR, "no pose source: every frame is skipped"
        elif (skipped, dropped) != self._reported:
            level = WARN
            message = f"{stats['mapped']} frames mapped; {skipped} skipped, {dropped} dropped (some since the last report)"
        else:
            level, message = OK, f"{stats['mapped']} frames mapped; {skipped} skipped, {dropped} dropped"
        self._reported = (skipped, dropped)
        with self.map.lock:
            stats["map"] = {"voxels": len(self.map), "blocks": self.map.num_blocks, "bytes": self.map.nbytes()}
        stats["process"] = {"memory_bytes": process_memory_bytes()}
        stats["backends"] = {
            "sync": self.sync_backend,
            "images": self.converter.backend,
            "poses": self.pose_backend or "none",
        }
        status = diagnostic_status(f"{self.get_fully_qualified_name()}: mapping", level, message, stats, self.get_fully_qualified_name())
        self.diagnostics_pub.publish(diagnostic_array([status], self.get_clock().now().to_msg()))

    # -- logging ------------------------------------------------------------------------------------

    def _warn(self, kind: str, message: str, level: str = "warning") -> None:
        """Log ``message`` at most once per ``log_throttle`` seconds per ``kind``, saying how many were held back."""
        held = self.throttle(kind)
        if held is None:
            return
        suffix = f" ({held} more like it since the last report)" if held else ""
        self._log(level, message + suffix)


def main(args: list[str] | None = None) -> int:
    """Run the mapping node until Ctrl-C / SIGTERM; returns the exit code (1 on start-up errors)."""
    return map_server_node.main(args, MappingNode)


__all__ = ["CameraExtrinsicConfig", "MappingNode", "MappingNodeConfig", "main"]

if __name__ == "__main__":
    sys.exit(main())
