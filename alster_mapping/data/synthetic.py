"""Seeded synthetic indoor worlds with ground truth: the training and evaluation data of ALSTER.

One world is one furnished room (random size, about 4.5-7 m x 4-6 m, 2.5-2.9 m high) whose
objects cover the 20 ScanNet benchmark classes (NYU40 ids, see ``core.labels``): floor,
walls and a ceiling (NYU40 22, outside the 20 classes), doors, windows with curtains,
pictures, a bathroom corner (bathtub with shower curtain, toilet, sink), a kitchen corner
(base cabinets under a counter with a sink, wall cabinets, refrigerator), a bedroom /
office part (bed, nightstands, desk with chair, bookshelf, wardrobe or dresser) and a
living part (sofa, coffee table, dining table with chairs, lamps, ottomans, shelf units).
Every object is built from primitives (boxes, cylinders, folded sheets) with per-instance
size, pose, colour (class palette + HSV jitter) and procedural texture (wood grain,
fabric weave, tiles, speckle, book spines, art), so that a network has to learn shape,
size, placement and colour cues that generalise to unseen seeds.

A ``SyntheticWorld`` renders posed RGB-D frames with Open3D ray casting (one scene per
world): RGB = albedo x texture x shading (ambient, sun-like directional light, ceiling
point light) + pixel noise; depth = z with a Kinect-like noise model (noise growing with
distance, dropouts at depth edges, grazing angles and at random, a min/max range);
noise-free per-pixel NYU40 labels and instance ids. ``ground_truth_points`` samples the
visible surfaces of all objects (the analogue of ScanNet's labelled mesh vertices).

Frames: world z up, metres; cameras are optical frames (x right, y down, z forward),
T_world_camera (4, 4) float64. Everything is reproducible from the seed: the layout,
the trajectory and the ground-truth points come from their own generators seeded by the
world seed, and the noise of frame i from a generator seeded by (seed, i), so frames can be
rendered in any order.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import open3d as o3d
from scipy import ndimage

from ..core.camera import CameraIntrinsics
from ..core.frame import RGBDFrame
from .procedural_room import look_at

# NYU40 ids used by the generator.
WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
PICTURE, COUNTER, DESK, CURTAIN, CEILING, REFRIGERATOR = 11, 12, 14, 16, 22, 24
SHOWER_CURTAIN, TOILET, SINK, BATHTUB, OTHERFURNITURE = 28, 33, 34, 36, 39

# Procedural texture kinds (evaluated per pixel at the 3D hit point).
PLAIN, WOOD, FABRIC, TILES, GLASS, BOOKS, SPECKLE, ART = range(8)


@dataclass
class SyntheticConfig:
    """Knobs of the generator; the defaults mimic a handheld ScanNet capture.

    Times in nanoseconds or seconds, lengths in metres, angles in degrees.
    """

    frame_period_ns: int = 100_000_000
    """Time between consecutive trajectory frames (10 Hz)."""
    speed_range: tuple[float, float] = (0.3, 0.5)
    """Walking speed [m/s]; each world draws one constant speed from this range."""
    height_range: tuple[float, float] = (1.2, 1.8)
    """Camera height above the floor [m]; varies smoothly within the range."""
    pitch_range_deg: tuple[float, float] = (10.0, 35.0)
    """Downward pitch of the optical axis [deg]; varies smoothly within the range."""
    wall_clearance: float = 0.4
    """Minimum distance of the camera from the walls [m]."""
    furniture_clearance: float = 0.1
    """Minimum distance of the camera from any furniture footprint (axis-aligned box) [m]."""
    room_x_range: tuple[float, float] = (4.5, 7.0)
    room_y_range: tuple[float, float] = (4.0, 6.0)
    room_height_range: tuple[float, float] = (2.5, 2.9)
    max_depth: float = 5.0
    """Sensor range [m]: depth (and depth_clean) is 0 beyond it."""
    min_depth: float = 0.3
    """Closest measurable depth [m]: noisy depth is 0 below it."""
    noise: bool = True
    """False: depth equals depth_clean (still cut to the range) and colour has no pixel noise."""
    color_noise: float = 3.0
    """Standard deviation of the Gaussian colour noise [uint8 units]."""
    grazing_angle_deg: tuple[float, float] = (75.0, 88.0)
    """Depth dropout probability rises linearly from 0 to 1 between these angles of ray and normal."""
    edge_dropout: float = 0.6
    """Dropout probability of pixels at depth discontinuities."""
    random_dropout: float = 0.003
    """Dropout probability of any other pixel."""
    depth_quantum: float = 0.001
    """Depth quantisation [m] (ScanNet stores millimetres); 0 disables it."""
    point_density: float = 2500.0
    """Ground-truth points per square metre of surface (2500 = one per 4 cm^2)."""
    hidden_tolerance: float = 0.004
    """Ground-truth points within this distance [m] inside another part or the room shell are dropped."""
    focal_per_width: float = 577.870605 / 640.0
    """fx = fy = focal_per_width * width [px] (ScanNet's depth camera: about 58 deg horizontal FoV)."""


@dataclass
class WorldObject:
    """One labelled object of a world.

    name: kind of object (e.g. "bed", "wall"). label: NYU40 id. instance: unique id 1..N
    (0 means nothing). position: (x, y, z) of the object's local origin [m] (back centre on
    the floor for furniture, the wall point for wall-mounted objects). yaw: rotation about
    world z [rad]. aabb_min, aabb_max: world axis-aligned bounding box corners [m]. wall:
    index of the wall it stands against (0: y=0, 1: x=Lx, 2: y=Ly, 3: x=0) or -1.
    color: base RGB (uint8 values) of its main part.
    """

    name: str
    label: int
    instance: int
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw: float = 0.0
    aabb_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    aabb_max: tuple[float, float, float] = (0.0, 0.0, 0.0)
    wall: int = -1
    color: tuple[int, int, int] = (0, 0, 0)
    parts: list = field(default_factory=list, repr=False, compare=False)


@dataclass
class SyntheticView:
    """One rendered frame with ground truth.

    frame: color (H, W, 3) uint8, depth (H, W) float32 metres (noisy, 0 = no measurement),
    labels (H, W) uint16 NYU40 ids (noise-free, 0 = no hit), intrinsics, T_world_camera,
    stamp_ns, frame_id "camera". instances: (H, W) uint16 instance ids (0 = nothing).
    depth_clean: (H, W) float32 noise-free depth [m] (0 = no hit or beyond max range).
    """

    frame: RGBDFrame
    instances: np.ndarray
    depth_clean: np.ndarray


# ---------------------------------------------------------------------------------------
# Primitive meshes
# ---------------------------------------------------------------------------------------


def _orient_outward(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Flip triangles of a convex mesh so their normals point away from its centroid."""
    tris = tris.copy()
    a, b, c = v[tris[:, 0]], v[tris[:, 1]], v[tris[:, 2]]
    n = np.cross(b - a, c - a)
    flip = (n * ((a + b + c) / 3 - v.mean(0))).sum(1) < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris


def _unit_box() -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64)
    tris = []
    for axis in range(3):
        b, c = [a for a in range(3) if a != axis]
        for side in (0, 1):
            q = [(side << axis) | (i << b) | (j << c) for i, j in ((0, 0), (1, 0), (1, 1), (0, 1))]
            tris += [(q[0], q[1], q[2]), (q[0], q[2], q[3])]
    return v, _orient_outward(v, np.array(tris))


def _unit_cylinder(sides: int = 12) -> tuple[np.ndarray, np.ndarray]:
    a = 2 * np.pi * np.arange(sides) / sides
    ring = np.stack([np.cos(a), np.sin(a)], 1)
    v = np.concatenate([np.c_[ring, np.full(sides, -0.5)], np.c_[ring, np.full(sides, 0.5)], [[0, 0, -0.5], [0, 0, 0.5]]])
    tris = []
    for i in range(sides):
        j = (i + 1) % sides
        tris += [(i, j, sides + j), (i, sides + j, sides + i), (2 * sides, j, i), (2 * sides + 1, sides + i, sides + j)]
    return v, _orient_outward(v, np.array(tris))


_BOX_V, _BOX_T = _unit_box()
_CYL_V, _CYL_T = _unit_cylinder()


def _matmul_rows(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """X @ M for many rows X (N, 3) and a 3x3 M without BLAS: a threaded BLAS call on such thin
    matrices spins its threads and is 10-100x slower on a busy machine."""
    return X[:, 0:1] * M[0] + X[:, 1:2] * M[1] + X[:, 2:3] * M[2]


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class _Part:
    """A primitive of an object (world or object-local coordinates).

    kind: "box" | "cyl" | "sheet". verts (n, 3), tris (m, 3). center, R, half: the oriented
    box (or, for "cyl", R[:, 2] is the axis, half = (r, r, h/2)) used to hide ground-truth
    points buried inside it. rgb (3,) albedo 0..1. tex, params (4,): texture. u, v: texture
    axes. emissive: not shaded (window panes, lamp shades). occluder: hides points inside it.
    """

    kind: str
    verts: np.ndarray
    tris: np.ndarray
    center: np.ndarray
    R: np.ndarray
    half: np.ndarray
    rgb: np.ndarray
    tex: int = PLAIN
    params: tuple = (0.04, 0.0, 0.0, 0.0)
    u: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    v: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    emissive: bool = False
    occluder: bool = True

    def moved(self, R: np.ndarray, t: np.ndarray) -> "_Part":
        """This part after the rigid motion x -> R x + t."""
        return _Part(
            self.kind, _matmul_rows(self.verts, R.T) + t, self.tris, R @ self.center + t, R @ self.R, self.half, self.rgb,
            self.tex, self.params, R @ self.u, R @ self.v, self.emissive, self.occluder,
        )  # fmt: skip


def _axes_by_extent(size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture axes of a box: along its longest and second-longest side (wood grain runs along u)."""
    order = np.argsort(-np.asarray(size), kind="stable")
    eye = np.eye(3)
    return eye[order[0]], eye[order[1]]


class _Parts:
    """Collects the primitives of one object in its local frame (x along, y away from the wall, z up)."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []

    def box(self, lo, hi, rgb, tex=PLAIN, params=(0.04, 0, 0, 0), emissive=False) -> None:
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        size = hi - lo
        u, v = _axes_by_extent(size)
        self.parts.append(
            _Part("box", lo + _BOX_V * size, _BOX_T, (lo + hi) / 2, np.eye(3), size / 2, np.asarray(rgb, float),
                  tex, tuple(params), u, v, emissive)
        )  # fmt: skip

    def cyl(self, center, radius, height, rgb, tex=PLAIN, params=(0.04, 0, 0, 0), axis="z", emissive=False) -> None:
        """Cylinder of ``radius`` and ``height`` centred at ``center`` with its axis along local x, y or z."""
        R = {"z": np.eye(3), "x": np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0.0]]), "y": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0.0]])}[axis]
        v = (_CYL_V * [radius, radius, height]) @ R.T + center
        self.parts.append(
            _Part("cyl", v, _CYL_T, np.asarray(center, float), R, np.array([radius, radius, height / 2]),
                  np.asarray(rgb, float), tex, tuple(params), R[:, 2], R[:, 0], emissive)
        )  # fmt: skip

    def sheet(self, xs, ys, z0, z1, rgb, tex=FABRIC, params=(90.0, 0.08, 0, 0)) -> None:
        """A vertical folded sheet: the polyline (xs, ys) extruded from z0 to z1 (curtains)."""
        xs, ys = np.asarray(xs, float), np.asarray(ys, float)
        k = len(xs)
        v = np.concatenate([np.c_[xs, ys, np.full(k, z0)], np.c_[xs, ys, np.full(k, z1)]])
        i = np.arange(k - 1)
        tris = np.concatenate([np.stack([i, i + 1, k + i + 1], 1), np.stack([i, k + i + 1, k + i], 1)])
        lo, hi = v.min(0), v.max(0)
        self.parts.append(
            _Part("sheet", v, tris, (lo + hi) / 2, np.eye(3), (hi - lo) / 2, np.asarray(rgb, float), tex,
                  tuple(params), np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), occluder=False)
        )  # fmt: skip


# ---------------------------------------------------------------------------------------
# Palettes: per-class base colours (RGB 0..255); instances jitter them in HSV.
# ---------------------------------------------------------------------------------------

PALETTES = {
    "wall": [(226, 221, 206), (212, 206, 190), (192, 201, 212), (201, 211, 192), (216, 200, 186), (184, 183, 180), (230, 226, 214)],
    "ceiling": [(236, 236, 232), (228, 226, 220)],
    "floor_wood": [(150, 105, 66), (172, 128, 84), (118, 84, 56), (190, 150, 105)],
    "floor_tile": [(204, 198, 188), (162, 162, 168), (214, 210, 200), (140, 128, 118)],
    "floor_carpet": [(112, 102, 96), (92, 98, 112), (130, 118, 98), (84, 84, 88)],
    "wood": [(150, 100, 60), (120, 78, 46), (185, 140, 95), (95, 62, 40), (200, 165, 120)],
    "white": [(236, 234, 228), (245, 245, 242), (224, 222, 215)],
    "dark": [(48, 46, 48), (70, 66, 64), (35, 38, 45)],
    "metal": [(190, 190, 195), (160, 162, 168), (205, 205, 208)],
    "cabinet": [(236, 234, 228), (150, 100, 60), (185, 140, 95), (120, 124, 130), (96, 110, 128), (200, 196, 176)],
    "counter": [(62, 62, 66), (226, 222, 212), (150, 140, 130), (40, 40, 44), (190, 175, 150)],
    "bed_sheet": [(236, 236, 242), (200, 212, 232), (222, 204, 192), (180, 200, 180), (214, 200, 220)],
    "blanket": [(120, 140, 180), (170, 70, 70), (90, 120, 90), (210, 190, 150), (80, 80, 110), (200, 120, 60)],
    "sofa": [(92, 92, 102), (132, 62, 52), (62, 92, 72), (172, 162, 142), (72, 82, 122), (150, 130, 105), (40, 40, 42)],
    "chair": [(150, 100, 60), (40, 40, 45), (150, 40, 40), (50, 70, 130), (200, 165, 120), (220, 220, 215)],
    "door": [(122, 76, 42), (232, 231, 226), (92, 62, 40), (150, 112, 70), (110, 120, 130)],
    "window_frame": [(242, 242, 240), (100, 100, 102), (150, 105, 66)],
    "glass": [(205, 225, 250), (225, 235, 245), (235, 238, 226)],
    "curtain": [(200, 60, 60), (60, 90, 150), (220, 210, 180), (120, 150, 110), (160, 120, 170), (235, 235, 230), (90, 70, 60)],
    "shower_curtain": [(232, 238, 244), (200, 225, 235), (235, 220, 230), (215, 235, 215), (240, 240, 225)],
    "picture_frame": [(42, 32, 26), (205, 172, 90), (242, 242, 240), (120, 80, 50)],
    "art": [(230, 220, 200), (200, 215, 235), (240, 230, 210)],
    "ceramic": [(242, 242, 240), (236, 236, 232), (226, 230, 232)],
    "fridge": [(236, 236, 236), (192, 192, 198), (52, 52, 56), (225, 222, 210)],
    "books": [(160, 60, 50), (50, 80, 140), (70, 120, 70), (200, 180, 120), (120, 60, 110)],
    "lamp_shade": [(245, 235, 210), (240, 240, 235), (230, 210, 170)],
}


def _color(rng: np.random.Generator, key: str, dh: float = 0.03, ds: float = 0.12, dv: float = 0.1) -> np.ndarray:
    """A palette colour of ``key`` with per-instance HSV jitter, RGB floats 0..1."""
    base = PALETTES[key][rng.integers(len(PALETTES[key]))]
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in base))
    h = (h + rng.uniform(-dh, dh)) % 1.0
    s = float(np.clip(s * (1 + rng.uniform(-ds, ds) * 2), 0, 1))
    v = float(np.clip(v * (1 + rng.uniform(-dv, dv)), 0.05, 1))
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _wood(rng):
    """Wood-grain parameters: ring frequency [1/m], contrast, waviness."""
    return (rng.uniform(35, 90), rng.uniform(0.12, 0.28), rng.uniform(0.3, 0.9), 0.0)


def _fabric(rng):
    """Fabric weave parameters: frequency [1/m], contrast."""
    return (rng.uniform(50, 130), rng.uniform(0.05, 0.12), 0.0, 0.0)


def _plain(rng):
    return (rng.uniform(0.02, 0.06), 0.0, 0.0, 0.0)


def _speckle(rng):
    return (rng.uniform(0.003, 0.008), rng.uniform(0.15, 0.35), 0.0, 0.0)


# ---------------------------------------------------------------------------------------
# Object builders: each returns (name, label, main colour, _Parts) in a local frame whose
# origin is the back centre at floor level (x along the wall, y into the room, z up).
# ---------------------------------------------------------------------------------------


def _door(rng, H):
    w, h, cw = rng.uniform(0.8, 0.95), rng.uniform(1.98, 2.1), rng.uniform(0.06, 0.09)
    col = _color(rng, "door")
    tex = WOOD if rng.random() < 0.5 else PLAIN
    frame = np.clip(col * rng.uniform(0.8, 1.15), 0, 1)
    p = _Parts()
    p.box((-w / 2, 0, 0.01), (w / 2, 0.03, h), col, tex, _wood(rng) if tex == WOOD else _plain(rng))
    p.box((-w / 2 - cw, 0, 0), (-w / 2, 0.045, h), frame, PLAIN, _plain(rng))
    p.box((w / 2, 0, 0), (w / 2 + cw, 0.045, h), frame, PLAIN, _plain(rng))
    p.box((-w / 2 - cw, 0, h), (w / 2 + cw, 0.045, h + cw), frame, PLAIN, _plain(rng))
    if rng.random() < 0.6:  # raised panels
        rows = 2 if rng.random() < 0.5 else 3
        m = 0.12
        zs = np.linspace(0.15, h - 0.15, rows + 1)
        for i in range(rows):
            p.box((-w / 2 + m, 0.03, zs[i] + 0.04), (w / 2 - m, 0.038, zs[i + 1] - 0.04), col * 0.93, PLAIN, _plain(rng))
    side = 1 if rng.random() < 0.5 else -1
    metal = _color(rng, "metal")
    xk = side * (w / 2 - 0.08)
    p.box((xk - 0.025, 0.03, 0.95), (xk + 0.025, 0.05, 1.05), metal)
    p.box((min(xk, xk - side * 0.12), 0.05, 0.99), (max(xk, xk - side * 0.12), 0.07, 1.015), metal)
    return "door", DOOR, col, p, w + 2 * cw


def _window(rng, H):
    w = rng.uniform(0.8, 1.6)
    sill = rng.uniform(0.8, 1.0)
    top = min(sill + rng.uniform(1.0, 1.5), H - 0.25)
    fw, fd = rng.uniform(0.05, 0.08), rng.uniform(0.05, 0.07)
    frame = _color(rng, "window_frame")
    glass = _color(rng, "glass", ds=0.2, dv=0.05)
    p = _Parts()
    p.box((-w / 2 + fw, 0, sill + fw), (w / 2 - fw, 0.012, top - fw), glass, GLASS, (rng.uniform(0, 6.28), 0, 0, 0), emissive=True)
    p.box((-w / 2, 0, sill), (-w / 2 + fw, fd, top), frame)
    p.box((w / 2 - fw, 0, sill), (w / 2, fd, top), frame)
    p.box((-w / 2 + fw, 0, sill), (w / 2 - fw, fd, sill + fw), frame)
    p.box((-w / 2 + fw, 0, top - fw), (w / 2 - fw, fd, top), frame)
    if rng.random() < 0.6:  # mullion
        p.box((-0.3 * fw, 0.012, sill + fw), (0.3 * fw, 0.8 * fd, top - fw), frame)
    p.box((-w / 2 - 0.05, 0, sill - 0.03), (w / 2 + 0.05, rng.uniform(0.1, 0.18), sill), frame * 0.97)
    return "window", WINDOW, frame, p, (w, sill, top)


def _curtain(rng, H, x0, x1, top, bottom, col):
    """A folded curtain panel spanning local x in [x0, x1], hanging from a rod at ``top``."""
    pitch, amp, off = rng.uniform(0.07, 0.13), rng.uniform(0.04, 0.07), rng.uniform(0.07, 0.1)
    n = max(2, int(round(abs(x1 - x0) / pitch)) * 2)
    xs = np.linspace(x0, x1, n + 1)
    ys = off + amp * (np.arange(n + 1) % 2)
    p = _Parts()
    p.sheet(xs, ys, bottom, top, col, FABRIC, _fabric(rng))
    p.cyl(((x0 + x1) / 2, off + amp / 2, top + 0.02), 0.012, abs(x1 - x0) + 0.04, _color(rng, "metal"), axis="x")
    return "curtain", CURTAIN, col, p


def _picture(rng, H):
    w, h = rng.uniform(0.3, 1.0), rng.uniform(0.25, 0.8)
    zc = min(rng.uniform(1.35, 1.75), H - 0.2 - h / 2)
    th, fw = rng.uniform(0.02, 0.04), rng.uniform(0.015, 0.05)
    z0, z1 = zc - h / 2, zc + h / 2
    frame = _color(rng, "picture_frame")
    p = _Parts()
    art = (rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 6.28), rng.uniform(1, 6))
    p.box((-w / 2 + fw, 0, z0 + fw), (w / 2 - fw, th - 0.008, z1 - fw), _color(rng, "art"), ART, art)
    p.box((-w / 2, 0, z0), (-w / 2 + fw, th, z1), frame)
    p.box((w / 2 - fw, 0, z0), (w / 2, th, z1), frame)
    p.box((-w / 2 + fw, 0, z0), (w / 2 - fw, th, z0 + fw), frame)
    p.box((-w / 2 + fw, 0, z1 - fw), (w / 2 - fw, th, z1), frame)
    return "picture", PICTURE, frame, p


def _bathtub(rng, H):
    L, W, h, t = rng.uniform(1.5, 1.75), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6), rng.uniform(0.06, 0.1)
    col = _color(rng, "ceramic", ds=0.3, dv=0.04)
    p = _Parts()
    p.box((-L / 2 + t, t, 0), (L / 2 - t, W - t, rng.uniform(0.1, 0.16)), col * 0.96)
    p.box((-L / 2, 0, 0), (L / 2, t, h), col)
    p.box((-L / 2, W - t, 0), (L / 2, W, h), col)
    p.box((-L / 2, t, 0), (-L / 2 + t, W - t, h), col)
    p.box((L / 2 - t, t, 0), (L / 2, W - t, h), col)
    return "bathtub", BATHTUB, col, p, (L, W, h)


def _shower_curtain(rng, H, L, W, h):
    col = _color(rng, "shower_curtain")
    rod_z = min(rng.uniform(1.85, 2.0), H - 0.1)
    frac = rng.uniform(0.35, 0.85)
    left = rng.random() < 0.5
    x0, x1 = (-L / 2 + 0.02, -L / 2 + 0.02 + frac * (L - 0.04)) if left else (L / 2 - 0.02 - frac * (L - 0.04), L / 2 - 0.02)
    amp = rng.uniform(0.03, 0.06) / max(frac, 0.4)
    n = max(2, int(round((x1 - x0) / rng.uniform(0.06, 0.1))) * 2)
    y = W - 0.06
    xs = np.linspace(x0, x1, n + 1)
    ys = y - amp * (np.arange(n + 1) % 2)
    p = _Parts()
    p.sheet(xs, ys, h + rng.uniform(0.08, 0.2), rod_z - 0.03, col, FABRIC, _fabric(rng))
    p.cyl((0, y - amp / 2, rod_z), 0.013, L, _color(rng, "metal"), axis="x")
    return "shower curtain", SHOWER_CURTAIN, col, p


def _toilet(rng, H):
    col = _color(rng, "ceramic", ds=0.3, dv=0.04)
    tw, td = rng.uniform(0.36, 0.45), rng.uniform(0.15, 0.2)
    z0 = rng.uniform(0.4, 0.44)
    z1 = z0 + rng.uniform(0.3, 0.38)
    r = rng.uniform(0.17, 0.2)
    cy = td + rng.uniform(0.22, 0.28)
    p = _Parts()
    p.box((-tw / 2, 0, z0), (tw / 2, td, z1), col)
    p.box((-tw / 2 - 0.01, 0, z1), (tw / 2 + 0.01, td + 0.01, z1 + 0.025), col * 0.98)
    p.box((-0.06, 0.03, 0.3), (0.06, td, z0), col * 0.97)  # pipe between tank and bowl
    p.box((-0.11, td, 0), (0.11, cy + 0.1, 0.3), col)  # pedestal
    p.cyl((0, cy, 0.35), r, 0.1, col)  # bowl
    p.cyl((0, cy, 0.41), r + 0.01, 0.02, col * rng.uniform(0.9, 1.0))  # seat
    if rng.random() < 0.5:  # lid up against the tank
        p.box((-r, td + 0.01, 0.42), (r, td + 0.03, 0.42 + 2 * r), col * 0.97)
    return "toilet", TOILET, col, p, (2 * max(r + 0.01, tw / 2 + 0.01), cy + r + 0.01)


def _basin(p: _Parts, x0, x1, y0, y1, z, depth, col, rng):
    """A hollow basin (bottom plate and four rim walls) standing on the plane ``z``, with a faucet."""
    t = 0.025
    p.box((x0 + t, y0 + t, z), (x1 - t, y1 - t, z + 0.012), col * 0.93)
    p.box((x0, y0, z), (x1, y0 + t, z + depth), col)
    p.box((x0, y1 - t, z), (x1, y1, z + depth), col)
    p.box((x0, y0 + t, z), (x0 + t, y1 - t, z + depth), col)
    p.box((x1 - t, y0 + t, z), (x1, y1 - t, z + depth), col)
    metal = _color(rng, "metal")
    fx = (x0 + x1) / 2
    p.cyl((fx, y0 - 0.04, z + 0.1), 0.015, 0.2, metal)
    p.box((fx - 0.012, y0 - 0.04, z + 0.18), (fx + 0.012, y0 + 0.1, z + 0.2), metal)


def _pedestal_sink(rng, H):
    col = _color(rng, "ceramic", ds=0.3, dv=0.04)
    w, d = rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.5)
    z = rng.uniform(0.7, 0.76)
    p = _Parts()
    p.cyl((0, 0.22, z / 2), rng.uniform(0.07, 0.1), z, col)
    p.box((-w / 2, 0, z - 0.04), (w / 2, d, z), col)  # basin underside
    p.box((-w / 2, 0, z), (w / 2, 0.07, z + 0.13), col)  # back rim carrying the faucet
    _basin(p, -w / 2, w / 2, 0.07, d, z, 0.13, col, rng)
    return "sink", SINK, col, p, (w, d)


def _fridge(rng, H):
    col = _color(rng, "fridge", dv=0.05)
    w, d, h = rng.uniform(0.6, 0.85), rng.uniform(0.65, 0.75), rng.uniform(1.65, 1.95)
    p = _Parts()
    p.box((-w / 2, 0, 0), (w / 2, d - 0.04, h), col * 0.96)
    handle = _color(rng, "metal") if rng.random() < 0.7 else col * 0.7
    side = 1 if rng.random() < 0.5 else -1
    hx = side * (w / 2 - 0.07)
    if rng.random() < 0.3 and w > 0.75:  # side by side
        p.box((-w / 2 + 0.003, d - 0.04, 0.01), (-0.004, d, h - 0.005), col)
        p.box((0.004, d - 0.04, 0.01), (w / 2 - 0.003, d, h - 0.005), col)
        for hx2 in (-0.05, 0.03):
            p.box((hx2, d, 0.6), (hx2 + 0.02, d + 0.04, 1.3), handle)
    else:
        hs = h * rng.uniform(0.28, 0.36)
        top_freezer = rng.random() < 0.5
        split = h - hs if top_freezer else hs
        p.box((-w / 2 + 0.003, d - 0.04, 0.01), (w / 2 - 0.003, d, split - 0.005), col)
        p.box((-w / 2 + 0.003, d - 0.04, split + 0.005), (w / 2 - 0.003, d, h - 0.005), col)
        p.box((hx - 0.01, d, split - 0.45), (hx + 0.01, d + 0.04, split - 0.1), handle)
        p.box((hx - 0.01, d, split + 0.1), (hx + 0.01, d + 0.04, min(split + 0.45, h - 0.05)), handle)
    return "refrigerator", REFRIGERATOR, col, p, (w, d)


def _cabinet_unit(rng, x0, x1, d, z0, z1, col, tex, params, toe=0.0):
    """A cabinet box from x0 to x1 with a door or drawer front, optionally on a recessed plinth."""
    p = _Parts()
    if toe > 0:
        p.box((x0, 0, 0), (x1, d - 0.06, toe), col * 0.55)
    p.box((x0, 0, max(z0, toe)), (x1, d - 0.02, z1), col, tex, params)
    handle = _color(rng, "metal") if rng.random() < 0.7 else _color(rng, "dark")
    fz0, fz1 = max(z0, toe) + 0.01, z1 - 0.01
    if rng.random() < 0.35 and fz1 - fz0 < 1.0:  # drawers
        n = int(rng.integers(2, 4))
        zs = np.linspace(fz0, fz1, n + 1)
        for i in range(n):
            p.box((x0 + 0.004, d - 0.02, zs[i] + 0.003), (x1 - 0.004, d, zs[i + 1] - 0.003), col * 0.97, tex, params)
            zc = (zs[i] + zs[i + 1]) / 2
            xc = (x0 + x1) / 2
            p.box((xc - 0.06, d, zc - 0.01), (xc + 0.06, d + 0.025, zc + 0.01), handle)
    else:
        n = 2 if x1 - x0 > 0.7 else 1
        xs = np.linspace(x0, x1, n + 1)
        for i in range(n):
            p.box((xs[i] + 0.004, d - 0.02, fz0), (xs[i + 1] - 0.004, d, fz1), col * 0.97, tex, params)
            hxx = xs[i + 1] - 0.05 if i == 0 and n == 2 or rng.random() < 0.5 else xs[i] + 0.03
            hz = fz1 - 0.12 if z0 < 0.5 else fz0 + 0.05
            p.box((hxx, d, hz - 0.06), (hxx + 0.02, d + 0.025, hz + 0.06), handle)
    return p


def _kitchen(rng, H):
    """Base cabinets + counter (+ sink) + optional wall cabinets + refrigerator, in one local frame.

    Returns a list of (name, label, colour, parts, dx) members and the group's x extent.
    """
    L = rng.uniform(1.2, 2.2)
    hc, th, d = rng.uniform(0.88, 0.92), rng.uniform(0.03, 0.045), 0.6
    cab_col = _color(rng, "cabinet")
    cab_tex = WOOD if rng.random() < 0.4 else PLAIN
    cab_par = _wood(rng) if cab_tex == WOOD else _plain(rng)
    members = []
    n = max(2, int(round(L / rng.uniform(0.45, 0.65))))
    xs = np.linspace(-L / 2, L / 2, n + 1)
    for i in range(n):
        p = _cabinet_unit(rng, xs[i], xs[i + 1], d, 0.0, hc - th, cab_col, cab_tex, cab_par, toe=0.1)
        members.append(("cabinet", CABINET, cab_col, p, 0.0))
    top = _color(rng, "counter")
    p = _Parts()
    p.box((-L / 2, 0, hc - th), (L / 2, d + 0.025, hc), top, SPECKLE, _speckle(rng))
    members.append(("counter", COUNTER, top, p, 0.0))
    sw, sd = rng.uniform(0.45, 0.7), rng.uniform(0.36, 0.44)
    sx = rng.uniform(-L / 2 + sw / 2 + 0.05, L / 2 - sw / 2 - 0.05)
    p = _Parts()
    scol = _color(rng, "metal") if rng.random() < 0.6 else _color(rng, "ceramic")
    _basin(p, sx - sw / 2, sx + sw / 2, 0.12, 0.12 + sd, hc, rng.uniform(0.04, 0.07), scol, rng)
    members.append(("sink", SINK, scol, p, 0.0))
    if rng.random() < 0.65 and H > 2.45:  # wall cabinets
        z0 = rng.uniform(1.4, 1.5)
        z1 = min(z0 + rng.uniform(0.6, 0.75), H - 0.05)
        m = max(1, n - int(rng.integers(0, 2)))
        for i in range(m):
            p = _cabinet_unit(rng, xs[i], xs[i + 1], 0.33, z0, z1, cab_col, cab_tex, cab_par)
            members.append(("cabinet", CABINET, cab_col, p, 0.0))
    name, label, col, p, (fw, fd) = _fridge(rng, H)
    side = 1 if rng.random() < 0.5 else -1
    members.append((name, label, col, p, side * (L / 2 + 0.02 + fw / 2)))
    x0, x1 = (-L / 2, L / 2 + 0.02 + fw) if side > 0 else (-L / 2 - 0.02 - fw, L / 2)
    return members, (x0, x1)


def _bed(rng, H, small=False):
    w, L = (rng.uniform(0.9, 1.05), rng.uniform(1.9, 2.0)) if small else (rng.uniform(1.0, 1.8), rng.uniform(1.95, 2.15))
    fh, mh = rng.uniform(0.22, 0.35), rng.uniform(0.16, 0.25)
    hh = rng.uniform(0.85, 1.15)
    wood, wp = _color(rng, "wood"), _wood(rng)
    sheet, blanket = _color(rng, "bed_sheet"), _color(rng, "blanket")
    p = _Parts()
    p.box((-w / 2, 0, 0), (w / 2, 0.06, hh), wood, WOOD, wp)  # headboard
    p.box((-w / 2, 0.06, 0), (w / 2, L, fh), wood, WOOD, wp)  # frame
    p.box((-w / 2 + 0.02, 0.06, fh), (w / 2 - 0.02, L - 0.02, fh + mh), sheet, FABRIC, _fabric(rng))  # mattress
    by = 0.06 + rng.uniform(0.45, 0.7)
    p.box((-w / 2 + 0.005, by, fh + mh), (w / 2 - 0.005, L - 0.005, fh + mh + 0.03), blanket, FABRIC, _fabric(rng))
    p.box((-w / 2 - 0.01, by, fh + 0.05), (-w / 2 + 0.005, L - 0.005, fh + mh + 0.03), blanket * 0.9, FABRIC, _fabric(rng))
    p.box((w / 2 - 0.005, by, fh + 0.05), (w / 2 + 0.01, L - 0.005, fh + mh + 0.03), blanket * 0.9, FABRIC, _fabric(rng))
    npill = 1 if w < 1.3 else 2
    pw = (w - 0.1) / npill - 0.04
    pcol = _color(rng, "bed_sheet")
    for i in range(npill):
        x0 = -w / 2 + 0.05 + i * (pw + 0.04) + 0.02
        p.box((x0, 0.1, fh + mh), (x0 + pw, 0.1 + rng.uniform(0.3, 0.4), fh + mh + rng.uniform(0.1, 0.16)), pcol, FABRIC, _fabric(rng))
    return "bed", BED, sheet, p, (w, L)


def _nightstand(rng, H):
    w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.65)
    col = _color(rng, "cabinet")
    tex = WOOD if rng.random() < 0.6 else PLAIN
    p = _cabinet_unit(rng, -w / 2, w / 2, d, 0.0, h, col, tex, _wood(rng) if tex == WOOD else _plain(rng), toe=0.05)
    if rng.random() < 0.5:  # a table lamp on top (part of the nightstand in the labels)
        shade = _color(rng, "lamp_shade")
        p.cyl((0, d / 2, h + 0.02), 0.07, 0.04, _color(rng, "dark"))
        p.cyl((0, d / 2, h + 0.15), 0.012, 0.22, _color(rng, "metal"))
        p.cyl((0, d / 2, h + 0.33), 0.11, 0.16, shade, emissive=True)
    return "nightstand", OTHERFURNITURE, col, p, (w, d)


def _desk(rng, H, small=False):
    w, d = (rng.uniform(0.8, 1.0), rng.uniform(0.5, 0.6)) if small else (rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.75))
    h = rng.uniform(0.72, 0.78)
    col = _color(rng, "cabinet")
    tex = WOOD if rng.random() < 0.6 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    th = rng.uniform(0.025, 0.04)
    p = _Parts()
    p.box((-w / 2, 0, h - th), (w / 2, d, h), col, tex, par)
    side = 1 if rng.random() < 0.5 else -1
    pw = rng.uniform(0.38, 0.45)
    px0, px1 = (w / 2 - pw, w / 2) if side > 0 else (-w / 2, -w / 2 + pw)
    p.box((px0, 0, 0), (px1, d - 0.03, h - th), col * 0.95, tex, par)
    zs = np.linspace(0.03, h - th - 0.02, 4)
    handle = _color(rng, "metal")
    for i in range(3):
        p.box((px0 + 0.005, d - 0.03, zs[i] + 0.004), (px1 - 0.005, d - 0.005, zs[i + 1] - 0.004), col * 0.9, tex, par)
        zc, xc = (zs[i] + zs[i + 1]) / 2, (px0 + px1) / 2
        p.box((xc - 0.05, d - 0.005, zc - 0.008), (xc + 0.05, d + 0.015, zc + 0.008), handle)
    lx = -w / 2 + 0.02 if side > 0 else w / 2 - 0.07
    if rng.random() < 0.5:
        p.box((lx, 0.02, 0), (lx + 0.05, d - 0.02, h - th), col * 0.95, tex, par)  # side panel
    else:
        for ly in (0.03, d - 0.08):
            p.box((lx, ly, 0), (lx + 0.05, ly + 0.05, h - th), col * 0.95, tex, par)
    return "desk", DESK, col, p, (w, d)


def _chair(rng, H):
    col = _color(rng, "chair")
    w, d = rng.uniform(0.42, 0.5), rng.uniform(0.42, 0.5)
    sh, st = rng.uniform(0.43, 0.48), rng.uniform(0.04, 0.07)
    bh = rng.uniform(0.35, 0.5)
    p = _Parts()
    if rng.random() < 0.4:  # office chair: pedestal and star base
        dark = _color(rng, "dark")
        p.cyl((0, d / 2, 0.06), 0.03, 0.12, dark)
        p.box((-0.3, d / 2 - 0.025, 0.02), (0.3, d / 2 + 0.025, 0.06), dark)
        p.box((-0.025, d / 2 - 0.3, 0.02), (0.025, d / 2 + 0.3, 0.06), dark)
        p.cyl((0, d / 2, (0.12 + sh - st) / 2), 0.025, sh - st - 0.12, _color(rng, "metal"))
        p.box((-w / 2, 0, sh - st), (w / 2, d, sh), col, FABRIC, _fabric(rng))
        p.box((-w / 2 + 0.02, 0.0, sh + 0.05), (w / 2 - 0.02, 0.06, sh + bh + 0.1), col, FABRIC, _fabric(rng))
        p.box((-0.03, 0.02, sh), (0.03, 0.05, sh + 0.05), dark)
        return "chair", CHAIR, col, p, (0.6, 0.6)
    tex = WOOD if col.mean() > 0.3 and rng.random() < 0.6 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    lg = rng.uniform(0.03, 0.045)
    for x in (-w / 2, w / 2 - lg):
        for y in (0.0, d - lg):
            p.box((x, y, 0), (x + lg, y + lg, sh - st), col * 0.9, tex, par)
    p.box((-w / 2, 0, sh - st), (w / 2, d, sh), col, tex, par)
    p.box((-w / 2, 0, sh), (-w / 2 + lg, lg, sh + bh), col * 0.9, tex, par)
    p.box((w / 2 - lg, 0, sh), (w / 2, lg, sh + bh), col * 0.9, tex, par)
    p.box((-w / 2 + lg, 0.005, sh + bh * rng.uniform(0.35, 0.6)), (w / 2 - lg, lg - 0.005, sh + bh), col, tex, par)
    if rng.random() < 0.3:  # upholstered seat cushion
        p.box((-w / 2 + 0.02, lg + 0.01, sh), (w / 2 - 0.02, d - 0.02, sh + 0.04), _color(rng, "sofa"), FABRIC, _fabric(rng))
    return "chair", CHAIR, col, p, (w, d)


def _sofa(rng, H, small=False):
    w, d = (rng.uniform(1.2, 1.5), rng.uniform(0.75, 0.85)) if small else (rng.uniform(1.6, 2.4), rng.uniform(0.8, 1.0))
    sh, bh = rng.uniform(0.4, 0.48), rng.uniform(0.75, 0.95)
    aw, ah = rng.uniform(0.12, 0.25), rng.uniform(0.55, 0.68)
    bt = rng.uniform(0.18, 0.26)
    col = _color(rng, "sofa")
    fp = _fabric(rng)
    p = _Parts()
    foot = 0.06
    feet = _color(rng, "dark")
    for x in (-w / 2 + 0.03, w / 2 - 0.07):
        for y in (0.03, d - 0.07):
            p.box((x, y, 0), (x + 0.04, y + 0.04, foot), feet)
    p.box((-w / 2, 0, foot), (-w / 2 + aw, d, ah), col, FABRIC, fp)
    p.box((w / 2 - aw, 0, foot), (w / 2, d, ah), col, FABRIC, fp)
    p.box((-w / 2 + aw, 0, foot), (w / 2 - aw, bt, bh), col, FABRIC, fp)
    p.box((-w / 2 + aw, bt, foot), (w / 2 - aw, d, sh - 0.12), col * 0.92, FABRIC, fp)
    n = 2 if w - 2 * aw < 1.5 else 3
    xs = np.linspace(-w / 2 + aw, w / 2 - aw, n + 1)
    for i in range(n):
        p.box((xs[i] + 0.005, bt, sh - 0.12), (xs[i + 1] - 0.005, d - 0.01, sh), col * 1.03, FABRIC, fp)
        if rng.random() < 0.6:  # back cushions
            p.box((xs[i] + 0.01, bt, sh), (xs[i + 1] - 0.01, bt + 0.12, bh - 0.05), col * 0.97, FABRIC, fp)
    return "sofa", SOFA, col, p, (w, d)


def _table(rng, H, coffee=False, small=False):
    if small:  # side or wall table
        w, d, h = rng.uniform(0.6, 0.9), rng.uniform(0.45, 0.6), rng.uniform(0.6, 0.76)
    elif coffee:
        w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.5, 0.7), rng.uniform(0.38, 0.48)
    else:
        w, d, h = rng.uniform(0.9, 1.6), rng.uniform(0.7, 0.95), rng.uniform(0.72, 0.77)
    col = _color(rng, "wood") if rng.random() < 0.65 else _color(rng, "white" if rng.random() < 0.5 else "dark")
    tex = WOOD if rng.random() < 0.7 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    th = rng.uniform(0.03, 0.05)
    p = _Parts()
    if not coffee and not small and rng.random() < 0.2:  # round pedestal table
        r = min(w, d + 0.2) / 2
        p.cyl((0, r, h - th / 2), r, th, col, tex, par)
        p.cyl((0, r, (h - th) / 2), 0.05, h - th, col * 0.9, tex, par)
        p.cyl((0, r, 0.015), 0.25, 0.03, col * 0.85, tex, par)
        return "table", TABLE, col, p, (2 * r, 2 * r)
    p.box((-w / 2, 0, h - th), (w / 2, d, h), col, tex, par)
    lg = rng.uniform(0.04, 0.07)
    inset = rng.uniform(0.02, 0.08)
    for x in (-w / 2 + inset, w / 2 - inset - lg):
        for y in (inset, d - inset - lg):
            p.box((x, y, 0), (x + lg, y + lg, h - th), col * 0.9, tex, par)
    if coffee and rng.random() < 0.5:  # lower shelf
        p.box((-w / 2 + inset + lg, inset, 0.1), (w / 2 - inset - lg, d - inset, 0.12), col * 0.9, tex, par)
    return "table", TABLE, col, p, (w, d)


def _bookshelf(rng, H, small=False):
    w, d = (rng.uniform(0.45, 0.65), rng.uniform(0.25, 0.3)) if small else (rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.38))
    h = min(rng.uniform(1.4, 2.1), H - 0.2)
    col = _color(rng, "cabinet")
    tex = WOOD if rng.random() < 0.6 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    t = rng.uniform(0.018, 0.025)
    p = _Parts()
    p.box((-w / 2, 0, 0), (-w / 2 + t, d, h), col, tex, par)
    p.box((w / 2 - t, 0, 0), (w / 2, d, h), col, tex, par)
    p.box((-w / 2 + t, 0, h - t), (w / 2 - t, d, h), col, tex, par)
    p.box((-w / 2 + t, 0, 0), (w / 2 - t, d, 0.08), col * 0.9, tex, par)
    p.box((-w / 2 + t, 0, 0.08), (w / 2 - t, 0.012, h - t), col * 0.85, tex, par)
    n = max(3, int((h - 0.1) / rng.uniform(0.3, 0.38)))
    zs = np.linspace(0.08, h - t, n + 1)
    for i in range(n):
        z = zs[i]
        if i > 0:
            p.box((-w / 2 + t, 0.012, z - t / 2), (w / 2 - t, d, z + t / 2), col, tex, par)
        gap = zs[i + 1] - z - t
        x = -w / 2 + t + 0.005
        while x < w / 2 - t - 0.06:
            if rng.random() < 0.3:  # a gap on the shelf
                x += rng.uniform(0.05, 0.2)
                continue
            bw = min(rng.uniform(0.08, 0.25), w / 2 - t - 0.005 - x)
            bh = gap * rng.uniform(0.6, 0.9)
            bd = d * rng.uniform(0.6, 0.9)
            book = _color(rng, "books", dh=0.1, ds=0.3, dv=0.25)
            p.box((x, 0.012, z + t / 2), (x + bw, 0.012 + bd, z + t / 2 + bh), book, BOOKS, (rng.uniform(0.02, 0.04), rng.uniform(0, 100), 0, 0))
            x += bw + 0.002
    return "bookshelf", BOOKSHELF, col, p, (w, d)


def _wardrobe(rng, H):
    col = _color(rng, "cabinet")
    tex = WOOD if rng.random() < 0.5 else PLAIN
    par = _wood(rng) if tex == WOOD else _plain(rng)
    if rng.random() < 0.5:
        w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.5, 0.6), min(rng.uniform(1.8, 2.1), H - 0.15)
    else:  # dresser
        w, d, h = rng.uniform(0.8, 1.4), rng.uniform(0.4, 0.5), rng.uniform(0.7, 1.0)
    p = _cabinet_unit(rng, -w / 2, w / 2, d, 0.0, h, col, tex, par, toe=0.06)
    return "cabinet", CABINET, col, p, (w, d)


def _floor_lamp(rng, H):
    p = _Parts()
    dark, shade = _color(rng, "dark"), _color(rng, "lamp_shade")
    ph, r = rng.uniform(1.3, 1.6), rng.uniform(0.17, 0.25)
    p.cyl((0, r, 0.015), 0.15, 0.03, dark)
    p.cyl((0, r, 0.03 + ph / 2), 0.015, ph, _color(rng, "metal"))
    p.cyl((0, r, 0.03 + ph + 0.12), r, 0.26, shade, emissive=True)
    return "lamp", OTHERFURNITURE, shade, p, (2 * r, 2 * r)


def _ottoman(rng, H):
    col = _color(rng, "sofa")
    p = _Parts()
    s, h = rng.uniform(0.4, 0.65), rng.uniform(0.35, 0.45)
    if rng.random() < 0.4:
        p.cyl((0, s / 2, h / 2), s / 2, h, col, FABRIC, _fabric(rng))
    else:
        p.box((-s / 2, 0, 0.04), (s / 2, s, h), col, FABRIC, _fabric(rng))
        for x in (-s / 2 + 0.02, s / 2 - 0.05):
            for y in (0.02, s - 0.05):
                p.box((x, y, 0), (x + 0.03, y + 0.03, 0.04), _color(rng, "dark"))
    return "ottoman", OTHERFURNITURE, col, p, (s, s)


def _shelf_unit(rng, H):
    metal = rng.random() < 0.5
    col = _color(rng, "metal") if metal else _color(rng, "wood")
    w, d, h = rng.uniform(0.6, 1.0), rng.uniform(0.3, 0.45), rng.uniform(0.8, 1.6)
    p = _Parts()
    post = 0.03
    for x in (-w / 2, w / 2 - post):
        for y in (0.0, d - post):
            p.box((x, y, 0), (x + post, y + post, h), col * 0.85)
    n = int(rng.integers(3, 5))
    for z in np.linspace(0.1, h - 0.02, n):
        p.box((-w / 2 + post, 0.0, z), (w / 2 - post, d, z + 0.02), col, WOOD if not metal else PLAIN, _wood(rng) if not metal else _plain(rng))
    return "shelf unit", OTHERFURNITURE, col, p, (w, d)


# ---------------------------------------------------------------------------------------
# Texture evaluation (vectorised over hit points)
# ---------------------------------------------------------------------------------------


def _hash(a: np.ndarray, b: np.ndarray, c: float | np.ndarray = 0.0) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) of integer lattice coordinates."""
    return np.modf(np.abs(np.sin(a * 12.9898 + b * 78.233 + c * 37.719) * 43758.5453))[0]


def _texture(tex: np.ndarray, params: np.ndarray, u: np.ndarray, v: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """(N, 3) albedo multipliers of N hit points.

    tex (N,) texture kinds, params (N, 4), u, v (N,) texture coordinates [m], phase (N,)
    per-part random phase.
    """
    f = np.ones((tex.shape[0], 3), dtype=np.float32)
    two_pi = 2 * np.pi
    for kind in np.flatnonzero(np.bincount(tex, minlength=8)):
        m = tex == kind
        pu, pv, ph, p = u[m], v[m], phase[m], params[m]
        if kind == PLAIN:
            g = 1 + p[:, 0] * (np.sin(two_pi * pu / 0.53 + ph) * np.sin(two_pi * pv / 0.41 + 1.3 * ph) + 0.5 * np.sin(two_pi * (pu + pv) / 0.17 + ph))
            f[m] = g[:, None]
        elif kind == WOOD:
            ring = np.sin(two_pi * (pv * p[:, 0] + p[:, 2] * np.sin(two_pi * pu * 1.7 + ph) + 0.3 * np.sin(two_pi * pu * 5.3 + 2 * ph)))
            f[m] = (1 - p[:, 1] * (0.5 + 0.5 * ring) ** 3)[:, None]
        elif kind == FABRIC:
            weave = np.sin(two_pi * pu * p[:, 0]) * np.sin(two_pi * pv * p[:, 0])
            f[m] = (1 + p[:, 1] * weave + 0.04 * np.sin(two_pi * pu / 0.23 + ph))[:, None]
        elif kind == TILES:
            su, sv, grout, var = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
            iv = np.floor(pv / sv)
            fu = pu / su + 0.5 * (iv % 2)  # staggered rows (planks, bricks)
            iu = np.floor(fu)
            edge = ((fu - iu) * su < grout) | ((pv / sv - iv) * sv < grout)
            g = 1 + var * (2 * _hash(iu, iv, ph) - 1)
            f[m] = np.where(edge, 0.6, g)[:, None]
        elif kind == GLASS:
            f[m] = (0.93 + 0.07 * np.sin(two_pi * pv * 0.7 + ph))[:, None]
        elif kind == BOOKS:
            w = p[:, 0]
            x = pu / w + p[:, 1]
            ib = np.floor(x + 0.3 * _hash(np.floor(x), p[:, 1]))
            col = np.stack([0.45 + 0.9 * _hash(ib, p[:, 1], k) for k in (1.0, 2.0, 3.0)], 1)
            seam = np.abs(x - np.round(x)) < 0.06
            f[m] = np.where(seam[:, None], 0.35, col)
        elif kind == SPECKLE:
            cell = p[:, 0]
            g = 1 + p[:, 1] * (_hash(np.floor(pu / cell), np.floor(pv / cell), ph) - 0.5)
            f[m] = g[:, None]
        elif kind == ART:
            a = two_pi * (pu * p[:, 0] + pv * p[:, 1]) + p[:, 2]
            b = two_pi * (pu * p[:, 1] - pv * p[:, 0] * 0.7) + p[:, 3]
            f[m] = np.stack([0.55 + 0.45 * np.sin(a), 0.55 + 0.45 * np.sin(b + 1.0), 0.55 + 0.45 * np.sin(a * 0.6 + b + 2.0)], 1)
    return f


# ---------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------

_PLAN_WALL_EXTRA = 0.15  # planning margins beyond the hard clearances absorb spline corner cutting
_PLAN_FURNITURE_EXTRA = 0.25
_GRID = 0.05  # free-space grid resolution [m]


class SyntheticWorld:
    """A seeded furnished room that renders posed RGB-D frames with ground truth.

    seed: any non-negative int; the same seed gives bitwise-identical objects,
    trajectories, frames and ground-truth points. width, height: image size [px].
    config: generator knobs (``SyntheticConfig()`` by default).
    """

    def __init__(self, seed: int, width: int = 320, height: int = 240, config: SyntheticConfig | None = None):
        self.seed = int(seed)
        self.config = config or SyntheticConfig()
        f = self.config.focal_per_width * width
        self.intrinsics = CameraIntrinsics(f, f, (width - 1) / 2, (height - 1) / 2, width, height)
        rng = np.random.default_rng([self.seed, 1])
        cfg = self.config
        self.size = np.array([rng.uniform(*cfg.room_x_range), rng.uniform(*cfg.room_y_range), rng.uniform(*cfg.room_height_range)])
        self.objects: list[WorldObject] = []
        self._boxes: list[tuple[np.ndarray, np.ndarray]] = []  # occupied / reserved world AABBs
        self._footprints: list[tuple[np.ndarray, np.ndarray]] = []  # 2D AABBs the camera must avoid
        self._build_shell(rng)
        self._furnish(rng)
        self._build_scene(rng)
        self._gt: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._trajectory_attempts = 0  # of the last trajectory() call (for diagnostics)
        K = self.intrinsics
        v, u = np.mgrid[0:height, 0:width]
        self._rays_cam = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones(u.shape)], -1).reshape(-1, 3).astype(np.float32)
        self._ray_norm = np.linalg.norm(self._rays_cam, axis=1)
        self._tri_part = self._tri_part.astype(np.int32)

    # -- layout --------------------------------------------------------------------------

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Room min and max corners (3,) float64 [m]: (0, 0, 0) and (Lx, Ly, height)."""
        return np.zeros(3), self.size.copy()

    def _wall_frame(self, wall: int) -> tuple[np.ndarray, float, float]:
        """Origin (2,), yaw [rad] and length [m] of a wall's frame (x along the wall, y into the room)."""
        Lx, Ly = self.size[:2]
        return [(np.array([0.0, 0.0]), 0.0, Lx), (np.array([Lx, 0.0]), np.pi / 2, Ly),
                (np.array([Lx, Ly]), np.pi, Lx), (np.array([0.0, Ly]), 1.5 * np.pi, Ly)][wall]  # fmt: skip

    def _add(self, name, label, rgb, parts: _Parts | list[_Part], position, yaw, wall=-1, footprint=True) -> WorldObject:
        R = _rot_z(yaw)
        t = np.asarray(position, float)
        plist = parts.parts if isinstance(parts, _Parts) else parts
        world = [q.moved(R, t) for q in plist]
        verts = np.concatenate([q.verts for q in world])
        lo, hi = verts.min(0), verts.max(0)
        obj = WorldObject(
            name, int(label), len(self.objects) + 1, tuple(float(x) for x in t), float(yaw),
            tuple(float(x) for x in lo), tuple(float(x) for x in hi), int(wall),
            tuple(int(round(c * 255)) for c in np.clip(rgb, 0, 1)), world,
        )  # fmt: skip
        self.objects.append(obj)
        if footprint:
            self._boxes.append((lo, hi))
            self._footprints.append((lo[:2].copy(), hi[:2].copy()))
        return obj

    def _build_shell(self, rng) -> None:
        Lx, Ly, H = self.size
        floor_kind = rng.choice(["floor_wood", "floor_tile", "floor_carpet"], p=[0.45, 0.35, 0.2])
        fcol = _color(rng, floor_kind)
        if floor_kind == "floor_wood":
            fpar = (rng.uniform(0.9, 1.5), rng.uniform(0.12, 0.2), 0.004, rng.uniform(0.05, 0.12))
        elif floor_kind == "floor_tile":
            s = rng.uniform(0.3, 0.6)
            fpar = (s, s, rng.uniform(0.004, 0.008), rng.uniform(0.02, 0.06))
        else:
            fpar = _fabric(rng)
        ftex = FABRIC if floor_kind == "floor_carpet" else TILES
        wcol = _color(rng, "wall", ds=0.2, dv=0.05)
        wpar = _plain(rng)

        def quad(corners, rgb, tex, params, u, v):
            c = np.asarray(corners, float)
            p = _Part("box", c, np.array([[0, 1, 2], [0, 2, 3]]), c.mean(0), np.eye(3), np.zeros(3),
                      np.asarray(rgb, float), tex, tuple(params), np.asarray(u, float), np.asarray(v, float), occluder=False)  # fmt: skip
            return [p]

        # Corners ordered so that the normals face into the room (the orientation is fixed below).
        floor = quad([[0, 0, 0], [Lx, 0, 0], [Lx, Ly, 0], [0, Ly, 0]], fcol, ftex, fpar, [1, 0, 0], [0, 1, 0])
        ceiling = quad([[0, 0, H], [0, Ly, H], [Lx, Ly, H], [Lx, 0, H]], _color(rng, "ceiling"), PLAIN, _plain(rng), [1, 0, 0], [0, 1, 0])
        self._add("floor", FLOOR, fcol, floor, (0, 0, 0), 0.0, footprint=False)
        for w in range(4):
            o, yaw, L = self._wall_frame(w)
            a = np.array([math.cos(yaw), math.sin(yaw), 0.0])
            o3 = np.array([o[0], o[1], 0.0])
            corners = [o3, o3 + L * a, o3 + L * a + [0, 0, H], o3 + [0, 0, H]]
            self._add("wall", WALL, wcol, quad(corners, wcol, PLAIN, wpar, a, [0, 0, 1]), (0, 0, 0), 0.0, wall=w, footprint=False)
        self._add("ceiling", CEILING, self.objects[-1].parts[0].rgb, ceiling, (0, 0, 0), 0.0, footprint=False)
        centre = self.size / 2
        for obj in self.objects:  # make every shell quad face the room centre
            q = obj.parts[0]
            a, b, c = q.verts[q.tris[0]]
            if np.dot(np.cross(b - a, c - a), centre - a) < 0:
                q.tris = q.tris[:, [0, 2, 1]]

    def _fits(self, lo, hi, margin=0.02, floor_margin=None) -> bool:
        """True if the world AABB (lo, hi) lies in the room and clear of every occupied box."""
        if (lo < -1e-6).any() or (hi > self.size + 1e-6).any():
            return False
        for blo, bhi in self._boxes:
            m = margin
            if floor_margin is not None and blo[2] < 0.3:
                m = floor_margin
            if (lo[:2] < bhi[:2] + m).all() and (hi[:2] > blo[:2] - m).all() and lo[2] < bhi[2] + 0.02 and hi[2] > blo[2] - 0.02:
                return False
        return True

    def _walkable(self, extra_footprints: list, min_area: float | None = None) -> bool:
        """True if the camera keeps a connected free area of reasonable size with these footprints added."""
        free = self._free_grid(self._footprints + extra_footprints, _PLAN_WALL_EXTRA, _PLAN_FURNITURE_EXTRA)
        lab, n = ndimage.label(free)
        if n == 0:
            return False
        area = np.bincount(lab.ravel())[1:].max() * _GRID**2
        return area >= (max(2.5, 0.15 * self.size[0] * self.size[1]) if min_area is None else min_area)

    def _try_place(self, rng, members, x_extent, tries=60, wall_only=True, corner=False, free_margin=None, jitter=0.0,
                   inner=0.9, walk_area=None):  # fmt: skip
        """Place a group of (name, label, rgb, parts, dx) members sharing one local frame.

        Against a wall (x along it, y into the room) or, with ``wall_only=False``, free-standing
        with ``free_margin`` of clear floor around it. Returns the placed objects or [].
        """
        x0, x1 = x_extent
        lengths = np.array([self._wall_frame(w)[2] for w in range(4)])
        for _ in range(tries):
            if wall_only:
                w = int(rng.choice(4, p=lengths / lengths.sum()))
                o, yaw, L = self._wall_frame(w)
                if L < x1 - x0 + 0.1:
                    continue
                if corner or rng.random() < 0.25:
                    s = -x0 + 0.005 if rng.random() < 0.5 else L - x1 - 0.005
                else:
                    s = rng.uniform(-x0 + 0.02, L - x1 - 0.02)
                a = np.array([math.cos(yaw), math.sin(yaw)])
                origin = np.array([*(o + s * a + 0.002 * np.array([-a[1], a[0]])), 0.0])
            else:
                w = -1
                yaw = rng.integers(4) * np.pi / 2 + rng.uniform(-jitter, jitter)
                origin = np.array([rng.uniform(0, self.size[0]), rng.uniform(0, self.size[1]), 0.0])
            R = _rot_z(yaw)
            placed = []
            for name, label, rgb, parts, dx in members:
                t = origin + R @ np.array([dx[0], dx[1], 0.0]) if isinstance(dx, tuple) else origin + R @ np.array([dx, 0.0, 0.0])
                dyaw = dx[2] if isinstance(dx, tuple) else 0.0
                Rm = _rot_z(yaw + dyaw)
                verts = _matmul_rows(np.concatenate([q.verts for q in parts.parts]), Rm.T) + t
                placed.append((name, label, rgb, parts, t, yaw + dyaw, verts.min(0), verts.max(0)))
            ok = True
            for *_, lo, hi in placed:
                if wall_only:
                    ok &= self._fits(lo, hi)
                else:
                    ok &= (lo[:2] >= inner).all() and (hi[:2] <= self.size[:2] - inner).all()
                    ok &= self._fits(lo, hi, margin=0.02, floor_margin=free_margin)
                if not ok:
                    break
            if not ok:
                continue
            if not self._walkable([(lo[:2], hi[:2]) for *_, lo, hi in placed], walk_area):
                continue
            return [self._add(name, label, rgb, parts, t, yw, wall=w) for name, label, rgb, parts, t, yw, lo, hi in placed]
        return []

    def _place_wall_mounted(self, rng, name, label, rgb, parts, width, tries=60, reserve=None) -> WorldObject | None:
        """Place a wall-mounted object of ``width`` (centred local x) on a random wall."""
        lengths = np.array([self._wall_frame(w)[2] for w in range(4)])
        for _ in range(tries):
            w = int(rng.choice(4, p=lengths / lengths.sum()))
            o, yaw, L = self._wall_frame(w)
            if L < width + 0.5:
                continue
            s = rng.uniform(width / 2 + 0.15, L - width / 2 - 0.15)
            a = np.array([math.cos(yaw), math.sin(yaw)])
            origin = np.array([*(o + s * a), 0.0])
            R = _rot_z(yaw)
            verts = _matmul_rows(np.concatenate([q.verts for q in parts.parts]), R.T) + origin
            lo, hi = verts.min(0), verts.max(0)
            if not self._fits(lo, hi):
                continue
            if reserve is not None:  # keep the floor in front of a door clear of furniture
                rlo = origin + R @ np.array([-reserve[0] / 2, 0, 0])
                rhi = origin + R @ np.array([reserve[0] / 2, reserve[1], 0])
                rlo, rhi = np.minimum(rlo, rhi), np.maximum(rlo, rhi)
                rhi[2] = 2.1
                if not self._fits(rlo, rhi):
                    continue
            obj = self._add(name, label, rgb, parts, origin, yaw, wall=w, footprint=False)
            self._boxes.append((lo, hi))
            if reserve is not None:
                self._boxes.append((rlo, rhi))
            return obj
        return None

    def _furnish(self, rng) -> None:
        """Place the furniture; one of each kind first, optional extras afterwards, then rescue
        smaller variants of any ScanNet-20 class that did not fit."""
        H = self.size[2]
        n_doors = 1 if rng.random() < 0.6 else 2
        n_windows = 1 if rng.random() < 0.5 else 2
        self._place_door(rng)
        self._place_window(rng)
        # Bathroom corner: the tub in a corner with its shower curtain, toilet and sink beside it.
        name, label, col, tub, (L, W, h) = _bathtub(rng, H)
        tub_m = [(name, label, col, tub, 0.0), _shower_curtain(rng, H, L, W, h) + (0.0,)]
        tname, tlabel, tcol, toilet, (tw, td) = _toilet(rng, H)
        sname, slabel, scol, sink, (sw, sd) = _pedestal_sink(rng, H)
        side = 1 if rng.random() < 0.5 else -1
        g1 = rng.uniform(0.1, 0.3)
        g2 = rng.uniform(0.15, 0.35)
        tx = side * (L / 2 + g1 + tw / 2)
        sx = side * (L / 2 + g1 + tw + g2 + sw / 2)
        group = tub_m + [(tname, tlabel, tcol, toilet, tx), (sname, slabel, scol, sink, sx)]
        ext = sorted((-side * L / 2, sx + side * sw / 2))
        if not self._try_place(rng, group, tuple(ext), corner=True):
            self._try_place(rng, tub_m, (-L / 2, L / 2), corner=True)
            self._try_place(rng, [(tname, tlabel, tcol, toilet, 0.0)], (-tw / 2, tw / 2))
            self._try_place(rng, [(sname, slabel, scol, sink, 0.0)], (-sw / 2, sw / 2))
        # Kitchen corner.
        members, ext = _kitchen(rng, H)
        if not self._try_place(rng, members, ext, corner=True):
            fridge = [m for m in members if m[1] == REFRIGERATOR]
            rest = [m for m in members if m[1] != REFRIGERATOR]
            xs = np.concatenate([np.concatenate([q.verts for q in m[3].parts])[:, 0] for m in rest])
            self._try_place(rng, rest, (xs.min(), xs.max()))
            fw = np.ptp(np.concatenate([q.verts for q in fridge[0][3].parts])[:, 0])
            self._try_place(rng, [fridge[0][:4] + (0.0,)], (-fw / 2, fw / 2))
        # Sofa with a coffee table in front.
        name, label, col, sofa, (w, d) = _sofa(rng, H)
        group = [(name, label, col, sofa, 0.0)]
        if rng.random() < 0.85:
            tn, tl, tc, table, (tw, td) = _table(rng, H, coffee=True)
            group.append((tn, tl, tc, table, (0.0, d + rng.uniform(0.3, 0.5), 0.0)))
        if not self._try_place(rng, group, (-w / 2, w / 2)):
            self._try_place(rng, group[:1], (-w / 2, w / 2))
        # Bed with nightstands.
        name, label, col, bed, (w, L) = _bed(rng, H)
        group = [(name, label, col, bed, 0.0)]
        x0, x1 = -w / 2, w / 2
        for side in (-1, 1):
            if rng.random() < 0.75:
                n, lab, c, ns, (nw, nd) = _nightstand(rng, H)
                dx = side * (w / 2 + 0.05 + nw / 2)
                group.append((n, lab, c, ns, dx))
                x0, x1 = min(x0, dx - nw / 2), max(x1, dx + nw / 2)
        if not self._try_place(rng, group, (x0, x1)):
            self._try_place(rng, group[:1], (-w / 2, w / 2))
        # Desk with its chair pulled out, facing the desk.
        name, label, col, desk, (w, d) = _desk(rng, H)
        cn, cl, cc, chair, (cw, cd) = _chair(rng, H)
        cy = d + rng.uniform(-0.15, 0.1) + cd
        group = [(name, label, col, desk, 0.0), (cn, cl, cc, chair, (rng.uniform(-0.2, 0.2), cy, np.pi + rng.uniform(-0.3, 0.3)))]
        if not self._try_place(rng, group, (-w / 2, w / 2)):
            self._try_place(rng, group[:1], (-w / 2, w / 2))
        for builder in (_bookshelf, _wardrobe):
            name, label, col, p, (w, d) = builder(rng, H)
            self._try_place(rng, [(name, label, col, p, 0.0)], (-w / 2, w / 2))
        # Dining table with chairs, free-standing in the room centre.
        name, label, col, table, (w, d) = _table(rng, H)
        group = [(name, label, col, table, 0.0)]
        chair_args = _chair(rng, H)
        n_chairs = int(rng.integers(2, 5))
        for k in range(n_chairs):
            cn, cl, cc, chair, (cw, cd) = chair_args if rng.random() < 0.8 else _chair(rng, H)
            per_side = (n_chairs + 1 - k % 2) // 2
            slot = k // 2
            x = (0.0 if per_side == 1 else (slot - 0.5) * w / 2) + rng.uniform(-0.05, 0.05)
            gap = rng.uniform(-0.12, 0.1)
            if k % 2 == 0:  # far side, facing -y (the table)
                group.append((cn, cl, cc, chair, (x, d + gap + cd, np.pi + rng.uniform(-0.2, 0.2))))
            else:
                group.append((cn, cl, cc, chair, (x, -gap - cd, rng.uniform(-0.2, 0.2))))
        if not self._try_place(rng, group, (-w / 2, w / 2), wall_only=False, free_margin=0.9, jitter=0.15):
            self._try_place(rng, group[:1], (-w / 2, w / 2), wall_only=False, free_margin=0.9, jitter=0.15)
        # Optional extras.
        for _ in range(n_doors - 1):
            self._place_door(rng)
        for _ in range(n_windows - 1):
            self._place_window(rng)
        for _ in range(int(rng.integers(1, 4))):
            builder = [_floor_lamp, _ottoman, _shelf_unit][int(rng.integers(3))]
            name, label, col, p, (w, d) = builder(rng, H)
            if not self._try_place(rng, [(name, label, col, p, 0.0)], (-w / 2, w / 2), tries=30):
                self._try_place(rng, [(name, label, col, p, 0.0)], (-w / 2, w / 2), tries=30, wall_only=False, free_margin=0.8, jitter=0.4)
        # Rescue: smaller variants of the classes that did not fit anywhere.
        rescue = {
            SOFA: lambda: _sofa(rng, H, small=True),
            TABLE: lambda: _table(rng, H, small=True),
            CHAIR: lambda: _chair(rng, H),
            OTHERFURNITURE: lambda: [_nightstand, _floor_lamp, _ottoman][int(rng.integers(3))](rng, H),
            DESK: lambda: _desk(rng, H, small=True),
            BED: lambda: _bed(rng, H, small=True),
            BOOKSHELF: lambda: _bookshelf(rng, H, small=True),
            CABINET: lambda: _wardrobe(rng, H),
            REFRIGERATOR: lambda: _fridge(rng, H),
            TOILET: lambda: _toilet(rng, H),
            SINK: lambda: _pedestal_sink(rng, H),
        }
        for label, builder in rescue.items():
            if label in {o.label for o in self.objects}:
                continue
            name, lab, col, p, (w, d) = builder()
            if not self._try_place(rng, [(name, lab, col, p, 0.0)], (-w / 2, w / 2), tries=80, walk_area=1.5):
                self._try_place(rng, [(name, lab, col, p, 0.0)], (-w / 2, w / 2), tries=80, wall_only=False,
                                free_margin=0.5, jitter=0.3, inner=0.55, walk_area=1.5)  # fmt: skip
        for _ in range(int(rng.integers(1, 4))):
            name, label, col, p = _picture(rng, H)
            w = np.ptp(np.concatenate([q.verts for q in p.parts])[:, 0])
            self._place_wall_mounted(rng, name, label, col, p, w)

    def _place_door(self, rng) -> None:
        name, label, col, p, width = _door(rng, self.size[2])
        self._place_wall_mounted(rng, name, label, col, p, width, reserve=(width + 0.2, 0.9))

    def _place_window(self, rng) -> None:
        """A window with a curtain panel on either side (just the window if the curtains do not fit)."""
        H = self.size[2]
        name, label, col, p, (w, sill, top) = _window(rng, H)
        members = [(name, label, col, p, 0.0)]
        ccol = _color(rng, "curtain")
        ctop = min(top + rng.uniform(0.08, 0.2), H - 0.05)
        cbot = 0.01 if rng.random() < 0.7 else sill - rng.uniform(0.05, 0.15)
        pw = rng.uniform(0.3, 0.55)
        for side in (-1, 1):
            x0, x1 = sorted((side * (w / 2 + 0.01), side * (w / 2 + 0.01 + pw)))
            members.append(_curtain(rng, H, x0, x1, ctop, cbot, ccol) + (0.0,))
        if not self._try_place(rng, members, (-w / 2 - pw - 0.02, w / 2 + pw + 0.02)):
            self._try_place(rng, members[:1], (-w / 2 - 0.05, w / 2 + 0.05))

    # -- scene ---------------------------------------------------------------------------

    def _build_scene(self, rng) -> None:
        parts = [q for obj in self.objects for q in obj.parts]
        part_obj = np.concatenate([[i] * len(obj.parts) for i, obj in enumerate(self.objects)]).astype(np.int64)
        verts, tris, tri_part, off = [], [], [], 0
        for k, q in enumerate(parts):
            verts.append(q.verts)
            tris.append(q.tris + off)
            tri_part.append(np.full(len(q.tris), k))
            off += len(q.verts)
        self._parts = parts
        mesh = o3d.t.geometry.TriangleMesh()
        mesh.vertex.positions = o3d.core.Tensor(np.concatenate(verts).astype(np.float32))
        mesh.triangle.indices = o3d.core.Tensor(np.concatenate(tris).astype(np.int32))
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(mesh)
        self._tri_part = np.concatenate(tri_part)
        P = len(parts)
        # Per-part tables; index P (the last row) stands for "no hit".
        labels = np.array([self.objects[i].label for i in part_obj] + [0], dtype=np.uint16)
        inst = np.array([self.objects[i].instance for i in part_obj] + [0], dtype=np.uint16)
        self._part_label, self._part_inst = labels, inst
        self._part_rgb = np.array([q.rgb for q in parts] + [np.zeros(3)], dtype=np.float32)
        self._part_tex = np.array([q.tex for q in parts] + [PLAIN], dtype=np.int8)
        self._part_params = np.array([q.params for q in parts] + [(0.0, 0, 0, 0)], dtype=np.float32)
        self._part_u = np.array([q.u for q in parts] + [np.zeros(3)], dtype=np.float32)
        self._part_v = np.array([q.v for q in parts] + [np.zeros(3)], dtype=np.float32)
        self._part_phase = rng.uniform(0, 2 * np.pi, P + 1).astype(np.float32)
        self._part_emissive = np.array([q.emissive for q in parts] + [True])
        # Lighting of this world: ambient, a sun-like directional light and a ceiling light.
        self._ambient = np.float32(rng.uniform(0.3, 0.42))
        d = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
        self._sun = (d / np.linalg.norm(d) * rng.uniform(0.25, 0.4)).astype(np.float32)
        lamp = [rng.uniform(0.3, 0.7) * self.size[0], rng.uniform(0.3, 0.7) * self.size[1], self.size[2] - 0.05]
        self._lamp = np.array(lamp, dtype=np.float32)
        self._lamp_power = np.float32(rng.uniform(0.35, 0.55))
        self._white_balance = (1 + rng.uniform(-0.05, 0.05, 3)).astype(np.float32)
        self._P = P

    # -- rendering -----------------------------------------------------------------------

    def render(self, T_world_camera: np.ndarray, stamp_ns: int = 0, index: int = 0) -> SyntheticView:
        """One frame seen from ``T_world_camera`` (4, 4) float64 (optical frame), stamped ``stamp_ns``.

        index: seeds the frame's noise together with the world seed (same index, same noise).
        Returns a ``SyntheticView``; see its docstring for the images.
        """
        cfg, K = self.config, self.intrinsics
        Hh, Ww = K.height, K.width
        T = np.asarray(T_world_camera, dtype=np.float64)
        R, t = T[:3, :3].astype(np.float32), T[:3, 3].astype(np.float32)
        dirs = _matmul_rows(self._rays_cam, R.T)
        rays = np.empty((dirs.shape[0], 6), dtype=np.float32)
        rays[:, :3] = t
        rays[:, 3:] = dirs
        hit = self._scene.cast_rays(o3d.core.Tensor(rays), nthreads=0)
        z = hit["t_hit"].numpy()  # rays have z = 1 in the camera, so t is the depth
        hitmask = np.isfinite(z)
        allhit = bool(hitmask.all())
        prim = hit["primitive_ids"].numpy()
        if allhit:  # the room is closed: normally every ray hits
            part = self._tri_part[prim]
        else:
            part = np.full(z.shape, self._P, dtype=np.int32)
            part[hitmask] = self._tri_part[prim[hitmask]]
            z = np.where(hitmask, z, np.float32(0))
        n = hit["primitive_normals"].numpy()
        rng = np.random.default_rng([self.seed, int(index), 7])

        # Colour: albedo x texture x shading.
        pts = dirs * z[:, None]
        pts += t
        ndotd = np.einsum("ij,ij->i", n, dirs)
        n = n * np.where(ndotd > 0, np.float32(-1), np.float32(1))[:, None]  # shade the side the camera sees
        u = np.einsum("ij,ij->i", pts, self._part_u[part])
        v = np.einsum("ij,ij->i", pts, self._part_v[part])
        albedo = self._part_rgb[part] * _texture(self._part_tex[part], self._part_params[part], u, v, self._part_phase[part])
        to_lamp = self._lamp - pts
        r2 = np.einsum("ij,ij->i", to_lamp, to_lamp)
        lamp = np.maximum(np.einsum("ij,ij->i", n, to_lamp), 0) * (self._lamp_power / (np.sqrt(r2) * (1 + 0.08 * r2)))
        shade = np.maximum(n[:, 0] * self._sun[0] + n[:, 1] * self._sun[1] + n[:, 2] * self._sun[2], 0) + lamp + self._ambient
        shade[self._part_emissive[part]] = 1.0
        color = albedo * (shade * 255)[:, None] * self._white_balance
        if cfg.noise and cfg.color_noise > 0:
            color += rng.standard_normal(color.shape, dtype=np.float32) * np.float32(cfg.color_noise)
        color = np.clip(color, 0, 255, out=color).astype(np.uint8).reshape(Hh, Ww, 3)

        # Depth: clean z cut to the sensor range, then the noise model.
        zc = np.where(z <= cfg.max_depth, z, np.float32(0)).reshape(Hh, Ww)
        if cfg.noise:
            # Axial noise of a structured-light sensor (Kinect), Nguyen, Izadi & Lovell 2012,
            # "Modeling Kinect Sensor Noise for Improved 3D Reconstruction and Tracking":
            # sigma_z = 0.0012 + 0.0019 (z - 0.4)^2 m.
            sigma = np.float32(0.0019) * (zc - np.float32(0.4)) ** 2 + np.float32(0.0012)
            depth = zc + rng.standard_normal(zc.shape, dtype=np.float32) * sigma
            # Dropouts: at depth discontinuities (the projector's shadow and mixed pixels) ...
            jump = np.zeros_like(zc)
            dx = np.abs(zc[:, 1:] - zc[:, :-1])
            dy = np.abs(zc[1:] - zc[:-1])
            np.maximum(jump[:, 1:], dx, out=jump[:, 1:])
            np.maximum(jump[:, :-1], dx, out=jump[:, :-1])
            np.maximum(jump[1:], dy, out=jump[1:])
            np.maximum(jump[:-1], dy, out=jump[:-1])
            edge = jump > np.float32(0.03) + np.float32(0.03) * zc
            # ... at grazing angles between ray and surface (probability linear in the cosine) ...
            cosang = (np.abs(ndotd) / self._ray_norm).reshape(Hh, Ww)
            c0, c1 = np.cos(np.radians(cfg.grazing_angle_deg)).astype(np.float32)
            p_drop = np.clip((c0 - cosang) / (c0 - c1), 0, 1)
            p_drop[edge] = np.maximum(p_drop[edge], cfg.edge_dropout)
            np.maximum(p_drop, np.float32(cfg.random_dropout), out=p_drop)  # ... and at random
            drop = rng.random(zc.shape, dtype=np.float32) < p_drop
            drop |= (zc <= 0) | (depth < cfg.min_depth) | (depth > cfg.max_depth)
            depth[drop] = 0.0
            if cfg.depth_quantum > 0:
                depth = np.round(depth / np.float32(cfg.depth_quantum)) * np.float32(cfg.depth_quantum)
            depth = depth.astype(np.float32)
        else:
            depth = zc.copy()
        labels = self._part_label[part].reshape(Hh, Ww)
        instances = self._part_inst[part].reshape(Hh, Ww)
        frame = RGBDFrame(color=color, depth=depth, intrinsics=K, T_world_camera=T, stamp_ns=stamp_ns, labels=labels)
        return SyntheticView(frame=frame, instances=instances, depth_clean=zc)

    # -- trajectory ----------------------------------------------------------------------

    def _free_grid(self, footprints, wall_extra: float, furniture_extra: float) -> np.ndarray:
        """(nx, ny) bool grid of camera positions (cell centres, ``_GRID`` m) clear of walls and footprints."""
        cfg = self.config
        nx, ny = int(self.size[0] / _GRID), int(self.size[1] / _GRID)
        xs = (np.arange(nx) + 0.5) * _GRID
        ys = (np.arange(ny) + 0.5) * _GRID
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        wall = np.minimum(np.minimum(X, self.size[0] - X), np.minimum(Y, self.size[1] - Y))
        free = wall >= cfg.wall_clearance + wall_extra
        m = cfg.furniture_clearance + furniture_extra
        for lo, hi in footprints:
            free &= ~((X > lo[0] - m) & (X < hi[0] + m) & (Y > lo[1] - m) & (Y < hi[1] + m))
        return free

    def camera_is_free(self, xy: np.ndarray) -> np.ndarray:
        """(N,) bool: positions xy (N, 2) [m] keep the configured clearances from walls and furniture."""
        cfg = self.config
        xy = np.atleast_2d(xy)
        wall = np.minimum(np.minimum(xy[:, 0], self.size[0] - xy[:, 0]), np.minimum(xy[:, 1], self.size[1] - xy[:, 1]))
        ok = wall >= cfg.wall_clearance - 1e-9
        m = cfg.furniture_clearance
        for lo, hi in self._footprints:
            ok &= ~((xy[:, 0] > lo[0] - m) & (xy[:, 0] < hi[0] + m) & (xy[:, 1] > lo[1] - m) & (xy[:, 1] < hi[1] + m))
        return ok

    def _path(self, rng, length: float, sigma: float, radius: float) -> np.ndarray:
        """A smooth path (M, 2) [m] sampled about every 2 cm through the free space, usually longer
        than ``length`` m; ``sigma`` [m]: Gaussian smoothing along the path; ``radius`` [m]: the
        smallest turning radius."""
        free = self._free_grid(self._footprints, _PLAN_WALL_EXTRA, _PLAN_FURNITURE_EXTRA)
        lab, n = ndimage.label(free)
        if n == 0:  # cramped room: fall back to the hard clearances
            free = self._free_grid(self._footprints, 0.02, 0.02)
            lab, n = ndimage.label(free)
            if n == 0:
                raise RuntimeError(f"world {self.seed} has no free space for the camera")
        big = np.argmax(np.bincount(lab.ravel())[1:]) + 1
        cells = np.argwhere(lab == big)
        centres = (cells + 0.5) * _GRID

        def clear(a, b):
            k = max(2, int(np.linalg.norm(b - a) / (_GRID / 2)) + 1)
            s = a + np.linspace(0, 1, k)[:, None] * (b - a)
            ij = np.clip((s / _GRID).astype(int), 0, np.array(free.shape) - 1)
            return bool(free[ij[:, 0], ij[:, 1]].all())

        way = [centres[rng.integers(len(centres))]]
        heading = rng.uniform(0, 2 * np.pi)
        total = 0.0
        margin = 0.2 * length + 2.0
        fails = 0
        while total < length + margin:
            if fails < 8:
                cand = centres[rng.integers(len(centres), size=48)]
            else:  # stuck (a dead end): every cell nearby
                near = np.linalg.norm(centres - way[-1], axis=1) < 1.5
                cand = centres[near]
            d = cand - way[-1]
            dist = np.linalg.norm(d, axis=1)
            turn = np.abs((np.arctan2(d[:, 1], d[:, 0]) - heading + np.pi) % (2 * np.pi) - np.pi)
            best = None
            # Prefer gentle turns: a U-turn leaves a cusp in the smoothed path.
            max_turn = np.radians(100 if fails < 4 else 150 if fails < 8 else 180)
            min_dist = 0.6 if fails < 8 else 0.15
            for k in np.argsort(turn + rng.uniform(0, 0.6, len(turn))):
                if dist[k] < min_dist or dist[k] > 3.5 or turn[k] > max_turn:
                    continue
                if clear(way[-1], cand[k]):
                    best = k
                    break
            if best is None:
                fails += 1
                if fails > 20:
                    raise RuntimeError(f"world {self.seed}: the camera path is stuck at {way[-1]}")
                continue
            fails = 0
            heading = math.atan2(d[best, 1], d[best, 0])
            total += dist[best]
            way.append(cand[best])
        # Follow the waypoints like a walker: constant step, turning rate bounded by a minimum
        # turning radius, so the path has no cusps even where the polyline turns sharply.
        ds = 0.02
        max_turn_step = ds / radius
        pos = way[0].astype(np.float64)
        d0 = way[1] - pos
        psi = math.atan2(d0[1], d0[0])
        out = [pos.copy()]
        for target in way[1:]:
            budget = int(3 * np.linalg.norm(target - pos) / ds) + 200  # give up a waypoint we orbit
            while budget > 0:
                d = target - pos
                if d @ d < 0.25**2:
                    break
                err = (math.atan2(d[1], d[0]) - psi + np.pi) % (2 * np.pi) - np.pi
                psi += min(max(err, -max_turn_step), max_turn_step)
                pos = pos + ds * np.array([math.cos(psi), math.sin(psi)])
                out.append(pos.copy())
                budget -= 1
        return ndimage.gaussian_filter1d(np.array(out), sigma / ds, axis=0, mode="nearest")

    def trajectory(self, num_frames: int) -> list[np.ndarray]:
        """``num_frames`` camera poses T_world_camera (4, 4) float64, one per frame period.

        A smooth walk through the free space at a constant speed (``speed_range``), the
        camera height and the downward pitch varying smoothly within their ranges, the view
        direction following the walking direction while sweeping left and right (looking
        around), with a little roll. Seeded by the world seed only; the walk is planned for
        its length, so calls with different ``num_frames`` may give different walks (take
        prefixes of one long call for nested sequences).
        """
        cfg = self.config
        rng = np.random.default_rng([self.seed, 2])
        speed = rng.uniform(*cfg.speed_range)
        dt = cfg.frame_period_ns * 1e-9
        step = speed * dt
        need = step * max(num_frames - 1, 1)
        phases = rng.uniform(0, 2 * np.pi, 8)
        periods = np.array([rng.uniform(12, 20), rng.uniform(5, 8), rng.uniform(10, 18), rng.uniform(3, 5), rng.uniform(5, 9), rng.uniform(3, 6)])
        sweep, wiggle = np.radians(rng.uniform(35, 70)), np.radians(rng.uniform(5, 12))
        xy = None
        for attempt in range(30):
            # Tighter turns in late attempts: a cramped free space leaves little room to swing out.
            path = self._path(rng, need, 0.1, 0.25 if attempt < 15 else 0.12)
            seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
            s = np.concatenate([[0], np.cumsum(seg)])
            si = np.arange(num_frames) * step
            if s[-1] < si[-1]:
                continue
            cand = np.stack([np.interp(si, s, path[:, 0]), np.interp(si, s, path[:, 1])], 1)
            if self.camera_is_free(cand).all():
                xy = cand
                self._trajectory_attempts = attempt + 1
                break
        if xy is None:
            raise RuntimeError(f"world {self.seed}: no collision-free camera path found")
        # Walking direction, from the path well ahead (also at the last frame).
        ahead = np.stack([np.interp(si + 0.3, s, path[:, 0]), np.interp(si + 0.3, s, path[:, 1])], 1)
        back = np.stack([np.interp(si - 0.3, s, path[:, 0]), np.interp(si - 0.3, s, path[:, 1])], 1)
        d = ahead - back
        # Smoothed over about a second, so that even a forced U-turn turns the view gradually.
        heading = ndimage.gaussian_filter1d(np.unwrap(np.arctan2(d[:, 1], d[:, 0])), 5.0, mode="nearest")
        tt = np.arange(num_frames) * dt
        two_pi = 2 * np.pi
        lo, hi = cfg.height_range
        mid, half = (lo + hi) / 2, (hi - lo) / 2 * 0.97
        height = mid + half * (0.8 * np.sin(two_pi * tt / periods[0] + phases[0]) + 0.2 * np.sin(two_pi * tt / periods[1] + phases[1]))
        yaw = heading + sweep * np.sin(two_pi * tt / periods[2] + phases[2]) + wiggle * np.sin(two_pi * tt / periods[3] + phases[3])
        plo, phi = np.radians(cfg.pitch_range_deg)
        pitch = (plo + phi) / 2 + (phi - plo) / 2 * 0.95 * np.sin(two_pi * tt / periods[4] + phases[4])
        roll = np.radians(2.0) * np.sin(two_pi * tt / periods[5] + phases[5])
        poses = []
        for i in range(num_frames):
            eye = np.array([xy[i, 0], xy[i, 1], height[i]])
            fwd = np.array([math.cos(pitch[i]) * math.cos(yaw[i]), math.cos(pitch[i]) * math.sin(yaw[i]), -math.sin(pitch[i])])
            T = look_at(eye, eye + fwd)
            c, sn = math.cos(roll[i]), math.sin(roll[i])
            T[:3, :3] = T[:3, :3] @ np.array([[c, -sn, 0], [sn, c, 0], [0, 0, 1.0]])
            poses.append(T)
        return poses

    def sequence(self, num_frames: int) -> Iterator[SyntheticView]:
        """The ``trajectory(num_frames)`` frames rendered in order, stamped one frame period apart from 0."""
        for i, T in enumerate(self.trajectory(num_frames)):
            yield self.render(T, stamp_ns=i * self.config.frame_period_ns, index=i)

    # -- ground truth ----------------------------------------------------------------------

    def ground_truth_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labelled points on the visible surfaces of every object (ScanNet's labelled vertices).

        Returns points (N, 3) float32 [m], NYU40 labels (N,) uint16 and instance ids (N,)
        uint16; about ``point_density`` points per m^2. Surfaces buried in other parts or
        lying on the room shell (box bottoms on the floor, backs against walls) are left out.
        """
        if self._gt is None:
            self._gt = self._sample_ground_truth()
        return tuple(a.copy() for a in self._gt)  # type: ignore[return-value]

    def _sample_ground_truth(self):
        cfg = self.config
        rng = np.random.default_rng([self.seed, 3])
        eps = cfg.hidden_tolerance
        parts = self._parts
        shell = np.array([self._part_label[k] in (WALL, FLOOR, CEILING) and q.kind == "box" and q.half.sum() == 0 for k, q in enumerate(parts)])
        lo = np.array([q.verts.min(0) for q in parts]) - eps
        hi = np.array([q.verts.max(0) for q in parts]) + eps
        occ = np.array([q.occluder for q in parts])
        out_p, out_k = [], []
        for k, q in enumerate(parts):
            tri = q.verts[q.tris]
            area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
            counts = np.floor(area * cfg.point_density + rng.random(len(area))).astype(np.int64)
            n = int(counts.sum())
            if n == 0:
                continue
            ti = np.repeat(np.arange(len(area)), counts)
            r1, r2 = rng.random(n), rng.random(n)
            sq = np.sqrt(r1)
            a, b, c = tri[ti, 0], tri[ti, 1], tri[ti, 2]
            pts = (1 - sq)[:, None] * a + (sq * (1 - r2))[:, None] * b + (sq * r2)[:, None] * c
            keep = np.ones(n, dtype=bool)
            if not shell[k]:
                keep &= ((pts > eps).all(1)) & ((pts < self.size - eps).all(1))
            near = np.flatnonzero(occ & (lo <= hi[k]).all(1) & (hi >= lo[k]).all(1))
            for j in near:
                if j == k:
                    continue
                o = parts[j]
                qd = _matmul_rows(pts - o.center, o.R)
                if o.kind == "cyl":
                    inside = (np.abs(qd[:, 2]) < o.half[2] + eps) & (qd[:, 0] ** 2 + qd[:, 1] ** 2 < (o.half[0] + eps) ** 2)
                else:
                    inside = (np.abs(qd) < o.half + eps).all(1)
                keep &= ~inside
            out_p.append(pts[keep])
            out_k.append(np.full(int(keep.sum()), k))
        pts = np.concatenate(out_p)
        k = np.concatenate(out_k)
        return pts.astype(np.float32), self._part_label[k].copy(), self._part_inst[k].copy()
