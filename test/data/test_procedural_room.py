"""ProceduralRoom (alster_mapping.data.procedural_room): sizes, a moving camera, mostly valid depth."""

import numpy as np
import pytest

from alster_mapping.data.procedural_room import OBJECTS, ProceduralRoom


@pytest.mark.parametrize("width, height", [(80, 64), (320, 240), (640, 480)])
def test_frames_have_the_requested_size_and_mostly_valid_depth(width, height):
    room = ProceduralRoom(width=width, height=height)
    frames = room.frames(3)
    for frame in frames:
        assert frame.color.shape == (height, width, 3) and frame.color.dtype == np.uint8
        assert frame.depth.shape == (height, width) and frame.depth.dtype == np.float32
        assert frame.labels.shape == (height, width)
        assert (frame.intrinsics.width, frame.intrinsics.height) == (width, height)
        assert ((frame.depth > 0.1) & (frame.depth <= 3.0)).mean() > 0.7  # ALSTER's range
        assert set(np.unique(frame.labels)) <= {0} | {o[0] for o in OBJECTS}
    assert [f.stamp_ns for f in frames] == [0, 100_000_000, 200_000_000]


def test_the_camera_moves_and_the_same_seed_renders_the_same_frames():
    frames = ProceduralRoom(seed=3).frames(5)
    eyes = np.stack([f.T_world_camera[:3, 3] for f in frames])
    assert (np.linalg.norm(np.diff(eyes, axis=0), axis=1) > 0.2).all()
    for f in frames:
        R = f.T_world_camera[:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    again = ProceduralRoom(seed=3).frames(5)
    assert all(np.array_equal(a.color, b.color) and np.array_equal(a.depth, b.depth) for a, b in zip(frames, again))
