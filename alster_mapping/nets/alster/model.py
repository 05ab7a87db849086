"""AlsterModel: the three ALSTER stages and their heads (Weder et al., section 3, Fig. 2).

    f2D  = F^2D([I, D, N])                     eq. 1, sampled at the valid depth pixels
    f2D_v = mean of f2D over each voxel's pixels (lifting, 4 cm voxels)
    f3D  = F^3D(voxels, f2D_v)                 light sparse U-Net
    f_t  = F^{Delta T}([f_{t-1}, f3D, f2D_v])  eq. 2-3, written back into the map
    L    = l2D FL(2D) + l3D FL(3D) + lE FL(expert)     eq. 4-5 (focal loss, gamma = 1)

The model is ROS-free and map-free: callers pass the frame's lifted voxels and the old
features/counts cropped from the map (``pipeline.online_mapper`` does that per frame; the
training loop does the same with gradients).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...core.scatter import scatter_mean
from ..encoder2d import Encoder2D
from ..losses import alster_loss, focal_loss
from ..registry import MODELS
from ..unet3d import UNet3D
from .config import GEOMETRY_CHANNELS_3D, INPUT_CHANNELS, LEGACY_CONFIG, AlsterNetConfig
from .expert import TemporalExpert


@dataclass
class AlsterOutput:
    """One frame's outputs for V voxels and P sampled pixels.

    feature: (V, D_F) the expert's new global features. logits_expert, logits_3d: (V, C).
    feature_2d: (V, D_F) 2D features averaged per voxel. feature_3d: (V, D_F).
    logits_2d: (P, C) the 2D head at the sampled pixels (None where the mapper skipped it).
    """

    feature: torch.Tensor
    logits_expert: torch.Tensor
    logits_3d: torch.Tensor
    feature_2d: torch.Tensor
    feature_3d: torch.Tensor
    logits_2d: torch.Tensor | None


def sample_pixels(maps: torch.Tensor, pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinearly sample low-resolution maps at full-resolution pixels.

    maps: (1, C, h, w) computed from an (height, width) image. pixels: (P,) int64 flat
    pixel indices (row-major). Returns (P, C), equal to upsampling ``maps`` to
    (height, width) with ``F.interpolate(..., align_corners=False)`` and indexing, but
    without building the full-resolution maps.
    """
    y = torch.div(pixels, width, rounding_mode="floor").to(maps.dtype)
    x = (pixels - torch.div(pixels, width, rounding_mode="floor") * width).to(maps.dtype)
    grid = torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], -1).view(1, 1, -1, 2)
    sampled = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.view(maps.shape[1], -1).t()


def _without_pretrained_weights(config: AlsterNetConfig) -> AlsterNetConfig:
    """A checkpoint brings the 2D encoder's weights: do not load the ImageNet ones first."""
    return dataclasses.replace(config, encoder2d=dataclasses.replace(config.encoder2d, pretrained=False))


