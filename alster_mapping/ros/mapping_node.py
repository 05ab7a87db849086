"""MappingNode: the live ROS 2 semantic mapper (``ros2 run alster_mapping mapping_node``).

Extends ``MapServerNode`` (the map, ``~/semantic_cloud``, the map services, save on
shutdown) with the live pipeline:

Inputs (topic names are parameters, relative to the node's namespace):

- ``color_topic`` (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8), ``depth_topic``
  (16UC1 / mono16 in ``depth_scale`` metres per unit, usually millimetres, or 32FC1 in
  metres; registered to colour) and, in ``label_fusion`` mode, ``label_topic`` (mono8 /
  mono16 / 16UC1 raw label ids of the label space, e.g. NYU40 from any 2D segmenter).
  Subscribed raw (serialized bytes, best-effort): a callback reads only the header
  (``raw_image``), checks the stamp and the size, and hands the bytes to the
  approximate-time synchroniser (``core.time_sync``, within ``sync_slop`` seconds).
  Pixels are decoded only for frames the worker maps.
- ``camera_info_topic`` (sensor_msgs/CameraInfo): the latest one gives the intrinsics.
- The camera pose at the image stamp, by ``pose_source``: ``tf`` (the camera optical
  frame, ``camera_frame`` or the image's frame_id, in the map frame ``frame_id``; via
  tf2_ros when importable, else /tf and /tf_static into ``core.tf_buffer.TransformBuffer``
  when tf2_msgs is importable) or a pose topic ``pose_topic`` (``pose``:
  geometry_msgs/PoseStamped, ``odometry``: nav_msgs/Odometry, ``transform``:
  geometry_msgs/TransformStamped) in the map frame, interpolated to the image stamp
  (never across gaps over ``pose_max_gap``) and composed with the fixed
  ``camera_extrinsic`` (pose of the camera optical frame in the pose's body frame).

Time (``stamp_guard``): image, pose and TF stamps more than ``max_stamp_ahead`` ahead of
the node's clock are rejected and counted; a stamp more than ``time_jump_threshold``
older than the newest of its stream (a restarted bag) restarts the synchroniser, the pose
buffer and the stamp order, so mapping resumes by itself.

Scheduling ("drop before you convert"): synchronised frames go to a slot of
``queue_size`` frames (default 1: the newest; a newer frame replaces a waiting one and
is counted as superseded) that feeds one worker thread. The worker decodes the images,
looks up the pose (waiting up to ``pose_timeout``), runs ``OnlineMapper.step`` and
publishes the frame's outputs, so its latency is one step plus at most one input
period. A watchdog restarts a worker thread that died and, when one frame takes longer
than ``watchdog_timeout``, reports it and ends the node with exit code 3. Every callback
runs on one executor thread (``map_server_node.main``); they only parse, count and hand
over, so a service call that takes long (saving a large map) pauses the intake of
images for its duration, never the worker. The callback groups (reentrant for inputs and
poses, which are thread-safe) keep the node correct under a multi-threaded executor too.

Outputs (besides ``~/semantic_cloud``):

- ``~/semantic_cloud_update`` (PointCloud2, same fields): the voxels each frame updated.
- ``~/markers`` (visualization_msgs/MarkerArray, latched): a cube list of the voxels
  coloured by class plus a legend, every ``markers_period`` seconds when the map changed
  and someone subscribes.
- ``~/label_image`` (sensor_msgs/Image rgb8, when ``publish_label_image``): the map's
  class colours seen from each frame's pixels.
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): messages received, rejected by
  reason, frames mapped / superseded / skipped by reason with the latest reason's text,
  time jumps, the worker's state, per-stage latency, map size, process memory.

Bad input never stops the node or touches the map: a rejected message or skipped frame
is counted under its reason, logged (throttled per kind) and dropped. A missing or
corrupt checkpoint stops the node at start-up with one clear line and exit code 1.
"""

from __future__ import annotations

