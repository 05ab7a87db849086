"""SAFNet: Similarity-Aware Fusion Network (Zhao et al., ../papers/safnet.md).

    2D branch (III-A): frozen image features F^2D of the views' pixels, back-projected to Q;
        a point takes the inverse-distance mean of its 3 nearest points of Q (as MVPNet)
    GSM (eq. 3-5): S^Geo from the mean forward / backward nearest-neighbour distances
    CSM (eq. 6-8): contextual features f^P, f^Q of p_i's neighbourhoods in P and Q; S^Con = cos
    3D branch (eq. 9): PointNet++ on {x, f^P} (+ the voxel colour, + the map's class) -> F^3D (128)
    fusion (eq. 10, 2): S^2D-3D = S^Geo * S^Con; logits = H^FC([S^2D-3D * CA(F^2D), CA(F^3D)])
        H^FC: 192-192-192 (batch norm + ReLU, dropout 0.5 after the third) -> C
    loss (eq. 11): L_fusion + 0.2 L_2D + 0.8 L_3D + 0.8 L_2Dunp

The 2D network is frozen (the project's image encoder, trained on 2D labels first, as the
paper freezes its CNN while the 3D branch and the head train); what SAFNet learns of the
2D branch is a point-wise classifier on its features, which L_2D (on the back-projected
pixels' labels) and L_2Dunp (each point's nearest back-projected feature within r', against
the point's label) train. The ablation's variants (``SafnetConfig.variant``) switch the
image branch, GSM and CSM off; a similarity that is off weighs the image features by 1
(concatenation, eq. 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..points.ops import gather_points, group_points
from ..points.pointnet2 import PointNet2Backbone
from ..registry import MODELS
from .config import SafnetConfig
from .similarity import ChannelAttention, ContextualSimilarity, GeometricSimilarity


@dataclass
class SafnetOutput:
    """logits: (B, N, C) of the fusion head. logits_3d: (B, N, C) of the 3D branch.
    q_logits: (B, M, C) of the back-projected pixels (None without the image branch).
    weight: (B, N) S^2D-3D (ones when no similarity is on). geometric / contextual: (B, N)
    S^Geo / S^Con or None."""

    logits: torch.Tensor
    logits_3d: torch.Tensor
    q_logits: torch.Tensor | None
    weight: torch.Tensor
    geometric: torch.Tensor | None
    contextual: torch.Tensor | None


def fusion_head(in_channels: int, widths: tuple[int, ...], num_classes: int, dropout: float) -> nn.Sequential:
    """H^FC: per-point FC layers with batch norm and ReLU, dropout after the last, then the classifier."""
    layers: list[nn.Module] = []
    previous = in_channels
    for width in widths:
        layers += [nn.Conv1d(previous, width, 1, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        previous = width
    layers += [nn.Dropout(dropout), nn.Conv1d(previous, num_classes, 1)]
    return nn.Sequential(*layers)


@MODELS.register("safnet", config=SafnetConfig, task="point_semantics", inputs="image_point_chunk")
class SafnetModel(nn.Module):
    """config: ``SafnetConfig``. num_classes: C of the label space.
    forward(batch of ``inputs.stack_chunks``) -> ``SafnetOutput``."""

    def __init__(self, config: SafnetConfig, num_classes: int = 20):
        super().__init__()
        self.config, self.num_classes = config, int(num_classes)
        c = config
        self.geometric = GeometricSimilarity() if c.image_branch and c.geometric_similarity else None
        self.contextual = ContextualSimilarity(c.context_dim) if c.contextual_similarity else None
        in_channels = (3 if c.point_colour else 0) + (c.context_dim if self.contextual is not None else 0)
        in_channels += self.num_classes if c.map_prior else 0
        self.backbone = PointNet2Backbone(c.backbone, in_channels)
        width_3d = self.backbone.out_channels
        self.head_3d = nn.Conv1d(width_3d, self.num_classes, 1)  # L_3D's auxiliary classifier
        self.attention_3d = ChannelAttention(width_3d) if c.channel_attention else nn.Identity()
        if c.image_branch:
            self.head_2d = nn.Linear(c.image_features, self.num_classes)  # the 2D branch's classifier (L_2D, L_2Dunp)
            self.attention_2d = ChannelAttention(c.image_features) if c.channel_attention else nn.Identity()
        fused = width_3d + (c.image_features if c.image_branch else 0)
        self.head = fusion_head(fused, c.head, self.num_classes, c.dropout)

    def build_arguments(self) -> dict:
        return {"num_classes": self.num_classes}

    def forward(self, batch: dict[str, torch.Tensor]) -> SafnetOutput:
        xyz = batch["xyz"]
        features: list[torch.Tensor] = [batch["colour"]] if self.config.point_colour else []
        if self.config.map_prior:
            known = batch["map_label"] >= 0
            one_hot = F.one_hot(batch["map_label"].clamp_min(0), self.num_classes).to(xyz.dtype)
            features.append(one_hot * (batch["map_confidence"] * known).unsqueeze(-1))
        contextual = None
        if self.contextual is not None:
            f_p, contextual = self.contextual(xyz, batch["p_neighbours"], batch["q_xyz"], batch["q_neighbours"])
            features.append(f_p)  # eq. 9: PointNet++ on {x, f}
        f_3d = self.backbone(xyz, torch.cat(features, -1) if features else None).transpose(1, 2)  # (B, 128, N)
        logits_3d = self.head_3d(f_3d).transpose(1, 2)
        weight = torch.ones_like(xyz[..., 0])
        if not self.config.image_branch:
            return SafnetOutput(self.head(self.attention_3d(f_3d)).transpose(1, 2), logits_3d, None, weight, None, contextual)
        q_features = batch["q_features"]
        # The 3 nearest back-projected features of each point, inverse-distance weighted (MVPNet).
        nearest = group_points(q_features, batch["nearest_q"])  # (B, N, 3, D)
        f_2d = (nearest * batch["nearest_weight"].unsqueeze(-1)).sum(2)
        geometric = None
        if self.geometric is not None:
            geometric = self.geometric(batch["forward_distance"], batch["backward_distance"])
            weight = geometric
        if contextual is not None and self.geometric is not None:
            weight = geometric * contextual  # eq. 10
        elif contextual is not None:
            weight = contextual
        f_2d = self.attention_2d(f_2d.transpose(1, 2)) * weight.unsqueeze(1)  # Gamma of eq. 2
        logits = self.head(torch.cat([f_2d, self.attention_3d(f_3d)], 1)).transpose(1, 2)
        return SafnetOutput(logits, logits_3d, self.head_2d(q_features), weight, geometric, contextual)

    def losses(self, out: SafnetOutput, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. 11 against batch["labels"] (B, N) and batch["q_labels"] (B, M) (-1 ignored):
        {"fusion", "3d", "2d", "unprojected", "total"}; the 2D terms are zero without the
        image branch (or without labelled pixels)."""
        c = self.config
        labels = batch["labels"]

        def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            if not (target >= 0).any():
                return logits.sum() * 0.0  # nothing labelled: a zero that keeps the graph
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-1)

        parts = {"fusion": cross_entropy(out.logits, labels), "3d": cross_entropy(out.logits_3d, labels)}
        zero = out.logits.sum() * 0.0
        parts["2d"], parts["unprojected"] = zero, zero
        if out.q_logits is not None:
            parts["2d"] = cross_entropy(out.q_logits, batch["q_labels"])
            unprojected = batch["unprojected"]
            nearest_logits = gather_points(out.q_logits, unprojected.clamp_min(0))
            parts["unprojected"] = cross_entropy(nearest_logits, torch.where(unprojected >= 0, labels, torch.full_like(labels, -1)))
        parts["total"] = parts["fusion"] + c.weight_2d * parts["2d"] + c.weight_3d * parts["3d"] + c.weight_unprojected * parts["unprojected"]
        return parts
