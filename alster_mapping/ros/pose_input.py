"""The camera pose at an image stamp, from TF or from a pose topic.

``CameraPoseInput`` is a component of the live mapping: given the node, it subscribes what
``pose_source`` names and answers ``lookup(stamp, camera_frame)`` for the worker:

- ``tf``: the camera optical frame (``camera_frame`` or the image's frame_id) in the map
  frame ``frame_id``, through tf2_ros when importable, else /tf and /tf_static into
  ``core.tf_buffer.TransformBuffer`` when tf2_msgs is importable (``make setup`` builds it;
  with neither, every frame is skipped as ``pose_unavailable`` and the diagnostics say
  so). Unusable transforms (NaN, a quaternion far from unit length, a cycle, a chain over
  100 links) are counted as ``bad_poses``, a frame that changes parent as
  ``tf_reparented``; a failed lookup names the link (``TF map <- camera: ...``);
- ``pose`` / ``odometry`` / ``transform``: geometry_msgs/PoseStamped, nav_msgs/Odometry or
  geometry_msgs/TransformStamped on ``pose_topic`` in the map frame, interpolated to the
  image stamp (never across gaps over ``pose_max_gap``) and composed with the fixed
  ``camera_extrinsic`` (the camera optical frame's pose in the pose's body frame).

Every pose and TF stamp passes the intake's stamp guard first (``FrameIntake.admit``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, TransformStamped
from nav_msgs.msg import Odometry
from rclpy.callback_groups import CallbackGroup
from rclpy.duration import Duration
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time

from ..core.geometry import pose_from_quaternion
from .frame_intake import FrameIntake
from .inputs import POSE_CHILD, PoseSource, SkipFrame, pose_message_edge, stamp_to_ns, transform_to_matrix
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime
from .params import ParameterError
from .worker import Counters

TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
TF_STATIC_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
"""/tf_static is latched: transient local, so static transforms published before the node started arrive."""

INPUT_EVENTS = SubscriptionEventCallbacks(use_default_callbacks=False)
"""No QoS event handlers on the best-effort, volatile inputs: no publisher's QoS can be
incompatible with them, and each handler costs the executor Python work per message."""


class CameraPoseInput:
    """node, runtime, parameters: the node's (``node_config`` and ``server_config`` are read
    from the parameters). intake: its stamp guard admits pose stamps. counters: where
    received and bad poses are counted. group: the callback group of the subscriptions.
    ``backend`` names where poses come from (None: nowhere; logged as an error);
    ``notice``: a start-up remark to log, or None. Raises ParameterError on an invalid
    ``camera_extrinsic``.
    """

    def __init__(
        self,
        node: Node,
        runtime: NodeRuntime,
        parameters: NodeParameters,
        intake: FrameIntake,
        counters: Counters,
        group: CallbackGroup,
    ):
        self.node = node
        self.runtime = runtime
        self.log = runtime.log
        self.parameters = parameters
        self.intake = intake
        self.counters = counters
        self.notice: str | None = None
        cfg = self.parameters.node_config
        try:
            e = cfg.camera_extrinsic
            self.T_body_camera = pose_from_quaternion(np.array([e.x, e.y, e.z]), np.array([e.qx, e.qy, e.qz, e.qw]))
        except ValueError as exc:
            raise ParameterError([f"camera_extrinsic: {exc}"]) from exc
        max_gap = int(round(cfg.pose_max_gap * 1e9)) if cfg.pose_max_gap > 0 else None
        self.buffer = PoseSource(int(cfg.pose_cache * 1e9), int(round(cfg.pose_tolerance * 1e9)), max_gap)
        self._tf2 = None
        self.backend: str | None = None
        if cfg.pose_source != "tf":
            msg_type = {"pose": PoseStamped, "odometry": Odometry, "transform": TransformStamped}[cfg.pose_source]
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
            callback = self.runtime.guarded_callback("pose", self._on_pose_message)
            self.node.create_subscription(msg_type, cfg.pose_topic, callback, qos, callback_group=group, event_callbacks=INPUT_EVENTS)
            self.backend = f"{msg_type.__name__} topic {self.node.resolve_topic_name(cfg.pose_topic)}"
            return
        try:
            import tf2_ros  # noqa: PLC0415 (optional dependency)

            buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cfg.pose_cache), node=self.node)
            self._tf2 = (tf2_ros, buffer, tf2_ros.TransformListener(buffer, self.node, spin_thread=False))
            self.backend = "TF (tf2_ros)"
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
            callback = self.runtime.guarded_callback(topic.lstrip("/"), partial(self._on_tf, static))
            self.node.create_subscription(TFMessage, topic, callback, qos, callback_group=group)
        self.backend = "TF (/tf, /tf_static into alster_mapping.core.tf_buffer)"
        self.notice = "tf2_ros is not importable: /tf and /tf_static are buffered by alster_mapping.core.tf_buffer"

    def clear(self) -> None:
        """Forget every pose (time jumped back)."""
        self.buffer.clear()

    def lookup(self, stamp: int, camera_frame: str) -> np.ndarray:
        """T_map_camera (4, 4) at ``stamp`` [ns]; raises SkipFrame when there is none."""
        cfg = self.parameters.node_config
        map_frame = self.parameters.server_config.frame_id
        if cfg.pose_source != "tf":
            return self.buffer.lookup(map_frame, POSE_CHILD, stamp, cfg.pose_timeout) @ self.T_body_camera
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
        if self.backend is None:
            raise SkipFrame("pose_unavailable", "no TF implementation (tf2_ros / tf2_msgs) is importable")
        try:
            return self.buffer.lookup(map_frame, camera_frame, stamp, cfg.pose_timeout)
        except SkipFrame as exc:  # name the link, as tf2_ros's errors do
            raise SkipFrame(exc.reason, f"TF {map_frame} <- {camera_frame}: {exc}") from exc

    # -- callbacks (never block) ----------------------------------------------------------------

    def _on_pose_message(self, msg: Any) -> None:
        self.counters.add("received.poses")
        map_frame = self.parameters.server_config.frame_id
        try:
            parent, T, stamp = pose_message_edge(msg, self.parameters.node_config.pose_source)
        except ValueError as exc:
            self.counters.add("bad_poses", message=str(exc))
            self.log.throttled("bad_pose", f"ignored a pose message: {exc}")
            return
        if (parent or map_frame).lstrip("/") != map_frame.lstrip("/"):
            message = f"ignored a pose in frame {parent!r}: poses must be given in the map frame {map_frame!r}"
            self.counters.add("bad_poses", message=message)
            self.log.throttled("pose_frame", message)
            return
        if self.intake.admit(("pose",), stamp, f"pose topic {self.parameters.node_config.pose_topic}"):
            self.buffer.set_transform(map_frame, POSE_CHILD, T, stamp)

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
                parent = self.buffer.buffer.parent_of(child)
                self.buffer.add_transform(t, static)
            except ValueError as exc:
                bad.append(str(exc))
                continue
            if parent is not None and parent != self.buffer.buffer.parent_of(child):
                # Two publishers disagree about a frame's parent (or a localisation took it
                # over): tf2 follows the latest; say so, since a flapping parent moves the map.
                message = f"frame {child!r} changed parent from {parent!r} to {t.header.frame_id!r} on {topic}"
                self.counters.add("tf_reparented", message=message)
                self.log.throttled("tf_reparented", message)
        if bad:
            self.counters.add("bad_poses", len(bad), message=bad[-1])
            self.log.throttled("bad_tf", f"ignored {len(bad)} unusable transform(s) on {topic}: {bad[-1]}")
