"""BAN's configuration (Wu et al., ../papers/ban.md): backbone, widths, the two attention
directions and the losses."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import param, section
from ..points.pointnet2 import PointNet2Config


@dataclass
class BanConfig:
    """BAN: a PointNet++ encoder, semantic and instance decoders, bi-directional attention (section 4)."""

    in_channels: int = param(6, "per-point input features besides xyz (colour + normalised room coordinates)", min=0, max=64)
    backbone: PointNet2Config = section(PointNet2Config)
    feature_dim: int = param(128, "N_S = N_I: width of the semantic and instance features", min=1, max=1024)
    attention_dim: int = param(64, "width of theta, phi and g in eq. 2", min=1, max=1024)
    embedding_dim: int = param(5, "N_E: instance embedding dimensions", min=1, max=64)
    semantic_to_instance: bool = param(True, "STOI: instance features attended by semantic similarity (first, as the paper)")
    instance_to_semantic: bool = param(True, "ITOS: semantic features attended by instance similarity (second)")
    delta_v: float = param(0.5, "delta_v: pull margin of the discriminative loss", min=0.0, max=100.0)
    delta_d: float = param(1.5, "delta_d: push margin of the discriminative loss", min=0.0, max=100.0)
    weight_regulariser: float = param(0.001, "alpha of L_reg in the discriminative loss", min=0.0, max=10.0)
    dropout: float = param(0.5, "dropout before the semantic classifier", min=0.0, max=1.0)
