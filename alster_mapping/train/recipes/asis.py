"""The ASIS recipe (issue 11): ASIS on blocks of fused maps (``instance_blocks`` says how)."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import section
from ...nets.asis import AsisConfig
from ..recipe import RECIPES
from .instance_blocks import InstanceBlockRecipe, InstanceTrainConfig, backbone_for_1024_points


def blocks_of_1024_points() -> AsisConfig:
    """ASIS for the recipe's 1,024-point blocks."""
    return AsisConfig(backbone=backbone_for_1024_points())


@dataclass
class AsisTrainConfig(InstanceTrainConfig):
    """``alster train --model asis``: data, schedule and the network."""

    model: AsisConfig = section(blocks_of_1024_points, "the ASIS network (in_channels must be 6: colour + normalised position)")


@RECIPES.register("asis")
class AsisRecipe(InstanceBlockRecipe):
    """ASIS trained on blocks of fused synthetic maps."""

    config_class = AsisTrainConfig
    model_name = "asis"
