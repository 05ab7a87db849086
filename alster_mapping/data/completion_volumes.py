"""Scene-completion volumes with the labels of the complete scene (IMENet, ../papers/imenet.md;
SSCNet's protocol), for training and evaluation.

``completion_volume`` is ``core.completion_grid.observed_volume`` (the volume in front of the
camera, its visibility, flipped TSDF and pixel -> voxel map) plus ``labels`` in the ssc11
classes (``config/labelspaces/ssc11.yaml``, mapped from NYU40): solid objects filled (a
``solids`` callable gives the NYU40 label of the object containing a world point, e.g.
``SyntheticWorld.solid_labels``), then the ground-truth surface points' majority label per
voxel on top (walls, floor, ceiling and every surface, seen or hidden).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import yaml

from ..core.completion_grid import SSC_LABEL_SPACE, CompletionVolumeConfig, VolumeError, grid_index, observed_volume
from ..core.frame import RGBDFrame
from ..core.labels import LabelSpace, labelspace_dirs
from ..core.samples import PointBlock, VoxelVolume

__all__ = ["SSC_LABEL_SPACE", "CompletionVolumeConfig", "VolumeError", "completion_volume", "nyu40_to_ssc", "ssc_label_space"]

def ssc_label_space() -> LabelSpace:
    """The 11 classes of scene completion (ids 1..11; 0 is empty space)."""
    return LabelSpace.load(SSC_LABEL_SPACE)


@lru_cache(maxsize=1)
def nyu40_to_ssc() -> np.ndarray:
    """(41,) int64 lookup table NYU40 id -> ssc11 id (0 -> 0), from ssc11.yaml's ``from_nyu40``."""
    for directory in labelspace_dirs():
        path = directory / f"{SSC_LABEL_SPACE}.yaml"
        if path.is_file():
            table = yaml.safe_load(path.read_text())["from_nyu40"]
            lut = np.zeros(41, np.int64)
            for nyu, ssc in table.items():
                lut[int(nyu)] = int(ssc)
            if (lut[1:] == 0).any():
                raise ValueError(f"{path}: from_nyu40 leaves NYU40 ids {np.flatnonzero(lut[1:] == 0) + 1} unmapped")
            return lut
    raise ValueError(f"label space file {SSC_LABEL_SPACE}.yaml not found in {[str(d) for d in labelspace_dirs()]}")


def completion_volume(
    frame: RGBDFrame,
    truth: PointBlock,
    floor_z: float,
    solids: Callable[[np.ndarray], np.ndarray] | None = None,
    config: CompletionVolumeConfig | None = None,
) -> VoxelVolume:
    """The ``VoxelVolume`` of ``frame`` with the complete scene's labels in ssc11 classes (module docstring).

    truth: the scene's ground-truth surface points with NYU40 labels. floor_z: world height
    of the floor [m]. solids: NYU40 label (N,) of the solid object containing each world
    point (N, 3), 0 for none (None: surfaces only). Raises VolumeError as ``observed_volume``.
    """
    config = config or CompletionVolumeConfig()
    volume = observed_volume(frame, floor_z, config)
    dims = np.array(volume.shape)
    lut = nyu40_to_ssc()
    labels = np.zeros(int(np.prod(dims)), np.int64)
    if solids is not None:
        labels = lut[np.asarray(solids(volume.centers().reshape(-1, 3)), dtype=np.int64)]
    surface = _surface_labels(truth, volume.T_world_grid, config.voxel_size, dims)
    volume.labels = np.where(surface > 0, lut[surface], labels).reshape(tuple(dims))
    return volume


def _surface_labels(truth: PointBlock, T_world_grid: np.ndarray, voxel_size: float, dims: np.ndarray) -> np.ndarray:
    """(X * Y * Z,) int64: the most frequent NYU40 label of the ground-truth points in each voxel, 0 = none."""
    flat = grid_index(np.asarray(truth.xyz, dtype=np.float64), T_world_grid, voxel_size, dims)
    keep = (flat >= 0) & (truth.labels > 0)
    labels = np.zeros(int(np.prod(dims)), np.int64)
    if keep.any():
        pairs, counts = np.unique(np.stack([flat[keep], truth.labels[keep].astype(np.int64)], 1), axis=0, return_counts=True)
        order = np.lexsort((counts, pairs[:, 0]))  # per voxel, the most frequent label last
        pairs = pairs[order]
        last = np.r_[pairs[1:, 0] != pairs[:-1, 0], True]
        labels[pairs[last, 0]] = pairs[last, 1]
    return labels
