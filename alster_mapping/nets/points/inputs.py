"""The per-point input of the point models (ASIS section 4: XYZ, RGB, normalised room
coordinates, the 9-d input), for training and for inference alike."""

from __future__ import annotations

import numpy as np

from ...core.samples import PointBlock


def block_inputs(block: PointBlock, low: np.ndarray, extent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (N, 3) centred on the block's floor plan, features (N, 6): colour 0..1 and the
    position normalised to the map's extent [low, low + extent])."""
    xyz = block.xyz.astype(np.float32)
    centred = xyz.copy()
    centred[:, :2] -= (xyz[:, :2].min(0) + xyz[:, :2].max(0)) / 2
    colour = block.rgb.astype(np.float32) / 255.0 if block.rgb is not None else np.zeros_like(xyz)
    return centred, np.concatenate([colour, (xyz - low) / np.maximum(extent, 1e-6)], 1).astype(np.float32)
