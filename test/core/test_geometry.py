"""Unit tests of alster_mapping.core.geometry."""

import math

import numpy as np
import pytest
import torch
from scipy.linalg import polar
from scipy.spatial.transform import Rotation
from tracker_poses import with_orthonormality_error, written_with_decimals

from alster_mapping.core import geometry as geo
from alster_mapping.core.camera import CameraIntrinsics
from alster_mapping.core.frame import RGBDFrame
from alster_mapping.pipeline.lifting import lift_frame

W, H = 64, 48
CAM = CameraIntrinsics(50.0, 55.0, 30.0, 22.0, W, H)


def random_pose(rng, translation_scale=2.0):
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
    T[:3, 3] = rng.uniform(-translation_scale, translation_scale, 3)
    return T


# ---------------------------------------------------------------------------
# Depth images
# ---------------------------------------------------------------------------


def test_backproject_matches_hand_computation():
    depth = torch.zeros((H, W))
    pixels = [(0, 0, 1.0), (30, 22, 2.0), (63, 47, 0.5), (10, 40, 3.25)]  # (u, v, z)
    for u, v, z in pixels:
        depth[v, u] = z
    points, mask = geo.backproject(depth, CAM)
    assert points.dtype == torch.float32 and points.shape == (len(pixels), 3)
    assert mask.dtype == torch.bool and mask.shape == (H, W) and int(mask.sum()) == len(pixels)
    # Row-major order: sort the expectations by (v, u).
    expected = []
    for u, v, z in sorted(pixels, key=lambda p: (p[1], p[0])):
        expected.append([(u - CAM.cx) / CAM.fx * z, (v - CAM.cy) / CAM.fy * z, z])
    np.testing.assert_allclose(points.numpy(), np.array(expected), rtol=1e-6, atol=1e-6)
    # The principal point back-projects onto the optical axis.
    assert points[1, 0] == 0.0 and points[1, 1] == 0.0


def test_valid_depth_mask_excludes_invalid_and_out_of_range():
    depth = torch.tensor([[0.0, float("nan"), float("inf"), -1.0, float("-inf"), 0.05, 0.5, 2.0, 5.0, 5.5]])
    np.testing.assert_array_equal(
        geo.valid_depth_mask(depth).numpy()[0], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    )
    np.testing.assert_array_equal(
        geo.valid_depth_mask(depth, max_range=5.0, min_range=0.1).numpy()[0], [0, 0, 0, 0, 0, 0, 1, 1, 1, 0]
    )


def test_backproject_skips_invalid_pixels():
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.2, 4.0, (H, W)).astype(np.float32)
    depth[0, :10] = 0
    depth[1, :10] = np.nan
    depth[2, :10] = np.inf
    depth[3, :10] = -2.0
    depth[4, :10] = 9.0  # beyond max range
    depth[5, :10] = 0.15  # closer than min range
    points, mask = geo.backproject(torch.from_numpy(depth), CAM, max_range=5.0, min_range=0.25)
    assert not mask[:6, :10].any()
    assert bool(torch.isfinite(points).all())
    expected_mask = np.isfinite(depth) & (depth >= 0.25) & (depth <= 5.0)
    np.testing.assert_array_equal(mask.numpy(), expected_mask)
    assert points.shape[0] == int(expected_mask.sum())
    np.testing.assert_allclose(points[:, 2].numpy(), depth[expected_mask], rtol=1e-6)


def test_depth_to_points_every_pixel():
    rng = np.random.default_rng(4)
    depth = rng.uniform(0.5, 3.0, (H, W)).astype(np.float32)
    pts = geo.depth_to_points(torch.from_numpy(depth), CAM)
    assert pts.shape == (H, W, 3) and pts.dtype == torch.float32
    v, u = np.mgrid[0:H, 0:W]
    np.testing.assert_allclose(pts[..., 0].numpy(), (u - CAM.cx) / CAM.fx * depth, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts[..., 1].numpy(), (v - CAM.cy) / CAM.fy * depth, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts[..., 2].numpy(), depth)


def test_depth_to_points_rejects_size_mismatch():
    with pytest.raises(ValueError, match="intrinsics"):
        geo.depth_to_points(torch.ones((H, W + 1)), CAM)


