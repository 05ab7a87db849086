"""The sparse tensor container shared by both backends (``factory.sparse_tensor`` builds one).

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
from collections.abc import Hashable
from typing import Any

import torch


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

    def with_features(self, features: torch.Tensor) -> SparseTensor:
        """The same coordinates with new features (N, C') (row i stays voxel i)."""
        return SparseTensor(features, self.manager, self.key, self.stride)

    def same_coordinates(self, other: SparseTensor) -> bool:
        """Whether ``other`` lives on exactly these coordinates in the same row order."""
        return self.manager is other.manager and self.manager.same_set(self.key, other.key)

    def _check_same(self, other: SparseTensor, what: str) -> None:
        if not self.same_coordinates(other):
            raise ValueError(f"{what} needs two sparse tensors on the same coordinates (same manager and key)")

    def __add__(self, other: SparseTensor) -> SparseTensor:
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
