"""Training on point blocks of fused maps, shared by the instance models' recipes (ASIS, BAN).

Data that looks like what the node's ``~/segment_instances`` will see: each synthetic world
(seeds >= 1000) is walked and fused into a voxel map at the map's voxel size (the label
images only drive the fusion; the map gives the voxel centres and mean colours), its voxels
take the world's ground truth (``data.map_samples``: raw label + instance id of the nearest
ground-truth point), and the map is cut into 1 m columns of a fixed number of points
(``data.point_blocks``). Each point's input is its position centred on the block's floor
plan, its colour (0..1) and its position normalised to the map's extent (the 9-d input of
ASIS section 4: XYZ, RGB, normalised room coordinates). One phase: Adam with OneCycle, the
model's ``losses`` (cross-entropy plus the discriminative loss).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch

from ...core.config import MapConfig, param, section
from ...core.labels import LabelSpace, nyu40
from ...core.samples import PointBlock
from ...data.map_samples import labelled_voxels
from ...data.point_blocks import cut_blocks
from ...data.sequences import SyntheticSequence, parse_seed_range
from ...map.voxel_map import SemanticVoxelMap
from ...nets.points.inputs import block_inputs
from ...nets.points.pointnet2 import PointNet2Config
from ...nets.registry import MODELS
from ...pipeline.label_fusion import LabelFusion
from ..recipe import OnePhaseRecipe, RecipeConfig


@dataclass
class PointDataConfig:
    """Labelled voxels of maps fused from synthetic worlds, cut into blocks."""

    seeds: tuple[int, ...] = param((1000, 1015), "synthetic worlds: [first, last] seed (inclusive); evaluation uses seeds below 1000", min=0)
    frames: int = param(120, "frames walked per world (10 Hz; as make demo's map)", min=1, max=100000)
    width: int = param(320, "rendered image width [px] (the map, not the image, is the model's input)", min=16, max=4096)
    height: int = param(240, "rendered image height [px]", min=16, max=4096)
    voxel_size: float = param(0.04, "voxel edge of the fused maps [m] (the mapper's default)", min=0.005, max=1.0)
    block_size: float = param(1.0, "edge of the block columns [m] (the paper: 1)", min=0.1, max=10.0)
    stride: float = param(0.5, "step between block columns [m]", min=0.05, max=10.0)
    points: int = param(1024, "points per block (the paper: 4096; 1024 on a CPU)", min=16, max=65536)
    min_points: int = param(100, "columns with fewer voxels are dropped", min=1)


def backbone_for_1024_points() -> PointNet2Config:
    """PointNet++ for 1,024-point blocks: the paper's centroids (1024 / 256 / 64 / 16 for
    4,096 points) scaled by the same quarter, everything else as in the paper (for BAN this
    also keeps its N x N attention at 4 MB per matrix)."""
    return PointNet2Config(centroids=(256, 64, 16, 4))


@dataclass
class InstanceTrainConfig(RecipeConfig):
    """What every instance recipe's config holds before its ``model`` section."""

    label_space: str = param("scannet20", "label space of the semantic head")
    data: PointDataConfig = section(PointDataConfig)
    steps: int = param(2000, "optimizer steps", min=0)
    batch: int = param(8, "blocks per step", min=1, max=256)
    max_lr: float = param(1e-3, "OneCycle peak learning rate (ASIS: Adam at 1e-3)", min=0.0, max=1.0)
    grad_clip: float = param(0.0, "clip the gradient norm at this value; 0 = off", min=0.0)


def fused_map_points(sequence: SyntheticSequence, voxel_size: float) -> PointBlock:
    """The sequence fused into a voxel map (centres, mean colours), labelled from its ground
    truth. Deterministic, so fused worlds are kept per process (``fused_world``)."""
    space = nyu40()
    voxel_map = SemanticVoxelMap(MapConfig(voxel_size=voxel_size, feature_dim=space.num_classes), space)
    fusion = LabelFusion(voxel_map)
    for frame in sequence:
        fusion.integrate(frame)
    return labelled_voxels(voxel_map, sequence.ground_truth())


@functools.lru_cache(maxsize=256)
def fused_world(seed: int, frames: int, width: int, height: int, voxel_size: float) -> PointBlock:
    """``fused_map_points`` of synthetic world ``seed``, computed once per process (ablations
    train many models on the same worlds; callers must not modify the result)."""
    return fused_map_points(SyntheticSequence(seed, frames, width, height), voxel_size)


class InstanceBlockRecipe(OnePhaseRecipe):
    """An instance model trained on blocks (see the module docstring). Subclasses set
    ``config_class`` (an ``InstanceTrainConfig`` with a ``model`` section) and
    ``model_name`` (the registry name). sequences: training data instead of
    ``config.data.seeds``: synthetic sequences (fused here) or ``PointBlock`` scenes with
    raw labels, instance ids and colours (cut into blocks as they are)."""

    model_name = ""

    def __init__(self, config: InstanceTrainConfig, sequences: list | None = None, rank: int = 0, world_size: int = 1):
        super().__init__(config, sequences, rank, world_size)
        if config.model.in_channels != 6:
            raise ValueError(f"model.in_channels must be 6 (colour + normalised position), got {config.model.in_channels}")
        self.device = torch.device("cpu")
        self.label_space = LabelSpace.load(config.label_space)
        self.model = MODELS.build(self.model_name, config.model, num_classes=self.label_space.num_classes)
        data = config.data
        setup = time.perf_counter()
        if sequences is None:
            scenes = [fused_world(seed, data.frames, data.width, data.height, data.voxel_size) for seed in parse_seed_range(data.seeds)]
        else:
            scenes = [item if isinstance(item, PointBlock) else fused_map_points(item, data.voxel_size) for item in sequences]
        self.scene_names = [scene.name for scene in scenes]
        rng = np.random.default_rng(config.seed)
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.model.instance_sizes.fit([self.scene_targets(points) for points in scenes])
        for points in scenes:
            low = points.xyz.min(0)
            extent = points.xyz.max(0) - low
            for block in cut_blocks(points, rng, data.block_size, data.stride, data.points, data.min_points):
                xyz, features = block_inputs(block, low, extent)
                self.blocks.append((xyz, features, *self.scene_targets(block)))
        self.setup_seconds = time.perf_counter() - setup
        if not self.blocks:
            raise ValueError("no training blocks (worlds too small for the block size?)")

    def scene_targets(self, points: PointBlock) -> tuple[np.ndarray, np.ndarray]:
        """(semantic (N,) class index, -1 = ignored; instance (N,) id, -1 = none) of labelled points."""
        semantic = self.label_space.encode(points.labels, "block labels").numpy()
        return semantic, np.where(points.instances > 0, points.instances, -1)

    def forward(self, phase: str, step: int, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.config.seed, 3, step, self.rank])
        chosen = [self.blocks[int(i)] for i in rng.integers(len(self.blocks), size=self.config.batch)]
        xyz, features, semantic, instances = (torch.from_numpy(np.stack(part)) for part in zip(*chosen))
        out = self.model(xyz, features)
        return self.model.losses(out, semantic.long(), instances.long())

    def provenance(self) -> dict:
        data = self.config.data
        sizes = self.model.instance_sizes.mean_points.tolist()
        return {
            "data_seeds": parse_seed_range(data.seeds),
            "sequences": self.scene_names,
            "blocks": len(self.blocks),
            "mean_instance_voxels": {name: round(size, 1) for name, size in zip(self.label_space.names, sizes) if size > 0},
        }
