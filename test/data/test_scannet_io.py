import json

import numpy as np
import pytest
from PIL import Image
from tracker_poses import with_orthonormality_error

from alster_mapping.core.frame import RGBDFrame
from alster_mapping.core.geometry import orthonormality_error
from alster_mapping.data.procedural_room import ProceduralRoom
from alster_mapping.data.scannet import (
    ScanNetError,
    ScanNetScene,
    read_ply_vertices,
    write_labels_ply,
    write_scannet_scene,
)
from alster_mapping.data.sequences import ScanNetSequence


@pytest.fixture(scope="module")
def frames():
    return ProceduralRoom(80, 64).frames(4)


@pytest.fixture(scope="module")
def ground_truth():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 4, (50, 3)).astype(np.float32), rng.integers(0, 41, 50).astype(np.uint16)


def write(tmp_path, frames, ground_truth=(None, None), fmt="png", name="scene0000_00"):
    path = tmp_path / name
    assert write_scannet_scene(path, frames, *ground_truth, color_format=fmt) == len(frames)
    return path


def test_round_trip_png(tmp_path, frames, ground_truth):
    scene = ScanNetScene(write(tmp_path, frames, ground_truth))
    assert scene.frame_ids == [0, 1, 2, 3] and len(scene) == 4
    out = list(scene.frames())
    assert len(out) == 4 and not scene.skipped
    for a, b in zip(frames, out):
        assert b.intrinsics == a.intrinsics
        np.testing.assert_array_equal(b.T_world_camera, a.T_world_camera)
        assert np.abs(b.depth - a.depth).max() <= 0.0005 + 1e-6
        np.testing.assert_array_equal(b.color, a.color)
        assert b.labels.dtype == np.uint16
        np.testing.assert_array_equal(b.labels, a.labels)
    truth = scene.ground_truth()
    np.testing.assert_array_equal(truth.xyz, ground_truth[0])
    np.testing.assert_array_equal(truth.labels, ground_truth[1])
    assert truth.xyz.dtype == np.float32 and not truth.has_instances  # no annotation files: 0 = none


def test_instances_round_trip_through_scannets_segment_and_aggregation_files(tmp_path, frames, ground_truth):
    instances = np.repeat(np.arange(5), 10)  # 0 (none) for the first ten vertices, then objects 1..4
    path = tmp_path / "scene0001_00"
    write_scannet_scene(path, frames[:1], *ground_truth, color_format="png", gt_instances=instances)
    assert (path / "scene0001_00_vh_clean_2.0.010000.segs.json").is_file()
    aggregation = json.loads((path / "scene0001_00.aggregation.json").read_text())
    assert [g["objectId"] for g in aggregation["segGroups"]] == [0, 1, 2, 3]
    np.testing.assert_array_equal(ScanNetScene(path).ground_truth().instances, instances)
    # A segment list that does not fit the mesh is refused with the file's name.
    (path / "scene0001_00_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": [0, 1]}))
    with pytest.raises(ScanNetError, match="2 segment indices for a mesh of 50 vertices"):
        ScanNetScene(path).ground_truth()


def test_round_trip_jpg_and_stride(tmp_path, frames):
    scene = ScanNetScene(write(tmp_path, frames, fmt="jpg"))
    out = list(scene.frames(stride=2))
    assert len(out) == 2
    diff = np.abs(out[1].color.astype(int) - frames[2].color.astype(int))
    assert diff.mean() < 4.0
    np.testing.assert_array_equal(out[1].T_world_camera, frames[2].T_world_camera)


def test_colour_and_labels_resized_to_depth(tmp_path, frames):
    path = write(tmp_path, frames[:1])
    big = np.repeat(np.repeat(frames[0].color, 2, 0), 2, 1)
    Image.fromarray(big).save(path / "color" / "0.png")
    Image.fromarray(np.repeat(np.repeat(frames[0].labels, 2, 0), 2, 1)).save(path / "label" / "0.png")
    frame = ScanNetScene(path).read_frame(0)
    assert frame.color.shape == (64, 80, 3)
    assert np.abs(frame.color.astype(int) - frames[0].color.astype(int)).mean() < 6.0
    np.testing.assert_array_equal(frame.labels, frames[0].labels)


