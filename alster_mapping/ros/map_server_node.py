"""MapServerNode: serves a SemanticVoxelMap over ROS 2 (publish, save, load, clear, stats).

The first part of the live mapping node: it owns the map, publishes it and answers the
map services. ``MappingNode`` (``ros/mapping_node.py``: synchronised RGB-D input, poses, a
worker thread that writes into ``self.map``) builds on it through the hooks
``config_sections``, ``fixed_parameter``, ``check_loaded_map``, ``on_map_replaced`` and
``shutdown``, and calls ``mark_changed()`` after each update.

Topics (``~`` = the node name, default ``/mapping_node``):

- ``~/semantic_cloud`` (sensor_msgs/PointCloud2; reliable, transient local, depth 1, so
  a late RViz still gets the latest map): one point per voxel with x, y, z, rgb, label,
  confidence (see ``alster_mapping.ros.cloud``). Published by a timer every
  ``publish_period`` seconds (steady clock, also with ``use_sim_time``) when the map
  changed since the last publication, and once after start-up.

Services (std_srvs/Trigger; the answer's ``message`` explains, ``success`` says whether it worked):

- ``~/save_map``: write the map atomically to ``save_path``.
- ``~/load_map``: read ``map_file`` (or ``save_path`` when empty) and replace the map;
  a missing, corrupt or incompatible file leaves the live map unchanged.
- ``~/clear_map``: remove every voxel.
- ``~/get_stats``: compact JSON: voxels, blocks, bytes, voxel_size, feature_dim,
  label_space, feature_kind, labels (class name -> voxels).

Parameters: every ``MappingConfig`` leaf (``label_space``, ``map.*``, ``label_fusion.*``)
plus the ``MapServerConfig`` fields below. The map's geometry (``label_space``,
``map.voxel_size``, ``map.feature_dim``, ``map.block_size``, ``map.device``,
``map.initial_capacity``) is fixed while the node runs; a map loaded from ``map_file`` at
start-up brings its own geometry, which then wins over the parameters (with a warning).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import PointCloud2
from std_srvs.srv import Trigger

from ..core.config import MappingConfig, param, validate
from ..core.labels import LabelSpace
from ..map.map_file import MapFileError
from ..map.voxel_map import SemanticVoxelMap
from .cloud import COLOR_BY, arrays_to_cloud
from .params import ParameterError, apply_parameters, declare_config

NODE_NAME = "mapping_node"

# MappingConfig keys that describe the live map's geometry: fixed while the node runs.
FIXED_AT_START = (
    "label_space",
    "map.voxel_size",
    "map.feature_dim",
    "map.block_size",
    "map.device",
    "map.initial_capacity",
)

CLOUD_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""QoS of ``~/semantic_cloud``: the latest map is kept for subscribers that join late."""


@dataclass
class MapServerConfig:
    """Parameters of the map server itself (ROS-only; the engine's live in ``MappingConfig``)."""

    map_file: str = param(
        "", "map file loaded at start-up and by ~/load_map ('' = start empty; load_map then reads save_path)"
    )
    save_path: str = param("alster_map.safetensors", "file written by ~/save_map and on shutdown")
    frame_id: str = param("map", "frame of the published map cloud")
    publish_period: float = param(1.0, "seconds between checks for map changes to publish", min=0.05, max=3600.0)
    color_by: str = param(
        "label", "colour of the cloud's points: label colours or mean observed colours", choices=COLOR_BY
    )
    save_on_shutdown: bool = param(False, "save the map to save_path when the node shuts down")


