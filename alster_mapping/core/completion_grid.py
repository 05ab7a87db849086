"""The scene-completion volume in front of a camera and what one depth image says of it (SSCNet's convention).

4.8 m wide, 4.8 m deep and 2.88 m high at 0.08 m (the IMENet paper's quarter resolution: 60 x
60 x 36 voxels), gravity aligned — x to the camera's right and y its viewing direction, both
horizontal, z up — with the camera at the middle of the width, at the front face, and the
floor in the bottom layer. SSCNet orders the same box (width, height, depth) = 60 x 36 x 60;
here the arrays are (x, y, z) = (width, depth, height), a right-handed grid whose
``T_world_grid`` is a rigid transform.

``observed_volume`` gives, from one RGB-D frame and the floor height, the input of a
completion model (a ``core.samples.VoxelVolume`` whose labels are all 0):

- ``visibility``: outside the view, seen free, surface, occluded — by projecting the voxel
  centre into the depth image and comparing its depth with the measured one (a voxel within
  half its diagonal of the measurement is surface; a pixel without depth hides its voxels);
- ``tsdf``: the flipped TSDF (SSCNet): with d the measured minus the voxel depth along the
  optical axis and t = clip(d / truncation, -1, 1), ``sign(t) * (1 - |t|)`` — +-1 on the
  surface, 0 far in front of it; -1 wherever the camera knows nothing (occluded beyond the
  truncation, outside the view). Deviation: SSCNet measures d as the 3D distance to the
  nearest observed surface point; here it is the projective distance along the ray (no
  distance transform; the two agree near surfaces facing the camera);
- ``pixel_voxel``: the voxel each pixel's depth point falls in (the 2D-3D projection of
  IMENet's reprojection layer).

A camera pointing (nearly) straight up or down has no viewing direction on the floor plane,
a non-finite pose or floor height no volume at all, and a frame without valid depth in the
volume gives no input: these raise ``VolumeError``. ``data/completion_volumes.py`` adds the
labels of the complete scene for training and evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import param
from .frame import RGBDFrame
from .geometry import depth_to_points, project_points, transform_points, valid_depth_mask
from .samples import FREE, OCCLUDED, OUTSIDE, SURFACE, VoxelVolume

SSC_LABEL_SPACE = "ssc11"
"""The label space of scene completion: ``config/labelspaces/ssc11.yaml`` (ids 1..11; 0 is empty space)."""


class VolumeError(ValueError):
    """A frame cannot give a completion volume (no horizontal view, no depth in the volume, a non-finite pose)."""


@dataclass
class CompletionVolumeConfig:
    """The completion volume in front of a camera (SSCNet's convention, quarter resolution)."""

    width: float = param(4.8, "extent across the view, centred on the camera [m]", min=0.08, max=50.0)
    depth: float = param(4.8, "extent along the horizontal viewing direction, from the camera on [m]", min=0.08, max=50.0)
    height: float = param(2.88, "extent up from the floor [m]", min=0.08, max=20.0)
    voxel_size: float = param(0.08, "voxel edge [m] (0.08: SSCNet's 0.02 m grid at the paper's quarter resolution)", min=0.005, max=1.0)
    truncation: float = param(0.24, "TSDF truncation [m] (3 voxels)", min=0.01, max=5.0)

    def shape(self) -> tuple[int, int, int]:
        """(x, y, z) = (width, depth, height) voxels."""
        return tuple(int(round(v / self.voxel_size)) for v in (self.width, self.depth, self.height))  # type: ignore[return-value]


def grid_pose(T_world_camera: np.ndarray, floor_z: float, config: CompletionVolumeConfig) -> np.ndarray:
    """T_world_grid (4, 4) of the volume in front of a camera (see the module docstring)."""
    forward = np.asarray(T_world_camera, dtype=np.float64)[:3, 2].copy()
    forward[2] = 0.0
    norm = float(np.linalg.norm(forward))
    if not norm > 0.05:  # within about 3 degrees of vertical
        raise VolumeError("the camera looks straight up or down: no viewing direction on the floor plane for a volume")
    forward /= norm
    up = np.array([0.0, 0.0, 1.0])
    right = np.cross(forward, up)  # x right, y forward, z up: right-handed
    T = np.eye(4)
    T[:3, :3] = np.stack([right, forward, up], 1)
    camera = np.asarray(T_world_camera, dtype=np.float64)[:3, 3]
    T[:3, 3] = camera - right * config.width / 2
    T[2, 3] = floor_z
    return T


def observed_volume(frame: RGBDFrame, floor_z: float, config: CompletionVolumeConfig | None = None) -> VoxelVolume:
    """What ``frame`` tells of the volume in front of its camera (module docstring); labels all 0.

    floor_z: world height of the floor [m]. Raises VolumeError (non-finite pose or floor, no
    horizontal viewing direction, no valid depth in the volume).
    """
    config = config or CompletionVolumeConfig()
    if not (np.isfinite(frame.T_world_camera).all() and np.isfinite(floor_z)):
        raise VolumeError("the camera pose or the floor height is not finite")
    dims = np.array(config.shape())
    T = grid_pose(frame.T_world_camera, floor_z, config)
    volume = VoxelVolume(np.zeros(tuple(dims), np.float32), np.zeros(tuple(dims), np.int64), T, config.voxel_size, frame=frame)
    visibility, tsdf = _visibility_and_tsdf(frame, volume.centers().reshape(-1, 3), config)
    if not (visibility == SURFACE).any():
        raise VolumeError("no valid depth of the frame falls in the volume: nothing to complete from")
    volume.tsdf, volume.visibility = tsdf.reshape(tuple(dims)), visibility.reshape(tuple(dims))
    volume.pixel_voxel = _pixel_voxels(frame, T, config.voxel_size, dims)
    return volume


def _visibility_and_tsdf(frame: RGBDFrame, centres: np.ndarray, config: CompletionVolumeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per voxel centre (N, 3): visibility codes (N,) uint8 and the flipped TSDF (N,) float32."""
    uv, z = project_points(torch.from_numpy(centres), frame.intrinsics, frame.T_world_camera)
    pixel = torch.round(uv).to(torch.int64).numpy()
    z = z.numpy().astype(np.float64)
    h, w = frame.shape
    in_view = (z > 0) & (pixel[:, 0] >= 0) & (pixel[:, 0] < w) & (pixel[:, 1] >= 0) & (pixel[:, 1] < h)
    measured = np.zeros(len(z))
    rows = np.flatnonzero(in_view)
    values = frame.depth[pixel[rows, 1], pixel[rows, 0]].astype(np.float64)
    measured[rows] = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    d = measured - z
    band = config.voxel_size * np.sqrt(3) / 2  # half the voxel's diagonal
    visibility = np.full(len(z), OUTSIDE, np.uint8)
    has_depth = in_view & (measured > 0)
    visibility[in_view] = OCCLUDED  # a pixel without depth hides what lies along its ray
    visibility[has_depth & (d > band)] = FREE
    visibility[has_depth & (np.abs(d) <= band)] = SURFACE
    t = np.clip(d / config.truncation, -1.0, 1.0)
    flipped = np.where(t >= 0, 1.0, -1.0) * (1.0 - np.abs(t))
    unknown = ~has_depth | (d < -config.truncation)  # the camera knows nothing there
    tsdf = np.where(unknown, -1.0, flipped).astype(np.float32)
    return visibility, tsdf


def grid_index(points: np.ndarray, T_world_grid: np.ndarray, voxel_size: float, dims: np.ndarray) -> np.ndarray:
    """Flat voxel index (N,) int64 of world points (N, 3), -1 outside the grid."""
    local = (points - T_world_grid[:3, 3]) @ T_world_grid[:3, :3]
    index = np.floor(local / voxel_size).astype(np.int64)
    inside = np.all((index >= 0) & (index < dims), axis=1)
    flat = np.full(len(points), -1, np.int64)
    if inside.any():
        flat[inside] = np.ravel_multi_index(index[inside].T, tuple(dims))
    return flat


def _pixel_voxels(frame: RGBDFrame, T_world_grid: np.ndarray, voxel_size: float, dims: np.ndarray) -> np.ndarray:
    """(H, W) int64: the flat voxel index of each pixel's depth point, -1 without depth or outside the grid."""
    depth = torch.from_numpy(np.asarray(frame.depth, dtype=np.float32))
    valid = valid_depth_mask(depth)
    points = depth_to_points(torch.where(valid, depth, torch.zeros_like(depth)), frame.intrinsics).reshape(-1, 3)
    world = transform_points(frame.T_world_camera, points.double()).numpy()
    flat = grid_index(world, T_world_grid, voxel_size, dims)
    flat[~valid.reshape(-1).numpy()] = -1
    return flat.reshape(frame.shape)