def test_lift_frame_min_range_is_exclusive_as_documented():
    # lift_frame, project_labels and in_frustum all document depth in (min_range, max_range]:
    # a depth exactly at min_range is not a valid measurement.
    frame = RGBDFrame(
        color=np.zeros((H, W, 3), np.uint8), depth=np.full((H, W), 0.5, np.float32), intrinsics=CAM, T_world_camera=np.eye(4)
    )
    with pytest.raises(ValueError, match="no valid pixel"):
        lift_frame(frame, 0.05, max_range=3.0, min_range=0.5)


@pytest.mark.parametrize("normal", [(0.3, -0.2, -1.0), (-0.5, 0.4, -1.0), (0.0, 0.0, -1.0)])
def test_normals_from_depth_recover_tilted_plane(normal):
    n = np.array(normal) / np.linalg.norm(normal)
    d = n @ np.array([0.1, -0.05, 2.0])  # plane n.p = d through a point 2 m ahead
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - CAM.cx) / CAM.fx, (v - CAM.cy) / CAM.fy, np.ones_like(u)], -1)
    depth = (d / (rays @ n)).astype(np.float32)
    assert (depth > 0).all()
    normals = geo.normals_from_depth(torch.from_numpy(depth), CAM).numpy()
    assert normals.shape == (H, W, 3)
    interior = normals[1:-1, 1:-1].reshape(-1, 3)
    # Oriented towards the camera: n . p < 0, so the expected normal is n itself (d < 0).
    assert d < 0
    cos = np.clip(interior @ n, -1, 1)
    assert np.degrees(np.arccos(cos)).max() < 1.0
    np.testing.assert_allclose(np.linalg.norm(interior, axis=1), 1.0, atol=1e-4)
    # The border has no central difference.
    assert (normals[0] == 0).all() and (normals[-1] == 0).all()
    assert (normals[:, 0] == 0).all() and (normals[:, -1] == 0).all()


def test_normals_are_zero_next_to_invalid_depth():
    depth = np.full((H, W), 2.0, np.float32)
    depth[20, 30] = 0.0
    normals = geo.normals_from_depth(torch.from_numpy(depth), CAM).numpy()
    for v, u in [(20, 30), (19, 30), (21, 30), (20, 29), (20, 31)]:
        assert (normals[v, u] == 0).all()
    np.testing.assert_allclose(normals[10, 10], [0, 0, -1], atol=1e-6)


# ---------------------------------------------------------------------------
# Voxel keys
# ---------------------------------------------------------------------------


def test_voxel_keys_floor_semantics_for_negative_coordinates():
    # Values exactly representable in binary, so the expectation is exact.
    pts = torch.tensor(
        [[0.0, 0.25, 0.4375], [-0.25, -0.5, -0.5625], [0.5, -0.0, 1.25], [-1.25, 1.75, -1.5]], dtype=torch.float32
    )
    keys = geo.voxel_keys(pts, 0.5)
    assert keys.dtype == torch.int32
    np.testing.assert_array_equal(keys.numpy(), [[0, 0, 0], [-1, -1, -2], [1, 0, 2], [-3, 3, -3]])


def test_voxel_keys_match_numpy_floor_on_random_points():
    rng = np.random.default_rng(5)
    pts = rng.uniform(-50, 50, (5000, 3))
    keys = geo.voxel_keys(torch.from_numpy(pts), 0.04)
    np.testing.assert_array_equal(keys.numpy(), np.floor(pts / 0.04).astype(np.int32))


@pytest.mark.parametrize(
    "point",
    [[float("nan"), 0.0, 0.0], [0.0, float("inf"), 0.0], [0.0, 0.0, float("-inf")]],
)
def test_voxel_keys_reject_non_finite(point):
    pts = torch.tensor([[0.0, 0.0, 0.0], point], dtype=torch.float64)
    with pytest.raises(ValueError, match="non-finite"):
        geo.voxel_keys(pts, 0.1)


