"""Completing the scene behind one RGB-D frame with IMENet (issue 13): what ``alster complete`` and
the node's ``~/complete_scene`` run.

``complete_frame`` builds the volume in front of the frame's camera
(``core.completion_grid.observed_volume``: SSCNet's 4.8 x 4.8 x 2.88 m at 0.08 m, on the
floor), runs the model (T rounds of mutual refinement) and returns the completed classes
per voxel — in the camera's view: on the measured surface and hidden behind it; seen-free
and outside-view voxels are empty — their confidence, and the refined 2D segmentation. ``completion_points`` lists
the occupied voxels with a flag telling observed ones (on the measured surface) from
predicted ones (hidden, or inside objects) — predictions are never mixed into the map.

``estimate_floor`` gives a floor height from the frame alone when nothing better is known
(the node passes the mapper's floor).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.completion_grid import CompletionVolumeConfig, VolumeError, observed_volume
from ..core.frame import RGBDFrame
from ..core.geometry import backproject
from ..core.labels import LabelSpace
from ..core.samples import FREE, OUTSIDE, SURFACE, VoxelVolume
from ..nets.checkpoint import load_checkpoint
from ..nets.imenet.inputs import CompletionInput, completion_input, stack_inputs

__all__ = [
    "SceneCompletion", "VolumeError", "complete_frame", "completion_colors", "completion_points", "estimate_floor", "infer",
    "load_completion_model",
]  # fmt: skip

TASK = "scene_completion"
PREDICTED_TINT = 0.5
"""Predicted voxels are drawn this far towards white (observed ones in the plain class colour)."""


@dataclass
class SceneCompletion:
    """volume: the observed volume (its ``labels`` = the prediction). labels: (X, Y, Z) int64
    predicted ssc11 ids (0 empty). confidence: (X, Y, Z) float32 probability of that class.
    label_image: (h, w) int64 refined 2D classes (1..11) at the model's image width.
    image_confidence: (h, w) float32. seconds: inference time."""

    volume: VoxelVolume
    labels: np.ndarray
    confidence: np.ndarray
    label_image: np.ndarray
    image_confidence: np.ndarray
    seconds: float


def load_completion_model(path: str | Path):
    """(model in eval mode, card) of a scene-completion checkpoint; CheckpointError for a
    missing or corrupt file or a checkpoint of another kind of model."""
    return load_checkpoint(path, task=TASK)


def estimate_floor(frame: RGBDFrame, quantile: float = 0.02) -> float:
    """A floor height [m] from the frame alone: a low quantile of its depth points' world
    heights (the floor when it is in view, as it nearly always is for a robot's camera).
    Raises VolumeError for a frame without valid depth."""
    points, _ = backproject(torch.from_numpy(np.asarray(frame.depth, dtype=np.float32)), frame.intrinsics)
    if points.shape[0] == 0:
        raise VolumeError("the frame has no valid depth")
    heights = points.double().numpy() @ frame.T_world_camera[2, :3] + frame.T_world_camera[2, 3]
    return float(np.quantile(heights, quantile))


def infer(model, sample: CompletionInput, iterations: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``model`` (an ``ImenetModel``) on one input: (classes (X, Y, Z) int64 ssc11 ids with 0
    empty, their probability (X, Y, Z) float32, 2D classes (h, w) int64 in 1..11 — the empty
    channel is no answer for a pixel — and their probability (h, w) float32)."""
    model.eval()
    device = next(model.parameters()).device  # completion.device may put the model on a GPU
    with torch.no_grad():
        out = model({name: value.to(device) for name, value in stack_inputs([sample]).items()}, iterations=iterations)
    confidence, labels = torch.softmax(out.logits_3d[0].cpu(), 0).max(0)
    image_confidence, label_image = torch.softmax(out.logits_2d[0, 1:].cpu(), 0).max(0)
    return labels.numpy().astype(np.int64), confidence.numpy(), label_image.numpy().astype(np.int64) + 1, image_confidence.numpy()


def complete_frame(
    model, frame: RGBDFrame, floor_z: float, config: CompletionVolumeConfig | None = None, iterations: int | None = None
) -> SceneCompletion:
    """Complete the volume in front of ``frame`` (module docstring). model: an ``ImenetModel``;
    floor_z: world height of the floor [m]. Raises VolumeError for a frame that gives no volume."""
    start = time.perf_counter()
    volume = observed_volume(frame, floor_z, config)
    labels, confidence, label_image, image_confidence = infer(model, completion_input(volume, model.config.image_width), iterations)
    # What the camera saw through is empty, and outside its view nothing is predicted (the
    # model is neither trained nor scored there): the completion covers the view's surface
    # and the space hidden behind it.
    labels[(volume.visibility == FREE) | (volume.visibility == OUTSIDE)] = 0
    volume.labels = labels
    return SceneCompletion(volume, labels, confidence, label_image, image_confidence, time.perf_counter() - start)


def completion_colors(space: LabelSpace, ids: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """RGB uint8 (N, 3) of completed voxels: ssc11 ids (N,) in their class colours, the
    predicted ones (``observed`` (N,) False) ``PREDICTED_TINT`` of the way to white."""
    colors = space.colorize(np.asarray(ids) - 1).astype(np.float32)
    colors[~observed] = colors[~observed] * (1 - PREDICTED_TINT) + 255 * PREDICTED_TINT
    return colors.round().astype(np.uint8)


def completion_points(result: SceneCompletion) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The occupied voxels: centres (N, 3) float32 [m] in the world frame, ssc11 ids (N,) int64,
    confidence (N,) float32 and observed (N,) bool (on the measured surface; else predicted)."""
    occupied = result.labels > 0
    xyz = result.volume.centers()[occupied].astype(np.float32)
    observed = result.volume.visibility[occupied] == SURFACE
    return xyz, result.labels[occupied], result.confidence[occupied], observed
