"""IMENet's input of one frame: the 2D branch's image, the volume's TSDF, the pixel -> voxel map
and, for training, the labels of both tasks — as tensors, cropped and stacked into batches.

The 2D side works at ``image_width`` (the colour image resized with area averaging, the
pixel -> voxel map and the 2D labels by nearest sampling). A training crop keeps a
window of the volume across the width and the depth (the full height): the network is
convolutional, and its depth attention adapts to the length of the depth axis, so it
trains on crops and completes whole volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ...core.downscale import resize_nearest
from ...core.samples import VoxelVolume
from ..efficientnet_lite import normalize_rgb


@dataclass
class CompletionInput:
    """color: (3, h, w) float32 normalised for the image encoder. tsdf: (1, X, Y, Z) float32.
    pixel_voxel: (h, w) int64 flat index into (X, Y, Z), -1 none. labels_3d: (X, Y, Z) int64
    ssc11 ids (0 empty) or None; visibility: (X, Y, Z) uint8 codes or None; labels_2d: (h, w)
    int64 ssc11 ids (0 unlabelled) or None."""

    color: torch.Tensor
    tsdf: torch.Tensor
    pixel_voxel: torch.Tensor
    labels_3d: torch.Tensor | None = None
    visibility: torch.Tensor | None = None
    labels_2d: torch.Tensor | None = None


def completion_input(volume: VoxelVolume, image_width: int, labels_2d: np.ndarray | None = None) -> CompletionInput:
    """The input of ``volume`` (with its frame). labels_2d: (H, W) ssc11 ids of the frame's pixels, or None."""
    frame = volume.frame
    if frame is None or volume.pixel_voxel is None:
        raise ValueError("the volume needs its frame and pixel_voxel map")
    height, width = frame.shape
    size = (max(1, round(height * image_width / width)), image_width)
    color = torch.from_numpy(np.ascontiguousarray(frame.color)).permute(2, 0, 1).float().unsqueeze(0)
    color = normalize_rgb(F.interpolate(color, size=size, mode="area"))[0]

    def nearest(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(resize_nearest(a, size).astype(np.int64))

    return CompletionInput(
        color=color,
        tsdf=torch.from_numpy(volume.tsdf).unsqueeze(0),
        pixel_voxel=nearest(volume.pixel_voxel),
        labels_3d=torch.from_numpy(volume.labels),
        visibility=torch.from_numpy(volume.visibility) if volume.visibility is not None else None,
        labels_2d=nearest(labels_2d) if labels_2d is not None else None,
    )


def crop(sample: CompletionInput, size: int, rng: np.random.Generator) -> CompletionInput:
    """A random window of ``size`` x ``size`` voxels across the width and depth (full height);
    pixels whose voxel falls outside it map to -1. The whole sample when it is not larger."""
    x_size, y_size, z_size = sample.tsdf.shape[1:]
    if size <= 0 or (x_size <= size and y_size <= size):
        return sample
    wx, wy = min(size, x_size), min(size, y_size)
    x0, y0 = int(rng.integers(0, x_size - wx + 1)), int(rng.integers(0, y_size - wy + 1))
    index = sample.pixel_voxel
    valid = index >= 0
    i, rest = torch.div(index.clamp_min(0), y_size * z_size, rounding_mode="floor"), index.clamp_min(0) % (y_size * z_size)
    j, k = torch.div(rest, z_size, rounding_mode="floor"), rest % z_size
    inside = valid & (i >= x0) & (i < x0 + wx) & (j >= y0) & (j < y0 + wy)
    moved = torch.where(inside, ((i - x0) * wy + (j - y0)) * z_size + k, torch.full_like(index, -1))
    window = (slice(x0, x0 + wx), slice(y0, y0 + wy))
    return replace(
        sample,
        tsdf=sample.tsdf[(slice(None), *window)].contiguous(),
        pixel_voxel=moved,
        labels_3d=sample.labels_3d[window].contiguous() if sample.labels_3d is not None else None,
        visibility=sample.visibility[window].contiguous() if sample.visibility is not None else None,
    )


def stack_inputs(samples: list[CompletionInput]) -> dict[str, torch.Tensor]:
    """A batch: every field stacked along a new first axis (the samples must share their shapes);
    fields that are None in any sample are left out."""
    batch = {}
    for name in ("color", "tsdf", "pixel_voxel", "labels_3d", "visibility", "labels_2d"):
        values = [getattr(s, name) for s in samples]
        if all(v is not None for v in values):
            batch[name] = torch.stack(values)
    return batch
