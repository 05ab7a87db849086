"""Exports of the map: PLY point clouds, headless PNG renders, labels projected into a frame."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
import torch
from PIL import Image

from ..core.atomic_file import atomic_path
from ..core.frame import RGBDFrame
from ..core.geometry import observed_voxels
from .voxel_map import MapArrays, SemanticVoxelMap


def _colors(arrays: MapArrays, color_by: str) -> np.ndarray:
    if color_by == "label":
        return arrays.label_color
    if color_by == "rgb":
        return arrays.color
    raise ValueError(f"color_by must be 'label' or 'rgb', got {color_by!r}")


def export_ply(voxel_map: SemanticVoxelMap, path: str | os.PathLike, color_by: str = "label") -> Path:
    """Write the voxel centres as a binary PLY point cloud, atomically.

    Vertex properties: x, y, z (float, metres), red, green, blue (uchar; label colour or
    mean observed colour per ``color_by``), label (uint16 raw id), confidence (float),
    count (int). Returns the path.
    """
    arrays = voxel_map.to_arrays()
    if len(arrays) == 0:
        raise ValueError("the map is empty: nothing to export")
    return write_point_ply(
        path, arrays.xyz, _colors(arrays, color_by), label=arrays.label, confidence=arrays.confidence, count=arrays.count
    )


def write_point_ply(path: str | os.PathLike, xyz: np.ndarray, colors: np.ndarray, **properties: np.ndarray) -> Path:
    """Write points as a binary PLY atomically: xyz (N, 3) [m], colors (N, 3) uint8, and one
    scalar vertex property per keyword ((N,) arrays, their dtypes kept). Returns the path."""
    cloud = o3d.t.geometry.PointCloud()
    cloud.point.positions = o3d.core.Tensor(np.ascontiguousarray(xyz))
    cloud.point.colors = o3d.core.Tensor(np.ascontiguousarray(colors))
    for name, values in properties.items():
        cloud.point[name] = o3d.core.Tensor(np.ascontiguousarray(values).reshape(-1, 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        if not o3d.t.io.write_point_cloud(str(tmp), cloud):
            raise OSError(f"open3d could not write {path}")
    return path


def render_png(
    voxel_map: SemanticVoxelMap,
    path: str | os.PathLike,
    color_by: str = "label",
    width: int = 1024,
    height: int = 768,
    up: np.ndarray | None = None,
    front: np.ndarray | None = None,
) -> Path:
    """Render the map's voxels as cubes to a PNG without a display (Open3D, EGL fallback).

    up / front: (3,) world directions of the view's up vector and of the camera as seen
    from the map centre (default: z up, an oblique view). Raises RuntimeError if no
    rendering context can be created; the PNG is written atomically.
    """
    arrays = voxel_map.to_arrays()
    if len(arrays) == 0:
        raise ValueError("cannot render an empty map")
    return render_points_png(
        arrays.xyz, _colors(arrays, color_by), path, voxel_map.voxel_size, width=width, height=height, up=up, front=front
    )


def render_points_png(
    xyz: np.ndarray,
    colors: np.ndarray,
    path: str | os.PathLike,
    voxel_size: float,
    width: int = 1024,
    height: int = 768,
    up: np.ndarray | None = None,
    front: np.ndarray | None = None,
) -> Path:
    """Render coloured points as cubes of edge ``voxel_size`` [m] to a PNG, headless.

    xyz: (N, 3) float positions [m]; colors: (N, 3) uint8 RGB. up / front as in
    ``render_png``. Raises ValueError if N = 0, RuntimeError if no rendering context can
    be created; the PNG (height x width) is written atomically. Returns the path.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    colors = np.asarray(colors)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or colors.shape != xyz.shape:
        raise ValueError(f"xyz and colors must both have shape (N, 3), got {xyz.shape} and {colors.shape}")
    if xyz.shape[0] == 0:
        raise ValueError("cannot render an empty point set")
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    cloud.colors = o3d.utility.Vector3dVector(colors.astype(np.float64) / 255.0)
    grid = o3d.geometry.VoxelGrid.create_from_point_cloud(cloud, float(voxel_size))
    up = np.asarray(up if up is not None else [0.0, 0.0, 1.0], dtype=np.float64)
    up = up / np.linalg.norm(up)  # not in place: up may be the caller's array
    if front is None:
        front = np.array([1.0, -1.0, 0.0]) if abs(up[2]) > 0.9 else np.cross(up, [0.0, 0.0, 1.0])
        front = front / np.linalg.norm(front) + 0.8 * up
    front = np.asarray(front, dtype=np.float64)
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(visible=False, width=width, height=height):
        raise RuntimeError("no rendering context (needs libEGL / Mesa)")
    try:
        vis.add_geometry(grid)
        vis.get_render_option().background_color = np.array([1.0, 1.0, 1.0])
        view = vis.get_view_control()
        view.set_lookat(xyz.mean(0))
        view.set_up(up)
        view.set_front(front / np.linalg.norm(front))
        view.set_zoom(0.45)
        image = np.asarray(vis.capture_screen_float_buffer(do_render=True))
    finally:
        vis.destroy_window()
    return save_png(path, (np.clip(image, 0, 1) * 255).astype(np.uint8))


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image as PNG, atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


@dataclass
class ProjectedLabels:
    """Map labels at the surface points a frame observed.

    label: (H, W) int64 class index (-1 where the pixel has no valid depth, its voxel is
    absent from the map, or the voxel is unlabelled). confidence: (H, W) float32.
    observed: (H, W) bool, pixels with valid depth in range.
    """

    label: np.ndarray
    confidence: np.ndarray
    observed: np.ndarray


def project_labels(voxel_map: SemanticVoxelMap, frame: RGBDFrame, max_range: float = 3.0, min_range: float = 0.0) -> ProjectedLabels:
    """Project the map's labels into ``frame``: each valid pixel reads the voxel containing
    the 3D point it observed (depth in (min_range, max_range] metres)."""
    h, w = frame.shape
    keys, _, mask = observed_voxels(
        torch.from_numpy(frame.depth), frame.intrinsics, frame.T_world_camera, voxel_map.voxel_size, max_range, min_range
    )
    data = voxel_map.crop(keys)
    label = np.full((h, w), -1, dtype=np.int64)
    confidence = np.zeros((h, w), dtype=np.float32)
    m = mask.numpy()
    label[m] = data.label.cpu().numpy()
    confidence[m] = data.confidence.float().cpu().numpy()
    return ProjectedLabels(label=label, confidence=confidence, observed=m)
