"""Voxel volumes for semantic scene completion (IMENet, ../papers/imenet.md, section 3.2).

One RGB-D frame gives a volume in front of the camera: the truncated signed distance of
each voxel to the surface the depth image measured along its camera ray (what the camera
knows), and the labels of the complete scene in the volume from the sequence's
ground-truth points (what a completion model must predict, occluded parts included).
The grid is aligned with the world axes (z up) and centred on the optical axis at half
the range, as SSCNet-style volumes are placed in front of the camera.
"""

from __future__ import annotations

import numpy as np

from ..core.frame import RGBDFrame
from ..core.geometry import depth_along_rays
from ..core.samples import PointBlock, VoxelVolume


def completion_volume(
    frame: RGBDFrame,
    truth: PointBlock,
    shape: tuple[int, int, int] = (60, 60, 36),
    voxel_size: float = 0.08,
    truncation: float = 0.24,
    max_range: float = 4.8,
) -> VoxelVolume:
    """The ``VoxelVolume`` of ``frame`` (see the module docstring).

    shape: voxels along world x, y, z; voxel_size, truncation, max_range: metres. The
    grid's centre lies on the optical axis at ``max_range / 2`` from the camera, its floor
    at the lowest ground-truth point below it. labels: the most frequent raw label id of
    the ground-truth points in each voxel, 0 where there are none.
    """
    if min(shape) < 1 or voxel_size <= 0 or truncation <= 0 or max_range <= 0:
        raise ValueError(f"shape, voxel_size, truncation and max_range must be positive, got {shape}, {voxel_size}, {truncation}, {max_range}")
    dims = np.asarray(shape)
    T = frame.T_world_camera
    centre = T[:3, 3] + T[:3, 2] * (max_range / 2)
    origin = centre - dims * voxel_size / 2
    below = truth.xyz[:, 2][np.all(np.abs(truth.xyz[:, :2] - centre[:2]) < dims[:2] * voxel_size / 2, axis=1)]
    if below.size:
        origin[2] = float(below.min()) - voxel_size / 2  # the floor in the bottom layer
    volume = VoxelVolume(np.ones(shape, np.float32), np.zeros(shape, np.int64), origin, voxel_size, frame, f"volume of frame {frame.stamp_ns}")
    volume.tsdf = _projective_tsdf(frame, volume.centers().reshape(-1, 3), truncation, max_range).reshape(shape)
    volume.labels = _voxel_labels(truth, origin, voxel_size, dims)
    return volume


def _projective_tsdf(frame: RGBDFrame, centres: np.ndarray, truncation: float, max_range: float) -> np.ndarray:
    """(N,) float32 in [-1, 1]: (measured depth - voxel depth) / truncation along each voxel's pixel ray."""
    z, measured = depth_along_rays(centres, frame.depth, frame.intrinsics, frame.T_world_camera, max_range)
    return np.where(measured > 0, np.clip((measured - z) / truncation, -1.0, 1.0), 1.0).astype(np.float32)


def _voxel_labels(truth: PointBlock, origin: np.ndarray, voxel_size: float, dims: np.ndarray) -> np.ndarray:
    """(X, Y, Z) int64: the most frequent raw label of the points in each voxel, 0 = none."""
    index = np.floor((truth.xyz - origin) / voxel_size).astype(np.int64)
    keep = np.all((index >= 0) & (index < dims), axis=1) & (truth.labels > 0)
    flat = np.ravel_multi_index(index[keep].T, dims)
    labels = np.zeros(int(np.prod(dims)), np.int64)
    if flat.size:
        pairs, counts = np.unique(np.stack([flat, truth.labels[keep]], 1), axis=0, return_counts=True)
        order = np.lexsort((counts, pairs[:, 0]))  # per voxel, the most frequent label last
        pairs = pairs[order]
        last = np.r_[pairs[1:, 0] != pairs[:-1, 0], True]
        labels[pairs[last, 0]] = pairs[last, 1]
    return labels.reshape(tuple(dims))