@MODELS.register(
    "alster",
    config=AlsterNetConfig,
    task="semantic_mapping",
    inputs="posed_rgbd_frames",
    before_loading=_without_pretrained_weights,
    legacy_config=LEGACY_CONFIG,
)
class AlsterModel(nn.Module):
    """F^2D + F^3D + F^{Delta T} with auxiliary 2D and 3D heads and the expert head.

    config: ``AlsterNetConfig``. num_classes: C of the label space. feature_dim: D_F
    (= D^2D, the map's feature size).
    """

    def __init__(self, config: AlsterNetConfig, num_classes: int = 20, feature_dim: int = 40):
        super().__init__()
        self.config = config
        self.num_classes = int(num_classes)
        self.feature_dim = int(feature_dim)
        e2d, u3d, ex = config.encoder2d, config.unet3d, config.expert
        self.encoder2d = Encoder2D(
            backbone=e2d.backbone,
            in_channels=INPUT_CHANNELS[config.inputs],
            feature_dim=feature_dim,
            num_classes=num_classes,
            pretrained=e2d.pretrained,
            aspp_channels=e2d.aspp_channels,
            decoder_channels=e2d.decoder_channels,
        )
        self.geometry_channels = GEOMETRY_CHANNELS_3D[config.inputs]
        self.unet3d = UNet3D(
            in_channels=feature_dim + self.geometry_channels,
            feature_dim=feature_dim,
            num_classes=num_classes,
            channels=u3d.channels,
            blocks=u3d.blocks,
            backend=u3d.backend,
        )
        self.expert = TemporalExpert(feature_dim, num_classes, layers=ex.layers, heads=ex.heads, hidden=ex.hidden)

    def train(self, mode: bool = True) -> AlsterModel:
        """Training mode; with ``encoder2d.freeze_bn`` the 2D batch norms keep their statistics."""
        super().train(mode)
        if mode and self.config.encoder2d.freeze_bn:
            for module in self.encoder2d.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def input_3d(self, f2d: torch.Tensor, geometry: torch.Tensor | None) -> torch.Tensor:
        """The 3D network's per-voxel input: f2d (V, D_F) and, with ``inputs = gravity``,
        geometry (V, 2) = each voxel's mean height above the floor / HEIGHT_SCALE and
        normal . up (``pipeline.gravity``); (V, D_F + 2)."""
        if self.geometry_channels == 0:
            return f2d
        if geometry is None or geometry.shape != (f2d.shape[0], self.geometry_channels):
            got = None if geometry is None else tuple(geometry.shape)
            raise ValueError(f"the 3D network needs ({f2d.shape[0]}, {self.geometry_channels}) voxel geometry, got {got}")
        return torch.cat([f2d, geometry.to(f2d.dtype)], 1)

    def encode_2d(
        self,
        image: torch.Tensor,
        pixels: torch.Tensor,
        encoder2d: Encoder2D | None = None,
        pixel_shape: tuple[int, int] | None = None,
        with_logits: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Eq. 1 at given pixels: image (1, 7 or 9, h, w) (``Encoder2D.prepare_input``),
        pixels (P,) int64 flat indices -> (features (P, D_F), logits (P, C)).

        encoder2d: run this copy of the 2D encoder instead (``Encoder2D.fused`` at inference).
        pixel_shape: (H, W) of the pixel grid ``pixels`` index when the image is a reduced
        copy of it (``Encoder2D.downscale_input``: H, W = its size times the factor); each
        pixel is sampled where it falls in the reduced image. Default: the image's size.
        with_logits: False skips sampling the 2D head (logits None): mapping needs only the
        features, and sampling is memory-bound (a third of it at 640x480)."""
        height, width = pixel_shape or image.shape[-2:]
        features, logits = (encoder2d or self.encoder2d).forward_stride4(image)
        if not with_logits:
            return sample_pixels(features, pixels, height, width), None
        both = torch.cat([features, logits], 1)
        sampled = sample_pixels(both, pixels, height, width)
        return sampled[:, : self.feature_dim], sampled[:, self.feature_dim :]

    def forward(
        self,
        image: torch.Tensor,
        pixels: torch.Tensor,
        inverse: torch.Tensor,
        keys: torch.Tensor,
        old: torch.Tensor,
        count: torch.Tensor,
        geometry: torch.Tensor | None = None,
    ) -> AlsterOutput:
        """Run the three stages on one frame.

        image: (1, 7 or 9, H, W). pixels: (P,) int64 flat indices of the valid depth pixels.
        inverse: (P,) int64 voxel of each of those pixels. keys: (V, 3) int32 the frame's
        voxels. old: (V, D_F) their features in the map. count: (V,) their observation
        counts (0 = new voxel). geometry: (V, 2) per-voxel gravity values (``input_3d``),
        None with ``inputs = camera``.
        """
        f2d_pixels, logits_2d = self.encode_2d(image, pixels)
        f2d = scatter_mean(f2d_pixels, inverse, keys.shape[0])
        f3d, logits_3d = self.unet3d(keys, self.input_3d(f2d, geometry))
        feature, logits_expert = self.expert(old.to(f2d.dtype), count, f3d, f2d)
        return AlsterOutput(feature, logits_expert, logits_3d, f2d, f3d, logits_2d)

    def losses(self, out: AlsterOutput, pixel_labels: torch.Tensor, voxel_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Focal losses of the three heads (eq. 5) and their weighted sum (eq. 4) under "total".

        pixel_labels: (P,) class indices of the sampled pixels (-1 = unlabelled).
        voxel_labels: (V,) class indices of the voxels (-1 = unlabelled).
        """
        gamma = self.config.focal_gamma
        parts = {
            "2d": focal_loss(out.logits_2d, pixel_labels, gamma),
            "3d": focal_loss(out.logits_3d, voxel_labels, gamma),
            "expert": focal_loss(out.logits_expert, voxel_labels, gamma),
        }
        weights = {"2d": self.config.weight_2d, "3d": self.config.weight_3d, "expert": self.config.weight_expert}
        return {**parts, "total": alster_loss(parts, weights)}

    def build_arguments(self) -> dict[str, int]:
        """What rebuilds this model with its config (recorded in a checkpoint's card)."""
        return {"num_classes": self.num_classes, "feature_dim": self.feature_dim}

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per stage and in total."""
        counts = {
            name: sum(p.numel() for p in module.parameters() if p.requires_grad)
            for name, module in (("encoder2d", self.encoder2d), ("unet3d", self.unet3d), ("expert", self.expert))
        }
        counts["total"] = sum(counts.values())
        return counts
