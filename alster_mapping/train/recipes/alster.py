"""The ALSTER recipe: optional 2D pre-training, then joint sequential training (Weder et al., sec. 3-4).

Stage 1 (``pretrain_2d``) fine-tunes the ImageNet-initialised 2D encoder alone on per-pixel
labels with the focal loss of its auxiliary head. Stage 2 (``joint``) trains the whole
pipeline the way it runs: ``batch`` sequences side by side, each with its own map; every
forward takes one frame of each sequence, crops the frame's voxels from that map, runs
the three stages, adds eq. 4 (focal loss, gamma = 1, on the 2D, 3D and expert heads) and
writes the expert's detached features back, so every frame is one truncated step of the
sequence. As the paper prescribes, frames are visited in a random permutation of each
trajectory and maps are reset at random, so the expert sees scenes at every stage of
reconstruction. Adam with a OneCycle schedule (peak 1e-3 for the 3D network and the
expert; the paper's 1e-5 for the pretrained 2D encoder with ``joint.max_lr_2d=1e-5``, by
default 0, which freezes it: on a CPU its backward is a third of a joint step, and the
time buys twice the 2D pre-training), gradients summed over ``accumulate`` forwards.
Pre-training mirrors half of its images (``pretrain_2d.flip``). Both stages jitter the
colour and drop the colour or the gravity channels at random (``augment``, ``train/augment.py``),
and the synthetic worlds are drawn in the randomized style (``data.style``): a model that
learnt one synthetic look is noise on a real scan (issue 16).

Everything random is drawn from generators seeded by ``seed``. The one training loop
(``train/loop.py``) runs both stages: optimizer, schedule, accumulation, clipping, the
resumable state (this recipe adds the sequence positions; maps restart empty on resume,
like a reset) and the card. Multi-GPU: run under ``torchrun``; the model is wrapped in
``DistributedDataParallel`` and each rank draws its own sequences.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...core.config import param, section
from ...core.labels import LabelSpace
from ...data.sequences import ScanNetSequence, Sequence, SyntheticSequence, parse_seed_range
from ...nets.alster import AlsterModel
from ...nets.losses import focal_loss
from ...nets.registry import MODELS
from ...pipeline.gravity import GravityReference
from ...pipeline.mapping_config import MappingConfig
from ...pipeline.network_input import network_image
from ...pipeline.online_mapper import OnlineMapper, frame_targets
from ..augment import AugmentConfig, drop_input_groups, jitter_color
from ..recipe import RECIPES, Phase, Recipe, RecipeConfig


@dataclass
class TrainDataConfig:
    """Where training sequences come from."""

    source: str = param("synthetic", "synthetic: generated worlds; scannet: exported ScanNet-layout scenes", choices=("synthetic", "scannet"))
    seeds: tuple[int, ...] = param(
        (1000, 1191), "synthetic worlds: [first, last] seed (inclusive); keep them apart from evaluation seeds (0-999)", min=0
    )
    scannet_root: str = param("", "scannet: directory whose sub-directories are exported scenes (color/, depth/, pose/, intrinsic/)")
    frames: int = param(60, "frames per synthetic trajectory (10 Hz)", min=2, max=100000)
    stride: int = param(1, "scannet: use every n-th frame", min=1, max=1000)
    width: int = param(320, "synthetic image width [px]", min=16, max=4096)
    height: int = param(240, "synthetic image height [px]", min=16, max=4096)
    style: str = param(
        "randomized",
        "synthetic worlds' look: randomized (many material, light and sensor families: domain randomization), "
        "classic (one family, the look of the first shipped models)",
        choices=("randomized", "classic"),
    )


@dataclass
class Pretrain2DConfig:
    """Stage 1 (optional): the 2D encoder alone on 2D labels (ALSTER section 3: fine-tuned on 2D data first)."""

    steps: int = param(2400, "optimizer steps; 0 skips the stage", min=0)
    batch: int = param(4, "images per step", min=1, max=256)
    flip: bool = param(True, "mirror half of the images left-right (the normals' x with them)")
    max_lr: float = param(1e-3, "OneCycle peak learning rate of the decoder and heads", min=0.0, max=1.0)
    backbone_lr_scale: float = param(0.1, "backbone learning rate relative to max_lr (it starts from ImageNet)", min=0.0, max=1.0)


@dataclass
class JointConfig:
    """Stage 2: the whole pipeline trained sequentially (ALSTER section 3 and 4, implementation details)."""

    steps: int = param(2000, "optimizer steps", min=0)
    batch: int = param(4, "sequences trained side by side, one frame of each per forward (the paper: 4)", min=1, max=64)
    accumulate: int = param(
        1,
        "forwards whose gradients are summed per step (the paper: 2, an effective batch of 8; 1 gives twice the steps on a CPU budget)",
        min=1,
        max=64,
    )
    max_lr: float = param(1e-3, "OneCycle peak learning rate of the 3D network and the temporal expert (the paper: 1e-3)", min=0.0, max=1.0)
    max_lr_2d: float = param(
        0.0,
        "OneCycle peak learning rate of the pretrained 2D encoder (the paper: 1e-5); 0 freezes it in this stage, "
        "which skips its backward (steps about 35% shorter on a CPU)",
        min=0.0,
        max=1.0,
    )
    reset_probability: float = param(
        0.02, "chance per frame that a sequence's map is reset, so the model sees scenes at every stage of reconstruction", min=0.0, max=1.0
    )
    grad_clip: float = param(10.0, "clip the gradient norm at this value in both stages; 0 = off", min=0.0)


@dataclass
class AlsterTrainConfig(RecipeConfig):
    """``alster train --model alster``: data, the two training stages and the network being trained."""

    data: TrainDataConfig = section(TrainDataConfig)
    pretrain_2d: Pretrain2DConfig = section(Pretrain2DConfig)
    joint: JointConfig = section(JointConfig)
    augment: AugmentConfig = section(AugmentConfig)
    mapping: MappingConfig = section(MappingConfig, "the label space, map geometry, ranges and network (as the mapper uses them)")


def training_sequences(cfg: AlsterTrainConfig) -> list[Sequence]:
    """The training sequences the config names (synthetic seeds or ScanNet scenes)."""
    data = cfg.data
    if data.source == "synthetic":
        return [SyntheticSequence(seed, data.frames, data.width, data.height, style=data.style) for seed in parse_seed_range(data.seeds)]
    root = Path(data.scannet_root)
    if not root.is_dir():
        raise ValueError(f"data.scannet_root {str(root)!r} is not a directory")
    scenes = sorted(p for p in root.iterdir() if (p / "pose").is_dir())
    if not scenes:
        raise ValueError(f"{root}: no exported ScanNet scenes (sub-directories with pose/)")
    return [ScanNetSequence(p, data.stride) for p in scenes]


# Unreadable frames drawn for one pre-training batch before the run gives up on the data.
MAX_BAD_FRAMES_PER_BATCH = 1000


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent generator for (seed, stream...) so each draw is reproducible on its own."""
    return np.random.default_rng([int(seed), *map(int, stream)])


