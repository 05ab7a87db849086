"""JobService: a std_srvs/Trigger service that starts a background job of an offline model
on the map, with its status topic — what ``~/segment_instances`` (``instance_service.py``)
and ``~/refine_semantics`` (``refine_service.py``) share.

The reply comes at once: ``success=true`` with JSON ``{"job", "state", "voxels",
"message"}``, or ``success=false`` with the reason (a job is running: "busy: job N is
running (P % done)", or the job's own refusal: an empty map, no keyframes, ...). The job
never blocks mapping or the other services. The status topic (std_msgs/String; reliable,
transient local, depth 1) carries the job's status as JSON, published at each change
(progress at most every ``STATUS_PERIOD`` seconds); a finished job's result is handed to
the subclass's ``publish_result`` from the executor.
"""

from __future__ import annotations

import abc
import json
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from ..pipeline.background_job import BackgroundJobs, JobBusy, JobStatus
from .map_server import CLOUD_QOS, OUTPUT_EVENTS, MapServer
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime

STATUS_PERIOD = 0.5
"""Seconds between checks of the running job (status and results are published from the executor)."""


class JobService(abc.ABC):
    """A Trigger service ``~/SERVICE`` starting ``jobs`` and the topic ``~/STATUS_TOPIC``
    (see the module docstring). Subclasses implement ``start_job`` and ``publish_result``.

    node, runtime, parameters: the node's. map_server: owns the map (and the frame id).
    jobs: the family's ``BackgroundJobs``. service, status_topic: names under ``~/``.
    """

    def __init__(
        self,
        node: Node,
        runtime: NodeRuntime,
        parameters: NodeParameters,
        map_server: MapServer,
        jobs: BackgroundJobs,
        service: str,
        status_topic: str,
    ):
        self.node = node
        self.log = runtime.log
        self.parameters = parameters
        self.map_server = map_server
        self.jobs = jobs
        self.service = service
        self.status_pub = node.create_publisher(String, f"~/{status_topic}", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        self.group = MutuallyExclusiveCallbackGroup()
        node.create_service(Trigger, f"~/{service}", runtime.guarded_service(service, self._on_request), callback_group=self.group)
        self.timer = node.create_timer(
            STATUS_PERIOD,
            runtime.guarded_callback(status_topic, self._on_timer),
            callback_group=self.group,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self._published: tuple | None = None
        self.publish_status()

    @abc.abstractmethod
    def start_job(self) -> JobStatus:
        """Start a job with the current parameters (raises JobBusy / ValueError to refuse)."""

    @abc.abstractmethod
    def publish_result(self, result: Any) -> None:
        """Publish a finished job's result (called from the executor)."""

    def _on_request(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            status = self.start_job()
        except (JobBusy, ValueError) as exc:
            response.success, response.message = False, str(exc)
            self.log.warning(f"~/{self.service} refused: {exc}")
            return response
        self.publish_status()
        reply = {"job": status.job, "state": status.state, "voxels": status.voxels, "message": status.message}
        response.success, response.message = True, json.dumps(reply)
        self.log.info(f"{self.service} job {status.job}: {status.message}")
        return response

    def _on_timer(self) -> None:
        result = self.jobs.take_result()
        if result is not None:
            self.publish_result(result)
        self.publish_status()

    def publish_status(self) -> None:
        """Publish the job's status if it changed since the last time."""
        status = self.jobs.status()
        key = (status.job, status.state, status.progress)
        if key == self._published:
            return
        self.status_pub.publish(String(data=json.dumps(status.to_dict(), separators=(",", ":"))))
        self._published = key

    def stats(self) -> dict:
        """The latest job's state for ``~/get_stats``."""
        return self.jobs.status().to_dict()

    def shutdown(self) -> None:
        """Cancel a running job (at its next progress report) and wait for it, at most 10 s."""
        self.jobs.stop()
