"""Synthetic worlds (alster_mapping.data.synthetic): determinism, label ground truth, depth noise,
trajectories, class coverage and the benchmark script."""

import importlib
import json
import sys
from functools import cache
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from alster_mapping.core.labels import SCANNET20_IDS
from alster_mapping.data.procedural_room import look_at  # noqa: F401  (still importable from there)
from alster_mapping.data.synthetic import SyntheticConfig, SyntheticView, SyntheticWorld

ROOT = Path(__file__).resolve().parents[2]


SPARSE = SyntheticConfig(point_density=500.0)  # fewer ground-truth points keep the tests fast


@cache
def world(seed: int, width: int = 96, height: int = 72) -> SyntheticWorld:
    return SyntheticWorld(seed, width, height, SPARSE)


@cache
def poses(seed: int, n: int = 300) -> tuple:
    return tuple(world(seed).trajectory(n))


def summary(w: SyntheticWorld) -> list:
    return [(o.name, o.label, o.instance, o.position, o.yaw, o.aabb_min, o.aabb_max, o.wall, o.color) for o in w.objects]


def test_same_seed_same_world_frames_and_points_in_any_order():
    a, b = SyntheticWorld(3, 96, 72, SPARSE), SyntheticWorld(3, 96, 72, SPARSE)
    assert summary(a) == summary(b)
    ta, tb = a.trajectory(20), b.trajectory(20)
    for x, y in zip(ta, tb):
        np.testing.assert_array_equal(x, y)
    va5, va2 = a.render(ta[5], index=5), a.render(ta[2], index=2)
    vb2, vb5 = b.render(tb[2], index=2), b.render(tb[5], index=5)
    again = a.render(ta[5], index=5)
    for v, w in ((va5, vb5), (va2, vb2), (va5, again)):
        for name in ("color", "depth", "labels"):
            np.testing.assert_array_equal(getattr(v.frame, name), getattr(w.frame, name))
        np.testing.assert_array_equal(v.instances, w.instances)
        np.testing.assert_array_equal(v.depth_clean, w.depth_clean)
    seq, t6 = list(a.sequence(6)), a.trajectory(6)
    assert [v.frame.stamp_ns for v in seq] == [i * 100_000_000 for i in range(6)]
    for i in (2, 5):
        np.testing.assert_array_equal(seq[i].frame.T_world_camera, t6[i])
        np.testing.assert_array_equal(seq[i].frame.depth, a.render(t6[i], index=i).frame.depth)
    for x, y in zip(a.ground_truth_points(), b.ground_truth_points()):
        np.testing.assert_array_equal(x, y)
    # The noise depends on the frame index.
    assert not np.array_equal(a.render(ta[5], index=6).frame.depth, va5.frame.depth)
    # Different seeds differ.
    c = SyntheticWorld(4, 96, 72, SPARSE)
    assert summary(c) != summary(a)
    assert not np.allclose(c.bounds()[1], a.bounds()[1])
    assert not np.allclose(c.trajectory(20)[10], ta[10])


def test_views_have_the_frame_layout():
    w = world(0)
    views = list(w.sequence(3))
    assert [v.frame.stamp_ns for v in views] == [0, 100_000_000, 200_000_000]
    for v in views:
        assert isinstance(v, SyntheticView)
        assert v.frame.color.shape == (72, 96, 3) and v.frame.color.dtype == np.uint8
        assert v.frame.depth.shape == (72, 96) and v.frame.depth.dtype == np.float32
        assert v.frame.labels.dtype == np.uint16 and v.instances.dtype == np.uint16
        assert v.depth_clean.dtype == np.float32 and v.frame.frame_id == "camera"
    K = w.intrinsics
    assert (K.width, K.height) == (96, 72)
    assert 50 < np.degrees(2 * np.arctan(K.width / 2 / K.fx)) < 65
    lo, hi = w.bounds()
    assert np.all(lo == 0) and 4.5 <= hi[0] <= 7 and 4 <= hi[1] <= 6 and 2.5 <= hi[2] <= 2.9


