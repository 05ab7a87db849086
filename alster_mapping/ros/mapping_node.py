"""MappingNode: the live ROS 2 semantic mapper (``ros2 run alster_mapping mapping_node``).

The node is a composition of components, each given the node:

- ``NodeRuntime`` (``node_runtime.py``): the log that never raises, guarded callbacks and
  services, the exit code;
- ``NodeParameters`` (``node_parameters.py``): ``MappingConfig``, ``MapServerConfig`` and
  ``MappingNodeConfig`` as ROS parameters (``docs/PARAMETERS.md``), fixed ones refused
  while running;
- ``MapServer`` (``map_server.py``): the map, ``~/semantic_cloud``, the map services
  (save, load, clear, stats), save on shutdown;
- ``LiveMapping`` (``live_mapping.py``): images, camera info and poses in, the worker
  thread that maps the newest frame, ``~/semantic_cloud_update``, ``~/markers``,
  ``~/label_image``, ``/diagnostics`` and the watchdog;
- ``InstanceService`` (``instance_service.py``): ``~/segment_instances`` (ASIS / BAN in a
  background job around the latest camera position), ``~/instance_status``,
  ``~/instances`` and ``~/objects``;
- ``RefineService`` (``refine_service.py``): ``~/refine_semantics`` (SAFNet relabels the
  map from the keyframes in a background job) and ``~/refine_status``; the keyframes
  (``pipeline.keyframes.KeyframeStore``) are kept by ``LiveMapping`` and saved and loaded
  with the map by ``MapServer``;
- ``VisionOutputs`` (``vision_outputs.py``): ``~/label_info`` and ``~/detections``
  (vision_msgs, when importable);
- ``SemanticGridOutput`` (``grid_output.py``): ``~/semantic_grid`` (nav_msgs/OccupancyGrid
  for Nav2) and one grid per class group;
- ``RuntimeControl`` (``runtime_control.py``): ``~/set_paused`` and ``~/clear_region``;
- ``CompletionService`` (``completion_service.py``): ``~/complete_scene`` (IMENet completes
  the scene in front of the newest keyframe in a background job), ``~/completion``,
  ``~/completion_label_image`` and ``~/completion_status``.

Model services (the offline fusion models) join as further components with runtime
parameters only. The modules of the components document their topics, services and
behaviour. A missing or corrupt checkpoint stops the node at start-up with one clear line
and exit code 1; the watchdog ends it with exit code 3.
"""

from __future__ import annotations

import sys

from rclpy.node import Node

from ..map.voxel_map import SemanticVoxelMap
from ..pipeline.keyframes import KeyframeStore
from ..pipeline.mapping_config import MappingConfig
from . import map_server_node
from .completion_service import CompletionService
from .grid_output import SemanticGridOutput
from .instance_service import InstanceService
from .live_mapping import LiveMapping
from .map_server import MapServer
from .map_server_node import NODE_NAME
from .node_config import POSE_SOURCES, CameraExtrinsicConfig, MappingNodeConfig, MapServerConfig, fixed_reason
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime
from .refine_service import RefineService
from .runtime_control import RuntimeControl
from .vision_outputs import VisionOutputs

# Parameters read once at start-up (they build the mapper); changing them needs a restart.
FIXED_ENGINE_KEYS = ("mode", "alster.checkpoint")
FIXED_ENGINE_PREFIXES = ("model.",)


def fixed_parameter(name: str) -> str | None:
    """Why ``name`` is fixed while running (the map geometry, the engine's mode and model, the
    pipeline's subscriptions and threads); None for parameters that may change."""
    if name in FIXED_ENGINE_KEYS or name.startswith(FIXED_ENGINE_PREFIXES):
        return "it builds the mapper's model at start-up"
    return fixed_reason(name)


class MappingNode(Node):
    """The live mapper: synchronised RGB-D (+ labels) and poses in, the semantic map out.

    node_name: ROS node name. voxel_map: map to write into (default: created or loaded
    from the parameters). model: an ``AlsterModel`` to use instead of the checkpoint /
    ``model.*`` parameters. Other keyword arguments go to ``rclpy.node.Node``. Raises
    ValueError (``ParameterError``, ``CheckpointError``) on invalid parameters or a
    missing / corrupt checkpoint; the node is destroyed first.
    """

    def __init__(self, node_name: str = NODE_NAME, *, voxel_map: SemanticVoxelMap | None = None, model=None, **kwargs):
        super().__init__(node_name, **kwargs)
        try:
            self.runtime = NodeRuntime(self)
            sections = {"config": MappingConfig(), "server_config": MapServerConfig(), "node_config": MappingNodeConfig()}
            self.parameters = NodeParameters(self, self.runtime, sections, fixed_parameter)
            self.keyframes = KeyframeStore(self.parameters.config.keyframes)
            self.map_server = MapServer(
                self,
                self.runtime,
                self.parameters,
                voxel_map,
                accepts_map=lambda loaded: self.live.accepts_map(loaded),
                on_map_replaced=lambda: self.live.on_map_replaced(),
                extra_stats=lambda: {
                    "pipeline": self.live.pipeline_stats(),
                    "keyframes": self.keyframes.stats(),
                    "instances": self.instances.stats(),
                    "refine": self.refine.stats(),
                    "completion": self.completion.stats(),
                    "grid": self.grid.stats(),
                },
                keyframes=self.keyframes,
            )
            self.live = LiveMapping(self, self.runtime, self.parameters, self.map_server, model, self.keyframes)
            camera = lambda: self.live.camera_position  # noqa: E731 - read at each request
            self.vision = VisionOutputs(self, self.runtime, self.map_server)
            self.instances = InstanceService(self, self.runtime, self.parameters, self.map_server, camera, self.vision.publish_objects)
            self.refine = RefineService(self, self.runtime, self.parameters, self.map_server, self.keyframes, camera)
            floor = lambda: self.live.mapper.gravity.floor_height()  # noqa: E731 - read at each request
            self.completion = CompletionService(self, self.runtime, self.parameters, self.map_server, self.keyframes, floor)
            self.grid = SemanticGridOutput(self, self.runtime, self.parameters, self.map_server)
            self.control = RuntimeControl(self, self.runtime, self.parameters, self.map_server, self.live)
            self.parameters.watch()
        except BaseException:
            self.destroy_node()
            raise

    # The parts tests, tools and users reach most often.

    @property
    def map(self) -> SemanticVoxelMap:
        return self.map_server.map

    def stats(self) -> dict:
        """What ``~/get_stats`` answers: map statistics plus ``pipeline`` (frame counters, queue, sync, latency)."""
        return self.map_server.stats()

    def shutdown(self) -> None:
        """Stop the worker thread and running instance and refine jobs (``main`` calls this before saving)."""
        self.live.shutdown()
        self.instances.shutdown()
        self.refine.shutdown()
        self.completion.shutdown()


def main(args: list[str] | None = None) -> int:
    """Run the mapping node until Ctrl-C / SIGTERM; returns the exit code (1 on start-up errors, 3 from the watchdog)."""
    return map_server_node.main(args, MappingNode)


__all__ = ["POSE_SOURCES", "CameraExtrinsicConfig", "MappingNode", "MappingNodeConfig", "main"]

if __name__ == "__main__":
    sys.exit(main())
