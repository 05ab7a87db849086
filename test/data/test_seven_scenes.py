"""The 7-Scenes reader on a synthetic scene in its layout (no download, no real data)."""

import io
import tarfile

import numpy as np
import pytest

from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.geometry import invert_se3, pose_from_quaternion
from alster_mapping.core.image_codec import write_image_file
from alster_mapping.data import seven_scenes
from alster_mapping.data.seven_scenes import (
    COLOR_INTRINSICS,
    DEPTH_INTRINSICS,
    FRAME_PERIOD_NS,
    INVALID_DEPTH_MM,
    T_COLOR_DEPTH,
    T_ZUP_WORLD,
    decode_depth,
    extract_members,
    fetch_kapture_seven_scenes,
    read_seven_scenes_frames,
    register_depth,
)

PLANE_MM = 2000
POSE = pose_from_quaternion(np.array([0.4, -1.2, 0.7]), np.array([0.1, -0.3, 0.2, 0.9]))
HOLE = (slice(200, 240), slice(300, 340))  # depth pixels at 65535 (no measurement)


def write_frame(directory, n, pose=POSE, raw=None, color_suffix="jpg"):
    """Frame n of a fronto-parallel plane PLANE_MM in front of the depth camera, in the 7-Scenes layout."""
    directory.mkdir(parents=True, exist_ok=True)
    if raw is None:
        raw = np.full((480, 640), PLANE_MM, dtype=np.uint16)
        raw[HOLE] = INVALID_DEPTH_MM
        raw[0, :10] = 0
    color = np.zeros((480, 640, 3), dtype=np.uint8)
    color[..., 0] = np.arange(640) * 255 // 639
    color[..., 1] = (np.arange(480) * 255 // 479)[:, None]
    write_image_file(directory / f"frame-{n:06d}.color.{color_suffix}", color)
    write_image_file(directory / f"frame-{n:06d}.depth.png", raw)
    np.savetxt(directory / f"frame-{n:06d}.pose.txt", pose)


def covered_span(mask, axis):
    hits = np.nonzero(mask.any(axis=axis))[0]
    return int(hits[0]), int(hits[-1])


def test_constants_are_the_kapture_calibration():
    assert (COLOR_INTRINSICS.fx, COLOR_INTRINSICS.cx, COLOR_INTRINSICS.cy, COLOR_INTRINSICS.shape) == (525.0, 320.0, 240.0, (480, 640))
    assert (DEPTH_INTRINSICS.fx, DEPTH_INTRINSICS.cx, DEPTH_INTRINSICS.cy, DEPTH_INTRINSICS.shape) == (585.0, 320.0, 240.0, (480, 640))
    R, t = T_COLOR_DEPTH[:3, :3], T_COLOR_DEPTH[:3, 3]
    assert np.allclose(R @ R.T, np.eye(3)) and np.linalg.det(R) == pytest.approx(1.0)
    assert np.degrees(np.arccos((np.trace(R) - 1) / 2)) == pytest.approx(0.67, abs=0.01)
    # The colour camera sits about 2.56 cm along the depth camera's +x.
    assert np.allclose(-R.T @ t, [0.0256, 0.0, -0.0021], atol=3e-4)
    assert np.allclose(T_ZUP_WORLD[:3, :3] @ [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]) and np.linalg.det(T_ZUP_WORLD[:3, :3]) == 1.0


def test_decode_depth_marks_invalid_pixels():
    raw = np.array([[0, 1, 1500], [INVALID_DEPTH_MM, 65534, 2000]], dtype=np.uint16)
    depth = decode_depth(raw)
    assert depth.dtype == np.float32
    assert np.allclose(depth, [[0.0, 0.001, 1.5], [0.0, 65.534, 2.0]])
    with pytest.raises(ValueError, match="uint16"):
        decode_depth(raw.astype(np.int32))


def test_frame_shapes_dtypes_and_invalid_pixels(tmp_path):
    write_frame(tmp_path / "seq-01", 0)
    (frame,) = read_seven_scenes_frames(tmp_path / "seq-01")
    assert frame.color.shape == (480, 640, 3) and frame.color.dtype == np.uint8
    assert frame.depth.shape == (480, 640) and frame.depth.dtype == np.float32
    assert frame.intrinsics == COLOR_INTRINSICS and frame.stamp_ns == 0 and frame.labels is None
    # The colour image is read as written (a JPEG: close, not exact).
    assert abs(int(frame.color[100, 639, 0]) - 255) <= 3 and abs(int(frame.color[479, 100, 1]) - 255) <= 3
    # The block of 65535 pixels is a hole in the registered depth, where it lands in the colour image.
    corners = np.array([[(u - 320) / 585 * 2, (v - 240) / 585 * 2, 2.0, 1.0] for u, v in ((300, 200), (339, 239))])
    seen = corners @ T_COLOR_DEPTH.T
    (u0, v0), (u1, v1) = np.rint(525 * seen[:, :2] / seen[:, 2:3] + [320, 240]).astype(int)
    hole = frame.depth[v0 + 1 : v1, u0 + 1 : u1]
    assert hole.size > 900 and (hole == 0).all()
    ring = frame.depth[v0 - 4 : v1 + 5, u0 - 4 : u1 + 5].copy()  # 2 px clear of the hole's rounded edge
    ring[3:-3, 3:-3] = 1.0
    assert (ring > 0).all()
    assert (frame.depth >= 0).all() and np.isfinite(frame.depth).all()


def test_registered_plane_lies_at_its_depth(tmp_path):
    """A plane 2 m in front of the depth camera is ~2 m in front of the colour camera, and
    every registered pixel back-projects onto it (the rig's 0.67 degree tilt included)."""
    write_frame(tmp_path, 0)
    depth = read_seven_scenes_frames(tmp_path)[0].depth
    v, u = np.nonzero(depth)
    z = depth[v, u].astype(np.float64)
    assert np.abs(z - 2.0).max() < 0.02
    c = COLOR_INTRINSICS
    points = np.stack([(u - c.cx) / c.fx * z, (v - c.cy) / c.fy * z, z, np.ones_like(z)])
    in_depth_camera = invert_se3(T_COLOR_DEPTH) @ points
    assert np.abs(in_depth_camera[2] - PLANE_MM / 1000).max() < 1e-3


def test_depth_covers_the_centre_of_the_wider_colour_view():
    """The depth camera's longer focal length (585 vs 525 px) is the narrower view: the
    registered depth covers 525/585 of the colour image along each axis, centred, densely,
    and leaves the colour image's border empty."""
    plane = np.full((480, 640), 2.0, dtype=np.float32)
    depth = register_depth(plane, T_color_depth=np.eye(4))
    covered = depth > 0
    # Depth columns 0 .. 639 land on 320 + (u - 320) * 525 / 585, i.e. 32.8 .. 606.4; rows 24.6 .. 454.5.
    assert covered_span(covered, 0) == (33, 606) and covered_span(covered, 1) == (25, 454)
    assert covered[25:455, 33:607].all()
    assert covered.sum() == 574 * 430
    assert covered.mean() == pytest.approx((525 / 585) ** 2, abs=0.01)
    assert np.allclose(depth[covered], 2.0)
    # A colour camera 2.56 cm to the right sees the plane at 2 m 525 * 0.0256 / 2 = 6.7 px further left.
    baseline = np.eye(4)
    baseline[0, 3] = -0.0256
    left, right = covered_span(register_depth(plane, T_color_depth=baseline) > 0, 0)
    assert (left + right) / 2 - (33 + 606) / 2 == pytest.approx(-6.7, abs=0.6)
    # The shipped rig also turns 0.67 degrees: the covered columns reach as far as the depth image's side edges project.
    edges = [np.array([[(u - 320) / 585 * 2, (v - 240) / 585 * 2, 2.0, 1.0] for v in range(480)]) @ T_COLOR_DEPTH.T for u in (0, 639)]
    columns = [np.rint(525 * edge[:, 0] / edge[:, 2] + 320).astype(int) for edge in edges]
    assert covered_span(register_depth(plane) > 0, 0) == (columns[0].min(), columns[1].max())


def test_register_depth_keeps_the_nearest_like_a_per_pixel_loop():
    rng = np.random.default_rng(3)
    depth_k = CameraIntrinsics(40.0, 40.0, 20.0, 15.0, 40, 30)
    color_k = CameraIntrinsics(30.0, 30.0, 21.0, 14.0, 44, 28)
    depth = rng.uniform(0.3, 3.0, (30, 40)).astype(np.float32)
    depth[rng.random((30, 40)) < 0.1] = 0.0
    depth[0, 0] = np.nan
    T = pose_from_quaternion(np.array([0.15, -0.05, 0.02]), np.array([0.02, -0.05, 0.01, 1.0]))
    expected = np.zeros((28, 44), dtype=np.float32)
    for v in range(30):
        for u in range(40):
            z = float(depth[v, u])
            if not z > 0:
                continue
            p = T @ [(u - 20.0) / 40.0 * z, (v - 15.0) / 40.0 * z, z, 1.0]
            uc, vc = round(30.0 * p[0] / p[2] + 21.0), round(30.0 * p[1] / p[2] + 14.0)
            if 0 <= uc < 44 and 0 <= vc < 28 and (expected[vc, uc] == 0 or p[2] < expected[vc, uc]):
                expected[vc, uc] = p[2]
    registered = register_depth(depth, depth_k, color_k, T)
    assert registered.shape == (28, 44) and registered.dtype == np.float32
    assert (registered > 0).sum() > 300 and (registered > 0).sum() < 40 * 30 * 0.9  # collisions happened
    assert np.allclose(registered, expected, atol=1e-6)


def test_pose_is_the_colour_cameras(tmp_path):
    write_frame(tmp_path, 0)
    frame = read_seven_scenes_frames(tmp_path)[0]
    assert np.allclose(frame.T_world_camera, POSE @ invert_se3(T_COLOR_DEPTH), atol=1e-9)
    # A point seen by both cameras has one world position.
    p_depth = np.array([0.3, -0.2, 2.0, 1.0])
    assert np.allclose(frame.T_world_camera @ (T_COLOR_DEPTH @ p_depth), POSE @ p_depth)
    # The colour camera's centre is 2.56 cm along the depth camera's x axis.
    assert np.linalg.norm(frame.T_world_camera[:3, 3] - POSE[:3, 3]) == pytest.approx(0.02564, abs=1e-4)
    assert (frame.T_world_camera[:3, 3] - POSE[:3, 3]) @ POSE[:3, 0] == pytest.approx(0.02556, abs=1e-4)
    # z_up re-expresses the (y-down) world: a level camera's -y becomes +z.
    write_frame(tmp_path / "level", 0, pose=np.eye(4))
    (level,) = read_seven_scenes_frames(tmp_path / "level", T_color_depth=np.eye(4), z_up=True)
    assert np.allclose(-level.T_world_camera[:3, 1], [0.0, 0.0, 1.0])


def test_scene_directory_reads_sequences_in_order(tmp_path):
    for seq, pose_x in (("seq-02", 2.0), ("seq-01", 1.0)):
        for n in (1, 0):
            pose = np.eye(4)
            pose[0, 3], pose[1, 3] = pose_x, n
            write_frame(tmp_path / seq, n, pose=pose, color_suffix="png" if seq == "seq-02" else "jpg")
    (tmp_path / "TestSplit.txt").write_text("sequence1\n")
    frames = read_seven_scenes_frames(tmp_path, T_color_depth=np.eye(4))
    assert [(f.T_world_camera[0, 3], f.T_world_camera[1, 3]) for f in frames] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert [f.stamp_ns for f in frames] == [i * FRAME_PERIOD_NS for i in range(4)]
    assert len(read_seven_scenes_frames(tmp_path, max_frames=3)) == 3


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: (d / "frame-000000.depth.png").unlink(), "depth.png"),
        (lambda d: (d / "frame-000000.pose.txt").unlink(), "pose.txt"),
        (lambda d: (d / "frame-000000.pose.txt").write_text("1 0 0\n0 1 0\n0 0 1\n"), r"pose.txt holds a \(3, 3\) matrix"),
        (lambda d: (d / "frame-000000.pose.txt").write_text("not a pose\n"), "cannot read pose"),
        (lambda d: np.savetxt(d / "frame-000000.pose.txt", np.full((4, 4), np.nan)), "non-finite"),
        (lambda d: np.savetxt(d / "frame-000000.pose.txt", np.diag([2.0, 1.0, 1.0, 1.0])), "not rigid"),
        (lambda d: write_image_file(d / "frame-000000.depth.png", np.zeros((240, 320), np.uint16)), "320x240 but the depth intrinsics"),
        (lambda d: write_image_file(d / "frame-000000.depth.png", np.zeros((480, 640), np.uint8)), "uint16"),
    ],
)
def test_broken_frames_raise_clear_errors(tmp_path, damage, match):
    write_frame(tmp_path, 0)
    damage(tmp_path)
    with pytest.raises(ValueError, match=match):
        read_seven_scenes_frames(tmp_path)


