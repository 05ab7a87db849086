"""The 2D branch of the fusion models: a frozen image encoder's features of a view,
back-projected to 3D (SAFNet section III-A: "pixels with features are back-projected into
3D space, utilizing depth values and camera matrixes").

The encoder is the project's own (``nets.encoder2d.Encoder2D`` of an ALSTER checkpoint,
trained on 2D labels first and then frozen, as SAFNet freezes its CNN). Its features come
at stride 4; each feature cell is back-projected with the depth pixel nearest its centre
(exact rays: ``CameraIntrinsics.subsampled``), so a 320x240 view gives up to 80x60 points (SAFNet resizes its views to 160x120 for the same
reason: memory).

Points are kept in the camera frame with the view's pose, so a training run can move a
view (a misregistered pose) without running the encoder again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..core.frame import RGBDFrame
from ..core.geometry import backproject, transform_points
from ..core.labels import LabelSpace
from ..core.tensor_file import CHECKSUM_KEY, read_metadata
from ..nets.encoder2d import Encoder2D
from .gravity import GravityConfig, GravityReference
from .network_input import network_image

STRIDE = 4
"""Output stride of the encoder's features."""


def image_encoder_digest(checkpoint: str | os.PathLike) -> str:
    """A short digest of the 2D encoder weights in an ALSTER checkpoint, from the per-tensor
    checksums in its metadata (no weights read; a card updated with new metrics keeps it).
    A fusion model records the digest of the encoder whose features it learnt on, so a
    different encoder is refused instead of giving features it never saw."""
    checksums = json.loads(read_metadata(checkpoint).get(CHECKSUM_KEY, "{}"))
    encoder = sorted((name, crc) for name, crc in checksums.items() if name.startswith("encoder2d."))
    if not encoder:
        raise ValueError(f"{checkpoint} holds no 2D encoder weights")
    return hashlib.sha256(json.dumps(encoder).encode()).hexdigest()[:16]


@dataclass
class ViewPoints:
    """One view's back-projected feature cells. camera_xyz: (M, 3) float32 [m] in the
    camera's optical frame. features: (M, D) float32. labels: (M,) int64 class indices of
    the pixels (-1 unknown or unlabelled view). T_world_camera: (4, 4) float64 pose."""

    camera_xyz: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    T_world_camera: np.ndarray

    def world_xyz(self, T_world_camera: np.ndarray | None = None) -> np.ndarray:
        """(M, 3) float32 world points [m] under the view's pose (or another one, e.g. a
        misregistered pose)."""
        T = self.T_world_camera if T_world_camera is None else T_world_camera
        return transform_points(T, torch.from_numpy(self.camera_xyz)).numpy()


class ViewFeatures:
    """Runs a frozen 2D encoder on views and back-projects its features.

    encoder: an ``Encoder2D`` (put in eval mode, never trained here). inputs: its input
    layout (``AlsterNetConfig.inputs``: camera or gravity). gravity: how up and the floor
    are found for the gravity channels; one ``GravityReference`` serves the views of one
    map, in the order given. max_range: depth beyond this is not back-projected [m].
    label_space: encodes the views' label images (training) when given.
    """

    def __init__(
        self,
        encoder: Encoder2D,
        inputs: str,
        gravity: GravityConfig | None = None,
        max_range: float = 3.0,
        label_space: LabelSpace | None = None,
    ):
        self.encoder = encoder.eval()
        self.inputs = inputs
        self.gravity = GravityReference(gravity or GravityConfig())
        self.max_range = max_range
        self.label_space = label_space

    @property
    def feature_dim(self) -> int:
        """D^2D: the width of the features."""
        return int(self.encoder.feature_dim)

    def reset(self) -> None:
        """Views of another map follow: forget the floor (and a first-camera up)."""
        self.gravity.reset()

    @torch.inference_mode()
    def __call__(self, frame: RGBDFrame) -> ViewPoints:
        """The view's feature cells with valid depth within range (possibly none)."""
        device = next(self.encoder.parameters()).device
        image, _ = network_image(frame, self.inputs, self.gravity, self.max_range, device)
        features, _ = self.encoder.forward_stride4(image)
        features = features[0].float().cpu()  # (D, h, w)
        grid = frame.intrinsics.subsampled(STRIDE, STRIDE // 2)  # one pixel per 4 x 4 block, near its centre
        rows, cols = min(grid.height, features.shape[1]), min(grid.width, features.shape[2])
        depth = np.ascontiguousarray(frame.depth[STRIDE // 2 :: STRIDE, STRIDE // 2 :: STRIDE][:rows, :cols])
        points, mask = backproject(torch.from_numpy(depth), dataclasses.replace(grid, width=cols, height=rows), self.max_range)
        cells = features[:, :rows, :cols].permute(1, 2, 0)[mask]
        labels = np.full(len(points), -1, np.int64)
        if frame.labels is not None and self.label_space is not None:
            label_cells = frame.labels[STRIDE // 2 :: STRIDE, STRIDE // 2 :: STRIDE][:rows, :cols]
            labels = self.label_space.encode(label_cells, "view labels").numpy()[mask.numpy()]
        return ViewPoints(points.numpy(), cells.numpy(), labels, np.asarray(frame.T_world_camera, np.float64))