@pytest.mark.parametrize("coord", [2**20 * 0.1, -(2**20) * 0.1 - 0.05, 1e9])
def test_voxel_keys_reject_out_of_range(coord):
    pts = torch.tensor([[0.0, coord, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="beyond"):
        geo.voxel_keys(pts, 0.1)


def test_voxel_keys_accept_largest_representable_coordinate():
    limit = geo.KEY_LIMIT - 1
    pts = torch.tensor([[limit + 0.5, -limit + 0.5, 0.5]], dtype=torch.float64)
    np.testing.assert_array_equal(geo.voxel_keys(pts, 1.0).numpy(), [[limit, -limit, 0]])


def test_voxel_keys_reject_non_positive_voxel_size():
    with pytest.raises(ValueError, match="voxel_size"):
        geo.voxel_keys(torch.zeros((1, 3)), 0.0)


def test_voxel_keys_of_empty_input():
    assert geo.voxel_keys(torch.zeros((0, 3)), 0.1).shape == (0, 3)


def test_voxel_centers():
    keys = torch.tensor([[0, -1, 2]], dtype=torch.int32)
    np.testing.assert_allclose(geo.voxel_centers(keys, 0.1).numpy(), [[0.05, -0.05, 0.25]], rtol=1e-6)


def test_pack_unpack_round_trip_with_extremes():
    m = geo.KEY_LIMIT - 1
    keys = torch.tensor(
        [[0, 0, 0], [-1, -1, -1], [m, m, m], [-m, -m, -m], [m, -m, 0], [-m, 0, m], [1, -2, 3], [-(2**19), 2**19, -7]],
        dtype=torch.int32,
    )
    codes = geo.pack_keys(keys)
    assert codes.dtype == torch.int64 and codes.shape == (keys.shape[0],)
    np.testing.assert_array_equal(geo.unpack_keys(codes).numpy(), keys.numpy())
    assert geo.unpack_keys(codes).dtype == torch.int32
    assert torch.unique(codes).shape[0] == keys.shape[0]


def test_pack_keys_no_collisions_on_random_keys():
    rng = np.random.default_rng(6)
    m = geo.KEY_LIMIT - 1
    keys = np.unique(rng.integers(-m, m + 1, (20000, 3)), axis=0)
    # Add clustered small keys (the usual case) and their sign flips.
    small = np.unique(rng.integers(-40, 40, (20000, 3)), axis=0)
    keys = np.unique(np.concatenate([keys, small, -small]), axis=0).astype(np.int32)
    codes = geo.pack_keys(torch.from_numpy(keys))
    assert torch.unique(codes).shape[0] == keys.shape[0]
    np.testing.assert_array_equal(geo.unpack_keys(codes).numpy(), keys)


# ---------------------------------------------------------------------------
# Projection and frustum
# ---------------------------------------------------------------------------


def test_project_points_matches_manual_pinhole():
    rng = np.random.default_rng(7)
    T = random_pose(rng)
    pts_cam = np.stack([rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200), rng.uniform(0.5, 4.0, 200)], 1)
    pts_world = pts_cam @ T[:3, :3].T + T[:3, 3]
    uv, z = geo.project_points(torch.from_numpy(pts_world), CAM, T)
    assert uv.shape == (200, 2) and z.shape == (200,)
    u = CAM.fx * pts_cam[:, 0] / pts_cam[:, 2] + CAM.cx
    v = CAM.fy * pts_cam[:, 1] / pts_cam[:, 2] + CAM.cy
    np.testing.assert_allclose(uv.numpy(), np.stack([u, v], 1), atol=2e-3)
    np.testing.assert_allclose(z.numpy(), pts_cam[:, 2], atol=1e-5)


def test_project_points_accepts_torch_pose():
    T = np.eye(4)
    T[:3, 3] = [0.0, 0.0, -1.0]
    uv, z = geo.project_points(torch.tensor([[0.0, 0.0, 1.0]]), CAM, torch.from_numpy(T))
    np.testing.assert_allclose(uv.numpy(), [[CAM.cx, CAM.cy]], atol=1e-6)
    np.testing.assert_allclose(z.numpy(), [2.0])


def _world_from_cam(T, pts_cam):
    pts_cam = np.asarray(pts_cam, dtype=np.float64)
    return torch.from_numpy(pts_cam @ T[:3, :3].T + T[:3, 3])


def test_in_frustum_membership():
    rng = np.random.default_rng(8)
    T = random_pose(rng)
    cam_pts = [
        [0.0, 0.0, 2.0],  # projects to the principal point, in range: inside
        [(W / 2 - CAM.cx) / CAM.fx * 1.0, (H / 2 - CAM.cy) / CAM.fy * 1.0, 1.0],  # image centre: inside
        [0.0, 0.0, -2.0],  # behind the camera
        [0.0, 0.0, 0.0],  # at the camera centre
        [0.0, 0.0, 6.0],  # beyond max range
        [5.0, 0.0, 1.0],  # far right of the image
        [0.0, -5.0, 1.0],  # above the image
        [(-1.0 - CAM.cx) / CAM.fx, 0.0, 1.0],  # u = -1, left of the image
        [(W - 0.4 - CAM.cx) / CAM.fx, 0.0, 1.0],  # u = W - 0.4, just right of the last pixel
        [(W - 0.6 - CAM.cx) / CAM.fx, 0.0, 1.0],  # u = W - 0.6, inside the last pixel
        [0.0, 0.0, 0.05],  # closer than min range
    ]
    inside = geo.in_frustum(_world_from_cam(T, cam_pts), CAM, T, max_range=5.0, min_range=0.1)
    assert inside.dtype == torch.bool
    np.testing.assert_array_equal(inside.numpy(), [1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0])


def test_in_frustum_margin_grows_the_image():
    T = np.eye(4)
    pts = torch.tensor([[(-2.0 - CAM.cx) / CAM.fx, 0.0, 1.0]])  # u = -2
    assert not bool(geo.in_frustum(pts, CAM, T, 5.0)[0])
    assert bool(geo.in_frustum(pts, CAM, T, 5.0, margin=2.0)[0])


def test_in_frustum_agrees_with_manual_test_on_random_points():
    rng = np.random.default_rng(9)
    T = random_pose(rng)
    pts_cam = rng.uniform([-4, -4, -1], [4, 4, 6], (3000, 3))
    inside = geo.in_frustum(_world_from_cam(T, pts_cam), CAM, T, max_range=4.0, min_range=0.2).numpy()
    z = pts_cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = CAM.fx * pts_cam[:, 0] / z + CAM.cx
        v = CAM.fy * pts_cam[:, 1] / z + CAM.cy
    expected = (z > 0.2) & (z <= 4.0) & (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)
    # Allow disagreement only within float32 rounding of the image border.
    near_border = (np.abs(u + 0.5) < 1e-3) | (np.abs(u - W + 0.5) < 1e-3) | (np.abs(v + 0.5) < 1e-3) | (np.abs(v - H + 0.5) < 1e-3)
    assert expected.sum() > 100
    assert ((inside == expected) | near_border).all()


def test_frustum_corners_project_to_image_corners():
    rng = np.random.default_rng(10)
    T = random_pose(rng)
    corners = geo.frustum_corners(CAM, T, 3.0)
    assert corners.shape == (5, 3)
    np.testing.assert_allclose(corners[0], T[:3, 3])
    uv, z = geo.project_points(torch.from_numpy(corners[1:]), CAM, T)
    np.testing.assert_allclose(z.numpy(), 3.0, atol=1e-5)
    np.testing.assert_allclose(
        uv.numpy(), [[-0.5, -0.5], [W - 0.5, -0.5], [W - 0.5, H - 0.5], [-0.5, H - 0.5]], atol=1e-3
    )


# ---------------------------------------------------------------------------
# SE(3)
# ---------------------------------------------------------------------------


def test_pose_quaternion_round_trip_against_scipy():
    rng = np.random.default_rng(11)
    for _ in range(20):
        q = rng.normal(size=4)
        t = rng.normal(size=3)
        T = geo.pose_from_quaternion(t, q * 3.0)  # not normalised on purpose
        assert T.shape == (4, 4) and T.dtype == np.float64
        np.testing.assert_allclose(T[:3, :3], Rotation.from_quat(q / np.linalg.norm(q)).as_matrix(), atol=1e-12)
        np.testing.assert_allclose(T[:3, 3], t)
        np.testing.assert_array_equal(T[3], [0, 0, 0, 1])
        t2, q2 = geo.quaternion_from_pose(T)
        np.testing.assert_allclose(t2, t)
        qn = q / np.linalg.norm(q)
        # q and -q are the same rotation.
        assert min(np.abs(q2 - qn).max(), np.abs(q2 + qn).max()) < 1e-9
        geo.check_rigid(T)


def test_pose_from_quaternion_uses_ros_xyzw_order():
    # 90 degrees about z in x, y, z, w order.
    s = math.sqrt(0.5)
    T = geo.pose_from_quaternion(np.zeros(3), np.array([0.0, 0.0, s, s]))
    np.testing.assert_allclose(T[:3, :3] @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize(
    "t, q, fragment",
    [
        (np.zeros(3), np.zeros(4), "zero norm"),
        (np.zeros(3), np.array([0.0, 0.0, 0.0, np.nan]), "non-finite"),
        (np.array([np.inf, 0, 0]), np.array([0.0, 0.0, 0.0, 1.0]), "non-finite"),
        (np.zeros(2), np.array([0.0, 0.0, 0.0, 1.0]), "expected"),
        (np.zeros(3), np.array([0.0, 0.0, 1.0]), "expected"),
    ],
)
def test_pose_from_quaternion_rejects_bad_input(t, q, fragment):
    with pytest.raises(ValueError, match=fragment):
        geo.pose_from_quaternion(t, q)


def test_invert_se3():
    rng = np.random.default_rng(12)
    for _ in range(10):
        T = random_pose(rng, 50.0)
        np.testing.assert_allclose(geo.invert_se3(T) @ T, np.eye(4), atol=1e-12)
        np.testing.assert_allclose(T @ geo.invert_se3(T), np.eye(4), atol=1e-12)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda T: T[:3, :3].__imul__(2.0), "not rigid"),
        (lambda T: T[:, 0].__imul__(-1.0), "reflection"),
        # A skew of 0.05 is no rounding error (nearly rigid poses are projected, see below).
        (lambda T: T.__setitem__((0, 1), T[0, 1] + 0.05), "not orthonormal"),
        (lambda T: T.__setitem__((3, 0), 0.2), "bottom row"),
        (lambda T: T.__setitem__((3, 3), 2.0), "bottom row"),
        (lambda T: T.__setitem__((2, 3), np.inf), "non-finite"),
    ],
)
def test_check_rigid_errors(mutate, fragment):
    T = random_pose(np.random.default_rng(13))
    mutate(T)
    with pytest.raises(ValueError, match=fragment) as info:
        geo.check_rigid(T, "my_pose")
    assert "my_pose" in str(info.value)


