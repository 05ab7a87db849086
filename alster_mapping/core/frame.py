"""The posed RGB-D frame every part of the engine consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .camera import CameraIntrinsics
from .geometry import make_rigid


@dataclass
class RGBDFrame:
    """One posed RGB-D observation.

    color: (H, W, 3) uint8 RGB. depth: (H, W) float32 metres along the optical axis;
    0, negative, NaN and inf mark pixels without a measurement. intrinsics: of both
    images (depth registered to colour). T_world_camera: (4, 4) float64 pose of the
    camera optical frame (x right, y down, z forward) in the map frame. stamp_ns:
    acquisition time in nanoseconds. frame_id: the camera's optical frame name.

    Construction validates shapes, dtypes and the pose and raises ValueError naming
    the problem; ``depth`` is converted to float32 and the pose to float64. A nearly
    rigid pose (a tracker's, or one written with a few digits) is projected onto SO(3)
    (``geometry.make_rigid``) and ``pose_correction`` records it.
    """

    color: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    T_world_camera: np.ndarray
    stamp_ns: int = 0
    frame_id: str = "camera"
    labels: np.ndarray | None = field(default=None)
    """Optional (H, W) integer label image (raw label ids, e.g. NYU40) aligned with colour."""
    instances: np.ndarray | None = field(default=None)
    """Optional (H, W) integer instance ids aligned with colour (0 = no instance)."""
    pose_correction: float = 0.0
    """Orthonormality error max |R R^T - I| of the given pose's rotation that was projected
    away onto SO(3); 0.0 when the pose was rigid. The larger of this and the error found
    on construction is kept, so a frame rebuilt from a projected one (``dataclasses.replace``)
    still counts as projected."""

    def __post_init__(self) -> None:
        color = np.asarray(self.color)
        depth = np.asarray(self.depth)
        if color.ndim != 3 or color.shape[2] != 3:
            raise ValueError(f"color must be (H, W, 3) RGB, got shape {color.shape}")
        if color.dtype != np.uint8:
            raise ValueError(f"color must be uint8, got {color.dtype}")
        if depth.ndim != 2:
            raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
        if not (np.issubdtype(depth.dtype, np.floating) or np.issubdtype(depth.dtype, np.integer)):
            raise ValueError(f"depth must be a float image in metres, got {depth.dtype}")
        if depth.dtype != np.float32:
            if np.issubdtype(depth.dtype, np.integer):
                raise ValueError(
                    f"depth must be float32 metres, got {depth.dtype} (convert millimetre images with depth / 1000)"
                )
            depth = depth.astype(np.float32)
        if color.shape[:2] != depth.shape:
            raise ValueError(f"color is {color.shape[1]}x{color.shape[0]} but depth is {depth.shape[1]}x{depth.shape[0]}")
        if depth.shape != self.intrinsics.shape:
            raise ValueError(
                f"images are {depth.shape[1]}x{depth.shape[0]} but the intrinsics are "
                f"{self.intrinsics.width}x{self.intrinsics.height}"
            )
        self.labels = _id_image(self.labels, "label", depth.shape)
        self.instances = _id_image(self.instances, "instance", depth.shape)
        self.color = color
        self.depth = depth
        self.T_world_camera, correction = make_rigid(self.T_world_camera, "T_world_camera")
        self.pose_correction = max(float(self.pose_correction), correction)
        self.stamp_ns = int(self.stamp_ns)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.depth.shape  # type: ignore[return-value]


def _id_image(values: np.ndarray | None, what: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """An optional integer id image aligned with the depth image; raises ValueError naming ``what``."""
    if values is None:
        return None
    image = np.asarray(values)
    if image.shape != shape:
        raise ValueError(f"{what} image is {image.shape} but depth is {shape}")
    if not np.issubdtype(image.dtype, np.integer):
        raise ValueError(f"{what} image must be integer ids, got {image.dtype}")
    return image
