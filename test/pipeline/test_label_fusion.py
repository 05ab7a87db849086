"""Label fusion (alster_mapping.pipeline.label_fusion) on procedural scenes and on the real capture."""

import shutil

import numpy as np
import pytest
import torch
from map_snapshot import assert_same_snapshot, snapshot
from scipy.spatial.transform import Rotation

from alster_mapping import cli
from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.config import LabelFusionConfig, MapConfig
from alster_mapping.core.frame import RGBDFrame
from alster_mapping.core.labels import SCANNET20_IDS, LabelSpace, nyu40, scannet20
from alster_mapping.data.label_fusion_frames import read_label_fusion_frames
from alster_mapping.map.export import project_labels
from alster_mapping.map.voxel_map import SemanticVoxelMap
from alster_mapping.pipeline.label_fusion import LabelFusion

W, H = 64, 48
CAM = CameraIntrinsics(40.0, 40.0, (W - 1) / 2, (H - 1) / 2, W, H)
VOXEL = 0.05

# A room corner seen from near the origin (camera frame convention: x right, y down, z forward).
# Each plane is axis-aligned: (axis, offset, raw NYU40 id). Offsets sit inside a voxel layer
# so every plane occupies exactly one layer of voxels.
WALL, FLOOR, DOOR = 1, 2, 8  # scannet20 ids: wall, floor, door
PLANES = [(2, 2.01, WALL), (1, 0.61, FLOOR), (0, -0.81, DOOR)]


