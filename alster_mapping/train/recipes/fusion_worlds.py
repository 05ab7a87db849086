"""Maps with their keyframes and view features, for training and evaluating SAFNet.

A sequence is walked once: every frame is fused into a voxel map (label fusion: the map
gives voxel centres and mean colours; the voxels take the world's ground truth, as the
instance models' data, ``data.map_samples``), offered to a ``KeyframeStore`` (the node's
rule and defaults), and each frame that becomes a keyframe is run through the frozen 2D
encoder (``pipeline.view_features``) with its label image. The map's floor is
``map_chunks.map_floor``. With an ``OnlineMapper`` the walk also maps the frames as the
node would, and the voxels get its classes as their prior (``SafnetConfig.map_prior``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ...core.config import MapConfig, apply_overrides
from ...core.geometry import voxel_keys
from ...core.labels import LabelSpace, nyu40
from ...data.map_samples import labelled_voxels
from ...data.sequences import Sequence, SyntheticSequence
from ...map.voxel_map import SemanticVoxelMap
from ...nets.checkpoint import load_checkpoint
from ...pipeline.keyframes import Keyframe, KeyframeConfig, KeyframeStore
from ...pipeline.label_fusion import LabelFusion
from ...pipeline.map_chunks import MapPrior, map_floor
from ...pipeline.mapping_config import MappingConfig
from ...pipeline.online_mapper import OnlineMapper
from ...pipeline.view_features import ViewFeatures, ViewPoints


@dataclass
class FusionWorld:
    """xyz: (V, 3) float32 voxel centres [m]; colour: (V, 3) uint8; labels: (V,) int64
    class indices (-1 unknown); floor [m]; keyframes and their views (same order); prior:
    the online mapper's classes of the voxels, or None."""

    name: str
    xyz: np.ndarray
    colour: np.ndarray
    labels: np.ndarray
    floor: float
    keyframes: list[Keyframe]
    views: list[ViewPoints]
    prior: MapPrior | None = None


def prepare_world(
    sequence: Sequence,
    voxel_size: float,
    features: ViewFeatures,
    label_space: LabelSpace,
    keyframes: KeyframeConfig | None = None,
    mapper: OnlineMapper | None = None,
) -> FusionWorld:
    """Walk ``sequence`` once (see the module docstring). Frames it cannot read, and frames
    the fusion or the mapper rejects, are counted in ``sequence.skipped`` (and not kept as
    keyframes). Raises ValueError without ground truth."""
    truth = sequence.ground_truth()
    if truth is None:
        raise ValueError(f"{sequence.name}: no ground truth to label the map with")
    space = nyu40()
    voxel_map = SemanticVoxelMap(MapConfig(voxel_size=voxel_size, feature_dim=space.num_classes), space)
    fusion = LabelFusion(voxel_map)
    store = KeyframeStore(keyframes)
    features.reset()
    views: dict[int, ViewPoints] = {}
    for frame in sequence:
        try:  # each checks the frame before changing its own map
            fusion.integrate(frame)
            if mapper is not None:
                mapper.step(frame)
        except ValueError as exc:
            sequence.count_skip(exc)  # e.g. no valid depth in range; not a keyframe either
            continue
        if store.consider(frame):
            views[id(store.keyframes()[-1])] = features(frame)  # the keyframe just added is the newest
    kept = store.keyframes()
    points = labelled_voxels(voxel_map, truth)
    labels = label_space.encode(points.labels, f"{sequence.name} voxel labels").numpy()
    prior = None
    if mapper is not None:  # the online map has the same voxel grid: look the voxels up by key
        online = mapper.map.crop(voxel_keys(torch.from_numpy(points.xyz.astype(np.float32)), voxel_size))
        prior = MapPrior(online.label.to(torch.int64).numpy(), online.confidence.float().numpy())
    xyz = points.xyz.astype(np.float32)
    return FusionWorld(sequence.name, xyz, points.rgb, labels, map_floor(points.xyz), kept, [views[id(k)] for k in kept], prior)


@functools.lru_cache(maxsize=4)
def image_encoder(checkpoint: str, label_space: str) -> ViewFeatures:
    """The frozen 2D branch: the image encoder of the ALSTER checkpoint at ``checkpoint``
    (batch norm folded), for the label space named ``label_space``; once per process."""
    space = LabelSpace.load(label_space)
    model, _ = load_checkpoint(checkpoint, space, task="semantic_mapping")
    return ViewFeatures(model.encoder2d.fused(), model.config.inputs, label_space=space)


@functools.lru_cache(maxsize=64)
def synthetic_world(
    seed: int, frames: int, width: int, height: int, style: str, voxel_size: float, checkpoint: str, label_space: str, prior: bool = False
) -> FusionWorld:
    """``prepare_world`` of synthetic world ``seed`` with the image encoder of ALSTER
    ``checkpoint`` (and, with ``prior``, that model's online map's classes), once per
    process (ablations train many models on the same worlds; callers must not modify the
    result)."""
    sequence = SyntheticSequence(seed, frames, width, height, style)
    mapper = None
    if prior:
        overrides = {"alster.checkpoint": checkpoint, "map.voxel_size": voxel_size, "label_space": label_space}
        mapper = OnlineMapper(apply_overrides(MappingConfig(), overrides))
    return prepare_world(sequence, voxel_size, image_encoder(checkpoint, label_space), LabelSpace.load(label_space), mapper=mapper)
