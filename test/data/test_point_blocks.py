"""Point blocks (alster_mapping.data.point_blocks): columns of a scene sampled to a fixed size."""

import numpy as np
import pytest

from alster_mapping.core.samples import PointBlock
from alster_mapping.data.point_blocks import cut_blocks


def test_columns_cover_the_floor_plan_and_keep_columns_aligned():
    rng = np.random.default_rng(0)
    xyz = rng.uniform([0, 0, 0], [3.0, 2.0, 2.5], (20000, 3))
    block = PointBlock(xyz, np.arange(20000) % 7, np.arange(20000) // 100, name="room")
    blocks = cut_blocks(block, np.random.default_rng(1), block_size=1.0, stride=0.5, num_points=256)
    # 3 m x 2 m with 1 m columns every 0.5 m: 5 x 3 origins, every column well filled.
    assert len(blocks) == 15 and all(len(b) == 256 for b in blocks)
    for b in blocks:
        extent = b.xyz[:, :2].max(0) - b.xyz[:, :2].min(0)
        assert (extent <= 1.0 + 1e-6).all()
    # Every sampled point is one of the source's, with its own label and instance.
    source = {tuple(p): (label, instance) for p, label, instance in zip(block.xyz.tolist(), block.labels.tolist(), block.instances.tolist())}
    b = blocks[0]
    for p, label, instance in zip(b.xyz.tolist(), b.labels.tolist(), b.instances.tolist()):
        assert source[tuple(p)] == (label, instance)


def test_sparse_columns_are_dropped_and_small_ones_resampled_with_replacement():
    xyz = np.array([[0.1, 0.1, 0.0]] * 150 + [[5.0, 5.0, 0.0]] * 10, np.float32)
    blocks = cut_blocks(PointBlock(xyz, np.ones(160, np.int64)), np.random.default_rng(0), stride=1.0, num_points=512, min_points=100)
    assert len(blocks) == 1 and len(blocks[0]) == 512
    with pytest.raises(ValueError, match="positive"):
        cut_blocks(PointBlock(xyz, np.ones(160, np.int64)), np.random.default_rng(0), block_size=0.0)
