"""Pinhole camera intrinsics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_FOV_DEG = 1.0
"""Narrowest field of view accepted per image axis [degrees] (a long telephoto lens)."""
MAX_FOV_DEG = 170.0
"""Widest field of view accepted per image axis [degrees] (rectified wide-angle images)."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an undistorted image.

    fx, fy, cx, cy are in pixels; width and height in pixels. The pixel centre
    convention is OpenCV's: pixel (u, v) covers [u, u+1) and its centre is u + 0.5
    in continuous coordinates, while (cx, cy) is given in the integer-index frame
    used by ROS ``CameraInfo.K`` (pixel u's centre is at u).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"CameraIntrinsics.{name} must be finite, got {value}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if int(self.width) != self.width or int(self.height) != self.height:
            raise ValueError("image width and height must be integers")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        self._check_plausible()

    def _check_plausible(self) -> None:
        """Reject intrinsics no real camera has: they would scatter points kilometres away.

        The principal point must lie on the image (pixel centres 0 .. W-1 in the
        integer-index frame, half a pixel of slack), and each axis must see between
        ``MIN_FOV_DEG`` and ``MAX_FOV_DEG`` (a 640-pixel-wide image: fx between 28 and
        36,700 pixels).
        """
        for name, c, size in (("cx", self.cx, self.width), ("cy", self.cy, self.height)):
            if not -0.5 <= c <= size - 0.5:
                raise ValueError(
                    f"principal point {name}={c} lies outside the {self.width}x{self.height} image "
                    f"(expected -0.5 .. {size - 0.5})"
                )
        for name, f, size in (("fx", self.fx, self.width), ("fy", self.fy, self.height)):
            fov = math.degrees(2.0 * math.atan(size / (2.0 * f)))
            if not MIN_FOV_DEG <= fov <= MAX_FOV_DEG:
                raise ValueError(
                    f"focal length {name}={f} px gives a {fov:.3g} degree field of view over {size} px "
                    f"(expected {MIN_FOV_DEG} .. {MAX_FOV_DEG} degrees)"
                )

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int, height: int) -> CameraIntrinsics:
        """Build from a 3x3 camera matrix ``K`` (pixels) and the image size (pixels)."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"camera matrix must be 3x3, got shape {K.shape}")
        if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0.0:
            raise ValueError(f"not a pinhole camera matrix (last row must be [0 0 1]): {K.tolist()}")
        if K[0, 1] != 0.0:
            raise ValueError(f"camera matrix with skew {K[0, 1]} is not supported")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix in pixels."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape as (height, width)."""
        return (self.height, self.width)

    def resized(self, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics of the same camera after resizing the image to width x height pixels."""
        sx, sy = width / self.width, height / self.height
        # Scaling acts on continuous coordinates whose pixel centres sit at u + 0.5.
        return CameraIntrinsics(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            int(width),
            int(height),
        )

    def subsampled(self, factor: int, offset: int = 0) -> CameraIntrinsics:
        """Intrinsics of the image of every factor-th pixel from pixel ``offset`` on, in each
        direction (``image[offset::factor, offset::factor]``): pixel u of the new image is
        pixel factor*u + offset, and its ray is exactly that pixel's. (``downscaled`` is the
        grid of block centres, for images averaged over blocks.)"""
        f, o = int(factor), int(offset)
        if f < 1 or not 0 <= o < f:
            raise ValueError(f"subsampling needs factor >= 1 and 0 <= offset < factor, got {factor}, {offset}")
        return CameraIntrinsics(
            self.fx / f, self.fy / f, (self.cx - o) / f, (self.cy - o) / f, -(-(self.width - o) // f), -(-(self.height - o) // f)
        )

    def downscaled(self, factor: int) -> CameraIntrinsics:
        """Intrinsics of the grid of factor x factor pixel blocks (``core.downscale``; the last partial blocks cut).

        Pixel u of the new image is the block of pixels factor*u .. factor*u + factor - 1,
        whose centre lies at factor*u + (factor - 1) / 2 in the old integer-index frame.
        """
        f = int(factor)
        if f < 1:
            raise ValueError(f"downscale factor must be a positive integer, got {factor}")
        return CameraIntrinsics(
            self.fx / f,
            self.fy / f,
            (self.cx - (f - 1) / 2) / f,
            (self.cy - (f - 1) / 2) / f,
            self.width // f,
            self.height // f,
        )
