"""The mapping node's own parameters (besides the engine's ``MappingConfig``), without rclpy.

``MapServerConfig``: the map server (files, frame, publishing). ``MappingNodeConfig``:
the live pipeline (topics, synchronisation, time handling, poses, scheduling, outputs).
Both use the one ``param(...)`` schema, so they become ROS parameters, YAML and
``docs/PARAMETERS.md`` like every other config; keeping them free of rclpy lets the
launch file, the docs generator and tests read the defaults without a ROS context.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import flatten, param, section
from ..core.grid_config import SemanticGridConfig

COLOR_BY = ("label", "rgb")
"""Colours of the published clouds: the class colour or the mean observed colour."""

POSE_SOURCES = ("tf", "pose", "odometry", "transform")
RELIABILITY = ("best_effort", "reliable")
REGION_SHAPES = ("box", "sphere")

FIXED_AT_START = (
    "label_space",
    "map.voxel_size",
    "map.feature_dim",
    "map.block_size",
    "map.device",
    "map.initial_capacity",
)
"""MappingConfig keys that describe the live map's geometry: fixed while the node runs."""


@dataclass
class ClearRegionConfig:
    """The part of the map ``~/clear_region`` removes (in the map frame; read at each call)."""

    shape: str = param("box", "box (between min and max) or sphere (radius around center)", choices=REGION_SHAPES)
    min: tuple[float, ...] = param((-1.0, -1.0, -1.0), "box: lowest corner (x, y, z) [m]", min=-1e6, max=1e6)
    max: tuple[float, ...] = param((1.0, 1.0, 1.0), "box: highest corner (x, y, z) [m]; every coordinate >= min's", min=-1e6, max=1e6)
    center: tuple[float, ...] = param((0.0, 0.0, 0.0), "sphere: centre (x, y, z) [m]", min=-1e6, max=1e6)
    radius: float = param(1.0, "sphere: radius [m]", min=0.0, max=1e6)


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
    grid: SemanticGridConfig = section(SemanticGridConfig)
    clear_region: ClearRegionConfig = section(ClearRegionConfig)


@dataclass
class CameraExtrinsicConfig:
    """Pose of the camera optical frame in the pose topic's body frame (T_body_camera; pose topics only)."""

    x: float = param(0.0, "translation x [m]", min=-1000.0, max=1000.0)
    y: float = param(0.0, "translation y [m]", min=-1000.0, max=1000.0)
    z: float = param(0.0, "translation z [m]", min=-1000.0, max=1000.0)
    qx: float = param(0.0, "rotation quaternion x", min=-1.0, max=1.0)
    qy: float = param(0.0, "rotation quaternion y", min=-1.0, max=1.0)
    qz: float = param(0.0, "rotation quaternion z", min=-1.0, max=1.0)
    qw: float = param(1.0, "rotation quaternion w (x, y, z, w need not be normalised, but not all zero)", min=-1.0, max=1.0)


