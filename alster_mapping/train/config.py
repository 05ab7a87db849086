"""``TrainConfig``: what ``alster train`` reads (data, the two stages, the mapper being trained)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import param, section
from ..pipeline.mapping_config import MappingConfig


@dataclass
class TrainDataConfig:
    """Where training sequences come from."""

    source: str = param("synthetic", "synthetic: generated worlds; scannet: exported ScanNet-layout scenes", choices=("synthetic", "scannet"))
    seeds: tuple[int, ...] = param(
        (1000, 1127), "synthetic worlds: [first, last] seed (inclusive); keep them apart from evaluation seeds (0-999)", min=0
    )
    scannet_root: str = param("", "scannet: directory whose sub-directories are exported scenes (color/, depth/, pose/, intrinsic/)")
    frames: int = param(60, "frames per synthetic trajectory (10 Hz)", min=2, max=100000)
    stride: int = param(1, "scannet: use every n-th frame", min=1, max=1000)
    width: int = param(320, "synthetic image width [px]", min=16, max=4096)
    height: int = param(240, "synthetic image height [px]", min=16, max=4096)


@dataclass
class Pretrain2DConfig:
    """Stage 1 (optional): the 2D encoder alone on 2D labels (ALSTER section 3: fine-tuned on 2D data first)."""

    steps: int = param(1400, "optimizer steps; 0 skips the stage", min=0)
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
class TrainConfig:
    """``alster train``: data, the two training stages and the network being trained."""

    seed: int = param(0, "seed of everything random in training (data order, resets, initialisation)", min=0)
    checkpoint_every: int = param(100, "write the resumable training state every n optimizer steps", min=1)
    data: TrainDataConfig = section(TrainDataConfig)
    pretrain_2d: Pretrain2DConfig = section(Pretrain2DConfig)
    joint: JointConfig = section(JointConfig)
    mapping: MappingConfig = section(MappingConfig, "the label space, map geometry, ranges and network (as the mapper uses them)")
