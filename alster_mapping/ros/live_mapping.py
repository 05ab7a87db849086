"""LiveMapping: the component that maps live RGB-D frames into the map server's map.

Given the node, it runs the live pipeline; ``MappingNode`` composes it with the
``MapServer`` (the map, ``~/semantic_cloud``, the map services, save on shutdown):

Inputs (topic names are parameters, relative to the node's namespace):

- ``color_topic`` (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8), ``depth_topic``
  (16UC1 / mono16 in ``depth_scale`` metres per unit, usually millimetres, or 32FC1 in
  metres; registered to colour) and, in ``label_fusion`` mode, ``label_topic`` (mono8 /
  mono16 / 16UC1 raw label ids of the label space, e.g. NYU40 from any 2D segmenter).
  Subscribed raw (serialized bytes; QoS ``image_reliability``, default best-effort, and
  ``image_queue_depth``): a callback reads only the header
  (``raw_image``), checks the stamp and the size, and hands the bytes to the
  approximate-time synchroniser (``core.time_sync``, within ``sync_slop`` seconds).
  Pixels are decoded only for frames the worker maps.
- ``camera_info_topic`` (sensor_msgs/CameraInfo): the latest one gives the intrinsics.
- The camera pose at the image stamp, by ``pose_source``: TF or a pose topic
  (``CameraPoseInput``, ``ros/pose_input.py``).

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
  reason, lost by DDS (QoS message-lost events) or refused for incompatible QoS, frames
  mapped / superseded / skipped by reason with the latest reason's text, time jumps, the
  worker's state, per-stage latency, map size, process memory, and the self-check's
  finding (``self_check.py``: after ``self_check_timeout`` seconds without a mapped frame,
  exactly what is missing, also logged once).

``paused`` (``~/set_paused``, ``runtime_control.py``) stops integrating frames; they are
still received and counted as ``paused_frames``.

Bad input never stops the node or touches the map: a rejected message or skipped frame
is counted under its reason, logged (throttled per kind) and dropped. A missing or
corrupt checkpoint stops the node at start-up with one clear line and exit code 1.
"""

from __future__ import annotations

import array
import threading
import time
from functools import partial

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from ..core.downscale import downscale_images
from ..core.frame import RGBDFrame
from ..core.image_codec import CameraInfoError, ImageEncodingError, array_to_image_fields, intrinsics_from_camera_info
from ..map.voxel_map import SemanticVoxelMap
from ..pipeline.kernel_warm_up import warm_up_kernels
from ..pipeline.keyframes import KeyframeStore
from ..pipeline.lifting import use_numba
from ..pipeline.online_mapper import OnlineMapper
from .cloud import arrays_to_cloud
from .diagnostics import ERROR, OK, WARN, diagnostic_array, diagnostic_status, process_memory_bytes
from .frame_intake import IMAGE_STREAMS, FrameIntake, FrameMessages
from .inputs import ImageConverter, SkipFrame
from .map_server import CLOUD_QOS, OUTPUT_EVENTS, MapServer
from .node_parameters import NodeParameters
from .node_runtime import EXIT_WATCHDOG, NodeRuntime
from .outputs import arrays_of_keys, frame_label_image, voxel_markers
from .pose_input import CameraPoseInput
from .self_check import SelfCheck
from .watchdog import DEAD, STALLED, Heartbeat
from .worker import Counters, LatencyStats, Throttle

WATCHDOG_PERIOD = 1.0
"""Seconds between two checks of the worker thread."""
MAX_WORKER_RESTARTS = 5
"""A worker thread that dies more often than this is not restarted again: the node exits (code 3)."""

UPDATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)


