"""InstanceService: ``~/segment_instances`` — the map's objects from ASIS or BAN, in the background.

A component given the node (``MappingNode`` and ``MapServerNode`` both have it). The
engine side is ``pipeline.instance_job``; the service and status machinery is
``job_service.JobService``; this module converts and publishes.

Service (std_srvs/Trigger):

- ``~/segment_instances``: snapshot the map — or, with ``instances.region_radius`` > 0,
  the voxels within that floor-plan distance of the latest camera position — and start a
  job; the reply comes at once: ``success=true`` with JSON ``{"job", "state", "voxels",
  "message"}``, or ``success=false`` with the reason (a job is running: "busy: job N is
  running (P % done)"; an empty map or region, too few voxels, voxels without colour, no
  camera pose yet). The job never blocks mapping or the other services; the map is only
  changed by a finished job (its instance ids).

Topics (reliable, transient local, depth 1: a late subscriber gets the latest result):

- ``~/instance_status`` (std_msgs/String): JSON of the job: ``job``, ``state`` (idle,
  running, done, failed, dropped), ``progress`` (0..1), ``message``, ``voxels``,
  ``objects`` (the object list when done: id, class, class_index, score, centroid,
  center, extent, points), ``seconds`` and ``stage_seconds``. Published at each change
  (progress at most every ``job_service.STATUS_PERIOD`` seconds). A job whose map was
  cleared or replaced meanwhile ends ``dropped``, with the reason; a bad checkpoint ends
  ``failed``.
- ``~/instances`` (sensor_msgs/PointCloud2): x, y, z, rgb (instance colour), label,
  instance, confidence per segmented voxel (``ros/instance_outputs.py``).
- ``~/objects`` (visualization_msgs/MarkerArray): a box and a text label per object.

Parameters: ``instances.*`` of ``MappingConfig`` (model, checkpoint, device,
region_radius, min_voxels, segmentation.*), read at each request; the model is loaded on
the first request and kept while they stay the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from ..pipeline.instance_job import InstanceJobs, InstanceJobStatus, JobResult
from .instance_outputs import instances_to_cloud, object_markers
from .job_service import JobService
from .map_server import CLOUD_QOS, OUTPUT_EVENTS, MapServer
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime


class InstanceService(JobService):
    """``~/segment_instances`` with its status, cloud and marker topics (see the module docstring).

    node, runtime, parameters: the node's. map_server: owns the map (and the frame id).
    camera_position: the latest camera position (3,) [m] or None (for the region).
    on_objects: also given each finished job's object list, frame id and stamp (e.g.
    ``VisionOutputs.publish_objects``).
    """

    def __init__(
        self,
        node: Node,
        runtime: NodeRuntime,
        parameters: NodeParameters,
        map_server: MapServer,
        camera_position: Callable[[], np.ndarray | None] = lambda: None,
        on_objects: Callable[[list[dict], str, object], None] | None = None,
    ):
        self._camera_position = camera_position
        self._on_objects = on_objects
        self.cloud_pub = node.create_publisher(PointCloud2, "~/instances", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        self.markers_pub = node.create_publisher(MarkerArray, "~/objects", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        super().__init__(node, runtime, parameters, map_server, InstanceJobs(log=runtime.log.info), "segment_instances", "instance_status")

    def start_job(self) -> InstanceJobStatus:
        return self.jobs.start(self.map_server.map, self.parameters.config.instances, self._camera_position())

    def publish_result(self, result: JobResult) -> None:
        frame_id = self.parameters.server_config.frame_id
        stamp = self.node.get_clock().now().to_msg()
        space = self.map_server.map.label_space
        self.cloud_pub.publish(instances_to_cloud(result, space, frame_id, stamp))
        self.markers_pub.publish(object_markers(result.objects, space, frame_id, stamp))
        if self._on_objects is not None:
            self._on_objects(result.objects, frame_id, stamp)
        self.map_server.mark_changed()  # the map's instance layer changed

    def stats(self) -> dict:
        """The latest job's state for ``~/get_stats`` (without the object list)."""
        status = super().stats()
        status["objects"] = len(status["objects"])
        return status
