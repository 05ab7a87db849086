"""Image+points chunks for image-and-point fusion models (SAFNet, ../papers/safnet.md).

A chunk is a few consecutive posed frames of a sequence and the ground-truth points that
at least one of them observes: inside its image, in front of the camera, within range,
and not hidden (the frame's depth at the point's pixel agrees with the point's depth).
"""

from __future__ import annotations

import numpy as np

from ..core.frame import RGBDFrame
from ..core.samples import ImagePointChunk, PointBlock
from .sequences import Sequence


def observed_points(frame: RGBDFrame, xyz: np.ndarray, max_range: float = 3.0, tolerance: float = 0.05) -> np.ndarray:
    """(N,) bool: which world points ``xyz`` (N, 3) [m] ``frame`` observes.

    A point is observed when it projects into the image in front of the camera within
    ``max_range`` [m] and the measured depth there is within ``tolerance`` [m] plus 2 % of
    the distance of the point's own depth (so occluded points are not)."""
    T_camera_world = np.linalg.inv(frame.T_world_camera)
    camera = xyz.astype(np.float64) @ T_camera_world[:3, :3].T + T_camera_world[:3, 3]
    z = camera[:, 2]
    k = frame.intrinsics
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.floor(k.fx * camera[:, 0] / z + k.cx + 0.5).astype(np.int64, copy=False)
        v = np.floor(k.fy * camera[:, 1] / z + k.cy + 0.5).astype(np.int64, copy=False)
    inside = (z > 0) & (z <= max_range) & (u >= 0) & (u < k.width) & (v >= 0) & (v < k.height)
    seen = np.zeros(len(xyz), bool)
    rows = np.flatnonzero(inside)
    measured = frame.depth[v[rows], u[rows]]
    agree = np.isfinite(measured) & (measured > 0) & (np.abs(measured - z[rows]) <= tolerance + 0.02 * z[rows])
    seen[rows[agree]] = True
    return seen


def image_point_chunks(
    sequence: Sequence, frames_per_chunk: int = 4, stride: int | None = None, max_range: float = 3.0, min_points: int = 100
) -> list[ImagePointChunk]:
    """Chunks of ``frames_per_chunk`` consecutive frames every ``stride`` frames (default:
    back to back), each with the ground-truth points its frames observe; chunks that
    observe fewer than ``min_points`` are dropped. Frames the sequence cannot read are
    skipped (counted in ``sequence.skipped``). Raises ValueError without ground truth."""
    truth: PointBlock | None = sequence.ground_truth()
    if truth is None:
        raise ValueError(f"{sequence.name}: no ground-truth points to chunk")
    if frames_per_chunk < 1 or (stride is not None and stride < 1):
        raise ValueError(f"frames_per_chunk and stride must be positive, got {frames_per_chunk}, {stride}")
    step = stride or frames_per_chunk
    chunks = []
    for start in range(0, max(len(sequence) - frames_per_chunk + 1, 1), step):
        frames = []
        for index in range(start, min(start + frames_per_chunk, len(sequence))):
            try:
                frames.append(sequence.frame(index))
            except ValueError as exc:
                sequence.skipped[f"{type(exc).__name__}: {str(exc).split(':')[0]}"] += 1
        if not frames:
            continue
        seen = np.zeros(len(truth), bool)
        for frame in frames:
            seen |= observed_points(frame, truth.xyz, max_range)
        if seen.sum() >= min_points:
            chunks.append(ImagePointChunk(frames, truth.subset(seen), f"{sequence.name} frames {start}-{start + len(frames) - 1}"))
    return chunks