def test_every_instance_has_one_label_in_pixels_and_points():
    w = world(1)
    inst_label = np.zeros(len(w.objects) + 1, dtype=np.uint16)
    for o in w.objects:
        inst_label[o.instance] = o.label
    assert [o.instance for o in w.objects] == list(range(1, len(w.objects) + 1))
    used = {0} | {o.label for o in w.objects}
    for T in poses(1)[::30]:
        v = w.render(T)
        assert set(np.unique(v.frame.labels).tolist()) <= used
        np.testing.assert_array_equal(inst_label[v.instances], v.frame.labels)
    points, labels, instances = w.ground_truth_points()
    assert points.dtype == np.float32 and points.shape == (len(labels), 3)
    assert labels.dtype == np.uint16 and instances.dtype == np.uint16
    assert instances.min() >= 1
    np.testing.assert_array_equal(inst_label[instances], labels)
    lo, hi = w.bounds()
    assert (points >= lo - 1e-4).all() and (points <= hi + 1e-4).all()


def test_pixel_labels_agree_with_the_nearest_ground_truth_point():
    w = SyntheticWorld(2, 160, 120)
    points, labels, instances = w.ground_truth_points()
    tree = cKDTree(points)
    K = w.intrinsics
    v_, u_ = np.mgrid[0 : K.height, 0 : K.width]
    rays = np.stack([(u_ - K.cx) / K.fx, (v_ - K.cy) / K.fy, np.ones(u_.shape)], -1)
    covered = agree_label = agree_inst = total = 0
    for i, T in enumerate(w.trajectory(200)[::40]):
        view = w.render(T, index=i)
        m = view.depth_clean > 0
        cam = rays[m] * view.depth_clean[m][:, None]
        pts = cam @ T[:3, :3].T + T[:3, 3]
        dist, nn = tree.query(pts, distance_upper_bound=0.03)
        ok = np.isfinite(dist)
        total += m.sum()
        covered += ok.sum()
        agree_label += (labels[nn[ok]] == view.frame.labels[m][ok]).sum()
        agree_inst += (instances[nn[ok]] == view.instances[m][ok]).sum()
    assert covered / total > 0.9  # visible surfaces carry ground-truth points
    assert agree_label / covered >= 0.95
    assert agree_inst / covered >= 0.95


def test_depth_noise_grows_with_distance_drops_out_at_edges_and_respects_the_range():
    w = SyntheticWorld(0, 160, 120)
    cfg = w.config
    near, far, edge_drop, other_drop = [], [], [], []
    for i, T in enumerate(w.trajectory(300)[::25]):
        v = w.render(T, index=i)
        d, dc = v.frame.depth, v.depth_clean
        assert d.max() <= cfg.max_depth and dc.max() <= cfg.max_depth
        assert (d[dc == 0] == 0).all()  # no measurement without a surface in range
        both = (d > 0) & (dc > 0)
        err = np.abs(d - dc)
        near.append(err[both & (dc < 1.5)])
        far.append(err[both & (dc > 3.0)])
        jump = np.zeros_like(dc)
        jump[:, 1:] = np.maximum(jump[:, 1:], np.abs(np.diff(dc, axis=1)))
        jump[:, :-1] = np.maximum(jump[:, :-1], np.abs(np.diff(dc, axis=1)))
        jump[1:] = np.maximum(jump[1:], np.abs(np.diff(dc, axis=0)))
        jump[:-1] = np.maximum(jump[:-1], np.abs(np.diff(dc, axis=0)))
        edge = (jump > 0.1 + 0.05 * dc) & (dc > 0)
        flat = (jump < 0.01) & (dc > 0) & (dc < 2.5)
        edge_drop.append(d[edge] == 0)
        other_drop.append(d[flat] == 0)
    near, far = np.concatenate(near), np.concatenate(far)
    assert len(near) > 500 and len(far) > 500
    assert np.median(far) > 3 * np.median(near)
    assert np.std(far) > 0.01 and np.std(near) < 0.005
    edge_rate, other_rate = np.concatenate(edge_drop).mean(), np.concatenate(other_drop).mean()
    assert edge_rate > 0.3 and other_rate < 0.05 and edge_rate > 5 * other_rate
    # Without noise, depth is the clean depth.
    clean = SyntheticWorld(0, 96, 72, SyntheticConfig(noise=False))
    v = clean.render(clean.trajectory(5)[4])
    np.testing.assert_array_equal(v.frame.depth, v.depth_clean)


