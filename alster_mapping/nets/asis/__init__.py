"""The ASIS model family (../papers/asis.md): point blocks in, per-point semantics and
instance embeddings out. ``model.py`` registers ``"asis"`` with ``AsisConfig``."""

from .config import AsisConfig
from .model import AsisModel, AsisOutput

__all__ = ["AsisConfig", "AsisModel", "AsisOutput"]
