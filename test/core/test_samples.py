"""Typed task samples (alster_mapping.core.samples) and the instance ids every sequence carries."""

import numpy as np
import pytest

from alster_mapping.core.samples import PointBlock
from alster_mapping.data.sequences import SyntheticSequence


def test_point_block_validates_and_normalises_its_columns():
    block = PointBlock(np.zeros((4, 3), np.float64), np.array([1, 2, 3, 4], np.uint16), rgb=np.zeros((4, 3), np.int32))
    assert block.xyz.dtype == np.float32 and block.labels.dtype == np.int64 and block.rgb.dtype == np.uint8
    assert len(block) == 4 and not block.has_instances and block.instances.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"xyz must have shape \(N, 3\)"):
        PointBlock(np.zeros((4, 2)), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        PointBlock(np.zeros((4, 3)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="instances must hold integer ids"):
        PointBlock(np.zeros((4, 3)), np.zeros(4, np.int64), np.zeros(4))
    with pytest.raises(ValueError, match="non-negative"):
        PointBlock(np.zeros((4, 3)), np.array([0, 1, -1, 2]))
    with pytest.raises(ValueError, match="non-finite"):
        PointBlock(np.full((1, 3), np.nan), np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"normals must have shape \(4, 3\)"):
        PointBlock(np.zeros((4, 3)), np.zeros(4, np.int64), normals=np.zeros((3, 3)))


def test_subset_keeps_every_column_aligned():
    rng = np.random.default_rng(0)
    block = PointBlock(rng.normal(size=(10, 3)), np.arange(10), np.arange(10) // 3, rng.integers(0, 255, (10, 3)), name="b")
    part = block.subset(block.labels % 2 == 0)
    assert part.labels.tolist() == [0, 2, 4, 6, 8] and part.instances.tolist() == [0, 0, 1, 2, 2]
    np.testing.assert_array_equal(part.rgb, block.rgb[::2])
    assert part.normals is None and part.name == "b"


def test_synthetic_ground_truth_and_frames_carry_instance_ids():
    sequence = SyntheticSequence(3, 2, 64, 48)
    truth = sequence.ground_truth()
    assert truth.has_instances and len(np.unique(truth.instances)) > 10
    # Every instance is one object: one label per instance id.
    for instance in np.unique(truth.instances[truth.instances > 0])[:20]:
        assert len(np.unique(truth.labels[truth.instances == instance])) == 1
    frame = sequence.frame(0)
    assert frame.instances is not None and frame.instances.shape == frame.depth.shape and frame.instances.max() > 0
    np.testing.assert_array_equal(frame.instances, sequence.view(0).instances)


def test_image_point_chunk_validates_its_frames():
    from alster_mapping.core.samples import ImagePointChunk
    from alster_mapping.data.procedural_room import ProceduralRoom

    points = PointBlock(np.zeros((1, 3)), np.zeros(1, np.int64))
    small, large = ProceduralRoom(32, 24).frames(1)[0], ProceduralRoom(48, 40).frames(1)[0]
    assert len(ImagePointChunk([small, small], points).frames) == 2
    with pytest.raises(ValueError, match="at least one frame"):
        ImagePointChunk([], points)
    with pytest.raises(ValueError, match="share one size"):
        ImagePointChunk([small, large], points)
