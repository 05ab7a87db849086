"""Typed task samples that ``data/`` produces and ``nets/``, ``train/`` and ``eval/`` consume.

The model families differ in what they eat, so each input kind is one validated type here,
next to ``RGBDFrame`` (``core/frame.py``: a posed RGB-D frame with per-pixel raw label ids
and instance ids, the sample of ALSTER):

* ``PointBlock``: labelled points, e.g. a sequence's ground truth or a block of it cut for
  a point network (ASIS / BAN style); xyz, optional colour and normals, per-point raw
  label ids and instance ids.
* ``ImagePointChunk``: a few posed frames and the labelled points they observe (SAFNet:
  images + points -> point semantics).
* ``VoxelVolume``: a gravity-aligned voxel grid in front of one camera with the flipped TSDF
  of its depth image, what the camera knows of each voxel, the labels of the complete scene
  and the pixel -> voxel mapping (IMENet: one RGB-D frame -> a completed semantic volume).

Labels are *raw* ids (e.g. NYU40) as the data sources store them; a ``LabelSpace``
encodes them into class indices where a model or a metric needs those. Instance ids are
non-negative integers unique within a sample; 0 means "no instance known" (unlabelled
surface, or a source without instance annotation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .frame import RGBDFrame


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


@dataclass
class ImagePointChunk:
    """Posed frames and the labelled points they observe (images + points in, point labels out).

    frames: ``RGBDFrame`` s (at least one, all of one size). points: the ``PointBlock`` of
    the scene part the frames see, in the same world frame as their poses. name: where it
    comes from. Raises ValueError on an empty chunk or frames of different sizes.
    """

    frames: list[RGBDFrame]
    points: PointBlock
    name: str = "chunk"

    def __post_init__(self) -> None:
        self.frames = list(self.frames)
        if not self.frames:
            raise ValueError("a chunk needs at least one frame")
        if len({f.shape for f in self.frames}) > 1:
            raise ValueError(f"the frames of a chunk must share one size, got {sorted({f.shape for f in self.frames})}")
        if not isinstance(self.points, PointBlock):
            raise ValueError(f"points must be a PointBlock, got {type(self.points).__name__}")


OUTSIDE, FREE, SURFACE, OCCLUDED = 0, 1, 2, 3
"""What the camera knows of a voxel of a ``VoxelVolume`` (``visibility``): outside its view
(not in the image, behind it or beyond the depth range), seen empty (in front of the
measured surface), on the measured surface, occluded (behind it, or its pixel has no depth)."""


@dataclass
class VoxelVolume:
    """A gravity-aligned voxel grid in front of one camera: what the camera measured and the complete scene.

    tsdf: (X, Y, Z) float32 in [-1, 1], the input of a completion network (``data/
    completion_volumes.py`` says how it is computed). labels: (X, Y, Z) int64 class ids of
    the complete scene (0 = empty), hidden parts and object interiors included.
    T_world_grid: (4, 4) float64, the grid's corner frame: voxel (i, j, k) has its centre at
    ``T_world_grid @ [(i, j, k) + 0.5) * voxel_size, 1]``; a rotation about world z and a
    translation (the grid is gravity aligned). voxel_size: edge [m]. visibility: (X, Y, Z)
    uint8 of ``OUTSIDE`` / ``FREE`` / ``SURFACE`` / ``OCCLUDED``, or None. pixel_voxel:
    (H, W) int64, the flat index (``np.ravel_multi_index``) of the voxel each pixel's depth
    point falls in, -1 where it has no depth or falls outside the grid; or None. frame: the
    RGB-D frame it was built from. Raises ValueError on inconsistent shapes or values.
    """

    tsdf: np.ndarray
    labels: np.ndarray
    T_world_grid: np.ndarray
    voxel_size: float
    visibility: np.ndarray | None = None
    pixel_voxel: np.ndarray | None = None
    frame: RGBDFrame | None = None
    name: str = "volume"

    def __post_init__(self) -> None:
        tsdf = np.asarray(self.tsdf, dtype=np.float32)
        if tsdf.ndim != 3:
            raise ValueError(f"tsdf must be an (X, Y, Z) grid, got shape {tsdf.shape}")
        if tsdf.size and (not np.isfinite(tsdf).all() or np.abs(tsdf).max() > 1.0):
            raise ValueError("tsdf must be finite and within [-1, 1]")
        labels = np.asarray(self.labels)
        if labels.shape != tsdf.shape:
            raise ValueError(f"labels {labels.shape} and tsdf {tsdf.shape} differ in shape")
        if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
            raise ValueError("labels must be non-negative integer ids")
        T = np.asarray(self.T_world_grid, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all() or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6):
            raise ValueError("T_world_grid must be a finite (4, 4) rigid transform")
        if not (np.isfinite(self.voxel_size) and self.voxel_size > 0):
            raise ValueError(f"voxel_size must be positive, got {self.voxel_size}")
        if self.visibility is not None:
            visibility = np.asarray(self.visibility)
            if visibility.shape != tsdf.shape or (visibility.size and visibility.max() > OCCLUDED):
                raise ValueError(f"visibility must be an (X, Y, Z) grid of codes 0..{OCCLUDED} like tsdf {tsdf.shape}")
            self.visibility = visibility.astype(np.uint8, copy=False)
        if self.pixel_voxel is not None:
            pixel_voxel = np.asarray(self.pixel_voxel, dtype=np.int64)
            if pixel_voxel.ndim != 2 or (pixel_voxel.size and (pixel_voxel.min() < -1 or pixel_voxel.max() >= tsdf.size)):
                raise ValueError("pixel_voxel must be an (H, W) grid of flat voxel indices or -1")
            if self.frame is not None and pixel_voxel.shape != self.frame.shape:
                raise ValueError(f"pixel_voxel {pixel_voxel.shape} and the frame {self.frame.shape} differ in size")
            self.pixel_voxel = pixel_voxel
        self.tsdf, self.labels, self.T_world_grid, self.voxel_size = tsdf, labels.astype(np.int64, copy=False), T, float(self.voxel_size)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(X, Y, Z) voxels."""
        return self.tsdf.shape  # type: ignore[return-value]

    def centers(self) -> np.ndarray:
        """(X, Y, Z, 3) float64 world positions of the voxel centres [m]."""
        axes = [(np.arange(n) + 0.5) * self.voxel_size for n in self.shape]
        local = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
        return local @ self.T_world_grid[:3, :3].T + self.T_world_grid[:3, 3]
