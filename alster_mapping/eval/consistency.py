"""Label consistency on real frames without labels (issue 16).

Real RGB-D without ground truth still tells a model that gives noise from one that sees
rooms:

- **agreement**: a voxel seen in many frames is one surface; the share of its per-frame
  labels that equal its most frequent label (over voxels seen at least twice, weighted by
  observations). A model that learnt a look and not rooms flips labels from frame to
  frame; 1.0 means every view agreed.
- **plausibility** of the two classes geometry alone defines, from height above the floor
  and the normal's up component (``pipeline.gravity``): of the voxels labelled floor, the
  share that lie on a low horizontal surface; of those surfaces, the share labelled floor;
  of the voxels labelled wall, the share that are vertical; of the vertical surfaces
  higher than ``WALL_HEIGHT`` (where little but walls stands), the share labelled wall.

``LabelConsistency`` tallies per map row; ``measure_consistency`` replays a sequence.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.sequences import Sequence, skip_reason
from ..pipeline.gravity import GravityReference
from ..pipeline.online_mapper import OnlineMapper

# The camera-frame normals in Encoder2D.prepare_input's layout (RGB, depth, normals, ...).
NORMAL_CHANNELS = slice(4, 7)
# A floor voxel: within this height of the floor [m], normal within ~25 degrees of up.
FLOOR_HEIGHT = 0.1
FLOOR_NORMAL_UP = 0.9
# A vertical surface: normal within ~17 degrees of horizontal.
VERTICAL_NORMAL_UP = 0.3
# Above this height [m] vertical surfaces are mostly walls (furniture is lower).
WALL_HEIGHT = 1.8


class LabelConsistency:
    """Per-voxel tallies of per-frame labels and geometry over one replay.

    num_classes: C. floor, wall: class indices of floor and wall (None if the label
    space has none).
    """

    def __init__(self, num_classes: int, floor: int | None, wall: int | None):
        self.num_classes = num_classes
        self.floor, self.wall = floor, wall
        self.votes = np.zeros((0, num_classes), dtype=np.int32)
        self.geometry = np.zeros((0, 2), dtype=np.float64)  # sums of height [m] and normal . up
        self.frames = 0

    def add(self, rows: np.ndarray, labels: np.ndarray, geometry: np.ndarray) -> None:
        """One frame: rows (V,) int map rows, labels (V,) int its per-frame class indices,
        geometry (V, 2) float its voxels' mean height above the floor [m] and normal . up."""
        if rows.size and rows.max() >= len(self.votes):
            grow = int(rows.max()) + 1 - len(self.votes)
            self.votes = np.concatenate([self.votes, np.zeros((grow, self.num_classes), np.int32)])
            self.geometry = np.concatenate([self.geometry, np.zeros((grow, 2))])
        ok = labels >= 0
        np.add.at(self.votes, (rows[ok], labels[ok]), 1)
        np.add.at(self.geometry, rows[ok], geometry[ok])
        self.frames += 1

    def summary(self) -> dict:
        """The measures of the module docstring (None where nothing qualifies)."""
        seen = self.votes.sum(1)
        many = seen >= 2
        majority = self.votes.argmax(1)
        agreement = float(self.votes[many].max(1).sum() / seen[many].sum()) if many.any() else None
        observed = seen > 0
        height, normal_up = (self.geometry[observed] / seen[observed, None]).T
        label = majority[observed]
        low_flat = (np.abs(height) < FLOOR_HEIGHT) & (normal_up > FLOOR_NORMAL_UP)
        vertical = np.abs(normal_up) < VERTICAL_NORMAL_UP

        def share(selected: np.ndarray, condition: np.ndarray) -> float | None:
            return float(condition[selected].mean()) if selected.any() else None

        return {
            "frames": self.frames,
            "voxels": int(observed.sum()),
            "voxels_seen_twice": int(many.sum()),
            "agreement": agreement,
            "label_share": {int(c): float((label == c).mean()) for c in np.unique(label)} if label.size else {},
            "floor_labels_on_low_flat_surfaces": None if self.floor is None else share(label == self.floor, low_flat),
            "low_flat_surfaces_labelled_floor": None if self.floor is None else share(low_flat, label == self.floor),
            "wall_labels_on_vertical_surfaces": None if self.wall is None else share(label == self.wall, vertical),
            "high_vertical_surfaces_labelled_wall": None
            if self.wall is None
            else share(vertical & (height > WALL_HEIGHT), label == self.wall),
        }


def measure_consistency(sequence: Sequence, mapper: OnlineMapper, max_frames: int | None = None) -> dict:
    """Replay ``sequence`` into ``mapper`` (set ``alster.label_update = latest`` so each step
    returns the frame's own labels) and tally consistency. Frames that cannot be mapped are
    skipped and counted by reason. Returns ``LabelConsistency.summary()`` with the class
    names and ``skipped``."""
    if mapper.model is None:
        raise ValueError("label consistency measures a network's labels: the mapper runs label fusion")
    space = mapper.map.label_space
    names = list(space.names)
    tally = LabelConsistency(space.num_classes, _index(names, "floor"), _index(names, "wall"))
    gravity = GravityReference(mapper.config.gravity)
    skipped: dict[str, int] = {}
    for i in range(len(sequence)):
        if max_frames is not None and tally.frames >= max_frames:
            break
        try:
            frame = sequence.frame(i)
            result = mapper.step(frame, stages=True)  # stages: the step's own lifted voxels and input image
        except ValueError as exc:
            skipped[skip_reason(exc)] = skipped.get(skip_reason(exc), 0) + 1
            continue
        inputs = result.stages.inputs
        lifted = inputs.lifted
        normals = inputs.image[0, NORMAL_CHANNELS].permute(1, 2, 0)
        height, normal_up = gravity.channels(lifted.points, lifted.pixel_mask, normals, frame.T_world_camera)
        geometry = lifted.voxel_mean(lifted.pixel_values(torch.stack([height, normal_up], -1))).cpu().numpy()
        tally.add(result.rows.cpu().numpy(), result.labels.cpu().numpy(), geometry)
    summary = tally.summary()
    summary["label_share"] = {names[c]: share for c, share in summary["label_share"].items()}
    summary["skipped"] = skipped
    summary["floor_elevation_m"] = gravity.floor_elevation
    return summary


def _index(names: list[str], name: str) -> int | None:
    return names.index(name) if name in names else None
