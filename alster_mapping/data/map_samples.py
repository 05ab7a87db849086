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


def labelled_voxels(voxel_map: SemanticVoxelMap, truth: PointBlock, radius: float | None = None) -> PointBlock:
    """The map's voxels (centres [m], mean colours) labelled from ``truth`` (see the module docstring)."""
    arrays = voxel_map.to_arrays()
    reach = float(radius if radius is not None else voxel_map.voxel_size)
    labels = np.zeros(len(arrays), np.int64)
    instances = np.zeros(len(arrays), np.int64)
    if len(arrays) and len(truth):
        distance, nearest = cKDTree(truth.xyz).query(arrays.xyz, distance_upper_bound=reach)
        found = np.isfinite(distance)
        labels[found] = truth.labels[nearest[found]]
        instances[found] = truth.instances[nearest[found]]
    return PointBlock(arrays.xyz, labels, instances, rgb=arrays.color, name=f"map of {truth.name}")
