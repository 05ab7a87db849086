"""Test helper: a tiny procedural room rendered with Open3D ray casting.

A floor, two walls, a table-like box and a chair-like box, each with its own ScanNet-20
class and colour, seen by a small pinhole camera from poses on an arc. Frames carry
colour (class colour, Lambert shading, noise), depth (metres) and NYU40 label ids.
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from alster_mapping.core import CameraIntrinsics, RGBDFrame

# (NYU40 id, RGB, box min corner, box size) in metres; z is up.
OBJECTS = (
    (2, (120, 110, 100), (-0.5, -0.5, -0.05), (4.0, 4.0, 0.05)),  # floor
    (1, (200, 200, 190), (-0.5, 3.45, 0.0), (4.0, 0.05, 2.5)),  # wall (back)
    (1, (190, 195, 205), (3.45, -0.5, 0.0), (0.05, 4.0, 2.5)),  # wall (right)
    (7, (150, 90, 40), (1.2, 2.0, 0.0), (1.0, 0.6, 0.75)),  # table
    (5, (40, 90, 160), (2.4, 1.2, 0.0), (0.45, 0.45, 0.9)),  # chair
)


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """T_world_camera of an optical frame (x right, y down, z forward) at ``eye`` looking at ``target``."""
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    T = np.eye(4)
    T[:3, :3] = np.stack([right, down, forward], 1)
    T[:3, 3] = eye
    return T


class ProceduralRoom:
    """Renders posed RGB-D frames with NYU40 labels of ``OBJECTS``.

    width, height: image size in pixels (about 60 degrees horizontal field of view).
    """

    def __init__(self, width: int = 80, height: int = 64, seed: int = 0):
        self.intrinsics = CameraIntrinsics(0.87 * width, 0.87 * width, (width - 1) / 2, (height - 1) / 2, width, height)
        self.rng = np.random.default_rng(seed)
        self.scene = o3d.t.geometry.RaycastingScene()
        self.ids, self.colors = [], []
        for label, color, corner, size in OBJECTS:
            box = o3d.geometry.TriangleMesh.create_box(*size)
            box.translate(corner)
            self.scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(box))
            self.ids.append(label)
            self.colors.append(color)
        self.ids = np.array(self.ids + [0])  # index -1 (no hit) -> id 0
        self.colors = np.array(self.colors + [(0, 0, 0)], dtype=np.float32)

    def pose(self, i: int, n: int) -> np.ndarray:
        """Pose i of n on an arc around the room's centre, at 1.4 m height."""
        a = np.deg2rad(200 + 70 * i / max(n - 1, 1))
        eye = np.array([1.7 + 1.3 * np.cos(a), 1.6 + 1.3 * np.sin(a), 1.4])
        return _look_at(eye, np.array([2.0, 2.2, 0.5]))

    def render(self, T_world_camera: np.ndarray, stamp_ns: int = 0) -> RGBDFrame:
        """One frame seen from ``T_world_camera``; labels attached as NYU40 ids."""
        K = self.intrinsics
        v, u = np.mgrid[0 : K.height, 0 : K.width]
        rays_cam = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u, dtype=np.float64)], -1).reshape(-1, 3)
        R, t = T_world_camera[:3, :3], T_world_camera[:3, 3]
        rays = np.concatenate([np.broadcast_to(t, rays_cam.shape), rays_cam @ R.T], 1).astype(np.float32)
        hit = self.scene.cast_rays(o3d.core.Tensor(rays))
        depth = hit["t_hit"].numpy().reshape(K.height, K.width)  # z = 1 rays: t is the depth
        geometry = hit["geometry_ids"].numpy().astype(np.int64).reshape(K.height, K.width)
        normals = hit["primitive_normals"].numpy().reshape(K.height, K.width, 3)
        missed = ~np.isfinite(depth)
        geometry[missed] = -1
        depth = np.where(missed, 0.0, depth).astype(np.float32)
        shade = 0.55 + 0.45 * np.abs(normals @ np.array([0.3, -0.4, 0.87]))
        color = self.colors[geometry] * shade[..., None] + self.rng.normal(0, 4, (K.height, K.width, 3))
        return RGBDFrame(
            color=np.clip(color, 0, 255).astype(np.uint8),
            depth=depth,
            intrinsics=K,
            T_world_camera=T_world_camera,
            stamp_ns=stamp_ns,
            labels=self.ids[geometry].astype(np.uint16),
        )

    def frames(self, n: int) -> list[RGBDFrame]:
        """n frames along the arc, 0.1 s apart."""
        return [self.render(self.pose(i, n), stamp_ns=i * 100_000_000) for i in range(n)]
