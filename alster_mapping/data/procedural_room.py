"""A small procedural room rendered with Open3D ray casting (the seed of the synthetic data generator).

A floor, two walls, a table-like box and a chair-like box, each with its own ScanNet-20
class (as an NYU40 id) and colour, seen by a pinhole camera (about 60 degrees horizontal
field of view, any image size, e.g. 80x64, 320x240 or 640x480) moving on an arc around the
room. Every frame carries colour (class colour with Lambert shading and Gaussian noise),
depth (metres along the optical axis; 0 where a ray hits nothing) and per-pixel NYU40 label
ids (0 where nothing is hit). From the default arc about 75-80 % of the pixels have depth
within 3 m (ALSTER's range) and every ray hits the room.

World frame: metres, z up, the room spans about x, y in [-0.5, 3.5], z in [0, 2.5].
"""

from __future__ import annotations

import numpy as np
import open3d as o3d

from ..core.camera import CameraIntrinsics
from ..core.frame import RGBDFrame

# (NYU40 id, RGB colour (uint8 values), box min corner [m], box size [m]); z is up.
OBJECTS = (
    (2, (120, 110, 100), (-0.5, -0.5, -0.05), (4.0, 4.0, 0.05)),  # floor
    (1, (200, 200, 190), (-0.5, 3.45, 0.0), (4.0, 0.05, 2.5)),  # wall (back)
    (1, (190, 195, 205), (3.45, -0.5, 0.0), (0.05, 4.0, 2.5)),  # wall (right)
    (7, (150, 90, 40), (1.2, 2.0, 0.0), (1.0, 0.6, 0.75)),  # table
    (5, (40, 90, 160), (2.4, 1.2, 0.0), (0.45, 0.45, 0.9)),  # chair
)

# Camera path: an arc of ARC_DEG degrees starting at ARC_START_DEG on a circle of
# ARC_RADIUS metres around ARC_CENTRE (x, y), at EYE_HEIGHT metres, looking at TARGET.
ARC_START_DEG = 200.0
ARC_DEG = 70.0
ARC_RADIUS = 1.3
ARC_CENTRE = (1.7, 1.6)
EYE_HEIGHT = 1.4
TARGET = (2.0, 2.2, 0.5)
# Colour noise: standard deviation in uint8 units.
COLOR_NOISE = 4.0
# Time between consecutive frames of ``frames`` [ns] (10 Hz).
FRAME_PERIOD_NS = 100_000_000


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """T_world_camera (4, 4) float64 of an optical frame (x right, y down, z forward) at
    ``eye`` (3,) metres looking at ``target`` (3,) metres, with the world z axis up.

    ``eye`` and ``target`` must differ and the view must not be vertical.
    """
    forward = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
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

    width, height: image size in pixels (fx = fy = 0.87 * width, about 60 degrees
    horizontal field of view; principal point at the image centre). seed: of the colour
    noise; the same seed and call sequence give the same frames.
    """

    def __init__(self, width: int = 80, height: int = 64, seed: int = 0):
        self.intrinsics = CameraIntrinsics(0.87 * width, 0.87 * width, (width - 1) / 2, (height - 1) / 2, width, height)
        self.rng = np.random.default_rng(seed)
        self.scene = o3d.t.geometry.RaycastingScene()
        ids, colors = [], []
        for label, color, corner, size in OBJECTS:
            box = o3d.geometry.TriangleMesh.create_box(*size)
            box.translate(corner)
            self.scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(box))
            ids.append(label)
            colors.append(color)
        # Indexed by Open3D geometry id; the last entry (index -1, no hit) is id 0, black.
        self.ids = np.array(ids + [0])
        self.colors = np.array(colors + [(0, 0, 0)], dtype=np.float32)

    def pose(self, i: int, n: int) -> np.ndarray:
        """T_world_camera (4, 4) float64 of pose i of n, evenly spaced on the arc (1.4 m high,
        radius 1.3 m, 70 degrees in all: about 1.6 m of camera travel)."""
        a = np.deg2rad(ARC_START_DEG + ARC_DEG * i / max(n - 1, 1))
        eye = np.array([ARC_CENTRE[0] + ARC_RADIUS * np.cos(a), ARC_CENTRE[1] + ARC_RADIUS * np.sin(a), EYE_HEIGHT])
        return look_at(eye, np.array(TARGET))

    def render(self, T_world_camera: np.ndarray, stamp_ns: int = 0) -> RGBDFrame:
        """One frame seen from ``T_world_camera`` (4, 4) float64, stamped ``stamp_ns``.

        Returns an ``RGBDFrame``: color (H, W, 3) uint8 RGB, depth (H, W) float32 metres
        (z; 0 without a hit), labels (H, W) uint16 NYU40 ids (0 without a hit).
        Draws colour noise from this room's generator.
        """
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
        color = self.colors[geometry] * shade[..., None] + self.rng.normal(0, COLOR_NOISE, (K.height, K.width, 3))
        return RGBDFrame(
            color=np.clip(color, 0, 255).astype(np.uint8),
            depth=depth,
            intrinsics=K,
            T_world_camera=T_world_camera,
            stamp_ns=stamp_ns,
            labels=self.ids[geometry].astype(np.uint16),
        )

    def frames(self, n: int) -> list[RGBDFrame]:
        """n frames along the arc (``pose(i, n)``), 0.1 s apart starting at stamp 0."""
        return [self.render(self.pose(i, n), stamp_ns=i * FRAME_PERIOD_NS) for i in range(n)]
