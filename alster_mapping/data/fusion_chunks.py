"""Image+points chunks for image-and-point fusion models (SAFNet, ../papers/safnet.md).

A chunk is a few consecutive posed frames of a sequence and the ground-truth points that
at least one of them observes: inside its image, in front of the camera, within range,
and not hidden (the frame's depth at the point's pixel agrees with the point's depth).
"""

from __future__ import annotations

import numpy as np

from ..core.frame import RGBDFrame
from ..core.geometry import seen_points
from ..core.samples import ImagePointChunk, PointBlock
from .sequences import Sequence


def observed_points(frame: RGBDFrame, xyz: np.ndarray, max_range: float = 3.0, tolerance: float = 0.05) -> np.ndarray:
    """(N,) bool: which world points ``xyz`` (N, 3) [m] ``frame`` observes (``geometry.seen_points``)."""
    return seen_points(xyz, frame.depth, frame.intrinsics, frame.T_world_camera, max_range, tolerance)


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
    # Overlapping chunks (stride < frames_per_chunk) share frames: read and test each once.
    views: dict[int, tuple[RGBDFrame, np.ndarray] | None] = {}

    def view(index: int) -> tuple[RGBDFrame, np.ndarray] | None:
        if index not in views:
            try:
                frame = sequence.frame(index)
                views[index] = (frame, observed_points(frame, truth.xyz, max_range))
            except ValueError as exc:
                sequence.count_skip(exc)
                views[index] = None
        return views[index]

    chunks = []
    for start in range(0, max(len(sequence) - frames_per_chunk + 1, 1), step):
        found = [v for v in map(view, range(start, min(start + frames_per_chunk, len(sequence)))) if v is not None]
        for done in [i for i in views if i < start + step]:  # no later chunk needs them
            del views[done]
        if not found:
            continue
        seen = np.logical_or.reduce([mask for _, mask in found])
        if seen.sum() >= min_points:
            frames = [frame for frame, _ in found]
            chunks.append(ImagePointChunk(frames, truth.subset(seen), f"{sequence.name} frames {start}-{start + len(frames) - 1}"))
    return chunks
