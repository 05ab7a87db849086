"""The BAN model family (../papers/ban.md): point blocks in, per-point semantics and instance
embeddings out. ``model.py`` registers ``"ban"`` with ``BanConfig``."""

from .config import BanConfig
from .model import BanModel, BanOutput

__all__ = ["BanConfig", "BanModel", "BanOutput"]
