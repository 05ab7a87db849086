"""Lifting a posed RGB-D frame into the voxels it observes (shared by every mapper)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.frame import RGBDFrame
from ..core.geometry import observed_voxels, pack_keys, unpack_keys
from ..core.scatter import scatter_mean


@dataclass
class LiftedFrame:
    """The voxels one frame touches.

    keys: (V, 3) int32 unique voxel keys. inverse: (N,) int64 voxel of each valid pixel.
    pixel_mask: (H, W) bool, the N valid pixels in row-major order. points: (N, 3)
    float32 world points [m] of those pixels.
    """

    keys: torch.Tensor
    inverse: torch.Tensor
    pixel_mask: torch.Tensor
    points: torch.Tensor

    @property
    def num_voxels(self) -> int:
        """V, the number of distinct voxels."""
        return int(self.keys.shape[0])

    def pixel_values(self, image: torch.Tensor) -> torch.Tensor:
        """The valid pixels' entries of an (H, W, ...) image: (N, ...)."""
        return image[self.pixel_mask]

    def voxel_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Average per-pixel values (N, C) float over each voxel's pixels: (V, C) float32."""
        return scatter_mean(values.to(torch.float32).reshape(values.shape[0], -1), self.inverse, self.num_voxels)

    def voxel_histogram(self, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Per-voxel class counts of per-pixel class indices (N,) int (-1 = none): (V, C) float32."""
        ok = classes >= 0
        flat = self.inverse[ok] * num_classes + classes[ok].to(torch.int64)
        counts = torch.bincount(flat, minlength=self.num_voxels * num_classes)
        return counts.reshape(self.num_voxels, num_classes).to(torch.float32)


def lift_frame(
    frame: RGBDFrame,
    voxel_size: float,
    max_range: float,
    min_range: float = 0.0,
    device: torch.device | str = "cpu",
) -> LiftedFrame:
    """Back-project a frame's valid depth (min_range < z <= max_range, metres) into the
    world and voxelize it at ``voxel_size`` metres.

    Raises ValueError when no pixel has valid depth in range (all zero, NaN, inf or out
    of range), so callers skip the frame without touching the map.
    """
    depth = torch.from_numpy(frame.depth).to(device)
    keys, points, mask = observed_voxels(depth, frame.intrinsics, frame.T_world_camera, voxel_size, max_range, min_range)
    if keys.shape[0] == 0:
        raise ValueError(
            f"frame {frame.stamp_ns}: depth has no valid pixel in ({min_range}, {max_range}] m "
            "(all zero, NaN, inf or out of range)"
        )
    codes, inverse = torch.unique(pack_keys(keys), return_inverse=True)
    return LiftedFrame(keys=unpack_keys(codes), inverse=inverse, pixel_mask=mask, points=points)
