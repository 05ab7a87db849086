"""Labelled voxels of a map: training data for point models that looks like what the node
serves them (issue 11: the map's voxel centres and mean colours, not raw sensor points).

``labelled_voxels`` gives each voxel of a ``SemanticVoxelMap`` the raw label and instance
id of the nearest ground-truth point within ``radius`` (default: one voxel edge), as a
``PointBlock`` with the voxels' colours; voxels with no ground truth in reach keep label 0
and instance 0 (unlabelled, no instance).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..core.samples import PointBlock
from ..map.voxel_map import SemanticVoxelMap


def voxel_points(voxel_map: SemanticVoxelMap, name: str = "map") -> PointBlock:
    """The map's voxels as points: centres [m] and mean colours, unlabelled (label 0, no instance)."""
    arrays = voxel_map.to_arrays()
    return PointBlock(arrays.xyz, np.zeros(len(arrays), np.int64), rgb=arrays.color, name=name)


def labelled_voxels(voxel_map: SemanticVoxelMap, truth: PointBlock, radius: float | None = None) -> PointBlock:
    """The map's voxels (centres [m], mean colours) labelled from ``truth`` (see the module docstring)."""
    points = voxel_points(voxel_map, f"map of {truth.name}")
    reach = float(radius if radius is not None else voxel_map.voxel_size)
    if len(points) and len(truth):
        distance, nearest = cKDTree(truth.xyz).query(points.xyz, distance_upper_bound=reach)
        found = np.isfinite(distance)
        points.labels[found] = truth.labels[nearest[found]]
        points.instances[found] = truth.instances[nearest[found]]
    return points
