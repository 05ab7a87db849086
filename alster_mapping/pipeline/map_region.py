"""A snapshot of a live map's voxels (all, or a region around the camera) for an offline
model's job: taken under the map's lock, so the job can run while mapping goes on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.geometry import voxel_centers
from ..map.voxel_map import SemanticVoxelMap


@dataclass
class MapSnapshot:
    """keys: (N, 3) int32 voxel keys; xyz: (N, 3) float32 centres [m]; color: (N, 3) uint8;
    label: (N,) int64 class index (-1 unknown); confidence: (N,) float32; generation: the
    map's generation when taken (a job's result is dropped when it changed)."""

    keys: torch.Tensor
    xyz: np.ndarray
    color: np.ndarray
    label: np.ndarray  # (N,) the map's class index, -1 unknown
    confidence: np.ndarray
    generation: int


def snapshot_region(
    voxel_map: SemanticVoxelMap, center: np.ndarray | None, radius: float, min_voxels: int, settings: str = "instances"
) -> MapSnapshot:
    """The map's voxels (all, or within ``radius`` m of ``center`` (3,) on the floor plan).
    Raises ValueError when fewer than ``min_voxels`` remain or none has a colour; the
    messages name the parameters under ``settings`` (e.g. ``instances.region_radius``)."""
    with voxel_map.lock:
        keys, rows = voxel_map.items()
        data = voxel_map.read(rows)
        generation = voxel_map.generation
    color, label = data.color.cpu().numpy(), data.label.to(torch.int64).cpu().numpy()
    confidence = data.confidence.float().cpu().numpy()
    xyz = voxel_centers(keys, voxel_map.voxel_size).cpu().numpy()
    where = "the map"
    if radius > 0:
        if center is None:
            raise ValueError(f"{settings}.region_radius is set but no camera pose has been received yet")
        center = np.asarray(center, float)
        if center.shape != (3,) or not np.isfinite(center).all():
            raise ValueError(f"the region's centre must be 3 finite coordinates, got {center!r}")
        inside = np.linalg.norm(xyz[:, :2] - center[:2], axis=1) <= radius
        keys, xyz, color = keys[torch.from_numpy(inside)], xyz[inside], color[inside]
        label, confidence = label[inside], confidence[inside]
        where = f"the region within {radius:g} m of ({center[0]:.2f}, {center[1]:.2f})"
    if len(xyz) < min_voxels:
        raise ValueError(f"{where} has {len(xyz)} voxels; at least {min_voxels} are needed ({settings}.min_voxels)")
    if not color.any():
        raise ValueError(f"the {len(xyz)} voxels of {where} carry no colour (all black): instance models need colour")
    return MapSnapshot(keys, xyz, color, label, confidence, generation)
