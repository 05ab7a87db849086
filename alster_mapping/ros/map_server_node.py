"""MapServerNode: a node that only serves a map (``MapServer``) — publish, save, load, clear, stats.

A node for serving a saved map, and the ``main`` both nodes share. The node is a
composition: ``NodeRuntime`` (log, guarded callbacks, exit), ``NodeParameters`` (the
``MappingConfig`` and ``MapServerConfig`` parameters), the ``MapServer`` component
(``ros/map_server.py``, which documents the topics and services), ``InstanceService``
(``ros/instance_service.py``: ``~/segment_instances`` on the served map), ``RefineService``,
``VisionOutputs`` (``~/label_info``, ``~/detections``), ``SemanticGridOutput``
(``~/semantic_grid`` for Nav2), ``RuntimeControl`` (``~/clear_region``) and
``CompletionService`` (``~/complete_scene`` on the newest keyframe loaded with the map). ``MappingNode``
(``ros/mapping_node.py``) composes the same parts with the live pipeline.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from ..map.voxel_map import SemanticVoxelMap
from ..pipeline.keyframes import KeyframeStore
from ..pipeline.mapping_config import MappingConfig
from .completion_service import CompletionService
from .grid_output import SemanticGridOutput
from .instance_service import InstanceService
from .map_server import MapServer
from .node_config import MapServerConfig, fixed_reason
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime
from .refine_service import RefineService
from .runtime_control import RuntimeControl
from .vision_outputs import VisionOutputs

NODE_NAME = "mapping_node"


class MapServerNode(Node):
    """A node serving a ``SemanticVoxelMap`` (the ``MapServer`` component alone).

    node_name: ROS node name. voxel_map: serve this map instead of creating one (then
    ``map_file`` is not loaded at start-up). Other keyword arguments go to
    ``rclpy.node.Node`` (e.g. ``parameter_overrides``, ``context``). Raises ValueError on
    invalid parameters.
    """

    def __init__(self, node_name: str = NODE_NAME, *, voxel_map: SemanticVoxelMap | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.runtime = NodeRuntime(self)
        self.parameters = NodeParameters(
            self, self.runtime, {"config": MappingConfig(), "server_config": MapServerConfig()}, fixed_reason
        )
        self.keyframes = KeyframeStore(self.parameters.config.keyframes)  # those saved with a loaded map
        stats = lambda: {  # noqa: E731
            "keyframes": self.keyframes.stats(),
            "instances": self.instances.stats(),
            "refine": self.refine.stats(),
            "completion": self.completion.stats(),
            "grid": self.grid.stats(),
        }
        self.map_server = MapServer(self, self.runtime, self.parameters, voxel_map, extra_stats=stats, keyframes=self.keyframes)
        self.vision = VisionOutputs(self, self.runtime, self.map_server)
        self.instances = InstanceService(self, self.runtime, self.parameters, self.map_server, on_objects=self.vision.publish_objects)
        self.refine = RefineService(self, self.runtime, self.parameters, self.map_server, self.keyframes)
        self.completion = CompletionService(self, self.runtime, self.parameters, self.map_server, self.keyframes)
        self.grid = SemanticGridOutput(self, self.runtime, self.parameters, self.map_server)
        self.control = RuntimeControl(self, self.runtime, self.parameters, self.map_server)
        self.parameters.watch()

    @property
    def map(self) -> SemanticVoxelMap:
        return self.map_server.map

    def stats(self) -> dict:
        """What ``~/get_stats`` answers."""
        return self.map_server.stats()

    def shutdown(self) -> None:
        """Cancel running instance and refine jobs (``main`` calls this before saving)."""
        self.instances.shutdown()
        self.refine.shutdown()
        self.completion.shutdown()


def main(args: list[str] | None = None, node_class: type[Node] | None = None) -> int:
    """Run ``node_class`` (default ``MapServerNode``; any node with ``runtime``,
    ``map_server`` and ``shutdown()``) until Ctrl-C / SIGTERM; returns the exit code.

    1 on invalid parameters or any other start-up error the node raises as ValueError
    (e.g. a missing or corrupt checkpoint), printed as one line without a traceback, and
    when saving on shutdown fails; the node's ``runtime.exit_code`` when it asked to stop
    (``EXIT_WATCHDOG``: a stuck worker).
    """
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = (node_class or MapServerNode)()
        except ValueError as exc:
            print(f"{NODE_NAME}: {exc}", file=sys.stderr)
            return 1
        # One thread for every callback: they are short (the network runs in the node's own
        # worker thread). rclpy's MultiThreadedExecutor manages its thread pool in Python on
        # every message; at a camera's 30 Hz that held the GIL most of the time and starved the
        # worker (measured: 0.07 frames/s mapped instead of 6.6 with this executor; RESULTS.md).
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except RuntimeError:
            # A signal shuts the context down asynchronously; an executor that is just
            # building its wait set then raises RCLError (a RuntimeError) instead of
            # ExternalShutdownException (rclpy's shutdown race). Anything else is an error.
            if rclpy.ok():
                raise
        finally:
            node.shutdown()
            executor.shutdown(timeout_sec=1.0)
        saved = node.map_server.save_on_shutdown()
        return node.runtime.exit_code or (0 if saved else 1)
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
