"""Compile the mappers' numba kernels before the first frame needs them.

numba compiles a kernel at its first call: ~3 s for all of them on a fresh install, ~0.3 s
to load them from its on-disk cache afterwards. A node warms them up while it starts, so
its first frame is not late by that much.
"""

from __future__ import annotations

import time

import numpy as np

from ..core import jit
from ..core.camera import CameraIntrinsics
from ..core.frame import RGBDFrame
from ..map.voxel_map import SemanticVoxelMap
from .gravity import GravityReference
from .label_fusion import LabelFusion
from .lifting import lift_frame
from .network_input import network_image


def warm_up_kernels() -> float:
    """Run every CPU kernel once on an 8x8 frame (no map of the caller's is touched).

    Returns the seconds it took; 0 without numba (nothing to compile).
    """
    if not jit.available():
        return 0.0
    start = time.perf_counter()
    frame = RGBDFrame(
        color=np.zeros((8, 8, 3), np.uint8),
        depth=np.full((8, 8), 1.0, np.float32),
        intrinsics=CameraIntrinsics(8.0, 8.0, 3.5, 3.5, 8, 8),
        T_world_camera=np.eye(4),
        stamp_ns=0,
        labels=np.ones((8, 8), np.uint16),
    )
    LabelFusion(SemanticVoxelMap()).integrate(frame)  # the lift, the votes and the evidence update
    _, gravity = network_image(frame, "gravity", GravityReference(), 3.0)  # normals and the network image
    lift_frame(frame, 0.04, 3.0).image_mean(gravity)  # the float voxel means (colour ones ran above)
    return time.perf_counter() - start
