"""The SAFNet model family (../papers/safnet.md): views' image features and a chunk of map
points in, per-point semantics out. ``model.py`` registers ``"safnet"`` with ``SafnetConfig``."""

from .config import VARIANT_SWITCHES, VARIANTS, SafnetConfig
from .model import SafnetModel, SafnetOutput

__all__ = ["VARIANT_SWITCHES", "VARIANTS", "SafnetConfig", "SafnetModel", "SafnetOutput"]
