"""ASIS's configuration (Wang et al., CVPR 2019, ../papers/asis.md): backbone, widths,
the two mutual-aid modules and the losses."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import param, section
from ..points.pointnet2 import PointNet2Config


@dataclass
class AsisConfig:
    """ASIS: a PointNet++ encoder, semantic and instance decoders, SA and IF (section 3)."""

    in_channels: int = param(6, "per-point input features besides xyz (the paper: rgb + normalised room coordinates)", min=0, max=64)
    backbone: PointNet2Config = section(PointNet2Config)
    feature_dim: int = param(128, "N_F: width of the semantic and instance features", min=1, max=1024)
    embedding_dim: int = param(5, "N_E: instance embedding dimensions", min=1, max=64)
    semantic_aware: bool = param(True, "SA: F_SINS = F_INS + FC(F_SEM) (eq. 5); off for the vanilla baseline")
    instance_fusion: bool = param(True, "IF: semantic features max-pooled over kNN in embedding space (eq. 6); off for the vanilla baseline")
    neighbours: int = param(30, "K of the instance fusion's kNN (the paper: 30)", min=1, max=512)
    delta_v: float = param(0.5, "delta_v: pull margin of the discriminative loss, and the IF neighbour cut-off", min=0.0, max=100.0)
    delta_d: float = param(1.5, "delta_d: push margin of the discriminative loss", min=0.0, max=100.0)
    weight_regulariser: float = param(0.001, "alpha of L_reg in the discriminative loss (eq. 1)", min=0.0, max=10.0)
    weight_instance: float = param(1.0, "weight of the discriminative loss against the cross-entropy", min=0.0, max=100.0)
    dropout: float = param(0.5, "dropout before the semantic classifier (the reference code: 0.5)", min=0.0, max=1.0)
