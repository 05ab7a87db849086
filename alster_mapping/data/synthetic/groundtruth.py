"""Ground truth of a synthetic world: labelled points sampled on the visible surfaces of all
objects (the analogue of ScanNet's labelled mesh vertices), leaving out surfaces buried in
other parts or lying on the room shell.

``_GroundTruthMixin`` is a base of ``SyntheticWorld``; it reads ``config``, ``seed``, ``size``
and the per-part tables ``_parts``, ``_part_label``, ``_part_inst`` built by the renderer's
scene, and caches its points in ``_gt``.
"""

from __future__ import annotations

import numpy as np

from .classes import CEILING, FLOOR, WALL
from .shapes import _matmul_rows


class _GroundTruthMixin:
    """Ground-truth points of ``SyntheticWorld``."""

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
                if j != k:
                    keep &= ~_inside_part(pts, parts[j], eps)
            out_p.append(pts[keep])
            out_k.append(np.full(int(keep.sum()), k))
        pts = np.concatenate(out_p)
        k = np.concatenate(out_k)
        return pts.astype(np.float32), self._part_label[k].copy(), self._part_inst[k].copy()

    def solid_labels(self, points: np.ndarray) -> np.ndarray:
        """NYU40 label (N,) uint16 of the solid part each world point (N, 3) [m] lies inside, 0
        for none: objects are solid, not only their surfaces (scene-completion ground truth).
        The room shell and curtains are surfaces without an inside; where solids overlap, the
        later part wins."""
        points = np.asarray(points, dtype=np.float64)
        out = np.zeros(len(points), np.uint16)
        for k, q in enumerate(self._parts):
            if not q.occluder or q.kind not in ("box", "cyl") or not (q.half > 0).all():
                continue
            lo, hi = q.verts.min(0), q.verts.max(0)
            near = np.flatnonzero(((points >= lo) & (points <= hi)).all(1))  # the part's world box first: cheap
            if near.size:
                out[near[_inside_part(points[near], q, 0.0)]] = self._part_label[k]
        return out


def _inside_part(points: np.ndarray, part, eps: float) -> np.ndarray:
    """Whether points (N, 3) lie inside ``part``'s oriented box or cylinder, grown by ``eps`` [m]."""
    local = _matmul_rows(points - part.center, part.R)
    if part.kind == "cyl":
        return (np.abs(local[:, 2]) < part.half[2] + eps) & (local[:, 0] ** 2 + local[:, 1] ** 2 < (part.half[0] + eps) ** 2)
    return (np.abs(local) < part.half + eps).all(1)
