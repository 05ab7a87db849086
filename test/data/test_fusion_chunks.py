"""Image+points chunks (alster_mapping.data.fusion_chunks): frames and the points they observe."""

import numpy as np
import pytest

from alster_mapping.data.fusion_chunks import image_point_chunks, observed_points
from alster_mapping.data.sequences import FrameList, SyntheticSequence


@pytest.fixture(scope="module")
def world():
    return SyntheticSequence(4, 8, 96, 72)


def test_chunks_hold_consecutive_frames_and_only_points_they_observe(world):
    chunks = image_point_chunks(world, frames_per_chunk=4)
    assert len(chunks) == 2 and [len(c.frames) for c in chunks] == [4, 4]
    truth = world.ground_truth()
    for chunk in chunks:
        assert 100 <= len(chunk.points) < len(truth) and chunk.points.has_instances
        seen = np.zeros(len(chunk.points), bool)
        for frame in chunk.frames:
            seen |= observed_points(frame, chunk.points.xyz)
        assert seen.all()


def test_a_point_behind_a_surface_is_not_observed(world):
    frame = world.frame(0)
    k = frame.intrinsics
    # A pixel with valid depth, back-projected onto its surface and 0.5 m behind it.
    v, u = np.argwhere(np.isfinite(frame.depth) & (frame.depth > 0.5))[0]
    z = float(frame.depth[v, u])
    camera = np.array([[(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], [(u - k.cx) * (z + 0.5) / k.fx, (v - k.cy) * (z + 0.5) / k.fy, z + 0.5]])
    world_points = camera @ frame.T_world_camera[:3, :3].T + frame.T_world_camera[:3, 3]
    assert observed_points(frame, world_points, max_range=10.0).tolist() == [True, False]


def test_a_sequence_without_ground_truth_is_refused(world):
    with pytest.raises(ValueError, match="no ground-truth points"):
        image_point_chunks(FrameList([world.frame(0)], "bare"))
