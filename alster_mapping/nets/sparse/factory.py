"""Building a ``SparseTensor`` on a chosen backend: the one module that knows both.

``tensor.py`` defines the container and the coordinate-manager interface; each backend
module implements that interface; this module picks the backend by name, so neither the
container nor a backend imports the other.
"""

from __future__ import annotations

import torch

from .minkowski_backend import import_minkowski, minkowski_sparse_tensor
from .tensor import SparseTensor
from .torch_backend import TorchCoordinateManager

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
        import_minkowski()
    return backend


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
        manager = TorchCoordinateManager()
        key = manager.insert(coordinates, int(stride))
        return SparseTensor(features, manager, key, int(stride))
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
    ext = [high - low + 1 for low, high in zip(bounds[:4], bounds[4:])]
    if ext[0] * ext[1] * ext[2] * ext[3] < (1 << 62):
        codes = c[:, 0] - bounds[0]
        for axis in range(1, 4):
            codes = codes * ext[axis] + (c[:, axis] - bounds[axis])
        distinct = len(torch.unique(codes))
    else:
        distinct = len(torch.unique(c, dim=0))
    if distinct != c.shape[0]:
        raise ValueError("coordinates must be distinct (one row per voxel)")