def test_lost_and_missing_poses_are_counted_skips(tmp_path, frames):
    path = write(tmp_path, frames)
    (path / "pose" / "1.txt").write_text("-inf -inf -inf -inf\n" * 4)
    (path / "pose" / "2.txt").unlink()
    scene = ScanNetScene(path)
    out = list(scene.frames())
    assert [f.stamp_ns for f in out] == [0, 3 * 33_333_333]
    assert scene.skipped == {"invalid pose": 1, "missing pose": 1}
    assert "1.txt" in scene.problems["invalid pose"] and "2.txt" in scene.problems["missing pose"]
    with pytest.raises(ScanNetError, match="tracking lost"):
        scene.read_frame(1)


def write_poses(path, poses, decimals=6):
    """Replace the scene's pose files as a tracker's export writes them: a few fixed decimals."""
    for i, T in enumerate(poses):
        (path / "pose" / f"{i}.txt").write_text("".join(" ".join(f"{v:.{decimals}f}" for v in row) + "\n" for row in T))


@pytest.mark.parametrize("decimals", [6, 4])
def test_tracker_poses_rigid_to_1e4_are_projected_and_counted(tmp_path, frames, decimals):
    """Issue 16: a tracker's rotations orthonormal to ~1.1e-4 (or poses written with 4
    decimals) must not cost the frames; they are projected onto SO(3) and counted."""
    path = write(tmp_path, frames)
    tracked = [with_orthonormality_error(f.T_world_camera, 1.1e-4, seed=i) for i, f in enumerate(frames)]
    write_poses(path, tracked if decimals == 6 else [f.T_world_camera for f in frames], decimals)
    scene = ScanNetScene(path)
    out = list(scene.frames())
    assert len(out) == len(frames) and not scene.skipped, scene.problems
    assert scene.poses_projected == len(frames)
    assert scene.max_pose_correction == max(f.pose_correction for f in out)
    if decimals == 6:
        assert scene.max_pose_correction == pytest.approx(1.1e-4, rel=0.05)
    for read, original in zip(out, frames):
        assert orthonormality_error(read.T_world_camera[:3, :3]) < 1e-12
        np.testing.assert_allclose(read.T_world_camera, original.T_world_camera, atol=2e-4)


def test_broken_pose_is_an_invalid_pose_skip_counted_once_per_reason(tmp_path, frames):
    path = write(tmp_path, frames)
    scaled = frames[1].T_world_camera @ np.diag([1.1, 1.1, 1.1, 1.0])
    write_poses(path, [frames[0].T_world_camera, scaled])
    scene = ScanNetScene(path)
    assert len(list(scene.frames())) == 3
    assert scene.skipped == {"invalid pose": 1}
    assert "frame 1" in scene.problems["invalid pose"] and "not orthonormal" in scene.problems["invalid pose"]
    # The sequence behind alster replay / eval / train counts it under the same short reason.
    sequence = ScanNetSequence(path)
    assert len(list(sequence)) == 3
    assert sequence.skipped == {"invalid pose": 1}
    assert "not rigid" in sequence.problems["invalid pose"]


def test_random_access_for_training_counts_each_frame_once(tmp_path, frames):
    path = write(tmp_path, frames)
    tracked = [with_orthonormality_error(f.T_world_camera, 1.1e-4, seed=i) for i, f in enumerate(frames)]
    tracked[2] = tracked[2] @ np.diag([1.0, 1.0, -1.0, 1.0])  # a reflection: refused
    write_poses(path, tracked)
    sequence = ScanNetSequence(path)
    for _ in range(3):  # training draws frames again and again
        for index in range(len(frames)):
            if index == 2:
                with pytest.raises(ScanNetError, match="reflection"):
                    sequence.tallied_frame(index)
            else:
                assert sequence.tallied_frame(index).pose_correction > 0
    counts = sequence.tallied_counts()
    assert counts["frames"] == 3 and counts["skipped"] == {"invalid pose": 1} and counts["poses_projected"] == 3
    assert counts["max_pose_correction"] == pytest.approx(1.1e-4, rel=0.05)


