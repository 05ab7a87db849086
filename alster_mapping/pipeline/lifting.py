"""Lifting a posed RGB-D frame into the voxels it observes (shared by every mapper).

Two implementations give the same voxels: tensor ops (``kernel="torch"``, CPU or CUDA)
and a fused numba loop (``kernel="numba"``, CPU only, ~3x faster at 320x240; see
``lift_kernels``). ``"auto"`` takes numba on the CPU when it imports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core import jit
from ..core.frame import RGBDFrame
from ..core.geometry import KEY_LIMIT, check_image_size, observed_voxels, pack_keys, unpack_keys
from ..core.scatter import scatter_mean
from . import lift_kernels

LIFT_KERNELS = ("auto", "numba", "torch")


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

    def image_mean(self, image: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Average an (H, W, C) image (tensor or numpy) over each voxel's pixels: (V, C)
        float32 on the frame's device. ``voxel_mean(pixel_values(image))``, in one fused pass
        on the CPU when numba is there (the same bits)."""
        on_cpu = not isinstance(image, torch.Tensor) or image.device.type == "cpu"
        if on_cpu and jit.available() and self.pixel_mask.device.type == "cpu":
            array = image.numpy() if isinstance(image, torch.Tensor) else image
            means = lift_kernels.image_mean(
                self.pixel_mask.numpy(), self.inverse.numpy(), np.ascontiguousarray(array), self.num_voxels
            )
            return torch.from_numpy(means)
        return self.voxel_mean(self.pixel_values(torch.as_tensor(image, device=self.pixel_mask.device)))

    def voxel_histogram(self, classes: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Per-voxel class counts of per-pixel class indices (N,) int (-1 = none): (V, C) float32."""
        ok = classes >= 0
        flat = self.inverse[ok] * num_classes + classes[ok].to(torch.int64)
        counts = torch.bincount(flat, minlength=self.num_voxels * num_classes)
        return counts.reshape(self.num_voxels, num_classes).to(torch.float32)


def use_numba(kernel: str, device: torch.device | str) -> bool:
    """Whether ``kernel`` (one of ``LIFT_KERNELS``) runs the numba loops on ``device``.

    Raises ValueError for "numba" where it cannot run (not installed, or a CUDA device).
    """
    if kernel not in LIFT_KERNELS:
        raise ValueError(f"lift kernel must be one of {LIFT_KERNELS}, got {kernel!r}")
    on_cpu = torch.device(device).type == "cpu"
    if kernel == "numba" and not (on_cpu and jit.available()):
        why = "numba is not installed" if on_cpu else f"it runs on the CPU only, not {device}"
        raise ValueError(f"lift kernel 'numba' cannot run: {why}; use 'torch' or 'auto'")
    return kernel != "torch" and on_cpu and jit.available()


def lift_frame(
    frame: RGBDFrame,
    voxel_size: float,
    max_range: float,
    min_range: float = 0.0,
    device: torch.device | str = "cpu",
    kernel: str = "auto",
) -> LiftedFrame:
    """Back-project a frame's valid depth (min_range < z <= max_range, metres) into the
    world and voxelize it at ``voxel_size`` metres.

    kernel: see ``LIFT_KERNELS``; both return the same LiftedFrame (voxels sorted by packed key).
    Raises ValueError when no pixel has valid depth in range (all zero, NaN, inf or out
    of range), so callers skip the frame without touching the map.
    """
    if use_numba(kernel, device):
        lifted = _lift_numba(frame, voxel_size, max_range, min_range)
    else:
        depth = torch.from_numpy(frame.depth).to(device)
        keys, points, mask = observed_voxels(
            depth, frame.intrinsics, frame.T_world_camera, voxel_size, max_range, min_range
        )
        codes, inverse = torch.unique(pack_keys(keys), return_inverse=True)
        lifted = LiftedFrame(keys=unpack_keys(codes), inverse=inverse, pixel_mask=mask, points=points)
    if lifted.keys.shape[0] == 0:
        raise ValueError(
            f"frame {frame.stamp_ns}: depth has no valid pixel in ({min_range}, {max_range}] m "
            "(all zero, NaN, inf or out of range)"
        )
    return lifted


def _lift_numba(frame: RGBDFrame, voxel_size: float, max_range: float, min_range: float) -> LiftedFrame:
    """``lift_frame`` by two passes over the pixels (``lift_kernels``)."""
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    intrinsics = frame.intrinsics
    depth = np.ascontiguousarray(frame.depth, dtype=np.float32)
    check_image_size(depth, intrinsics, "depth")
    f32 = np.float32
    pose = np.ascontiguousarray(frame.T_world_camera, dtype=np.float64)
    fx, fy, cx, cy = f32(intrinsics.fx), f32(intrinsics.fy), f32(intrinsics.cx), f32(intrinsics.cy)
    codes = np.empty(depth.size, np.int64)
    points = np.empty((depth.size, 3), np.float32)
    status = lift_kernels.pixel_codes(
        depth, fx, fy, cx, cy, pose, float(voxel_size), min_range > 0.0, f32(min_range), f32(max_range), codes, points
    )
    if status == lift_kernels.LIFT_OK:
        capacity, shift = jit.table_size(depth.size)
        while True:
            status, voxel_codes, keys, inverse, mask, valid_points = lift_kernels.distinct_voxels(
                codes, points, *depth.shape, capacity, shift
            )
            if status != lift_kernels.LIFT_TABLE_FULL:
                break
            capacity, shift = 4 * capacity, shift - np.uint64(2)
    if status == lift_kernels.LIFT_NON_FINITE:
        raise ValueError("cannot voxelize non-finite points")
    if status == lift_kernels.LIFT_OUT_OF_RANGE:
        raise ValueError(f"points beyond +-{KEY_LIMIT * voxel_size:.0f} m cannot be voxelized at {voxel_size} m")
    # The kernel lists voxels as the pixels first meet them; sorting those few (V, ~1/5 of
    # the pixels) by packed key gives torch.unique's order, so both kernels return the same
    # LiftedFrame and nothing downstream (the sparse U-Net's sums) can tell them apart.
    # numpy and numba, single-threaded: these small sorts and gathers cost 3x more as torch
    # ops that wake a second thread (codes are distinct, so any sort gives torch.unique's order).
    keys = lift_kernels.renumber_voxels(np.argsort(voxel_codes), keys, inverse)
    return LiftedFrame(
        keys=torch.from_numpy(keys),
        inverse=torch.from_numpy(inverse),
        pixel_mask=torch.from_numpy(mask),
        points=torch.from_numpy(valid_points),
    )
