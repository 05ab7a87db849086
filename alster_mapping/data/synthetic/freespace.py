"""Free space of the camera in a synthetic world: the planning margins, the free-space grid of
camera positions and the clearance test of positions against walls and furniture footprints.

``_FreeSpaceMixin`` is a base of ``SyntheticWorld``; it reads ``config``, ``size`` and
``_footprints`` (the 2D AABBs of the placed furniture) of the world.
"""

from __future__ import annotations

import numpy as np

_PLAN_WALL_EXTRA = 0.15  # planning margins beyond the hard clearances absorb spline corner cutting
_PLAN_FURNITURE_EXTRA = 0.25
_GRID = 0.05  # free-space grid resolution [m]


class _FreeSpaceMixin:
    """Free-space grid and camera clearance test of ``SyntheticWorld``."""

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