def test_numeric_frame_order(tmp_path, frames):
    path = write(tmp_path, frames[:1])
    for i in (10, 2):
        for sub, suffix in (("color", "png"), ("depth", "png"), ("pose", "txt"), ("label", "png")):
            (path / sub / f"{i}.{suffix}").write_bytes((path / sub / f"0.{suffix}").read_bytes())
    assert ScanNetScene(path).frame_ids == [0, 2, 10]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_depth_in_wrong_format_names_the_file(tmp_path, frames, mode):
    path = write(tmp_path, frames[:1])
    Image.new(mode, (80, 64)).save(path / "depth" / "0.png")
    with pytest.raises(ScanNetError, match=r"depth/0\.png"):
        ScanNetScene(path).read_frame(0)


def test_reader_errors_name_the_file(tmp_path, frames):
    with pytest.raises(ScanNetError, match="nowhere"):
        ScanNetScene(tmp_path / "nowhere")
    path = write(tmp_path, frames[:1])
    (path / "color" / "0.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"color/0\.png"):
        ScanNetScene(path).read_frame(0)
    (path / "color" / "0.png").unlink()
    with pytest.raises(ScanNetError, match=r"color/0\.jpg"):
        ScanNetScene(path).read_frame(0)
    with pytest.raises(ScanNetError, match="labels.ply"):
        ScanNetScene(path).ground_truth()
    (path / "intrinsic" / "intrinsic_depth.txt").write_text("1 2\n3 4\n")
    with pytest.raises(ScanNetError, match="intrinsic_depth.txt"):
        ScanNetScene(path)
    (path / "intrinsic" / "intrinsic_depth.txt").unlink()
    with pytest.raises(ScanNetError, match="intrinsic_depth.txt"):
        ScanNetScene(path)


def test_writer_errors(tmp_path, frames):
    path = write(tmp_path, frames[:1])
    with pytest.raises(ScanNetError, match="already holds"):
        write_scannet_scene(path, frames[:1])
    f = frames[0]
    bad = RGBDFrame(f.color, f.depth, f.intrinsics, f.T_world_camera, labels=np.full(f.depth.shape, 70000, np.int64))
    with pytest.raises(ScanNetError, match="uint16"):
        write_scannet_scene(tmp_path / "other", [bad])
    with pytest.raises(ScanNetError, match="uint16"):
        write_scannet_scene(tmp_path / "gt", frames[:1], np.zeros((2, 3)), np.array([1, -1]))
    with pytest.raises(ValueError, match="color_format"):
        write_scannet_scene(tmp_path / "fmt", frames[:1], color_format="bmp")


def test_depth_encoding_rules(tmp_path, frames):
    f = frames[0]
    depth = f.depth.copy()
    depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = np.nan, -1.0, 70.0, 1.23449
    frame = RGBDFrame(f.color, depth, f.intrinsics, f.T_world_camera)
    path = write(tmp_path, [frame])
    raw = np.array(Image.open(path / "depth" / "0.png"))
    assert raw.dtype == np.uint16 and list(raw[0, :4]) == [0, 0, 65535, 1234]
    assert ScanNetScene(path).read_frame(0).labels is None


def test_ply_parser_ascii_and_validation(tmp_path):
    ascii_ply = tmp_path / "a.ply"
    ascii_ply.write_text(
        "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
        "property ushort label\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0.5 1 2 7\n3 4 5.25 40\n3 0 1 1\n"
    )
    v = read_ply_vertices(ascii_ply)
    np.testing.assert_array_equal(v["z"], [2.0, 5.25])
    np.testing.assert_array_equal(v["label"], [7, 40])
    binary = tmp_path / "b.ply"
    write_labels_ply(binary, np.ones((3, 3)), np.array([1, 2, 3]))
    data = binary.read_bytes()
    binary.write_bytes(data[:-5])
    with pytest.raises(ScanNetError, match="truncated"):
        read_ply_vertices(binary)
    binary.write_bytes(data.replace(b"property ushort label", b"property ushrt label"))
    with pytest.raises(ScanNetError, match="unsupported property"):
        read_ply_vertices(binary)
    binary.write_bytes(b"solid stl\n")
    with pytest.raises(ScanNetError, match="not a PLY"):
        read_ply_vertices(binary)
    scene = tmp_path / "scene0001_00"
    (scene / "depth").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(scene / "depth" / "0.png")
    (scene / "intrinsic").mkdir()
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", np.eye(4))
    nolabel = scene / "scene0001_00_vh_clean_2.labels.ply"
    nolabel.write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n")
    with pytest.raises(ScanNetError, match="'label'"):
        ScanNetScene(scene).ground_truth()
