"""The ALSTER model family (Weder et al., ../papers/alster.md): posed RGB-D frames in, the
live semantic map out. ``model.py`` registers ``"alster"`` with ``AlsterNetConfig``."""

from .config import AlsterNetConfig, Encoder2DConfig, ExpertConfig, UNet3DConfig
from .model import AlsterModel, AlsterOutput

__all__ = ["AlsterModel", "AlsterNetConfig", "AlsterOutput", "Encoder2DConfig", "ExpertConfig", "UNet3DConfig"]
