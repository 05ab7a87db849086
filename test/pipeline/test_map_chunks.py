"""Cutting a map into SAFNet chunks: every voxel in some chunk, views by coverage, poses
disturbed as asked, chunks without views still batch."""

import math

import numpy as np
from scipy.spatial.transform import Rotation

from alster_mapping.nets.safnet.inputs import stack_chunks
from alster_mapping.pipeline.map_chunks import ChunkConfig, build_chunk, map_floor, perturb_pose, split_rows
from alster_mapping.pipeline.view_features import ViewPoints


def test_split_rows_covers_every_row_with_parts_of_one_size():
    rng = np.random.default_rng(0)
    rows = np.arange(10, 1010)
    parts = split_rows(rows, 256, rng)
    assert len(parts) == 4 and all(len(p) == 256 for p in parts)
    assert set(np.concatenate(parts)) == set(rows)
    (few,) = split_rows(rows[:100], 256, rng)
    assert len(few) == 256 and set(few) == set(rows[:100])


def test_perturb_pose_moves_and_turns_by_the_amounts_asked():
    rng = np.random.default_rng(1)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    T[:3, 3] = [1.0, 2.0, 0.5]
    moved = perturb_pose(T, 0.1, 5.0, rng)
    assert math.isclose(np.linalg.norm(moved[:3, 3] - T[:3, 3]), 0.1)
    angle = Rotation.from_matrix(T[:3, :3].T @ moved[:3, :3]).magnitude()
    assert math.isclose(math.degrees(angle), 5.0, rel_tol=1e-9)


def test_a_chunk_without_views_batches_with_one_that_has_them():
    rng = np.random.default_rng(2)
    xyz = rng.uniform(0, 1.5, (300, 3)).astype(np.float32)
    colour = rng.integers(0, 255, (300, 3)).astype(np.uint8)
    view = ViewPoints(xyz[:50] - [0, 0, 1], rng.normal(size=(50, 40)).astype(np.float32), np.full(50, -1), np.eye(4))
    pose = np.eye(4)
    pose[2, 3] = 1.0  # camera-frame points + 1 m in z: back on the voxels
    config = ChunkConfig(points=128)
    rows = np.arange(128)
    seen = build_chunk(xyz, colour, None, rows, [view], [pose], 0.0, config, rng, 40)
    blind = build_chunk(xyz, colour, None, rows, [], [], 0.0, config, rng, 40)
    assert seen.q_features.shape[1] == blind.q_features.shape[1] == 40
    assert (seen.forward_distance < 0.2).mean() > 0.1 and (blind.forward_distance > 100).all()
    assert stack_chunks([seen, blind])["q_features"].shape[-1] == 40


def test_the_floor_is_robust_to_a_few_stray_voxels():
    rng = np.random.default_rng(3)
    xyz = np.c_[rng.uniform(0, 4, (5000, 2)), rng.uniform(0.0, 2.5, 5000)]
    xyz[:2000, 2] = 0.02  # the floor
    xyz[:5, 2] = -1.0  # noise below it
    assert abs(map_floor(xyz) - 0.02) < 1e-9
