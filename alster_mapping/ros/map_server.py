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

- ``~/save_map``: write the map atomically to ``save_path`` (and the keyframes beside it,
  ``MAP.keyframes.safetensors``, with ``keyframes.save_with_map``). Temporary files that an
  interrupted save (kill -9) left beside ``save_path`` or ``map_file`` are removed at
  start-up and after a failed save.
- ``~/load_map``: read ``map_file`` (or ``save_path`` when empty) and replace the map
  (and the keyframes, with those saved beside it: none when there are none); a missing,
  corrupt or incompatible map file leaves the live map unchanged.
- ``~/clear_map``: remove every voxel (and keyframe).
- ``~/get_stats``: compact JSON: voxels, blocks, bytes, voxel_size, feature_dim,
  label_space, feature_kind, device, index (the block index's backend), labels (class
  name -> voxels).

Parameters (declared by the node's ``NodeParameters``; this component reads ``config``
and ``server_config`` from it): every ``MappingConfig`` leaf (``label_space``, ``map.*``,
``label_fusion.*``) plus the ``MapServerConfig`` fields (``ros/node_config.py``). The map's geometry (``label_space``,
``map.voxel_size``, ``map.feature_dim``, ``map.block_size``, ``map.device``,
``map.initial_capacity``) is fixed while the node runs; a map loaded from ``map_file`` at
start-up brings its own geometry, which then wins over the parameters (with a warning).

Logging goes through the node's ``NodeRuntime`` log, which never raises; callbacks and
services are wrapped by its ``guarded_callback`` / ``guarded_service``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks
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
from ..pipeline.keyframes import KeyframeStore, keyframe_file
from .cloud import arrays_to_cloud
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime
from .params import ParameterError, apply_parameters

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


