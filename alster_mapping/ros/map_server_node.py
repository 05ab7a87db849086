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
  changed since the last publication and someone subscribes.

Services (std_srvs/Trigger; the answer's ``message`` explains, ``success`` says whether it
worked). No request can take the node down: any failure, expected or not, answers
``success=false`` with the reason and leaves the map as it was.

- ``~/save_map``: write the map atomically to ``save_path``. Temporary files that an
  interrupted save (kill -9) left beside ``save_path`` or ``map_file`` are removed at
  start-up and after a failed save.
- ``~/load_map``: read ``map_file`` (or ``save_path`` when empty) and replace the map;
  a missing, corrupt or incompatible file leaves the live map unchanged.
- ``~/clear_map``: remove every voxel.
- ``~/get_stats``: compact JSON: voxels, blocks, bytes, voxel_size, feature_dim,
  label_space, feature_kind, labels (class name -> voxels).

Parameters: every ``MappingConfig`` leaf (``label_space``, ``map.*``, ``label_fusion.*``)
plus the ``MapServerConfig`` fields (``ros/node_config.py``). The map's geometry (``label_space``,
``map.voxel_size``, ``map.feature_dim``, ``map.block_size``, ``map.device``,
``map.initial_capacity``) is fixed while the node runs; a map loaded from ``map_file`` at
start-up brings its own geometry, which then wins over the parameters (with a warning).

Logging goes through ``NodeLog`` (``self.log``), which never raises; callbacks and
services are wrapped by ``guarded_callback`` / ``guarded_service``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_srvs.srv import Trigger

from ..core.atomic_file import remove_stale_temporaries
from ..core.config import validate
from ..core.labels import LabelSpace
from ..map.map_file import MapFileError, load_map, save_map
from ..map.voxel_map import SemanticVoxelMap
from ..pipeline.mapping_config import MappingConfig
from .cloud import arrays_to_cloud
from .node_config import FIXED_AT_START, MapServerConfig
from .node_log import NodeLog
from .params import ParameterError, apply_parameters, declare_config
from .worker import Counters

NODE_NAME = "mapping_node"

EXIT_WATCHDOG = 3
"""Exit code when the node gives up on a stuck worker (``MappingNode``'s watchdog)."""

SHUTDOWN_SAVE_TIMEOUT = 30.0
"""Seconds a save on shutdown waits for the map's lock (a stuck worker may hold it)."""

OUTPUT_EVENTS = PublisherEventCallbacks(use_default_callbacks=False)
"""No QoS event handlers on the node's outputs: each costs the executor Python work on every
message it waits for, and a subscriber with incompatible QoS already warns on its side."""

CLOUD_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
"""QoS of ``~/semantic_cloud``: the latest map is kept for subscribers that join late."""


