"""The records of a synthetic world: ``WorldObject`` (one labelled object and its primitives) and
``SyntheticView`` (one rendered frame with its ground-truth images)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...core.frame import RGBDFrame


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
