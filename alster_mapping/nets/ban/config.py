"""BAN's configuration (Wu et al., ../papers/ban.md): the shared settings of the point
instance models plus the two attention directions."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import param
from ..points.branches import PointInstanceConfig


@dataclass
class BanConfig(PointInstanceConfig):
    """BAN: a PointNet++ encoder, semantic and instance decoders, bi-directional attention (section 4)."""

    attention_dim: int = param(64, "width of theta, phi and g in eq. 2", min=1, max=1024)
    semantic_to_instance: bool = param(True, "STOI: instance features attended by semantic similarity (first, as the paper)")
    instance_to_semantic: bool = param(True, "ITOS: semantic features attended by instance similarity (second)")