class MapServerNode(Node):
    """Owns a ``SemanticVoxelMap``, publishes it as a cloud and serves map services.

    node_name: ROS node name. voxel_map: serve this map instead of creating one (then
    ``map_file`` is not loaded at start-up). Other keyword arguments go to ``rclpy.node.Node``
    (e.g. ``parameter_overrides``, ``context``). Raises ValueError on invalid parameters.
    """

    def __init__(self, node_name: str = NODE_NAME, *, voxel_map: SemanticVoxelMap | None = None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.log = NodeLog(self.get_logger(), self.get_name(), self.context.ok)
        self.exit_code = 0
        self.server_counters = Counters()
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
        self._remove_stale_temporaries()
        self.map = voxel_map if voxel_map is not None else self._initial_map()

        # Map version: bumped by every change; the timer publishes when it moved on.
        self._version_lock = threading.Lock()
        self._version = 1
        self._published_version = 0

        self.cloud_pub = self.create_publisher(PointCloud2, "~/semantic_cloud", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
        # Services and the publishing timer run in separate groups: under a multi-threaded
        # executor (the node composed into a user's process) a service is answered while a
        # large cloud is built. ``main`` spins a single-threaded one (see there).
        self.service_group = MutuallyExclusiveCallbackGroup()
        self.timer_group = MutuallyExclusiveCallbackGroup()
        for name, callback in (
            ("save_map", self._on_save_map),
            ("load_map", self._on_load_map),
            ("clear_map", self._on_clear_map),
            ("get_stats", self._on_get_stats),
        ):
            self.create_service(Trigger, f"~/{name}", self.guarded_service(name, callback), callback_group=self.service_group)
        # A steady clock: with use_sim_time the map is still served while a bag is paused.
        self.steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self.publish_timer = self.create_timer(
            self.server_config.publish_period,
            self.guarded_callback("publish_cloud", self._on_publish_timer),
            callback_group=self.timer_group,
            clock=self.steady_clock,
        )
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self.guarded_callback("apply_parameters", self._apply_parameters))
        self.log.info(
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

    # -- robustness: callbacks that never raise, exit on request -------------------------------

    def guarded_service(self, name: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler`` for a service that never raises: an unexpected error answers ``success=false``.

        rclpy lets an exception in a service callback escape the executor, which ends the
        node; a failing request must only fail that request. Every failed request is
        counted as ``<name>.failed`` with its message (``stats()["failures"]``), unexpected
        errors also as ``<name>.errors``, and logged.
        """

        @functools.wraps(handler)
        def callback(request, response):
            try:
                response = handler(request, response)
            except Exception as exc:  # noqa: BLE001 - a request must never take the node down
                self.server_counters.add(f"{name}.errors")
                response.success = False
                response.message = f"{name} failed: {type(exc).__name__}: {exc}"
                self.log.error(response.message)
            if not response.success:
                self.server_counters.add(f"{name}.failed", message=response.message)
            return response

        return callback

    def guarded_callback(self, name: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback`` (a timer or subscription) that logs and counts unexpected errors instead of raising."""

        @functools.wraps(callback)
        def wrapper(*args):
            try:
                return callback(*args)
            except Exception as exc:  # noqa: BLE001 - an exception here would end the executor
                self.server_counters.add(f"{name}.errors", message=f"{type(exc).__name__}: {exc}")
                self.log.throttled(f"callback.{name}", f"{name} failed: {type(exc).__name__}: {exc}", "error")
                return None

        return wrapper

    def request_exit(self, code: int, reason: str) -> None:
        """End the node's spin with exit code ``code`` (``main`` returns it), logging ``reason``."""
        self.log.error(f"{reason}; exiting with code {code}")
        self.exit_code = code
        self.context.try_shutdown()

    def _remove_stale_temporaries(self) -> None:
        """Remove temporary files that saves killed mid-write (kill -9, power loss) left beside the map files."""
        for path_text in {self.server_config.save_path, self.server_config.map_file} - {""}:
            try:
                removed = remove_stale_temporaries(Path(path_text).expanduser().absolute())
            except Exception as exc:  # noqa: BLE001 - e.g. an unknown ~user: the save reports it later
                self.log.warning(f"cannot check {path_text!r} for temporary files of interrupted saves: {exc}")
                continue
            if removed:
                self.log.info(f"removed {len(removed)} temporary file(s) of interrupted saves: {', '.join(map(str, removed))}")

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
            loaded = load_map(Path(path).expanduser(), device=self.config.map.device)
        except MapFileError as exc:
            self.log.error(f"{exc}; starting with an empty map")
            return empty
        except Exception as exc:  # noqa: BLE001 - e.g. an unknown ~user, out of memory
            self.log.error(f"cannot load map file {path!r}: {type(exc).__name__}: {exc}; starting with an empty map")
            return empty
        self._adopt_file_geometry(loaded, label_space, path)
        self.log.info(f"loaded {len(loaded)} voxels from {path}")
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
            self.log.warning(f"map file {path} has {listing}; the file's values are used")
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
        if self.cloud_pub.get_subscription_count() == 0:
            # Nobody listens: a cloud of the whole map costs CPU the worker needs. A subscriber
            # that joins later gets the current map at the next tick (the version is still new).
            return
        n = self.publish_map()
        self._published_version = version
        self.log.debug(f"published {n} voxels")

    # -- services ------------------------------------------------------------------------------

    def _on_save_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path_text = self.server_config.save_path
        if not path_text:
            response.success, response.message = False, "save_path is empty"
            return response
        path = Path(path_text)
        try:
            path = path.expanduser().absolute()
            n = len(self.map)
            save_map(self.map, path)
        except Exception as exc:  # noqa: BLE001 - OSError (full disk, name too long), unknown ~user, ...
            response.success, response.message = False, f"cannot save the map to {path}: {exc}; the map is unchanged"
            self.log.error(response.message)
            remove_stale_temporaries(path)
            return response
        response.success, response.message = True, f"saved {n} voxels to {path}"
        self.log.info(response.message)
        return response

    def _on_load_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path_text = self.server_config.map_file or self.server_config.save_path
        if not path_text:
            response.success, response.message = False, "map_file and save_path are empty"
            return response
        path = Path(path_text)
        try:
            path = path.expanduser().absolute()
            loaded = load_map(path, device=str(self.map.device))
            why = self.check_loaded_map(loaded)
            if why:
                raise ValueError(why)
            self.map.replace_with(loaded)
        except Exception as exc:  # noqa: BLE001 - MapFileError, a mismatch, an unknown ~user, out of memory
            response.success, response.message = False, f"cannot load {path}: {exc}; the map is unchanged"
            self.log.error(response.message)
            return response
        self.on_map_replaced()
        self.mark_changed()
        response.success, response.message = True, f"loaded {len(self.map)} voxels from {path}"
        self.log.info(response.message)
        return response

    def _on_clear_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self.map.lock:
            n = len(self.map)
            self.map.clear()
        self.on_map_replaced()
        self.mark_changed()
        response.success, response.message = True, f"cleared {n} voxels"
        self.log.info(response.message)
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
        stats["failures"] = self.server_counters.snapshot()
        return stats

    # -- shutdown ------------------------------------------------------------------------------

    def save_on_shutdown(self) -> bool:
        """Save the map to ``save_path`` if ``save_on_shutdown`` is set; False if that failed (logged).

        Waits at most ``SHUTDOWN_SAVE_TIMEOUT`` seconds for the map's lock, so a worker stuck
        inside a map operation cannot keep the process from exiting.
        """
        if not self.server_config.save_on_shutdown:
            return True
        if not self.map.lock.acquire(timeout=SHUTDOWN_SAVE_TIMEOUT):
            self.log.error(f"the map stayed locked for {SHUTDOWN_SAVE_TIMEOUT:.0f} s: not saved on shutdown")
            return False
        try:
            return self._on_save_map(Trigger.Request(), Trigger.Response()).success
        finally:
            self.map.lock.release()


def main(args: list[str] | None = None, node_class: type[MapServerNode] | None = None) -> int:
    """Run ``node_class`` (default ``MapServerNode``) until Ctrl-C / SIGTERM; returns the exit code.

    1 on invalid parameters or any other start-up error the node raises as ValueError
    (e.g. a missing or corrupt checkpoint), printed as one line without a traceback, and
    when saving on shutdown fails; the node's ``exit_code`` when it asked to stop
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
        saved = node.save_on_shutdown()
        return node.exit_code or (0 if saved else 1)
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
