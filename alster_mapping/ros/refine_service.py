"""RefineService: ``~/refine_semantics`` — the map relabelled by SAFNet from its keyframes, in the background.

A component given the node (``MappingNode`` and ``MapServerNode`` both have it). The
engine side is ``pipeline.refine_job``; the service and status machinery is
``job_service.JobService``.

Service (std_srvs/Trigger):

- ``~/refine_semantics``: snapshot the map — or, with ``refine.region_radius`` > 0, the
  voxels within that floor-plan distance of the latest camera position — and the
  keyframes, and start a job; the reply comes at once (``job_service``). Refused with the
  reason: a job is running, no keyframes, too few voxels, voxels without colour, no camera
  pose yet. When the job is done the voted voxels carry SAFNet's labels and the map is
  republished on ``~/semantic_cloud``; mapping goes on meanwhile and keeps voting.

Topic:

- ``~/refine_status`` (std_msgs/String): JSON of the job: ``job``, ``state`` (idle,
  running, done, failed, dropped), ``progress``, ``message``, ``voxels``, ``relabelled``,
  ``changed``, ``chunks``, ``keyframes``, ``unseen_voxels``, ``seconds``,
  ``stage_seconds``. A job whose map was cleared or replaced meanwhile ends ``dropped``;
  a bad checkpoint, or keyframes that observe none of the voxels, end ``failed``.

Parameters: ``refine.*`` of ``MappingConfig`` (checkpoint, image_checkpoint, device,
region_radius, min_voxels, chunks.*), read at each request; the models are loaded on the
first request and kept while they stay the same. The keyframes: ``keyframes.*``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rclpy.node import Node

from ..pipeline.keyframes import KeyframeStore
from ..pipeline.refine_job import RefineJobs, RefineJobStatus, RefineResult
from .job_service import JobService
from .map_server import MapServer
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime


class RefineService(JobService):
    """``~/refine_semantics`` and ``~/refine_status`` (see the module docstring).

    node, runtime, parameters: the node's. map_server: owns the map. keyframes: the
    node's keyframe store. camera_position: the latest camera position (3,) [m] or None.
    """

    def __init__(
        self,
        node: Node,
        runtime: NodeRuntime,
        parameters: NodeParameters,
        map_server: MapServer,
        keyframes: KeyframeStore,
        camera_position: Callable[[], np.ndarray | None] = lambda: None,
    ):
        self.keyframes = keyframes
        self._camera_position = camera_position
        super().__init__(node, runtime, parameters, map_server, RefineJobs(log=runtime.log.info), "refine_semantics", "refine_status")

    def start_job(self) -> RefineJobStatus:
        return self.jobs.start(self.map_server.map, self.keyframes.keyframes(), self.parameters.config.refine, self._camera_position())

    def publish_result(self, result: RefineResult) -> None:
        self.map_server.mark_changed()  # the labels changed: the next tick republishes the cloud
