"""ASIS's configuration (Wang et al., CVPR 2019, ../papers/asis.md): the shared settings of
the point instance models plus the two mutual-aid modules."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import param
from ..points.branches import PointInstanceConfig


@dataclass
class AsisConfig(PointInstanceConfig):
    """ASIS: a PointNet++ encoder, semantic and instance decoders, SA and IF (section 3)."""

    semantic_aware: bool = param(True, "SA: F_SINS = F_INS + FC(F_SEM) (eq. 5); off for the vanilla baseline")
    instance_fusion: bool = param(True, "IF: semantic features max-pooled over kNN in embedding space (eq. 6); off for the vanilla baseline")
    neighbours: int = param(30, "K of the instance fusion's kNN (the paper: 30); neighbours beyond delta_v are dropped", min=1, max=512)
    weight_instance: float = param(1.0, "weight of the discriminative loss against the cross-entropy", min=0.0, max=100.0)