@dataclass
class MappingNodeConfig:
    """Parameters of the live pipeline (ROS-only): topics, synchronisation, time, poses, scheduling, outputs."""

    color_topic: str = param("camera/color/image_raw", "colour image topic (rgb8, bgr8, rgba8, bgra8, mono8)")
    depth_topic: str = param(
        "camera/aligned_depth_to_color/image_raw", "depth image topic registered to colour (16UC1 / mono16 or 32FC1 metres)"
    )
    camera_info_topic: str = param("camera/color/camera_info", "CameraInfo of the colour (and registered depth) images")
    image_reliability: str = param(
        "best_effort",
        "QoS reliability of the image, camera_info and label subscriptions: best_effort (the sensor-data convention; "
        "also receives reliable publishers) or reliable (receives only reliable publishers; an incompatible one is reported)",
        choices=RELIABILITY,
    )
    image_queue_depth: int = param(10, "QoS history depth of the image, camera_info and label subscriptions", min=1, max=1000)
    label_topic: str = param(
        "labels/image_raw", "label_fusion mode: label image topic (mono8 / mono16 / 16UC1 raw label ids, aligned with colour)"
    )
    depth_scale: float = param(0.001, "metres per unit of 16UC1 / mono16 depth (0.001 = millimetres)", min=1e-6, max=1.0)
    sync_slop: float = param(0.02, "largest stamp difference of synchronised colour / depth / label images [s]", min=0.0, max=10.0)
    sync_queue_size: int = param(10, "unmatched messages kept per input stream while synchronising", min=1, max=1000)
    max_stamp_ahead: float = param(
        5.0, "image, pose and TF stamps further than this ahead of the node's clock are rejected (counted) [s]", min=0.0, max=1e9
    )
    time_jump_threshold: float = param(
        1.0,
        "a stamp this much older than the newest of its stream is a jump back in time (restarted bag, reset clock): "
        "the synchroniser, the pose buffer and the stamp order start over [s]",
        min=0.001,
        max=3600.0,
    )
    pose_source: str = param(
        "tf", "where camera poses come from: tf, or a pose_topic of type pose (PoseStamped), odometry or transform", choices=POSE_SOURCES
    )
    pose_topic: str = param("camera_pose", "pose topic (pose_source pose, odometry or transform), in the map frame frame_id")
    camera_frame: str = param("", "tf: the camera optical frame looked up in frame_id ('' = the colour image's frame_id)")
    pose_timeout: float = param(0.1, "how long the worker waits for a pose at the image stamp [s]", min=0.0, max=10.0)
    pose_tolerance: float = param(
        0.05, "pose topics / own TF buffer: largest gap [s] to the nearest pose when the image stamp lies outside the pose history", min=0.0, max=10.0
    )
    pose_max_gap: float = param(
        1.0,
        "pose topics / own TF buffer: poses further apart than this are not interpolated, the frame is skipped (pose_gap) [s]; 0 = no limit",
        min=0.0,
        max=3600.0,
    )
    pose_cache: float = param(10.0, "pose history kept [s]", min=0.1, max=3600.0)
    camera_extrinsic: CameraExtrinsicConfig = section(CameraExtrinsicConfig)
    queue_size: int = param(
        1, "frames waiting for the worker; a newer frame replaces the oldest waiting one (counted as superseded); 1 = map the newest", min=1, max=100
    )
    image_downscale: int = param(1, "images are reduced by this integer factor before mapping (2 = half width and height)", min=1, max=16)
    max_image_pixels: int = param(
        921_600, "frames with more pixels than this after image_downscale are rejected on arrival (default: 1280x720)", min=1, max=2**31 - 1
    )
    watchdog_timeout: float = param(
        30.0,
        "a worker stuck this long in one frame is reported and the node exits with code 3 (a launch respawn restarts it) [s]; 0 = off",
        min=0.0,
        max=3600.0,
    )
    publish_update: bool = param(True, "publish ~/semantic_cloud_update: the voxels each frame updated")
    markers_period: float = param(2.0, "seconds between ~/markers publications when the map changed; 0 = off", min=0.0, max=3600.0)
    markers_max_voxels: int = param(100_000, "~/markers shows at most this many voxels (thinned by a stride)", min=1, max=10_000_000)
    publish_label_image: bool = param(False, "publish ~/label_image: the map's class colours at each frame's pixels (debugging)")
    diagnostics_period: float = param(1.0, "seconds between /diagnostics messages", min=0.05, max=3600.0)
    self_check_timeout: float = param(
        10.0,
        "after this long without a mapped frame (from the start or the last one) the node says exactly what is missing, "
        "once, in the log and /diagnostics [s]; 0 = off",
        min=0.0,
        max=3600.0,
    )
    log_throttle: float = param(5.0, "each kind of skipped-frame warning is logged at most once per this many seconds", min=0.0, max=3600.0)


NODE_CONFIG_KEYS = frozenset(flatten(MappingNodeConfig()))
"""Parameter names of the pipeline."""

RUNTIME_NODE_KEYS = frozenset(
    {"publish_update", "markers_max_voxels", "markers_period", "diagnostics_period", "log_throttle", "pose_timeout", "self_check_timeout"}
)
"""Pipeline parameters that may change while the node runs (rates, outputs, logging); the
others set up subscriptions, QoS, synchronisation and threads at start-up."""

FIXED_SERVER_KEYS = frozenset({"grid.groups"})
"""Map server parameters fixed while running: each group grid has its own publisher."""


def fixed_reason(name: str) -> str | None:
    """Why parameter ``name`` cannot change while a node runs; None when it can."""
    if name in FIXED_AT_START:
        return "it describes the live map's geometry"
    if name in FIXED_SERVER_KEYS:
        return "each group grid's publisher is created at start-up"
    if name in NODE_CONFIG_KEYS and name not in RUNTIME_NODE_KEYS:
        return "it sets up the subscriptions, QoS, synchronisation or threads at start-up"
    return None