def test_check_rigid_shape_and_tolerance():
    with pytest.raises(ValueError, match="4x4"):
        geo.check_rigid(np.eye(3))
    T = np.eye(4)
    T[0, 0] += 1e-6  # within tolerance
    out = geo.check_rigid(T.astype(np.float32))
    assert out.dtype == np.float64


@pytest.mark.parametrize("error", [1.1e-4, 3e-3])
def test_nearly_rigid_pose_is_projected_onto_so3(error):
    """A tracker's rotation orthonormal to only ~1e-4 is accepted and replaced by the
    nearest rotation (the orthogonal polar factor, scipy's as the reference)."""
    T = random_pose(np.random.default_rng(14), 50.0)
    noisy = with_orthonormality_error(T, error, seed=1)
    assert geo.orthonormality_error(noisy[:3, :3]) == pytest.approx(error, rel=0.02)
    out, correction = geo.make_rigid(noisy, "tracker pose")
    assert correction == geo.orthonormality_error(noisy[:3, :3])
    R = out[:3, :3]
    assert geo.orthonormality_error(R) < 1e-12
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(R, polar(noisy[:3, :3])[0], atol=1e-12)
    assert np.abs(R - noisy[:3, :3]).max() < error  # close to what the tracker said
    np.testing.assert_array_equal(out[:3, 3], noisy[:3, 3])
    np.testing.assert_array_equal(out[3], [0, 0, 0, 1])
    np.testing.assert_array_equal(geo.check_rigid(noisy), out)
    assert geo.orthonormality_error(noisy[:3, :3]) > 1e-5, "the input must not be changed"


