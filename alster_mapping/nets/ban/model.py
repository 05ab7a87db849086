"""BAN: Bi-Directional Attention for joint instance and semantic segmentation (Wu et al., section 4).

    shared encoder: PointNet++ set abstractions; two decoders give S (N x N_S) and I (N x N_I)
    attention (eq. 2):  alpha(X, Y) = concat[Y, P g(Y)],  P = softmax(theta(X) phi(X)^T)  (N x N, row-wise)
    STOI first:  I' = alpha(S, I)  -> FC -> instance embeddings (N x N_E)
    ITOS second: S' = alpha(I', S) -> FC -> semantic logits (N x N_C)
    loss (eq. 3): cross-entropy + the discriminative loss

theta, phi and g are point-wise linear maps to ``attention_dim`` channels. The N x N
similarity matrices cost memory and time quadratic in the block's points, which is why
the CPU recipe uses blocks of 1,024 points (4 MB per matrix). With both directions off it
is the vanilla baseline (the same encoder, decoders and heads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..points.branches import InstanceSizePrior, SemanticInstanceBranches, semantic_instance_losses
from ..points.pointnet2 import shared_mlp
from ..registry import MODELS
from .config import BanConfig


@dataclass
class BanOutput:
    """semantic_logits: (B, N, C). embeddings: (B, N, N_E)."""

    semantic_logits: torch.Tensor
    embeddings: torch.Tensor


class Attention(nn.Module):
    """alpha(X, Y) of eq. 2 over channels-first features: X (B, C_X, N), Y (B, C_Y, N) ->
    concat[Y, P g(Y)] (B, C_Y + attention_dim, N) with P = softmax(theta(X) phi(X)^T)."""

    def __init__(self, x_channels: int, y_channels: int, attention_dim: int):
        super().__init__()
        self.theta = nn.Conv1d(x_channels, attention_dim, 1)
        self.phi = nn.Conv1d(x_channels, attention_dim, 1)
        self.g = nn.Conv1d(y_channels, attention_dim, 1)
        self.out_channels = y_channels + attention_dim

    def similarity(self, x: torch.Tensor) -> torch.Tensor:
        """P (B, N, N): each row a distribution over the block's points."""
        return torch.softmax(self.theta(x).transpose(1, 2) @ self.phi(x), dim=-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attended = self.g(y) @ self.similarity(x).transpose(1, 2)  # (B, A, N): column i = sum_j P_ij g(y_j)
        return torch.cat([y, attended], 1)


@MODELS.register("ban", config=BanConfig, task="instance_segmentation", inputs="point_block")
class BanModel(nn.Module):
    """config: ``BanConfig``. num_classes: C of the label space.
    forward(xyz (B, N, 3), features (B, N, in_channels)) -> ``BanOutput``."""

    def __init__(self, config: BanConfig, num_classes: int = 20):
        super().__init__()
        self.config, self.num_classes = config, int(num_classes)
        width = config.feature_dim
        self.branches = SemanticInstanceBranches(config)
        self.instance_sizes = InstanceSizePrior(self.num_classes)  # set by the recipe from the training scenes
        self.stoi = Attention(width, width, config.attention_dim) if config.semantic_to_instance else None
        instance_width = self.stoi.out_channels if self.stoi else width
        self.itos = Attention(instance_width, width, config.attention_dim) if config.instance_to_semantic else None
        semantic_width = self.itos.out_channels if self.itos else width
        self.embedding_head = nn.Sequential(shared_mlp([instance_width, width], dims=1), nn.Conv1d(width, config.embedding_dim, 1))
        self.semantic_head = nn.Sequential(
            shared_mlp([semantic_width, width], dims=1), nn.Dropout(config.dropout), nn.Conv1d(width, self.num_classes, 1)
        )

    def build_arguments(self) -> dict:
        return {"num_classes": self.num_classes}

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None) -> BanOutput:
        semantic, instance = self.branches(xyz, features)  # S (B, N_S, N), I (B, N_I, N)
        if self.stoi is not None:
            instance = self.stoi(semantic, instance)  # STOI: alpha(S, I)
        if self.itos is not None:
            semantic = self.itos(instance, semantic)  # ITOS: alpha(I', S)
        embeddings = self.embedding_head(instance).transpose(1, 2)
        logits = self.semantic_head(semantic).transpose(1, 2)
        return BanOutput(logits, embeddings)

    def losses(self, out: BanOutput, semantic: torch.Tensor, instances: torch.Tensor) -> dict[str, torch.Tensor]:
        """semantic: (B, N) class indices (-1 ignored); instances: (B, N) ids (< 0 = none). Eq. 3."""
        return semantic_instance_losses(out.semantic_logits, out.embeddings, semantic, instances, self.config)
