"""CompletionService: ``~/complete_scene`` — what is probably behind the furniture, from the latest keyframe, by IMENet.

A component given the node (``MappingNode`` and ``MapServerNode``; the latter completes the
newest keyframe loaded with its map). The engine side is ``pipeline.completion_job``; the
service and status machinery is ``job_service.JobService``.

Service (std_srvs/Trigger):

- ``~/complete_scene``: complete the volume in front of the newest keyframe's camera
  (SSCNet's 4.8 x 4.8 x 2.88 m at 0.08 m on the floor: the mapper's floor estimate, else
  one from the keyframe); the reply comes at once. Refused with the reason: a job is
  running, no keyframe yet. A keyframe whose camera looks straight up or down, whose depth
  misses the volume, or a checkpoint of another kind of model ends the job ``failed``; the
  node keeps mapping.

Topics (latched: reliable, transient local, depth 1):

- ``~/completion_status`` (std_msgs/String): JSON of the job: ``job``, ``state``,
  ``progress``, ``message``, ``observed`` and ``predicted`` voxels, ``floor_z``,
  ``keyframe_stamp_ns``, ``seconds``.
- ``~/completion`` (sensor_msgs/PointCloud2, in the map frame, stamped with the keyframe):
  the occupied voxels' centres — ``x y z`` float32, ``rgb`` (class colour; predicted voxels
  lighter), ``label`` uint16 (ssc11 id), ``confidence`` float32, ``observed`` uint8 (1: on
  the measured surface; 0: predicted). Predictions never enter the map.
- ``~/completion_label_image`` (sensor_msgs/Image mono8): the refined 2D segmentation of
  the keyframe, ssc11 ids per pixel at the model's image width (160 px).

Parameters: ``completion.*`` of ``MappingConfig`` (checkpoint, device, iterations), read at
each request; the model is loaded on the first request and kept while they stay the same.
"""

from __future__ import annotations

import array
from collections.abc import Callable

import numpy as np
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image, PointCloud2, PointField

from ..core.completion_grid import SSC_LABEL_SPACE
from ..core.image_codec import array_to_image_fields
from ..core.labels import LabelSpace
from ..pipeline.completion_job import CompletionJobs, CompletionJobStatus, CompletionResult
from ..pipeline.keyframes import KeyframeStore
from ..pipeline.scene_completion import completion_colors, completion_points
from .cloud import new_cloud, pack_rgb
from .job_service import JobService
from .map_server import CLOUD_QOS, OUTPUT_EVENTS, MapServer
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime

COMPLETION_POINT_STEP = 24
COMPLETION_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "rgb", "label", "observed", "confidence"],
        "formats": ["<f4", "<f4", "<f4", "<u4", "<u2", "u1", "<f4"],
        "offsets": [0, 4, 8, 12, 16, 18, 20],
        "itemsize": COMPLETION_POINT_STEP,
    }
)
COMPLETION_FIELDS = (
    ("x", 0, PointField.FLOAT32),
    ("y", 4, PointField.FLOAT32),
    ("z", 8, PointField.FLOAT32),
    ("rgb", 12, PointField.FLOAT32),
    ("label", 16, PointField.UINT16),
    ("observed", 18, PointField.UINT8),
    ("confidence", 20, PointField.FLOAT32),
)
def completion_cloud(result: CompletionResult, space: LabelSpace, frame_id: str) -> PointCloud2:
    """The occupied voxels of a completion as a PointCloud2 (layout: the module docstring)."""
    xyz, ids, confidence, observed = completion_points(result.completion)
    stamp = Time(nanoseconds=result.completion.volume.frame.stamp_ns).to_msg()
    msg, points = new_cloud(len(xyz), COMPLETION_DTYPE, COMPLETION_FIELDS, frame_id, stamp)
    points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    points["rgb"] = pack_rgb(completion_colors(space, ids, observed))
    points["label"] = ids
    points["observed"] = observed
    points["confidence"] = confidence
    return msg


def label_image_message(result: CompletionResult) -> Image:
    """The refined 2D segmentation as a mono8 image of ssc11 ids, stamped with the keyframe."""
    fields = array_to_image_fields(result.completion.label_image.astype(np.uint8), "mono8")
    fields["data"] = array.array("B", fields["data"].tobytes())  # stored as is, not checked per element
    msg = Image(**fields)
    msg.header.stamp = Time(nanoseconds=result.completion.volume.frame.stamp_ns).to_msg()
    msg.header.frame_id = result.frame_id
    return msg


class CompletionService(JobService):
    """``~/complete_scene``, ``~/completion_status``, ``~/completion`` and ``~/completion_label_image``
    (see the module docstring). keyframes: the node's keyframe store. floor_z: the map's floor
    height [m] now, or None (estimated from the keyframe)."""

    def __init__(
        self,
        node: Node,
        runtime: NodeRuntime,
        parameters: NodeParameters,
        map_server: MapServer,
        keyframes: KeyframeStore,
        floor_z: Callable[[], float | None] = lambda: None,
    ):
        self.keyframes = keyframes
        self._floor_z = floor_z
        self.space = LabelSpace.load(SSC_LABEL_SPACE)  # the ssc11 classes' colours
        self.cloud_pub = node.create_publisher(PointCloud2, "~/completion", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        self.image_pub = node.create_publisher(Image, "~/completion_label_image", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        super().__init__(node, runtime, parameters, map_server, CompletionJobs(log=runtime.log.info), "complete_scene", "completion_status")

    def start_job(self) -> CompletionJobStatus:
        return self.jobs.start(self.keyframes.keyframes(), self.parameters.config.completion, self._floor_z())

    def publish_result(self, result: CompletionResult) -> None:
        self.cloud_pub.publish(completion_cloud(result, self.space, self.parameters.server_config.frame_id))
        self.image_pub.publish(label_image_message(result))
