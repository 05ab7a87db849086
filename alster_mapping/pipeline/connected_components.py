"""The trivial instance baseline: connected components of one semantic class.

Voxels of the same class that touch (26-neighbourhood on the voxel grid: centres at most
sqrt(3) voxel edges apart) form one instance. It needs no instance model, so every learned
instance method must beat it (issue 11); it fails where objects of a class touch (a row of
chairs at a table) and where one object is split by a gap in the scan.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def semantic_components(xyz: np.ndarray, semantic: np.ndarray, voxel_size: float, min_points: int = 1) -> np.ndarray:
    """xyz: (N, 3) voxel centres [m]; semantic: (N,) class index (< 0 = no class).
    Returns (N,) instance ids 0, 1, ... (-1 for unclassified points and components of fewer
    than ``min_points``)."""
    instance = np.full(len(xyz), -1, np.int64)
    classified = np.flatnonzero(semantic >= 0)
    if classified.size == 0:
        return instance
    pairs = cKDTree(xyz[classified]).query_pairs(np.sqrt(3.0) * voxel_size * 1.01, output_type="ndarray")
    pairs = pairs[semantic[classified[pairs[:, 0]]] == semantic[classified[pairs[:, 1]]]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(classified.size, classified.size))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    kept = np.flatnonzero(sizes >= min_points)
    renumber = np.full(sizes.size, -1, np.int64)
    renumber[kept] = np.arange(kept.size)
    instance[classified] = renumber[component]
    return instance
