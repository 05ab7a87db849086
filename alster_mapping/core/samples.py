"""Typed task samples that ``data/`` produces and ``nets/``, ``train/`` and ``eval/`` consume.

The model families differ in what they eat, so each input kind is one validated type here,
next to ``RGBDFrame`` (``core/frame.py``: a posed RGB-D frame with per-pixel raw label ids
and instance ids, the sample of ALSTER):

* ``PointBlock``: labelled points, e.g. a sequence's ground truth or a block of it cut for
  a point network (ASIS / BAN style); xyz, optional colour and normals, per-point raw
  label ids and instance ids.

Labels are *raw* ids (e.g. NYU40) as the data sources store them; a ``LabelSpace``
encodes them into class indices where a model or a metric needs those. Instance ids are
non-negative integers unique within a sample; 0 means "no instance known" (unlabelled
surface, or a source without instance annotation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _column(values: np.ndarray | None, name: str, n: int, width: int, dtype: type) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.shape != (n, width):
        raise ValueError(f"{name} must have shape ({n}, {width}), got {arr.shape}")
    return arr.astype(dtype, copy=False)


def _ids(values: np.ndarray, name: str, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer ids, got {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got {arr.min()}")
    return arr.astype(np.int64, copy=False)


@dataclass
class PointBlock:
    """Labelled points.

    xyz: (N, 3) float32 metres. labels: (N,) int64 raw label ids. instances: (N,) int64
    instance ids, 0 = none known (default: all 0). rgb: optional (N, 3) uint8. normals:
    optional (N, 3) float32 unit vectors. name: where the points come from (for messages).
    Construction validates shapes and dtypes and raises ValueError naming the problem.
    """

    xyz: np.ndarray
    labels: np.ndarray
    instances: np.ndarray | None = None
    rgb: np.ndarray | None = None
    normals: np.ndarray | None = None
    name: str = field(default="points")

    def __post_init__(self) -> None:
        xyz = np.asarray(self.xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise ValueError(f"xyz must have shape (N, 3), got {xyz.shape}")
        if xyz.size and not np.isfinite(xyz).all():
            raise ValueError("xyz holds non-finite coordinates")
        n = xyz.shape[0]
        self.xyz = xyz.astype(np.float32, copy=False)
        self.labels = _ids(self.labels, "labels", n)
        self.instances = np.zeros(n, np.int64) if self.instances is None else _ids(self.instances, "instances", n)
        self.rgb = _column(self.rgb, "rgb", n, 3, np.uint8)
        self.normals = _column(self.normals, "normals", n, 3, np.float32)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def subset(self, rows: np.ndarray, name: str | None = None) -> PointBlock:
        """The points ``rows`` (a bool mask or int indices) as a new block."""

        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[rows]

        return PointBlock(self.xyz[rows], self.labels[rows], self.instances[rows], pick(self.rgb), pick(self.normals), name or self.name)

    @property
    def has_instances(self) -> bool:
        """Whether any point carries an instance id."""
        return bool(len(self) and self.instances.max() > 0)
