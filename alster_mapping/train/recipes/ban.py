"""The BAN recipe (issue 11): BAN on blocks of fused maps (``instance_blocks`` says how)."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import section
from ...nets.ban import BanConfig
from ...nets.points.pointnet2 import PointNet2Config
from ..recipe import RECIPES
from .instance_blocks import InstanceBlockRecipe, InstanceTrainConfig


def blocks_of_1024_points() -> BanConfig:
    """BAN for 1,024-point blocks (its N x N attention: 4 MB per matrix): the PointNet++
    centroids scaled to the block as for ASIS; everything else as in the paper."""
    return BanConfig(backbone=PointNet2Config(centroids=(256, 64, 16, 4)))


@dataclass
class BanTrainConfig(InstanceTrainConfig):
    """``alster train --model ban``: data, schedule and the network."""

    model: BanConfig = section(blocks_of_1024_points, "the BAN network (in_channels must be 6: colour + normalised position)")


@RECIPES.register("ban")
class BanRecipe(InstanceBlockRecipe):
    """BAN trained on blocks of fused synthetic maps."""

    config_class = BanTrainConfig
    model_name = "ban"
