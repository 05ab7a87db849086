"""The IMENet recipe (issue 13): scene completion and 2D segmentation from frames of synthetic worlds.

Data: each synthetic world (``data.seeds``, beyond the other families' training worlds)
is walked for ``data.frames`` frames; every ``data.every``-th gives a completion volume
(``data/completion_volumes.py``: SSCNet's volume in front of the camera, solid objects,
ssc11 classes) and the frame's 2D labels in the same classes. Frames whose camera looks
straight down or whose depth misses the volume are skipped and counted. Training steps draw
random crops (``data.crop`` voxels across the width and depth, the full height; the
network is convolutional and completes whole volumes at inference).

Protocol (section 3.6): softmax cross-entropy (in 3D on non-empty and occluded voxels),
SGD with momentum 0.9 and weight decay 1e-4, under OneCycle. Two deviations for a budget
of hundreds of CPU steps instead of days on a GPU, both measured (docs/RESULTS.md): the 3D
branch, which starts from scratch, learns at 0.05 (the paper: 0.005 for everything; at
0.005 it still predicted every voxel empty after 150 steps), the 2D branch from ImageNet
weights at the paper's 0.005 (faster, it forgot them); and SSCNet's data balancing
(``empty_ratio`` 1: the occluded empty voxels, which outnumber the others 20:1, count as
many as the non-empty ones) which the paper does without. Phases:

* ``separate``: both branches learn their own coarse predictions (no interaction) — the
  whole of variant A's training, the first ``1 / (1 + 2 * rounds)`` of the others';
* with iterative learning (variants B-E), ``rounds`` times ``ssc_K`` then ``ss_K``: the 3D
  branch (with DDA) learns with the 2D branch frozen, then the 2D branch (with DCP) with
  the 3D branch frozen — each seeing the other's latest predictions through T iterations.

``budget``: every variant takes the same number of optimizer steps (``steps``, split evenly
over its phases: with iterative learning each branch is then updated in fewer of them), or
each branch is updated ``steps`` times (phases of equal length, more steps in all).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ...core.config import param, section
from ...data.completion_volumes import SSC_LABEL_SPACE, CompletionVolumeConfig, VolumeError, completion_volume, nyu40_to_ssc, ssc_label_space
from ...data.sequences import SyntheticSequence, parse_seed_range
from ...nets.imenet import ImenetConfig
from ...nets.imenet.inputs import CompletionInput, completion_input, crop, stack_inputs
from ...nets.imenet.model import completion_losses
from ...nets.registry import MODELS
from ..recipe import RECIPES, Phase, Recipe, RecipeConfig


@dataclass
class ImenetDataConfig:
    """Completion volumes of synthetic frames."""

    seeds: tuple[int, ...] = param(
        (1400, 1415), "synthetic worlds: [first, last] seed (inclusive); evaluation uses seeds below 1000", min=0
    )
    frames: int = param(60, "frames walked per world (10 Hz)", min=1, max=100000)
    every: int = param(6, "every n-th frame gives a training volume", min=1, max=100000)
    width: int = param(320, "rendered image width [px]", min=16, max=4096)
    height: int = param(240, "rendered image height [px]", min=16, max=4096)
    style: str = param("randomized", "look of the worlds", choices=("randomized", "classic"))
    crop: int = param(32, "training crops: voxels across the width and the depth (full height); 0 = whole volumes", min=0, max=1024)
    volume: CompletionVolumeConfig = section(CompletionVolumeConfig)


@dataclass
class ImenetTrainConfig(RecipeConfig):
    """``alster train --model imenet``: data, schedule and the network."""

    label_space: str = param(SSC_LABEL_SPACE, "label space of the heads (the 11 scene-completion classes)", choices=(SSC_LABEL_SPACE,))
    data: ImenetDataConfig = section(ImenetDataConfig)
    steps: int = param(600, "training length, counted as `budget` says", min=0)
    budget: str = param(
        "optimizer_steps",
        "what `steps` counts: optimizer steps over all phases (the same compute for every variant), or the updates each branch gets "
        "(iterative learning then takes (1 + 2 rounds) / (1 + rounds) times the steps of variant A)",
        choices=("optimizer_steps", "branch_updates"),
    )
    rounds: int = param(2, "iterative learning: alternations of the 3D and the 2D branch's phases", min=1, max=20)
    batch: int = param(2, "volumes per step", min=1, max=64)
    lr_3d: float = param(0.05, "peak learning rate of SGD for the 3D branch and DDA, trained from scratch (the paper: 0.005)", min=0.0, max=10.0)
    lr_2d: float = param(0.005, "peak learning rate of SGD for the 2D branch (ImageNet weights) and DCP (the paper: 0.005)", min=0.0, max=10.0)
    momentum: float = param(0.9, "SGD momentum (the paper: 0.9)", min=0.0, max=0.999)
    weight_decay: float = param(1e-4, "SGD weight decay (the paper: 1e-4)", min=0.0, max=1.0)
    coarse_weight: float = param(1.0, "weight of the coarse predictions' own losses beside the refined ones", min=0.0, max=100.0)
    empty_ratio: float = param(
        1.0,
        "SSCNet's data balancing: occluded empty voxels count as this many times the non-empty ones (0 = off, the paper's protocol)",
        min=0.0,
        max=1000.0,
    )
    grad_clip: float = param(10.0, "clip the gradient norm at this value; 0 = off", min=0.0)
    model: ImenetConfig = section(ImenetConfig)


def world_samples(sequence: SyntheticSequence, config: ImenetDataConfig, image_width: int) -> tuple[list[CompletionInput], dict[str, int]]:
    """The training inputs of one world's frames, and how many frames were skipped, by reason."""
    truth = sequence.ground_truth()
    lut = nyu40_to_ssc()
    samples, skipped = [], {}
    for index in range(0, len(sequence), config.every):
        frame = sequence.frame(index)
        try:
            volume = completion_volume(frame, truth, 0.0, sequence.world.solid_labels, config.volume)
        except VolumeError as exc:
            reason = "no_horizontal_view" if "straight" in str(exc) else "no_depth_in_volume"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        labels_2d = lut[np.asarray(frame.labels, dtype=np.int64)] if frame.labels is not None else None
        samples.append(completion_input(volume, image_width, labels_2d))
    return samples, skipped


