"""The map's classes and objects as standard ``vision_msgs``, for tools that speak them.

- ``~/label_info`` (vision_msgs/LabelInfo, reliable and transient local, published once):
  the label space of the map — ``class_map`` holds each class's raw label id (the ``label``
  field of the node's clouds) and name; ``threshold`` 0 (every voxel carries its class).
- ``~/detections`` (vision_msgs/Detection3DArray, latched): the object list of each
  finished ``~/segment_instances`` job — per object one hypothesis (``class_id`` the raw
  label id as text, ``score``), the axis-aligned box (centre pose and size in the map frame)
  and ``id`` the object's instance id (as in ``~/instances``).

``vision_msgs`` is not a PyPI wheel; ``make setup`` builds it into the virtual environment
(``interfaces/``) and a ROS distro provides it. Where it cannot be imported these topics are
not offered and the node says so once at start-up; everything else works.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rclpy.node import Node

from .map_server import CLOUD_QOS, OUTPUT_EVENTS, MapServer
from .node_runtime import NodeRuntime

try:
    from vision_msgs.msg import Detection3D, Detection3DArray, LabelInfo, ObjectHypothesisWithPose, VisionClass
except ImportError:  # pip-only install without the interface packages
    LabelInfo = None


def label_info_message(label_space, frame_id: str, stamp) -> Any:
    """The label space as a vision_msgs/LabelInfo (raw label ids and names)."""
    msg = LabelInfo()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp
    msg.class_map = [VisionClass(class_id=int(i), class_name=str(n)) for i, n in zip(label_space.ids, label_space.names)]
    msg.threshold = 0.0
    return msg


def detections_message(objects: list[dict], label_space, frame_id: str, stamp) -> Any:
    """An object list (``instance_objects``: id, class_index, score, center, extent) as a Detection3DArray."""
    out = Detection3DArray()
    out.header.frame_id, out.header.stamp = frame_id, stamp
    raw_ids = label_space.decode(np.array([o["class_index"] for o in objects], dtype=np.int64)) if objects else []
    for obj, raw in zip(objects, raw_ids):
        det = Detection3D()
        det.header = out.header
        det.id = str(obj["id"])
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = str(int(raw))
        hypothesis.hypothesis.score = float(obj["score"])
        p = hypothesis.pose.pose.position
        p.x, p.y, p.z = (float(v) for v in obj["center"])
        hypothesis.pose.pose.orientation.w = 1.0
        det.results = [hypothesis]
        det.bbox.center = hypothesis.pose.pose
        s = det.bbox.size
        s.x, s.y, s.z = (float(v) for v in obj["extent"])
        out.detections.append(det)
    return out


class VisionOutputs:
    """node, runtime: the node's. map_server: whose label space and frame are published.
    ``available`` is False where vision_msgs cannot be imported (nothing is published)."""

    def __init__(self, node: Node, runtime: NodeRuntime, map_server: MapServer):
        self.node = node
        self.map_server = map_server
        self.available = LabelInfo is not None
        if not self.available:
            runtime.log.info("vision_msgs is not importable: ~/label_info and ~/detections are not published (make setup builds it)")
            return
        self.label_info_pub = node.create_publisher(LabelInfo, "~/label_info", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        self.detections_pub = node.create_publisher(Detection3DArray, "~/detections", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        frame_id = map_server.parameters.server_config.frame_id
        self.label_info_pub.publish(label_info_message(map_server.map.label_space, frame_id, node.get_clock().now().to_msg()))

    def publish_objects(self, objects: list[dict], frame_id: str, stamp) -> None:
        """Publish an instance job's object list on ``~/detections``."""
        if self.available:
            self.detections_pub.publish(detections_message(objects, self.map_server.map.label_space, frame_id, stamp))
