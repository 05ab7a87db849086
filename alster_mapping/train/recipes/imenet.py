"""The IMENet recipe (issue 13): scene completion and 2D segmentation from frames of synthetic worlds.

Data: each synthetic world (``data.seeds``, beyond the other families' training worlds)
is walked for ``data.frames`` frames; every ``data.every``-th gives a completion volume
(``data/completion_volumes.py``: SSCNet's volume in front of the camera, solid objects,
ssc11 classes) and the frame's 2D labels in the same classes. Frames whose camera looks
straight down or whose depth misses the volume are skipped and counted. Training steps draw
random crops (``data.crop`` voxels across the width and depth, the full height; the
network is convolutional and completes whole volumes at inference).

Protocol (section 3.6): softmax cross-entropy without class balancing (in 3D on non-empty
and occluded voxels), SGD with momentum 0.9 and weight decay 1e-4 (the paper's learning
rate 0.005, here under OneCycle). Phases:

* ``separate``: both branches learn their own coarse predictions (no interaction) — the
  whole of variant A's training, the first ``1 / (1 + 2 * rounds)`` of the others';
* with iterative learning (variants B-E), ``rounds`` times ``ssc_K`` then ``ss_K``: the 3D
  branch (with DDA) learns with the 2D branch frozen, then the 2D branch (with DCP) with
  the 3D branch frozen — each seeing the other's latest predictions through T iterations.

Every variant takes the same number of optimizer steps (``steps``), split evenly over its phases.
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
    steps: int = param(600, "optimizer steps over all phases", min=0)
    rounds: int = param(2, "iterative learning: alternations of the 3D and the 2D branch's phases", min=1, max=20)
    batch: int = param(2, "volumes per step", min=1, max=64)
    lr: float = param(0.005, "peak learning rate of SGD (the paper: 0.005)", min=0.0, max=10.0)
    momentum: float = param(0.9, "SGD momentum (the paper: 0.9)", min=0.0, max=0.999)
    weight_decay: float = param(1e-4, "SGD weight decay (the paper: 1e-4)", min=0.0, max=1.0)
    coarse_weight: float = param(1.0, "weight of the coarse predictions' own losses beside the refined ones", min=0.0, max=100.0)
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
        data = config.data
        self.skipped: dict[str, int] = {}
        self.world_names: list[str] = []
        if sequences is None:
            self.samples = []
            for seed in parse_seed_range(data.seeds):
                sequence = SyntheticSequence(seed, data.frames, data.width, data.height, style=data.style)
                samples, skipped = world_samples(sequence, data, config.model.image_width)
                self.samples += samples
                self.world_names.append(sequence.name)
                for reason, count in skipped.items():
                    self.skipped[reason] = self.skipped.get(reason, 0) + count
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
        share, extra = divmod(self.config.steps, len(names))
        return share + (1 if names.index(phase) < extra else 0)

    def phase_config_keys(self, phase: str) -> set[str]:
        return set()

    def start_phase(self, phase: str) -> Phase:
        model = self.model
        model.train()
        model.branch_2d.eval()  # batch norm statistics stay the pretrained ones (batches of 2)
        if phase == "separate":
            parameters = list(model.branch_2d.parameters()) + list(model.branch_3d.parameters())
        elif phase.startswith("ssc_"):
            parameters = list(model.branch_3d.parameters()) + (list(model.dda.parameters()) if model.dda is not None else [])
        else:
            parameters = list(model.branch_2d.parameters()) + (list(model.dcp.parameters()) if model.dcp is not None else [])
        trainable = {id(p) for p in parameters}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)  # the other branch is frozen (iterative learning)
        cfg = self.config
        return Phase(
            self.steps(phase), [(parameters, cfg.lr)], 1, cfg.grad_clip, optimizer="sgd", momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )

    def forward(self, phase: str, step: int, index: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 13, self.phases().index(phase), step, self.rank])
        chosen = [self.samples[int(i)] for i in rng.integers(len(self.samples), size=cfg.batch)]
        batch = stack_inputs([crop(s, cfg.data.crop, rng) for s in chosen])
        if phase == "separate":
            return completion_losses(self.model(batch, iterations=0), batch, ("2d", "3d"), cfg.coarse_weight)
        task = "3d" if phase.startswith("ssc_") else "2d"
        return completion_losses(self.model(batch), batch, (task,), cfg.coarse_weight)

    def provenance(self) -> dict:
        return {
            "data_seeds": parse_seed_range(self.config.data.seeds),
            "sequences": self.world_names,
            "volumes": len(self.samples),
            "frames_skipped": self.skipped,
            "variant": self.config.model.variant_name,
        }
