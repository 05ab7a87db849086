"""SemanticGridOutput: the map as a nav_msgs/OccupancyGrid that a Nav2 static layer can use.

Given the node, it publishes (``grid.*`` parameters, ``map/semantic_grid.py`` for the rules):

- ``~/semantic_grid`` (nav_msgs/OccupancyGrid, reliable and transient local like a map
  server's ``/map``, so a Nav2 ``StaticLayer`` with ``map_subscribe_transient_local`` gets
  it): cells occupied (100) by voxels of ``grid.obstacle_classes`` (default: every class
  but ``grid.free_classes``, i.e. the floor) between ``grid.min_height`` and
  ``grid.max_height`` above the map frame's z = 0, free (0) where only the floor or free
  classes were seen, unknown (-1) where nothing was; in the map frame ``frame_id``.
- ``~/semantic_grid_NAME`` for each group of ``grid.groups`` (e.g. keep-out classes for a
  Nav2 keepout filter mask): occupied where that group's classes are.

A steady timer every ``grid.period`` seconds publishes when the map changed (a grid that
did not change is not sent again). The grids are kept up to date incrementally
(``FloorGrid``: the columns of the blocks observed since the last update; a few ms for a
1M-voxel map, ``bench/bench_semantic_grid.py``). Class lists, heights, the resolution and
the period can change at run time; a class name not in the label space is refused with
the list of classes. A grid larger than ``grid.max_cells`` is not built: counted
(``grid.too_large``), logged (throttled) and reported in ``stats()``; the last grid stays.
"""

from __future__ import annotations

import array
from typing import Any

from nav_msgs.msg import OccupancyGrid
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..map.semantic_grid import MAIN_GRID, FloorGrid, Grid, GridTooLarge, grid_masks
from .map_server import OUTPUT_EVENTS, MapServer
from .node_parameters import NodeParameters
from .node_runtime import NodeRuntime
from .params import ParameterError

GRID_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
"""A map's QoS (as nav2_map_server publishes /map): late subscribers get the latest grid."""

def grid_message(grid: Grid, frame_id: str, stamp) -> OccupancyGrid:
    """``grid`` as an OccupancyGrid in ``frame_id`` at ``stamp`` (builtin_interfaces/Time)."""
    msg = OccupancyGrid()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp
    msg.info.map_load_time = stamp
    msg.info.resolution = float(grid.resolution)
    msg.info.height, msg.info.width = (int(v) for v in grid.shape)
    msg.info.origin.position.x, msg.info.origin.position.y = (float(v) for v in grid.origin)
    msg.info.origin.orientation.w = 1.0
    msg.data = array.array("b", grid.cells.tobytes())  # int8 row-major, row = y; an array is stored without a per-element check
    return msg


class SemanticGridOutput:
    """node, runtime, parameters: the node's (``server_config.grid`` is read at every update).
    map_server: the map it projects. Raises ParameterError for classes not in the map's
    label space or malformed groups."""

    def __init__(self, node: Node, runtime: NodeRuntime, parameters: NodeParameters, map_server: MapServer):
        self.node = node
        self.log = runtime.log
        self.counters = runtime.counters
        self.parameters = parameters
        self.map_server = map_server
        cfg = parameters.server_config.grid
        try:
            self._masks = grid_masks(cfg, map_server.map.label_space)
        except ValueError as exc:
            raise ParameterError([f"grid: {exc}"]) from exc
        self._floors = {name: FloorGrid() for name in self._masks}
        self._publishers = {
            name: node.create_publisher(
                OccupancyGrid, "~/semantic_grid" + (f"_{name}" if name else ""), GRID_QOS, event_callbacks=OUTPUT_EVENTS
            )
            for name in self._masks
        }
        self._published_version = 0
        self._last: dict[str, Grid] = {}
        # Always a timer (period 0 makes it do nothing), so a grid switched on at run time runs.
        self.timer = node.create_timer(
            cfg.period or 1.0,
            runtime.guarded_callback("semantic_grid", self.publish_if_changed),
            callback_group=MutuallyExclusiveCallbackGroup(),
            clock=map_server.steady_clock,
        )
        parameters.add_check(self._check_parameters)
        parameters.on_change(self._on_parameters_changed)

    @property
    def topics(self) -> list[str]:
        return [p.topic_name for p in self._publishers.values()]

    def _check_parameters(self, configs: dict[str, Any]) -> str | None:
        """Why a proposed parameter change cannot apply (unknown classes), or None."""
        try:
            grid_masks(configs["server_config"].grid, self.map_server.map.label_space)
        except ValueError as exc:
            return f"grid: {exc}"
        return None

    def _on_parameters_changed(self, old: dict) -> None:
        cfg, before = self.parameters.server_config.grid, old["server_config"].grid
        if cfg == before and self.parameters.server_config.frame_id == old["server_config"].frame_id:
            return
        self._masks = {name: mask for name, mask in grid_masks(cfg, self.map_server.map.label_space).items() if name in self._publishers}
        if cfg.period != before.period and cfg.period > 0:
            self.timer.timer_period_ns = int(cfg.period * 1e9)
        self._published_version = 0  # publish with the new settings at the next tick

    def build(self) -> dict[str, Grid]:
        """Every grid of the map now (name -> Grid; '' is ``~/semantic_grid``). Raises GridTooLarge."""
        cfg = self.parameters.server_config.grid
        voxel_map = self.map_server.map
        return {name: self._floors[name].update(voxel_map, mask, cfg) for name, mask in self._masks.items()}

    def publish_if_changed(self) -> None:
        """Build and publish the grids when the map changed since the last publication."""
        cfg = self.parameters.server_config.grid
        version = self.map_server.version  # read first: a change while building publishes again
        if version == self._published_version or cfg.period <= 0:
            return
        try:
            grids = self.build()
        except GridTooLarge as exc:
            self.counters.add("grid.too_large", message=str(exc))
            self.log.throttled("grid_too_large", f"~/semantic_grid not updated: {exc} (raise grid.max_cells or grid.resolution)")
            self._published_version = version
            return
        stamp = self.node.get_clock().now().to_msg()
        frame_id = self.parameters.server_config.frame_id
        for name, grid in grids.items():
            self._publishers[name].publish(grid_message(grid, frame_id, stamp))
        self._last = grids
        self._published_version = version
        self.counters.add("grid.published")

    def stats(self) -> dict:
        """Size of the latest main grid, publications and the builds behind them."""
        grid = self._last.get(MAIN_GRID)
        floor = self._floors[MAIN_GRID]
        return {
            "topics": self.topics,
            "published": self.counters.get("grid.published"),
            "too_large": self.counters.get("grid.too_large"),
            "cells": list(grid.shape[::-1]) if grid is not None else [0, 0],
            "full_builds": floor.full_builds,
            "incremental_updates": floor.incremental_updates,
        }
