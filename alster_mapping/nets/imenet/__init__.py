"""The IMENet model family (../papers/imenet.md): one RGB-D frame in, a completed semantic
volume and a 2D segmentation out. ``model.py`` registers ``"imenet"`` with ``ImenetConfig``."""

from .config import VARIANT_SWITCHES, VARIANTS, ImenetConfig
from .model import ImenetModel, ImenetOutput

__all__ = ["VARIANT_SWITCHES", "VARIANTS", "ImenetConfig", "ImenetModel", "ImenetOutput"]