class MapServerNode(Node):
    """Owns a ``SemanticVoxelMap``, publishes it as a cloud and serves map services.

    node_name: ROS node name. voxel_map: serve this map instead of creating one (then
    ``map_file`` is not loaded at start-up). Other keyword arguments go to ``rclpy.node.Node``
    (e.g. ``parameter_overrides``, ``context``). Raises ValueError on invalid parameters.
    """

    def __init__(self, node_name: str = NODE_NAME, *, voxel_map: SemanticVoxelMap | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        problems = []
        for attr, defaults in self.config_sections():
            try:
                setattr(self, attr, declare_config(self, defaults))
            except ParameterError as exc:
                problems += exc.problems
        if problems:
            raise ParameterError(problems)
        self.config: MappingConfig
        self.server_config: MapServerConfig
        self.map = voxel_map if voxel_map is not None else self._initial_map()

        # Map version: bumped by every change; the timer publishes when it moved on.
        self._version_lock = threading.Lock()
        self._version = 1
        self._published_version = 0

        self.cloud_pub = self.create_publisher(PointCloud2, "~/semantic_cloud", CLOUD_QOS)
        # Services and the publishing timer run in separate groups, so a MultiThreadedExecutor
        # answers services while a large cloud is being built and published.
        self.service_group = MutuallyExclusiveCallbackGroup()
        self.timer_group = MutuallyExclusiveCallbackGroup()
        for name, callback in (
            ("~/save_map", self._on_save_map),
            ("~/load_map", self._on_load_map),
            ("~/clear_map", self._on_clear_map),
            ("~/get_stats", self._on_get_stats),
        ):
            self.create_service(Trigger, name, callback, callback_group=self.service_group)
        # A steady clock: with use_sim_time the map is still served while a bag is paused.
        self.steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self.publish_timer = self.create_timer(
            self.server_config.publish_period,
            self._on_publish_timer,
            callback_group=self.timer_group,
            clock=self.steady_clock,
        )
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.get_logger().info(
            f"serving a map of {len(self.map)} voxels ({self.map.voxel_size} m, label space "
            f"{self.map.label_space.name!r}) on {self.cloud_pub.topic_name}"
        )

    # -- hooks for subclasses (the mapping node) -----------------------------------------------

    def config_sections(self) -> list[tuple[str, object]]:
        """(attribute, default config) of every config whose leaves are declared as parameters."""
        return [("config", MappingConfig()), ("server_config", MapServerConfig())]

    def fixed_parameter(self, name: str) -> bool:
        """Whether parameter ``name`` cannot change while the node runs."""
        return name in FIXED_AT_START

    def check_loaded_map(self, loaded: SemanticVoxelMap) -> str | None:
        """Why ``loaded`` (read by ~/load_map) cannot replace the live map; None when it can."""
        return None

    def on_map_replaced(self) -> None:
        """Called after ~/load_map or ~/clear_map replaced the map's contents."""

    def shutdown(self) -> None:
        """Stop background work before the node is saved and destroyed (called by ``main``)."""

    # -- start-up ------------------------------------------------------------------------

    def _initial_map(self) -> SemanticVoxelMap:
        """The map at start-up: ``map_file`` if set and readable, else an empty map from the parameters."""
        try:
            label_space = LabelSpace.load(self.config.label_space)
        except ValueError as exc:
            raise ParameterError([f"label_space = {self.config.label_space!r}: {exc}"]) from exc
        try:
            empty = SemanticVoxelMap(self.config.map, label_space)
        except (RuntimeError, ValueError, AssertionError) as exc:  # e.g. map.device names an absent device
            raise ValueError(f"cannot create the map from the parameters: {exc}") from exc
        path = self.server_config.map_file
        if not path:
            return empty
        try:
            loaded = SemanticVoxelMap.load(Path(path).expanduser(), device=self.config.map.device)
        except MapFileError as exc:
            self.get_logger().error(f"{exc}; starting with an empty map")
            return empty
        self._adopt_file_geometry(loaded, label_space, path)
        self.get_logger().info(f"loaded {len(loaded)} voxels from {path}")
        return loaded

    def _adopt_file_geometry(self, loaded: SemanticVoxelMap, label_space: LabelSpace, path: str) -> None:
        """Give ``loaded`` the parameters' non-geometry settings; its own geometry wins (warn, update params)."""
        cfg = self.config.map
        file_cfg = loaded.config
        differences = []
        for key, ours, theirs in (
            ("map.voxel_size", cfg.voxel_size, loaded.voxel_size),
            ("map.feature_dim", cfg.feature_dim, loaded.feature_dim),
            ("map.block_size", cfg.block_size, file_cfg.block_size),
        ):
            if ours != theirs:
                differences.append((key, ours, theirs))
        if loaded.label_space != label_space:
            differences.append(("label_space", self.config.label_space, loaded.label_space.name))
        # max_bytes, color_weight_cap, initial_capacity: the parameters' values.
        loaded.config = validate(
            dataclasses.replace(
                cfg, voxel_size=loaded.voxel_size, feature_dim=loaded.feature_dim, block_size=file_cfg.block_size
            )
        )
        if differences:
            listing = ", ".join(f"{key} {theirs!r} (parameter: {ours!r})" for key, ours, theirs in differences)
            self.get_logger().warning(f"map file {path} has {listing}; the file's values are used")
            self.set_parameters([Parameter(key, value=theirs) for key, _, theirs in differences])
            self.config = apply_parameters(
                self.config, [Parameter(key, value=theirs) for key, _, theirs in differences if key != "label_space"]
            )
            if loaded.label_space != label_space:
                self.config.label_space = loaded.label_space.name

    # -- parameters at run time -------------------------------------------------------------

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        fixed = [p.name for p in parameters if self.fixed_parameter(p.name)]
        if fixed:
            return SetParametersResult(
                successful=False,
                reason=f"{', '.join(fixed)} fixed while the node runs (the live map's geometry); restart the node",
            )
        try:
            for attr, _ in self.config_sections():
                apply_parameters(getattr(self, attr), parameters)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        old = self.server_config
        for attr, _ in self.config_sections():
            setattr(self, attr, apply_parameters(getattr(self, attr), parameters))
        cfg = self.map.config
        self.map.config = dataclasses.replace(
            cfg, max_bytes=self.config.map.max_bytes, color_weight_cap=self.config.map.color_weight_cap
        )
        if self.server_config.publish_period != old.publish_period:
            self.publish_timer.timer_period_ns = int(self.server_config.publish_period * 1e9)
        if self.server_config.color_by != old.color_by or self.server_config.frame_id != old.frame_id:
            self.mark_changed()

    # -- publishing ------------------------------------------------------------------------

    def mark_changed(self) -> None:
        """Note that the map changed; the next timer tick publishes it. Thread-safe."""
        with self._version_lock:
            self._version += 1

    def publish_map(self) -> int:
        """Publish the whole map now; returns the number of points."""
        arrays = self.map.to_arrays()
        cfg = self.server_config
        msg = arrays_to_cloud(arrays, cfg.frame_id, self.get_clock().now().to_msg(), cfg.color_by)
        self.cloud_pub.publish(msg)
        return len(arrays)

    def _on_publish_timer(self) -> None:
        version = self._version  # read before the snapshot: a change during it publishes again
        if version == self._published_version:
            return
        n = self.publish_map()
        self._published_version = version
        self.get_logger().debug(f"published {n} voxels")

    # -- services ------------------------------------------------------------------------------

    def _on_save_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path_text = self.server_config.save_path
        if not path_text:
            response.success, response.message = False, "save_path is empty"
            return response
        path = Path(path_text).expanduser().absolute()
        n = len(self.map)
        try:
            self.map.save(path)
        except (OSError, ValueError) as exc:
            response.success, response.message = False, f"cannot save the map to {path}: {exc}"
            self._log("error", response.message)
            return response
        response.success, response.message = True, f"saved {n} voxels to {path}"
        self._log("info", response.message)
        return response

    def _on_load_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path_text = self.server_config.map_file or self.server_config.save_path
        if not path_text:
            response.success, response.message = False, "map_file and save_path are empty"
            return response
        path = Path(path_text).expanduser().absolute()
        try:
            loaded = SemanticVoxelMap.load(path, device=str(self.map.device))
            why = self.check_loaded_map(loaded)
            if why:
                raise ValueError(why)
            self.map.replace_with(loaded)
        except ValueError as exc:  # MapFileError, or a geometry / label space mismatch
            response.success, response.message = False, f"cannot load {path}: {exc}; the map is unchanged"
            self.get_logger().error(response.message)
            return response
        self.on_map_replaced()
        self.mark_changed()
        response.success, response.message = True, f"loaded {len(self.map)} voxels from {path}"
        self.get_logger().info(response.message)
        return response

    def _on_clear_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self.map.lock:
            n = len(self.map)
            self.map.clear()
        self.on_map_replaced()
        self.mark_changed()
        response.success, response.message = True, f"cleared {n} voxels"
        self.get_logger().info(response.message)
        return response

    def _on_get_stats(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = True, json.dumps(self.stats(), separators=(",", ":"))
        return response

    def stats(self) -> dict:
        """Map statistics (what ``~/get_stats`` answers as JSON)."""
        m = self.map
        with m.lock:
            counts, unknown = m.label_counts()
            stats = {
                "voxels": len(m),
                "blocks": m.num_blocks,
                "bytes": m.nbytes(),
                "voxel_size": m.voxel_size,
                "feature_dim": m.feature_dim,
                "label_space": m.label_space.name,
                "feature_kind": m.feature_kind,
            }
        labels = {"unknown": unknown, **dict(zip(m.label_space.names, counts.tolist()))}
        stats["labels"] = {name: int(c) for name, c in labels.items() if c}
        return stats

    # -- shutdown ------------------------------------------------------------------------------

    def save_on_shutdown(self) -> bool:
        """Save the map to ``save_path`` if ``save_on_shutdown`` is set; False if that failed (logged)."""
        if not self.server_config.save_on_shutdown:
            return True
        return self._on_save_map(Trigger.Request(), Trigger.Response()).success

    def _log(self, level: str, message: str) -> None:
        """Log through the node's logger, or to stderr once the context is shut down (no /rosout then)."""
        if self.context.ok():
            getattr(self.get_logger(), level)(message)
        else:
            print(f"[{level.upper()}] [{self.get_name()}]: {message}", file=sys.stderr, flush=True)


def main(args: list[str] | None = None, node_class: type[MapServerNode] | None = None) -> int:
    """Run ``node_class`` (default ``MapServerNode``) until Ctrl-C / SIGTERM; returns the exit code.

    1 on invalid parameters or any other start-up error the node raises as ValueError
    (e.g. a missing or corrupt checkpoint), printed as one line without a traceback, and
    when saving on shutdown fails.
    """
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = (node_class or MapServerNode)()
        except ValueError as exc:
            print(f"{NODE_NAME}: {exc}", file=sys.stderr)
            return 1
        # Threads for the services, the timers and the input callbacks: they run in
        # separate callback groups, so a service is answered while a cloud is published.
        executor = MultiThreadedExecutor(num_threads=4)
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
        return 0 if node.save_on_shutdown() else 1
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