class MapServer:
    """Owns a ``SemanticVoxelMap``, publishes it as a cloud and serves the map services.

    node: the node it runs in. runtime: the node's log, guards and exit. parameters: the
    node's parameters, with sections ``config`` (MappingConfig) and ``server_config``
    (MapServerConfig). voxel_map: serve this map instead of creating one (then
    ``map_file`` is not loaded at start-up). accepts_map: why a map read by ~/load_map
    cannot replace the live one (None when it can). on_map_replaced: called after
    ~/load_map or ~/clear_map replaced the map's contents. extra_stats: more sections for
    ``stats()`` (e.g. the pipeline's counters). keyframes: the node's keyframe store,
    saved beside the map and loaded with it (``keyframes.save_with_map``), emptied with it.
    Raises ValueError on invalid parameters.
    """

    def __init__(
        self,
        node: Node,
        runtime: NodeRuntime,
        parameters: NodeParameters,
        voxel_map: SemanticVoxelMap | None = None,
        accepts_map: Callable[[SemanticVoxelMap], str | None] | None = None,
        on_map_replaced: Callable[[], None] | None = None,
        extra_stats: Callable[[], dict] | None = None,
        keyframes: KeyframeStore | None = None,
    ):
        self.node = node
        self.keyframes = keyframes
        self.log = runtime.log
        self.counters = runtime.counters
        self.parameters = parameters
        self._accepts_map = accepts_map or (lambda loaded: None)
        self._on_map_replaced = on_map_replaced or (lambda: None)
        self._extra_stats = extra_stats or dict
        self._remove_stale_temporaries()
        self.map = voxel_map if voxel_map is not None else self._initial_map()

        # Map version: bumped by every change; the timer publishes when it moved on.
        self._version_lock = threading.Lock()
        self.version = 1
        self._published_version = 0

        self.cloud_pub = node.create_publisher(PointCloud2, "~/semantic_cloud", CLOUD_QOS, event_callbacks=OUTPUT_EVENTS)
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
            node.create_service(Trigger, f"~/{name}", runtime.guarded_service(name, callback), callback_group=self.service_group)
        # A steady clock: with use_sim_time the map is still served while a bag is paused.
        self.steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self.publish_timer = node.create_timer(
            self.parameters.server_config.publish_period,
            runtime.guarded_callback("publish_cloud", self._on_publish_timer),
            callback_group=self.timer_group,
            clock=self.steady_clock,
        )
        parameters.on_change(self._on_parameters_changed)
        self.log.info(
            f"serving a map of {len(self.map)} voxels ({self.map.voxel_size} m, label space "
            f"{self.map.label_space.name!r}) on {self.cloud_pub.topic_name}"
        )

    def _remove_stale_temporaries(self) -> None:
        """Remove temporary files that saves killed mid-write (kill -9, power loss) left beside the map files."""
        for path_text in {self.parameters.server_config.save_path, self.parameters.server_config.map_file} - {""}:
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
            label_space = LabelSpace.load(self.parameters.config.label_space)
        except ValueError as exc:
            raise ParameterError([f"label_space = {self.parameters.config.label_space!r}: {exc}"]) from exc
        try:
            empty = SemanticVoxelMap(self.parameters.config.map, label_space)
        except (RuntimeError, ValueError, AssertionError) as exc:  # e.g. map.device names an absent device
            raise ValueError(f"cannot create the map from the parameters: {exc}") from exc
        path = self.parameters.server_config.map_file
        if not path:
            return empty
        try:
            loaded = load_map(
                Path(path).expanduser(), device=self.parameters.config.map.device, index=self.parameters.config.map.index
            )
        except MapFileError as exc:
            self.log.error(f"{exc}; starting with an empty map")
            return empty
        except Exception as exc:  # noqa: BLE001 - e.g. an unknown ~user, out of memory
            self.log.error(f"cannot load map file {path!r}: {type(exc).__name__}: {exc}; starting with an empty map")
            return empty
        self._adopt_file_geometry(loaded, label_space, path)
        self.log.info(f"loaded {len(loaded)} voxels from {path}{self._load_keyframes(Path(path).expanduser())}")
        return loaded

    def _adopt_file_geometry(self, loaded: SemanticVoxelMap, label_space: LabelSpace, path: str) -> None:
        """Give ``loaded`` the parameters' non-geometry settings; its own geometry wins (warn, update params)."""
        cfg = self.parameters.config.map
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
            differences.append(("label_space", self.parameters.config.label_space, loaded.label_space.name))
        # max_bytes, color_weight_cap, initial_capacity: the parameters' values.
        loaded.config = validate(
            dataclasses.replace(
                cfg, voxel_size=loaded.voxel_size, feature_dim=loaded.feature_dim, block_size=file_cfg.block_size
            )
        )
        if differences:
            listing = ", ".join(f"{key} {theirs!r} (parameter: {ours!r})" for key, ours, theirs in differences)
            self.log.warning(f"map file {path} has {listing}; the file's values are used")
            config = apply_parameters(
                self.parameters.config, [Parameter(key, value=theirs) for key, _, theirs in differences if key != "label_space"]
            )
            if loaded.label_space != label_space:
                config.label_space = loaded.label_space.name
            self.parameters.set("config", config, [Parameter(key, value=theirs) for key, _, theirs in differences])

    # -- parameters at run time -------------------------------------------------------------

    def _on_parameters_changed(self, old: dict) -> None:
        cfg = self.map.config
        self.map.config = dataclasses.replace(
            cfg, max_bytes=self.parameters.config.map.max_bytes, color_weight_cap=self.parameters.config.map.color_weight_cap
        )
        before = old["server_config"]
        if self.parameters.server_config.publish_period != before.publish_period:
            self.publish_timer.timer_period_ns = int(self.parameters.server_config.publish_period * 1e9)
        if self.parameters.server_config.color_by != before.color_by or self.parameters.server_config.frame_id != before.frame_id:
            self.mark_changed()

    # -- publishing ------------------------------------------------------------------------

    def mark_changed(self) -> None:
        """Note that the map changed; the next timer tick publishes it. Thread-safe."""
        with self._version_lock:
            self.version += 1

    def publish_map(self) -> int:
        """Publish the whole map now; returns the number of points."""
        arrays = self.map.to_arrays()
        cfg = self.parameters.server_config
        msg = arrays_to_cloud(arrays, cfg.frame_id, self.node.get_clock().now().to_msg(), cfg.color_by)
        self.cloud_pub.publish(msg)
        return len(arrays)

    def _on_publish_timer(self) -> None:
        version = self.version  # read before the snapshot: a change during it publishes again
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
        path_text = self.parameters.server_config.save_path
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
        response.success, response.message = True, f"saved {n} voxels to {path}{self._save_keyframes(path)}"
        self.log.info(response.message)
        return response

    def _save_keyframes(self, map_path: Path) -> str:
        """Write the keyframes beside a saved map (if kept and wanted); returns what to add to the reply."""
        if self.keyframes is None or not self.parameters.config.keyframes.save_with_map:
            return ""
        path = keyframe_file(map_path)
        try:
            self.keyframes.save(path)
        except Exception as exc:  # noqa: BLE001 - the map is saved; the keyframes are extra
            self.log.error(f"cannot save the keyframes to {path}: {exc}")
            remove_stale_temporaries(path)
            return f"; the keyframes could not be saved: {exc}"
        return f" and {len(self.keyframes)} keyframes to {path}"

    def _load_keyframes(self, map_path: Path) -> str:
        """Replace the keyframes with those saved beside a loaded map (none: emptied); returns
        what to add to the reply."""
        if self.keyframes is None:
            return ""
        path = keyframe_file(map_path)
        if not self.parameters.config.keyframes.save_with_map or not path.is_file():
            self.keyframes.clear()
            return ""
        try:
            skipped = self.keyframes.load(path)
        except Exception as exc:  # noqa: BLE001 - the map loaded; its keyframes are extra
            self.keyframes.clear()
            self.log.error(f"cannot load the keyframes of {map_path}: {exc}")
            return f"; its keyframes could not be loaded: {exc}"
        if skipped:
            self.log.warning(f"skipped {sum(skipped.values())} invalid keyframes of {path}: {skipped}")
        return f" with {len(self.keyframes)} keyframes"

    def _on_load_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path_text = self.parameters.server_config.map_file or self.parameters.server_config.save_path
        if not path_text:
            response.success, response.message = False, "map_file and save_path are empty"
            return response
        path = Path(path_text)
        try:
            path = path.expanduser().absolute()
            loaded = load_map(path, device=str(self.map.device), index=self.map.index_backend)
            why = self._accepts_map(loaded)
            if why:
                raise ValueError(why)
            self.map.replace_with(loaded)
        except Exception as exc:  # noqa: BLE001 - MapFileError, a mismatch, an unknown ~user, out of memory
            response.success, response.message = False, f"cannot load {path}: {exc}; the map is unchanged"
            self.log.error(response.message)
            return response
        self._on_map_replaced()
        self.mark_changed()
        response.success, response.message = True, f"loaded {len(self.map)} voxels from {path}{self._load_keyframes(path)}"
        self.log.info(response.message)
        return response

    def _on_clear_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self.map.lock:
            n = len(self.map)
            self.map.clear()
        if self.keyframes is not None:
            self.keyframes.clear()
        self._on_map_replaced()
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
                "device": str(m.device),
                "index": m.index_backend,
            }
        labels = {"unknown": unknown, **dict(zip(m.label_space.names, counts.tolist()))}
        stats["labels"] = {name: int(c) for name, c in labels.items() if c}
        stats["failures"] = self.counters.snapshot()
        stats.update(self._extra_stats())
        return stats

    # -- shutdown ------------------------------------------------------------------------------

    def save_on_shutdown(self) -> bool:
        """Save the map to ``save_path`` if ``save_on_shutdown`` is set; False if that failed (logged).

        Waits at most ``SHUTDOWN_SAVE_TIMEOUT`` seconds for the map's lock, so a worker stuck
        inside a map operation cannot keep the process from exiting.
        """
        if not self.parameters.server_config.save_on_shutdown:
            return True
        if not self.map.lock.acquire(timeout=SHUTDOWN_SAVE_TIMEOUT):
            self.log.error(f"the map stayed locked for {SHUTDOWN_SAVE_TIMEOUT:.0f} s: not saved on shutdown")
            return False
        try:
            return self._on_save_map(Trigger.Request(), Trigger.Response()).success
        finally:
            self.map.lock.release()
