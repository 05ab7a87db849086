"""Resizing a frame's images: integer downscaling before mapping (the node's ``image_downscale``),
and nearest-neighbour resizing of label-like images to any size (``resize_nearest``).

Colour is averaged over each factor x factor block (less aliasing). Depth and labels
take one pixel per block, the one at offset factor // 2 in each direction: averaging
depth across an object's edge would invent surfaces between foreground and
background, and label ids cannot be averaged. For even factors that pixel lies half an
original pixel from the block centre that ``CameraIntrinsics.downscaled`` assumes (a
quarter pixel of the new image at factor 2).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .frame import RGBDFrame


def downscale_images(
    color: np.ndarray, depth: np.ndarray, labels: np.ndarray | None, factor: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Reduce (H, W, 3) uint8 colour, (H, W) float32 depth [m] and optional (H, W) labels by ``factor``.

    Returns arrays of (H // factor, W // factor); the last partial row / column of blocks
    is cut. factor 1 returns the inputs unchanged.
    """
    f = int(factor)
    if f < 1:
        raise ValueError(f"downscale factor must be a positive integer, got {factor}")
    if f == 1:
        return color, depth, labels
    h, w = depth.shape[0] // f, depth.shape[1] // f
    if h == 0 or w == 0:
        raise ValueError(f"a {depth.shape[1]}x{depth.shape[0]} image is smaller than the downscale factor {f}")
    blocks = color[: h * f, : w * f].reshape(h, f, w, f, 3).astype(np.float32)
    small_color = (blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)
    offset = f // 2
    small_depth = np.ascontiguousarray(depth[offset : h * f : f, offset : w * f : f])
    small_labels = None if labels is None else np.ascontiguousarray(labels[offset : h * f : f, offset : w * f : f])
    return small_color, small_depth, small_labels


def downscale_frame(frame: RGBDFrame, factor: int) -> RGBDFrame:
    """The frame at 1/``factor`` of its size: images as ``downscale_images`` (instance ids
    picked like labels), intrinsics ``downscaled``; everything else unchanged."""
    color, depth, labels = downscale_images(frame.color, frame.depth, frame.labels, factor)
    instances = frame.instances
    if instances is not None and factor > 1:
        h, w = depth.shape
        offset = int(factor) // 2
        instances = np.ascontiguousarray(instances[offset : h * factor : factor, offset : w * factor : factor])
    return replace(
        frame, color=color, depth=depth, labels=labels, instances=instances, intrinsics=frame.intrinsics.downscaled(factor)
    )


def resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, ...) resized to ``size`` (h, w) by taking, for each output pixel, the
    input pixel under its centre: for label ids and index maps, which cannot be interpolated."""
    height, width = image.shape[:2]
    rows = np.minimum((np.arange(size[0]) + 0.5) * height / size[0], height - 1).astype(np.int64)
    cols = np.minimum((np.arange(size[1]) + 0.5) * width / size[1], width - 1).astype(np.int64)
    return np.ascontiguousarray(image[rows][:, cols])
