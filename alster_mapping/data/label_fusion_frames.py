"""Reader for the wkentaro/label-fusion frame layout (a real tabletop RGB-D capture).

A directory holds ``camera-intrinsics.color.txt`` (3x3 K) and, per frame N,
``frame-N.color.png`` (RGB), ``frame-N.depth.png`` (uint16; metres = (value >> 3) / 1e4),
``frame-N.segm.png`` (uint8 label ids) and ``frame-N.pose.txt`` (4x4 camera-to-world).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..core.camera import CameraIntrinsics
from ..core.frame import RGBDFrame
from ..core.image_codec import read_image_file

# The sensor reports nothing useful closer than this (the dataset's README).
MIN_VALID_DEPTH_M = 0.3
# Frames carry no time stamps; give them a nominal 30 Hz clock.
FRAME_PERIOD_NS = 33_333_333


def _read_image(path: Path) -> np.ndarray:
    return read_image_file(path)[0]


def _read_matrix(path: Path, shape: tuple[int, int]) -> np.ndarray:
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read matrix {path}: {exc}") from exc
    if matrix.shape != shape:
        raise ValueError(f"{path} holds a {matrix.shape} matrix, expected {shape}")
    return matrix


def decode_depth(raw: np.ndarray) -> np.ndarray:
    """Decode the layout's uint16 depth (H, W) into float32 metres; invalid pixels become 0."""
    if raw.dtype != np.uint16:
        raise ValueError(f"label-fusion depth must be uint16, got {raw.dtype}")
    depth = (raw >> 3).astype(np.float32) / 1e4
    depth[depth < MIN_VALID_DEPTH_M] = 0.0
    return depth


def frame_indices(directory: str | Path) -> list[int]:
    """Sorted frame numbers present in ``directory``."""
    return sorted(int(m.group(1)) for p in Path(directory).glob("frame-*.color.png") if (m := re.match(r"frame-(\d+)\.color\.png", p.name)))


def read_label_fusion_frames(directory: str | Path, max_frames: int | None = None) -> list[RGBDFrame]:
    """Read every frame of a label-fusion directory as ``RGBDFrame``s with ``labels`` attached.

    Raises ValueError naming the file when something is missing or malformed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    K = _read_matrix(directory / "camera-intrinsics.color.txt", (3, 3))
    indices = frame_indices(directory)
    if not indices:
        raise ValueError(f"{directory} holds no frame-N.color.png files")
    frames = []
    for n in indices[:max_frames]:
        stem = directory / f"frame-{n:06d}"
        color = _read_image(Path(f"{stem}.color.png"))
        if color.ndim != 3 or color.shape[2] < 3:
            raise ValueError(f"{stem}.color.png is not an RGB image")
        depth = decode_depth(_read_image(Path(f"{stem}.depth.png")))
        labels = _read_image(Path(f"{stem}.segm.png"))
        pose = _read_matrix(Path(f"{stem}.pose.txt"), (4, 4))
        intrinsics = CameraIntrinsics.from_matrix(K, depth.shape[1], depth.shape[0])
        try:
            frames.append(
                RGBDFrame(
                    color=np.ascontiguousarray(color[:, :, :3]),
                    depth=depth,
                    intrinsics=intrinsics,
                    T_world_camera=pose,
                    stamp_ns=n * FRAME_PERIOD_NS,
                    frame_id="camera_color_optical_frame",
                    labels=labels,
                )
            )
        except ValueError as exc:
            raise ValueError(f"frame {stem}: {exc}") from exc
    return frames
