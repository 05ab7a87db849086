"""Geometry helpers: back-projection, normals, voxel keys, frustum tests and SE(3).

Image-space and point functions work on torch tensors so that the same code runs on
CPU and CUDA; SE(3) helpers work on float64 numpy matrices through scipy's
``Rotation`` (no hand-written quaternion algebra). Poses from real trackers and text files
are rigid only to a few digits: ``make_rigid`` projects such nearly rigid transforms onto
SO(3) and rejects only the clearly broken ones.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation, Slerp

from .camera import CameraIntrinsics

# Voxel coordinates are packed into one int64 (21 bits per axis, two's complement):
# +-2^20 voxels is +-42 km at 4 cm, far beyond any indoor or campus map.
KEY_BITS = 21
KEY_LIMIT = 1 << (KEY_BITS - 1)
_KEY_MASK = (1 << KEY_BITS) - 1

# ---------------------------------------------------------------------------
# Depth images
# ---------------------------------------------------------------------------


def valid_depth_mask(depth: torch.Tensor, max_range: float | None = None, min_range: float = 0.0) -> torch.Tensor:
    """Pixels with a usable depth measurement.

    depth: (H, W) float metres; zero, negative, NaN and inf mean "no return".
    Keeps min_range < depth <= max_range (metres, the depth (z) value). Returns (H, W) bool.
    """
    mask = torch.isfinite(depth) & (depth > 0)
    if min_range > 0.0:
        mask &= depth > min_range
    if max_range is not None:
        mask &= depth <= max_range
    return mask


def pixel_rays(intrinsics: CameraIntrinsics, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) float32 camera-frame rays with z = 1 through every pixel centre."""
    v, u = torch.meshgrid(
        torch.arange(intrinsics.height, device=device, dtype=torch.float32),
        torch.arange(intrinsics.width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    x = (u - intrinsics.cx) / intrinsics.fx
    y = (v - intrinsics.cy) / intrinsics.fy
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def depth_to_points(depth: torch.Tensor, intrinsics: CameraIntrinsics) -> torch.Tensor:
    """Back-project every pixel: depth (H, W) float metres -> (H, W, 3) float32 camera-frame points.

    Invalid pixels produce non-finite or zero points; combine with ``valid_depth_mask``.
    """
    check_image_size(depth, intrinsics, "depth")
    rays = pixel_rays(intrinsics, depth.device)
    return rays * depth.to(torch.float32).unsqueeze(-1)


def backproject(
    depth: torch.Tensor,
    intrinsics: CameraIntrinsics,
    max_range: float | None = None,
    min_range: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Back-project the valid pixels of a depth image into the camera frame.

    depth: (H, W) float metres. max_range / min_range: metres on the depth (z) value.
    Returns (points (N, 3) float32 metres, camera frame x right / y down / z forward,
    mask (H, W) bool of the pixels that produced them, in row-major order).
    """
    mask = valid_depth_mask(depth, max_range, min_range)
    points = depth_to_points(torch.where(mask, depth, torch.zeros_like(depth)), intrinsics)
    return points[mask], mask


def normals_from_depth(depth: torch.Tensor, intrinsics: CameraIntrinsics, max_range: float | None = None) -> torch.Tensor:
    """Surface normals from a depth image by central differences of the point map.

    depth: (H, W) float metres. Returns (H, W, 3) float32 unit normals in the camera
    frame, oriented towards the camera (n . p < 0); zero where a pixel or one of its
    four neighbours has no valid depth.
    """
    mask = valid_depth_mask(depth, max_range)
    points = depth_to_points(torch.where(mask, depth, torch.zeros_like(depth)), intrinsics)
    normals = torch.zeros_like(points)
    dx = points[1:-1, 2:] - points[1:-1, :-2]
    dy = points[2:, 1:-1] - points[:-2, 1:-1]
    n = torch.cross(dx, dy, dim=-1)
    ok = mask[1:-1, 1:-1] & mask[1:-1, 2:] & mask[1:-1, :-2] & mask[2:, 1:-1] & mask[:-2, 1:-1]
    norm = n.norm(dim=-1, keepdim=True)
    ok &= norm.squeeze(-1) > 0
    n = n / norm.clamp_min(1e-12)
    flip = (n * points[1:-1, 1:-1]).sum(-1, keepdim=True) > 0
    n = torch.where(flip, -n, n)
    normals[1:-1, 1:-1] = torch.where(ok.unsqueeze(-1), n, torch.zeros_like(n))
    return normals


def check_image_size(image: torch.Tensor | np.ndarray, intrinsics: CameraIntrinsics, what: str) -> None:
    """ValueError unless an (H, W, ...) image matches the intrinsics' size; ``what`` names it."""
    if tuple(image.shape[:2]) != intrinsics.shape:
        raise ValueError(
            f"{what} image is {image.shape[1]}x{image.shape[0]} but the camera intrinsics are "
            f"{intrinsics.width}x{intrinsics.height}"
        )


# ---------------------------------------------------------------------------
# Points and voxels
# ---------------------------------------------------------------------------


def transform_points(T: torch.Tensor | np.ndarray, points: torch.Tensor) -> torch.Tensor:
    """Apply a 4x4 rigid transform to (N, 3) points; returns (N, 3) in the points' dtype."""
    T = torch.as_tensor(T, dtype=torch.float64, device=points.device)
    # float64 for the rotation keeps far-from-origin maps (hundreds of metres) exact to < 1 um.
    # Element-wise in a fixed order ((x r0 + y r1) + z r2) + t rather than a matrix product,
    # whose summation order (and FMA use) depends on the BLAS: the fused lift kernels
    # (pipeline/lift_kernels.py) compute the same sums and must land in the same voxels.
    p = points.to(torch.float64)
    out = p[:, 0:1] * T[:3, 0] + p[:, 1:2] * T[:3, 1] + p[:, 2:3] * T[:3, 2] + T[:3, 3]
    return out.to(points.dtype)


def voxel_keys(points: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Integer voxel coordinates floor(p / voxel_size): points (N, 3) metres -> (N, 3) int32.

    Raises ValueError for non-finite points or coordinates beyond +-2^20 voxels.
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    scaled = torch.floor(points.to(torch.float64) / voxel_size)
    if scaled.numel() and not bool(torch.isfinite(scaled).all()):
        raise ValueError("cannot voxelize non-finite points")
    if scaled.numel() and float(scaled.abs().max()) >= KEY_LIMIT:
        raise ValueError(f"points beyond +-{KEY_LIMIT * voxel_size:.0f} m cannot be voxelized at {voxel_size} m")
    return scaled.to(torch.int32)


def voxel_centers(keys: torch.Tensor, voxel_size: float) -> torch.Tensor:
    """Centres of voxels: keys (N, 3) int32 -> (N, 3) float32 metres."""
    return ((keys.to(torch.float64) + 0.5) * voxel_size).to(torch.float32)


def check_key_range(keys: torch.Tensor) -> None:
    """ValueError unless every voxel key of (N, 3) integer ``keys`` lies in [-2^20, 2^20).

    ``pack_keys`` keeps 21 bits per axis: a key outside that range would wrap around and
    alias another voxel (2^21 aliases 0), so maps refuse such keys instead.
    """
    if keys.numel() == 0:
        return
    lo, hi = torch.aminmax(keys)
    if int(lo) < -KEY_LIMIT or int(hi) >= KEY_LIMIT:
        raise ValueError(
            f"voxel keys must lie in [-{KEY_LIMIT}, {KEY_LIMIT}) on every axis (21 bits), got {int(lo)}..{int(hi)}"
        )


def pack_keys(keys: torch.Tensor) -> torch.Tensor:
    """Pack (N, 3) int32 voxel keys into (N,) int64 codes (21 bits per axis).

    Packing is a bijection on [-2^20, 2^20) (``check_key_range``); sorting codes does not sort spatially.
    """
    k = keys.to(torch.int64) & _KEY_MASK
    return (k[:, 0] << (2 * KEY_BITS)) | (k[:, 1] << KEY_BITS) | k[:, 2]


def unpack_keys(codes: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_keys``: (N,) int64 -> (N, 3) int32."""
    parts = torch.stack([(codes >> (2 * KEY_BITS)) & _KEY_MASK, (codes >> KEY_BITS) & _KEY_MASK, codes & _KEY_MASK], -1)
    parts = torch.where(parts >= KEY_LIMIT, parts - (1 << KEY_BITS), parts)
    return parts.to(torch.int32)


def project_points(
    points_world: torch.Tensor, intrinsics: CameraIntrinsics, T_world_camera: np.ndarray | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points into an image.

    points_world: (N, 3) metres. Returns (uv (N, 2) float32 pixel coordinates in the
    integer-index frame, z (N,) float32 depth in metres; z <= 0 is behind the camera).
    """
    T_cw = torch.as_tensor(invert_se3(np.asarray(T_world_camera, dtype=np.float64)))
    p = transform_points(T_cw, points_world.to(torch.float32))
    z = p[:, 2]
    safe_z = torch.where(z.abs() > 1e-9, z, torch.full_like(z, 1e-9))
    u = intrinsics.fx * p[:, 0] / safe_z + intrinsics.cx
    v = intrinsics.fy * p[:, 1] / safe_z + intrinsics.cy
    return torch.stack([u, v], -1), z


def depth_along_rays(
    points_world: np.ndarray, depth: np.ndarray, intrinsics: CameraIntrinsics, T_world_camera: np.ndarray, max_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """For world points (N, 3) [m]: their depth z (N,) along the camera's optical axis and the
    depth (N,) the image ``depth`` (H, W) [m] measured at the pixel each projects to; the
    measurement is 0 where a point lies behind the camera, beyond ``max_range``, outside the
    image, or its pixel has no valid depth. Compare the two to tell observed, free and
    hidden points apart."""
    uv, z = project_points(torch.from_numpy(np.asarray(points_world, dtype=np.float64)), intrinsics, T_world_camera)
    pixel = torch.round(uv).to(torch.int64).numpy()
    z = z.numpy()
    on_image = (pixel[:, 0] >= 0) & (pixel[:, 0] < intrinsics.width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < intrinsics.height)
    inside = (z > 0) & (z <= max_range) & on_image
    measured = np.zeros(len(z), np.float32)
    rows = np.flatnonzero(inside)
    values = depth[pixel[rows, 1], pixel[rows, 0]]
    measured[rows] = np.where(np.isfinite(values) & (values > 0), values, 0.0)
    return z, measured


def seen_points(
    points_world: np.ndarray,
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    T_world_camera: np.ndarray,
    max_range: float,
    tolerance: float = 0.05,
) -> np.ndarray:
    """(N,) bool: which world points (N, 3) [m] the depth image (H, W) [m] observes.

    A point is observed when it projects into the image in front of the camera within
    ``max_range`` [m] and the measured depth there is within ``tolerance`` [m] plus 2 % of
    the point's own depth (so points hidden behind a nearer surface are not)."""
    z, measured = depth_along_rays(points_world, depth, intrinsics, T_world_camera, max_range)
    return (measured > 0) & (np.abs(measured - z) <= tolerance + 0.02 * z)


def in_frustum(
    points_world: torch.Tensor,
    intrinsics: CameraIntrinsics,
    T_world_camera: np.ndarray | torch.Tensor,
    max_range: float,
    min_range: float = 0.0,
    margin: float = 0.0,
) -> torch.Tensor:
    """Frustum membership of world points: (N, 3) metres -> (N,) bool.

    A point is inside when its depth lies in (min_range, max_range] metres and it
    projects within the image grown by ``margin`` pixels on every side.
    """
    uv, z = project_points(points_world, intrinsics, T_world_camera)
    lo = -0.5 - margin
    return (
        (z > max(min_range, 0.0))
        & (z <= max_range)
        & (uv[:, 0] >= lo)
        & (uv[:, 0] < intrinsics.width - 0.5 + margin)
        & (uv[:, 1] >= lo)
        & (uv[:, 1] < intrinsics.height - 0.5 + margin)
    )


def frustum_corners(intrinsics: CameraIntrinsics, T_world_camera: np.ndarray, max_range: float) -> np.ndarray:
    """(5, 3) float64 world points spanning the frustum: the camera centre and the four far corners."""
    w, h = intrinsics.width - 0.5, intrinsics.height - 0.5
    uv = np.array([[-0.5, -0.5], [w, -0.5], [w, h], [-0.5, h]])
    rays = np.stack([(uv[:, 0] - intrinsics.cx) / intrinsics.fx, (uv[:, 1] - intrinsics.cy) / intrinsics.fy, np.ones(4)], 1)
    corners = np.vstack([np.zeros(3), rays * max_range])
    T = np.asarray(T_world_camera, dtype=np.float64)
    return corners @ T[:3, :3].T + T[:3, 3]


# ---------------------------------------------------------------------------
# SE(3)
# ---------------------------------------------------------------------------


_BOTTOM_ROW = np.array([0.0, 0.0, 0.0, 1.0])
_EYE3 = np.eye(3)

# Products of float64 rotations stay orthonormal to ~1e-15, and a matrix written with 9
# significant digits to ~1e-9: rigid for every purpose here (1e-8 of 100 m is 1 um), so
# they pass untouched and without the SVD (poses pass here at sensor rates). A larger
# error came from coarser storage (float32 ~1e-7, text with 4-6 decimals ~1e-6..1e-4)
# and is projected away, so composing many such poses cannot accumulate scale or shear.
ROTATION_PROJECTION_THRESHOLD = 1e-8
# A pose written with 4-6 decimal digits, or a tracker's drifting matrix, is orthonormal
# only to ~1e-6..1e-4 and is projected onto SO(3). A rotation block off by 1e-2 (a 1 %
# scale or a skew of half a degree) is not a rotation any more but a bug: it is rejected.
ROTATION_TOLERANCE = 1e-2
# The bottom row is a constant [0 0 0 1]; written with 4 decimal digits it is exact to
# 5e-5, so anything further off is not a rigid transform.
BOTTOM_ROW_TOLERANCE = 1e-4


class NotRigidError(ValueError):
    """A 4x4 matrix that is not (close enough to) a rigid transform; the message names it."""


def orthonormality_error(R: np.ndarray) -> float:
    """max |R R^T - I| of a (3, 3) matrix: 0 for a rotation or reflection, about 2x the
    largest entry error for a slightly perturbed one."""
    return float(np.abs(R @ R.T - _EYE3).max())


def nearest_rotation(R: np.ndarray) -> np.ndarray:
    """The rotation (3, 3) float64 closest to ``R`` (3, 3) in the Frobenius norm.

    With the SVD R = U S V^T the answer is U diag(1, 1, det(U V^T)) V^T: the orthogonal
    polar factor, with its last axis flipped when R is a reflection, so det is always +1.
    """
    U, _, Vt = np.linalg.svd(np.asarray(R, dtype=np.float64))
    sign = 1.0 if np.linalg.det(U @ Vt) > 0 else -1.0
    return (U * np.array([1.0, 1.0, sign])) @ Vt


def make_rigid(T: np.ndarray, what: str = "pose", tol: float = ROTATION_TOLERANCE) -> tuple[np.ndarray, float]:
    """A nearly rigid 4x4 transform made exactly rigid: (T (4, 4) float64, correction).

    The rotation block is projected onto SO(3) (``nearest_rotation``) when its
    orthonormality error exceeds ``ROTATION_PROJECTION_THRESHOLD``; ``correction`` is that
    error (max |R R^T - I|), 0.0 when nothing was projected. Translation is kept and the
    bottom row set to exactly [0 0 0 1]. Raises NotRigidError (a ValueError) naming
    ``what`` for a wrong shape, non-finite entries, a bottom row off by more than
    ``BOTTOM_ROW_TOLERANCE``, a rotation error above ``tol`` or a reflection (det < 0).
    """
    T = np.array(T, dtype=np.float64)  # a copy: the input is never changed
    if T.shape != (4, 4):
        raise NotRigidError(f"{what} must be a 4x4 matrix, got shape {T.shape}")
    if not np.isfinite(T).all():
        raise NotRigidError(f"{what} has non-finite entries")
    if np.abs(T[3] - _BOTTOM_ROW).max() > BOTTOM_ROW_TOLERANCE:
        raise NotRigidError(f"{what} bottom row must be [0 0 0 1], got {T[3].tolist()}")
    R = T[:3, :3]
    error = orthonormality_error(R)
    if error > tol:
        raise NotRigidError(
            f"{what} is not rigid: its rotation block is not orthonormal (error {error:.2e} > {tol:.0e}; "
            "a scaled, sheared or garbled matrix)"
        )
    # det(R) as the triple product: cheaper than np.linalg.det, and exact enough this close to SO(3).
    if float(np.cross(R[0], R[1]) @ R[2]) < 0:
        raise NotRigidError(f"{what} is not rigid: its rotation block is a reflection (det -1), not a rotation")
    T[3] = _BOTTOM_ROW
    if error <= ROTATION_PROJECTION_THRESHOLD:
        return T, 0.0
    T[:3, :3] = nearest_rotation(R)
    return T, error


def check_rigid(T: np.ndarray, what: str = "pose", tol: float = ROTATION_TOLERANCE) -> np.ndarray:
    """``make_rigid`` without the correction: the (4, 4) float64 transform, projected onto
    SO(3) when nearly rigid; NotRigidError (a ValueError) naming ``what`` when not."""
    return make_rigid(T, what, tol)[0]


def invert_se3(T: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform (float64)."""
    T = np.asarray(T, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def pose_from_quaternion(translation: np.ndarray, quaternion_xyzw: np.ndarray) -> np.ndarray:
    """4x4 float64 transform from a translation (3,) metres and a quaternion (4,) in ROS order x, y, z, w.

    The quaternion is normalised; a zero or non-finite one raises ValueError.
    """
    q = np.asarray(quaternion_xyzw, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    if q.shape != (4,) or t.shape != (3,):
        raise ValueError(f"expected translation (3,) and quaternion (4,), got {t.shape} and {q.shape}")
    if not (np.isfinite(q).all() and np.isfinite(t).all()):
        raise ValueError("pose has non-finite translation or quaternion")
    norm = float(np.sqrt(q @ q))
    if norm < 1e-6:
        raise ValueError("quaternion has zero norm")
    # The closed form of a unit quaternion's rotation (what scipy's Rotation computes, without
    # its per-call overhead: poses arrive at sensor rates and each one passes through here).
    x, y, z, w = (q / norm).tolist()
    T = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w), t[0]],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w), t[1]],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y), t[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    return T


def quaternion_from_pose(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a 4x4 transform into (translation (3,), quaternion (4,) x, y, z, w), float64."""
    T = np.asarray(T, dtype=np.float64)
    return T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat()


def interpolate_pose(T0: np.ndarray, T1: np.ndarray, alpha: float) -> np.ndarray:
    """Pose between T0 (alpha = 0) and T1 (alpha = 1): linear in translation, slerp in rotation."""
    rotations = Rotation.from_matrix(np.stack([np.asarray(T0)[:3, :3], np.asarray(T1)[:3, :3]]))
    T = np.eye(4)
    T[:3, :3] = Slerp([0.0, 1.0], rotations)([float(alpha)]).as_matrix()[0]
    T[:3, 3] = (1.0 - alpha) * np.asarray(T0)[:3, 3] + alpha * np.asarray(T1)[:3, 3]
    return T


def observed_voxels(
    depth: torch.Tensor,
    intrinsics: CameraIntrinsics,
    T_world_camera: np.ndarray,
    voxel_size: float,
    max_range: float | None = None,
    min_range: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The voxel each valid depth pixel observed.

    depth: (H, W) float metres; range limits in metres on the depth (z) value.
    Returns (keys (N, 3) int32, world points (N, 3) float32 metres, mask (H, W) bool of
    the N pixels in row-major order).
    """
    points_cam, mask = backproject(depth, intrinsics, max_range, min_range)
    points = transform_points(T_world_camera, points_cam)
    return voxel_keys(points, voxel_size), points, mask


def block_columns(plane: np.ndarray, block_size: float, stride: float) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Tile a floor plan with square columns: ``block_size`` [m] wide, one every ``stride``
    [m] from the points' minimum, enough to cover them all.

    plane: (N, 2) point coordinates in the floor plan [m]. Returns ((i, j), rows) for
    every column holding points, i-major: rows (ascending int64) of the points inside it
    (borders included). Points are binned once into stride-sized cells, so each column
    only tests the points of the cells it overlaps.
    """
    plane = np.asarray(plane, dtype=np.float64)
    if len(plane) == 0:
        return []
    low, high = plane.min(0), plane.max(0)
    counts = np.maximum(np.ceil((high - low - block_size) / stride).astype(int) + 1, 1)
    cell = np.floor((plane - low) / stride).astype(np.int64)
    order = np.lexsort((cell[:, 1], cell[:, 0]))
    keys, starts = np.unique(cell[order], axis=0, return_index=True)
    ends = np.append(starts[1:], len(order))
    members = {(int(a), int(b)): order[s:e] for (a, b), s, e in zip(keys, starts, ends)}
    reach = int(np.ceil(block_size / stride))  # cells a column spans beyond its first
    columns = []
    for i in range(counts[0]):
        for j in range(counts[1]):
            # One cell of slack on the low side: a point on a column's border may round into the cell below.
            near = [(a, b) for a in range(i - 1, i + reach + 1) for b in range(j - 1, j + reach + 1)]
            candidates = [members[key] for key in near if key in members]
            if not candidates:
                continue
            rows = np.sort(np.concatenate(candidates))
            origin = low + np.array([i, j]) * stride
            rows = rows[np.all((plane[rows] >= origin) & (plane[rows] <= origin + block_size), axis=1)]
            if rows.size:
                columns.append(((i, j), rows))
    return columns
