"""Core types shared by every layer: camera, frame, label space, geometry, configuration.

The names below import on first use (PEP 562), so that importing a light submodule such
as ``core.config`` (the launch file reads the node's topic defaults through it) does not
pull in torch with ``frame`` and ``labels``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CameraIntrinsics": ".camera",
    "RGBDFrame": ".frame",
    "LabelSpace": ".labels",
    "MapConfig": ".config",
    "LabelFusionConfig": ".config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
