"""The gravity frame of a mapping run: which way is up, where the floor is, and the
per-pixel channels that mean the same in every room (issue 16).

A network that sees only colour learns the look of its training rooms; height above the
floor and the angle of a surface to gravity do not depend on it (Gupta et al., "Learning
Rich Features from RGB-D Images", ECCV 2014: the HHA encoding -- horizontal disparity,
height above ground, angle with gravity). The ALSTER network with ``inputs = "gravity"``
takes two channels beside RGB, depth and camera-frame normals (which already carry the
disparity): height above the floor and the normal's component along up. Its 3D network
takes the same two values per voxel.

Up comes from ``GravityConfig.up``:

    z             the map frame is z-up (REP-103; ScanNet, robots with a level map frame)
    first_camera  the world is the first camera's frame, held roughly level (many visual
                  trackers start their world at the first camera): up = that camera's -y
    none          no meaningful up: both channels are zero (the network is trained with
                  them dropped at random, so it still works, on colour and shape alone)

The floor height along up is given, or estimated online by ``FloorEstimator`` from the
upward-facing points of the frames so far; until a floor is seen it is assumed
``camera_height`` below the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.config import param


@dataclass
class GravityConfig:
    """Up and the floor: the gravity channels of ``model.inputs = gravity`` (height above floor, normal . up)."""

    up: str = param(
        "z",
        "up direction of the map frame: z (REP-103 z-up map), first_camera (a tracker's world = the first camera, "
        "held level: up = its -y), none (no meaningful up: the gravity channels are zero)",
        choices=("z", "first_camera", "none"),
    )
    floor: str = param(
        "estimate", "estimate: floor height from the upward-facing surfaces seen so far; given: floor_height", choices=("estimate", "given")
    )
    floor_height: float = param(0.0, "floor height along up [m] in the map frame (floor = given)", min=-1000.0, max=1000.0)
    camera_height: float = param(1.4, "assumed camera height above the floor [m] until a floor is seen (floor = estimate)", min=0.0, max=10.0)


class FloorEstimator:
    """The floor's height along up from a histogram of upward-facing points.

    Each frame adds the elevations (height along up, metres) of its points whose normal is
    within ``UPWARD_DEGREES`` of up to a histogram of ``BIN`` metre bins. The floor is
    the lowest bin that holds at least ``MIN_POINTS`` points and ``PEAK_FRACTION`` of the
    fullest bin below the camera (an upward-facing surface is only seen from above): tables and
    beds are horizontal too, but never below the floor, and a handheld or robot camera
    sees the floor within the first frames. Stray points below the floor (multipath,
    mirrors) do not reach the counts of a real surface.
    """

    BIN = 0.02
    RANGE = 50.0
    UPWARD_DEGREES = 15.0
    MIN_POINTS = 200
    PEAK_FRACTION = 0.2
    CAMERA_CLEARANCE = 0.05

    def __init__(self) -> None:
        self.histogram = torch.zeros(int(2 * self.RANGE / self.BIN), dtype=torch.int64)

    def reset(self) -> None:
        """Forget every observation (a new map)."""
        self.histogram.zero_()

    def observe(self, elevation: torch.Tensor, normal_up: torch.Tensor) -> None:
        """Add points: elevation (N,) metres along up, normal_up (N,) their normals' up component."""
        upward = normal_up > math.cos(math.radians(self.UPWARD_DEGREES))
        bins = torch.floor((elevation[upward].float().cpu() + self.RANGE) / self.BIN).to(torch.int64)
        bins = bins[(bins >= 0) & (bins < self.histogram.numel())]
        self.histogram += torch.bincount(bins, minlength=self.histogram.numel())

    def floor(self, camera_elevation: float) -> float | None:
        """The floor's elevation [m], or None when no floor has been seen below ``camera_elevation``."""
        top = int(math.floor((camera_elevation - self.CAMERA_CLEARANCE + self.RANGE) / self.BIN))
        counts = self.histogram[: max(0, min(top, self.histogram.numel()))]
        if counts.numel() == 0:
            return None
        # Neighbouring bins together: a noisy plane spreads over two or three bins.
        smooth = torch.nn.functional.conv1d(counts.float().view(1, 1, -1), torch.ones(1, 1, 3), padding=1).view(-1)
        peak = float(smooth.max())
        if peak < self.MIN_POINTS:
            return None
        candidates = (smooth >= max(self.MIN_POINTS, self.PEAK_FRACTION * peak)).nonzero()
        first = int(candidates[0])
        # The bin and its neighbours, weighted by their counts, refine the height below one bin.
        window = torch.arange(max(0, first - 1), min(counts.numel(), first + 2))
        weights = counts[window].double()
        centres = (window.double() + 0.5) * self.BIN - self.RANGE
        return float((weights * centres).sum() / weights.sum().clamp_min(1.0))


