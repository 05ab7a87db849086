"""The SAFNet recipe (issue 12): SAFNet on chunks of fused synthetic maps with their keyframes.

Data (``fusion_worlds``): each synthetic world (seeds >= 1000, the randomized look the
ALSTER model trained on) is fused into a voxel map labelled from its ground truth, with
the keyframes the node would keep and their frozen 2D features (the shipped ALSTER
model's image encoder unless ``data.image_checkpoint`` names another; SAFNet's 2D
classifier starts as that encoder's 2D head). A pool of training
chunks is cut once at setup: ``chunks_per_world`` columns around random voxels, each with
its greedily chosen views, and realistic misregistration so the similarities have
something to learn: each view is dropped with ``drop_view``, and a share
``misregistered`` of the others is back-projected under a pose moved by ``translation``
[m] and turned by ``rotation`` [degrees]; every view's depth gets relative noise
``depth_noise`` (the image features stay those of the true view: a pose error moves where
they land, not what they are). One phase: Adam with OneCycle on eq. 11. With
``model.map_prior`` each world is also mapped by that ALSTER model as the node would, and
its classes are the voxels' prior (hidden in a share ``prior_dropout`` of the chunks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ...core.config import param, section
from ...core.labels import LabelSpace
from ...data.sequences import parse_seed_range
from ...nets.registry import MODELS
from ...nets.safnet import SafnetConfig
from ...nets.safnet.inputs import SafnetChunk, stack_chunks
from ...nets.shipped import shipped_alster_checkpoint
from ...pipeline.keyframes import greedy_views, keyframe_visibility
from ...pipeline.map_chunks import ChunkConfig, build_chunk, perturb_pose
from ...pipeline.view_features import ViewPoints, image_encoder_digest
from ..recipe import RECIPES, OnePhaseRecipe, RecipeConfig
from .fusion_worlds import FusionWorld, image_encoder, synthetic_world


@dataclass
class MisregistrationConfig:
    """What goes wrong with the views of a training chunk (and of a misregistered evaluation)."""

    misregistered: float = param(0.3, "share of a chunk's views back-projected under a wrong pose", min=0.0, max=1.0)
    translation: float = param(0.1, "position error of a misregistered view [m]", min=0.0, max=10.0)
    rotation: float = param(5.0, "rotation error of a misregistered view [degrees]", min=0.0, max=180.0)
    depth_noise: float = param(0.01, "relative depth noise of every view's back-projected points (std)", min=0.0, max=1.0)
    drop_view: float = param(0.1, "chance that a chosen view of a training chunk is dropped", min=0.0, max=1.0)


@dataclass
class SafnetDataConfig:
    """Fused synthetic worlds with keyframes, cut into a pool of training chunks."""

    seeds: tuple[int, ...] = param(
        (1200, 1215),
        "synthetic worlds: [first, last] seed (inclusive); evaluation uses seeds below 1000. The default lies beyond the worlds "
        "the shipped ALSTER model trained on (1000-1191), so the frozen image features are as good here as on a new room",
        min=0,
    )
    frames: int = param(120, "frames walked per world (10 Hz)", min=1, max=100000)
    width: int = param(320, "rendered image width [px]", min=16, max=4096)
    height: int = param(240, "rendered image height [px]", min=16, max=4096)
    style: str = param("randomized", "look of the worlds (as the ALSTER model's training)", choices=("randomized", "classic"))
    voxel_size: float = param(0.04, "voxel edge of the fused maps [m] (the mapper's default)", min=0.005, max=1.0)
    chunks_per_world: int = param(40, "training chunks cut from each world", min=1, max=100000)
    image_checkpoint: str = param(
        "", "ALSTER checkpoint whose frozen 2D encoder gives the image features and whose online map gives the prior ('' = the shipped one)"
    )
    prior_dropout: float = param(
        0.2, "model.map_prior: chance that a training chunk's map classes are hidden (a map without labels yet)", min=0.0, max=1.0
    )
    misregistration: MisregistrationConfig = section(MisregistrationConfig)


@dataclass
class SafnetTrainConfig(RecipeConfig):
    """``alster train --model safnet``: data, chunks, schedule and the network."""

    label_space: str = param("scannet20", "label space of the heads")
    data: SafnetDataConfig = section(SafnetDataConfig)
    chunks: ChunkConfig = section(ChunkConfig)
    steps: int = param(2000, "optimizer steps (the shipped model: about 20 minutes on 2 CPU threads)", min=0)
    batch: int = param(8, "chunks per step", min=1, max=256)
    max_lr: float = param(1e-3, "OneCycle peak learning rate (the paper: Adam at 1e-3)", min=0.0, max=1.0)
    grad_clip: float = param(0.0, "clip the gradient norm at this value; 0 = off", min=0.0)
    model: SafnetConfig = section(SafnetConfig)


def image_checkpoint(checkpoint: str) -> str:
    """The ALSTER checkpoint whose 2D encoder is the frozen 2D branch ('' = the shipped one)."""
    return checkpoint or str(shipped_alster_checkpoint())


def disturbed_views(views: list[ViewPoints], config: MisregistrationConfig, rng: np.random.Generator) -> tuple[list[ViewPoints], list[np.ndarray]]:
    """``views`` with relative depth noise and, for a share of them, a misregistered pose:
    (views with noisy points, the poses to back-project them with)."""
    out, poses = [], []
    for view in views:
        noise = 1.0 + config.depth_noise * rng.standard_normal((len(view.camera_xyz), 1)).astype(np.float32)
        out.append(ViewPoints(view.camera_xyz * noise, view.features, view.labels, view.T_world_camera))
        moved = rng.random() < config.misregistered
        poses.append(perturb_pose(view.T_world_camera, config.translation, config.rotation, rng) if moved else view.T_world_camera)
    return out, poses


def training_chunks(
    world: FusionWorld,
    count: int,
    chunks: ChunkConfig,
    wrong: MisregistrationConfig,
    rng: np.random.Generator,
    feature_dim: int,
    prior_dropout: float = 0.0,
) -> list[SafnetChunk]:
    """``count`` chunks of ``world``: columns around random voxels, ``chunks.points`` voxels
    each, their chosen views disturbed (``disturbed_views``, some dropped), with the world's
    map prior (if it has one) hidden in a share ``prior_dropout`` of them."""
    out: list[SafnetChunk] = []
    visible = keyframe_visibility(world.xyz, world.keyframes, chunks.max_range)
    for _ in range(count * 3):  # columns too sparse are skipped; give up after 3x tries
        if len(out) == count:
            break
        centre = world.xyz[rng.integers(len(world.xyz)), :2] + rng.uniform(-0.25, 0.25, 2) * chunks.size
        inside = np.all(np.abs(world.xyz[:, :2] - centre) <= chunks.size / 2, axis=1)
        column = np.flatnonzero(inside)
        if len(column) < chunks.min_points:
            continue
        rows = rng.choice(column, chunks.points, replace=len(column) < chunks.points)
        chosen, _ = greedy_views(visible[:, column].toarray(), chunks.views)
        chosen = [i for i in chosen if rng.random() >= wrong.drop_view]
        views, poses = disturbed_views([world.views[i] for i in chosen], wrong, rng)
        prior = world.prior if rng.random() >= prior_dropout else None
        out.append(build_chunk(world.xyz, world.colour, world.labels, rows, views, poses, world.floor, chunks, rng, feature_dim, prior))
    return out


@RECIPES.register("safnet")
class SafnetRecipe(OnePhaseRecipe):
    """SAFNet trained on chunks of fused synthetic maps (see the module docstring).
    sequences: ``FusionWorld``s instead of ``config.data.seeds`` (tests, other data)."""

    config_class = SafnetTrainConfig

    def __init__(self, config: SafnetTrainConfig, sequences: list | None = None, rank: int = 0, world_size: int = 1):
        super().__init__(config, sequences, rank, world_size)
        self.device = torch.device("cpu")
        self.label_space = LabelSpace.load(config.label_space)
        data = config.data
        setup = time.perf_counter()
        self.image_checkpoint = ""
        if sequences is None:
            self.image_checkpoint = image_checkpoint(data.image_checkpoint)
            prior = config.model.map_prior
            shape = (data.frames, data.width, data.height, data.style, data.voxel_size, self.image_checkpoint, config.label_space, prior)
            worlds = [synthetic_world(seed, *shape) for seed in parse_seed_range(data.seeds)]
        else:
            worlds = list(sequences)
        width = {view.features.shape[1] for world in worlds for view in world.views}
        if len(width) > 1 or (width and width != {config.model.image_features}):
            raise ValueError(f"the views' features are {sorted(width)} wide, the model takes {config.model.image_features}")
        self.model = MODELS.build("safnet", config.model, num_classes=self.label_space.num_classes)
        if self.image_checkpoint and config.model.image_branch:
            # The 2D branch's classifier starts as the encoder's own 2D head (trained on 2D labels first).
            head = image_encoder(self.image_checkpoint, config.label_space).encoder.head
            with torch.no_grad():
                self.model.head_2d.weight.copy_(head.weight[:, :, 0, 0])
                self.model.head_2d.bias.copy_(head.bias)
        rng = np.random.default_rng([config.seed, 12])
        if config.model.map_prior and any(world.prior is None for world in worlds):
            raise ValueError("model.map_prior needs worlds with the online map's classes (FusionWorld.prior)")
        cut = (data.chunks_per_world, config.chunks, data.misregistration, rng, config.model.image_features, data.prior_dropout)
        self.chunks = [c for world in worlds for c in training_chunks(world, *cut)]
        self.world_names = [world.name for world in worlds]
        self.keyframes = sum(len(world.keyframes) for world in worlds)
        self.setup_seconds = time.perf_counter() - setup
        if not self.chunks:
            raise ValueError("no training chunks (worlds too small for the chunk size?)")

    def forward(self, phase: str, step: int, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.config.seed, 3, step, self.rank])
        batch = stack_chunks([self.chunks[int(i)] for i in rng.integers(len(self.chunks), size=self.config.batch)])
        return self.model.losses(self.model(batch), batch)

    def provenance(self) -> dict:
        return {
            "data_seeds": parse_seed_range(self.config.data.seeds),
            "sequences": self.world_names,
            "chunks": len(self.chunks),
            "keyframes": self.keyframes,
            "image_encoder": self.image_checkpoint,
            "image_encoder_digest": image_encoder_digest(self.image_checkpoint) if self.image_checkpoint else None,
        }
