"""The BAN recipe (issue 11): BAN on blocks of fused maps (``instance_blocks`` says how)."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import section
from ...nets.ban import BanConfig
from ..recipe import RECIPES
from .instance_blocks import InstanceBlockRecipe, InstanceTrainConfig, backbone_for_1024_points


def blocks_of_1024_points() -> BanConfig:
    """BAN for the recipe's 1,024-point blocks."""
    return BanConfig(backbone=backbone_for_1024_points())


@dataclass
class BanTrainConfig(InstanceTrainConfig):
    """``alster train --model ban``: data, schedule and the network."""

    model: BanConfig = section(blocks_of_1024_points, "the BAN network (in_channels must be 6: colour + normalised position)")


@RECIPES.register("ban")
class BanRecipe(InstanceBlockRecipe):
    """BAN trained on blocks of fused synthetic maps."""

    config_class = BanTrainConfig
    model_name = "ban"