def test_pose_written_with_four_decimals_is_projected():
    T = random_pose(np.random.default_rng(15), 5.0)
    written = written_with_decimals(T, 4)
    out, correction = geo.make_rigid(written)
    assert 1e-6 < correction < 1e-3
    assert geo.orthonormality_error(out[:3, :3]) < 1e-12
    np.testing.assert_allclose(out, T, atol=2e-4)


def test_rigid_pose_passes_untouched_without_projection():
    T = geo.pose_from_quaternion(np.array([1.0, -2.0, 3.0]), np.array([0.1, -0.3, 0.2, 0.9]))
    out, correction = geo.make_rigid(T)
    assert correction == 0.0
    np.testing.assert_array_equal(out, T)
    # Below the projection threshold (a pose written with 9 significant digits) nothing changes either.
    nearly = with_orthonormality_error(T, geo.ROTATION_PROJECTION_THRESHOLD / 10)
    out, correction = geo.make_rigid(nearly)
    assert correction == 0.0
    np.testing.assert_array_equal(out, nearly)


@pytest.mark.parametrize(
    "broken, fragment",
    [
        (lambda T: with_orthonormality_error(T, 0.05), "not orthonormal"),
        (lambda T: T @ np.diag([1.1, 1.1, 1.1, 1.0]), "not orthonormal"),
        (lambda T: T @ np.diag([1.0, 1.0, -1.0, 1.0]), "reflection"),
        (lambda T: written_with_decimals(T, 4) @ np.diag([-1.0, 1.0, 1.0, 1.0]), "reflection"),
    ],
)
def test_clearly_broken_rotation_is_rejected(broken, fragment):
    T = broken(random_pose(np.random.default_rng(16)))
    with pytest.raises(geo.NotRigidError, match=fragment) as info:
        geo.make_rigid(T, "camera pose")
    assert isinstance(info.value, ValueError)
    assert "camera pose is not rigid" in str(info.value)


