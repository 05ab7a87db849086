"""Labelled map voxels (alster_mapping.data.map_samples): voxel centres and colours with ground truth."""

import numpy as np
import torch

from alster_mapping.core.config import MapConfig
from alster_mapping.core.labels import nyu40
from alster_mapping.core.samples import PointBlock
from alster_mapping.data.map_samples import labelled_voxels
from alster_mapping.map.voxel_map import SemanticVoxelMap


def test_voxels_take_the_nearest_ground_truth_within_reach():
    voxel_map = SemanticVoxelMap(MapConfig(voxel_size=0.1, feature_dim=4), nyu40())
    keys = np.array([[0, 0, 0], [5, 0, 0], [50, 0, 0]], np.int32)
    voxel_map.write(keys, color=torch.tensor([[10, 20, 30], [40, 50, 60], [70, 80, 90]], dtype=torch.uint8))
    truth = PointBlock(np.array([[0.06, 0.05, 0.05], [0.55, 0.05, 0.05], [0.58, 0.05, 0.05]]), np.array([5, 7, 8]), np.array([1, 2, 3]))
    block = labelled_voxels(voxel_map, truth)
    order = np.argsort(block.xyz[:, 0])
    assert block.labels[order].tolist() == [5, 7, 0]  # the far voxel has no ground truth within 0.1 m
    assert block.instances[order].tolist() == [1, 2, 0]
    assert block.rgb[order].tolist() == [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
