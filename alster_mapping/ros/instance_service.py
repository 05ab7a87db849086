"""InstanceService: ``~/segment_instances`` — the map's objects from ASIS or BAN, in the background.

A component given the node (``MappingNode`` and ``MapServerNode`` both have it). The
engine side is ``pipeline.instance_job``; this module converts and schedules.

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
  (progress at most every ``STATUS_PERIOD`` seconds). A job whose map was cleared or
  replaced meanwhile ends ``dropped``, with the reason; a bad checkpoint ends ``failed``.
- ``~/instances`` (sensor_msgs/PointCloud2): x, y, z, rgb (instance colour), label,
  instance, confidence per segmented voxel (``ros/instance_outputs.py``).
- ``~/objects`` (visualization_msgs/MarkerArray): a box and a text label per object.

Parameters: ``instances.*`` of ``MappingConfig`` (model, checkpoint, device,
region_radius, min_voxels, segmentation.*), read at each request; the model is loaded on
the first request and kept while they stay the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from ..pipeline.instance_job import InstanceJobs, JobBusy
from .instance_outputs import instances_to_cloud, object_markers
from .map_server import CLOUD_QOS, OUTPUT_EVENTS, MapServer
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime

STATUS_PERIOD = 0.5
"""Seconds between checks of the running job (status and results are published from the executor)."""


class InstanceService:
    """``~/segment_instances`` with its status, cloud and marker topics (see the module docstring).

    node, runtime, parameters: the node's. map_server: owns the map (and the frame id).
    camera_position: the latest camera position (3,) [m] or None (for the region).
    """

    def __init__(
        self,
        node: Node,
        runtime: NodeRuntime,
        parameters: NodeParameters,
        map_server: MapServer,
        camera_position: Callable[[], np.ndarray | None] = lambda: None,
    ):
        self.node = node
        self.log = runtime.log
        self.parameters = parameters
        self.map_server = map_server
        self._camera_position = camera_position
        self.jobs = InstanceJobs(log=self.log.info)
        self.status_pub = node.create_publisher(String, "~/instance_status", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        self.cloud_pub = node.create_publisher(PointCloud2, "~/instances", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        self.markers_pub = node.create_publisher(MarkerArray, "~/objects", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        self.group = MutuallyExclusiveCallbackGroup()
        node.create_service(
            Trigger, "~/segment_instances", runtime.guarded_service("segment_instances", self._on_segment), callback_group=self.group
        )
        self.timer = node.create_timer(
            STATUS_PERIOD,
            runtime.guarded_callback("instance_status", self._on_timer),
            callback_group=self.group,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self._published: tuple | None = None
        self._publish_status()

    def _on_segment(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        config = self.parameters.config.instances
        try:
            status = self.jobs.start(self.map_server.map, config, self._camera_position())
        except (JobBusy, ValueError) as exc:
            response.success, response.message = False, str(exc)
            self.log.warning(f"~/segment_instances refused: {exc}")
            return response
        self._publish_status()
        reply = {"job": status.job, "state": status.state, "voxels": status.voxels, "message": status.message}
        response.success, response.message = True, json.dumps(reply)
        self.log.info(f"instance job {status.job}: {status.message}")
        return response

    def _on_timer(self) -> None:
        result = self.jobs.take_result()
        if result is not None:
            frame_id = self.parameters.server_config.frame_id
            stamp = self.node.get_clock().now().to_msg()
            space = self.map_server.map.label_space
            self.cloud_pub.publish(instances_to_cloud(result, space, frame_id, stamp))
            self.markers_pub.publish(object_markers(result.objects, space, frame_id, stamp))
            self.map_server.mark_changed()  # the map's instance layer changed
        self._publish_status()

    def _publish_status(self) -> None:
        status = self.jobs.status()
        key = (status.job, status.state, status.progress)
        if key == self._published:
            return
        self.status_pub.publish(String(data=json.dumps(status.to_dict(), separators=(",", ":"))))
        self._published = key

    def stats(self) -> dict:
        """The latest job's state for ``~/get_stats`` (without the object list)."""
        status = self.jobs.status().to_dict()
        status["objects"] = len(status["objects"])
        return status

    def shutdown(self) -> None:
        """Cancel a running job (at its next batch of blocks) and wait for it, at most 10 s."""
        self.jobs.stop()