class GravityReference:
    """Up and the floor of one mapping run, and the per-pixel gravity channels of its frames.

    config: ``GravityConfig``. Call ``reset`` when the map starts over (the floor
    estimate and a first-camera up belong to one map).
    """

    def __init__(self, config: GravityConfig | None = None) -> None:
        self.config = config or GravityConfig()
        self.estimator = FloorEstimator()
        self.up: np.ndarray | None = None if self.config.up == "first_camera" else np.array([0.0, 0.0, 1.0])
        self.floor_elevation: float | None = None

    def configure(self, config: GravityConfig) -> None:
        """New settings (e.g. changed ROS parameters); a change starts the floor and up over."""
        if config != self.config:
            self.config = config
            self.up = None if config.up == "first_camera" else np.array([0.0, 0.0, 1.0])
            self.reset()

    def state(self) -> dict:
        """For diagnostics: up mode, where the floor height comes from, and its value [m]."""
        if self.config.up == "none":
            return {"up": "none", "floor": "unused"}
        if self.config.floor == "given":
            return {"up": self.config.up, "floor": "given", "floor_height_m": self.config.floor_height}
        source = "estimated" if self.floor_elevation is not None else f"not seen yet (assumed {self.config.camera_height} m below the camera)"
        return {"up": self.config.up, "floor": source, "floor_height_m": self.floor_elevation}

    def floor_height(self) -> float | None:
        """The floor's world z [m] when the map frame is z-up and the floor is given or has
        been seen (what gravity-aligned consumers such as scene completion need); else None."""
        if self.config.up != "z":
            return None
        return self.config.floor_height if self.config.floor == "given" else self.floor_elevation

    def reset(self) -> None:
        """A new map: forget the floor and (with ``up = first_camera``) the up direction."""
        self.estimator.reset()
        self.floor_elevation = None
        if self.config.up == "first_camera":
            self.up = None

    def channels(
        self, points: torch.Tensor, pixel_mask: torch.Tensor, normals: torch.Tensor, T_world_camera: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The gravity channels of one frame (and the floor estimate updated with it).

        points: (N, 3) float32 world points [m] of the frame's valid pixels, pixel_mask:
        (H, W) bool of those pixels in row-major order (``lifting.LiftedFrame`` or
        ``geometry.backproject`` + ``transform_points``). normals: (H, W, 3) camera-frame
        unit normals (zero where unknown). T_world_camera: (4, 4) pose of the optical
        frame. Returns (height (H, W) float32 metres above the floor, normal_up (H, W)
        float32 in [-1, 1]), both zero outside ``pixel_mask`` and everywhere with ``up = none``.
        """
        zeros = torch.zeros(pixel_mask.shape, dtype=torch.float32, device=points.device)
        if self.config.up == "none":
            return zeros, zeros.clone()
        T = np.asarray(T_world_camera, dtype=np.float64)
        if self.up is None:
            self.up = -T[:3, 1]  # the first camera's -y (optical frames look along z with y down)
        # Elevation of a world point p: up . p; the up component of a camera normal n: up . (R n).
        up = torch.as_tensor(self.up, dtype=torch.float32, device=points.device)
        up_camera = torch.as_tensor(T[:3, :3].T @ self.up, dtype=torch.float32, device=points.device)
        camera_elevation = float(self.up @ T[:3, 3])
        elevation = points.to(torch.float32) @ up
        normal_up = torch.where(pixel_mask, normals.to(torch.float32) @ up_camera, zeros)
        floor = self._floor(elevation, normal_up[pixel_mask], camera_elevation)
        height = zeros.clone()
        height[pixel_mask] = elevation - floor
        return height, normal_up

    def _floor(self, elevation: torch.Tensor, normal_up: torch.Tensor, camera_elevation: float) -> float:
        if self.config.floor == "given":
            return self.config.floor_height
        self.estimator.observe(elevation, normal_up)
        found = self.estimator.floor(camera_elevation)
        if found is not None:
            self.floor_elevation = found
        if self.floor_elevation is not None:
            return self.floor_elevation
        return camera_elevation - self.config.camera_height
