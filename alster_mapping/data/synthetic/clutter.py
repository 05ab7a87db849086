"""Geometry of the non-classic styles: shape variants of the classic furniture and clutter on
its surfaces, added to a built room without moving anything (so the trajectory, which only
avoids furniture footprints, stays valid).

Shape variants stay inside the object's bounding box and keep its label: aprons and low
stretchers between the legs of tables and chairs, a footboard on beds, a modesty panel on
desks. Clutter is small objects (boxes, book stacks, cups, bottles, bowls, pots with plants)
standing on the free top surfaces of tables, desks, counters, nightstands, dressers, shelf
units and low bookshelves; as in ScanNet, each is its own instance labelled NYU40
"otherprop" (id 40), which the ScanNet-20 benchmark ignores.
"""

from __future__ import annotations

import numpy as np

from .classes import OTHERPROP
from .shapes import _matmul_rows, _Part, _Parts, _rot_z
from .textures import _color

SUPPORT_NAMES = ("table", "desk", "counter", "nightstand", "shelf unit", "cabinet", "bookshelf")
"""Objects whose top surfaces carry clutter."""

CLUTTER_PER_M2 = 6.0
"""Mean number of clutter objects per square metre of free support surface."""

_MAX_CLUTTER = 40


class _Obstacles:
    """World AABBs of all parts (and what is added), to keep new geometry clear of old."""

    def __init__(self, objects) -> None:
        boxes = [(q.verts.min(0), q.verts.max(0), i) for i, obj in enumerate(objects) for q in obj.parts if q.half.sum() > 0]
        self.lo = np.array([b[0] for b in boxes])
        self.hi = np.array([b[1] for b in boxes])
        self.owner = np.array([b[2] for b in boxes])

    def clear(self, lo: np.ndarray, hi: np.ndarray, ignore_owner: int = -1, ignore_box: np.ndarray | None = None) -> bool:
        """True if the box (lo, hi) overlaps no part except those of ``ignore_owner`` and ``ignore_box``."""
        hit = (lo < self.hi).all(1) & (hi > self.lo).all(1) & (self.owner != ignore_owner)
        if ignore_box is not None:
            hit &= ~((self.lo == ignore_box[0]).all(1) & (self.hi == ignore_box[1]).all(1))
        return not hit.any()

    def add(self, lo: np.ndarray, hi: np.ndarray, owner: int) -> None:
        self.lo, self.hi = np.vstack([self.lo, lo]), np.vstack([self.hi, hi])
        self.owner = np.append(self.owner, owner)


def _local_bounds(obj, parts) -> tuple[np.ndarray, np.ndarray]:
    """AABB (lo, hi) of ``parts`` in the object's local frame (x along, y away from the wall, z up)."""
    R = _rot_z(obj.yaw)
    verts = _matmul_rows(np.concatenate([q.verts for q in parts]) - np.asarray(obj.position), R)
    return verts.min(0), verts.max(0)


def _legs(obj) -> list[_Part]:
    """The thin floor-standing boxes of an object (table and chair legs)."""
    legs = []
    for q in obj.parts:
        lo, hi = _local_bounds(obj, [q])
        size = hi - lo
        if q.kind == "box" and lo[2] < 0.01 and size[0] < 0.1 and size[1] < 0.1 and size[2] > 0.2:
            legs.append(q)
    return legs


def _variants(obj, rng) -> _Parts:
    """Extra parts of one object's shape variant in its local frame (possibly none)."""
    extra = _Parts()
    main = obj.parts[0]
    paint = (main.rgb * 0.9, main.tex, main.params)
    if obj.name in ("table", "chair"):
        legs = _legs(obj)
        if len(legs) != 4:
            return extra
        lo, hi = _local_bounds(obj, legs)
        thick = 0.02
        if rng.random() < 0.5:  # apron: boards under the top / seat, between the legs
            z1 = hi[2]
            z0 = z1 - rng.uniform(0.05, 0.12)
            extra.box((lo[0], lo[1], z0), (hi[0], lo[1] + thick, z1), *paint)
            extra.box((lo[0], hi[1] - thick, z0), (hi[0], hi[1], z1), *paint)
            extra.box((lo[0], lo[1] + thick, z0), (lo[0] + thick, hi[1] - thick, z1), *paint)
            extra.box((hi[0] - thick, lo[1] + thick, z0), (hi[0], hi[1] - thick, z1), *paint)
        if rng.random() < 0.4:  # low stretchers joining the front and back legs
            z0 = rng.uniform(0.08, 0.2)
            extra.box((lo[0], lo[1], z0), (lo[0] + thick, hi[1], z0 + 0.025), *paint)
            extra.box((hi[0] - thick, lo[1], z0), (hi[0], hi[1], z0 + 0.025), *paint)
    elif obj.name == "bed" and rng.random() < 0.5:  # footboard at the foot end
        lo, hi = _local_bounds(obj, obj.parts)
        frame_lo, frame_hi = _local_bounds(obj, obj.parts[1:2])
        top = min(frame_hi[2] + rng.uniform(0.15, 0.45), hi[2])
        extra.box((lo[0], hi[1] - 0.04, 0.0), (hi[0], hi[1], top), main.rgb, main.tex, main.params)
    elif obj.name == "desk" and rng.random() < 0.5:  # modesty panel at the back
        lo, hi = _local_bounds(obj, obj.parts)
        top_lo, _ = _local_bounds(obj, obj.parts[:1])
        extra.box((lo[0] + 0.05, 0.02, 0.3 * top_lo[2]), (hi[0] - 0.05, 0.035, top_lo[2]), *paint)
    return extra


