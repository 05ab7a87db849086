"""RuntimeControl: the services that steer a running node — pause mapping, clear part of the map.

Given the node, it serves:

- ``~/set_paused`` (std_srvs/SetBool; only with a live pipeline): ``data: true`` stops
  integrating frames (they are still received, synchronised and counted as
  ``pipeline.paused_frames``), ``false`` resumes. Every service and output keeps working
  while paused, so a robot can be carried or driven through a place that must not be
  mapped, or the map saved, without stopping the node.
- ``~/clear_region`` (std_srvs/Trigger): removes the voxels whose centres lie in the region
  the ``clear_region.*`` parameters describe (a box between ``min`` and ``max`` or a sphere
  of ``radius`` around ``center``, in the map frame; read at each call, so
  ``ros2 param set`` then the call clears any region). Answers the number removed as JSON.
  An inverted box or a non-finite point is refused with the reason and the map is left as
  it was. The map (and the floor grid) is republished.
"""

from __future__ import annotations

import json
from typing import Protocol

from rclpy.node import Node
from std_srvs.srv import SetBool, Trigger

from .map_server import MapServer
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime


class Pausable(Protocol):
    """A pipeline that can stop integrating frames (``LiveMapping``)."""

    paused: bool


class RuntimeControl:
    """node, runtime, parameters: the node's. map_server: the map ``~/clear_region`` edits.
    pipeline: what ``~/set_paused`` pauses (None: the service is not offered)."""

    def __init__(self, node: Node, runtime: NodeRuntime, parameters: NodeParameters, map_server: MapServer, pipeline: Pausable | None = None):
        self.log = runtime.log
        self.parameters = parameters
        self.map_server = map_server
        self.pipeline = pipeline
        group = map_server.service_group
        node.create_service(Trigger, "~/clear_region", runtime.guarded_service("clear_region", self._on_clear_region), callback_group=group)
        if pipeline is not None:
            node.create_service(SetBool, "~/set_paused", runtime.guarded_service("set_paused", self._on_set_paused), callback_group=group)

    def _on_set_paused(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        paused = bool(request.data)
        was = self.pipeline.paused
        self.pipeline.paused = paused
        response.success = True
        state = "paused: frames are received but not mapped" if paused else "mapping"
        response.message = state if was != paused else f"already {state}"
        if was != paused:
            self.log.info(f"~/set_paused: {state}")
        return response

    def _on_clear_region(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        region = self.parameters.server_config.clear_region
        voxel_map = self.map_server.map
        try:
            if region.shape == "box":
                removed = voxel_map.remove_box(region.min, region.max)
                where = f"box {list(region.min)} .. {list(region.max)}"
            else:
                removed = voxel_map.remove_sphere(region.center, region.radius)
                where = f"sphere of {region.radius} m around {list(region.center)}"
        except ValueError as exc:
            response.success = False
            response.message = f"clear_region ({region.shape}): {exc}; the map is unchanged"
            self.log.warning(response.message)
            return response
        if removed:
            self.map_server.mark_changed()
        response.success = True
        response.message = json.dumps({"removed": removed, "voxels": len(voxel_map), "region": where})
        self.log.info(f"~/clear_region removed {removed} voxels in the {where}")
        return response