class LiveMapping:
    """Images, camera info and poses in; a worker thread mapping the newest frame; outputs.

    node: the node it runs in. runtime: the node's log, guards and exit. parameters: the
    node's parameters with ``config``, ``server_config`` and ``node_config``. map_server:
    the ``MapServer`` whose map it writes. model: an ``AlsterModel`` to use instead of the
    checkpoint / ``model.*`` parameters. keyframes: the store each mapped frame is offered
    to (``keyframes.*``; None keeps none). Raises ValueError (``ParameterError``,
    ``CheckpointError``) on invalid parameters or a missing / corrupt checkpoint; the
    worker thread is started last, so nothing runs when it raises.
    """

    def __init__(
        self,
        node: Node,
        runtime: NodeRuntime,
        parameters: NodeParameters,
        map_server: MapServer,
        model=None,
        keyframes: KeyframeStore | None = None,
    ):
        self.node = node
        self.keyframes = keyframes
        self.runtime = runtime
        self.log = runtime.log
        self.parameters = parameters
        self.map_server = map_server
        cfg = self.parameters.node_config
        self.log.throttle = Throttle(cfg.log_throttle)
        self.counters = Counters()
        self.latency = LatencyStats()
        image_topics = [cfg.color_topic, cfg.depth_topic] + ([cfg.label_topic] if self.parameters.config.mode == "label_fusion" else [])
        self.intake = FrameIntake(
            cfg,
            [self.node.resolve_topic_name(t) for t in image_topics],
            self.counters,
            self.log,
            lambda: self.node.get_clock().now().nanoseconds,
            self._on_time_jump,
        )
        self._stop = threading.Event()
        self.heartbeat = Heartbeat(cfg.watchdog_timeout)
        self.worker_state = "running"
        self._last_stamp: int | None = None
        # (3,) position [m] of the camera of the latest mapped frame (the centre of ~/segment_instances' region).
        self.camera_position: np.ndarray | None = None
        self._current_item: FrameMessages | None = None
        self._last_mapped_start: float | None = None
        self._camera_info = None
        self._intrinsics_key = None
        self._intrinsics = None
        self._markers_version = 0
        self._reported: tuple[int, ...] = ()  # problem counters at the last diagnostics message
        self.paused = False  # set by ~/set_paused: frames are received but not mapped
        self.self_check = SelfCheck(cfg.self_check_timeout, self.log.warning)

        # The engine: builds or loads the model (a missing / corrupt checkpoint raises here).
        self.mapper = OnlineMapper(self.parameters.config, model=model, voxel_map=self.map_server.map)
        seconds = warm_up_kernels()
        if seconds > 1.0:
            self.node.get_logger().info(f"compiled the CPU kernels in {seconds:.1f} s (numba caches them for the next start)")
        self.converter = ImageConverter(cfg.depth_scale)

        self.input_group = ReentrantCallbackGroup()
        self.pose_group = ReentrantCallbackGroup()
        self.output_group = MutuallyExclusiveCallbackGroup()
        self.diagnostics_group = MutuallyExclusiveCallbackGroup()
        self.watchdog_group = MutuallyExclusiveCallbackGroup()  # alone: nothing it waits for can hold it up
        reliability = ReliabilityPolicy.RELIABLE if cfg.image_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.image_queue_depth, reliability=reliability)
        for i, topic in enumerate(self.intake.topics):
            callback = self.runtime.guarded_callback(f"{IMAGE_STREAMS[i]}_image", partial(self.intake.image, i))
            events = self._input_events(IMAGE_STREAMS[i], topic)
            self.node.create_subscription(Image, topic, callback, qos, callback_group=self.input_group, raw=True, event_callbacks=events)
        self.sync_backend = "alster_mapping.core.time_sync (raw messages)"
        info_topic = self.node.resolve_topic_name(cfg.camera_info_topic)
        self.node.create_subscription(
            CameraInfo,
            cfg.camera_info_topic,
            self.runtime.guarded_callback("camera_info", self._on_camera_info),
            qos,
            callback_group=self.input_group,
            event_callbacks=self._input_events("camera_info", info_topic),
        )
        self.poses = CameraPoseInput(node, runtime, parameters, self.intake, self.counters, self.pose_group)

        events = OUTPUT_EVENTS
        self.update_pub = self.node.create_publisher(PointCloud2, "~/semantic_cloud_update", UPDATE_QOS, event_callbacks=events)
        self.markers_pub = self.node.create_publisher(MarkerArray, "~/markers", CLOUD_QOS, event_callbacks=events)
        self.label_image_pub = (
            self.node.create_publisher(Image, "~/label_image", UPDATE_QOS, event_callbacks=events) if cfg.publish_label_image else None
        )
        self.diagnostics_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10, event_callbacks=events)
        guarded, clock = self.runtime.guarded_callback, self.map_server.steady_clock
        self.markers_timer = self.node.create_timer(
            cfg.markers_period or 1.0, guarded("markers", self._on_markers_timer), self.output_group, clock=clock
        )
        self.diagnostics_timer = self.node.create_timer(
            cfg.diagnostics_period, guarded("diagnostics", self._on_diagnostics_timer), self.diagnostics_group, clock=clock
        )
        self.node.create_timer(WATCHDOG_PERIOD, guarded("watchdog", self._on_watchdog_timer), self.watchdog_group, clock=clock)

        parameters.on_change(self._on_parameters_changed)
        self._start_worker()
        if self.poses.notice:
            self.log.info(self.poses.notice)
        inputs = ", ".join(self.intake.topics)
        self.log.info(
            f"mode {self.parameters.config.mode!r}: mapping {inputs} with poses from "
            f"{self.poses.backend or 'nowhere (see the error above)'}; map frame {self.parameters.server_config.frame_id!r}"
        )

    def accepts_map(self, loaded: SemanticVoxelMap) -> str | None:
        """Why ``loaded`` cannot replace the live map: a map of the other mode's features
        cannot be continued by this mode. None when it can."""
        mode = self.parameters.config.mode
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
        self._stop.set()
        self.intake.queue.close()
        if self.worker.is_alive() and self.worker is not threading.current_thread():
            self.worker.join(timeout=10.0)

    def _input_events(self, stream: str, topic: str) -> SubscriptionEventCallbacks:
        """QoS events of an input subscription: messages DDS lost, and (reliable subscriptions
        only: a best-effort, volatile one is compatible with every publisher) publishers with
        incompatible QoS. Each handler is one more waitable the executor checks per wake-up,
        hence none that cannot fire."""

        def lost(info) -> None:
            self.counters.add(f"lost.{stream}", int(info.total_count_change), message=f"DDS lost {info.total_count_change} message(s) on {topic}")

        def incompatible(info) -> None:
            message = (
                f"a publisher on {topic} has QoS incompatible with this subscription ({self.parameters.node_config.image_reliability}); "
                "its messages never arrive: set image_reliability to best_effort"
            )
            self.counters.add(f"incompatible_qos.{stream}", message=message)
            self.log.error(message)

        guarded = self.runtime.guarded_callback
        reliable = self.parameters.node_config.image_reliability == "reliable"
        return SubscriptionEventCallbacks(
            message_lost=guarded(f"{stream}_lost", lost),
            incompatible_qos=guarded(f"{stream}_incompatible_qos", incompatible) if reliable else None,
            use_default_callbacks=False,
        )

    def _on_parameters_changed(self, old: dict) -> None:
        cfg, before = self.parameters.node_config, old["node_config"]
        self.log.throttle.period = cfg.log_throttle
        self.self_check.timeout = cfg.self_check_timeout
        for timer, period, was in (
            (self.markers_timer, cfg.markers_period, before.markers_period),
            (self.diagnostics_timer, cfg.diagnostics_period, before.diagnostics_period),
        ):
            if period != was and period > 0:
                timer.timer_period_ns = int(period * 1e9)
        # Ranges apply from the next frame on (the mapper reads its config per frame).
        self.mapper.config = self.parameters.config
        if self.keyframes is not None:
            self.keyframes.config = self.parameters.config.keyframes  # budgets apply at the next keyframe
        self.mapper.gravity.configure(self.parameters.config.gravity)
        if self.mapper.fusion is not None:
            self.mapper.fusion.config = self.parameters.config.label_fusion

    def _start_worker(self) -> None:
        self.heartbeat.beat()
        self.worker = threading.Thread(target=self._worker_loop, name="alster_mapping_worker", daemon=True)
        self.worker.start()

    # -- callbacks (never block: no decoding, no mapping) --------------------------------------------

    def _on_time_jump(self) -> None:
        """The intake saw time jump back: poses and the stamp order start over too."""
        self.poses.clear()
        self._last_stamp = None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.counters.add("received.camera_info")
        self._camera_info = msg  # a reference swap: the worker reads whichever is current

    # -- the worker ---------------------------------------------------------------------------------

    def _worker_loop(self) -> None:
        """Map queued frames until shutdown; a bad frame is counted and skipped, never fatal."""
        while not self._stop.is_set():
            self.heartbeat.beat()
            item = self.intake.queue.get(timeout=0.2)
            if item is None:
                continue
            if self.paused:
                self.counters.add("paused_frames")
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
        cfg = self.parameters.node_config
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
        T_world_camera = self.poses.lookup(stamp, cfg.camera_frame or item.color.frame_id)
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
        self.camera_position = T_world_camera[:3, 3].copy()
        self.map_server.mark_changed()
        if self.keyframes is not None and self.parameters.config.keyframes.enabled:
            clock = time.perf_counter()
            self.keyframes.consider(frame)  # a mapped frame is valid: this cannot reject it with an error
            timings["keyframes"] = time.perf_counter() - clock
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
        timings["age"] = max(0.0, (self.node.get_clock().now().nanoseconds - stamp) / 1e9)
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
        if last - stamp > self.parameters.node_config.time_jump_threshold * 1e9:
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

    def _publish_frame_outputs(self, frame: RGBDFrame, keys) -> None:
        """The frame's updated voxels and (optionally) its label image, only when someone listens."""
        cfg, server = self.parameters.node_config, self.parameters.server_config
        stamp = Time(nanoseconds=frame.stamp_ns).to_msg()
        if cfg.publish_update and self.update_pub.get_subscription_count() > 0:
            arrays = arrays_of_keys(self.map_server.map, keys)
            self.update_pub.publish(arrays_to_cloud(arrays, server.frame_id, stamp, server.color_by))
        if self.label_image_pub is not None and self.label_image_pub.get_subscription_count() > 0:
            ranges = self.parameters.config.label_fusion if self.parameters.config.mode == "label_fusion" else self.parameters.config.alster
            image = frame_label_image(self.map_server.map, frame.depth, frame.intrinsics, frame.T_world_camera, ranges.max_range, ranges.min_range)
            fields = array_to_image_fields(image, "rgb8")
            fields["data"] = array.array("B", fields["data"].tobytes())  # stored as is, not checked per element
            msg = Image(**fields)
            msg.header.stamp, msg.header.frame_id = stamp, frame.frame_id
            self.label_image_pub.publish(msg)

    # -- timers -------------------------------------------------------------------------------------

    def _on_markers_timer(self) -> None:
        if self.parameters.node_config.markers_period <= 0:
            return
        version = self.map_server.version
        if version == self._markers_version or self.markers_pub.get_subscription_count() == 0:
            return  # building markers costs about a microsecond per voxel: only for a listener
        voxel_map = self.map_server.map
        stamp = self.node.get_clock().now().to_msg()
        markers = voxel_markers(
            voxel_map.to_arrays(), voxel_map, self.parameters.server_config.frame_id, stamp, self.parameters.node_config.markers_max_voxels
        )
        self.markers_pub.publish(markers)
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
                self.runtime.request_exit(EXIT_WATCHDOG, f"the worker thread died {restarts} times")
                return
            self.log.error(message + ": starting a new one")
            self._start_worker()
        elif verdict == STALLED:
            self.worker_state = "stalled"
            silence = self.heartbeat.silence()
            self.counters.add("worker.stalls", message=f"one frame has taken {silence:.0f} s")
            self._on_diagnostics_timer()
            self.runtime.request_exit(
                EXIT_WATCHDOG,
                f"the worker has been stuck in one frame for {silence:.0f} s (watchdog_timeout "
                f"{self.parameters.node_config.watchdog_timeout} s)",
            )

    def pipeline_stats(self) -> dict:
        """Counters of the pipeline: received / rejected messages, mapped / skipped frames, queue, sync, latency [ms]."""
        counts = self.counters.snapshot()

        def group(prefix: str) -> dict[str, int]:
            return {k[len(prefix):]: v for k, v in counts.items() if k.startswith(prefix)}

        skipped, rejected, lost = group("skipped."), group("rejected."), group("lost.")
        queue = self.intake.queue
        sync = self.intake.sync_stats
        return {
            "mode": self.parameters.config.mode,
            # which implementation does the per-pixel work: the numba kernels or tensor ops
            "pixel_kernels": "numba" if use_numba("auto", self.mapper.device) else "torch",
            "received": group("received."),
            "rejected": rejected,
            "rejected_total": sum(rejected.values()),
            "mapped": counts.get("mapped", 0),
            "skipped": skipped,
            "skipped_total": sum(skipped.values()),
            "lost": lost,
            "lost_total": sum(lost.values()),
            "incompatible_qos": group("incompatible_qos."),
            "paused": self.paused,
            "paused_frames": counts.get("paused_frames", 0),
            "self_check": self.self_check.problem or "ok",
            "bad_poses": counts.get("bad_poses", 0),
            "tf_reparented": counts.get("tf_reparented", 0),
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
        cfg = self.parameters.node_config
        streams = dict(zip(IMAGE_STREAMS, self.intake.topics))
        problem = self.self_check.update(stats, streams, self.node.resolve_topic_name(cfg.camera_info_topic), cfg.sync_slop, self.paused)
        stats["self_check"] = problem or "ok"
        problems = (
            stats["skipped_total"], stats["rejected_total"], stats["lost_total"], stats["bad_poses"], stats["time_jumps"],
            stats["worker"]["restarts"], sum(stats["incompatible_qos"].values()),
        )  # fmt: skip
        summary = (
            f"{stats['mapped']} frames mapped, {stats['queue']['superseded']} superseded, {stats['skipped_total']} skipped; "
            f"{stats['rejected_total']} messages rejected, {stats['lost_total']} lost"
        )
        if self.worker_state != "running":
            level, message = ERROR, f"the worker is {self.worker_state}: nothing is mapped; {summary}"
        elif self.poses.backend is None:
            level, message = ERROR, "no pose source: every frame is skipped"
        elif self.paused:
            level, message = OK, f"paused by ~/set_paused: {stats['paused_frames']} frames not mapped; {summary}"
        elif problem is not None:
            level, message = WARN, f"nothing mapped: {problem}"
        elif problems != self._reported:
            level, message = WARN, f"{summary} (problems since the last report)"
        else:
            level, message = OK, summary
        self._reported = problems
        # A stuck worker may hold the map's lock: diagnostics must still go out.
        if self.map_server.map.lock.acquire(timeout=0.5):
            try:
                stats["map"] = {"voxels": len(self.map_server.map), "blocks": self.map_server.map.num_blocks, "bytes": self.map_server.map.nbytes()}
            finally:
                self.map_server.map.lock.release()
        else:
            stats["map"] = {"state": "locked"}
        stats["gravity"] = self.mapper.gravity.state()
        stats["process"] = {"memory_bytes": process_memory_bytes()}
        stats["backends"] = {"sync": self.sync_backend, "images": self.converter.backend, "poses": self.poses.backend or "none"}
        return diagnostic_status(f"{self.node.get_fully_qualified_name()}: mapping", level, message, stats, self.node.get_fully_qualified_name())

    def _on_diagnostics_timer(self) -> None:
        self.diagnostics_pub.publish(diagnostic_array([self.diagnostics_status()], self.node.get_clock().now().to_msg()))
