"""Core types shared by every layer: camera, frame, label space, geometry, configuration."""

from .camera import CameraIntrinsics
from .config import LabelFusionConfig, MapConfig
from .frame import RGBDFrame
from .labels import LabelSpace

__all__ = ["CameraIntrinsics", "RGBDFrame", "LabelSpace", "MapConfig", "LabelFusionConfig"]
