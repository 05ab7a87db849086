"""Geometric primitives of the synthetic worlds: unit box and cylinder meshes, row-wise 3x3
products, rotations about z, ``_Part`` (one textured primitive with its occluding box) and
``_Parts`` (the collector the object builders add boxes, cylinders and folded sheets to)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .textures import FABRIC, PLAIN

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
    shiny: glossy finish (specular highlights, depth dropouts); set by the non-classic styles.
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
    shiny: bool = False

    def moved(self, R: np.ndarray, t: np.ndarray) -> _Part:
        """This part after the rigid motion x -> R x + t."""
        return _Part(
            self.kind, _matmul_rows(self.verts, R.T) + t, self.tris, R @ self.center + t, R @ self.R, self.half, self.rgb,
            self.tex, self.params, R @ self.u, R @ self.v, self.emissive, self.occluder, self.shiny,
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