def test_trajectory_walks_smoothly_through_free_space_and_looks_around():
    for seed in (0, 4):
        w = world(seed)
        cfg = w.config
        T = np.stack(poses(seed))
        R, eye = T[:, :3, :3], T[:, :3, 3]
        np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
        np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
        assert (eye[:, 2] >= 1.2).all() and (eye[:, 2] <= 1.8).all()
        lo, hi = w.bounds()
        assert (eye[:, :2] >= lo[:2] + cfg.wall_clearance - 1e-9).all() and (eye[:, :2] <= hi[:2] - cfg.wall_clearance + 1e-9).all()
        for o in w.objects:
            if o.name in ("floor", "wall", "ceiling"):
                continue
            inside = (eye[:, :2] > np.array(o.aabb_min[:2])) & (eye[:, :2] < np.array(o.aabb_max[:2]))
            assert not inside.all(1).any(), f"camera inside the footprint of {o.name}"
        dt = cfg.frame_period_ns * 1e-9
        vel = np.diff(eye[:, :2], axis=0)
        step = np.linalg.norm(vel, axis=1)
        assert cfg.speed_range[0] * dt * 0.9 <= step.min() and step.max() <= cfg.speed_range[1] * dt * 1.1
        assert np.linalg.norm(np.diff(vel, axis=0), axis=1).max() < 0.35 * step.mean()  # smooth
        assert np.abs(np.diff(eye[:, 2])).max() < 0.025
        fwd = R[:, :, 2]
        pitch = np.degrees(np.arcsin(-fwd[:, 2]))
        assert (pitch >= 10 - 1e-6).all() and (pitch <= 35 + 1e-6).all()
        yaw = np.unwrap(np.arctan2(fwd[:, 1], fwd[:, 0]))
        assert np.ptp(yaw) > np.radians(90)  # looks around
        assert np.degrees(np.abs(np.diff(yaw))).max() < 15  # no jumps between frames
        assert np.linalg.norm(eye[-1] - eye[0]) > 0 and step.sum() > 8


def test_every_scannet20_class_exists_and_is_seen():
    union = set()
    for seed in range(5):
        w = world(seed)
        _, labels, _ = w.ground_truth_points()
        classes = set(np.unique(labels).tolist()) & set(SCANNET20_IDS)
        assert len(classes) >= 17, f"world {seed} has only {len(classes)} classes"
        union |= classes
        seen = set()
        for i, T in enumerate(poses(seed)[::15]):
            seen |= set(np.unique(w.render(T, index=i).frame.labels).tolist())
        assert len(seen & classes) >= 10, f"world {seed} shows only {sorted(seen & classes)}"
    assert union == set(SCANNET20_IDS)


def test_most_pixels_have_valid_depth_within_3m():
    w = world(3)
    share = [((v.frame.depth > 0) & (v.frame.depth <= 3.0)).mean() for v in (w.render(T, index=i) for i, T in enumerate(poses(3)[::20]))]
    assert np.mean(share) >= 0.5


def test_benchmark_script_runs_quick(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        bench = importlib.import_module("bench_synthetic")
    finally:
        sys.path.pop(0)
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bench_synthetic.json").read_text())
    assert result["image"] == {"width": 96, "height": 72}
    assert result["fps_median"] > 0 and len(result["worlds"]) == 1