def add_shape_variants(objects, rng: np.random.Generator) -> int:
    """Add shape variants to the furniture of ``objects`` (in place); returns how many objects
    changed. Parts that would touch another object are left out."""
    obstacles = _Obstacles(objects)
    changed = 0
    for i, obj in enumerate(objects):
        extra = _variants(obj, rng)
        if not extra.parts:
            continue
        R, t = _rot_z(obj.yaw), np.asarray(obj.position)
        added = [q.moved(R, t) for q in extra.parts]
        added = [q for q in added if obstacles.clear(q.verts.min(0), q.verts.max(0), ignore_owner=i)]
        obj.parts.extend(added)
        changed += bool(added)
    return changed


def _item(rng) -> tuple[str, _Parts, float, float]:
    """One clutter object in its local frame (origin at its bottom centre): name, parts,
    horizontal radius [m] and height [m]."""
    p = _Parts()
    kind = ("box", "books", "cup", "bottle", "bowl", "plant")[int(rng.choice(6, p=[0.25, 0.2, 0.15, 0.15, 0.1, 0.15]))]
    if kind == "box":
        w, d, h = rng.uniform(0.06, 0.35), rng.uniform(0.06, 0.3), rng.uniform(0.02, 0.25)
        p.box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), _color(rng, ("white", "dark", "metal", "cabinet")[int(rng.integers(4))]))
        return kind, p, float(np.hypot(w, d) / 2), h
    if kind == "books":
        w, d, z = rng.uniform(0.15, 0.3), rng.uniform(0.1, 0.22), 0.0
        for _ in range(int(rng.integers(2, 6))):
            h = rng.uniform(0.015, 0.05)
            dw, dd = rng.uniform(-0.02, 0.0, 2)
            p.box((-w / 2 - dw, -d / 2 - dd, z), (w / 2 + dw, d / 2 + dd, z + h), _color(rng, "books", dh=0.1, ds=0.3, dv=0.25))
            z += h
        return kind, p, float(np.hypot(w, d) / 2), z
    if kind in ("cup", "bottle", "bowl"):
        r, h = {"cup": (rng.uniform(0.03, 0.05), rng.uniform(0.07, 0.12)), "bottle": (rng.uniform(0.03, 0.045), rng.uniform(0.18, 0.3)),
                "bowl": (rng.uniform(0.07, 0.14), rng.uniform(0.03, 0.07))}[kind]  # fmt: skip
        colour = _color(rng, ("ceramic", "books", "glass", "dark")[int(rng.integers(4))])
        p.cyl((0, 0, h / 2), r, h, colour)
        if kind == "bottle":
            p.cyl((0, 0, h + 0.04), r * 0.35, 0.08, colour * 0.9)
            h += 0.08
        return kind, p, r, h
    r, h = rng.uniform(0.05, 0.1), rng.uniform(0.06, 0.14)  # pot with a plant
    p.cyl((0, 0, h / 2), r, h, _color(rng, ("ceramic", "wood", "dark")[int(rng.integers(3))]))
    leaves = rng.uniform(0.1, 0.3)
    green = np.clip(np.array([0.2, 0.45, 0.15]) * rng.uniform(0.6, 1.3, 3), 0, 1)
    p.cyl((0, 0, h + leaves / 2), r * rng.uniform(1.1, 1.8), leaves, green)
    return kind, p, r * 1.8, h + leaves


def _supports(objects):
    """(object index, part) of every free-looking horizontal top that may carry clutter."""
    for i, obj in enumerate(objects):
        if obj.name not in SUPPORT_NAMES:
            continue
        for q in obj.parts:
            if q.kind not in ("box", "cyl") or abs(q.R[2, 2]) < 0.99:
                continue
            top = q.center[2] + q.half[2]
            if 0.25 < top < 1.7 and min(q.half[0], q.half[1]) > 0.1 and 4 * q.half[0] * q.half[1] > 0.05:
                yield i, q


def add_clutter(world, rng: np.random.Generator) -> int:
    """Place clutter objects on the support surfaces of ``world`` (a ``SyntheticWorld`` being
    built: its ``objects`` and ``_add``); returns how many were placed."""
    objects = world.objects
    obstacles = _Obstacles(objects)
    placed = 0
    for _owner, q in list(_supports(objects)):
        area = (4 if q.kind == "box" else np.pi) * q.half[0] * q.half[1]
        top = q.center[2] + q.half[2]
        box = (q.verts.min(0), q.verts.max(0))
        for _ in range(int(rng.poisson(area * CLUTTER_PER_M2))):
            if placed >= _MAX_CLUTTER:
                return placed
            name, parts, radius, height = _item(rng)
            for _try in range(4):
                if q.kind == "cyl":
                    a, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.random()) * max(q.half[0] - radius, 0)
                    a, b = r * np.cos(a), r * np.sin(a)
                else:
                    a = rng.uniform(-1, 1) * max(q.half[0] - radius, 0)
                    b = rng.uniform(-1, 1) * max(q.half[1] - radius, 0)
                centre = q.center + q.R[:, 0] * a + q.R[:, 1] * b
                lo = np.array([centre[0] - radius, centre[1] - radius, top + 0.001])
                hi = np.array([centre[0] + radius, centre[1] + radius, top + height])
                if (lo < 0.01).any() or (hi > world.size - 0.01).any() or not obstacles.clear(lo, hi, ignore_box=box):
                    continue
                obj = world._add(f"clutter {name}", OTHERPROP, parts.parts[0].rgb, parts, (centre[0], centre[1], top), rng.uniform(0, 2 * np.pi),
                                 footprint=False)  # fmt: skip
                obstacles.add(np.array(obj.aabb_min), np.array(obj.aabb_max), len(objects) - 1)
                placed += 1
                break
    return placed
