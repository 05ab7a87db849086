"""What the joint semantic-instance point models (ASIS, BAN) share: a PointNet++ encoder
with a semantic and an instance decoder, their common settings, and their loss.

Both papers build on the same frame (ASIS section 3.1, BAN section 4.2): a shared encoder,
two parallel decoders giving semantic features F_SEM and instance features F_INS (N x N_F
each), a semantic classifier trained with cross-entropy and instance embeddings trained
with the discriminative loss. They differ in how the two branches exchange information,
which stays in each family's own module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...core.config import param, section
from ..losses import discriminative_loss
from .pointnet2 import PointNet2Config, PointNet2Decoder, PointNet2Encoder, shared_mlp


@dataclass
class PointInstanceConfig:
    """Settings every joint semantic-instance point model has (a family's config extends it)."""

    in_channels: int = param(6, "per-point input features besides xyz (colour + normalised room coordinates)", min=0, max=64)
    backbone: PointNet2Config = section(PointNet2Config)
    feature_dim: int = param(128, "N_F: width of the semantic and instance features", min=1, max=1024)
    embedding_dim: int = param(5, "N_E: instance embedding dimensions", min=1, max=64)
    delta_v: float = param(0.5, "delta_v: pull margin of the discriminative loss", min=0.0, max=100.0)
    delta_d: float = param(1.5, "delta_d: push margin of the discriminative loss", min=0.0, max=100.0)
    weight_regulariser: float = param(0.001, "alpha of L_reg in the discriminative loss (ASIS eq. 1)", min=0.0, max=10.0)
    dropout: float = param(0.5, "dropout before the semantic classifier (the reference code: 0.5)", min=0.0, max=1.0)


class SemanticInstanceBranches(nn.Module):
    """The shared encoder and the two decoders, each followed by a point-wise layer to
    ``feature_dim``. forward(xyz (B, N, 3), features (B, N, in_channels)) -> (F_SEM, F_INS),
    each (B, feature_dim, N) channels-first."""

    def __init__(self, config: PointInstanceConfig):
        super().__init__()
        self.encoder = PointNet2Encoder(config.backbone, config.in_channels)
        self.semantic_decoder = PointNet2Decoder(config.backbone, config.in_channels)
        self.instance_decoder = PointNet2Decoder(config.backbone, config.in_channels)
        decoded = self.semantic_decoder.out_channels
        self.semantic_features = shared_mlp([decoded, config.feature_dim], dims=1)
        self.instance_features = shared_mlp([decoded, config.feature_dim], dims=1)

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        levels = self.encoder(xyz, features)
        semantic = self.semantic_features(self.semantic_decoder(levels).transpose(1, 2))
        instance = self.instance_features(self.instance_decoder(levels).transpose(1, 2))
        return semantic, instance


class InstanceSizePrior(nn.Module):
    """How many points (map voxels) an instance of each class has in the training scenes,
    learnt from the training data and stored with the weights (a buffer, like batch-norm
    statistics). SGPN's and ASIS's test scripts drop a merged group smaller than a quarter
    of its class's mean (``mean_num_pts_in_group``); ``pipeline.instance_segmentation``
    applies the same rule to whole-scene instances. mean_points: (C,) float, 0 = class never
    seen (no threshold)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.register_buffer("mean_points", torch.zeros(int(num_classes), dtype=torch.float64))

    def fit(self, scenes: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """scenes: (semantic (N,) class index, -1 = ignored; instance (N,) id, < 0 = none) per
        training scene. Each instance counts once, under the most frequent class of its points."""
        sizes: list[list[int]] = [[] for _ in range(len(self.mean_points))]
        for semantic, instance in scenes:
            for ident in np.unique(instance[instance >= 0]):
                classes = semantic[(instance == ident) & (semantic >= 0)]
                if classes.size:
                    sizes[int(np.bincount(classes).argmax())].append(int((instance == ident).sum()))
        self.mean_points.copy_(torch.tensor([float(np.mean(s)) if s else 0.0 for s in sizes], dtype=torch.float64))

    def thresholds(self, fraction: float) -> np.ndarray:
        """(C,) float: the smallest instance kept per class, ``fraction`` of the class's mean."""
        return fraction * self.mean_points.cpu().numpy()


def semantic_instance_losses(
    logits: torch.Tensor,
    embeddings: torch.Tensor,
    semantic: torch.Tensor,
    instances: torch.Tensor,
    config: PointInstanceConfig,
    weight_instance: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Cross-entropy of logits (B, N, C) against semantic (B, N) class indices (-1 ignored),
    plus ``weight_instance`` x the discriminative loss of embeddings (B, N, N_E) against
    instances (B, N) ids (< 0 = none). Returns {"semantic", "var", "dist", "reg",
    "instance", "total"}."""
    semantic_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), semantic.reshape(-1), ignore_index=-1)
    parts = discriminative_loss(embeddings, instances, config.delta_v, config.delta_d, (1.0, 1.0, config.weight_regulariser))
    instance_loss = parts.pop("total")
    return {"semantic": semantic_loss, **parts, "instance": instance_loss, "total": semantic_loss + weight_instance * instance_loss}