def test_directories_without_frames_raise(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        read_seven_scenes_frames(tmp_path / "missing")
    (tmp_path / "seq-01").mkdir()
    with pytest.raises(ValueError, match="seq-XX"):
        read_seven_scenes_frames(tmp_path)


PREFIX = seven_scenes.KAPTURE_STAIRS_PREFIX
LICENSE = seven_scenes.KAPTURE_LICENSE_MEMBER


def make_tar(path, members):
    """A tar.gz of (name, bytes or None for a directory, or ("symlink", target))."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_members_takes_only_the_prefix_and_the_licence(tmp_path):
    archive = make_tar(
        tmp_path / "a.tar.gz",
        [
            (PREFIX, None),
            (PREFIX + "seq-01/", None),
            (PREFIX + "seq-01/frame-000000.pose.txt", b"pose"),
            (PREFIX + "TestSplit.txt", b"sequence1\n"),
            (LICENSE, b"licence"),
            ("kapture-1.1.12/setup.py", b"code"),
        ],
    )
    written = extract_members(archive, PREFIX, tmp_path / "out", extra=(LICENSE,))
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "7-scenes-msr-la-dataset-7-scenes.rtf",
        "TestSplit.txt",
        "seq-01/frame-000000.pose.txt",
    ]
    assert (tmp_path / "out" / "seq-01" / "frame-000000.pose.txt").read_bytes() == b"pose"
    with pytest.raises(ValueError, match="no files under"):
        extract_members(archive, "elsewhere/", tmp_path / "none")


@pytest.mark.parametrize(
    ("member", "match"),
    [
        ((PREFIX + "seq-01/../../../../evil.txt", b"x"), "could leave the destination"),
        ((PREFIX + "../evil.txt", b"x"), "could leave the destination"),
        ((PREFIX + "seq-01/link", ("symlink", "/etc/passwd")), "not a regular file"),
    ],
)
def test_extract_members_refuses_unsafe_members(tmp_path, member, match):
    archive = make_tar(tmp_path / "bad.tar.gz", [(PREFIX + "seq-01/frame-000000.pose.txt", b"pose"), member])
    with pytest.raises(ValueError, match=match):
        extract_members(archive, PREFIX, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists()


def test_extract_members_refuses_an_absolute_licence_path(tmp_path):
    archive = make_tar(tmp_path / "bad.tar.gz", [(PREFIX + "a.txt", b"a"), ("/tmp/licence.rtf", b"x")])
    with pytest.raises(ValueError, match="absolute path"):
        extract_members(archive, PREFIX, tmp_path / "out", extra=("/tmp/licence.rtf",))


def test_fetch_extracts_atomically_into_the_cache(tmp_path, capsys):
    good = tmp_path / "sample.tar.gz"
    make_tar(good, [(PREFIX + "seq-01/frame-000000.pose.txt", b"pose"), (LICENSE, b"licence")])
    bad = make_tar(tmp_path / "bad.tar.gz", [(PREFIX + "seq-01/a.txt", b"a"), (PREFIX + "../evil", b"x")])
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="could leave"):
        fetch_kapture_seven_scenes(cache, archive=bad)
    assert list((cache / "7scenes").iterdir()) == []  # no half-filled scene, no temporary left
    scene = fetch_kapture_seven_scenes(cache, archive=good)
    assert scene == cache / "7scenes" / "stairs"
    assert sorted(p.name for p in scene.iterdir()) == ["7-scenes-msr-la-dataset-7-scenes.rtf", "seq-01"]
    assert "extracting" in capsys.readouterr().out
    # Present: returned without touching the archive (or the network).
    assert fetch_kapture_seven_scenes(cache, archive=tmp_path / "absent.tar.gz") == scene


def test_fetch_checks_the_kapture_archive_digest(tmp_path):
    fake = make_tar(tmp_path / seven_scenes.KAPTURE_ARCHIVE, [(PREFIX + "a.txt", b"a")])
    with pytest.raises(ValueError, match="SHA-256"):
        fetch_kapture_seven_scenes(tmp_path / "cache", archive=fake)


def test_failed_download_raises_a_clear_error(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise seven_scenes.urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(seven_scenes.urllib.request, "urlopen", unreachable)
    with pytest.raises(RuntimeError, match=r"Name or service not known.*no network\?"):
        fetch_kapture_seven_scenes(tmp_path / "cache")
    assert list((tmp_path / "cache" / "7scenes").iterdir()) == []