@dataclass
class Slot:
    """One of the ``joint.batch`` sequences trained side by side: which sequence, the
    permutation of its frames, how far along it is, and its map."""

    sequence: int = -1
    order: list[int] = field(default_factory=list)
    position: int = 0
    mapper: OnlineMapper | None = None

    def state(self) -> dict:
        return {"sequence": self.sequence, "order": self.order, "position": self.position}


@RECIPES.register("alster")
class AlsterRecipe(Recipe):
    """ALSTER's two stages. sequences: training sequences (default: from ``config.data``)."""

    config_class = AlsterTrainConfig

    def __init__(self, config: AlsterTrainConfig, sequences: list[Sequence] | None = None, rank: int = 0, world_size: int = 1):
        super().__init__(config, sequences, rank, world_size)
        self.cfg = config
        self.device = torch.device(config.mapping.map.device)
        self.label_space = LabelSpace.load(config.mapping.label_space)
        m = config.mapping
        self.model: AlsterModel = MODELS.build(
            "alster", m.model, num_classes=self.label_space.num_classes, feature_dim=m.map.feature_dim
        ).to(self.device)
        setup = time.perf_counter()
        self.sequences = sequences if sequences is not None else training_sequences(config)
        self.setup_seconds = time.perf_counter() - setup  # building worlds/scenes, outside the step times
        if not self.sequences:
            raise ValueError("no training sequences")
        self.slots: list[Slot] = []
        self._pending: tuple | None = None  # a forward's map update, written after its backward
        # The modules each stage calls: DistributedDataParallel wrappers under torchrun.
        self.encoder = self.model.encoder2d
        self.network = self.model
        if world_size > 1:
            ddp = torch.nn.parallel.DistributedDataParallel
            self.encoder = ddp(self.model.encoder2d)
            self.network = ddp(self.model, find_unused_parameters=True)

    # -- phases ---------------------------------------------------------------------------------

    def phases(self) -> list[str]:
        return ["pretrain_2d", "joint"]

    def steps(self, phase: str) -> int:
        return self.cfg.pretrain_2d.steps if phase == "pretrain_2d" else self.cfg.joint.steps

    def start_phase(self, phase: str) -> Phase:
        """Adam groups with the paper's per-network rates; joint: 2D encoder frozen at ``max_lr_2d = 0``."""
        enc = self.model.encoder2d
        clip = self.cfg.joint.grad_clip
        if phase == "pretrain_2d":
            cfg = self.cfg.pretrain_2d
            backbone = list(enc.backbone.parameters())
            ids = {id(p) for p in backbone}
            rest = [p for p in enc.parameters() if id(p) not in ids]
            self._train_mode(frozen_2d=False)
            return Phase(cfg.steps, [(backbone, cfg.max_lr * cfg.backbone_lr_scale), (rest, cfg.max_lr)], 1, clip)
        cfg = self.cfg.joint
        rest = [p for name, p in self.model.named_parameters() if not name.startswith("encoder2d.")]
        groups = [(rest, cfg.max_lr)]
        frozen = cfg.max_lr_2d == 0.0
        if not frozen:
            groups.insert(0, (list(enc.parameters()), cfg.max_lr_2d))
        self._train_mode(frozen_2d=frozen)
        network = self.network if self.world_size > 1 else None
        return Phase(cfg.steps, groups, cfg.batch * cfg.accumulate, clip, network)

    def end_phase(self, phase: str) -> None:
        self.slots = []

    def _train_mode(self, frozen_2d: bool) -> None:
        """Training mode; a frozen 2D encoder (joint stage, ``max_lr_2d = 0``) gets no
        gradients (so autograd skips its backward, a third of a joint step) and stays in
        eval mode."""
        self._frozen_2d = frozen_2d
        self.model.train()
        for p in self.model.encoder2d.parameters():
            p.requires_grad_(not frozen_2d)
        if frozen_2d:
            self.model.encoder2d.eval()

    # -- state ----------------------------------------------------------------------------------

    def state(self) -> dict:
        return {"slots": [s.state() for s in self.slots]}

    def load_state(self, state: dict) -> None:
        self.slots = [Slot(**s) for s in state.get("slots", [])]

    def provenance(self) -> dict:
        data = self.cfg.data
        return {
            "data_seeds": parse_seed_range(data.seeds) if data.source == "synthetic" else None,
            "sequences": [s.name for s in self.sequences],
            # Frames drawn so far, each counted once: used, skipped by reason, poses projected onto SO(3).
            "training_frames": {s.name: s.tallied_counts() for s in self.sequences},
        }

    # -- data -------------------------------------------------------------------------------

    def _frame(self, sequence: int, index: int):
        # Tallied: the card and ``alster train`` report the frames skipped and the poses projected.
        return self.sequences[sequence].tallied_frame(index)

    def _pretrain_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 7 or 9, H, W) and class targets (B, H, W) of pre-training step ``step``.

        Each image is one frame seen on its own, as the first frame of a map is: with the
        gravity inputs, its floor is estimated from that frame alone."""
        rng = _rng(self.cfg.seed, 1, step, self.rank)
        images, targets = [], []
        failures = 0
        while len(images) < self.cfg.pretrain_2d.batch:
            s = int(rng.integers(len(self.sequences)))
            i = int(rng.integers(len(self.sequences[s])))
            try:
                frame = self._frame(s, i)
            except ValueError as exc:
                # Skipped frames are counted by the sequences; a data set of nothing but
                # broken frames must end the run, not loop forever.
                failures += 1
                if failures >= MAX_BAD_FRAMES_PER_BATCH:
                    raise ValueError(f"{failures} frames drawn for one batch could not be read (last: {exc})") from exc
                continue
            if frame.labels is None:
                raise ValueError(f"{self.sequences[s].name} frame {i} has no 2D labels to train on")
            frame = dataclasses.replace(frame, color=jitter_color(frame.color, self.cfg.augment, rng))
            gravity = GravityReference(self.cfg.mapping.gravity)
            image, _ = network_image(frame, self.model.config.inputs, gravity, self.cfg.mapping.alster.max_range)
            image, _ = drop_input_groups(image, self.cfg.augment, rng)
            target = self.label_space.encode(frame.labels)
            if self.cfg.pretrain_2d.flip and rng.random() < 0.5:
                image, target = mirror_input(image, target)
            images.append(image)
            targets.append(target)
        if len({tuple(t.shape) for t in targets}) > 1:
            raise ValueError("pre-training batches need images of one size")
        return torch.cat(images).to(self.device), torch.stack(targets).to(self.device)

    def _next_frame(self, slot_index: int, step: int) -> tuple[int, int, bool]:
        """(sequence, frame, reset) of the next frame of a slot; a new sequence when done."""
        slot = self.slots[slot_index]
        rng = _rng(self.cfg.seed, 2, step, slot_index, slot.position, self.rank)
        reset = slot.mapper is None or rng.random() < self.cfg.joint.reset_probability
        if slot.sequence < 0 or slot.position >= len(slot.order):
            slot.sequence = int(rng.integers(len(self.sequences)))
            slot.order = [int(i) for i in rng.permutation(len(self.sequences[slot.sequence]))]
            slot.position = 0
            reset = True
        index = slot.order[slot.position]
        slot.position += 1
        return slot.sequence, index, reset

    # -- the two stages ------------------------------------------------------------------------

    def forward(self, phase: str, step: int, index: int) -> dict[str, torch.Tensor] | None:
        if phase == "pretrain_2d":
            images, targets = self._pretrain_batch(step)
            _, logits = self.encoder(images)  # (B, C, H, W) at full resolution
            loss = focal_loss(logits, targets, self.cfg.mapping.model.focal_gamma)
            return {"2d": loss, "total": loss}
        return self._joint_forward(step, index)

    def _joint_forward(self, step: int, index: int) -> dict[str, torch.Tensor] | None:
        """One frame of slot ``index % batch``, cropped from and (after the backward) written
        back into that slot's map: one truncated step of the sequence."""
        cfg = self.cfg.joint
        if len(self.slots) != cfg.batch:
            self.slots = [Slot() for _ in range(cfg.batch)]
        k = index % cfg.batch
        sequence, frame_index, reset = self._next_frame(k, step)
        slot = self.slots[k]
        if slot.mapper is None:
            slot.mapper = OnlineMapper(self.cfg.mapping, model=self.model)
            self._train_mode(self._frozen_2d)  # the mapper puts its model in eval mode
        if reset:
            slot.mapper.map.clear()
        rng = _rng(self.cfg.seed, 3, step, index, self.rank)
        try:
            frame = self._frame(sequence, frame_index)
            frame = dataclasses.replace(frame, color=jitter_color(frame.color, self.cfg.augment, rng))
            inputs = slot.mapper.prepare(frame)
        except ValueError:
            return None
        _, gravity_dropped = drop_input_groups(inputs.image, self.cfg.augment, rng)
        if gravity_dropped and inputs.geometry is not None:
            inputs.geometry.zero_()
        pixel_t, voxel_t = frame_targets(inputs, self.label_space.encode(frame.labels), self.label_space.num_classes)
        rows, old = slot.mapper.crop(inputs)
        lifted = inputs.lifted
        out = self.network(
            inputs.image, inputs.pixels, lifted.inverse, lifted.keys, old.feature.float(), old.count, inputs.geometry
        )
        self._pending = (slot.mapper, rows, old, inputs, out)
        return self.model.losses(out, pixel_t, voxel_t)

    def after_backward(self, phase: str, step: int, index: int) -> None:
        if self._pending is not None:
            mapper, rows, old, inputs, out = self._pending
            self._pending = None
            mapper.commit(rows, old, inputs, out)


def mirror_input(image: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror a network input left-right as a camera would see the mirrored scene.

    image: (1, 7 or 9, H, W) ``Encoder2D.prepare_input`` layout (RGB, depth, camera-frame
    normals, then height and normal . up). target: (H, W) class indices. The normals' x
    component changes sign, because the camera's x axis points the other way in the
    mirrored image; height and the up component do not change under a mirror.
    """
    image = image.flip(-1)
    image[:, 4] = -image[:, 4]
    return image, target.flip(-1)
