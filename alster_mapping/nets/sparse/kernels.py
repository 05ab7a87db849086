"""Kernel offsets in the canonical order shared by both sparse backends.

A sparse convolution with kernel size K has K^3 weight matrices. Both backends store them
in one tensor ``weight`` of shape (K^3, C_in, C_out) whose first index runs over kernel
offsets (dx, dy, dz) in lexicographic order with dz fastest — the order of
``dense_weight[:, :, dx, dy, dz]`` in ``torch.nn.functional.conv3d``. MinkowskiEngine
orders its offsets with dx fastest; ``minkowski_kernel_order`` converts at call time, so a
state_dict is backend-independent.

Offsets follow MinkowskiEngine's convention (``MinkowskiConvolution`` docs): for odd K they
are centred, -(K//2) .. K//2; for even K they run 0 .. K-1 (the 2x2x2 down-sampling kernel
covers one output cell's 8 children). Offsets are in units of the input's tensor stride
times the dilation.
"""

from __future__ import annotations

import functools
import itertools

import torch


def check_kernel_size(kernel_size: int) -> int:
    """Validate a cubic kernel size (positive int) and return it as an int."""
    if isinstance(kernel_size, bool) or int(kernel_size) != kernel_size or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive integer, got {kernel_size!r}")
    return int(kernel_size)


@functools.cache
def _offsets(kernel_size: int) -> tuple[tuple[int, int, int], ...]:
    axis = range(-(kernel_size // 2), kernel_size // 2 + 1) if kernel_size % 2 else range(kernel_size)
    return tuple(itertools.product(axis, axis, axis))


def kernel_offsets(kernel_size: int) -> torch.Tensor:
    """Kernel offsets (K^3, 3) int64 (dx, dy, dz) in canonical order (dz fastest).

    Units: input tensor strides times dilation. Odd K is centred; even K spans 0 .. K-1.
    """
    return torch.tensor(_offsets(check_kernel_size(kernel_size)), dtype=torch.int64).reshape(-1, 3)


def kernel_volume(kernel_size: int) -> int:
    """K^3, the number of offsets (and weight matrices) of a cubic kernel."""
    return check_kernel_size(kernel_size) ** 3


def minkowski_kernel_order(kernel_size: int) -> torch.Tensor:
    """Permutation (K^3,) int64 with ``weight_me = weight[perm]``.

    MinkowskiEngine's kernel index of offset (ix, iy, iz) (indices into the axis range) is
    ix + K*iy + K^2*iz (dx fastest; measured, ../shared/docs/MEASUREMENTS.md); the canonical
    index is (ix*K + iy)*K + iz. The permutation is a transposition of x and z, hence its
    own inverse.
    """
    k = check_kernel_size(kernel_size)
    return torch.arange(k**3, dtype=torch.int64).reshape(k, k, k).permute(2, 1, 0).reshape(-1)


def check_kernel_args(kernel_size: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """Validate (kernel size, stride, dilation), all positive ints; returns them as ints."""
    kernel_size = check_kernel_size(kernel_size)
    for name, v in (("stride", stride), ("dilation", dilation)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return kernel_size, int(stride), int(dilation)
