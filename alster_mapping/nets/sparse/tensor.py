"""The sparse tensor container shared by both backends, and its factory.

A ``SparseTensor`` is a set of active voxels with one feature row each:

* coordinates (N, 4) int32, columns [batch, x, y, z]; x, y, z are in units of the finest
  level (the voxel size, 4 cm in ALSTER) and are multiples of the tensor stride;
* features (N, C), any float dtype, row i belongs to coordinate row i;
* a tensor stride s (int; 1 at the input level, 2, 4, ... after down-sampling);
* a coordinate manager plus a key naming this coordinate set inside it. Tensors that
  share a manager and key share coordinates (and row order), so element-wise ops and
  concatenation along channels are legal between them. The manager caches everything
  that depends only on coordinates: kernel maps and down-sampled coordinate sets.

Two backends implement the manager: ``'torch'`` (pure PyTorch, CPU and CUDA,
``torch_backend.py``) and ``'minkowski'`` (MinkowskiEngine 0.5.4, CPU-only build here,
``minkowski_backend.py``). The container and the modules in ``modules.py`` are the same
for both.
"""

from __future__ import annotations

import abc

from typing import Any, Hashable

import torch

BACKENDS = ("torch", "minkowski")
DEFAULT_BACKEND = "torch"


def check_backend(backend: str) -> str:
    """Validate a backend name ('torch' or 'minkowski') and return it.

    Choosing 'minkowski' also checks that MinkowskiEngine imports and raises
    ``BackendUnavailableError`` (an ImportError) with the reason if it does not.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown sparse backend {backend!r}; choose one of {BACKENDS}")
    if backend == "minkowski":
        from .minkowski_backend import import_minkowski

        import_minkowski()
    return backend


class CoordinateManager(abc.ABC):
    """Interface of a backend's coordinate manager (one per input tensor / network pass).

    Subclasses hold the coordinate sets (addressed by an opaque hashable key), their
    tensor strides, and caches of kernel maps and strided sets.
    """

    backend: str = ""

    @abc.abstractmethod
    def coordinates(self, key: Hashable) -> torch.Tensor:
        """Coordinates (N, 4) int32 [batch, x, y, z] of the set ``key``."""

    @abc.abstractmethod
    def size(self, key: Hashable) -> int:
        """N, the number of voxels of the set ``key``."""

    @abc.abstractmethod
    def same_set(self, key_a: Hashable, key_b: Hashable) -> bool:
        """Whether two keys name the same coordinate set (same rows in the same order)."""


class SparseTensor:
    """Features on a sparse set of voxels (see the module docstring for the layout).

    Build one with ``sparse_tensor``; network modules return new ones. ``features`` is an
    ordinary autograd tensor (N, C); ``coordinates`` is (N, 4) int32 [batch, x, y, z] at
    tensor stride ``stride`` (coordinates are multiples of it).
    """

    __slots__ = ("features", "manager", "key", "stride")

    def __init__(self, features: torch.Tensor, manager: CoordinateManager, key: Any, stride: int):
        if features.dim() != 2:
            raise ValueError(f"features must be (N, C), got shape {tuple(features.shape)}")
        n = manager.size(key)
        if features.shape[0] != n:
            raise ValueError(f"{features.shape[0]} feature rows for {n} coordinates")
        self.features = features
        self.manager = manager
        self.key = key
        self.stride = int(stride)

    @property
    def coordinates(self) -> torch.Tensor:
        """(N, 4) int32 [batch, x, y, z] in finest-level voxel units, multiples of ``stride``."""
        return self.manager.coordinates(self.key)

    @property
    def backend(self) -> str:
        """'torch' or 'minkowski'."""
        return self.manager.backend

    @property
    def num_channels(self) -> int:
        """C, the number of feature channels."""
        return int(self.features.shape[1])

    @property
    def device(self) -> torch.device:
        """Device of the features."""
        return self.features.device

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __repr__(self) -> str:
        return (
            f"SparseTensor(n={len(self)}, channels={self.num_channels}, stride={self.stride}, "
            f"backend={self.backend!r}, dtype={self.features.dtype}, device={self.device})"
        )

    def with_features(self, features: torch.Tensor) -> "SparseTensor":
        """The same coordinates with new features (N, C') (row i stays voxel i)."""
        return SparseTensor(features, self.manager, self.key, self.stride)

    def same_coordinates(self, other: "SparseTensor") -> bool:
        """Whether ``other`` lives on exactly these coordinates in the same row order."""
        return self.manager is other.manager and self.manager.same_set(self.key, other.key)

    def _check_same(self, other: "SparseTensor", what: str) -> None:
        if not self.same_coordinates(other):
            raise ValueError(f"{what} needs two sparse tensors on the same coordinates (same manager and key)")

    def __add__(self, other: "SparseTensor") -> "SparseTensor":
        """Element-wise sum of two tensors on the same coordinates (residual connections)."""
        self._check_same(other, "addition")
        return self.with_features(self.features + other.features)


def cat(tensors: list[SparseTensor] | tuple[SparseTensor, ...]) -> SparseTensor:
    """Concatenate features along channels: tensors on the same coordinates, (N, sum C_i).

    The U-Net's skip connections use it (as ``MinkowskiEngine.cat`` does).
    """
    if not tensors:
        raise ValueError("cat needs at least one sparse tensor")
    first = tensors[0]
    for t in tensors[1:]:
        first._check_same(t, "cat")
    return first.with_features(torch.cat([t.features for t in tensors], dim=1))


def sparse_tensor(
    coordinates: torch.Tensor,
    features: torch.Tensor,
    backend: str = DEFAULT_BACKEND,
    stride: int = 1,
    check: bool = True,
) -> SparseTensor:
    """Build a sparse tensor on a fresh coordinate manager of ``backend``.

    coordinates: (N, 4) int32 (int64 accepted) [batch, x, y, z], batch >= 0, every row
    distinct, x/y/z multiples of ``stride``. features: (N, C) float, on the device the
    backend computes on ('minkowski' is CPU-only here). Row order is kept: output row i of
    every stride-1 operation belongs to input row i. ``check`` validates distinctness,
    batch and stride alignment (one sort; disable only for coordinates known to be valid).
    Raises ValueError on invalid input, BackendUnavailableError if the backend is missing.
    """
    check_backend(backend)
    if coordinates.dim() != 2 or coordinates.shape[1] != 4:
        raise ValueError(f"coordinates must be (N, 4) [batch, x, y, z], got shape {tuple(coordinates.shape)}")
    if features.dim() != 2 or features.shape[0] != coordinates.shape[0]:
        raise ValueError(
            f"features must be (N, C) with N = {coordinates.shape[0]} rows, got shape {tuple(features.shape)}"
        )
    if coordinates.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"coordinates must be int32 or int64, got {coordinates.dtype}")
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    coordinates = coordinates.to(device=features.device, dtype=torch.int32).contiguous()
    if check and coordinates.shape[0]:
        _validate_coordinates(coordinates, int(stride))
    if backend == "torch":
        from .torch_backend import TorchCoordinateManager

        manager = TorchCoordinateManager()
        key = manager.insert(coordinates, int(stride))
        return SparseTensor(features, manager, key, int(stride))
    from .minkowski_backend import minkowski_sparse_tensor

    return minkowski_sparse_tensor(coordinates, features, int(stride))


def _validate_coordinates(coordinates: torch.Tensor, stride: int) -> None:
    c = coordinates.to(torch.int64)
    lo = c.min(0).values
    hi = c.max(0).values
    bounds = torch.cat([lo, hi]).tolist()
    if bounds[0] < 0:
        raise ValueError("batch indices must be >= 0")
    if stride > 1 and bool((c[:, 1:] % stride).any()):
        raise ValueError(f"coordinates must be multiples of the tensor stride {stride}")
    # Mixed-radix packing is exact; a sort then finds duplicates.
    ext = [h - l + 1 for l, h in zip(bounds[:4], bounds[4:])]
    if ext[0] * ext[1] * ext[2] * ext[3] < (1 << 62):
        codes = c[:, 0] - bounds[0]
        for axis in range(1, 4):
            codes = codes * ext[axis] + (c[:, axis] - bounds[axis])
        distinct = len(torch.unique(codes))
    else:
        distinct = len(torch.unique(c, dim=0))
    if distinct != c.shape[0]:
        raise ValueError("coordinates must be distinct (one row per voxel)")