def render(T_world_camera):
    """Analytic depth (float32 metres along the optical axis) and raw label ids of the room."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - CAM.cx) / CAM.fx, (v - CAM.cy) / CAM.fy, np.ones_like(u)], -1)
    dirs = rays @ T_world_camera[:3, :3].T
    origin = T_world_camera[:3, 3]
    best = np.full((H, W), np.inf)
    labels = np.zeros((H, W), np.int32)
    for axis, offset, label_id in PLANES:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (offset - origin[axis]) / dirs[..., axis]
        hit = np.isfinite(t) & (t > 0) & (t < best)
        best[hit] = t[hit]
        labels[hit] = label_id
    depth = np.where(np.isfinite(best), best, 0.0).astype(np.float32)
    return depth, labels


def pose(position, yaw_deg, pitch_deg):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("yx", [yaw_deg, pitch_deg], degrees=True).as_matrix()
    T[:3, 3] = position
    return T


def make_frame(T, labels=None, depth=None, stamp=0):
    d, lab = render(T)
    rng = np.random.default_rng(stamp)
    return RGBDFrame(
        color=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        depth=d if depth is None else depth,
        intrinsics=CAM,
        T_world_camera=T,
        stamp_ns=stamp,
        labels=lab if labels is None else labels,
    )


def trajectory(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        pose(rng.uniform([-0.2, -0.15, -0.2], [0.2, 0.15, 0.2]), rng.uniform(-20, 10), rng.uniform(-15, 5))
        for _ in range(n)
    ]


def make_map(label_space=None, feature_dim=20, voxel_size=VOXEL):
    return SemanticVoxelMap(MapConfig(voxel_size=voxel_size, feature_dim=feature_dim), label_space or scannet20())


def truth_of_keys(keys):
    """Expected class index per voxel key (-1 where the voxel holds two surfaces)."""
    space = scannet20()
    keys = np.asarray(keys)
    member = np.stack([keys[:, axis] == int(np.floor(offset / VOXEL)) for axis, offset, _ in PLANES], 1)
    ids = np.array([label_id for _, _, label_id in PLANES])
    truth = np.full(keys.shape[0], -1)
    single = member.sum(1) == 1
    truth[single] = space.encode(ids[member[single].argmax(1)]).numpy()
    assert (member.sum(1) >= 1).all(), "a voxel off every surface"
    return truth


def map_accuracy(m, min_count=1):
    keys, rows = m.items()
    data = m.read(rows)
    truth = truth_of_keys(keys.numpy())
    ok = (truth >= 0) & (data.count.numpy() >= min_count)
    assert ok.sum() > 100
    return float((data.label.numpy()[ok] == truth[ok]).mean())


def flip_labels(labels, rng, fraction=0.3):
    """Replace a fraction of the pixel labels by a different random scannet20 id."""
    ids = np.array(SCANNET20_IDS)
    out = labels.copy()
    flip = rng.random(labels.shape) < fraction
    random_ids = ids[rng.integers(0, len(ids), labels.shape)]
    # Re-draw draws that equal the true id (shift to the next id in the list).
    same = random_ids == labels
    idx = np.searchsorted(ids, random_ids[same])
    random_ids[same] = ids[(idx + 1) % len(ids)]
    out[flip] = random_ids[flip]
    return out, flip


# ---------------------------------------------------------------------------
# Procedural scenes
# ---------------------------------------------------------------------------


def test_render_is_a_sane_room():
    depth, labels = render(pose([0, 0, 0], 0, 0))
    assert (depth > 0).all()
    assert set(np.unique(labels)) == {WALL, FLOOR, DOOR}
    assert depth[0, W // 2] == pytest.approx(2.01, rel=1e-6)  # top centre sees the back wall


def test_clean_labels_give_every_surface_voxel_its_label():
    m = make_map()
    fusion = LabelFusion(m)
    for i, T in enumerate(trajectory(6)):
        fusion.integrate(make_frame(T, stamp=i))
    assert m.feature_kind == "label_evidence"
    keys, rows = m.items()
    data = m.read(rows)
    truth = truth_of_keys(keys.numpy())
    single = truth >= 0
    assert single.sum() > 300
    np.testing.assert_array_equal(data.label.numpy()[single], truth[single])
    # A voxel with one surface saw one label only: full confidence.
    np.testing.assert_array_equal(data.confidence.numpy()[single], 1.0)
    # Every surface is present.
    assert set(np.unique(truth[single])) == set(scannet20().encode(np.array([WALL, FLOOR, DOOR])).tolist())
    # Two-surface voxels carry one of their two labels.
    assert np.isin(data.label.numpy()[~single], scannet20().encode(np.array([WALL, FLOOR, DOOR])).numpy()).all()


def test_integrate_returns_the_updated_voxels():
    m = make_map()
    frame = make_frame(pose([0, 0, 0], -5, -5))
    result = LabelFusion(m).integrate(frame)
    assert result.num_pixels == int((frame.depth > 0.1).sum() - (frame.depth > 3.0).sum())
    assert result.keys.shape[0] == len(m) == result.rows.shape[0]
    np.testing.assert_array_equal(m.lookup(result.keys).numpy(), result.rows.numpy())
    assert set(result.timings) == {"lift", "vote", "map"}


def test_noisy_labels_are_voted_away():
    rng = np.random.default_rng(42)
    poses = trajectory(12, seed=1)
    m = make_map()
    fusion = LabelFusion(m)
    first = None
    pixel_flip_rates = []
    for i, T in enumerate(poses):
        clean = render(T)[1]
        noisy, flipped = flip_labels(clean, rng)
        pixel_flip_rates.append(flipped.mean())
        fusion.integrate(make_frame(T, labels=noisy, stamp=i))
        if i == 0:
            first = map_accuracy(m)
    assert 0.27 < np.mean(pixel_flip_rates) < 0.33
    assert 0.6 < first < 0.85, f"a single noisy frame gives ~70% right labels, got {first:.3f}"
    final = map_accuracy(m, min_count=5)
    assert final > 0.95, f"after {len(poses)} frames: {final:.3f}"
    assert final > first + 0.15


def test_confidence_reflects_agreement():
    T = pose([0, 0, 0], 0, 0)
    depth, _ = render(T)
    wall = np.full((H, W), WALL, np.int32)
    floor = np.full((H, W), FLOOR, np.int32)
    m = make_map()
    fusion = LabelFusion(m)
    for labels in (wall, wall, wall, floor):
        fusion.integrate(make_frame(T, labels=labels))
    a = m.to_arrays()
    # Three votes for wall and one for floor, from the same view: 3/4 agree.
    np.testing.assert_array_equal(a.label, WALL)
    np.testing.assert_allclose(a.confidence, 0.75, atol=1e-3)
    np.testing.assert_array_equal(a.count, 4)
    keys, rows = m.items()
    f = m.read(rows).feature.float().numpy()
    space = scannet20()
    np.testing.assert_allclose(f[:, space.ids.index(WALL)], 0.75, atol=1e-3)
    np.testing.assert_allclose(f[:, space.ids.index(FLOOR)], 0.25, atol=1e-3)
    np.testing.assert_allclose(f.sum(1), 1.0, atol=2e-3)
    # Two more floor votes: 3 vs 3 out of 6, confidence 0.5.
    for _ in range(2):
        fusion.integrate(make_frame(T, labels=floor))
    np.testing.assert_allclose(m.to_arrays().confidence, 0.5, atol=2e-3)


def test_noisy_voxels_have_lower_confidence_than_clean_ones():
    rng = np.random.default_rng(7)
    poses = trajectory(8, seed=2)
    clean_map, noisy_map = make_map(), make_map()
    for i, T in enumerate(poses):
        clean = render(T)[1]
        LabelFusion(clean_map).integrate(make_frame(T, labels=clean, stamp=i))
        LabelFusion(noisy_map).integrate(make_frame(T, labels=flip_labels(clean, rng)[0], stamp=i))
    keys, rows = noisy_map.items()
    data = noisy_map.read(rows)
    truth = truth_of_keys(keys.numpy())
    ok = (truth >= 0) & (data.count.numpy() >= 4)
    conf = data.confidence.float().numpy()[ok]
    right = data.label.numpy()[ok] == truth[ok]
    assert 0.5 < conf.mean() < 0.9
    assert conf[right].mean() > conf[~right].mean()
    clean_conf = clean_map.to_arrays().confidence
    assert clean_conf.mean() > conf.mean() + 0.1


def test_counts_increase_by_one_per_observing_frame():
    m = make_map()
    fusion = LabelFusion(m)
    poses = trajectory(5, seed=3)
    expected = {}
    for i, T in enumerate(poses):
        result = fusion.integrate(make_frame(T, stamp=i))
        for k in map(tuple, result.keys.tolist()):
            expected[k] = expected.get(k, 0) + 1
        keys, rows = m.items()
        counts = m.read(rows).count.numpy()
        got = dict(zip(map(tuple, keys.tolist()), counts.tolist()))
        assert got == expected
    assert max(expected.values()) == len(poses)


def test_same_view_counts_equal_number_of_frames():
    T = pose([0.05, 0, 0], 3, -4)
    m = make_map()
    fusion = LabelFusion(m)
    for _ in range(7):
        fusion.integrate(make_frame(T))
    counts = m.to_arrays().count
    np.testing.assert_array_equal(counts, 7)


def test_ignored_ids_add_geometry_but_no_votes():
    T = pose([0, 0, 0], -5, -5)
    _, labels = render(T)
    m = make_map()
    fusion = LabelFusion(m)
    ignored = np.zeros((H, W), np.int32)
    ignored[:, ::2] = 13  # blinds: an NYU40 id that scannet20 ignores
    fusion.integrate(make_frame(T, labels=ignored))
    assert len(m) > 100
    a = m.to_arrays()
    np.testing.assert_array_equal(a.label_index, -1)
    np.testing.assert_array_equal(a.confidence, 0.0)
    np.testing.assert_array_equal(a.count, 1)
    keys, rows = m.items()
    assert (m.read(rows).feature == 0).all()
    # A labelled frame afterwards decides the labels on its own.
    fusion.integrate(make_frame(T, labels=labels))
    keys, rows = m.items()
    data = m.read(rows)
    truth = truth_of_keys(keys.numpy())
    single = truth >= 0
    np.testing.assert_array_equal(data.label.numpy()[single], truth[single])
    np.testing.assert_array_equal(data.confidence.numpy()[single], 1.0)
    np.testing.assert_array_equal(data.count.numpy(), 2)


def test_partly_ignored_pixels_do_not_vote():
    T = pose([0, 0, 0], 0, 0)
    depth, _ = render(T)
    labels = np.full((H, W), WALL, np.int32)
    labels[:, : W // 2] = 0  # left half unlabelled
    m = make_map()
    LabelFusion(m).integrate(make_frame(T, labels=labels))
    a = m.to_arrays()
    left = a.xyz[:, 0] < -0.3
    right = a.xyz[:, 0] > 0.3
    assert left.sum() > 10 and right.sum() > 10
    assert (a.label_index[left] == -1).all()
    assert (a.label[right] == WALL).all()


@pytest.mark.parametrize("bad", ["zeros", "nan", "inf", "negative", "out_of_range"])
def test_frame_without_valid_depth_raises_and_leaves_map_unchanged(bad):
    m = make_map()
    fusion = LabelFusion(m)
    T = pose([0, 0, 0], 0, 0)
    fusion.integrate(make_frame(T))
    before = snapshot(m)
    value = {"zeros": 0.0, "nan": np.nan, "inf": np.inf, "negative": -1.0, "out_of_range": 50.0}[bad]
    depth = np.full((H, W), value, np.float32)
    with pytest.raises(ValueError, match="depth"):
        fusion.integrate(make_frame(pose([0.1, 0, 0], 5, 0), depth=depth))
    assert_same_snapshot(snapshot(m), before)


def test_first_frame_without_valid_depth_leaves_map_empty():
    m = make_map()
    with pytest.raises(ValueError):
        LabelFusion(m).integrate(make_frame(np.eye(4), depth=np.zeros((H, W), np.float32)))
    assert len(m) == 0 and m.feature_kind == "none"


@pytest.mark.parametrize("unknown", [41, 255, 1000])
def test_unknown_label_ids_raise_and_leave_map_unchanged(unknown):
    m = make_map()
    fusion = LabelFusion(m)
    T = pose([0, 0, 0], 0, 0)
    fusion.integrate(make_frame(T))
    before = snapshot(m)
    _, labels = render(pose([0.1, 0, 0], 5, 0))
    labels[10, 10] = unknown
    with pytest.raises(ValueError, match=str(unknown)):
        fusion.integrate(make_frame(pose([0.1, 0, 0], 5, 0), labels=labels))
    assert_same_snapshot(snapshot(m), before)


def test_label_image_size_mismatch_raises():
    m = make_map()
    frame = make_frame(np.eye(4))
    with pytest.raises(ValueError, match="label image"):
        LabelFusion(m).integrate(frame, labels=np.ones((H, W + 1), np.int32))
    assert len(m) == 0


def test_explicit_labels_override_frame_labels():
    T = pose([0, 0, 0], 0, 0)
    m = make_map()
    frame = make_frame(T)  # carries the true labels
    LabelFusion(m).integrate(frame, labels=torch.full((H, W), FLOOR, dtype=torch.int64))
    assert (m.to_arrays().label == FLOOR).all()


def test_frame_without_labels_raises():
    d, _ = render(np.eye(4))
    frame = RGBDFrame(color=np.zeros((H, W, 3), np.uint8), depth=d, intrinsics=CAM, T_world_camera=np.eye(4))
    m = make_map()
    with pytest.raises(ValueError, match="label"):
        LabelFusion(m).integrate(frame)
    assert len(m) == 0


def test_more_classes_than_feature_dim_raises_at_construction():
    with pytest.raises(ValueError, match="feature_dim"):
        LabelFusion(make_map(label_space=nyu40(), feature_dim=20))
    with pytest.raises(ValueError, match="feature_dim"):
        LabelFusion(make_map(label_space=scannet20(), feature_dim=19))
    LabelFusion(make_map(label_space=nyu40(), feature_dim=40))  # exactly enough


def test_map_with_learned_features_is_refused():
    m = make_map()
    m.feature_kind = "learned"
    with pytest.raises(ValueError, match="learned"):
        LabelFusion(m)


def test_invalid_fusion_config_is_refused():
    with pytest.raises(ValueError, match="max_range"):
        LabelFusion(make_map(), LabelFusionConfig(max_range=-1.0))


def test_colour_is_the_mean_of_observations():
    T = pose([0, 0, 0], 0, 0)
    d, labels = render(T)
    m = make_map()
    fusion = LabelFusion(m)
    for value in (10, 20, 30):
        frame = RGBDFrame(
            color=np.full((H, W, 3), value, np.uint8), depth=d, intrinsics=CAM, T_world_camera=T, labels=labels
        )
        fusion.integrate(frame)
    np.testing.assert_array_equal(m.to_arrays().color, 20)


# ---------------------------------------------------------------------------
# Real data: the wkentaro/label-fusion tabletop capture
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_frames(label_fusion_dir):
    return read_label_fusion_frames(label_fusion_dir)


def _agreement(m, frame):
    space = m.label_space
    projected = project_labels(m, frame, 3.0, 0.1)
    truth = space.encode(frame.labels).numpy()
    valid = projected.observed & (truth >= 0)
    assert valid.sum() > 10000
    return float(((projected.label == truth) & valid).sum() / valid.sum())


def test_real_frames_are_read_completely(real_frames):
    assert len(real_frames) == 15
    space = LabelSpace.load("label_fusion")
    for frame in real_frames:
        assert frame.shape == (480, 640)
        assert frame.depth.dtype == np.float32 and frame.color.dtype == np.uint8
        assert frame.labels is not None and frame.labels.shape == (480, 640)
        space.encode(frame.labels)  # every id belongs to the label space
        valid = frame.depth[frame.depth > 0]
        assert valid.size > 0.1 * frame.depth.size and valid.min() >= 0.3 and valid.max() < 3.0
    stamps = [f.stamp_ns for f in real_frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == 15


@pytest.mark.parametrize("voxel_size, threshold", [(0.04, 0.90), (0.01, 0.93)])
def test_real_frames_reprojected_labels_agree(real_frames, voxel_size, threshold):
    space = LabelSpace.load("label_fusion")
    if voxel_size == 0.04:
        assert MapConfig().voxel_size == 0.04  # the default
        config = MapConfig(feature_dim=space.num_classes)
    else:
        config = MapConfig(voxel_size=voxel_size, feature_dim=space.num_classes)
    m = SemanticVoxelMap(config, space)
    fusion = LabelFusion(m, LabelFusionConfig(max_range=3.0, min_range=0.1))
    for frame in real_frames:
        fusion.integrate(frame)
    accuracies = [_agreement(m, frame) for frame in real_frames]
    assert min(accuracies) >= threshold, [round(a, 4) for a in accuracies]
    # cli.frame_accuracy measures the same thing.
    for frame, accuracy in zip(real_frames, accuracies):
        result = cli.frame_accuracy(m, frame, 3.0, 0.1)
        assert result["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert result["pixels"] > 10000
        assert set(result["per_class"]) <= set(space.names)
        assert all(0.0 <= r <= 1.0 for r in result["per_class"].values())


def test_real_frames_max_frames(label_fusion_dir):
    frames = read_label_fusion_frames(label_fusion_dir, max_frames=2)
    assert len(frames) == 2


def _copy_first_frame(src, dst):
    dst.mkdir()
    shutil.copy(src / "camera-intrinsics.color.txt", dst)
    first = sorted(src.glob("frame-*.color.png"))[0].name.split(".")[0]
    for path in src.glob(f"{first}.*"):
        shutil.copy(path, dst)
    return first


def test_reader_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="no_such_dir"):
        read_label_fusion_frames(tmp_path / "no_such_dir")


def test_reader_empty_directory(tmp_path):
    (tmp_path / "camera-intrinsics.color.txt").write_text("500 0 320\n0 500 240\n0 0 1\n")
    with pytest.raises(ValueError, match="frame"):
        read_label_fusion_frames(tmp_path)


def test_reader_missing_intrinsics(label_fusion_dir, tmp_path):
    copy = tmp_path / "frames"
    _copy_first_frame(label_fusion_dir, copy)
    (copy / "camera-intrinsics.color.txt").unlink()
    with pytest.raises(ValueError, match="camera-intrinsics.color.txt"):
        read_label_fusion_frames(copy)


def test_reader_malformed_intrinsics(label_fusion_dir, tmp_path):
    copy = tmp_path / "frames"
    _copy_first_frame(label_fusion_dir, copy)
    (copy / "camera-intrinsics.color.txt").write_text("1 2\n3 4\n")
    with pytest.raises(ValueError, match="camera-intrinsics.color.txt"):
        read_label_fusion_frames(copy)


@pytest.mark.parametrize("which", ["color", "depth", "segm"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "body_garbage"])
def test_reader_corrupt_png_names_the_file(label_fusion_dir, tmp_path, which, damage):
    copy = tmp_path / "frames"
    stem = _copy_first_frame(label_fusion_dir, copy)
    target = copy / f"{stem}.{which}.png"
    data = target.read_bytes()
    rng = np.random.default_rng(8)
    if damage == "garbage":
        target.write_bytes(rng.integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif damage == "truncated":
        target.write_bytes(data[: len(data) // 3])
    else:  # a valid PNG signature and header, then garbage
        target.write_bytes(data[:64] + rng.integers(0, 256, len(data) - 64, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=f"{stem}.{which}.png"):
        read_label_fusion_frames(copy)


def test_reader_missing_pose_names_the_file(label_fusion_dir, tmp_path):
    copy = tmp_path / "frames"
    stem = _copy_first_frame(label_fusion_dir, copy)
    (copy / f"{stem}.pose.txt").unlink()
    with pytest.raises(ValueError, match=f"{stem}.pose.txt"):
        read_label_fusion_frames(copy)


def test_reader_non_rigid_pose_names_the_frame(label_fusion_dir, tmp_path):
    copy = tmp_path / "frames"
    stem = _copy_first_frame(label_fusion_dir, copy)
    np.savetxt(copy / f"{stem}.pose.txt", np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=stem):
        read_label_fusion_frames(copy)
