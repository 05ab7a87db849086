"""Exports of the map (alster_mapping.map.export): PLY, PNG renders, labels projected into frames."""

import os

import numpy as np
import open3d as o3d
import pytest
import torch
from PIL import Image

from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.config import MapConfig
from alster_mapping.core.frame import RGBDFrame
from alster_mapping.core.geometry import observed_voxels
from alster_mapping.core.labels import scannet20
from alster_mapping.map.export import export_ply, project_labels, render_png, save_png
from alster_mapping.map.voxel_map import SemanticVoxelMap

W, H = 64, 48
CAM = CameraIntrinsics(40.0, 40.0, (W - 1) / 2, (H - 1) / 2, W, H)


def make_map(seed=0, n=800):
    rng = np.random.default_rng(seed)
    m = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=4), scannet20())
    keys = np.unique(rng.integers(-15, 15, (n, 3)), axis=0).astype(np.int32)
    k = keys.shape[0]
    m.write(
        keys,
        label=rng.integers(-1, 20, k),
        confidence=rng.random(k),
        count=rng.integers(0, 40000, k),
        color=rng.integers(0, 256, (k, 3), dtype=np.uint8),
    )
    return m


def _sorted_by_position(xyz, *columns):
    order = np.lexsort(np.round(xyz / 0.025).astype(np.int64).T)
    return [xyz[order], *[c[order] for c in columns]]


@pytest.mark.parametrize("color_by", ["label", "rgb"])
def test_export_ply_round_trip_through_open3d(tmp_path, color_by):
    m = make_map()
    path = tmp_path / f"map_{color_by}.ply"
    assert export_ply(m, path, color_by=color_by) == path
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert sorted(os.listdir(tmp_path)) == [path.name]
    cloud = o3d.t.io.read_point_cloud(str(path))
    a = m.to_arrays()
    pos = cloud.point.positions.numpy()
    assert pos.shape == (len(a), 3) and pos.dtype == np.float32
    colors = cloud.point.colors.numpy()
    assert colors.dtype == np.uint8 and colors.shape == (len(a), 3)
    label = cloud.point.label.numpy().reshape(-1)
    confidence = cloud.point.confidence.numpy().reshape(-1)
    count = cloud.point.count.numpy().reshape(-1)
    got = _sorted_by_position(pos, colors, label, confidence, count)
    want = _sorted_by_position(a.xyz, a.label_color if color_by == "label" else a.color, a.label, a.confidence, a.count)
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    for g, w, name in zip(got[1:], want[1:], ["colors", "label", "confidence", "count"]):
        np.testing.assert_array_equal(g, w, err_msg=name)
    assert (want[4] == 32767).any()  # saturated counts survive
    assert (want[2] == 0).any()  # unknown labels are written as the unknown id


def test_export_ply_rejects_unknown_colouring(tmp_path):
    with pytest.raises(ValueError, match="color_by"):
        export_ply(make_map(), tmp_path / "x.ply", color_by="height")
    assert os.listdir(tmp_path) == []


def test_export_ply_of_empty_map_fails_cleanly(tmp_path):
    m = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=4))
    with pytest.raises(ValueError, match="empty"):
        export_ply(m, tmp_path / "empty.ply")
    assert os.listdir(tmp_path) == []


def test_render_png_writes_non_blank_image_of_requested_size(tmp_path):
    m = make_map()
    path = tmp_path / "render.png"
    try:
        out = render_png(m, path, color_by="label", width=160, height=120)
    except RuntimeError as exc:
        pytest.skip(f"no rendering context: {exc}")
    assert out == path
    image = np.asarray(Image.open(path))
    assert image.shape[:2] == (120, 160)
    assert image.dtype == np.uint8
    flat = image[..., :3].reshape(-1, 3)
    assert len(np.unique(flat, axis=0)) > 5, "render is blank"
    assert (flat != 255).any(axis=1).mean() > 0.01, "nothing drawn on the white background"
    assert sorted(os.listdir(tmp_path)) == ["render.png"]


def test_render_png_of_empty_map_raises(tmp_path):
    m = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=4))
    with pytest.raises(ValueError, match="empty"):
        render_png(m, tmp_path / "r.png", width=32, height=24)
    assert os.listdir(tmp_path) == []


def test_save_png_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    path = save_png(tmp_path / "img.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert sorted(os.listdir(tmp_path)) == ["img.png"]


def test_project_labels_marks_unobserved_pixels():
    T = np.eye(4)
    T[:3, 3] = [0.1, -0.05, 0.0]
    rng = np.random.default_rng(2)
    depth = rng.uniform(0.5, 2.5, (H, W)).astype(np.float32)
    depth[:5] = 0.0  # no return
    depth[5, :] = np.nan
    depth[6, :] = 4.0  # beyond max range
    frame = RGBDFrame(color=np.zeros((H, W, 3), np.uint8), depth=depth, intrinsics=CAM, T_world_camera=T)
    m = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=4), scannet20())
    keys, _, mask = observed_voxels(torch.from_numpy(depth), CAM, T, 0.05, 3.0, 0.0)
    # Put the left half of the image's voxels into the map, labelled by column parity.
    cols = np.nonzero(mask.numpy())[1]
    in_map = cols < W // 2
    ukeys, inverse = np.unique(keys.numpy()[in_map], axis=0, return_inverse=True)
    labels = rng.integers(0, 20, ukeys.shape[0])
    m.write(ukeys, label=labels, confidence=np.full(ukeys.shape[0], 0.5))
    # Any right-half pixel whose voxel is also seen on the left is in the map too.
    all_rows = m.lookup(keys).numpy()
    projected = project_labels(m, frame, max_range=3.0)
    assert projected.label.shape == (H, W) and projected.label.dtype == np.int64
    assert projected.confidence.shape == (H, W) and projected.confidence.dtype == np.float32
    np.testing.assert_array_equal(projected.observed, mask.numpy())
    assert not projected.observed[:7].any()
    assert (projected.label[:7] == -1).all() and (projected.confidence[:7] == 0).all()
    observed_labels = projected.label[mask.numpy()]
    absent = all_rows < 0
    assert absent.sum() > 100
    assert (observed_labels[absent] == -1).all()
    assert (projected.confidence[mask.numpy()][absent] == 0).all()
    present = ~absent
    expected = m.crop(keys[torch.from_numpy(present)]).label.numpy()
    np.testing.assert_array_equal(observed_labels[present], expected)
    assert (observed_labels[present] >= 0).all()
    np.testing.assert_array_equal(projected.confidence[mask.numpy()][present], 0.5)


def test_project_labels_unlabelled_voxels_read_minus_one():
    depth = np.full((H, W), 1.0, np.float32)
    frame = RGBDFrame(color=np.zeros((H, W, 3), np.uint8), depth=depth, intrinsics=CAM, T_world_camera=np.eye(4))
    m = SemanticVoxelMap(MapConfig(voxel_size=0.05, feature_dim=4), scannet20())
    keys, _, _ = observed_voxels(torch.from_numpy(depth), CAM, np.eye(4), 0.05)
    m.insert(keys)  # present but unlabelled
    projected = project_labels(m, frame)
    assert projected.observed.all()
    assert (projected.label == -1).all()
