"""Room layout of a synthetic world: the room shell (floor, walls, ceiling), adding objects
to the world, collision and walkability tests, and the placement of fixtures and furniture
against the walls or free-standing (groups sharing one local frame, wall-mounted objects,
doors with a clear floor in front, windows with curtains, rescue of classes that did not fit).

``_LayoutMixin`` is a base of ``SyntheticWorld``; it reads ``size`` and fills ``objects``,
``_boxes`` (occupied / reserved world AABBs) and ``_footprints`` (2D AABBs the camera must avoid).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .classes import BED, BOOKSHELF, CABINET, CEILING, CHAIR, DESK, FLOOR, OTHERFURNITURE, REFRIGERATOR, SINK, SOFA, TABLE, TOILET, WALL
from .fixtures import _bathtub, _curtain, _door, _fridge, _kitchen, _pedestal_sink, _picture, _shower_curtain, _toilet, _window
from .freespace import _GRID, _PLAN_FURNITURE_EXTRA, _PLAN_WALL_EXTRA, _FreeSpaceMixin
from .furniture import _bed, _bookshelf, _chair, _desk, _floor_lamp, _nightstand, _ottoman, _shelf_unit, _sofa, _table, _wardrobe
from .records import WorldObject
from .shapes import _matmul_rows, _Part, _Parts, _rot_z
from .textures import FABRIC, PLAIN, TILES, _color, _fabric, _plain


class _LayoutMixin(_FreeSpaceMixin):
    """Room shell and object placement of ``SyntheticWorld``."""

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
