"""Camera trajectories through a synthetic world: a smooth walking path through the free
space (waypoints followed with a bounded turning rate, then smoothed) and the posed
trajectory along it (constant speed, smoothly varying height, pitch, view sweep and roll).

``_TrajectoryMixin`` is a base of ``SyntheticWorld``; it reads ``config``, ``seed``, ``size``
and ``_footprints`` and sets ``_trajectory_attempts``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..procedural_room import look_at
from .freespace import _GRID, _PLAN_FURNITURE_EXTRA, _PLAN_WALL_EXTRA, _FreeSpaceMixin


class _TrajectoryMixin(_FreeSpaceMixin):
    """Camera paths and trajectories of ``SyntheticWorld``."""

    # -- trajectory ----------------------------------------------------------------------

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
