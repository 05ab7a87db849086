"""SAFNet's configuration (Zhao et al., ../papers/safnet.md), with the switches of its
ablation (section IV-D): 3D only, concatenation late fusion (eq. 1), + GSM, + GSM + CSM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...core.config import param, section
from ..points.pointnet2 import PointNet2Config
from ..variants import SwitchedVariants

VARIANT_SWITCHES = {
    "points": dict(image_branch=False, geometric_similarity=False, contextual_similarity=False),
    "concat": dict(image_branch=True, geometric_similarity=False, contextual_similarity=False),
    "gsm": dict(image_branch=True, geometric_similarity=True, contextual_similarity=False),
    "full": dict(image_branch=True, geometric_similarity=True, contextual_similarity=True),
}
"""The ablation's variants: 3D only; concatenation (eq. 1); + GSM; + GSM + CSM (the paper's model)."""
VARIANTS = tuple(VARIANT_SWITCHES)


def backbone_for_2048_points() -> PointNet2Config:
    """PointNet++ for 2,048-point chunks: the paper's centroids for 8,192 points (1024 / 256 /
    64 / 16) scaled by the same quarter; radii, neighbours and widths as the paper."""
    return PointNet2Config(centroids=(256, 64, 16, 4))


@dataclass
class SafnetConfig(SwitchedVariants):
    """SAFNet: a frozen 2D branch's features back-projected to 3D, PointNet++ on the chunk,
    geometric (GSM) and contextual (CSM) similarity weighting the image features (eq. 2-10)."""

    variant_switches: ClassVar[dict] = VARIANT_SWITCHES
    family: ClassVar[str] = "SAFNet"

    image_features: int = param(40, "D^2D: width of the frozen 2D branch's features (the ALSTER 2D encoder: 40)", min=1, max=1024)
    image_branch: bool = param(True, "fuse the back-projected image features; off = the 3D-only variant")
    geometric_similarity: bool = param(True, "GSM (eq. 3-5): weight the image features by the bidirectional nearest-neighbour distances")
    contextual_similarity: bool = param(
        True, "CSM (eq. 6-8): contextual features for PointNet++ (eq. 9) and their cosine similarity as a weight; off = xyz (and colour) only"
    )
    channel_attention: bool = param(True, "squeeze-and-excitation channel attention on both branches before fusion")
    point_colour: bool = param(True, "give PointNet++ the map voxels' colour besides xyz (deviation: a map voxel has one)")
    map_prior: bool = param(
        False,
        "give PointNet++ the live map's class of each voxel (one-hot times its confidence) besides xyz, so the refinement corrects "
        "the online map rather than starting over (deviation: the paper labels raw points; off in the paper's ablation)",
    )
    context_dim: int = param(64, "width of the CSM's MLP and of the contextual features f (the paper: 64)", min=1, max=1024)
    backbone: PointNet2Config = section(backbone_for_2048_points, "PointNet++ of the 3D branch (single-scale grouping, as the paper)")
    head: tuple[int, ...] = param(
        (192, 192, 192), "widths of the fusion head's FC layers before the classifier (the paper: 192, 192, 192)", min=1, max=4096
    )
    dropout: float = param(0.5, "dropout after the head's last hidden layer (the paper: 0.5)", min=0.0, max=1.0)
    weight_2d: float = param(0.2, "lambda_1 of eq. 11: the 2D loss on the back-projected pixels", min=0.0, max=100.0)
    weight_3d: float = param(0.8, "lambda_2 of eq. 11: the 3D branch's auxiliary loss", min=0.0, max=100.0)
    weight_unprojected: float = param(0.8, "lambda_3 of eq. 11: the nearest back-projected feature's loss against the 3D label", min=0.0, max=100.0)