def test_bottom_row_rounding_is_accepted_and_made_exact():
    T = random_pose(np.random.default_rng(17))
    T[3] = [2e-5, 0.0, -3e-5, 1.00004]
    out, _ = geo.make_rigid(T)
    np.testing.assert_array_equal(out[3], [0, 0, 0, 1])
    T[3, 0] = 10 * geo.BOTTOM_ROW_TOLERANCE
    with pytest.raises(geo.NotRigidError, match="bottom row"):
        geo.make_rigid(T)


def test_nearest_rotation_never_returns_a_reflection():
    R = geo.nearest_rotation(np.diag([-1.0, 1.0, 1.0]) + 1e-3)
    assert np.linalg.det(R) == pytest.approx(1.0)
    assert geo.orthonormality_error(R) < 1e-12


def test_tolerances_are_ordered():
    assert 0 < geo.ROTATION_PROJECTION_THRESHOLD < 1e-6 < 1.1e-4 < geo.ROTATION_TOLERANCE <= 1e-2


def test_interpolate_pose_endpoints_and_midpoint():
    T0 = np.eye(4)
    T0[:3, 3] = [1.0, 2.0, 3.0]
    T1 = np.eye(4)
    T1[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    T1[:3, 3] = [3.0, -2.0, 5.0]
    np.testing.assert_allclose(geo.interpolate_pose(T0, T1, 0.0), T0, atol=1e-12)
    np.testing.assert_allclose(geo.interpolate_pose(T0, T1, 1.0), T1, atol=1e-12)
    mid = geo.interpolate_pose(T0, T1, 0.5)
    np.testing.assert_allclose(mid[:3, 3], [2.0, 0.0, 4.0])
    np.testing.assert_allclose(mid[:3, :3], Rotation.from_euler("z", 45, degrees=True).as_matrix(), atol=1e-12)
    geo.check_rigid(mid)
    quarter = geo.interpolate_pose(T0, T1, 0.25)
    angle = Rotation.from_matrix(quarter[:3, :3]).magnitude()
    assert math.degrees(angle) == pytest.approx(22.5)


def test_transform_points_preserves_dtype_and_matches_numpy():
    rng = np.random.default_rng(14)
    T = random_pose(rng)
    pts = rng.normal(size=(100, 3)).astype(np.float32)
    out = geo.transform_points(T, torch.from_numpy(pts))
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), pts @ T[:3, :3].T + T[:3, 3], atol=1e-5)