def training_samples(config: ImenetDataConfig, image_width: int) -> tuple[list[CompletionInput], dict[str, int], list[str]]:
    """The inputs of every training world (``config.seeds``), the frames skipped by reason, and the worlds' names."""
    samples, skipped, names = [], {}, []
    for seed in parse_seed_range(config.seeds):
        sequence = SyntheticSequence(seed, config.frames, config.width, config.height, style=config.style)
        found, dropped = world_samples(sequence, config, image_width)
        samples += found
        names.append(sequence.name)
        for reason, count in dropped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    return samples, skipped, names


@RECIPES.register("imenet")
class ImenetRecipe(Recipe):
    """IMENet on completion volumes of synthetic frames (see the module docstring).
    sequences: ``CompletionInput`` lists per world instead of ``config.data.seeds`` (tests)."""

    config_class = ImenetTrainConfig

    def __init__(self, config: ImenetTrainConfig, sequences: list | None = None, rank: int = 0, world_size: int = 1):
        super().__init__(config, sequences, rank, world_size)
        self.device = torch.device("cpu")
        self.label_space = ssc_label_space()
        setup = time.perf_counter()
        self.skipped: dict[str, int] = {}
        self.world_names: list[str] = []
        if sequences is None:
            self.samples, self.skipped, self.world_names = training_samples(config.data, config.model.image_width)
        else:
            self.samples = [s for world in sequences for s in world]
        if not self.samples:
            raise ValueError(f"no training volumes (frames skipped: {self.skipped})")
        self.model = MODELS.build("imenet", config.model, num_classes=self.label_space.num_classes)
        self.setup_seconds = time.perf_counter() - setup

    # -- phases ----------------------------------------------------------------------------------

    def phases(self) -> list[str]:
        if not self.config.model.iterative_learning:
            return ["separate"]
        return ["separate"] + [f"{task}_{k}" for k in range(1, self.config.rounds + 1) for task in ("ssc", "ss")]

    def steps(self, phase: str) -> int:
        names = self.phases()
        if self.config.budget == "optimizer_steps":
            share, extra = divmod(self.config.steps, len(names))
            return share + (1 if names.index(phase) < extra else 0)
        # branch_updates: each branch is updated ``steps`` times — in ``separate`` and in its
        # own phases, all of one length (the IL variants take more optimizer steps than A).
        share, extra = divmod(self.config.steps, 1 + (len(names) - 1) // 2)
        position = 0 if phase == "separate" else int(phase.rsplit("_", 1)[1])
        return share + (1 if position < extra else 0)

    def phase_config_keys(self, phase: str) -> set[str]:
        return set()

    def start_phase(self, phase: str) -> Phase:
        model = self.model
        model.train()
        model.branch_2d.eval()  # batch norm statistics stay the pretrained ones (batches of 2)
        cfg = self.config
        side_3d = list(model.branch_3d.parameters()) + (list(model.dda.parameters()) if model.dda is not None else [])
        side_2d = list(model.branch_2d.parameters()) + (list(model.dcp.parameters()) if model.dcp is not None else [])
        if phase == "separate":
            groups = [(list(model.branch_2d.parameters()), cfg.lr_2d), (list(model.branch_3d.parameters()), cfg.lr_3d)]
        elif phase.startswith("ssc_"):
            groups = [(side_3d, cfg.lr_3d)]
        else:
            groups = [(side_2d, cfg.lr_2d)]
        trainable = {id(p) for parameters, _ in groups for p in parameters}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)  # the other branch is frozen (iterative learning)
        return Phase(self.steps(phase), groups, 1, cfg.grad_clip, optimizer="sgd", momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def forward(self, phase: str, step: int, index: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 13, self.phases().index(phase), step, self.rank])
        chosen = [self.samples[int(i)] for i in rng.integers(len(self.samples), size=cfg.batch)]
        batch = stack_inputs([crop(s, cfg.data.crop, rng) for s in chosen])
        if phase == "separate":
            return completion_losses(self.model(batch, iterations=0), batch, ("2d", "3d"), cfg.coarse_weight, cfg.empty_ratio)
        task = "3d" if phase.startswith("ssc_") else "2d"
        return completion_losses(self.model(batch), batch, (task,), cfg.coarse_weight, cfg.empty_ratio)

    def provenance(self) -> dict:
        return {
            "data_seeds": parse_seed_range(self.config.data.seeds),
            "sequences": self.world_names,
            "volumes": len(self.samples),
            "frames_skipped": self.skipped,
            "variant": self.config.model.variant_name,
        }