import array
import sys
import threading
import time
from functools import partial
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from ..core.downscale import downscale_images
from ..core.frame import RGBDFrame
from ..core.geometry import pose_from_quaternion
from ..core.image_codec import CameraInfoError, ImageEncodingError, array_to_image_fields, intrinsics_from_camera_info
from ..map.voxel_map import SemanticVoxelMap
from ..pipeline.online_mapper import OnlineMapper
from . import map_server_node
from .cloud import arrays_to_cloud
from .diagnostics import ERROR, OK, WARN, diagnostic_array, diagnostic_status, process_memory_bytes
from .frame_intake import IMAGE_STREAMS, FrameIntake, FrameMessages
from .inputs import POSE_CHILD, ImageConverter, PoseSource, SkipFrame, pose_message_edge, stamp_to_ns, transform_to_matrix
from .map_server_node import CLOUD_QOS, EXIT_WATCHDOG, NODE_NAME, OUTPUT_EVENTS, MapServerNode
from .node_config import NODE_CONFIG_KEYS, POSE_SOURCES, CameraExtrinsicConfig, MappingNodeConfig
from .outputs import arrays_of_keys, frame_label_image, voxel_markers
from .params import ParameterError
from .watchdog import DEAD, STALLED, Heartbeat
from .worker import Counters, LatencyStats, Throttle

# Parameters read once at start-up (they build the mapper); changing them needs a restart.
FIXED_ENGINE_KEYS = ("mode", "alster.checkpoint")
FIXED_ENGINE_PREFIXES = ("model.",)

WATCHDOG_PERIOD = 1.0
"""Seconds between two checks of the worker thread."""
MAX_WORKER_RESTARTS = 5
"""A worker thread that dies more often than this is not restarted again: the node exits (code 3)."""

TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
TF_STATIC_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
"""/tf_static is latched: transient local, so static transforms published before the node started arrive."""

INPUT_EVENTS = SubscriptionEventCallbacks(use_default_callbacks=False)
"""No QoS event handlers on the best-effort, volatile inputs: no publisher's QoS can be
incompatible with them, and each handler costs the executor Python work per message."""

UPDATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


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
        self.intake.queue.close()
        worker = getattr(self, "worker", None)
        if worker is not None and worker.is_alive() and worker is not threading.current_thread():
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
        self.log.throttle = Throttle(cfg.log_throttle)
        self.counters = Counters()
        self.latency = LatencyStats()
        image_topics = [cfg.color_topic, cfg.depth_topic] + ([cfg.label_topic] if self.config.mode == "label_fusion" else [])
        self.intake = FrameIntake(
            cfg,
            [self.resolve_topic_name(t) for t in image_topics],
            self.counters,
            self.log,
            lambda: self.get_clock().now().nanoseconds,
            self._on_time_jump,
        )
        self._stop = threading.Event()  # from here on ``shutdown`` has a queue to close
        self.heartbeat = Heartbeat(cfg.watchdog_timeout)
        self.worker_state = "running"
        self._last_stamp: int | None = None
        self._current_item: FrameMessages | None = None
        self._last_mapped_start: float | None = None
        self._camera_info = None
        self._intrinsics_key = None
        self._intrinsics = None
        self._markers_version = 0
        self._reported: tuple[int, ...] = ()  # problem counters at the last diagnostics message
        try:
            e = cfg.camera_extrinsic
            self.T_body_camera = pose_from_quaternion(np.array([e.x, e.y, e.z]), np.array([e.qx, e.qy, e.qz, e.qw]))
        except ValueError as exc:
            raise ParameterError([f"camera_extrinsic: {exc}"]) from exc

        # The engine: builds or loads the model (a missing / corrupt checkpoint raises here).
        self.mapper = OnlineMapper(self.config, model=model, voxel_map=self.map)
        self.converter = ImageConverter(cfg.depth_scale)

        notices: list[str] = []
        self.input_group = ReentrantCallbackGroup()
        self.pose_group = ReentrantCallbackGroup()
        self.output_group = MutuallyExclusiveCallbackGroup()
        self.diagnostics_group = MutuallyExclusiveCallbackGroup()
        self.watchdog_group = MutuallyExclusiveCallbackGroup()  # alone: nothing it waits for can hold it up
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=max(10, cfg.sync_queue_size), reliability=ReliabilityPolicy.BEST_EFFORT
        )
        for i, topic in enumerate(self.intake.topics):
            callback = self.guarded_callback(f"{IMAGE_STREAMS[i]}_image", partial(self.intake.image, i))
            self.create_subscription(Image, topic, callback, qos, callback_group=self.input_group, raw=True, event_callbacks=INPUT_EVENTS)
        self.sync_backend = "alster_mapping.core.time_sync (raw messages)"
        self.create_subscription(
            CameraInfo,
            cfg.camera_info_topic,
            self.guarded_callback("camera_info", self._on_camera_info),
            qos,
            callback_group=self.input_group,
            event_callbacks=INPUT_EVENTS,
        )
        self._setup_pose_source(notices)

        events = OUTPUT_EVENTS
        self.update_pub = self.create_publisher(PointCloud2, "~/semantic_cloud_update", UPDATE_QOS, event_callbacks=events)
        self.markers_pub = self.create_publisher(MarkerArray, "~/markers", CLOUD_QOS, event_callbacks=events)
        self.label_image_pub = (
            self.create_publisher(Image, "~/label_image", UPDATE_QOS, event_callbacks=events) if cfg.publish_label_image else None
        )
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10, event_callbacks=events)
        guarded = self.guarded_callback
        if cfg.markers_period > 0:
            self.create_timer(cfg.markers_period, guarded("markers", self._on_markers_timer), self.output_group, clock=self.steady_clock)
        self.create_timer(cfg.diagnostics_period, guarded("diagnostics", self._on_diagnostics_timer), self.diagnostics_group, clock=self.steady_clock)
        self.create_timer(WATCHDOG_PERIOD, guarded("watchdog", self._on_watchdog_timer), self.watchdog_group, clock=self.steady_clock)

        self._start_worker()
        for notice in notices:
            self.log.info(notice)
        inputs = ", ".join(self.intake.topics)
        self.log.info(
            f"mode {self.config.mode!r}: mapping {inputs} with poses from "
            f"{self.pose_backend or 'nowhere (see the error above)'}; map frame {self.server_config.frame_id!r}"
        )

    def _start_worker(self) -> None:
        self.heartbeat.beat()
        self.worker = threading.Thread(target=self._worker_loop, name="alster_mapping_worker", daemon=True)
        self.worker.start()

    def _setup_pose_source(self, notices: list[str]) -> None:
        cfg = self.node_config
        max_gap = int(round(cfg.pose_max_gap * 1e9)) if cfg.pose_max_gap > 0 else None
        self.pose_source = PoseSource(int(cfg.pose_cache * 1e9), int(round(cfg.pose_tolerance * 1e9)), max_gap)
        self._tf2 = None
        self.pose_backend: str | None = None
        if cfg.pose_source != "tf":
            msg_type = {"pose": PoseStamped, "odometry": Odometry, "transform": TransformStamped}[cfg.pose_source]
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
            callback = self.guarded_callback("pose", self._on_pose_message)
            self.create_subscription(msg_type, cfg.pose_topic, callback, qos, callback_group=self.pose_group, event_callbacks=INPUT_EVENTS)
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
            self.log.error(
                "pose_source 'tf' needs tf2_ros or tf2_msgs, and neither is importable: every frame is "
                "skipped (pose_unavailable); publish the camera pose on a topic and set pose_source to "
                "pose, odometry or transform"
            )
            return
        for topic, static, qos in (("/tf", False, TF_QOS), ("/tf_static", True, TF_STATIC_QOS)):
            callback = self.guarded_callback(topic.lstrip("/"), partial(self._on_tf, static))
            self.create_subscription(TFMessage, topic, callback, qos, callback_group=self.pose_group)
        self.pose_backend = "TF (/tf, /tf_static into alster_mapping.core.tf_buffer)"
        notices.append("tf2_ros is not importable: /tf and /tf_static are buffered by alster_mapping.core.tf_buffer")

    # -- callbacks (never block: no decoding, no mapping) --------------------------------------------

    def _on_time_jump(self) -> None:
        """The intake saw time jump back: poses and the stamp order start over too."""
        self.pose_source.clear()
        self._last_stamp = None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.counters.add("received.camera_info")
        self._camera_info = msg  # a reference swap: the worker reads whichever is current

    def _on_pose_message(self, msg: Any) -> None:
        self.counters.add("received.poses")
        map_frame = self.server_config.frame_id
        try:
            parent, T, stamp = pose_message_edge(msg, self.node_config.pose_source)
        except ValueError as exc:
            self.counters.add("bad_poses", message=str(exc))
            self.log.throttled("bad_pose", f"ignored a pose message: {exc}")
            return
        if (parent or map_frame).lstrip("/") != map_frame.lstrip("/"):
            message = f"ignored a pose in frame {parent!r}: poses must be given in the map frame {map_frame!r}"
            self.counters.add("bad_poses", message=message)
            self.log.throttled("pose_frame", message)
            return
        if self.intake.admit(("pose",), stamp, f"pose topic {self.node_config.pose_topic}"):
            self.pose_source.set_transform(map_frame, POSE_CHILD, T, stamp)

    def _on_tf(self, static: bool, msg: Any) -> None:
        topic = "/tf_static" if static else "/tf"
        self.counters.add("received.tf_static" if static else "received.tf")
        bad = []
        for t in msg.transforms:
            child = str(t.child_frame_id)
            # Static transforms are timeless; each dynamic edge keeps its own time line.
            if not static and not self.intake.admit(("tf", child), stamp_to_ns(t.header.stamp), f"{topic} {child}"):
                continue
            try:
                self.pose_source.add_transform(t, static)
            except ValueError as exc:
                bad.append(str(exc))
        if bad:
            self.counters.add("bad_poses", len(bad), message=bad[-1])
            self.log.throttled("bad_tf", f"ignored {len(bad)} unusable transform(s) on {topic}: {bad[-1]}")

    # -- the worker ---------------------------------------------------------------------------------

    def _worker_loop(self) -> None:
        """Map queued frames until shutdown; a bad frame is counted and skipped, never fatal."""
        while not self._stop.is_set():
            self.heartbeat.beat()
            item = self.intake.queue.get(timeout=0.2)
            if item is None:
                continue
            self._current_item = item  # if this thread dies now, the watchdog counts the frame
            try:
                self._process(item)
            except SkipFrame as exc:
                message = f"skipped the frame at {item.stamp_ns / 1e9:.3f} s: {exc}"
                self.counters.add(f"skipped.{exc.reason}", message=message)
                self.log.throttled(exc.reason, message)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything a frame causes
                message = f"skipped the frame at {item.stamp_ns / 1e9:.3f} s after an error: {type(exc).__name__}: {exc}"
                self.counters.add("skipped.error", message=message)
                self.log.throttled("error", message, "error")
            self._current_item = None

    def _process(self, item: FrameMessages) -> None:
        """Convert, pose, map and publish one frame; raises SkipFrame for bad input (map untouched)."""
        cfg = self.node_config
        start = time.perf_counter()
        timings: dict[str, float] = {"queue_wait": time.monotonic() - item.received}
        stamp = item.stamp_ns
        self._check_stamp(stamp)

        info = self._camera_info
        if info is None:
            raise SkipFrame("missing_camera_info", f"no CameraInfo received on {cfg.camera_info_topic}")
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
        if cfg.image_downscale > 1:
            try:
                color, depth, labels = downscale_images(color, depth, labels, cfg.image_downscale)
                intrinsics = intrinsics.downscaled(cfg.image_downscale)
            except ValueError as exc:
                raise SkipFrame("bad_camera_info", f"image_downscale {cfg.image_downscale}: {exc}") from exc
        if not bool(np.any(np.isfinite(depth) & (depth > 0))):
            raise SkipFrame("no_valid_depth", "the depth image has no finite positive value")
        timings["convert"] = time.perf_counter() - start

        clock = time.perf_counter()
        T_world_camera = self._camera_pose(stamp, cfg.camera_frame or item.color.frame_id)
        timings["pose"] = time.perf_counter() - clock
        try:
            frame = RGBDFrame(color, depth, intrinsics, T_world_camera, stamp, item.color.frame_id, labels)
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
        if self._last_mapped_start is not None:  # the worker's period: a frame's start to the next one's
            timings["cycle"] = start - self._last_mapped_start
        self._last_mapped_start = start
        # Stamp to map update, on the node's clock (sim time with use_sim_time).
        timings["age"] = max(0.0, (self.get_clock().now().nanoseconds - stamp) / 1e9)
        self.latency.add(timings)
        self.counters.add("mapped")

    def _check_stamp(self, stamp: int) -> None:
        """Mapped stamps increase; an older one is skipped unless it lies a time jump back (then it starts over).

        The stamp guard restarts time order when it sees the jump; a frame mapped while
        that happened may have set the last stamp from the old time line again.
        """
        last = self._last_stamp
        if last is None or stamp > last:
            return
        if last - stamp > self.node_config.time_jump_threshold * 1e9:
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
            try:
                return transform_to_matrix(t.transform, f"TF {map_frame} <- {camera_frame}")
            except ValueError as exc:
                raise SkipFrame("pose_unavailable", str(exc)) from exc
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
        if version == self._markers_version or self.markers_pub.get_subscription_count() == 0:
            return  # building markers costs about a microsecond per voxel: only for a listener
        arrays = self.map.to_arrays()
        self.markers_pub.publish(
            voxel_markers(
                arrays, self.map, self.server_config.frame_id, self.get_clock().now().to_msg(), self.node_config.markers_max_voxels
            )
        )
        self._markers_version = version

    def _on_watchdog_timer(self) -> None:
        """Restart a dead worker thread; report a stuck one and end the node (exit code 3)."""
        if self._stop.is_set():
            return
        verdict = self.heartbeat.check(self.worker.is_alive())
        if verdict == DEAD:
            if self._current_item is not None:
                self._current_item = None
                self.counters.add("skipped.worker_died", message="the worker thread died while mapping this frame")
            restarts = self.counters.get("worker.restarts") + 1
            message = f"the worker thread has exited unexpectedly (restart {restarts} of {MAX_WORKER_RESTARTS})"
            self.counters.add("worker.restarts", message=message)
            if restarts > MAX_WORKER_RESTARTS:
                self.worker_state = "dead"
                self._on_diagnostics_timer()
                self.request_exit(EXIT_WATCHDOG, f"the worker thread died {restarts} times")
                return
            self.log.error(message + ": starting a new one")
            self._start_worker()
        elif verdict == STALLED:
            self.worker_state = "stalled"
            silence = self.heartbeat.silence()
            self.counters.add("worker.stalls", message=f"one frame has taken {silence:.0f} s")
            self._on_diagnostics_timer()
            self.request_exit(
                EXIT_WATCHDOG,
                f"the worker has been stuck in one frame for {silence:.0f} s (watchdog_timeout "
                f"{self.node_config.watchdog_timeout} s)",
            )

    def pipeline_stats(self) -> dict:
        """Counters of the pipeline: received / rejected messages, mapped / skipped frames, queue, sync, latency [ms]."""
        counts = self.counters.snapshot()

        def group(prefix: str) -> dict[str, int]:
            return {k[len(prefix):]: v for k, v in counts.items() if k.startswith(prefix)}

        skipped, rejected = group("skipped."), group("rejected.")
        queue = self.intake.queue
        sync = self.intake.sync_stats
        return {
            "mode": self.config.mode,
            "received": group("received."),
            "rejected": rejected,
            "rejected_total": sum(rejected.values()),
            "mapped": counts.get("mapped", 0),
            "skipped": skipped,
            "skipped_total": sum(skipped.values()),
            "bad_poses": counts.get("bad_poses", 0),
            "time_jumps": counts.get("time_jumps", 0),
            "worker": {"state": self.worker_state, "restarts": counts.get("worker.restarts", 0), "stalls": counts.get("worker.stalls", 0)},
            "queue": {
                "depth": len(queue),
                "capacity": queue.capacity,
                "max_depth": queue.max_depth,
                "superseded": queue.dropped,
            },
            "sync": sync,
            "latest": self.counters.messages(),
            "latency": self.latency.summary(),
        }

    def diagnostics_status(self):
        """The pipeline's ``DiagnosticStatus``: ERROR without a worker or a pose source, WARN after new problems."""
        stats = self.pipeline_stats()
        problems = (stats["skipped_total"], stats["rejected_total"], stats["bad_poses"], stats["time_jumps"], stats["worker"]["restarts"])
        summary = (
            f"{stats['mapped']} frames mapped, {stats['queue']['superseded']} superseded, {stats['skipped_total']} skipped; "
            f"{stats['rejected_total']} messages rejected"
        )
        if self.worker_state != "running":
            level, message = ERROR, f"the worker is {self.worker_state}: nothing is mapped; {summary}"
        elif self.pose_backend is None:
            level, message = ERROR, "no pose source: every frame is skipped"
        elif problems != self._reported:
            level, message = WARN, f"{summary} (problems since the last report)"
        else:
            level, message = OK, summary
        self._reported = problems
        # A stuck worker may hold the map's lock: diagnostics must still go out.
        if self.map.lock.acquire(timeout=0.5):
            try:
                stats["map"] = {"voxels": len(self.map), "blocks": self.map.num_blocks, "bytes": self.map.nbytes()}
            finally:
                self.map.lock.release()
        else:
            stats["map"] = {"state": "locked"}
        stats["process"] = {"memory_bytes": process_memory_bytes()}
        stats["backends"] = {"sync": self.sync_backend, "images": self.converter.backend, "poses": self.pose_backend or "none"}
        return diagnostic_status(f"{self.get_fully_qualified_name()}: mapping", level, message, stats, self.get_fully_qualified_name())

    def _on_diagnostics_timer(self) -> None:
        self.diagnostics_pub.publish(diagnostic_array([self.diagnostics_status()], self.get_clock().now().to_msg()))


def main(args: list[str] | None = None) -> int:
    """Run the mapping node until Ctrl-C / SIGTERM; returns the exit code (1 on start-up errors, 3 from the watchdog)."""
    return map_server_node.main(args, MappingNode)


__all__ = ["POSE_SOURCES", "CameraExtrinsicConfig", "MappingNode", "MappingNodeConfig", "main"]

if __name__ == "__main__":
    sys.exit(main())