def test_observed_voxels_consistent_with_composition():
    rng = np.random.default_rng(15)
    T = random_pose(rng)
    depth = rng.uniform(0.3, 4.0, (H, W)).astype(np.float32)
    depth[rng.random((H, W)) < 0.2] = 0.0
    depth[0, 0] = np.nan
    d = torch.from_numpy(depth)
    keys, pts, mask = geo.observed_voxels(d, CAM, T, 0.05, max_range=3.5, min_range=0.4)
    cam_pts, mask2 = geo.backproject(d, CAM, 3.5, 0.4)
    world = geo.transform_points(T, cam_pts)
    np.testing.assert_array_equal(mask.numpy(), mask2.numpy())
    np.testing.assert_allclose(pts.numpy(), world.numpy())
    np.testing.assert_array_equal(keys.numpy(), geo.voxel_keys(world, 0.05).numpy())
    assert keys.shape[0] == int(mask.sum()) == pts.shape[0]


def test_key_range_is_the_packable_range():
    from alster_mapping.core.geometry import KEY_LIMIT, check_key_range, pack_keys, unpack_keys

    edge = torch.tensor([[-KEY_LIMIT, KEY_LIMIT - 1, 0]], dtype=torch.int32)
    check_key_range(edge)
    np.testing.assert_array_equal(unpack_keys(pack_keys(edge)), edge)
    for bad in ([KEY_LIMIT, 0, 0], [0, -KEY_LIMIT - 1, 0], [0, 0, 1 << 23]):
        with pytest.raises(ValueError, match="voxel keys must lie"):
            check_key_range(torch.tensor([bad]))
    check_key_range(torch.empty(0, 3, dtype=torch.int32))


def test_pose_from_quaternion_matches_scipy():
    rng = np.random.default_rng(3)
    for q in rng.standard_normal((50, 4)):
        T = geo.pose_from_quaternion(np.array([1.0, -2.0, 0.5]), q)
        np.testing.assert_allclose(T[:3, :3], Rotation.from_quat(q).as_matrix(), atol=1e-12)
        np.testing.assert_array_equal(T[3], [0, 0, 0, 1])


def test_block_columns_match_the_direct_scan():
    from alster_mapping.core.geometry import block_columns

    rng = np.random.default_rng(3)
    plane = rng.uniform([0.0, -1.0], [3.7, 2.2], (3000, 2))
    for block_size, stride in ((1.0, 0.5), (1.0, 0.3), (0.4, 0.5)):
        columns = block_columns(plane, block_size, stride)
        low, high = plane.min(0), plane.max(0)
        counts = np.maximum(np.ceil((high - low - block_size) / stride).astype(int) + 1, 1)
        expected = []
        for i in range(counts[0]):
            for j in range(counts[1]):
                origin = low + np.array([i, j]) * stride
                rows = np.flatnonzero(np.all((plane >= origin) & (plane <= origin + block_size), axis=1))
                if rows.size:
                    expected.append(((i, j), rows))
        assert [c for c, _ in columns] == [c for c, _ in expected]
        for (_, rows), (_, want) in zip(columns, expected):
            np.testing.assert_array_equal(rows, want)
    assert block_columns(np.zeros((0, 2)), 1.0, 0.5) == []



def test_subsampled_intrinsics_give_the_kept_pixels_their_own_rays():
    from alster_mapping.core.camera import CameraIntrinsics
    from alster_mapping.core.geometry import pixel_rays

    k = CameraIntrinsics(277.0, 270.0, 159.5, 119.3, 322, 241)
    full = pixel_rays(k).numpy()
    for f, o in ((1, 0), (3, 0), (4, 2), (4, 0)):
        expected = full[o::f, o::f]
        sub = k.subsampled(f, o)
        assert (sub.height, sub.width) == expected.shape[:2]
        assert np.allclose(pixel_rays(sub).numpy(), expected, atol=1e-6)
