"""The keyframe store: coverage rule, budgets, least-useful eviction, files, and the
paper's greedy view choice."""

import numpy as np
import pytest

from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.frame import RGBDFrame
from alster_mapping.core.geometry import seen_points
from alster_mapping.core.tensor_file import TensorFileError, read_tensor_file, write_tensor_file
from alster_mapping.pipeline.keyframes import (
    Keyframe,
    KeyframeConfig,
    KeyframeStore,
    depth_to_millimetres,
    keyframe_file,
    select_views,
)

K = CameraIntrinsics(40.0, 40.0, 19.5, 14.5, 40, 30)


def wall_frame(x: float, depth: float = 2.0, stamp: int = 0) -> RGBDFrame:
    """A camera at (x, 0, 0) looking along +z at a flat wall ``depth`` m away."""
    pose = np.eye(4)
    pose[0, 3] = x
    color = np.full((30, 40, 3), 100, np.uint8)
    return RGBDFrame(color, np.full((30, 40), depth, np.float32), K, pose, stamp)


def test_a_frame_is_kept_only_when_it_sees_enough_new_cells():
    store = KeyframeStore(KeyframeConfig(min_new_fraction=0.5, cell_size=0.1, pixel_step=2))
    assert store.consider(wall_frame(0.0))  # the first frame with depth is always kept
    assert not store.consider(wall_frame(0.02, stamp=1))  # almost the same view
    assert store.consider(wall_frame(3.0, stamp=2))  # a wall 3 m aside: all new
    empty = RGBDFrame(np.zeros((30, 40, 3), np.uint8), np.zeros((30, 40), np.float32), K, np.eye(4))
    assert not store.consider(empty)
    assert store.stats()["keyframes"] == 2
    assert store.counts == {"considered": 4, "added": 2, "evicted": 0, "no_depth": 1, "redundant": 1}


def test_the_least_useful_keyframe_goes_first_over_either_budget():
    store = KeyframeStore(KeyframeConfig(max_count=2, min_new_fraction=0.0, pixel_step=2))
    store.consider(wall_frame(0.0, stamp=0))
    store.consider(wall_frame(3.0, stamp=1))
    store.consider(wall_frame(0.05, stamp=2))  # overlaps the first almost wholly: the first two become less useful
    stamps = [k.stamp_ns for k in store.keyframes()]
    assert len(stamps) == 2 and 1 in stamps  # the one that alone covers the far wall stays
    assert store.counts["evicted"] == 1
    one = wall_frame(0.0).color.nbytes + 30 * 40 * 2
    small = KeyframeStore(KeyframeConfig(max_megabytes=2.5 * one / 1e6, min_new_fraction=0.0))
    for i in range(4):
        small.consider(wall_frame(3.0 * i, stamp=i))
    assert len(small) == 2 and small.nbytes <= 2.5 * one


def test_depth_is_kept_in_millimetres():
    depth = np.array([[0.0, -1.0, np.nan, np.inf], [1.2344, 2.0, 65.6, 0.0005]], np.float32)
    assert depth_to_millimetres(depth).tolist() == [[0, 0, 0, 0], [1234, 2000, 0, 0]]


def test_save_and_load_round_trip_and_bad_files(tmp_path):
    store = KeyframeStore(KeyframeConfig(min_new_fraction=0.0))
    for i in range(3):
        store.consider(wall_frame(3.0 * i, 1.0 + 0.5 * i, stamp=10 + i))
    path = store.save(tmp_path / "room.keyframes.safetensors")
    assert path == keyframe_file(tmp_path / "room.safetensors")
    again = KeyframeStore()
    assert again.load(path) == {}
    for a, b in zip(store.keyframes(), again.keyframes()):
        assert a.stamp_ns == b.stamp_ns and a.intrinsics == b.intrinsics
        assert np.array_equal(a.color, b.color) and np.array_equal(a.depth_mm, b.depth_mm)
        assert np.array_equal(a.T_world_camera, b.T_world_camera) and np.array_equal(a.cells, b.cells)
    # A keyframe with a broken pose is skipped and counted; the others load.
    tensors, meta = read_tensor_file(path)
    tensors["1.pose"][0, 0] = 3.0
    write_tensor_file(tmp_path / "bad.safetensors", tensors, {k: v for k, v in meta.items() if k != "crc32"})
    skipped = again.load(tmp_path / "bad.safetensors")
    assert sum(skipped.values()) == 1 and len(again) == 2
    write_tensor_file(tmp_path / "other.safetensors", tensors, {"format": "something_else"})
    with pytest.raises(TensorFileError, match="not a keyframe file"):
        again.load(tmp_path / "other.safetensors")
    assert len(again) == 2  # a refused file leaves the store as it was


def test_select_views_is_greedy_by_new_coverage():
    wall = np.array([[x, y, 2.0] for x in np.linspace(-0.5, 3.5, 41) for y in np.linspace(-0.3, 0.3, 5)])
    keyframes = [
        Keyframe(f.color, depth_to_millimetres(f.depth), f.intrinsics, f.T_world_camera, f.stamp_ns)
        for f in (wall_frame(0.0), wall_frame(0.1), wall_frame(3.0), wall_frame(20.0))
    ]
    chosen, covered = select_views(wall, keyframes, count=3)
    # The first view covers the most; the second the most of what is left (not its near twin);
    # the twin then adds a sliver and the far-away view nothing.
    assert chosen[:2] in ([0, 2], [1, 2])
    assert 3 not in chosen
    seen = [seen_points(wall, keyframes[i].depth, K, keyframes[i].T_world_camera, 3.0) for i in chosen]
    assert np.array_equal(covered, np.logical_or.reduce(seen))
    x = wall[:, 0]  # the views see +-1 m of the wall around their x: a gap between 1.1 and 2.0
    assert covered[(x < 0.95) | (x > 2.05)].all() and not covered[(x > 1.15) & (x < 1.95)].any()
    assert select_views(wall, keyframes[3:], count=2)[0] == []
